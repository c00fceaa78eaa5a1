//! JSON Schemas of the definition files, for editors (taplo / Even Better TOML).
//! Built from the same field tables validation uses, so they cannot drift apart.

use crate::model::fields::COUNTRIES;
use crate::model::{Channel, Event, Field, FilterType, MatchMode, Op, ValueKind};
use serde_json::{Map, Value, json};

const NAME_PATTERN: &str = "^[a-z0-9][a-z0-9_-]{0,62}$";
/// A positive duration as [`crate::model::Duration::parse`] reads it: units
/// summed (`1h30m`), blanks around it allowed, some digit not zero. (Its upper
/// bound, 3650d, is in the description: a pattern cannot sum.)
const DURATION_PATTERN: &str = r"^\s*(?=[0-9smhd]*[1-9])([0-9]+[smhd])+\s*$";
/// A retry step: a duration that may be zero (`0s`: at once).
const STEP: &str = r"\s*([0-9]+[smhd])+\s*";
const DURATION_HELP: &str = "a duration such as 30s, 15m, 24h, 7d or 1h30m, at most 3650d";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SchemaKind {
    Segment,
    Communication,
    Settings,
}

pub fn schema(kind: SchemaKind) -> Value {
    match kind {
        SchemaKind::Segment => segment(),
        SchemaKind::Communication => communication(),
        SchemaKind::Settings => settings(),
    }
}

fn scalar_schema(field: Field) -> Value {
    match field.kind() {
        ValueKind::Text { .. } => json!({"type": "string"}),
        ValueKind::Enum(values) => json!({"enum": values}),
        ValueKind::Country => {
            json!({"type": "string", "pattern": "^[A-Za-z]{2}$", "examples": COUNTRIES})
        }
        ValueKind::Days => json!({"type": "integer", "minimum": 0}),
        ValueKind::Time => {
            json!({"type": "string", "description": "a date (2026-01-01) or RFC 3339 time with offset"})
        }
        ValueKind::Bool => json!({"type": "boolean"}),
    }
}

fn op_schema(op: Op, scalar: &Value) -> Value {
    match op {
        Op::In | Op::NotIn => {
            json!({"type": "array", "items": scalar, "minItems": 1, "uniqueItems": true})
        }
        Op::Exists => json!({"type": "boolean"}),
        _ => scalar.clone(),
    }
}

fn condition_schema(field: Field) -> Value {
    let scalar = scalar_schema(field);
    let mut alternatives = Vec::new();
    if field.ops().contains(&Op::Eq) {
        alternatives.push(scalar.clone());
    }
    if field.kind() != ValueKind::Time {
        for op in field.ops() {
            alternatives.push(json!({
                "type": "object",
                "properties": { op.as_str(): op_schema(op, &scalar) },
                "required": [op.as_str()],
                "additionalProperties": false,
            }));
        }
    }
    json!({"description": field.doc(), "anyOf": alternatives})
}

fn custom_data_schema() -> Value {
    let scalar = json!({"type": ["string", "number", "boolean"]});
    let mut alternatives = vec![scalar.clone()];
    for op in Op::ALL {
        let operand = match op {
            Op::Contains | Op::StartsWith | Op::EndsWith => json!({"type": "string"}),
            Op::Gt | Op::Gte | Op::Lt | Op::Lte => json!({"type": "number"}),
            _ => op_schema(op, &scalar),
        };
        alternatives.push(json!({
            "type": "object",
            "properties": { op.as_str(): operand },
            "required": [op.as_str()],
            "additionalProperties": false,
        }));
    }
    json!({
        "type": "object",
        "description": "conditions on top-level keys of the customer's custom data JSON",
        "minProperties": 1,
        "additionalProperties": {"anyOf": alternatives},
    })
}

fn filter_schema(t: FilterType) -> Value {
    let mut props = Map::new();
    props.insert("type".into(), json!({"const": t.as_str()}));
    props.insert(
        "negate".into(),
        json!({"type": "boolean", "description": "invert the block (NOT EXISTS for related rows)"}),
    );
    for f in t.fields() {
        props.insert(f.key().into(), condition_schema(f));
    }
    if t == FilterType::Customer {
        props.insert("custom_data".into(), custom_data_schema());
    }
    json!({"type": "object", "properties": props, "required": ["type"], "additionalProperties": false})
}

