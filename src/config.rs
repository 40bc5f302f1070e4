//! Server configuration: defaults that need no file, an optional TOML file, and `KALAMDB_*`
//! environment overrides (SPEC section 8).

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
        }
    }
}

impl Config {
    /// A default config with data in `dir` (used by tests).
    pub fn with_data_dir(dir: impl Into<PathBuf>) -> Config {
        Config {
            data_dir: dir.into(),
            ..Config::default()
        }
    }

    /// Loads `path` if given (TOML with the field names above), then applies `KALAMDB_DATA_DIR`,
    /// `KALAMDB_BIND`, `KALAMDB_SYNC_WRITES`, `KALAMDB_MAX_SQL_BYTES`, `KALAMDB_ROOT_PASSWORD`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for an unreadable file, bad TOML, or a bad variable value.
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
        Ok(config)
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
    fn unknown_keys_are_rejected() {
        assert!(toml::from_str::<Config>("bogus = 1").is_err());
    }
}
