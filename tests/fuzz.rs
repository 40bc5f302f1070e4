//! Property-based hostile input (issue #6): random SQL statements, expressions, identifiers,
//! JSON request bodies and parameter arrays run through `Engine::execute` in-process.
//!
//! Properties:
//! - every outcome is a success or a 4xx-class error: never a 500 (a panic caught by the query
//!   runtime is a 500), never a crash of the test process (a stack overflow would abort it);
//! - a canary table, which no generated statement names, never changes;
//! - the UPDATE/DELETE oracle: for a random predicate, the rows a write touches are exactly the
//!   rows `SELECT … WHERE` returns, and a failed write changes nothing.
//!
//! A default run takes well under two minutes. `cargo xtask fuzz --minutes N` sets
//! `KALAMDB_FUZZ_SECONDS` and the properties then run with fresh seeds until the time is up.
//! A failure is shrunk to a minimal case, printed, and its seed saved in
//! `tests/fuzz.proptest-regressions`, which every later run replays first.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kalamdb::{Config, Engine, Role, Session};
use proptest::prelude::*;
use proptest::test_runner::{
    Config as RunConfig, FileFailurePersistence, TestCaseError, TestRunner,
};
use serde_json::{Value, json};

/// The shared engine and the runtime that drives it.
struct World {
    rt: tokio::runtime::Runtime,
    engine: Engine,
    _dir: tempfile::TempDir,
}

const CANARY: &str = "SELECT id, v FROM canary.t ORDER BY id";
const USER_CANARY: &str = "SELECT id, v FROM canary.mine ORDER BY id";

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut config = Config::with_data_dir(dir.path());
        config.statement_timeout_ms = 2_000;
        let engine = Engine::open(config).unwrap();
        rt.block_on(engine.execute(
            "CREATE NAMESPACE canary; CREATE NAMESPACE fz; \
             CREATE SHARED TABLE canary.t (id INT PRIMARY KEY, v TEXT); \
             CREATE USER TABLE canary.mine (id INT PRIMARY KEY, v TEXT); \
             INSERT INTO canary.t VALUES (1, 'one'), (2, 'two'), (3, NULL); \
             CREATE SHARED TABLE fz.t (id BIGINT PRIMARY KEY, x TEXT, n INT, b BOOLEAN, d DOUBLE, j JSON); \
             CREATE USER TABLE fz.u (id BIGINT PRIMARY KEY, x TEXT, n INT); \
             CREATE SHARED TABLE fz.alt (a INT, b TEXT, c BOOLEAN); \
             CREATE STREAM TABLE fz.e (x TEXT, n INT) TTL 1h; \
             INSERT INTO fz.t VALUES (1, 'a', 1, true, 1.5, '{}'), (2, NULL, NULL, NULL, NULL, NULL); \
             CREATE USER 'fz-user' WITH PASSWORD 'pw' ROLE user; \
             CREATE USER 'fz-service' WITH PASSWORD 'pw' ROLE service",
            &Session::root(),
        ))
        .unwrap();
        rt.block_on(engine.execute(
            "EXECUTE AS USER 'fz-user' (INSERT INTO canary.mine VALUES (1, 'private'))",
            &Session::root(),
        ))
        .unwrap();
        World {
            rt,
            engine,
            _dir: dir,
        }
    })
}

fn rows(sql: &str, session: &Session) -> Rows {
    let w = world();
    w.rt.block_on(w.engine.execute(sql, session))
        .unwrap()
        .pop()
        .unwrap()
        .json_rows()
}

/// Rows of a result, as JSON.
type Rows = Vec<Vec<Value>>;

/// The canaries' rows at the start: (shared, the user's own).
fn baseline() -> (Rows, Rows) {
    static BASE: OnceLock<(Rows, Rows)> = OnceLock::new();
    BASE.get_or_init(|| {
        (
            rows(CANARY, &Session::root()),
            rows(USER_CANARY, &Session::new("fz-user", Role::User)),
        )
    })
    .clone()
}

