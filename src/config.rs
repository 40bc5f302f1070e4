//! Server configuration: defaults that need no file, an optional TOML file, and `KALAMDB_*`
//! environment overrides (SPEC section 8).
//!
//! May import: `error` only (a ground-floor module).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Everything `Engine::open` and `kalamdb serve` need. Every field has a default.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Data directory; RocksDB lives in `<data_dir>/rocksdb`, Parquet in `<data_dir>/storage`.
    pub data_dir: PathBuf,
    /// HTTP bind address, `127.0.0.1:8080` by default.
    pub bind: String,
    /// fsync the RocksDB WAL on every write (power-loss durability, SPEC section 3 item 2).
    pub sync_writes: bool,
    /// Largest accepted SQL text / request body, in bytes (default 1 MiB).
    pub max_sql_bytes: usize,
    /// A password for `root`, set at start-up. While none is set (here or by `ALTER USER`),
    /// root may connect from loopback without a password.
    pub root_password: Option<String>,
    /// Per-user request rate limit for `/v1/api/sql`: tokens refilled per second (None = off).
    /// Over the limit a request gets 429 `RATE_LIMIT_EXCEEDED`.
    pub rate_limit_per_sec: Option<f64>,
    /// Token bucket size (the burst a user may send at once) when the rate limit is on.
    pub rate_limit_burst: u32,
    /// Seconds between background maintenance passes (flush policies, STREAM TTL eviction,
    /// tombstone retention).
    pub maintenance_interval_secs: u64,
    /// Longest a statement may run, in milliseconds (default 30,000); then it is cancelled with
    /// `LIMIT_EXCEEDED`. `SET statement_timeout` may lower it for one request.
    pub statement_timeout_ms: u64,
    /// Memory one statement's DataFusion operators may reserve, in bytes (default 1 GiB); sorts,
    /// joins and aggregates over it fail with `LIMIT_EXCEEDED` (nothing spills to disk).
    pub statement_memory_bytes: u64,
    /// Rows one statement may return (default 100,000).
    pub max_result_rows: u64,
    /// Bytes of Arrow data one statement may return (default 64 MiB).
    pub max_result_bytes: u64,
    /// Deepest expression/nesting a statement may have (default 256): parentheses, operator
    /// chains, set-operation and join chains and CTEs, estimated from the tokens before parsing; see `sql::complexity`.
    pub max_expression_depth: u64,
    /// Seconds a client has to send a whole request body (default 30).
    pub request_body_timeout_secs: u64,
    /// The HS256 signing secret of login tokens (SPEC section 7). None: a random secret is
    /// generated on first start and kept in the data directory (RocksDB metadata), so tokens
    /// survive restarts.
    pub jwt_secret: Option<String>,
    /// Lifetime of a login token, in seconds (default 3600; `expires_in` of the login answer).
    pub jwt_expiry_secs: u64,
    /// Messages one WebSocket connection may have waiting to be sent (default 1024). A client
    /// that falls this far behind is sent an error and disconnected; writers never wait for it.
    pub live_queue_messages: usize,
    /// Subscriptions one WebSocket connection may hold at once (default 4096).
    pub max_subscriptions_per_connection: usize,
    /// Rows one flushed Parquet file holds at most (default 1,048,576; at most 2^32 - 1, the
    /// row numbers of the primary-key index). A partition with more hot rows flushes into
    /// several files; a flush keeps one file's row keys in memory.
    pub flush_file_rows: u64,
    /// Bytes after which a flushed Parquet file is closed and the next one started (default
    /// 256 MiB; checked between batches of 8,192 rows, so a file may exceed it by one batch).
    pub flush_file_bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data"),
            bind: "127.0.0.1:8080".to_string(),
            sync_writes: false,
            max_sql_bytes: 1024 * 1024,
            root_password: None,
            maintenance_interval_secs: 5,
            rate_limit_per_sec: None,
            rate_limit_burst: 100,
            statement_timeout_ms: 30_000,
            statement_memory_bytes: 1 << 30,
            max_result_rows: 100_000,
            max_result_bytes: 64 << 20,
            max_expression_depth: 256,
            request_body_timeout_secs: 30,
            jwt_secret: None,
            jwt_expiry_secs: 3600,
            live_queue_messages: 1024,
            max_subscriptions_per_connection: 4096,
            flush_file_rows: 1 << 20,
            flush_file_bytes: 256 << 20,
        }
    }
}

