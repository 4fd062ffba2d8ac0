//! Public keys as a policy's `[trust]` table writes them (the policy parses them; signature
//! checks use them in `cordon_package::signing`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::VerifyingKey;
use ed25519_dalek::pkcs8::DecodePublicKey;

/// How a public key is written in a policy's `[trust]` table: `ed25519:` and the 32 raw key
/// bytes in base64.
pub const KEY_PREFIX: &str = "ed25519:";

/// A public key that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("`{key}` is not an ed25519 public key (`{KEY_PREFIX}<base64>` or SPKI PEM): {why}")]
pub struct BadPublicKey {
    pub key: String,
    pub why: String,
}

/// A public key as a policy writes it (`ed25519:<base64>`) or as SPKI PEM.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, BadPublicKey> {
    let bad = |why: String| BadPublicKey {
        key: text.chars().take(80).collect(),
        why,
    };
    if let Some(encoded) = text.trim().strip_prefix(KEY_PREFIX) {
        let bytes = BASE64
            .decode(encoded)
            .map_err(|e| bad(format!("bad base64: {e}")))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| bad(format!("{} bytes, not 32", b.len())))?;
        return VerifyingKey::from_bytes(&bytes).map_err(|e| bad(e.to_string()));
    }
    VerifyingKey::from_public_key_pem(text.trim()).map_err(|e| bad(e.to_string()))
}

/// The key as a policy's `[trust]` table writes it.
pub fn policy_form(key: &VerifyingKey) -> String {
    format!("{KEY_PREFIX}{}", BASE64.encode(key.as_bytes()))
}
