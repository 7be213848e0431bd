//! Analysts' sessions: who is signed in, their CSRF token, and the verdict they may undo.
//!
//! A session is 32 random bytes, given to the browser as an `HttpOnly`, `SameSite=Strict`
//! cookie (`Secure` under TLS) and kept here only as its SHA-256 digest, so that this table
//! holds nothing a browser could present. A session ends at sign-out, `session_secs` after
//! sign-in, or `idle_secs` after its last request. Sessions live in memory: a restart signs
//! everyone out, which is the safe way round.
//!
//! Every state-changing request carries the session's CSRF token (a form field), compared in
//! constant time.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use hashsieve_triage::model::{GroupId, ItemId};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The cookie's name. `__Host-` would bind it to the origin, but needs `Secure`, which a plain
/// HTTP listener on a hotline's internal network cannot set.
pub const COOKIE: &str = "hashsieve_review";

/// The most sessions held at once; beyond it the longest idle is ended.
const MAX_SESSIONS: usize = 10_000;

/// The verdict a session gave last, which it may undo for a while.
#[derive(Debug, Clone)]
pub struct LastVerdict {
    /// The group judged.
    pub group: GroupId,
    /// Its members.
    pub items: Vec<ItemId>,
    /// What was decided, as the page names it.
    pub verdict: String,
    /// When.
    pub at: Instant,
}

/// What a request learns of its session.
#[derive(Debug, Clone)]
pub struct Session {
    /// The analyst: the id of the token they signed in with.
    pub analyst: String,
    /// The CSRF token of this session, in hex, for the page's forms.
    pub csrf: String,
    /// The verdict they may undo, if they gave one.
    pub last_verdict: Option<LastVerdict>,
}

struct Held {
    session: Session,
    csrf: [u8; 32],
    started: Instant,
    seen: Instant,
}

/// The sessions of signed-in analysts.
pub struct Sessions {
    held: Mutex<HashMap<[u8; 32], Held>>,
    lifetime: Duration,
    idle: Duration,
}

impl Sessions {
    /// Sessions that last at most `lifetime`, and end after `idle` without a request.
    pub fn new(lifetime: Duration, idle: Duration) -> Sessions {
        Sessions { held: Mutex::new(HashMap::new()), lifetime, idle }
    }

    /// Starts a session for `analyst`: the cookie's value, and the session.
    pub fn start(&self, analyst: &str) -> std::io::Result<(String, Session)> {
        let key = random()?;
        let csrf = random()?;
        let session = Session { analyst: analyst.to_string(), csrf: hex::encode(csrf), last_verdict: None };
        let now = Instant::now();
        let mut held = self.lock();
        held.retain(|_, held| self.live(held, now));
        if held.len() >= MAX_SESSIONS
            && let Some(idlest) = held.iter().min_by_key(|(_, held)| held.seen).map(|(key, _)| *key)
        {
            held.remove(&idlest);
        }
        held.insert(digest(&key), Held { session: session.clone(), csrf, started: now, seen: now });
        Ok((hex::encode(key), session))
    }

    /// The session of a cookie's value, if it is live; counts as a request.
    pub fn get(&self, cookie: &str) -> Option<Session> {
        let key = digest(&hex::decode(cookie).ok()?);
        let now = Instant::now();
        let mut sessions = self.lock();
        let held = sessions.get_mut(&key)?;
        if !self.live(held, now) {
            sessions.remove(&key);
            return None;
        }
        held.seen = now;
        Some(held.session.clone())
    }

    /// Whether `presented` is the CSRF token of the session of `cookie`, compared in constant
    /// time.
    pub fn csrf_matches(&self, cookie: &str, presented: &str) -> bool {
        let (Some(key), Ok(presented)) = (hex::decode(cookie).ok(), hex::decode(presented)) else {
            return false;
        };
        let sessions = self.lock();
        sessions.get(&digest(&key)).is_some_and(|held| bool::from(held.csrf.ct_eq(&presented[..])))
    }

    /// Records the verdict the session of `cookie` gave, or forgets it (after an undo).
    pub fn set_last_verdict(&self, cookie: &str, verdict: Option<LastVerdict>) {
        let Ok(key) = hex::decode(cookie) else { return };
        if let Some(held) = self.lock().get_mut(&digest(&key)) {
            held.session.last_verdict = verdict;
        }
    }

    /// Ends the session of `cookie`.
    pub fn end(&self, cookie: &str) {
        if let Ok(key) = hex::decode(cookie) {
            self.lock().remove(&digest(&key));
        }
    }

    fn live(&self, held: &Held, now: Instant) -> bool {
        now.duration_since(held.started) < self.lifetime && now.duration_since(held.seen) < self.idle
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<[u8; 32], Held>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn random() -> std::io::Result<[u8; 32]> {
    let mut bytes = [0; 32];
    getrandom::fill(&mut bytes).map_err(|err| std::io::Error::other(err.to_string()))?;
    Ok(bytes)
}

fn digest(key: &[u8]) -> [u8; 32] {
    Sha256::digest(key).into()
}

/// The value of the session cookie in a request's `Cookie` headers.
pub fn cookie_of(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_known_by_its_cookie_until_it_ends() {
        let sessions = Sessions::new(Duration::from_secs(60), Duration::from_secs(60));
        let (cookie, session) = sessions.start("analyst-1").unwrap();
        assert_eq!(sessions.get(&cookie).unwrap().analyst, "analyst-1");
        assert!(sessions.csrf_matches(&cookie, &session.csrf));
        let (other, other_session) = sessions.start("analyst-2").unwrap();
        assert!(!sessions.csrf_matches(&cookie, &other_session.csrf), "a token is its session's only");
        assert!(!sessions.csrf_matches(&cookie, ""));
        assert!(!sessions.csrf_matches(&cookie, "zz"));
        sessions.end(&cookie);
        assert!(sessions.get(&cookie).is_none());
        assert!(!sessions.csrf_matches(&cookie, &session.csrf));
        assert!(sessions.get(&other).is_some());
        assert!(sessions.get("not hex").is_none() && sessions.get(&"00".repeat(32)).is_none());
    }

    #[test]
    fn a_session_ends_when_idle_or_old() {
        let sessions = Sessions::new(Duration::from_secs(60), Duration::from_millis(50));
        let (cookie, _) = sessions.start("a").unwrap();
        std::thread::sleep(Duration::from_millis(80));
        assert!(sessions.get(&cookie).is_none(), "idle too long");

        let sessions = Sessions::new(Duration::from_millis(120), Duration::from_secs(60));
        let (cookie, _) = sessions.start("a").unwrap();
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(30));
            assert!(sessions.get(&cookie).is_some(), "busy, and young enough");
        }
        std::thread::sleep(Duration::from_millis(60));
        assert!(sessions.get(&cookie).is_none(), "older than its lifetime, however busy");
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = axum::http::HeaderMap::new();
        headers.append("cookie", "a=1; hashsieve_review=abc; b=2".parse().unwrap());
        assert_eq!(cookie_of(&headers), Some("abc"));
        headers.clear();
        headers.append("cookie", "hashsieve_reviewx=1".parse().unwrap());
        assert_eq!(cookie_of(&headers), None);
    }
}