/// Runs `sql` and checks the outcome class and the canaries.
fn run_checked(sql: &str, session: &Session, params: &[Value]) -> Result<(), TestCaseError> {
    let w = world();
    let base = baseline();
    let outcome =
        w.rt.block_on(w.engine.execute_with_params(sql, session, params));
    if std::env::var("KALAMDB_FUZZ_TRACE").is_ok() {
        match &outcome {
            Ok(_) => eprintln!("OK   {}", sql.chars().take(150).collect::<String>()),
            Err(e) => eprintln!(
                "ERR  {} => {}",
                sql.chars().take(100).collect::<String>(),
                e.to_string().chars().take(100).collect::<String>()
            ),
        }
    }
    if let Err(e) = &outcome {
        prop_assert!(
            (400..500).contains(&e.http_status()),
            "{sql:?} with {params:?} gave {e}"
        );
    }
    prop_assert_eq!(
        rows(CANARY, &Session::root()),
        base.0,
        "canary changed by {:?}",
        sql
    );
    prop_assert_eq!(
        rows(USER_CANARY, &Session::new("fz-user", Role::User)),
        base.1,
        "user canary changed by {:?}",
        sql
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Generators

fn column() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("id"),
        Just("x"),
        Just("n"),
        Just("b"),
        Just("d"),
        Just("j"),
        Just("_seq"),
        Just("_deleted"),
        Just("_updated"),
        Just("nope"),
        Just("\"X\""),
        Just("t.id"),
    ]
    .prop_map(str::to_string)
}

fn identifier() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_][a-z0-9_]{0,12}",
        Just("select".to_string()),
        Just("_seq".to_string()),
        Just("system".to_string()),
        "\"[^\"]{0,12}\"",
        "[a-zA-Z0-9_$éß\\-]{1,70}",
        Just("a".repeat(100)),
    ]
}

fn literal() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        prop_oneof![
            Just(i64::MIN),
            Just(i64::MAX),
            Just(0i64),
            Just(-1),
            Just(i64::from(i32::MAX)),
            Just(i64::from(i32::MIN))
        ]
        .prop_map(|v| v.to_string()),
        "-?[0-9]{15,45}",
        any::<f64>().prop_map(|v| format!("{v:?}")),
        "[0-9]{1,5}\\.[0-9]{0,5}(e[+-]?[0-9]{1,4})?",
        "'[^']{0,20}'",
        "'([^']|''){0,8}'",
        Just("NULL".to_string()),
        Just("TRUE".to_string()),
        Just("FALSE".to_string()),
        "\\$[0-9]{1,2}",
        Just("DATE '2024-02-29'".to_string()),
        Just("TIMESTAMP '1970-01-01 00:00:00'".to_string()),
        Just("INTERVAL '1 day'".to_string()),
        Just("'{\"a\": [1, 2]}'".to_string()),
        Just("CAST('NaN' AS DOUBLE)".to_string()),
    ]
}

/// Numeric functions and their argument counts.
const NUM_FUNCTIONS: [(&str, usize); 9] = [
    ("abs", 1),
    ("round", 1),
    ("round", 2),
    ("sqrt", 1),
    ("ln", 1),
    ("power", 2),
    ("gcd", 2),
    ("greatest", 3),
    ("coalesce", 2),
];

/// Text functions and their argument counts.
const TEXT_FUNCTIONS: [(&str, usize); 9] = [
    ("upper", 1),
    ("lower", 1),
    ("concat", 3),
    ("coalesce", 2),
    ("nullif", 2),
    ("replace", 3),
    ("concat_ws", 3),
    ("regexp_replace", 3),
    ("split_part", 3),
];

