//! Provider secrets at rest: AES-256-GCM under a master key with a key id.
//!
//! A sealed secret is the text `v1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`
//! with a fresh random 96-bit nonce per secret. The key id (the first 8 hex
//! characters of the SHA-256 of the master key) says which master key sealed
//! it, so a new key can be introduced while secrets sealed under the old one
//! still open ([`SecretBox::with_retired_key`]) until they are sealed again.
//! The version and key id are bound into the ciphertext as associated data:
//! editing either makes the secret fail to open.

use std::fmt;
use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use secrecy::zeroize::Zeroize;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

const VERSION: &str = "v1";
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const KEY_ID_LEN: usize = 8;

/// Why a master key could not be made or a secret sealed or opened. The
/// messages never contain key material or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("the master key must be the base64 encoding of exactly 32 bytes")]
    InvalidMasterKey,
    #[error("the system random number generator failed")]
    Random,
    #[error("the sealed secret is malformed")]
    Malformed,
    #[error("the sealed secret has unsupported version {0:?}")]
    UnsupportedVersion(String),
    #[error("the secret was sealed under master key {0}, which is not loaded")]
    UnknownKey(String),
    #[error("the sealed secret does not authenticate (wrong master key or tampered)")]
    Authentication,
    #[error("encryption failed")]
    Encryption,
}

/// The 32-byte key every provider secret is sealed under. Its bytes are
/// zeroed on drop and never printed.
pub struct MasterKey {
    bytes: secrecy::SecretBox<[u8; KEY_LEN]>,
    id: String,
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        let id = key_id_of(&bytes);
        Self {
            bytes: secrecy::SecretBox::new(Box::new(bytes)),
            id,
        }
    }

    /// Reads a key given as base64 (standard or URL-safe alphabet, padded or
    /// not; surrounding whitespace ignored), e.g. `TOLLGATE_MASTER_KEY`.
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let text = text.trim();
        let mut decoded = [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
            .into_iter()
            .find_map(|engine| engine.decode(text).ok())
            .ok_or(CryptoError::InvalidMasterKey)?;
        let key = <[u8; KEY_LEN]>::try_from(decoded.as_slice())
            .map(Self::from_bytes)
            .map_err(|_| CryptoError::InvalidMasterKey);
        decoded.zeroize();
        key
    }

    /// A new random key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut bytes = [0u8; KEY_LEN];
        getrandom::fill(&mut bytes).map_err(|_| CryptoError::Random)?;
        let key = Self::from_bytes(bytes);
        bytes.zeroize();
        Ok(key)
    }

    /// The key as standard padded base64, for writing it to `master.key`.
    pub fn to_base64(&self) -> SecretString {
        SecretString::from(STANDARD.encode(self.bytes.expose_secret()))
    }

    /// The first 8 hex characters of the SHA-256 of the key.
    pub fn key_id(&self) -> &str {
        &self.id
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id).finish()
    }
}

fn key_id_of(bytes: &[u8; KEY_LEN]) -> String {
    let digest = Sha256::digest(bytes);
    let mut id = String::with_capacity(KEY_ID_LEN);
    for byte in &digest[..KEY_ID_LEN / 2] {
        id.push(hex_digit(byte >> 4));
        id.push(hex_digit(byte & 0xf));
    }
    id
}

fn hex_digit(nibble: u8) -> char {
    char::from_digit(u32::from(nibble), 16).unwrap_or('0')
}

struct KeyedCipher {
    id: String,
    cipher: Aes256Gcm,
}

impl KeyedCipher {
    fn new(key: &MasterKey) -> Self {
        Self {
            id: key.id.clone(),
            cipher: Aes256Gcm::new(key.bytes.expose_secret().into()),
        }
    }
}

/// Seals and opens provider secrets. Cheap to clone (the ciphers are shared).
#[derive(Clone)]
pub struct SecretBox {
    current: Arc<KeyedCipher>,
    retired: Vec<Arc<KeyedCipher>>,
}

impl SecretBox {
    /// Seals with `key` and opens what `key` sealed.
    pub fn new(key: &MasterKey) -> Self {
        Self {
            current: Arc::new(KeyedCipher::new(key)),
            retired: Vec::new(),
        }
    }

    /// Also opens secrets sealed under an earlier master key (never seals
    /// with it), so a key can be rotated without a flag day.
    pub fn with_retired_key(mut self, key: &MasterKey) -> Self {
        if key.id != self.current.id && self.retired.iter().all(|old| old.id != key.id) {
            self.retired.push(Arc::new(KeyedCipher::new(key)));
        }
        self
    }

