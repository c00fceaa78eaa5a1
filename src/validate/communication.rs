//! `communications.d/*.toml` → [`Communication`].

use super::SourceFile;
use super::reader::{Reader, Value, get, key_span, list};
use super::template::{self, TemplateSource};
use crate::diag::Diagnostic;
use crate::model::destination::refused_host;
use crate::model::{
    Body, Channel, Communication, Delivery, Duration, Email, Event, Name, Schedule, Trigger,
    Webhook,
};
use crate::schedule::{Cadence, cadence};
use chrono::{DateTime, Utc};
use std::ops::Range;
use toml::de::DeTable;

const ROOT_KEYS: &[&str] = &["communication", "trigger", "email", "webhook"];
const COMM_KEYS: &[&str] = &[
    "name",
    "description",
    "segment",
    "event",
    "channel",
    "enabled",
    "min_interval",
    "max_recipients",
    "protect",
];
const TRIGGER_KEYS: &[&str] = &["type", "schedule", "timezone"];
const EMAIL_KEYS: &[&str] = &["from", "subject", "template", "body"];
const WEBHOOK_KEYS: &[&str] = &["url", "secret_env", "timeout"];

/// A communication file's name and its span, the segment it names and where,
/// and the communication when the file is valid.
pub struct Parsed {
    pub name: Name,
    pub name_span: Range<usize>,
    pub segment: Option<(Name, Range<usize>)>,
    pub def: Option<Communication>,
}

/// Parses one communication file; `None` when not even its name could be read.
/// A schedule is judged from `now` (must fire within 5 years, warned when
/// sub-minute); `None` skips that check (a stored definition passed it when
/// it was applied).
pub fn parse(
    file: &SourceFile,
    templates: &dyn TemplateSource,
    now: Option<DateTime<Utc>>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Parsed> {
    let mut template_diags = Vec::new();
    let mut r = Reader::new(&file.display, &file.text, diags);
    let root = r.parse()?;
    r.unknown_keys(&root, ROOT_KEYS, "a communication file");

    let (comm_v, comm, named) = r.header(&root, "communication", COMM_KEYS)?;

    let description =
        get(comm, "description").and_then(|v| r.str(v, "`description`").map(str::to_string));
    let segment = match get(comm, "segment") {
        Some(v) => r.str(v, "`segment`").and_then(|s| match Name::parse(s) {
            Ok(n) => Some((n, v.span())),
            Err(e) => {
                r.error_help(v.span(), format!("invalid segment name `{s}`"), e);
                None
            }
        }),
        None => {
            r.error_help(
                comm_v.span(),
                "`[communication]` needs a `segment`",
                "name the segment to reach: `segment = \"…\"`",
            );
            None
        }
    };
    let event = required(&mut r, comm, comm_v, "event", &Event::ALL).and_then(Event::parse);
    let channel_v = get(comm, "channel");
    let channel = required(&mut r, comm, comm_v, "channel", &Channel::ALL).and_then(Channel::parse);
    let enabled = get(comm, "enabled").map_or(Some(true), |v| r.bool(v, "`enabled`"));
    let protect = get(comm, "protect").map_or(Some(false), |v| r.bool(v, "`protect`"));
    let min_interval =
        optional(get(comm, "min_interval").map(|v| duration(&mut r, v, "min_interval")));
    let max_recipients = optional(get(comm, "max_recipients").map(|v| {
        let n = r.int(v, "`max_recipients`")?;
        if n < 1 {
            r.error(
                v.span(),
                format!("`max_recipients` must be 1 or more, found {n}"),
            );
            return None;
        }
        u64::try_from(n).ok()
    }));

    let trigger = match get(&root, "trigger") {
        Some(v) => r
            .table(v, "`trigger`")
            .and_then(|t| parse_trigger(&mut r, t, v, now)),
        None => {
            r.error_help(
                0..0,
                "missing `[trigger]` table",
                "add `[trigger]` with `type = \"manual\"`, or `type = \"automatic\"` and a `schedule`",
            );
            None
        }
    };

    let delivery = channel.and_then(|ch| {
        // A section that does not fit the channel.
        for (section, fits) in [("email", Channel::Email), ("webhook", Channel::Webhook)] {
            if ch != fits
                && let Some(v) = get(&root, section)
            {
                r.error_help(
                    key_span(&root, section, v.span()),
                    format!("`[{section}]` does not fit `channel = \"{}\"`", ch.as_str()),
                    format!("remove `[{section}]`, or set `channel = \"{section}\"`"),
                );
            }
        }
        let section = ch.as_str();
        let Some(v) = get(&root, section) else {
            r.error_help(
                channel_v.map_or(comm_v.span(), Value::span),
                format!("`channel = \"{section}\"` needs an `[{section}]` section"),
                match ch {
                    Channel::Email => {
                        "add `[email]` with `from`, `subject` and `body` or `template`"
                    }
                    Channel::Webhook => "add `[webhook]` with `url` and `secret_env`",
                },
            );
            return None;
        };
        let t = r.table(v, &format!("`{section}`"))?;
        match ch {
            Channel::Email => {
                parse_email(&mut r, t, v, templates, &mut template_diags).map(Delivery::Email)
            }
            Channel::Webhook => parse_webhook(&mut r, t, v).map(Delivery::Webhook),
        }
    });

    let ok = r.clean() && template_diags.iter().all(|d| !d.is_error());
    r.diags.extend(template_diags);
    // The rest of the file was checked even without a valid name.
    let (name, name_span) = named?;
    let segment_ref = segment.clone();
    let def = (|| {
        ok.then_some(())?;
        Some(Communication {
            name: name.clone(),
            description,
            segment: segment?.0,
            event: event?,
            enabled: enabled?,
            min_interval: min_interval?,
            max_recipients: max_recipients?,
            protect: protect?,
            trigger: trigger?,
            delivery: delivery?,
        })
    })();
    Some(Parsed {
        name,
        name_span,
        segment: segment_ref,
        def,
    })
}

/// `None` = invalid; `Some(None)` = absent.
fn optional<T>(v: Option<Option<T>>) -> Option<Option<T>> {
    match v {
        None => Some(None),
        Some(None) => None,
        Some(Some(x)) => Some(Some(x)),
    }
}

fn required<'v>(
    r: &mut Reader<'_>,
    t: &'v DeTable<'_>,
    table_v: &Value<'_>,
    key: &str,
    allowed: &[&str],
) -> Option<&'v str> {
    match get(t, key) {
        Some(v) => r.one_of(v, &format!("`{key}`"), allowed),
        None => {
            r.error_help(
                table_v.span(),
                format!("`[communication]` needs `{key}`"),
                format!("add `{key} = \"…\"`, one of: {}", list(allowed)),
            );
            None
        }
    }
}