/// `f(args[..arity])`.
fn call(f: &str, arity: usize, args: &[String]) -> String {
    format!(
        "{f}({})",
        args.iter()
            .take(arity)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn num_literal() -> BoxedStrategy<String> {
    prop_oneof![
        any::<i32>().prop_map(|v| v.to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(0i64), Just(-1)]
            .prop_map(|v| v.to_string()),
        "-?[0-9]{15,45}",
        any::<f64>().prop_map(|v| format!("{v:?}")),
        "[0-9]{1,5}\\.[0-9]{0,5}(e[+-]?[0-9]{1,4})?",
        Just("NULL".to_string()),
        "\\$[1-3]",
    ]
    .boxed()
}

fn text_literal() -> BoxedStrategy<String> {
    prop_oneof![
        "'[^']{0,20}'",
        "'([^']|''){0,8}'",
        Just("NULL".to_string()),
        Just("'{\"a\": [1, 2]}'".to_string()),
        "\\$[1-3]",
    ]
    .boxed()
}

/// Numeric expressions over `fz.t` (mostly well typed, so they reach execution).
fn num_expr() -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        3 => num_literal(),
        2 => proptest::sample::select(&["id", "n", "d", "_seq"][..]).prop_map(str::to_string),
    ];
    leaf.prop_recursive(5, 40, 3, |inner| {
        prop_oneof![
            (
                inner.clone(),
                proptest::sample::select(&["+", "-", "*", "/", "%"][..]),
                inner.clone()
            )
                .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            inner.clone().prop_map(|a| format!("(- {a})")),
            (
                proptest::sample::select(&NUM_FUNCTIONS[..]),
                prop::collection::vec(inner.clone(), 3..4)
            )
                .prop_map(|((f, arity), args)| call(f, arity, &args)),
            (
                inner.clone(),
                proptest::sample::select(
                    &[
                        "INT",
                        "BIGINT",
                        "SMALLINT",
                        "TINYINT",
                        "DOUBLE",
                        "DECIMAL(10,2)",
                        "DECIMAL(38,0)"
                    ][..]
                )
            )
                .prop_map(|(a, t)| format!("CAST({a} AS {t})")),
            text_leaf().prop_map(|t| format!("length({t})")),
            (bool_leaf(), inner.clone(), inner.clone())
                .prop_map(|(c, a, b)| format!("CASE WHEN {c} THEN {a} ELSE {b} END")),
        ]
    })
    .boxed()
}

fn text_leaf() -> BoxedStrategy<String> {
    prop_oneof![
        text_literal(),
        proptest::sample::select(&["x", "j", "CURRENT_USER()"][..]).prop_map(str::to_string),
    ]
    .boxed()
}

/// Text expressions, including the string builders.
fn text_expr() -> BoxedStrategy<String> {
    text_leaf()
        .prop_recursive(4, 24, 3, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} || {b})")),
                (
                    proptest::sample::select(&TEXT_FUNCTIONS[..]),
                    prop::collection::vec(inner.clone(), 3..4)
                )
                    .prop_map(|((f, arity), args)| call(f, arity, &args)),
                (
                    proptest::sample::select(
                        &["repeat", "lpad", "rpad", "left", "right", "substr"][..]
                    ),
                    inner.clone(),
                    num_literal()
                )
                    .prop_map(|(f, a, n)| format!("{f}({a}, {n})")),
                num_literal().prop_map(|n| format!("CAST({n} AS TEXT)")),
            ]
        })
        .boxed()
}

fn bool_leaf() -> BoxedStrategy<String> {
    prop_oneof![
        Just("b".to_string()),
        Just("TRUE".to_string()),
        Just("FALSE".to_string()),
        Just("NULL".to_string()),
        Just("_deleted".to_string()),
        proptest::sample::select(&["id", "n", "d"][..]).prop_map(|c| format!("{c} IS NULL")),
    ]
    .boxed()
}

/// Boolean expressions: the WHERE clauses of reads and writes.
fn bool_expr() -> BoxedStrategy<String> {
    let cmp = proptest::sample::select(
        &[
            "=",
            "<>",
            "<",
            "<=",
            ">",
            ">=",
            "IS DISTINCT FROM",
            "IS NOT DISTINCT FROM",
        ][..],
    );
    let atom = prop_oneof![
        bool_leaf(),
        (num_expr(), cmp.clone(), num_expr()).prop_map(|(a, op, b)| format!("({a} {op} {b})")),
        (text_expr(), cmp, text_expr()).prop_map(|(a, op, b)| format!("({a} {op} {b})")),
        (text_expr(), text_literal()).prop_map(|(a, p)| format!("({a} LIKE {p})")),
        (num_expr(), prop::collection::vec(num_literal(), 1..4))
            .prop_map(|(a, l)| format!("({a} IN ({}))", l.join(", "))),
        (num_expr(), num_literal(), num_literal())
            .prop_map(|(a, l, h)| format!("({a} BETWEEN {l} AND {h})")),
    ];
    atom.prop_recursive(3, 16, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} AND {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} OR {b})")),
            inner.prop_map(|a| format!("(NOT {a})")),
        ]
    })
    .boxed()
}

