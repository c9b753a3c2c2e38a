//! Client API keys: generation, hashing and display.
//!
//! A key is `tg-` followed by 43 base64url characters (32 random bytes). Only
//! its SHA-256 is stored; lookups hash the presented key and compare hashes.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const KEY_PREFIX: &str = "tg-";
const RANDOM_BYTES: usize = 32;
const ENCODED_LEN: usize = 43;

/// The randomness source failed; no key can be made safely.
#[derive(Debug, thiserror::Error)]
#[error("the system random number generator failed")]
pub struct RandomError;

/// Fills `buf` from the operating system's CSPRNG.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), RandomError> {
    getrandom::fill(buf).map_err(|_| RandomError)
}

/// A freshly generated plaintext key, shown to its owner once.
#[derive(Clone, PartialEq, Eq)]
pub struct PlaintextKey(String);

impl PlaintextKey {
    pub fn generate() -> Result<Self, RandomError> {
        let mut bytes = [0u8; RANDOM_BYTES];
        random_bytes(&mut bytes)?;
        Ok(Self(format!(
            "{KEY_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(bytes)
        )))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> KeyHash {
        KeyHash::of(&self.0)
    }

    /// The first seven characters (`tg-` and four more), for listings.
    pub fn display_prefix(&self) -> String {
        self.0.chars().take(KEY_PREFIX.len() + 4).collect()
    }

    pub fn last4(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        chars[chars.len().saturating_sub(4)..].iter().collect()
    }
}

impl std::fmt::Debug for PlaintextKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlaintextKey(..)")
    }
}

/// Whether `presented` has the shape of a Tollgate key. Only a cheap filter
/// before hashing: a well-formed but unknown key is still refused later.
pub fn looks_like_key(presented: &str) -> bool {
    presented.strip_prefix(KEY_PREFIX).is_some_and(|rest| {
        rest.len() == ENCODED_LEN
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Lower-case hex SHA-256 of a key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyHash(String);

impl KeyHash {
    pub fn of(presented: &str) -> Self {
        let digest = Sha256::digest(presented.as_bytes());
        let mut hex = String::with_capacity(64);
        for byte in digest {
            hex.push(char::from_digit(u32::from(byte >> 4), 16).unwrap_or('0'));
            hex.push(char::from_digit(u32::from(byte & 0xf), 16).unwrap_or('0'));
        }
        Self(hex)
    }

    /// Wraps a stored hash.
    pub fn from_stored(hex: String) -> Self {
        Self(hex)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison.
    pub fn matches(&self, other: &KeyHash) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape() -> Result<(), RandomError> {
        let key = PlaintextKey::generate()?;
        assert_eq!(key.expose().len(), 3 + 43);
        assert!(looks_like_key(key.expose()));
        assert_eq!(key.display_prefix().len(), 7);
        assert!(key.expose().ends_with(&key.last4()));
        assert_ne!(PlaintextKey::generate()?.expose(), key.expose());
        Ok(())
    }

    #[test]
    fn hash_is_hex_sha256() {
        assert_eq!(
            KeyHash::of("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(KeyHash::of("a").matches(&KeyHash::of("a")));
        assert!(!KeyHash::of("a").matches(&KeyHash::of("b")));
    }

    #[test]
    fn rejects_malformed_keys() {
        assert!(!looks_like_key("sk-123"));
        assert!(!looks_like_key("tg-short"));
        assert!(!looks_like_key(&format!("tg-{}", "!".repeat(43))));
    }

    #[test]
    fn debug_never_shows_the_key() -> Result<(), RandomError> {
        let key = PlaintextKey::generate()?;
        assert!(!format!("{key:?}").contains(key.expose()));
        Ok(())
    }
}
