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