/// Any expression: typed ones, and a share of untyped chaos.
fn expr() -> BoxedStrategy<String> {
    prop_oneof![
        3 => num_expr(),
        3 => text_expr(),
        2 => bool_expr(),
        1 => (literal(), proptest::sample::select(&["+", "||", "AND", "=", "&", "LIKE"][..]), column())
            .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
    ]
    .boxed()
}

/// Deep or long constructions just under and over the limits.
fn deep() -> impl Strategy<Value = String> {
    (
        200usize..400,
        proptest::sample::select(&["+", " AND ", " OR ", " || ", " UNION ALL SELECT "][..]),
    )
        .prop_map(|(n, op)| {
            let term = match op {
                " AND " | " OR " => "id = 1",
                " || " => "'x'",
                _ => "1",
            };
            let chain = vec![term; n].join(op);
            match op {
                " AND " | " OR " => format!("SELECT id FROM fz.t WHERE {chain}"),
                _ => format!("SELECT {chain}"),
            }
        })
}

fn duration() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|v| v.to_string()),
        "[0-9]{1,25}[smhdw]?",
        "'[0-9a-z ]{0,10}'",
        Just("off".to_string()),
        Just("18446744073709551615".to_string()),
        Just("999999999999999999d".to_string()),
    ]
}

fn location() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_./${}~#?%: -]{0,20}",
        Just("${user_id}".to_string()),
        Just("../../etc".to_string()),
        Just("/abs/${user_id}/x".to_string()),
    ]
}

fn table_sql() -> impl Strategy<Value = String> {
    (
        identifier(),
        proptest::sample::select(&["USER", "SHARED", "STREAM", ""][..]),
        prop::collection::vec(
            (
                identifier(),
                proptest::sample::select(
                    &[
                        "INT",
                        "BIGINT",
                        "TEXT",
                        "JSON",
                        "DECIMAL(38,10)",
                        "DECIMAL(99,1)",
                        "BLOB",
                        "TIMESTAMP",
                        "GEOMETRY",
                        "DOUBLE PRECISION",
                    ][..],
                ),
                prop::option::of(literal()),
            ),
            0..4,
        ),
        prop::option::of(duration()),
        prop::option::of(duration()),
        prop::option::of(location()),
        prop::option::of(any::<u64>()),
    )
        .prop_map(|(name, kind, cols, ttl, retention, loc, rows)| {
            let cols: Vec<String> = cols
                .iter()
                .map(|(c, t, d)| match d {
                    Some(d) => format!("{c} {t} DEFAULT {d}"),
                    None => format!("{c} {t}"),
                })
                .collect();
            let mut sql = format!("CREATE {kind} TABLE fz.{name} ({})", cols.join(", "));
            if let Some(t) = ttl {
                sql.push_str(&format!(" TTL {t}"));
            }
            if let Some(r) = retention {
                sql.push_str(&format!(" DELETED_RETENTION {r}"));
            }
            if let Some(l) = loc {
                sql.push_str(&format!(" LOCATION '{}'", l.replace('\'', "''")));
            }
            if let Some(r) = rows {
                sql.push_str(&format!(" FLUSH POLICY ROWS {r}"));
            }
            sql
        })
}

