//! The edge's bearer token, shared between the server and whoever reloads
//! it (the `hypha` binary on SIGHUP), so it can be rotated without a
//! restart. Its `Debug` output never shows it.

use std::sync::{Arc, RwLock};

/// A bearer token that can be replaced while the server runs.
#[derive(Clone)]
pub struct Token(Arc<RwLock<String>>);

impl Token {
    /// A token; see [`Token::set`] to replace it.
    pub fn new(token: impl Into<String>) -> Token {
        Token(Arc::new(RwLock::new(token.into())))
    }

    /// Replaces the token for every later request.
    pub fn set(&self, token: String) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = token;
    }

    /// Whether `presented` is the token, compared without an early exit so
    /// that response time does not leak a prefix.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let token = self.0.read().unwrap_or_else(|p| p.into_inner());
        equal_in_constant_time(presented, token.as_bytes())
    }

    /// The status page's read pass for the current token: the hex of
    /// HMAC-SHA256(token, [`READ_PASS_CONTEXT`]). It grants reads only, and
    /// tells nothing about the token.
    pub fn read_pass(&self) -> String {
        use hmac::Mac as _;
        let token = self.0.read().unwrap_or_else(|p| p.into_inner());
        let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(token.as_bytes()) else {
            unreachable!("HMAC takes keys of any length")
        };
        mac.update(READ_PASS_CONTEXT);
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether `presented` is the current token's read pass.
    pub fn matches_read_pass(&self, presented: &[u8]) -> bool {
        equal_in_constant_time(presented, self.read_pass().as_bytes())
    }
}

/// What a read pass is a MAC of (versioned, so a new pass format voids old ones).
pub const READ_PASS_CONTEXT: &[u8] = b"hypha status page read pass v1";

/// Compares without an early exit, so response time does not leak a token prefix.
fn equal_in_constant_time(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl PartialEq for Token {
    fn eq(&self, other: &Token) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Token {}

impl From<&str> for Token {
    fn from(token: &str) -> Token {
        Token::new(token)
    }
}

impl From<String> for Token {
    fn from(token: String) -> Token {
        Token::new(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_token_takes_effect_and_nothing_else_matches() {
        let token = Token::new("old");
        let server = token.clone();
        assert!(server.matches(b"old"));
        assert!(!server.matches(b"ol") && !server.matches(b"oldx") && !server.matches(b""));
        token.set("new".into());
        assert!(server.matches(b"new") && !server.matches(b"old"));
        assert_eq!(format!("{token:?}"), "Token(..)");
    }
}