/// Longest a login token may live: one year, in seconds.
pub const MAX_TOKEN_SECS: u64 = 366 * 86_400;

/// The per-statement limits in force for one statement (docs/limits.md): the server's
/// configuration, lowered by the request's `SET` statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock budget, milliseconds.
    pub statement_timeout_ms: u64,
    /// DataFusion memory pool size, bytes.
    pub statement_memory_bytes: u64,
    /// Rows returned, at most.
    pub max_result_rows: u64,
    /// Bytes of Arrow data returned, at most.
    pub max_result_bytes: u64,
}

impl Limits {
    /// Each limit the smaller of `self`'s and `other`'s.
    pub fn narrowed_by(self, other: &Limits) -> Limits {
        Limits {
            statement_timeout_ms: self.statement_timeout_ms.min(other.statement_timeout_ms),
            statement_memory_bytes: self
                .statement_memory_bytes
                .min(other.statement_memory_bytes),
            max_result_rows: self.max_result_rows.min(other.max_result_rows),
            max_result_bytes: self.max_result_bytes.min(other.max_result_bytes),
        }
    }
}

/// A limit that a request may lower with `SET name = value` (PostgreSQL's `SET`, scoped to the
/// rest of the request like `USE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Setting {
    /// `statement_timeout` / `statement_timeout_ms` (milliseconds; `'2s'`, `'500ms'`, `'1min'`).
    StatementTimeout,
    /// `statement_memory_bytes` (bytes; `'64MB'`, `'1GB'`).
    StatementMemory,
    /// `max_result_rows`.
    MaxResultRows,
    /// `max_result_bytes` (bytes; `'1MB'`).
    MaxResultBytes,
}

impl Setting {
    /// Every setting, in `SHOW` order.
    pub const ALL: [Setting; 4] = [
        Setting::StatementTimeout,
        Setting::StatementMemory,
        Setting::MaxResultRows,
        Setting::MaxResultBytes,
    ];

    /// The setting named `name` (case-insensitive), if any.
    pub fn from_name(name: &str) -> Option<Setting> {
        match name.to_ascii_lowercase().as_str() {
            "statement_timeout" | "statement_timeout_ms" => Some(Setting::StatementTimeout),
            "statement_memory_bytes" => Some(Setting::StatementMemory),
            "max_result_rows" => Some(Setting::MaxResultRows),
            "max_result_bytes" => Some(Setting::MaxResultBytes),
            _ => None,
        }
    }