pub fn duration(r: &mut Reader<'_>, v: &Value<'_>, key: &str) -> Option<Duration> {
    let s = r.str(v, &format!("`{key}`"))?;
    match Duration::parse(s) {
        Ok(d) => Some(d),
        Err(e) => {
            r.error_help(v.span(), format!("invalid `{key}` `{s}`"), e.to_string());
            None
        }
    }
}

fn parse_trigger(
    r: &mut Reader<'_>,
    t: &DeTable<'_>,
    tv: &Value<'_>,
    now: Option<DateTime<Utc>>,
) -> Option<Trigger> {
    r.unknown_keys(t, TRIGGER_KEYS, "`[trigger]`");
    let Some(type_v) = get(t, "type") else {
        r.error_help(
            tv.span(),
            "`[trigger]` needs a `type`",
            "add `type = \"manual\"` or `type = \"automatic\"`",
        );
        return None;
    };
    let kind = r.one_of(type_v, "trigger type", &["automatic", "manual"])?;
    let timezone = match get(t, "timezone") {
        None => Some(chrono_tz::Tz::UTC),
        Some(v) => {
            let s = r.str(v, "`timezone`")?;
            match s.parse::<chrono_tz::Tz>() {
                Ok(tz) => Some(tz),
                Err(_) => {
                    let exact = chrono_tz::Tz::from_str_insensitive(s)
                        .ok()
                        .map(|tz| tz.name());
                    let help = match exact {
                        Some(n) => format!("did you mean `{n}`?"),
                        None => "use an IANA time zone name such as `Europe/Berlin` or `UTC`"
                            .to_string(),
                    };
                    r.error_help(v.span(), format!("unknown time zone `{s}`"), help);
                    None
                }
            }
        }
    };
    if kind == "manual" {
        if let Some(v) = get(t, "schedule") {
            r.error_help(
                key_span(t, "schedule", v.span()),
                "a manual trigger has no `schedule`",
                "remove `schedule`, or set `type = \"automatic\"`",
            );
            return None;
        }
        if let Some(v) = get(t, "timezone") {
            r.warning(
                key_span(t, "timezone", v.span()),
                "`timezone` has no effect on a manual trigger",
            );
        }
        return Some(Trigger::Manual);
    }
    let Some(sched_v) = get(t, "schedule") else {
        r.error_help(
            tv.span(),
            "an automatic trigger needs a `schedule`",
            "add a cron schedule such as `schedule = \"0 9 * * MON-FRI\"`, or set `type = \"manual\"`",
        );
        return None;
    };
    let pattern = r.str(sched_v, "`schedule`")?;
    let schedule = match Schedule::parse(pattern) {
        Ok(s) => s,
        Err(e) => {
            r.error_help(
                sched_v.span(),
                e,
                "5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first; names like `MON-FRI` work",
            );
            return None;
        }
    };
    let timezone = timezone?;
    match now.map(|now| cadence(&schedule, timezone, now)) {
        Some(Cadence::Never) => {
            r.error_help(
                sched_v.span(),
                format!("schedule `{pattern}` never fires in the next 5 years"),
                "check the day of the month against the month (April has 30 days, February 28 or 29)",
            );
            return None;
        }
        Some(Cadence::SubMinute(gap)) => r.warning(
            sched_v.span(),
            format!(
                "schedule `{pattern}` fires more often than once a minute ({}s apart); \
                 each occurrence starts a run",
                gap.num_seconds()
            ),
        ),
        Some(Cadence::AtMostOncePerMinute) | None => {}
    }
    Some(Trigger::Automatic { schedule, timezone })
}