fn segment() -> Value {
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "segd segment",
        "type": "object",
        "properties": {
            "segment": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "pattern": NAME_PATTERN},
                    "description": {"type": "string"},
                    "match": {"enum": MatchMode::ALL, "default": "all"},
                    "protect": {"type": "boolean", "default": false},
                },
                "required": ["name"],
                "additionalProperties": false,
            },
            "filter": {
                "type": "array",
                "items": {"oneOf": FilterType::ALL.map(filter_schema).to_vec()},
            },
        },
        "required": ["segment"],
        "additionalProperties": false,
    })
}

fn communication() -> Value {
    let duration = json!({"type": "string", "pattern": DURATION_PATTERN});
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "segd communication",
        "type": "object",
        "properties": {
            "communication": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "pattern": NAME_PATTERN},
                    "description": {"type": "string"},
                    "segment": {"type": "string", "pattern": NAME_PATTERN},
                    "event": {"enum": Event::ALL},
                    "channel": {"enum": Channel::ALL},
                    "enabled": {"type": "boolean", "default": true},
                    "min_interval": duration,
                    "max_recipients": {"type": "integer", "minimum": 1},
                    "protect": {"type": "boolean", "default": false},
                },
                "required": ["name", "segment", "event", "channel"],
                "additionalProperties": false,
            },
            "trigger": {
                "type": "object",
                "properties": {
                    "type": {"enum": ["automatic", "manual"]},
                    "schedule": {"type": "string", "description": "cron: 5 fields, or 6 with seconds first"},
                    "timezone": {"type": "string", "description": "IANA time zone name", "default": "UTC"},
                },
                "required": ["type"],
                "additionalProperties": false,
            },
            "email": {
                "type": "object",
                "properties": {
                    "from": {"type": "string"},
                    "subject": {"type": "string"},
                    "template": {"type": "string"},
                    "body": {"type": "string"},
                },
                "required": ["from", "subject"],
                "oneOf": [{"required": ["template"]}, {"required": ["body"]}],
                "additionalProperties": false,
            },
            "webhook": {
                "type": "object",
                "properties": {
                    "url": {"type": "string", "format": "uri"},
                    "secret_env": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                    "timeout": duration,
                },
                "required": ["url", "secret_env"],
                "additionalProperties": false,
            },
        },
        "required": ["communication", "trigger"],
        "additionalProperties": false,
    })
}

fn settings() -> Value {
    let duration =
        json!({"type": "string", "pattern": DURATION_PATTERN, "description": DURATION_HELP});
    // A URL: a scheme, and no password in its user info (validate points to
    // the environment variable for it).
    let url = |default: Option<&str>| {
        let mut u = json!({
            "type": "string",
            "pattern": "^[A-Za-z][A-Za-z0-9+.-]*:",
            "not": {"pattern": "^[A-Za-z][A-Za-z0-9+.-]*://[^/?#@]*:[^/?#@]*@"},
            "description": "a URL without a password or token (set those in the environment)",
        });
        if let Some(d) = default {
            u["default"] = json!(d);
        }
        u
    };
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "segd settings (segd.toml)",
        "type": "object",
        "properties": {
            "database_url": url(Some(crate::config::DEFAULT_DATABASE_URL)),
            "listen": {
                "type": "string",
                "pattern": r"^(\d{1,3}(\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\]):\d{1,5}$",
                "description": "an IP address and port, such as 127.0.0.1:8080 or [::1]:8080",
                "default": "127.0.0.1:8080",
            },
            "resync": duration,
            "outbox_dir": {"type": "string"},
            "smtp_url": url(None),
            "max_file_bytes": {
                "type": "integer",
                "minimum": crate::config::MAX_FILE_BYTES_RANGE.start(),
                "maximum": crate::config::MAX_FILE_BYTES_RANGE.end(),
                "default": crate::config::DEFAULT_MAX_FILE_BYTES,
            },
            "delivery": {
                "type": "object",
                "properties": {
                    "concurrency": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": u32::MAX,
                        "default": crate::config::DEFAULT_CONCURRENCY,
                    },
                    "retry_schedule": {
                        "description": "the delays before each retry: an array of durations, or one comma-separated string (0s: at once)",
                        "default": crate::config::DEFAULT_RETRY_SCHEDULE,
                        "oneOf": [
                            {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": format!("^{STEP}$")}},
                            {"type": "string", "pattern": format!("^{STEP}(,{STEP})*$")},
                        ],
                    },
                    "lease": duration,
                },
                "additionalProperties": false,
            },
            "console": {
                "type": "object",
                "properties": {
                    "size_retention": duration,
                },
                "additionalProperties": false,
            },
        },
        "additionalProperties": false,
    })
}
