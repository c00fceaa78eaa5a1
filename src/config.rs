//! Settings (SPEC §7): `segd.toml`, overridden by the environment, overridden by
//! flags. The file part is validated with the definitions; merging is pure and
//! takes the environment as a map.

use crate::model::Duration;
use std::net::SocketAddr;

/// What `segd.toml` holds; every field optional.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileSettings {
    pub database_url: Option<String>,
    pub listen: Option<SocketAddr>,
    pub resync: Option<Duration>,
    pub outbox_dir: Option<String>,
    pub smtp_url: Option<String>,
    pub delivery: DeliverySettings,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliverySettings {
    pub concurrency: Option<u32>,
    pub retry_schedule: Option<Vec<std::time::Duration>>,
    pub lease: Option<Duration>,
}

pub const DEFAULT_DATABASE_URL: &str = "sqlite://segd.db";

/// The database URL: `--database-url`, else `SEGD_DATABASE_URL`, else
/// `segd.toml`, else the embedded SQLite default.
pub fn database_url(file: &FileSettings, env: Option<String>, flag: Option<String>) -> String {
    flag.or(env.filter(|s| !s.is_empty()))
        .or_else(|| file.database_url.clone())
        .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_env_override_file() {
        let file = FileSettings {
            database_url: Some("sqlite://file.db".into()),
            ..FileSettings::default()
        };
        assert_eq!(database_url(&file, None, None), "sqlite://file.db");
        assert_eq!(
            database_url(&file, Some("sqlite://env.db".into()), None),
            "sqlite://env.db"
        );
        assert_eq!(
            database_url(
                &file,
                Some("sqlite://env.db".into()),
                Some("sqlite://flag.db".into())
            ),
            "sqlite://flag.db"
        );
        assert_eq!(
            database_url(&FileSettings::default(), None, None),
            DEFAULT_DATABASE_URL
        );
    }
}