/// Tokens for "token soup": plausible SQL in implausible order.
const TOKENS: [&str; 40] = [
    "SELECT",
    "FROM",
    "WHERE",
    "fz.t",
    "canary.t",
    "system.users",
    "(",
    ")",
    ",",
    ";",
    "*",
    "INSERT",
    "INTO",
    "VALUES",
    "UPDATE",
    "SET",
    "DELETE",
    "EXPLAIN",
    "ANALYZE",
    "COPY",
    "TO",
    "'/tmp/x'",
    "WITH",
    "AS",
    "UNION",
    "JOIN",
    "ON",
    "1",
    "NULL",
    "=",
    "EXECUTE",
    "USER",
    "'fz-user'",
    "CREATE",
    "TABLE",
    "DROP",
    "FLUSH",
    "KILL",
    "JOB",
    "$1",
];

fn statement() -> impl Strategy<Value = String> {
    let table = proptest::sample::select(
        &[
            "fz.t",
            "fz.t",
            "fz.t",
            "fz.t",
            "fz.t",
            "fz.u",
            "fz.e",
            "system.users",
            "t",
        ][..],
    );
    prop_oneof![
        3 => (expr(), table.clone(), bool_expr())
            .prop_map(|(e, t, w)| format!("SELECT {e} FROM {t} WHERE {w}")),
        1 => (num_expr(), bool_expr()).prop_map(|(e, w)| format!(
            "SELECT {e}, COUNT(*) FROM fz.t a JOIN fz.t b ON {w} GROUP BY 1 ORDER BY 1 LIMIT 5"
        )),
        2 => (num_expr(), text_expr(), num_expr(), num_expr())
            .prop_map(|(id, x, n, d)| format!("INSERT INTO fz.t (id, x, n, d) VALUES ({id}, {x}, {n}, {d})")),
        1 => (text_expr(), num_expr()).prop_map(|(x, n)| format!("INSERT INTO fz.e VALUES ({x}, {n})")),
        2 => (table.clone(), proptest::sample::select(&["n", "id", "d"][..]), num_expr(), bool_expr())
            .prop_map(|(t, c, v, w)| format!("UPDATE {t} SET {c} = {v} WHERE {w}")),
        1 => (table.clone(), column(), expr(), expr())
            .prop_map(|(t, c, v, w)| format!("UPDATE {t} SET {c} = {v} WHERE {w}")),
        2 => (table.clone(), bool_expr()).prop_map(|(t, w)| format!("DELETE FROM {t} WHERE {w}")),
        1 => (expr(), bool_expr()).prop_map(|(e, w)| format!("EXPLAIN ANALYZE SELECT {e} FROM fz.t WHERE {w}")),
        1 => bool_expr().prop_map(|w| format!("EXPLAIN ANALYZE DELETE FROM fz.t WHERE {w}")),
        1 => expr().prop_map(|e| format!("COPY (SELECT {e}) TO '/tmp/kalamdb-fuzz.csv'")),
        1 => expr().prop_map(|e| format!("WITH c AS (SELECT {e} AS v) SELECT * FROM c")),
        1 => (num_expr(), bool_expr()).prop_map(|(e, w)| {
            format!("SELECT id FROM fz.t WHERE id IN (SELECT {e} FROM fz.t WHERE {w})")
        }),
        1 => table_sql(),
        1 => (identifier(), identifier())
            .prop_map(|(a, b)| format!("ALTER TABLE fz.alt RENAME COLUMN {a} TO {b}")),
        1 => (identifier(), literal()).prop_map(|(k, v)| format!("SET {k} = {v}")),
        1 => literal().prop_map(|v| format!("SET statement_timeout = {v}")),
        1 => (identifier(), "[ -~]{0,12}")
            .prop_map(|(u, p)| format!("CREATE USER '{u}' WITH PASSWORD '{}'", p.replace('\'', "''"))),
        1 => statement_leaf().prop_map(|s| format!("EXECUTE AS USER 'fz-user' ({s})")),
        1 => deep(),
        1 => prop::collection::vec(proptest::sample::select(&TOKENS[..]), 1..25)
            .prop_map(|t| t.join(" ")),
        1 => "[ -~]{0,60}".boxed(),
        1 => "\\PC{0,40}".boxed(),
    ]
}

