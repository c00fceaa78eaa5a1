//! What a delivery carries: the webhook JSON body and the rendered email. Pure.

use super::DeliverError;
use crate::model::{Body, Communication, Customer, Email, Invoice};
use crate::validate::template;
use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::BTreeMap;

/// What one delivery is about.
pub struct Subject<'a> {
    /// The idempotency key.
    pub key: &'a str,
    pub communication: &'a Communication,
    pub segment_description: Option<&'a str>,
    pub occurred_at: DateTime<Utc>,
    pub customer: &'a Customer,
    pub invoices: &'a [Invoice],
}

/// SPEC §3: `{id, communication, event, occurred_at, customer, invoices}`.
pub fn webhook_body(s: &Subject<'_>) -> String {
    let body = serde_json::json!({
        "id": s.key,
        "communication": s.communication.name.as_str(),
        "event": s.communication.event.as_str(),
        "occurred_at": s.occurred_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        "customer": s.customer,
        "invoices": s.invoices,
    });
    body.to_string()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    pub subject: String,
    pub body: String,
}

/// An email's subject and body templates with what they see, ready to render (on
/// a blocking thread: rendering is CPU-bound).
pub struct EmailTemplates {
    subject: String,
    body: String,
    ctx: minijinja::Value,
}

/// Gathers the templates of `email` and the variables SPEC §3 gives them.
pub fn email_templates(
    email: &Email,
    templates: &BTreeMap<String, String>,
    s: &Subject<'_>,
) -> Result<EmailTemplates, DeliverError> {
    let c = s.communication;
    let ctx = minijinja::context! {
        customer => minijinja::Value::from_serialize(s.customer),
        invoices => minijinja::Value::from_serialize(s.invoices),
        communication => minijinja::context! {
            name => c.name.as_str(),
            description => c.description.as_deref(),
            event => c.event.as_str(),
            channel => c.delivery.channel().as_str(),
            segment => c.segment.as_str(),
        },
        segment => minijinja::context! {
            name => c.segment.as_str(),
            description => s.segment_description,
        },
    };
    let body = match &email.body {
        Body::Inline(b) => b.clone(),
        Body::Template(path) => templates
            .get(path)
            .cloned()
            .ok_or_else(|| DeliverError::TemplateMissing(path.clone()))?,
    };
    Ok(EmailTemplates {
        subject: email.subject.clone(),
        body,
        ctx,
    })
}

impl EmailTemplates {
    /// Renders subject and body within the bounds of [`template::render`], in strict
    /// mode: an unknown variable is an error, never an empty string in a customer's
    /// inbox.
    pub fn render(&self) -> Result<RenderedEmail, DeliverError> {
        let render = |source: &str, what: &'static str| {
            template::render(source, &self.ctx)
                .map_err(|source| DeliverError::Render { what, source })
        };
        Ok(RenderedEmail {
            subject: render(&self.subject, "subject")?.replace(['\r', '\n'], " "),
            body: render(&self.body, "body")?,
        })
    }
}
