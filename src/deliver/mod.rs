//! Sending what the outbox holds: webhooks signed per Standard Webhooks, emails
//! over SMTP or as `.eml` files, with retries.

pub mod email;
pub mod payload;
pub mod retry;
pub mod webhook;
pub mod worker;

/// Why delivery cannot be set up, or one message cannot be built. The messages
/// name settings and variables, never their values.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("SEGD_SMTP_URL is not a URL")]
    SmtpUrl(#[source] url::ParseError),
    #[error("SEGD_SMTP_URL has no host")]
    SmtpNoHost,
    #[error("SEGD_SMTP_URL: unknown option `{0}`; the only one is `{ALLOW}=true|false`", ALLOW = email::ALLOW_PLAINTEXT_AUTH)]
    SmtpOption(String),
    #[error("SEGD_SMTP_URL: the {0} is not UTF-8 once percent-decoded")]
    SmtpNotUtf8(&'static str),
    #[error("SEGD_SMTP_URL: TLS setup failed")]
    SmtpTls(#[source] lettre::transport::smtp::Error),
    #[error("cannot build the HTTP client")]
    HttpClient(#[source] reqwest::Error),
    #[error("the webhook secret variable {0} is not set; nothing is sent unsigned")]
    SecretUnset(String),
    #[error("the webhook secret in {0} is malformed: it must have the form whsec_<base64>")]
    SecretMalformed(String),
    #[error(
        "the webhook secret in {var} is too short: its key (the base64 after whsec_) must decode to at least {min} bytes; nothing is sent"
    )]
    SecretTooShort { var: String, min: usize },
    #[error("signing failed")]
    Sign(#[source] standardwebhooks::WebhookError),
    #[error("template {0} is not part of the applied definition")]
    TemplateMissing(String),
    #[error("rendering the {what} failed")]
    Render {
        what: &'static str,
        #[source]
        source: crate::validate::template::RenderError,
    },
    #[error("invalid From address")]
    From(#[source] lettre::address::AddressError),
    #[error("the customer has no email address")]
    NoAddress,
    #[error("invalid customer email address")]
    To(#[source] lettre::address::AddressError),
    #[error("cannot build the message")]
    Message(#[source] lettre::error::Error),
}