    /// The config key (also accepted by `SET`).
    pub fn key(&self) -> &'static str {
        match self {
            Setting::StatementTimeout => "statement_timeout_ms",
            Setting::StatementMemory => "statement_memory_bytes",
            Setting::MaxResultRows => "max_result_rows",
            Setting::MaxResultBytes => "max_result_bytes",
        }
    }

    /// Reads this setting from `limits`.
    pub fn get(&self, limits: &Limits) -> u64 {
        match self {
            Setting::StatementTimeout => limits.statement_timeout_ms,
            Setting::StatementMemory => limits.statement_memory_bytes,
            Setting::MaxResultRows => limits.max_result_rows,
            Setting::MaxResultBytes => limits.max_result_bytes,
        }
    }

    fn slot<'a>(&self, limits: &'a mut Limits) -> &'a mut u64 {
        match self {
            Setting::StatementTimeout => &mut limits.statement_timeout_ms,
            Setting::StatementMemory => &mut limits.statement_memory_bytes,
            Setting::MaxResultRows => &mut limits.max_result_rows,
            Setting::MaxResultBytes => &mut limits.max_result_bytes,
        }
    }

    /// Parses a `SET` value: a whole number, or for durations `n ms|s|min|h` and for sizes
    /// `n B|kB|MB|GB` (1024-based, as PostgreSQL reads memory settings), quoted or not.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for anything else, 0, or a value that overflows.
    pub fn parse_value(&self, raw: &str) -> Result<u64> {
        let text = raw.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let bad = || {
            Error::InvalidParameter(format!(
                "invalid value '{raw}' for {}: expected {}",
                self.key(),
                match self {
                    Setting::StatementTimeout => "milliseconds or a duration such as '2s'",
                    Setting::MaxResultRows => "a whole number of rows",
                    _ => "bytes or a size such as '64MB'",
                }
            ))
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        let unit = unit.trim().to_ascii_lowercase();
        let mult: u64 = match (self, unit.as_str()) {
            (_, "") => 1,
            (Setting::StatementTimeout, "ms") => 1,
            (Setting::StatementTimeout, "s") => 1_000,
            (Setting::StatementTimeout, "min") => 60_000,
            (Setting::StatementTimeout, "h") => 3_600_000,
            (Setting::StatementMemory | Setting::MaxResultBytes, "b") => 1,
            (Setting::StatementMemory | Setting::MaxResultBytes, "kb") => 1 << 10,
            (Setting::StatementMemory | Setting::MaxResultBytes, "mb") => 1 << 20,
            (Setting::StatementMemory | Setting::MaxResultBytes, "gb") => 1 << 30,
            _ => return Err(bad()),
        };
        match n.checked_mul(mult) {
            Some(v) if v > 0 => Ok(v),
            _ => Err(bad()),
        }
    }

    /// Lowers this setting in `limits` to `value`.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] when `value` exceeds the current value: a request may only
    /// tighten the server's limits.
    pub fn lower(&self, limits: &mut Limits, value: u64) -> Result<()> {
        let slot = self.slot(limits);
        if value > *slot {
            return Err(Error::PermissionDenied(format!(
                "{} can only be lowered: {value} exceeds the limit in force ({})",
                self.key(),
                *slot
            )));
        }
        *slot = value;
        Ok(())
    }
}

impl Config {
    /// Checks `sql` against `max_sql_bytes` (a request's SQL, or a subscription's SELECT).
    ///
    /// # Errors
    /// [`Error::PayloadTooLarge`] naming both sizes.
    pub fn check_sql_bytes(&self, sql: &str) -> Result<()> {
        if sql.len() > self.max_sql_bytes {
            return Err(Error::PayloadTooLarge(format!(
                "SQL is {} bytes; the limit is {} bytes",
                sql.len(),
                self.max_sql_bytes
            )));
        }
        Ok(())
    }

    /// The per-statement limits this configuration sets.
    pub fn limits(&self) -> Limits {
        Limits {
            statement_timeout_ms: self.statement_timeout_ms,
            statement_memory_bytes: self.statement_memory_bytes,
            max_result_rows: self.max_result_rows,
            max_result_bytes: self.max_result_bytes,
        }
    }

    /// A default config with data in `dir` (used by tests).
    pub fn with_data_dir(dir: impl Into<PathBuf>) -> Config {
        Config {
            data_dir: dir.into(),
            ..Config::default()
        }
    }

