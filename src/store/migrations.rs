//! Both backends' migrations, embedded in the binary. `migrations/sqlite/` and
//! `migrations/postgres/` hold the same file names, `<version>_<description>.sql`;
//! a new migration is one more line below (a test checks the list against the
//! folders).

use sqlx::SqlSafeStr as _;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// Each listed migration's SQL, per backend, as (version, file name, SQL).
macro_rules! embed {
    ($($version:literal => $name:literal,)*) => {
        const SQLITE: &[(i64, &str, &str)] = &[$((
            $version,
            $name,
            include_str!(concat!("../../migrations/sqlite/", $name, ".sql")),
        ),)*];
        const POSTGRES: &[(i64, &str, &str)] = &[$((
            $version,
            $name,
            include_str!(concat!("../../migrations/postgres/", $name, ".sql")),
        ),)*];
    };
}

embed! {
    1 => "0001_init",
    2 => "0002_outbox",
    3 => "0003_unpaid_invoice_indexes",
    4 => "0004_revision",
    5 => "0005_outbox_key_from_run",
    6 => "0006_outbox_rows_name_their_run",
    7 => "0007_runs_find_their_rows",
    8 => "0008_unreachable_and_released_runs",
    9 => "0009_segment_sizes",
    10 => "0010_covering_indexes",
    11 => "0011_customer_prefix_indexes",
    12 => "0012_customer_key_covering_indexes",
    13 => "0013_folded_name_statistics",
}

pub fn sqlite() -> Migrator {
    migrator(SQLITE)
}

pub fn postgres() -> Migrator {
    migrator(POSTGRES)
}

/// The migrator sqlx's `migrate!` would build from the folder: the description
/// is the file name after the version, `_` read as a space; the checksum (which
/// sqlx compares with the applied migrations) is of the SQL as written.
fn migrator(files: &[(i64, &str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        files
            .iter()
            .map(|&(version, name, sql)| {
                let description = name.split_once('_').map_or(name, |(_, d)| d);
                Migration::new(
                    version,
                    description.replace('_', " ").into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    sql.starts_with("-- no-transaction"),
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// What sqlx reads from a migrations folder, compared field by field.
    async fn matches_folder(embedded: Migrator, folder: &str) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
        let read = Migrator::new(dir.as_path()).await.unwrap();
        let fields = |m: &Migrator| {
            m.iter()
                .map(|m| {
                    (
                        m.version,
                        m.description.to_string(),
                        m.migration_type,
                        m.checksum.to_vec(),
                        m.no_tx,
                        m.sql.as_str().to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(fields(&embedded), fields(&read), "{folder}");
    }

    #[tokio::test]
    async fn embedded_migrations_are_the_folders() {
        matches_folder(sqlite(), "migrations/sqlite").await;
        matches_folder(postgres(), "migrations/postgres").await;
    }
}
