//! `segd.toml` → [`FileSettings`].

use super::SourceFile;
use super::communication::duration;
use super::reader::{Reader, Value, get};
use crate::config::{DeliverySettings, FileSettings, MAX_FILE_BYTES_RANGE};
use crate::diag::Diagnostic;
use toml::de::DeValue;

const ROOT_KEYS: &[&str] = &[
    "database_url",
    "listen",
    "resync",
    "outbox_dir",
    "smtp_url",
    "max_file_bytes",
    "delivery",
    "console",
];
const DELIVERY_KEYS: &[&str] = &["concurrency", "retry_schedule", "lease"];
const CONSOLE_KEYS: &[&str] = &["size_retention"];

pub fn parse(file: &SourceFile, diags: &mut Vec<Diagnostic>) -> FileSettings {
    let mut r = Reader::new(&file.display, &file.text, diags);
    let Some(root) = r.parse() else {
        return FileSettings::default();
    };
    r.unknown_keys(&root, ROOT_KEYS, "segd.toml");
    let mut s = FileSettings {
        database_url: get(&root, "database_url")
            .and_then(|v| url_without_password(&mut r, v, "database_url", "SEGD_DATABASE_URL")),
        smtp_url: get(&root, "smtp_url").and_then(|v| {
            url_without_password(&mut r, v, "smtp_url", "SEGD_SMTP_USER / SEGD_SMTP_PASSWORD")
        }),
        outbox_dir: get(&root, "outbox_dir")
            .and_then(|v| r.str(v, "`outbox_dir`").map(str::to_string)),
        resync: get(&root, "resync").and_then(|v| duration(&mut r, v, "resync")),
        ..FileSettings::default()
    };
    if let Some(v) = get(&root, "listen")
        && let Some(text) = r.str(v, "`listen`")
    {
        match text.parse() {
            Ok(addr) => s.listen = Some(addr),
            Err(_) => r.error_help(
                v.span(),
                format!("invalid `listen` address `{text}`"),
                "write an address and port such as `127.0.0.1:8080`",
            ),
        }
    }
    if let Some(v) = get(&root, "max_file_bytes")
        && let Some(n) = r.int(v, "`max_file_bytes`")
    {
        match u64::try_from(n) {
            Ok(n) if MAX_FILE_BYTES_RANGE.contains(&n) => s.max_file_bytes = Some(n),
            _ => r.error(
                v.span(),
                format!(
                    "`max_file_bytes` must be between {} and {}, found {n}",
                    MAX_FILE_BYTES_RANGE.start(),
                    MAX_FILE_BYTES_RANGE.end()
                ),
            ),
        }
    }
    if let Some(v) = get(&root, "delivery")
        && let Some(t) = r.table(v, "`delivery`")
    {
        r.unknown_keys(t, DELIVERY_KEYS, "`[delivery]`");
        let mut d = DeliverySettings {
            lease: get(t, "lease").and_then(|v| duration(&mut r, v, "delivery.lease")),
            ..DeliverySettings::default()
        };
        if let Some(v) = get(t, "concurrency")
            && let Some(n) = r.int(v, "`delivery.concurrency`")
        {
            match u32::try_from(n) {
                Ok(n) if n >= 1 => d.concurrency = Some(n),
                _ => r.error(
                    v.span(),
                    format!(
                        "`delivery.concurrency` must be between 1 and {}, found {n}",
                        u32::MAX
                    ),
                ),
            }
        }
        if let Some(v) = get(t, "retry_schedule") {
            d.retry_schedule = retry_schedule(&mut r, v);
        }
        s.delivery = d;
    }
    if let Some(v) = get(&root, "console")
        && let Some(t) = r.table(v, "`console`")
    {
        r.unknown_keys(t, CONSOLE_KEYS, "`[console]`");
        s.size_retention =
            get(t, "size_retention").and_then(|v| duration(&mut r, v, "console.size_retention"));
    }
    s
}

/// An array of durations (`"0s"` allowed for "at once"), or one comma-separated string.
fn retry_schedule(r: &mut Reader<'_>, v: &Value<'_>) -> Option<Vec<std::time::Duration>> {
    let items: Vec<(String, std::ops::Range<usize>)> = match v.get_ref() {
        DeValue::String(s) => s
            .split(',')
            .map(|p| (p.trim().to_string(), v.span()))
            .collect(),
        DeValue::Array(a) => {
            let mut out = Vec::new();
            for item in a.iter() {
                out.push((r.str(item, "a retry step")?.to_string(), item.span()));
            }
            out
        }
        _ => {
            r.error(
                v.span(),
                "`delivery.retry_schedule` must be an array of durations such as [\"0s\", \"5s\", \"5m\"], or one string such as \"0s,5s,5m\"",
            );
            return None;
        }
    };
    let mut out = Vec::new();
    for (text, span) in items {
        match crate::model::Duration::parse_allow_zero(&text) {
            Ok(d) => out.push(d.std()),
            Err(e) => {
                r.error(span, format!("invalid retry step `{text}`: {e}"));
                return None;
            }
        }
    }
    if out.is_empty() {
        r.error(
            v.span(),
            "`delivery.retry_schedule` needs at least one step",
        );
        return None;
    }
    Some(out)
}

fn url_without_password(r: &mut Reader<'_>, v: &Value<'_>, key: &str, env: &str) -> Option<String> {
    let s = r.str(v, &format!("`{key}`"))?;
    match url::Url::parse(s) {
        Ok(u) if crate::config::url_holds_secret(&u) => {
            r.secret_error(
                v.span(),
                format!("`{key}` carries a password or token; set it in {env} instead"),
            );
            None
        }
        Ok(_) => Some(s.to_string()),
        Err(e) => {
            r.error(v.span(), format!("invalid `{key}`: {e}"));
            None
        }
    }
}