fn statement_leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        bool_expr().prop_map(|w| format!("DELETE FROM fz.u WHERE {w}")),
        (text_expr(), num_expr())
            .prop_map(|(x, n)| format!("INSERT INTO fz.u (id, x, n) VALUES (7, {x}, {n})")),
        expr().prop_map(|e| format!("SELECT {e} FROM fz.u")),
    ]
}

fn param() -> impl Strategy<Value = Value> {
    prop_oneof![
        9 => scalar_param(),
        1 => scalar_param().prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                inner.prop_map(|v| json!({ "k": v })),
            ]
        }),
    ]
}

fn scalar_param() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "\\PC{0,20}".prop_map(Value::from),
    ]
}

fn session() -> impl Strategy<Value = Session> {
    prop_oneof![
        Just(Session::root()),
        Just(Session::new("fz-user", Role::User)),
        Just(Session::new("fz-service", Role::Service)),
    ]
}

// ---------------------------------------------------------------------------------------------
// Running

/// `tests/fuzz.proptest-regressions` of this checkout, resolved at run time (checkouts that
/// share a target directory share test binaries).
fn regressions() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        let root = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
        format!("{root}/tests/fuzz.proptest-regressions")
    })
}

/// Runs `test` over `strategy`: once with the default case count (or `KALAMDB_FUZZ_CASES`), or
/// with fresh seeds until `KALAMDB_FUZZ_SECONDS` pass.
fn check<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let budget = std::env::var("KALAMDB_FUZZ_SECONDS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs);
    let cases = std::env::var("KALAMDB_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    let started = Instant::now();
    let mut rounds = 0u32;
    loop {
        let config = RunConfig {
            cases,
            failure_persistence: Some(Box::new(FileFailurePersistence::Direct(regressions()))),
            max_shrink_iters: 2_000,
            ..RunConfig::default()
        };
        let mut runner = TestRunner::new(config);
        if let Err(e) = runner.run(&strategy, &test) {
            panic!("{name}: {e}");
        }
        rounds += 1;
        match budget {
            Some(b) if started.elapsed() < b => continue,
            _ => break,
        }
    }
    println!(
        "{name}: {rounds} round(s) of {cases} cases in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn random_statements_never_fail_the_server_or_touch_the_canary() {
    check(
        "statements",
        400,
        (
            statement(),
            session(),
            prop_oneof![
                4 => prop::collection::vec(scalar_param(), 3..4),
                1 => prop::collection::vec(param(), 0..4),
            ],
        ),
        |(sql, session, params)| run_checked(&sql, &session, &params),
    );
}

#[test]
fn random_request_bodies_decode_or_fail_cleanly() {
    let body = prop_oneof![
        "\\PC{0,80}".prop_map(|s| s.into_bytes()),
        param().prop_map(|v| v.to_string().into_bytes()),
        (
            statement(),
            prop::collection::vec(param(), 0..4),
            prop::option::of(identifier())
        )
            .prop_map(|(sql, params, ns)| {
                let mut b = json!({"sql": sql, "params": params});
                if let Some(ns) = ns {
                    b["namespace"] = json!(ns);
                }
                b.to_string().into_bytes()
            }),
        (any::<i64>(), "-?[0-9]{19,30}").prop_map(|(a, big)| {
            format!("{{\"sql\": \"SELECT $1, $2\", \"params\": [{a}, {big}]}}").into_bytes()
        }),
    ];
    check(
        "bodies",
        300,
        body,
        |bytes| match kalamdb::server::decode_request(&bytes) {
            Ok(req) => {
                let mut session = Session::new("fz-user", Role::User);
                session.namespace = req.namespace;
                run_checked(&req.sql, &session, &req.params)
            }
            Err(e) => {
                prop_assert_eq!(e.code(), "INVALID_PARAMETER");
                Ok(())
            }
        },
    );
}

/// Rows of the oracle table, as `(id, a, b, c)` SQL literals.
const ORACLE_ROWS: &str = "(1, 1, 'a', true), (2, -1, 'b', false), (3, NULL, NULL, NULL), \
     (4, 0, '', true), (5, 2147483647, 'A%', false), (6, -2147483648, 'ab', NULL)";

fn oracle_predicate() -> impl Strategy<Value = String> {
    let col = proptest::sample::select(&["id", "a", "b", "c", "NULL", "1", "'a'", "true"][..])
        .prop_map(str::to_string);
    let atom = prop_oneof![
        (
            col.clone(),
            proptest::sample::select(&["=", "<>", "<", ">=", "IS DISTINCT FROM", "LIKE"][..]),
            col.clone()
        )
            .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
        col.clone().prop_map(|a| format!("{a} IS NULL")),
        col.clone().prop_map(|a| format!("{a} IN (1, NULL, 'a')")),
        Just("false".to_string()),
        Just("NULL".to_string()),
        Just("c".to_string()),
        literal().prop_map(|l| format!("a = {l}")),
    ];
    atom.prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} AND {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} OR {b})")),
            inner.prop_map(|a| format!("(NOT {a})")),
        ]
    })
}