    /// Loads `path` if given (TOML with the field names above), then applies `KALAMDB_DATA_DIR`,
    /// `KALAMDB_BIND`, `KALAMDB_SYNC_WRITES`, `KALAMDB_MAX_SQL_BYTES`, `KALAMDB_ROOT_PASSWORD`,
    /// `KALAMDB_JWT_SECRET`, `KALAMDB_JWT_EXPIRY_SECS` and `KALAMDB_<KEY>` for every limit of
    /// `docs/limits.md`, then checks the values.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for an unreadable file, bad TOML, a bad variable value, or a
    /// limit of 0.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let mut config = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    Error::InvalidParameter(format!("cannot read config {}: {e}", p.display()))
                })?;
                toml::from_str(&text).map_err(|e| {
                    Error::InvalidParameter(format!("invalid config {}: {e}", p.display()))
                })?
            }
            None => Config::default(),
        };
        config.apply_env(|k| std::env::var(k).ok())?;
        config.validate()?;
        Ok(config)
    }

    /// Checks that every limit is at least 1 (a limit of 0 would refuse every statement) and
    /// that a rate limit, if set, is a positive number.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the first bad value.
    pub fn validate(&self) -> Result<()> {
        for (key, v) in [
            ("max_sql_bytes", self.max_sql_bytes as u64),
            ("statement_timeout_ms", self.statement_timeout_ms),
            ("statement_memory_bytes", self.statement_memory_bytes),
            ("max_result_rows", self.max_result_rows),
            ("max_result_bytes", self.max_result_bytes),
            ("max_expression_depth", self.max_expression_depth),
            ("request_body_timeout_secs", self.request_body_timeout_secs),
            ("maintenance_interval_secs", self.maintenance_interval_secs),
            ("jwt_expiry_secs", self.jwt_expiry_secs),
            ("live_queue_messages", self.live_queue_messages as u64),
            (
                "max_subscriptions_per_connection",
                self.max_subscriptions_per_connection as u64,
            ),
            ("flush_file_rows", self.flush_file_rows),
            ("flush_file_bytes", self.flush_file_bytes),
        ] {
            if v == 0 {
                return Err(Error::InvalidParameter(format!(
                    "config {key} must be at least 1"
                )));
            }
        }
        if self.flush_file_rows > u64::from(u32::MAX) {
            return Err(Error::InvalidParameter(format!(
                "config flush_file_rows must be at most {}",
                u32::MAX
            )));
        }
        if self.jwt_expiry_secs > MAX_TOKEN_SECS {
            return Err(Error::InvalidParameter(format!(
                "config jwt_expiry_secs must be at most {MAX_TOKEN_SECS} (one year)"
            )));
        }
        if self.jwt_secret.as_ref().is_some_and(|s| s.len() < 32) {
            return Err(Error::InvalidParameter(
                "config jwt_secret must be at least 32 bytes long".into(),
            ));
        }
        if let Some(r) = self.rate_limit_per_sec
            && !(r.is_finite() && r > 0.0)
        {
            return Err(Error::InvalidParameter(format!(
                "config rate_limit_per_sec must be a positive number, got {r}"
            )));
        }
        if self.rate_limit_per_sec.is_some() && self.rate_limit_burst == 0 {
            return Err(Error::InvalidParameter(
                "config rate_limit_burst must be at least 1".into(),
            ));
        }
        Ok(())
    }

    fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<()> {
        fn parse<T: std::str::FromStr>(key: &str, v: &str) -> Result<T> {
            v.parse()
                .map_err(|_| Error::InvalidParameter(format!("invalid value for {key}: '{v}'")))
        }
        if let Some(v) = get("KALAMDB_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = get("KALAMDB_BIND") {
            self.bind = v;
        }
        if let Some(v) = get("KALAMDB_SYNC_WRITES") {
            self.sync_writes = parse("KALAMDB_SYNC_WRITES", &v)?;
        }
        if let Some(v) = get("KALAMDB_MAX_SQL_BYTES") {
            self.max_sql_bytes = parse("KALAMDB_MAX_SQL_BYTES", &v)?;
        }
        if let Some(v) = get("KALAMDB_ROOT_PASSWORD") {
            self.root_password = Some(v);
        }
        if let Some(v) = get("KALAMDB_JWT_SECRET") {
            self.jwt_secret = Some(v);
        }
        if let Some(v) = get("KALAMDB_LIVE_QUEUE_MESSAGES") {
            self.live_queue_messages = parse("KALAMDB_LIVE_QUEUE_MESSAGES", &v)?;
        }
        if let Some(v) = get("KALAMDB_MAX_SUBSCRIPTIONS_PER_CONNECTION") {
            self.max_subscriptions_per_connection =
                parse("KALAMDB_MAX_SUBSCRIPTIONS_PER_CONNECTION", &v)?;
        }
        for (key, slot) in [
            (
                "KALAMDB_STATEMENT_TIMEOUT_MS",
                &mut self.statement_timeout_ms,
            ),
            (
                "KALAMDB_STATEMENT_MEMORY_BYTES",
                &mut self.statement_memory_bytes,
            ),
            ("KALAMDB_MAX_RESULT_ROWS", &mut self.max_result_rows),
            ("KALAMDB_MAX_RESULT_BYTES", &mut self.max_result_bytes),
            (
                "KALAMDB_MAX_EXPRESSION_DEPTH",
                &mut self.max_expression_depth,
            ),
            (
                "KALAMDB_REQUEST_BODY_TIMEOUT_SECS",
                &mut self.request_body_timeout_secs,
            ),
            ("KALAMDB_JWT_EXPIRY_SECS", &mut self.jwt_expiry_secs),
            ("KALAMDB_FLUSH_FILE_ROWS", &mut self.flush_file_rows),
            ("KALAMDB_FLUSH_FILE_BYTES", &mut self.flush_file_bytes),
        ] {
            if let Some(v) = get(key) {
                *slot = parse(key, &v)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_file_values() {
        let mut c: Config = toml::from_str("bind = \"0.0.0.0:9\"\nsync_writes = false").unwrap();
        c.apply_env(|k| match k {
            "KALAMDB_SYNC_WRITES" => Some("true".into()),
            "KALAMDB_MAX_SQL_BYTES" => Some("10".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.bind, "0.0.0.0:9");
        assert!(c.sync_writes);
        assert_eq!(c.max_sql_bytes, 10);
        let bad = c.apply_env(|k| (k == "KALAMDB_SYNC_WRITES").then(|| "maybe".into()));
        assert_eq!(bad.unwrap_err().code(), "INVALID_PARAMETER");
    }

    #[test]
    fn limits_must_be_usable() {
        let mut c = Config::default();
        assert!(c.validate().is_ok());
        c.statement_timeout_ms = 0;
        assert_eq!(c.validate().unwrap_err().code(), "INVALID_PARAMETER");
        let mut c = Config {
            rate_limit_per_sec: Some(f64::NAN),
            ..Config::default()
        };
        assert!(c.validate().is_err());
        c.rate_limit_per_sec = Some(-1.0);
        assert!(c.validate().is_err());
        c.rate_limit_per_sec = Some(10.0);
        assert!(c.validate().is_ok());
        let bad = c.apply_env(|k| (k == "KALAMDB_MAX_RESULT_ROWS").then(|| "-5".into()));
        assert_eq!(bad.unwrap_err().code(), "INVALID_PARAMETER");
        // Flush file sizes: at least 1, and rows within the index's u32 row numbers.
        for (rows, bytes, ok) in [
            (0, 1, false),
            (1, 0, false),
            (1, 1, true),
            (u64::from(u32::MAX), u64::MAX, true),
            (u64::from(u32::MAX) + 1, 1, false),
        ] {
            let c = Config {
                flush_file_rows: rows,
                flush_file_bytes: bytes,
                ..Config::default()
            };
            assert_eq!(c.validate().is_ok(), ok, "rows {rows}, bytes {bytes}");
        }
        let mut c = Config::default();
        let env = |k: &str| match k {
            "KALAMDB_FLUSH_FILE_ROWS" => Some("1000".to_string()),
            "KALAMDB_FLUSH_FILE_BYTES" => Some("-1".to_string()),
            _ => None,
        };
        assert_eq!(c.apply_env(env).unwrap_err().code(), "INVALID_PARAMETER");
        assert_eq!(c.flush_file_rows, 1000);
    }

    #[test]
    fn settings_parse_units_and_only_lower() {
        let s = Setting::StatementTimeout;
        assert_eq!(s.parse_value("2s").unwrap(), 2000);
        assert_eq!(s.parse_value("'1min'").ok(), None);
        assert_eq!(s.parse_value("1min").unwrap(), 60_000);
        assert_eq!(
            Setting::MaxResultBytes.parse_value("64MB").unwrap(),
            64 << 20
        );
        assert!(Setting::MaxResultRows.parse_value("0").is_err());
        assert!(
            Setting::StatementMemory
                .parse_value("99999999999999GB")
                .is_err()
        );
        let mut l = Config::default().limits();
        s.lower(&mut l, 10).unwrap();
        assert_eq!(l.statement_timeout_ms, 10);
        assert_eq!(s.lower(&mut l, 11).unwrap_err().code(), "PERMISSION_DENIED");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(toml::from_str::<Config>("bogus = 1").is_err());
    }
}