fn parse_email(
    r: &mut Reader<'_>,
    t: &DeTable<'_>,
    tv: &Value<'_>,
    templates: &dyn TemplateSource,
    template_diags: &mut Vec<Diagnostic>,
) -> Option<Email> {
    r.unknown_keys(t, EMAIL_KEYS, "`[email]`");
    let from = match get(t, "from") {
        Some(v) => {
            let s = r.str(v, "`from`")?;
            if !is_mailbox(s) {
                r.error_help(
                    v.span(),
                    format!("`from` is not an email address: `{s}`"),
                    "write `billing@acme.test` or `Billing <billing@acme.test>`",
                );
                None
            } else {
                Some(s.to_string())
            }
        }
        None => {
            r.error_help(
                tv.span(),
                "`[email]` needs `from`",
                "add `from = \"Billing <billing@acme.test>\"`",
            );
            None
        }
    };
    let subject = match get(t, "subject") {
        Some(v) => {
            let s = r.str(v, "`subject`")?;
            (template::check_inline(r, v.span(), s, "`subject`")
                && template::bounds_at(r, templates, v.span(), s, "`subject`"))
            .then(|| s.to_string())
        }
        None => {
            r.error_help(
                tv.span(),
                "`[email]` needs `subject`",
                "add `subject = \"…\"` (a template)",
            );
            None
        }
    };
    let body = match (get(t, "body"), get(t, "template")) {
        (Some(b), Some(tp)) => {
            r.error_help(
                key_span(t, "template", tp.span()),
                "`[email]` has both `body` and `template`",
                format!(
                    "keep one of the two (`body` is on line {})",
                    r.src
                        .diagnostic(
                            crate::diag::Severity::Error,
                            key_span(t, "body", b.span()),
                            ""
                        )
                        .line
                ),
            );
            None
        }
        (None, None) => {
            r.error_help(
                tv.span(),
                "`[email]` needs `body` or `template`",
                "add `template = \"templates/….txt\"`, or an inline `body = \"…\"`",
            );
            None
        }
        (Some(b), None) => {
            let s = r.str(b, "`body`")?;
            (template::check_inline(r, b.span(), s, "`body`")
                && template::bounds_at(r, templates, b.span(), s, "`body`"))
            .then(|| Body::Inline(s.to_string()))
        }
        (None, Some(tp)) => {
            let path = r.str(tp, "`template`")?;
            template_file(r, tp.span(), path, templates, template_diags).map(Body::Template)
        }
    };
    Some(Email {
        from: from?,
        subject: subject?,
        body: body?,
    })
}

fn template_file(
    r: &mut Reader<'_>,
    span: Range<usize>,
    path: &str,
    templates: &dyn TemplateSource,
    template_diags: &mut Vec<Diagnostic>,
) -> Option<String> {
    let norm = path.trim_start_matches("./");
    if norm.is_empty()
        || norm.starts_with('/')
        || norm.contains('\\')
        || norm.split('/').any(|p| p == ".." || p.is_empty())
    {
        r.error_help(
            span,
            format!("template path `{path}` must stay inside the definitions folder"),
            "write a relative path such as `templates/reminder.txt`",
        );
        return None;
    }
    // Template text is shown in plans and CI logs: hidden files (`.git/…`,
    // `.env`) and the definitions and settings (which may hold a database
    // password) are never read as templates.
    if let Some(part) = norm.split('/').find(|p| p.starts_with('.')) {
        r.error_help(
            span,
            format!("template path `{path}` names the hidden `{part}`"),
            "hidden files are not templates; keep templates in a folder such as `templates/`",
        );
        return None;
    }
    if norm == "segd.toml"
        || matches!(
            norm.split('/').next(),
            Some("segments.d" | "communications.d")
        )
    {
        r.error_help(
            span,
            format!("template path `{path}` names a definitions or settings file, not a template"),
            "keep templates outside segd.toml, segments.d/ and communications.d/, such as in `templates/`",
        );
        return None;
    }
    match templates.read(norm) {
        Ok((display, text)) => (template::check_file(&display, &text, template_diags)
            && template::bounds_at(r, templates, span, &text, &format!("template `{display}`")))
        .then(|| norm.to_string()),
        Err(why) => {
            r.error_help(
                span,
                format!("template `{path}` cannot be read: {why}"),
                "paths are relative to `--dir`",
            );
            None
        }
    }
}

