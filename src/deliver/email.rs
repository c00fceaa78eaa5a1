//! Email: RFC 5322 messages built with lettre, sent over SMTP or written as
//! `.eml` files when no SMTP server is configured.

use super::DeliverError;
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

/// The one option an SMTP URL takes: `?allow_plaintext_auth=true` lets
/// credentials go to an `smtp://` server that offers no STARTTLS (a local relay).
pub(super) const ALLOW_PLAINTEXT_AUTH: &str = "allow_plaintext_auth";

impl Mailer {
    /// SPEC §3: `smtp://` is plain with opportunistic STARTTLS, and requires
    /// STARTTLS when credentials are set (unless the URL allows plaintext auth);
    /// `smtps://` is implicit TLS. Credentials come from the URL's user info
    /// (percent-decoded) or SEGD_SMTP_USER / SEGD_SMTP_PASSWORD.
    pub fn new(config: &DeliveryConfig) -> Result<Self, DeliverError> {
        let Some(raw) = &config.smtp_url else {
            return Ok(Mailer::Files(config.outbox_dir.clone()));
        };
        let url = url::Url::parse(raw).map_err(DeliverError::SmtpUrl)?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or(DeliverError::SmtpNoHost)?
            .to_string();
        let mut allow_plaintext_auth = false;
        for (k, v) in url.query_pairs() {
            match (k.as_ref(), v.as_ref()) {
                (ALLOW_PLAINTEXT_AUTH, "true") => allow_plaintext_auth = true,
                (ALLOW_PLAINTEXT_AUTH, "false") => allow_plaintext_auth = false,
                _ => return Err(DeliverError::SmtpOption(k.into_owned())),
            }
        }
        let (user, password) = credentials(&url)?;
        let user = user.or_else(|| config.smtp_user.clone());
        let password = password.or_else(|| config.smtp_password.clone());
        let credentials = match (user, password) {
            (Some(u), Some(p)) => Some(Credentials::new(u, p)),
            _ => None,
        };
        let params = TlsParameters::new(host.clone()).map_err(DeliverError::SmtpTls)?;
        let (tls, port) = match url.scheme() {
            "smtps" => (Tls::Wrapper(params), 465),
            // Credentials never travel in clear: without STARTTLS the server is
            // not sent them, and nothing is sent.
            _ if credentials.is_some() && !allow_plaintext_auth => (Tls::Required(params), 25),
            _ => (Tls::Opportunistic(params), 25),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(url.port().unwrap_or(port))
            .tls(tls)
            .timeout(Some(std::time::Duration::from_secs(30)));
        if let Some(c) = credentials {
            builder = builder.credentials(c);
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
            Err(e) => {
                return Attempt::Permanent {
                    error: crate::error::chain(&e),
                };
            }
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

/// The URL's user and password, percent-decoded as URL parts (a `+` stays a `+`).
fn credentials(url: &url::Url) -> Result<(Option<String>, Option<String>), DeliverError> {
    let decode = |part: &str, what: &'static str| {
        percent_encoding::percent_decode_str(part)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| DeliverError::SmtpNotUtf8(what))
    };
    let user = match url.username() {
        "" => None,
        u => Some(decode(u, "user name")?),
    };
    let password = url.password().map(|p| decode(p, "password")).transpose()?;
    Ok((user, password))
}

fn build(
    key: &str,
    from: &str,
    to: Option<&str>,
    subject: &str,
    body: String,
) -> Result<Message, DeliverError> {
    let from: Mailbox = from.parse().map_err(DeliverError::From)?;
    let to = to
        .filter(|t| !t.trim().is_empty())
        .ok_or(DeliverError::NoAddress)?;
    let to: Mailbox = to.trim().parse().map_err(DeliverError::To)?;
    let host = from.email.domain().to_string();
    Message::builder()
        .from(from)
        .to(to)
        .subject(subject)
        .message_id(Some(format!("<{}@{host}>", file_safe(key))))
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(DeliverError::Message)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_is_percent_decoded_as_a_url() {
        for raw in ["smtp://a%2Bb%26c:p%2Bw%20x@h", "smtp://a+b&c:p+w%20x@h"] {
            let url = url::Url::parse(raw).unwrap();
            assert_eq!(
                credentials(&url).unwrap(),
                (Some("a+b&c".to_string()), Some("p+w x".to_string())),
                "{raw}"
            );
        }
        let url = url::Url::parse("smtp://h").unwrap();
        assert_eq!(credentials(&url).unwrap(), (None, None));
    }

    #[test]
    fn password_escapes_decode_exactly() {
        let url = url::Url::parse("smtp://u:a+b%2Bc%40d%3Ae@h").unwrap();
        assert_eq!(
            credentials(&url).unwrap(),
            (Some("u".to_string()), Some("a+b+c@d:e".to_string()))
        );
    }

    #[tokio::test]
    async fn unknown_url_options_are_refused() {
        let config = |url: &str| DeliveryConfig {
            outbox_dir: PathBuf::from("outbox"),
            smtp_url: Some(url.into()),
            smtp_user: None,
            smtp_password: None,
            concurrency: 1,
            retry_schedule: vec![],
            lease: std::time::Duration::from_secs(60),
            warnings: vec![],
        };
        let err = Mailer::new(&config("smtp://h?password=x"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("SEGD_SMTP_URL") && err.contains("allow_plaintext_auth"),
            "{err}"
        );
        assert!(Mailer::new(&config("smtp://u:p@h?allow_plaintext_auth=true")).is_ok());
    }
}
