//! Who may call: bearer tokens bound to roles, stored only as SHA-256 hashes in a file the
//! policy names (`[serve] tokens`), so that a copy of that file lets nobody call the server.
//!
//! ```toml
//! [[token]]
//! name = "retention-team"     # who, for the audit trail
//! role = "analyst"            # the policy role its requests run as
//! sha256 = "9f86d08..."        # SHA-256 of the token, in hex (`cordon token` makes both)
//! ```
//!
//! Tokens are random and long (`cordon token` draws 256 bits), so an unsalted hash is as good
//! as a password hash here, and a lookup by hash compares no secret byte by byte.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::RunError;
use crate::names::Name;
use crate::policy::Role;

/// A caller the server knows: a token's name and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    /// The policy role its requests run as; `None` when the policy has no roles.
    pub role: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    #[serde(default)]
    token: Vec<TokenEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    sha256: String,
    #[serde(default)]
    role: Option<String>,
}

/// The callers, by the hash of their token.
#[derive(Debug)]
pub struct Tokens {
    by_hash: HashMap<[u8; 32], Caller>,
}

/// Why a caller was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    Missing,
    /// A token no entry has.
    Unknown,
}

impl Tokens {
    /// Reads the token file; every entry must name a role of the policy when it has roles,
    /// and none when it has none.
    pub fn load(path: &Path, roles: &BTreeMap<Name, Role>) -> Result<Tokens, RunError> {
        let invalid = |why: String| RunError::Serve(format!("{}: {why}", path.display()));
        let text = std::fs::read_to_string(path)
            .map_err(|e| invalid(format!("cannot read the token file: {e}")))?;
        let file: TokenFile =
            toml::from_str(&text).map_err(|e| invalid(format!("not a token file: {e}")))?;
        let mut by_hash = HashMap::new();
        for (index, entry) in file.token.into_iter().enumerate() {
            let at = format!("token {} (`{}`)", index + 1, entry.name.escape_debug());
            if entry.name.is_empty()
                || entry.name.len() > 64
                || entry.name.chars().any(char::is_control)
            {
                return Err(invalid(format!(
                    "{at}: a name is 1 to 64 printable characters"
                )));
            }
            let hash = hex::decode(&entry.sha256)
                .ok()
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .ok_or_else(|| {
                    invalid(format!(
                        "{at}: sha256 must be 64 hex digits (the token's SHA-256)"
                    ))
                })?;
            match (&entry.role, roles.is_empty()) {
                (None, false) => {
                    return Err(invalid(format!(
                        "{at} names no role; the policy has roles ({}), so every caller needs one",
                        roles
                            .keys()
                            .map(Name::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                (Some(role), true) => {
                    return Err(invalid(format!(
                        "{at} names role `{role}`, but the policy has no roles"
                    )));
                }
                (Some(role), false) if !roles.keys().any(|r| r.as_str() == role) => {
                    return Err(invalid(format!(
                        "{at} names role `{role}`, which the policy does not have (it has: {})",
                        roles
                            .keys()
                            .map(Name::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                _ => {}
            }
            let caller = Caller {
                name: entry.name,
                role: entry.role,
            };
            if by_hash.insert(hash, caller).is_some() {
                return Err(invalid(format!("{at}: the same token is listed twice")));
            }
        }
        if by_hash.is_empty() {
            return Err(invalid(
                "the file lists no [[token]]: nobody could call the server".into(),
            ));
        }
        Ok(Tokens { by_hash })
    }

    /// The caller whose token an `Authorization` header value carries.
    pub fn caller(&self, authorization: Option<&[u8]>) -> Result<&Caller, AuthError> {
        let header = authorization.ok_or(AuthError::Missing)?;
        let token = header
            .strip_prefix(b"Bearer ")
            .or_else(|| header.strip_prefix(b"bearer "))
            .ok_or(AuthError::Missing)?;
        let hash: [u8; 32] = Sha256::digest(token.trim_ascii()).into();
        self.by_hash.get(&hash).ok_or(AuthError::Unknown)
    }

    /// Every role some caller runs as.
    pub fn roles(&self) -> Vec<Option<String>> {
        let mut roles: Vec<Option<String>> =
            self.by_hash.values().map(|c| c.role.clone()).collect();
        roles.sort();
        roles.dedup();
        roles
    }
}

/// A new random token and its hash: what `cordon token` prints.
pub fn new_token() -> Result<(String, String), RunError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| RunError::Internal(format!("cannot draw a random token: {e}")))?;
    let token = format!("cdn_{}", hex::encode(bytes));
    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    Ok((token, hash))
}
