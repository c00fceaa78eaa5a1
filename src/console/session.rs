//! Console sessions: a random id in an HttpOnly, SameSite=Strict session
//! cookie, held in memory with the session's CSRF token. Signing in checks
//! the API token once; the token itself is never kept nor sent back.

use axum::http::{HeaderMap, HeaderValue, header};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The session cookie's name.
pub const COOKIE: &str = "segd_console";

/// The most sessions held at once: opening one more forgets the oldest.
const MAX_SESSIONS: usize = 1024;

/// How long a session lasts, however it is used.
const LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

#[derive(Default)]
pub struct Sessions {
    by_id: HashMap<String, Entry>,
}

struct Entry {
    csrf: String,
    since: Instant,
}

/// What a request's session allows: `csrf` is its form token when signed in.
#[derive(Debug, Default)]
pub struct View {
    pub id: Option<String>,
    pub csrf: Option<String>,
}

impl Sessions {
    /// Opens a session: its id and its CSRF token.
    pub fn open(&mut self) -> (String, String) {
        self.by_id.retain(|_, e| e.since.elapsed() < LIFETIME);
        if self.by_id.len() >= MAX_SESSIONS
            && let Some(oldest) = self
                .by_id
                .iter()
                .min_by_key(|(_, e)| e.since)
                .map(|(id, _)| id.clone())
        {
            self.by_id.remove(&oldest);
        }
        let (id, csrf) = (random_hex(), random_hex());
        self.by_id.insert(
            id.clone(),
            Entry {
                csrf: csrf.clone(),
                since: Instant::now(),
            },
        );
        (id, csrf)
    }

    /// The session a request's cookie names, if it is open.
    pub fn view(&self, headers: &HeaderMap) -> View {
        let Some(id) = cookie(headers) else {
            return View::default();
        };
        match self.by_id.get(id) {
            Some(e) if e.since.elapsed() < LIFETIME => View {
                id: Some(id.to_string()),
                csrf: Some(e.csrf.clone()),
            },
            _ => View::default(),
        }
    }

    pub fn close(&mut self, id: &str) {
        self.by_id.remove(id);
    }
}

/// 32 random bytes as hex.
fn random_hex() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The session id the request's cookies carry.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// The cookie that opens a session: for the browser session only (no
/// Max-Age), never readable by a script, never sent by another site.
pub fn set_cookie(id: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/")).ok()
}

/// The cookie that ends a session.
pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("segd_console=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

/// Whether a request comes from the console's own pages: its `Origin`, or
/// else its `Referer`, when present, names the host it was sent to.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let ours = |url: &str| {
        url.strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .is_some_and(|rest| rest == host || rest.starts_with(&format!("{host}/")))
    };
    if let Some(origin) = headers.get(header::ORIGIN) {
        return origin.to_str().is_ok_and(ours);
    }
    if let Some(referer) = headers.get(header::REFERER) {
        return referer.to_str().is_ok_and(ours);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                k,
                HeaderValue::from_str(v).unwrap_or_else(|e| panic!("{e}")),
            );
        }
        h
    }

    #[test]
    fn a_session_is_found_by_its_cookie_only() {
        let mut s = Sessions::default();
        let (id, csrf) = s.open();
        assert_ne!(id, csrf);
        let view = s.view(&headers(&[(
            header::COOKIE,
            &format!("a=b; {COOKIE}={id}"),
        )]));
        assert_eq!(view.csrf.as_deref(), Some(csrf.as_str()));
        assert!(
            s.view(&headers(&[(header::COOKIE, "segd_console=nope")]))
                .csrf
                .is_none()
        );
        s.close(&id);
        assert!(
            s.view(&headers(&[(header::COOKIE, &format!("{COOKIE}={id}"))]))
                .csrf
                .is_none()
        );
    }

    #[test]
    fn sessions_are_bounded() {
        let mut s = Sessions::default();
        for _ in 0..MAX_SESSIONS + 10 {
            s.open();
        }
        assert_eq!(s.by_id.len(), MAX_SESSIONS);
    }

    #[test]
    fn origins() {
        let host = (header::HOST, "127.0.0.1:8080");
        assert!(same_origin(&headers(std::slice::from_ref(&host))));
        assert!(same_origin(&headers(&[
            host.clone(),
            (header::ORIGIN, "http://127.0.0.1:8080")
        ])));
        assert!(!same_origin(&headers(&[
            host.clone(),
            (header::ORIGIN, "http://evil.test")
        ])));
        assert!(!same_origin(&headers(&[
            host.clone(),
            (header::ORIGIN, "http://127.0.0.1:8080.evil.test")
        ])));
        assert!(same_origin(&headers(&[
            host.clone(),
            (header::REFERER, "http://127.0.0.1:8080/deliveries/1")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            (header::REFERER, "https://evil.test/")
        ])));
    }
}
