//! `cargo test` runs every slt file in `inproc` mode (DESIGN.md "Tests").

use std::path::Path;

fn main() -> std::process::ExitCode {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    // Resolved at run time (cargo test sets it): checkouts sharing a target dir share binaries.
    let root = std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default();
    let files = kalamdb::slt::find_files(&Path::new(&root).join("slt"), filter.as_deref());
    assert!(!files.is_empty(), "no slt files found");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let failed = rt.block_on(kalamdb::slt::run_all(
        &files,
        &[kalamdb::slt::Mode::InProc],
        None,
        false,
    ));
    println!(
        "test result: {}. {} passed; {} failed",
        if failed == 0 { "ok" } else { "FAILED" },
        files.len() - failed,
        failed
    );
    if failed == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
