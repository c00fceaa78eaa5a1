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

/// Settings for sending, resolved from `segd.toml` and the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryConfig {
    /// Where `.eml` files go when no SMTP server is configured.
    pub outbox_dir: std::path::PathBuf,
    /// `smtp://` or `smtps://`; may hold credentials (from the environment only).
    pub smtp_url: Option<String>,
    pub smtp_user: Option<String>,
    pub smtp_password: Option<String>,
    pub concurrency: u32,
    /// The delay before each attempt: the first is the first attempt's.
    pub retry_schedule: Vec<std::time::Duration>,
    pub lease: std::time::Duration,
}

pub const DEFAULT_RETRY_SCHEDULE: &str = "0s,5s,5m,30m,2h,5h,10h,10h";

/// Resolves the delivery settings; `env` reads an environment variable. Errors
/// name the variable.
pub fn delivery(
    file: &FileSettings,
    dir: &std::path::Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<DeliveryConfig, String> {
    let env = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    let durations = |name: &str, text: &str| -> Result<Vec<std::time::Duration>, String> {
        text.split(',')
            .map(|p| {
                Duration::parse_allow_zero(p)
                    .map(Duration::std)
                    .map_err(|e| format!("{name}: `{}`: {e}", p.trim()))
            })
            .collect()
    };
    let concurrency = match env("SEGD_DELIVERY_CONCURRENCY") {
        Some(v) => v
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| format!("SEGD_DELIVERY_CONCURRENCY: `{v}` is not a whole number ≥ 1"))?,
        None => file.delivery.concurrency.unwrap_or(16),
    };
    let retry_schedule = match env("SEGD_RETRY_SCHEDULE") {
        Some(v) => durations("SEGD_RETRY_SCHEDULE", &v)?,
        None => match &file.delivery.retry_schedule {
            Some(s) => s.clone(),
            None => durations("default retry schedule", DEFAULT_RETRY_SCHEDULE)?,
        },
    };
    let lease = match env("SEGD_DELIVERY_LEASE") {
        Some(v) => Duration::parse(&v)
            .map(Duration::std)
            .map_err(|e| format!("SEGD_DELIVERY_LEASE: `{v}`: {e}"))?,
        None => file
            .delivery
            .lease
            .map_or(std::time::Duration::from_secs(60), Duration::std),
    };
    let outbox_dir = env("SEGD_OUTBOX_DIR")
        .or_else(|| file.outbox_dir.clone())
        .map_or_else(
            || dir.join("outbox"),
            |p| {
                let p = std::path::PathBuf::from(p);
                if p.is_absolute() { p } else { dir.join(p) }
            },
        );
    let smtp_url = env("SEGD_SMTP_URL").or_else(|| file.smtp_url.clone());
    if let Some(u) = &smtp_url {
        let scheme = u.split_once("://").map(|(s, _)| s).unwrap_or_default();
        if scheme != "smtp" && scheme != "smtps" {
            return Err("SEGD_SMTP_URL: use smtp://HOST[:PORT] or smtps://HOST[:PORT]".into());
        }
    }
    Ok(DeliveryConfig {
        outbox_dir,
        smtp_url,
        smtp_user: env("SEGD_SMTP_USER"),
        smtp_password: env("SEGD_SMTP_PASSWORD"),
        concurrency,
        retry_schedule,
        lease,
    })
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
