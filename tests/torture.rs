//! A short `cargo xtask torture` in `cargo test`: writers over HTTP against the real binary,
//! SIGKILLed three times (some kills while flushes run); every acknowledged write survives.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_random_kills() {
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_kalamdb"));
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let options = kalamdb::torture::Options {
        kills: 3,
        writers: 3,
        seed,
    };
    let report = kalamdb::torture::run(binary, options)
        .await
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    println!("seed {seed}: {report:?}");
    assert!(
        report.acknowledged > 0,
        "no write was acknowledged: {report:?}"
    );
    assert!(report.rows_checked > 0, "nothing was verified: {report:?}");
}
