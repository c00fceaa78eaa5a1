//! Settings (SPEC §7): `segd.toml`, overridden by the environment, overridden by
//! flags. The file part is validated with the definitions; merging is pure and
//! takes the environment as a map.

use crate::model::Duration;
use std::net::SocketAddr;

/// What `segd.toml` holds; every field optional. Its `Debug` shows URLs through
/// [`redact_url`].
#[derive(Clone, Default, PartialEq)]
pub struct FileSettings {
    pub database_url: Option<String>,
    pub listen: Option<SocketAddr>,
    pub resync: Option<Duration>,
    pub outbox_dir: Option<String>,
    pub smtp_url: Option<String>,
    /// The most a definition file or template may hold.
    pub max_file_bytes: Option<u64>,
    pub delivery: DeliverySettings,
    /// `[console] size_retention`: how long segment size samples are kept.
    pub size_retention: Option<Duration>,
}

/// The default of `max_file_bytes`, and the cap of `segd.toml` itself: 1 MiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 1024 * 1024;
/// The range of `max_file_bytes`: 1 KiB to 64 MiB.
pub const MAX_FILE_BYTES_RANGE: std::ops::RangeInclusive<u64> = 1024..=64 * 1024 * 1024;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliverySettings {
    pub concurrency: Option<u32>,
    pub retry_schedule: Option<Vec<std::time::Duration>>,
    pub lease: Option<Duration>,
}

impl std::fmt::Debug for FileSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSettings")
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("listen", &self.listen)
            .field("resync", &self.resync)
            .field("outbox_dir", &self.outbox_dir)
            .field("smtp_url", &self.smtp_url.as_deref().map(redact_url))
            .field("delivery", &self.delivery)
            .field("size_retention", &self.size_retention)
            .finish()
    }
}

/// Whether a name — a key in a TOML file, a URL's query parameter, the key of a
/// line shown in a diagnostic — names a secret (any case; `-` counts as `_`):
/// it holds `password`, `passwd`, `secret`, `token`, `apikey`, `credential`,
/// `signature` or `authorization`, or has a word `pass`, `pwd`, `key`, `auth` or
/// `sig` (`smtp_pass`, `private_key`, `api-key`, `X-Amz-Signature`). File-path
/// settings (`sslkey`, `ssl-key`, `sslcert`, `sslrootcert`), `secret_env` (the
/// name of a variable) and the SMTP URL's `allow_plaintext_auth` flag are not
/// secrets.
pub fn is_secret_name(name: &str) -> bool {
    let name = name.trim().to_ascii_lowercase().replace('-', "_");
    const NOT_SECRET: &[&str] = &[
        "sslkey",
        "ssl_key",
        "sslcert",
        "ssl_cert",
        "sslrootcert",
        "ssl_root_cert",
        "secret_env",
        "allow_plaintext_auth",
    ];
    const WITHIN: &[&str] = &[
        "password",
        "passwd",
        "secret",
        "token",
        "apikey",
        "credential",
        "signature",
        "authorization",
    ];
    const WORDS: &[&str] = &["pass", "pwd", "key", "auth", "sig"];
    !NOT_SECRET.contains(&name.as_str())
        && (WITHIN.iter().any(|w| name.contains(w)) || name.split('_').any(|w| WORDS.contains(&w)))
}

/// Whether a URL holds a secret: a password in its user info, or a query
/// parameter [`is_secret_name`] names.
pub fn url_holds_secret(url: &url::Url) -> bool {
    url.password().is_some() || url.query_pairs().any(|(k, _)| is_secret_name(&k))
}

