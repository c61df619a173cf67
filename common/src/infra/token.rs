//! A secret bearer token: what an operator presents to `/admin/*` and what one bank presents
//! to the other's feed. Compared in constant time; never shown by `Debug`.

use std::fmt;
use std::sync::Arc;

use subtle::ConstantTimeEq;

/// Shortest token accepted: guessing one must be hopeless.
const MIN_LEN: usize = 16;

/// A secret token; its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Arc<str>);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

impl Token {
    /// For clap: at least 16 visible ASCII characters.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.len() < MIN_LEN || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!("a token must be at least {MIN_LEN} visible ASCII characters"));
        }
        Ok(Self(Arc::from(s)))
    }

    /// 32 random bytes, hex: for the local stack's first start.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the operating system's random source");
        Self(Arc::from(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()))
    }

    /// The secret itself: for an `Authorization` header or an `export` line, never a log.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }

    /// `Bearer <token>`, for a client's request.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Token;

    #[test]
    fn tokens_are_long_visible_and_compared_exactly() {
        assert!(Token::parse("short").is_err());
        assert!(Token::parse("sixteen chars ok").is_err(), "spaces are not visible ASCII");
        let t = Token::parse("0123456789abcdef").unwrap();
        assert!(t.matches("0123456789abcdef"));
        assert!(!t.matches("0123456789abcdeF"));
        assert!(!t.matches("0123456789abcdef0"));
        assert_eq!(format!("{t:?}"), "Token(***)");
        assert_eq!(Token::generate().expose().len(), 64);
    }
}
