//! Webhook POSTs signed per Standard Webhooks 1.0.

use super::DeliverError;
use super::retry::Attempt;
use crate::model::destination::{refused_host, refused_ip};
use std::net::SocketAddr;
use std::time::Duration;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// The shortest signing key accepted: Standard Webhooks recommends 24 to 64 bytes.
const MIN_KEY_BYTES: usize = 24;

/// A signing key read from the environment variable a communication names.
pub struct Signer(standardwebhooks::Webhook);

impl Signer {
    /// Reads `whsec_<base64>` from `var` and decodes the key, which must be at
    /// least [`MIN_KEY_BYTES`] long; the error names the variable, never the value.
    pub fn from_env(var: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, DeliverError> {
        use base64::Engine as _;
        let value = env(var)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| DeliverError::SecretUnset(var.to_string()))?;
        let malformed = || DeliverError::SecretMalformed(var.to_string());
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
            return Err(DeliverError::SecretTooShort {
                var: var.to_string(),
                min: MIN_KEY_BYTES,
            });
        }
        standardwebhooks::Webhook::from_bytes(key)
            .map(Signer)
            .map_err(|_| malformed())
    }

    pub fn sign(&self, key: &str, timestamp: i64, body: &str) -> Result<String, DeliverError> {
        self.0
            .sign(key, timestamp, body.as_bytes())
            .map_err(DeliverError::Sign)
    }
}

pub struct WebhookSender {
    client: reqwest::Client,
}

impl WebhookSender {
    pub fn new() -> Result<Self, DeliverError> {
        // reqwest takes rustls' process-wide crypto provider: ring, the one
        // lettre and sqlx use too (an error only says one is installed).
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Redirects are not followed, and names resolve through the guard, so a
        // request only ever reaches an address the URL's host resolved to and
        // segd allows.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(std::sync::Arc::new(GuardedResolver))
            .pool_max_idle_per_host(64)
            .user_agent(concat!("segd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(DeliverError::HttpClient)?;
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
        if let Some(refused) = url::Url::parse(url).ok().and_then(|u| {
            let host = u.host()?;
            refused_host(&host).map(|why| Refused {
                host: host.to_string(),
                why: format!("is {why}"),
            })
        }) {
            return Attempt::Permanent {
                error: refused.to_string(),
            };
        }
        let timestamp = chrono::Utc::now().timestamp();
        let signature = match signer.sign(key, timestamp, &body) {
            Ok(s) => s,
            Err(e) => {
                return Attempt::Permanent {
                    error: crate::error::chain(&e),
                };
            }
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
            Err(e) => match refusal(&e) {
                Some(refused) => Attempt::Permanent {
                    error: refused.to_string(),
                },
                None => Attempt::Retry {
                    error: format!("request failed: {}", without_url(&e)),
                    retry_after: None,
                },
            },
        }
    }
}

/// A webhook destination segd does not send to.
#[derive(Debug, thiserror::Error)]
#[error(
    "refused destination: {host} {why}; webhooks never go to link-local or cloud metadata addresses"
)]
struct Refused {
    host: String,
    why: String,
}

/// The refusal among an error's causes, if the guard refused the destination.
fn refusal(e: &reqwest::Error) -> Option<&Refused> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<Refused>() {
            return Some(r);
        }
        source = s.source();
    }
    None
}

/// Resolves webhook host names with the system resolver, then leaves out the
/// addresses segd refuses; a name that resolves to nothing else is refused.
struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            if let Some(why) = refused_host(&url::Host::Domain(&host)) {
                let why = format!("is {why}");
                return Err(Box::new(Refused { host, why }) as _);
            }
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed = allowed_addresses(&host, found)?;
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The addresses a name resolved to that segd may send to; none is a refusal.
fn allowed_addresses(host: &str, found: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, Refused> {
    let mut refused = None;
    let allowed: Vec<SocketAddr> = found
        .into_iter()
        .filter(|a| match refused_ip(a.ip()) {
            Some(why) => {
                refused.get_or_insert(why);
                false
            }
            None => true,
        })
        .collect();
    match (allowed.is_empty(), refused) {
        (true, Some(why)) => Err(Refused {
            host: host.to_string(),
            why: format!("resolves only to refused addresses, such as {why}"),
        }),
        _ => Ok(allowed),
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
    fn resolved_link_local_and_metadata_addresses_are_left_out() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        let mixed = vec![
            a("169.254.169.254:0"),
            a("10.0.0.7:0"),
            a("[::ffff:169.254.1.1]:0"),
        ];
        assert_eq!(
            allowed_addresses("h", mixed).unwrap(),
            vec![a("10.0.0.7:0")]
        );
        let only = vec![a("169.254.169.254:0"), a("[fe80::1]:0")];
        let err = allowed_addresses("evil.test", only)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("evil.test") && err.contains("link-local"),
            "{err}"
        );
        let metadata = vec![a("[fd00:ec2::254]:0")];
        assert!(allowed_addresses("h", metadata).is_err());
        let local = vec![a("127.0.0.1:0"), a("[::1]:0")];
        assert_eq!(
            allowed_addresses("localhost", local.clone()).unwrap(),
            local
        );
    }

    /// The real client refuses before any connection: literal addresses (which
    /// bypass name resolution), metadata names, and names the guard resolves.
    #[tokio::test]
    async fn the_sender_refuses_link_local_and_metadata_destinations() {
        let sender = WebhookSender::new().unwrap();
        let signer = Signer::from_env("HOOK", &|_| {
            Some("whsec_c2VnZC13ZWJob29rLWtleS0yM2J5dGVz".into())
        })
        .unwrap();
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://[fe80::1]:8080/",
            "http://metadata.google.internal/computeMetadata/v1/",
        ] {
            let got = sender
                .send(url, &signer, "k", "{}".into(), Duration::from_secs(5))
                .await;
            match got {
                Attempt::Permanent { error } => {
                    assert!(error.starts_with("refused destination"), "{url}: {error}")
                }
                other => panic!("{url}: {other:?}"),
            }
        }
        // Past the URL check, the client's resolver refuses too, and the refusal
        // is found among the request error's causes.
        let e = sender
            .client
            .get("http://metadata.google.internal/")
            .send()
            .await
            .unwrap_err();
        assert!(refusal(&e).is_some(), "{e:?}");
        // Loopback stays allowed: a closed port is a connection error, retried.
        let got = sender
            .send(
                "http://localhost:9/",
                &signer,
                "k",
                "{}".into(),
                Duration::from_secs(5),
            )
            .await;
        assert!(matches!(got, Attempt::Retry { .. }), "{got:?}");
    }

    #[test]
    fn secrets_from_env_name_the_variable_only() {
        let unset = Signer::from_env("HOOK", &|_| None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(unset.contains("HOOK"));
        let bad = Signer::from_env("HOOK", &|_| Some("whsec_%%%not-base64".into()))
            .err()
            .map(|e| e.to_string())
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
            if let Err(e) = got.map_err(|e| e.to_string()) {
                assert!(e.contains("HOOK") && e.contains("24 bytes"), "{e}");
            }
        }
    }
}
