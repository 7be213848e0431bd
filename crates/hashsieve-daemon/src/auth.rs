//! Bearer tokens with roles, stored as SHA-256 digests and compared in constant time, each
//! with an optional rate limit (a token bucket: a sustained rate and a burst).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};

use crate::config::{Role, TokenConfig};

/// Why a request is not allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No usable `Authorization: Bearer` header.
    Missing,
    /// The token is not one of ours.
    Unknown,
    /// The token lacks the role.
    Forbidden,
    /// The token is over its rate limit; it may try again after this long.
    RateLimited(Duration),
}

#[derive(Debug, Clone)]
struct Token {
    id: String,
    digest: [u8; 32],
    roles: Vec<Role>,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
}

/// The configured tokens.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    tokens: Vec<Token>,
}

impl Tokens {
    /// The tokens of a checked configuration.
    pub fn new(configured: &[TokenConfig]) -> Tokens {
        let tokens = configured
            .iter()
            .map(|t| Token {
                id: t.id.clone(),
                digest: hex::decode(&t.sha256)
                    .ok()
                    .and_then(|d| d.try_into().ok())
                    .expect("checked: 64 hex digits"),
                roles: t.roles.clone(),
                limiter: t.rate_per_sec.map(|rate| {
                    let rate = NonZeroU32::new(rate).expect("checked: at least 1");
                    let burst = t.burst.and_then(NonZeroU32::new).unwrap_or(rate);
                    Arc::new(RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)))
                }),
            })
            .collect();
        Tokens { tokens }
    }

    /// Whether any token is configured; without one, matching is open and admin is refused.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The id of the token in `authorization` if it may act as `role` and is within its rate
    /// limit (a request that is refused does not count against it). Every configured digest is
    /// compared, each in constant time, so timing says nothing about which matched or how
    /// closely.
    pub fn authorize(&self, authorization: Option<&str>, role: Role) -> Result<&str, Denied> {
        let presented = authorization
            .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
            .ok_or(Denied::Missing)?;
        self.authenticate(presented, role)
    }

    /// As [`Tokens::authorize`], for a token presented on its own (the review page's sign-in).
    pub fn authenticate(&self, presented: &str, role: Role) -> Result<&str, Denied> {
        let presented = Some(presented.trim()).filter(|token| !token.is_empty()).ok_or(Denied::Missing)?;
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for token in &self.tokens {
            let difference = token.digest.iter().zip(&digest).fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if std::hint::black_box(difference) == 0 {
                found = Some(token);
            }
        }
        let token = found.ok_or(Denied::Unknown)?;
        // Admin implies match.
        if !(token.roles.contains(&role) || token.roles.contains(&Role::Admin)) {
            return Err(Denied::Forbidden);
        }
        if let Some(limiter) = &token.limiter
            && let Err(not_until) = limiter.check()
        {
            return Err(Denied::RateLimited(not_until.wait_time_from(DefaultClock::default().now())));
        }
        Ok(&token.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        let digest = |text: &str| hex::encode(Sha256::digest(text));
        Tokens::new(&[
            TokenConfig::new("ingest", &digest("s3cret-match"), &[Role::Match]),
            TokenConfig::new("ops", &digest("s3cret-admin"), &[Role::Admin]),
        ])
    }

    #[test]
    fn roles_are_enforced() {
        let tokens = tokens();
        assert_eq!(tokens.authorize(Some("Bearer s3cret-match"), Role::Match), Ok("ingest"));
        assert_eq!(tokens.authorize(Some("Bearer s3cret-match"), Role::Admin), Err(Denied::Forbidden));
        assert_eq!(tokens.authorize(Some("Bearer s3cret-admin"), Role::Match), Ok("ops"));
        assert_eq!(tokens.authorize(Some("Bearer s3cret-admin"), Role::Admin), Ok("ops"));
        assert_eq!(tokens.authorize(Some("Bearer nope"), Role::Match), Err(Denied::Unknown));
        assert_eq!(tokens.authorize(Some("Basic czNjcmV0"), Role::Match), Err(Denied::Missing));
        assert_eq!(tokens.authorize(None, Role::Match), Err(Denied::Missing));
        assert_eq!(tokens.authorize(Some("Bearer "), Role::Match), Err(Denied::Missing));
    }

    #[test]
    fn rate_limits_allow_the_burst_then_refuse_until_refilled() {
        let digest = hex::encode(Sha256::digest("limited"));
        let tokens = Tokens::new(&[TokenConfig {
            rate_per_sec: Some(1),
            burst: Some(3),
            ..TokenConfig::new("slow", &digest, &[Role::Match])
        }]);
        for _ in 0..3 {
            assert_eq!(tokens.authorize(Some("Bearer limited"), Role::Match), Ok("slow"));
        }
        match tokens.authorize(Some("Bearer limited"), Role::Match) {
            Err(Denied::RateLimited(wait)) => assert!(wait <= Duration::from_secs(1), "{wait:?}"),
            other => panic!("{other:?}"),
        }
        // A refusal for another reason does not spend the budget.
        assert_eq!(tokens.authorize(Some("Bearer limited"), Role::Admin), Err(Denied::Forbidden));
    }
}
