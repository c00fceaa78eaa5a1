//! Email: RFC 5322 messages built with lettre, sent over SMTP or written as
//! `.eml` files when no SMTP server is configured.

use super::retry::Attempt;
use crate::config::DeliveryConfig;
use lettre::message::{Mailbox, Message, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::path::PathBuf;

pub enum Mailer {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(PathBuf),
}

impl Mailer {
    /// SPEC §3: `smtp://` is plain with opportunistic STARTTLS, `smtps://` implicit
    /// TLS; credentials from the URL or SEGD_SMTP_USER / SEGD_SMTP_PASSWORD.
    pub fn new(config: &DeliveryConfig) -> Result<Self, String> {
        let Some(raw) = &config.smtp_url else {
            return Ok(Mailer::Files(config.outbox_dir.clone()));
        };
        let url = url::Url::parse(raw).map_err(|e| format!("SEGD_SMTP_URL is not a URL: {e}"))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("SEGD_SMTP_URL has no host")?
            .to_string();
        let params = TlsParameters::new(host.clone())
            .map_err(|e| format!("SEGD_SMTP_URL: TLS setup failed: {e}"))?;
        let (tls, port) = match url.scheme() {
            "smtps" => (Tls::Wrapper(params), 465),
            _ => (Tls::Opportunistic(params), 25),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(url.port().unwrap_or(port))
            .tls(tls)
            .timeout(Some(std::time::Duration::from_secs(30)));
        let decode = percent_encoding_decode;
        let user = (!url.username().is_empty())
            .then(|| decode(url.username()))
            .or_else(|| config.smtp_user.clone());
        let password = url
            .password()
            .map(decode)
            .or_else(|| config.smtp_password.clone());
        if let (Some(u), Some(p)) = (user, password) {
            builder = builder.credentials(Credentials::new(u, p));
        }
        Ok(Mailer::Smtp(builder.build()))
    }

    /// One attempt at sending one message.
    pub async fn send(
        &self,
        key: &str,
        from: &str,
        to: Option<&str>,
        subject: &str,
        body: String,
    ) -> Attempt {
        let message = match build(key, from, to, subject, body) {
            Ok(m) => m,
            Err(error) => return Attempt::Permanent { error },
        };
        match self {
            Mailer::Smtp(transport) => match transport.send(message).await {
                Ok(_) => Attempt::Sent,
                Err(e) if e.is_permanent() => Attempt::Permanent {
                    error: format!("SMTP: {e}"),
                },
                Err(e) => Attempt::Retry {
                    error: format!("SMTP: {e}"),
                    retry_after: None,
                },
            },
            Mailer::Files(dir) => match write_eml(dir, key, &message.formatted()).await {
                Ok(()) => Attempt::Sent,
                Err(e) => Attempt::Retry {
                    error: format!("cannot write to the outbox folder {}: {e}", dir.display()),
                    retry_after: None,
                },
            },
        }
    }
}

fn percent_encoding_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

fn build(
    key: &str,
    from: &str,
    to: Option<&str>,
    subject: &str,
    body: String,
) -> Result<Message, String> {
    let from: Mailbox = from
        .parse()
        .map_err(|e| format!("invalid From address: {e}"))?;
    let to = to
        .filter(|t| !t.trim().is_empty())
        .ok_or("the customer has no email address")?;
    let to: Mailbox = to
        .trim()
        .parse()
        .map_err(|e| format!("invalid customer email address: {e}"))?;
    let host = from.email.domain().to_string();
    Message::builder()
        .from(from)
        .to(to)
        .subject(subject)
        .message_id(Some(format!("<{}@{host}>", file_safe(key))))
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| format!("cannot build the message: {e}"))
}

/// The key as a file name and message-id part: readable, and unique through a
/// digest of the exact key.
fn file_safe(key: &str) -> String {
    let readable: String = key
        .chars()
        .take(120)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let digest = crate::plan::sha256_hex(key);
    format!("{readable}-{}", &digest[..12])
}

async fn write_eml(dir: &std::path::Path, key: &str, data: &[u8]) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    let name = file_safe(key);
    let tmp = dir.join(format!(".{name}.eml.tmp"));
    tokio::fs::write(&tmp, data).await?;
    tokio::fs::rename(&tmp, dir.join(format!("{name}.eml"))).await
}