/// A URL fit to show: its user info's password and the values of secret query
/// parameters become `***`. Every URL segd prints or logs goes through this.
///
/// When the parser's reading cannot be trusted to have found the password,
/// less is shown: text that is not a URL (or holds whitespace, as libpq's
/// `host=… password=…` form does) shows only its scheme; a URL with an `@` the
/// parser did not take as the end of its user info (an unencoded `/`, `?` or `#`
/// in the password, or no `//`) shows only what follows its last `@`, up to
/// any query.
pub fn redact_url(text: &str) -> String {
    let text = text.trim();
    let parsed = url::Url::parse(text)
        .ok()
        .filter(|_| !text.contains(char::is_whitespace));
    let Some(mut url) = parsed else {
        return match text.split_once(':') {
            Some((scheme, _)) if is_scheme(scheme) => format!("{scheme}:<not a URL>"),
            _ => "<not a URL>".to_string(),
        };
    };
    let rest = &text[url.scheme().len() + 1..];
    if let Some((_, tail)) = rest.rsplit_once('@') {
        // The last `@` ends the user info when what follows it is the rest of
        // the URL as parsed.
        let mut bare = url.clone();
        let _ = bare.set_username("");
        let _ = bare.set_password(None);
        let slashes = if rest.starts_with("//") { "//" } else { "" };
        let trusted =
            url::Url::parse(&format!("{}:{slashes}{tail}", url.scheme())).is_ok_and(|t| t == bare);
        if !trusted {
            let shown = tail
                .split(['?', '#', '&', ';', '='])
                .next()
                .unwrap_or_default();
            let cut = if shown.len() < tail.len() { "?***" } else { "" };
            return format!("{}:{slashes}***@{shown}{cut}", url.scheme());
        }
    }
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    if url.query_pairs().any(|(k, _)| is_secret_name(&k)) {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_secret_name(&k) {
                    "***".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

/// A URL scheme's form: a letter, then letters, digits, `+`, `-` or `.`.
fn is_scheme(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

pub const DEFAULT_DATABASE_URL: &str = "sqlite://segd.db";

/// The database URL: `--database-url`, else `SEGD_DATABASE_URL`, else
/// `segd.toml`, else the embedded SQLite default.
pub fn database_url(file: &FileSettings, env: Option<String>, flag: Option<String>) -> String {
    flag.or(env.filter(|s| !s.is_empty()))
        .or_else(|| file.database_url.clone())
        .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string())
}

/// Settings for sending, resolved from `segd.toml` and the environment. Its
/// `Debug` shows the SMTP URL through [`redact_url`] and no password.
#[derive(Clone, PartialEq)]
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
    /// Settings allowed but unwise, for the edge to show.
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for DeliveryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryConfig")
            .field("outbox_dir", &self.outbox_dir)
            .field("smtp_url", &self.smtp_url.as_deref().map(redact_url))
            .field("smtp_user", &self.smtp_user)
            .field("smtp_password", &self.smtp_password.as_ref().map(|_| "***"))
            .field("concurrency", &self.concurrency)
            .field("retry_schedule", &self.retry_schedule)
            .field("lease", &self.lease)
            .field("warnings", &self.warnings)
            .finish()
    }
}

/// A delivery lease shorter than this is allowed with a warning: a claimed row
/// is someone else's to take once its lease ends, so the lease should outlast
/// a request (a webhook's default timeout is 15 s) and a renewal stalled behind
/// another writer (SQLite's busy timeout is 10 s). A sender never starts a row
/// whose lease has run out, whatever the lease.
pub const SHORT_LEASE: std::time::Duration = std::time::Duration::from_secs(30);

/// Deliveries sent at once by one process, unless set.
pub const DEFAULT_CONCURRENCY: u32 = 16;

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
        None => file.delivery.concurrency.unwrap_or(DEFAULT_CONCURRENCY),
    };
    let retry_schedule = match env("SEGD_RETRY_SCHEDULE") {
        Some(v) => durations("SEGD_RETRY_SCHEDULE", &v)?,
        None => match &file.delivery.retry_schedule {
            Some(s) => s.clone(),
            None => durations("default retry schedule", DEFAULT_RETRY_SCHEDULE)?,
        },
    };
    let (lease, lease_from) = match env("SEGD_DELIVERY_LEASE") {
        Some(v) => (
            Duration::parse(&v)
                .map(Duration::std)
                .map_err(|e| format!("SEGD_DELIVERY_LEASE: `{v}`: {e}"))?,
            "SEGD_DELIVERY_LEASE",
        ),
        None => (
            file.delivery
                .lease
                .map_or(std::time::Duration::from_secs(60), Duration::std),
            "delivery.lease",
        ),
    };
    let mut warnings = Vec::new();
    if lease < SHORT_LEASE {
        warnings.push(format!(
            "{lease_from}: a lease of {lease:?} is shorter than {SHORT_LEASE:?}: a request still \
             in flight when it ends may be sent again by another sender"
        ));
    }
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
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_hides_passwords_and_secret_params() {
        for (url, shown) in [
            (
                "postgres://u:pw-marker@db:5432/segd?sslmode=require&password=q-marker",
                "postgres://u:***@db:5432/segd?sslmode=require&password=***",
            ),
            (
                "postgres://db/segd?SSLPassword=q-marker&Access_Token=t-marker&api-key=k",
                "postgres://db/segd?SSLPassword=***&Access_Token=***&api-key=***",
            ),
            (
                "https://h.test/x?Token=t-marker",
                "https://h.test/x?Token=***",
            ),
            ("sqlite://segd.db", "sqlite://segd.db"),
            (
                "postgres://db/segd?sslkey=/k.pem",
                "postgres://db/segd?sslkey=/k.pem",
            ),
            ("not a url:pw-marker@host?password=q-marker", "<not a URL>"),
            // No `//`: the scheme's opaque path holds the user info.
            ("segd:pw-marker@db/segd", "segd:***@db/segd"),
            // libpq's key/value form.
            ("host=db password=pw-marker dbname=x", "<not a URL>"),
            (
                "postgres:host=db password=pw-marker",
                "postgres:<not a URL>",
            ),
            ("postgres://u:pw-marker@[::1/segd", "postgres:<not a URL>"),
            // An unencoded `/`, `?` or `#` in the password ends the host early.
            (
                "postgres://u:1234/pw-marker@db/segd",
                "postgres://***@db/segd",
            ),
            (
                "postgres://u:1234?pw-marker@db/segd?sslmode=require",
                "postgres://***@db/segd?***",
            ),
            (
                "postgres://u:12#pw-marker@db/segd",
                "postgres://***@db/segd",
            ),
            (
                "postgres://u:p@ss-marker@db/segd",
                "postgres://u:***@db/segd",
            ),
            // An `@` in the query: only what follows it, up to any parameter.
            (
                "https://h.test/x?to=a@b.test&token=t-marker",
                "https://***@b.test?***",
            ),
            (
                "https://u:pw-marker@h.test/x?sig=s-marker",
                "https://u:***@h.test/x?sig=***",
            ),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn one_predicate_names_secrets() {
        for name in [
            "password",
            "sslpassword",
            "SSLPassword",
            "pwd",
            "smtp_pass",
            "private_key",
            "secret_key",
            "api-key",
            "ApiKey",
            "access_token",
            "X-Amz-Signature",
            "X-Goog-Signature",
            "x-goog-credential",
            "sig",
            "auth",
            "authorization",
            "webhook_secret",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in [
            "sslkey",
            "ssl-key",
            "sslcert",
            "ssl-cert",
            "sslrootcert",
            "ssl-root-cert",
            "secret_env",
            "allow_plaintext_auth",
            "sslmode",
            "author",
            "monkey",
            "keyspace",
            "application_name",
        ] {
            assert!(!is_secret_name(name), "{name}");
        }
    }

    #[test]
    fn debug_forms_hold_no_secret() {
        let file = FileSettings {
            database_url: Some("postgres://u:db-marker@h/d?password=q-marker".into()),
            smtp_url: Some("smtp://u:smtp-marker@h?token=t-marker".into()),
            ..FileSettings::default()
        };
        let env = |k: &str| match k {
            "SEGD_SMTP_PASSWORD" => Some("pw-marker".to_string()),
            "SEGD_SMTP_USER" => Some("mailer".to_string()),
            _ => None,
        };
        let delivery = delivery(&file, std::path::Path::new("."), &env).unwrap_or_else(|e| {
            panic!("{e}");
        });
        assert_eq!(delivery.smtp_password.as_deref(), Some("pw-marker"));
        let shown = format!("{file:?} {file:#?} {delivery:?} {delivery:#?}");
        for marker in [
            "db-marker",
            "q-marker",
            "smtp-marker",
            "t-marker",
            "pw-marker",
        ] {
            assert!(!shown.contains(marker), "{marker} in {shown}");
        }
        assert!(
            shown.contains("mailer") && shown.contains("smtp://u:***@h"),
            "{shown}"
        );
    }

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