    /// The id of the key new secrets are sealed under.
    pub fn key_id(&self) -> &str {
        &self.current.id
    }

    pub fn seal(&self, plaintext: &str) -> Result<String, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| CryptoError::Random)?;
        let aad = associated_data(&self.current.id);
        let ciphertext = self
            .current
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Encryption)?;
        let mut blob = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ciphertext);
        Ok(format!("{aad}:{}", URL_SAFE_NO_PAD.encode(blob)))
    }

    pub fn open(&self, sealed: &str) -> Result<SecretString, CryptoError> {
        let parts = SealedParts::parse(sealed)?;
        let keyed = std::iter::once(&self.current)
            .chain(&self.retired)
            .find(|keyed| keyed.id == parts.key_id)
            .ok_or_else(|| CryptoError::UnknownKey(parts.key_id.to_owned()))?;
        let blob = URL_SAFE_NO_PAD
            .decode(parts.payload)
            .map_err(|_| CryptoError::Malformed)?;
        if blob.len() < NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Malformed);
        }
        let (nonce, ciphertext) = blob.split_at(NONCE_LEN);
        let aad = associated_data(parts.key_id);
        let plaintext = keyed
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Authentication)?;
        String::from_utf8(plaintext)
            .map(SecretString::from)
            .map_err(|err| {
                err.into_bytes().zeroize();
                CryptoError::Malformed
            })
    }

    /// Whether `sealed` was sealed under a key other than the current one
    /// (and should be sealed again after a rotation).
    pub fn needs_reseal(&self, sealed: &str) -> bool {
        sealed_key_id(sealed) != Some(self.current.id.as_str())
    }
}

impl fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretBox")
            .field("key_id", &self.current.id)
            .field("retired", &self.retired.len())
            .finish()
    }
}

/// The key id a sealed secret names, if it is well formed.
pub fn sealed_key_id(sealed: &str) -> Option<&str> {
    SealedParts::parse(sealed).ok().map(|parts| parts.key_id)
}

fn associated_data(key_id: &str) -> String {
    format!("{VERSION}:{key_id}")
}

struct SealedParts<'a> {
    key_id: &'a str,
    payload: &'a str,
}

impl<'a> SealedParts<'a> {
    fn parse(sealed: &'a str) -> Result<Self, CryptoError> {
        let mut parts = sealed.splitn(3, ':');
        let (Some(version), Some(key_id), Some(payload)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(CryptoError::Malformed);
        };
        if version != VERSION {
            return Err(CryptoError::UnsupportedVersion(
                version.chars().take(8).collect(),
            ));
        }
        if key_id.len() != KEY_ID_LEN || !key_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CryptoError::Malformed);
        }
        Ok(Self { key_id, payload })
    }
}

/// Secrets at least this long show their first 3 and last 4 characters.
const FULL_MASK_MIN_CHARS: usize = 12;
/// Secrets at least this long (and shorter than the above) show their last 2.
const SHORT_MASK_MIN_CHARS: usize = 8;

