//! Signed messages: every message one bank publishes carries an Ed25519 signature over its
//! exact body bytes, in the message property [`SIGNATURE_PROPERTY`], as
//! `v1:<key id>:<base64 signature>`. The receiver verifies it against the sender's public keys
//! before it moves any money (docs/ARCHITECTURE.md, "Trust").
//!
//! The key id is derived from the public key (the first 8 bytes of its SHA-512, in hex), so a
//! receiver can hold several keys of its peer at once: rotate by adding the new public key to
//! the peer's list, switching the sender to the new signing key, then removing the old one.
//!
//! Key formats: a signing key is the base64 of its 32-byte secret seed; a public key is the
//! base64 of its 32 bytes. Lists are separated by commas or whitespace.

use std::fmt;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha512};

/// The message property that carries the signature.
pub const SIGNATURE_PROPERTY: &str = "SIGNATURE";
const VERSION: &str = "v1";

/// Why a key or a signature is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("message has no {SIGNATURE_PROPERTY} property")]
    Missing,
    #[error("signature is not of the form v1:<key id>:<base64>")]
    Malformed,
    #[error("signature key id {0} is not a known key of the sender")]
    UnknownKey(String),
    #[error("signature does not match the message body")]
    Mismatch,
}

/// A bank's signing key.
#[derive(Clone)]
pub struct Signer {
    key: SigningKey,
    key_id: String,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl Signer {
    /// A fresh random key (for `bank-transfer keygen` and the local stack's first start).
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).expect("the operating system's random source");
        Self::from_seed(seed)
    }

    fn from_seed(seed: [u8; 32]) -> Self {
        let key = SigningKey::from_bytes(&seed);
        let key_id = key_id(&key.verifying_key());
        Self { key, key_id }
    }

    /// From the base64 of a 32-byte seed.
    pub fn from_base64(s: &str) -> Result<Self, String> {
        let bytes = B64.decode(s.trim()).map_err(|_| "signing key is not base64".to_owned())?;
        let seed: [u8; 32] = bytes.try_into().map_err(|_| "signing key must be the base64 of 32 bytes".to_owned())?;
        Ok(Self::from_seed(seed))
    }

    /// The key given inline or in a file (exactly one of them).
    pub fn from_setting(inline: Option<&str>, file: Option<&Path>, name: &str) -> anyhow::Result<Self> {
        let text = read_setting(inline, file, name)?;
        Self::from_base64(&text).map_err(|e| anyhow::anyhow!("{name}: {e}"))
    }

    /// The seed, base64: what a key file holds.
    pub fn to_base64(&self) -> String {
        B64.encode(self.key.to_bytes())
    }

    pub fn public_base64(&self) -> String {
        B64.encode(self.key.verifying_key().to_bytes())
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The property value for `body`: `v1:<key id>:<base64 signature>`.
    pub fn sign(&self, body: &[u8]) -> String {
        let sig: Signature = self.key.sign(body);
        format!("{VERSION}:{}:{}", self.key_id, B64.encode(sig.to_bytes()))
    }
}

/// The public keys a bank accepts from its peer.
#[derive(Debug, Clone, Default)]
pub struct PeerKeys {
    keys: Vec<(String, VerifyingKey)>,
}

