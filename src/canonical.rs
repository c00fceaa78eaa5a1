//! The canonical TOML form of definitions: stable (fixed key order, sorted
//! custom_data keys, normalised values) so that two files meaning the same thing
//! print the same, which keeps plans free of noise. `export` writes it too.

use crate::model::{Body, Communication, Condition, Delivery, Filter, Scalar, Segment, Trigger};
use chrono::SecondsFormat;
use std::fmt::Write as _;

fn string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn key(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        k.to_string()
    } else {
        string(k)
    }
}

fn scalar(s: &Scalar) -> String {
    match s {
        Scalar::Str(s) => string(s),
        Scalar::Int(i) => i.to_string(),
        Scalar::Float(f) => format!("{f:?}"),
        Scalar::Bool(b) => b.to_string(),
        Scalar::Time(t) => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
    }
}

fn condition(c: &Condition) -> String {
    match c {
        Condition::Compare(crate::model::Op::Eq, v) => scalar(v),
        Condition::Compare(op, v) => format!("{{ {} = {} }}", op.as_str(), scalar(v)),
        Condition::List(op, vs) => {
            let items: Vec<String> = vs.iter().map(scalar).collect();
            format!("{{ {} = [{}] }}", op.as_str(), items.join(", "))
        }
        Condition::Exists(b) => format!("{{ exists = {b} }}"),
    }
}

fn filter(out: &mut String, f: &Filter) {
    let _ = writeln!(
        out,
        "\n[[filter]]\ntype = {}",
        string(f.filter_type.as_str())
    );
    if f.negate {
        out.push_str("negate = true\n");
    }
    for (field, c) in &f.conditions {
        let _ = writeln!(out, "{} = {}", field.key(), condition(c));
    }
    if !f.custom_data.is_empty() {
        let items: Vec<String> = f
            .custom_data
            .iter()
            .map(|(k, c)| format!("{} = {}", key(k.as_str()), condition(c)))
            .collect();
        let _ = writeln!(out, "custom_data = {{ {} }}", items.join(", "));
    }
}

pub fn segment(s: &Segment) -> String {
    let mut out = String::from("[segment]\n");
    let _ = writeln!(out, "name = {}", string(s.name.as_str()));
    if let Some(d) = &s.description {
        let _ = writeln!(out, "description = {}", string(d));
    }
    let _ = writeln!(out, "match = {}", string(s.match_mode.as_str()));
    if s.protect {
        out.push_str("protect = true\n");
    }
    for f in &s.filters {
        filter(&mut out, f);
    }
    out
}

pub fn communication(c: &Communication) -> String {
    let mut out = String::from("[communication]\n");
    let _ = writeln!(out, "name = {}", string(c.name.as_str()));
    if let Some(d) = &c.description {
        let _ = writeln!(out, "description = {}", string(d));
    }
    let _ = writeln!(out, "segment = {}", string(c.segment.as_str()));
    let _ = writeln!(out, "event = {}", string(c.event.as_str()));
    let _ = writeln!(out, "channel = {}", string(c.delivery.channel().as_str()));
    let _ = writeln!(out, "enabled = {}", c.enabled);
    if let Some(d) = c.min_interval {
        let _ = writeln!(out, "min_interval = {}", string(&d.to_string()));
    }
    if let Some(n) = c.max_recipients {
        let _ = writeln!(out, "max_recipients = {n}");
    }
    if c.protect {
        out.push_str("protect = true\n");
    }
    out.push_str("\n[trigger]\n");
    match &c.trigger {
        Trigger::Manual => out.push_str("type = \"manual\"\n"),
        Trigger::Automatic { schedule, timezone } => {
            let _ = writeln!(
                out,
                "type = \"automatic\"\nschedule = {}\ntimezone = {}",
                string(schedule.as_str()),
                string(timezone.name())
            );
        }
    }
    match &c.delivery {
        Delivery::Email(e) => {
            out.push_str("\n[email]\n");
            let _ = writeln!(out, "from = {}", string(&e.from));
            let _ = writeln!(out, "subject = {}", string(&e.subject));
            match &e.body {
                Body::Inline(b) => {
                    let _ = writeln!(out, "body = {}", string(b));
                }
                Body::Template(p) => {
                    let _ = writeln!(out, "template = {}", string(p));
                }
            }
        }
        Delivery::Webhook(w) => {
            out.push_str("\n[webhook]\n");
            let _ = writeln!(out, "url = {}", string(&w.url));
            let _ = writeln!(out, "secret_env = {}", string(&w.secret_env));
            if let Some(t) = w.timeout {
                let _ = writeln!(out, "timeout = {}", string(&t.to_string()));
            }
        }
    }
    out
}