/// A display form of a secret for reads: `sk-…abcd` (first 3 characters, an
/// ellipsis, last 4) for secrets of 12 characters or more; shorter ones show
/// only `…` and at most their last 2 characters; an empty secret shows
/// nothing.
pub fn mask(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    let tail = |n: usize| -> String { chars[chars.len() - n..].iter().collect() };
    match chars.len() {
        0 => String::new(),
        len if len >= FULL_MASK_MIN_CHARS => {
            let head: String = chars[..3].iter().collect();
            format!("{head}…{}", tail(4))
        }
        len if len >= SHORT_MASK_MIN_CHARS => format!("…{}", tail(2)),
        _ => "…".to_owned(),
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    const SECRET: &str = "sk-proj-0123456789abcdefXYZW";

    fn secret_box() -> SecretBox {
        SecretBox::new(&MasterKey::generate().unwrap())
    }

    #[test]
    fn round_trip() {
        let secrets = secret_box();
        let sealed = secrets.seal(SECRET).unwrap();
        assert_eq!(secrets.open(&sealed).unwrap().expose_secret(), SECRET);
        assert_eq!(sealed_key_id(&sealed), Some(secrets.key_id()));
        assert!(sealed.starts_with(&format!("v1:{}:", secrets.key_id())));
        let empty = secrets.seal("").unwrap();
        assert_eq!(secrets.open(&empty).unwrap().expose_secret(), "");
    }

    #[test]
    fn nonces_differ_and_ciphertext_never_contains_the_plaintext() {
        let secrets = secret_box();
        let first = secrets.seal(SECRET).unwrap();
        let second = secrets.seal(SECRET).unwrap();
        assert_ne!(first, second);
        for sealed in [&first, &second] {
            assert!(!sealed.contains(SECRET));
            assert!(!sealed.contains("0123456789"));
        }
    }

    #[test]
    fn wrong_key_fails_cleanly() {
        let sealed = secret_box().seal(SECRET).unwrap();
        let other = secret_box();
        assert!(matches!(
            other.open(&sealed),
            Err(CryptoError::UnknownKey(_))
        ));

        // Same key id text but a different key: authentication fails.
        let forged = sealed.replacen(sealed_key_id(&sealed).unwrap(), other.key_id(), 1);
        assert_eq!(
            other.open(&forged).unwrap_err(),
            CryptoError::Authentication
        );
        let message = other.open(&forged).unwrap_err().to_string();
        assert!(!message.contains(SECRET));
    }

    #[test]
    fn tampering_fails() {
        let secrets = secret_box();
        let sealed = secrets.seal(SECRET).unwrap();
        let (head, payload) = sealed.rsplit_once(':').unwrap();
        let mut blob = URL_SAFE_NO_PAD.decode(payload).unwrap();
        for index in [0, NONCE_LEN, blob.len() - 1] {
            let mut bad = blob.clone();
            bad[index] ^= 0x01;
            let tampered = format!("{head}:{}", URL_SAFE_NO_PAD.encode(&bad));
            assert_eq!(
                secrets.open(&tampered).unwrap_err(),
                CryptoError::Authentication
            );
        }
        blob.truncate(NONCE_LEN + TAG_LEN - 1);
        let short = format!("{head}:{}", URL_SAFE_NO_PAD.encode(&blob));
        assert_eq!(secrets.open(&short).unwrap_err(), CryptoError::Malformed);
        assert_eq!(secrets.open("garbage").unwrap_err(), CryptoError::Malformed);
        assert!(matches!(
            secrets.open(&sealed.replacen("v1:", "v9:", 1)),
            Err(CryptoError::UnsupportedVersion(_))
        ));
    }

    #[test]
    fn retired_keys_open_but_never_seal() {
        let old = MasterKey::generate().unwrap();
        let new = MasterKey::generate().unwrap();
        let sealed_old = SecretBox::new(&old).seal(SECRET).unwrap();
        let rotated = SecretBox::new(&new).with_retired_key(&old);
        assert_eq!(rotated.open(&sealed_old).unwrap().expose_secret(), SECRET);
        assert!(rotated.needs_reseal(&sealed_old));
        let sealed_new = rotated.seal(SECRET).unwrap();
        assert_eq!(sealed_key_id(&sealed_new), Some(new.key_id()));
        assert!(!rotated.needs_reseal(&sealed_new));
    }

    #[test]
    fn master_key_parses_base64_and_hides_itself() {
        let key = MasterKey::generate().unwrap();
        let encoded = key.to_base64();
        let parsed = MasterKey::from_base64(&format!(" {}\n", encoded.expose_secret())).unwrap();
        assert_eq!(parsed.key_id(), key.key_id());
        assert_eq!(key.key_id().len(), 8);
        let url_safe = URL_SAFE_NO_PAD.encode([0xfbu8; 32]);
        assert!(MasterKey::from_base64(&url_safe).is_ok());
        assert_eq!(
            MasterKey::from_base64(&STANDARD.encode([1u8; 16])).unwrap_err(),
            CryptoError::InvalidMasterKey
        );
        assert!(MasterKey::from_base64("not base64!").is_err());
        assert!(!format!("{key:?}").contains(encoded.expose_secret()));
        // Known value: SHA-256 of 32 zero bytes starts with 66687aad.
        assert_eq!(MasterKey::from_bytes([0u8; 32]).key_id(), "66687aad");
    }

    #[test]
    fn masks_show_little() {
        assert_eq!(mask("sk-abcdefghijklmnop1234"), "sk-…1234");
        assert_eq!(mask("abcdefghijkl"), "abc…ijkl");
        assert_eq!(mask("abcdefghijk"), "…jk");
        assert_eq!(mask("abcdefgh"), "…gh");
        assert_eq!(mask("abcdefg"), "…");
        assert_eq!(mask(""), "");
        assert_eq!(mask("ключ-секрет-длинный"), "клю…нный");
    }
}