fn parse_webhook(r: &mut Reader<'_>, t: &DeTable<'_>, tv: &Value<'_>) -> Option<Webhook> {
    r.unknown_keys(t, WEBHOOK_KEYS, "`[webhook]`");
    let url = match get(t, "url") {
        Some(v) => {
            let s = r.str(v, "`url`")?;
            match url::Url::parse(s) {
                Ok(u) if !matches!(u.scheme(), "http" | "https") => {
                    r.error(
                        v.span(),
                        format!(
                            "webhook `url` must be http or https, found `{}`",
                            u.scheme()
                        ),
                    );
                    None
                }
                Ok(u) if crate::config::url_holds_secret(&u) || !u.username().is_empty() => {
                    r.secret_error(
                        v.span(),
                        "webhook `url` carries credentials; secrets never live in definition files",
                    );
                    None
                }
                Ok(u) if u.host_str().is_none_or(str::is_empty) => {
                    r.error(v.span(), "webhook `url` has no host");
                    None
                }
                Ok(u) => match u.host().and_then(|h| refused_host(&h)) {
                    Some(why) => {
                        r.error_help(
                            v.span(),
                            format!("webhook `url` points at {why}"),
                            "webhooks never go to link-local or cloud metadata addresses; loopback and private addresses are allowed",
                        );
                        None
                    }
                    None => Some(s.to_string()),
                },
                Err(e) => {
                    r.error_help(
                        v.span(),
                        format!("invalid webhook `url`: {e}"),
                        "write a full URL such as `https://hooks.acme.test/segd`",
                    );
                    None
                }
            }
        }
        None => {
            r.error_help(
                tv.span(),
                "`[webhook]` needs `url`",
                "add `url = \"https://…\"`",
            );
            None
        }
    };
    let secret_env = match get(t, "secret_env") {
        Some(v) => {
            let s = r.str(v, "`secret_env`")?;
            if is_env_name(s) {
                Some(s.to_string())
            } else {
                r.error_help(
                    v.span(),
                    format!("`secret_env` must name an environment variable, found `{s}`"),
                    "names hold letters, digits and `_`, and do not start with a digit, e.g. `SEGD_WEBHOOK_SECRET`",
                );
                None
            }
        }
        None => {
            r.error_help(
                tv.span(),
                "`[webhook]` needs `secret_env`",
                "webhooks are always signed: add `secret_env = \"SEGD_WEBHOOK_SECRET\"` and set that variable to a `whsec_…` secret",
            );
            None
        }
    };
    let timeout = optional(get(t, "timeout").map(|v| duration(r, v, "timeout")));
    Some(Webhook {
        url: url?,
        secret_env: secret_env?,
        timeout: timeout?,
    })
}

fn is_env_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(x) if x.is_ascii_alphabetic() || x == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

/// `addr@host` or `Display Name <addr@host>`.
fn is_mailbox(s: &str) -> bool {
    let addr = match (s.rfind('<'), s.strip_suffix('>')) {
        (Some(i), Some(inner)) => &inner[i + 1..],
        (None, None) => s.trim(),
        _ => return false,
    };
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !addr.contains(char::is_whitespace)
        && !domain.starts_with('.')
        && !domain.ends_with('.')
}

#[cfg(test)]
mod tests {
    use super::{is_env_name, is_mailbox};

    #[test]
    fn mailboxes() {
        assert!(is_mailbox("billing@acme.test"));
        assert!(is_mailbox("Billing <billing@acme.test>"));
        assert!(!is_mailbox("Billing"));
        assert!(!is_mailbox("Billing <billing@acme.test"));
        assert!(!is_mailbox("a b@c.d"));
        assert!(!is_mailbox("@acme.test"));
    }

    #[test]
    fn env_names() {
        assert!(is_env_name("SEGD_WEBHOOK_SECRET") && is_env_name("_X1"));
        assert!(!is_env_name("1X") && !is_env_name("A-B") && !is_env_name(""));
    }
}