impl PeerKeys {
    /// Parses a comma- or whitespace-separated list of base64 public keys (at least one).
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut keys = Vec::new();
        for item in list.split(|c: char| c == ',' || c.is_whitespace()).filter(|s| !s.is_empty()) {
            let bytes = B64.decode(item).map_err(|_| format!("public key {item:?} is not base64"))?;
            let bytes: [u8; 32] =
                bytes.try_into().map_err(|_| format!("public key {item:?} is not the base64 of 32 bytes"))?;
            let key = VerifyingKey::from_bytes(&bytes).map_err(|_| format!("public key {item:?} is not valid"))?;
            keys.push((key_id(&key), key));
        }
        if keys.is_empty() {
            return Err("no public key given".into());
        }
        Ok(Self { keys })
    }

    /// The list given inline or in a file (exactly one of them).
    pub fn from_setting(inline: Option<&str>, file: Option<&Path>, name: &str) -> anyhow::Result<Self> {
        let text = read_setting(inline, file, name)?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("{name}: {e}"))
    }

    /// Checks `signature` (the property value, if any) over `body`.
    pub fn verify(&self, body: &[u8], signature: Option<&str>) -> Result<(), SignatureError> {
        let sig = signature.ok_or(SignatureError::Missing)?;
        let mut parts = sig.trim().splitn(3, ':');
        let (Some(VERSION), Some(kid), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(SignatureError::Malformed);
        };
        let bytes = B64.decode(b64).map_err(|_| SignatureError::Malformed)?;
        let sig = Signature::from_slice(&bytes).map_err(|_| SignatureError::Malformed)?;
        let (_, key) =
            self.keys.iter().find(|(id, _)| id == kid).ok_or_else(|| SignatureError::UnknownKey(kid.to_owned()))?;
        key.verify(body, &sig).map_err(|_| SignatureError::Mismatch)
    }

    pub fn key_ids(&self) -> Vec<&str> {
        self.keys.iter().map(|(id, _)| id.as_str()).collect()
    }
}

/// The key id of a public key: the first 8 bytes of its SHA-512, hex.
fn key_id(key: &VerifyingKey) -> String {
    let digest = Sha512::digest(key.to_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn read_setting(inline: Option<&str>, file: Option<&Path>, name: &str) -> anyhow::Result<String> {
    match (inline, file) {
        (Some(v), None) => Ok(v.to_owned()),
        (None, Some(path)) => {
            std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{name}_FILE: reading {}: {e}", path.display()))
        }
        (Some(_), Some(_)) => anyhow::bail!("set {name} or {name}_FILE, not both"),
        (None, None) => anyhow::bail!("{name} (or {name}_FILE) is required"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_with_rotation() {
        let old = Signer::generate();
        let new = Signer::generate();
        let peers = PeerKeys::parse(&format!("{}, {}", old.public_base64(), new.public_base64())).unwrap();
        for s in [&old, &new] {
            let sig = s.sign(b"body");
            assert!(sig.starts_with(&format!("v1:{}:", s.key_id())));
            assert_eq!(peers.verify(b"body", Some(&sig)), Ok(()));
            assert_eq!(peers.verify(b"bodY", Some(&sig)), Err(SignatureError::Mismatch));
        }
        let round = Signer::from_base64(&old.to_base64()).unwrap();
        assert_eq!(round.key_id(), old.key_id());
    }

    #[test]
    fn refuses_missing_malformed_and_foreign_signatures() {
        let known = Signer::generate();
        let stranger = Signer::generate();
        let peers = PeerKeys::parse(&known.public_base64()).unwrap();
        assert_eq!(peers.verify(b"x", None), Err(SignatureError::Missing));
        assert_eq!(peers.verify(b"x", Some("nonsense")), Err(SignatureError::Malformed));
        assert_eq!(peers.verify(b"x", Some("v1:abc:!!!")), Err(SignatureError::Malformed));
        assert!(matches!(peers.verify(b"x", Some(&stranger.sign(b"x"))), Err(SignatureError::UnknownKey(_))));
        // A stranger's signature relabelled with the known key id still fails.
        let relabelled = stranger.sign(b"x").replacen(stranger.key_id(), known.key_id(), 1);
        assert_eq!(peers.verify(b"x", Some(&relabelled)), Err(SignatureError::Mismatch));
    }

    #[test]
    fn key_lists_and_bad_keys() {
        assert!(PeerKeys::parse("").is_err());
        assert!(PeerKeys::parse("not base64!").is_err());
        assert!(PeerKeys::parse("AAAA").is_err());
        assert!(Signer::from_base64("AAAA").is_err());
    }
}