fn ids(result: &kalamdb::QueryResult) -> Vec<i64> {
    let mut v: Vec<i64> = result
        .json_rows()
        .iter()
        .filter_map(|r| r.first().and_then(Value::as_i64))
        .collect();
    v.sort_unstable();
    v
}

#[test]
fn writes_touch_exactly_the_rows_select_returns() {
    let w = world();
    let root = Session::root();
    let types = proptest::sample::select(&["SHARED", "USER", "STREAM"][..]);
    let op = proptest::sample::select(&["DELETE", "UPDATE"][..]);
    check(
        "oracle",
        200,
        (oracle_predicate(), types, op),
        |(p, kind, op)| {
            let session = if kind == "SHARED" {
                root.clone()
            } else {
                Session::new("fz-user", Role::User)
            };
            let op = if kind == "STREAM" { "DELETE" } else { op };
            let pk = if kind == "STREAM" { "" } else { " PRIMARY KEY" };
            let setup = format!(
                "DROP TABLE IF EXISTS fz.oracle; \
             CREATE {kind} TABLE fz.oracle (id INT{pk}, a INT, b TEXT, c BOOLEAN, m INT) {}",
                if kind == "STREAM" { "TTL 1h" } else { "" }
            );
            w.rt.block_on(w.engine.execute(&setup, &root)).unwrap();
            let insert = format!("INSERT INTO fz.oracle (id, a, b, c) VALUES {ORACLE_ROWS}");
            w.rt.block_on(w.engine.execute(&insert, &session)).unwrap();
            let run = |sql: &str| w.rt.block_on(w.engine.execute(sql, &session));
            let all = ids(&run("SELECT id FROM fz.oracle").unwrap().remove(0));
            let selected = run(&format!("SELECT id FROM fz.oracle WHERE {p}"));
            let write = if op == "DELETE" {
                format!("DELETE FROM fz.oracle WHERE {p}")
            } else {
                format!("UPDATE fz.oracle SET m = 1 WHERE {p}")
            };
            let written = run(&write);
            let touched = if op == "DELETE" {
                let left = ids(&run("SELECT id FROM fz.oracle").unwrap().remove(0));
                all.iter()
                    .copied()
                    .filter(|i| !left.contains(i))
                    .collect::<Vec<_>>()
            } else {
                ids(&run("SELECT id FROM fz.oracle WHERE m = 1")
                    .unwrap()
                    .remove(0))
            };
            match written {
                Err(e) => {
                    prop_assert!((400..500).contains(&e.http_status()), "{write}: {e}");
                    prop_assert!(touched.is_empty(), "failed {write} touched {touched:?}");
                }
                Ok(mut r) => {
                    let count = r.pop().unwrap().row_count;
                    prop_assert_eq!(count, touched.len(), "{} reported {} rows", write, count);
                    if let Ok(mut s) = selected {
                        let expected = ids(&s.remove(0));
                        prop_assert_eq!(touched, expected, "{} vs its SELECT", write);
                    }
                }
            }
            Ok(())
        },
    );
}
