//! Bearer tokens with roles, stored as SHA-256 digests and compared in constant time.

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
}

#[derive(Debug, Clone)]
struct Token {
    id: String,
    digest: [u8; 32],
    roles: Vec<Role>,
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
            })
            .collect();
        Tokens { tokens }
    }

    /// Whether any token is configured; without one, matching is open and admin is refused.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The id of the token in `authorization` if it may act as `role`. Every configured
    /// digest is compared, each in constant time, so timing says nothing about which matched
    /// or how closely.
    pub fn authorize(&self, authorization: Option<&str>, role: Role) -> Result<&str, Denied> {
        let presented = authorization
            .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or(Denied::Missing)?;
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
        if token.roles.contains(&role) || token.roles.contains(&Role::Admin) {
            Ok(&token.id)
        } else {
            Err(Denied::Forbidden)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        let digest = |text: &str| hex::encode(Sha256::digest(text));
        Tokens::new(&[
            TokenConfig { id: "ingest".into(), sha256: digest("s3cret-match"), roles: vec![Role::Match] },
            TokenConfig { id: "ops".into(), sha256: digest("s3cret-admin"), roles: vec![Role::Admin] },
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
}
