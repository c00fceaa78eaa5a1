//! Webhook POSTs signed per Standard Webhooks 1.0.

use super::retry::Attempt;
use std::time::Duration;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// The shortest signing key accepted: Standard Webhooks recommends 24 to 64 bytes.
pub const MIN_KEY_BYTES: usize = 24;

/// A signing key read from the environment variable a communication names.
pub struct Signer(standardwebhooks::Webhook);

impl Signer {
    /// Reads `whsec_<base64>` from `var` and decodes the key, which must be at
    /// least [`MIN_KEY_BYTES`] long; the error names the variable, never the value.
    pub fn from_env(var: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, String> {
        use base64::Engine as _;
        let value = env(var).filter(|v| !v.trim().is_empty()).ok_or_else(|| {
            format!("the webhook secret variable {var} is not set; nothing is sent unsigned")
        })?;
        let malformed = || {
            format!(
                "the webhook secret in {var} is malformed: it must have the form whsec_<base64>"
            )
        };
        let key = value
            .trim()
            .strip_prefix("whsec_")
            .ok_or_else(malformed)
            .and_then(|b64| {
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|_| malformed())
            })?;
        if key.len() < MIN_KEY_BYTES {
            return Err(format!(
                "the webhook secret in {var} is too short: its key (the base64 after whsec_) must decode to at least {MIN_KEY_BYTES} bytes; nothing is sent"
            ));
        }
        standardwebhooks::Webhook::from_bytes(key)
            .map(Signer)
            .map_err(|_| malformed())
    }

    pub fn sign(&self, key: &str, timestamp: i64, body: &str) -> Result<String, String> {
        self.0
            .sign(key, timestamp, body.as_bytes())
            .map_err(|e| format!("signing failed: {e}"))
    }
}

pub struct WebhookSender {
    client: reqwest::Client,
}

impl WebhookSender {
    pub fn new() -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(64)
            .user_agent(concat!("segd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self { client })
    }

    /// One attempt: signs anew (fresh timestamp) and POSTs.
    pub async fn send(
        &self,
        url: &str,
        signer: &Signer,
        key: &str,
        body: String,
        timeout: Duration,
    ) -> Attempt {
        let timestamp = chrono::Utc::now().timestamp();
        let signature = match signer.sign(key, timestamp, &body) {
            Ok(s) => s,
            Err(error) => return Attempt::Permanent { error },
        };
        let result = self
            .client
            .post(url)
            .timeout(timeout)
            .header("content-type", "application/json")
            .header("webhook-id", key)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        match result {
            Ok(resp) => classify(resp.status().as_u16(), retry_after(resp.headers())),
            Err(e) if e.is_timeout() => Attempt::Retry {
                error: format!("no answer within {}s", timeout.as_secs_f64()),
                retry_after: None,
            },
            Err(e) => Attempt::Retry {
                error: format!("request failed: {}", without_url(&e)),
                retry_after: None,
            },
        }
    }
}

/// The error and its causes, without the URL (which may carry a token).
fn without_url(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    match e.url() {
        Some(u) => text.replace(u.as_str(), "<url>"),
        None => text,
    }
}

/// `Retry-After` in seconds or as an HTTP date; [`super::retry::next_delay`]
/// caps either form at [`super::retry::MAX_RETRY_AFTER`].
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
        .to_std()
        .ok()
}

/// SPEC §3: 2xx success; 408, 429 and 5xx retried; other statuses fail for good.
pub fn classify(status: u16, retry_after: Option<Duration>) -> Attempt {
    match status {
        200..=299 => Attempt::Sent,
        408 | 429 | 500..=599 => Attempt::Retry {
            error: format!("HTTP {status}"),
            retry_after,
        },
        _ => Attempt::Permanent {
            error: format!("HTTP {status}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(classify(204, None), Attempt::Sent);
        assert!(matches!(classify(503, None), Attempt::Retry { .. }));
        assert!(matches!(classify(429, None), Attempt::Retry { .. }));
        assert!(matches!(classify(408, None), Attempt::Retry { .. }));
        assert!(matches!(classify(400, None), Attempt::Permanent { .. }));
        assert!(matches!(classify(301, None), Attempt::Permanent { .. }));
    }

    #[test]
    fn secrets_from_env_name_the_variable_only() {
        let unset = Signer::from_env("HOOK", &|_| None)
            .err()
            .unwrap_or_default();
        assert!(unset.contains("HOOK"));
        let bad = Signer::from_env("HOOK", &|_| Some("whsec_%%%not-base64".into()))
            .err()
            .unwrap_or_default();
        assert!(bad.contains("HOOK") && !bad.contains("not-base64"), "{bad}");
        // 23 and 24 bytes of key ("segd-webhook-key-23bytes" less or with its last byte).
        for (value, ok) in [
            ("whsec_", false),
            ("whsec_AQ==", false),
            ("whsec_c2VnZC13ZWJob29rLWtleS0yM2J5dGU=", false),
            ("whsec_c2VnZC13ZWJob29rLWtleS0yM2J5dGVz", true),
        ] {
            let got = Signer::from_env("HOOK", &|_| Some(value.into()));
            assert_eq!(got.is_ok(), ok, "{value}");
            if let Err(e) = got {
                assert!(e.contains("HOOK") && e.contains("24 bytes"), "{e}");
            }
        }
    }
}
