//! Signing packages and checking their signatures, in the layout of the OpenSSF model-signing
//! specification (Sigstore model-transparency), so that standard tools can read them.
//!
//! The signature (`model.sig`, in a frame after the package's archive) is a Sigstore bundle
//! around a DSSE envelope whose payload is an in-toto statement: one resource per package file
//! with its SHA-256, the root digest over them as the subject, and a second subject, the SHA-256
//! of the compressed archive exactly as stored, so that no byte of the package, compressed or
//! not, can change unnoticed. The bundle's own bytes must be exactly what `sign` writes. The envelope is signed with ed25519 over DSSE's
//! pre-authentication encoding. A consumer's policy names, per publisher, the public keys it
//! trusts; a package is accepted only if a trusted key of its manifest's publisher signed a
//! statement whose files and digests are exactly the package's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::package::{Package, SIGNATURE_FILE, root_digest};

const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
const PREDICATE_TYPE: &str = "https://model_signing/signature/v1.0";

pub use cordon_config::keys::{BadPublicKey, KEY_PREFIX, parse_public_key, policy_form};

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("{path}: cannot read the key")]
    ReadKey {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: cannot write the key")]
    WriteKey {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not an ed25519 private key in PKCS#8 PEM form: {why}")]
    BadPrivateKey { path: PathBuf, why: String },
    #[error("cannot find random bytes for a new key: {0}")]
    Random(String),
    #[error("{0}: only a packed .cordon file can be signed (make one with `cordon pack`)")]
    NotPacked(String),
}

/// Why a package's signature was refused. Each names what failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(
        "{package}: the package is not signed (sign it with `cordon sign`, or pass --allow-unsigned for local development)"
    )]
    Unsigned { package: String },
    #[error(
        "{package}: the compressed archive does not match its signed digest (signed {signed}, found {found})"
    )]
    ArchiveMismatch {
        package: String,
        signed: String,
        found: String,
    },
    #[error("{package}: the signature ({SIGNATURE_FILE}) is malformed: {why}")]
    Malformed { package: String, why: String },
    #[error("{package}: the policy trusts no key for publisher `{publisher}` (add it to [trust])")]
    NoTrustedKeys { package: String, publisher: String },
    #[error(
        "{package}: signed with key {fingerprint}, which the policy does not trust for publisher `{publisher}`"
    )]
    UntrustedKey {
        package: String,
        publisher: String,
        fingerprint: String,
    },
    #[error(
        "{package}: the signature does not verify with the trusted key {fingerprint}: the statement was changed or signed by another key"
    )]
    BadSignature {
        package: String,
        fingerprint: String,
    },
    #[error(
        "{package}: `{file}` does not match its signed digest (signed {signed}, found {found})"
    )]
    DigestMismatch {
        package: String,
        file: String,
        signed: String,
        found: String,
    },
    #[error("{package}: holds `{file}`, which the signed statement does not list")]
    Unlisted { package: String, file: String },
    #[error("{package}: the signed statement lists `{file}`, which the package does not hold")]
    MissingFile { package: String, file: String },
}

/// A new ed25519 key pair, from the operating system's random source.
pub fn generate_key() -> Result<SigningKey, SigningError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| SigningError::Random(e.to_string()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Writes `key` as `<stem>.key` (PKCS#8 PEM, readable by its owner only) and `<stem>.pub`
/// (SPKI PEM). Refuses to overwrite an existing private key.
pub fn write_key_pair(key: &SigningKey, stem: &Path) -> Result<(PathBuf, PathBuf), SigningError> {
    let private_path = stem.with_extension("key");
    let public_path = stem.with_extension("pub");
    let write_error = |path: &Path| {
        let path = path.to_owned();
        move |source| SigningError::WriteKey { path, source }
    };
    // PKCS#8 v1 (the seed alone), the form OpenSSL and every other tool reads.
    let keypair = ed25519_dalek::pkcs8::KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    };
    let private_pem = keypair
        .to_pkcs8_pem(Default::default())
        .map_err(|e| write_error(&private_path)(std::io::Error::other(e.to_string())))?;
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(Default::default())
        .map_err(|e| write_error(&public_path)(std::io::Error::other(e.to_string())))?;
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        // create_new: an existing key is never clobbered; 0600 from the first byte, so the
        // private key is never readable by others, not even briefly.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&private_path)
            .map_err(write_error(&private_path))?;
        file.write_all(private_pem.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(write_error(&private_path))?;
    }
    crate::files::write_atomically(&public_path, public_pem.as_bytes())
        .and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            // Public: anyone may read it.
            std::fs::set_permissions(&public_path, std::fs::Permissions::from_mode(0o644))
        })
        .map_err(write_error(&public_path))?;
    Ok((private_path, public_path))
}

/// Reads a private key written by [`write_key_pair`].
pub fn read_signing_key(path: &Path) -> Result<SigningKey, SigningError> {
    let text = std::fs::read_to_string(path).map_err(|source| SigningError::ReadKey {
        path: path.to_owned(),
        source,
    })?;
    SigningKey::from_pkcs8_pem(&text).map_err(|e| SigningError::BadPrivateKey {
        path: path.to_owned(),
        why: e.to_string(),
    })
}

/// A short, stable name for a key: `sha256:` and the first 16 hex digits of the SHA-256 of its
/// raw bytes. Shown on screens and in errors, and put in the bundle as the key hint.
pub fn fingerprint(key: &VerifyingKey) -> String {
    let digest = hex::encode(Sha256::digest(key.as_bytes()));
    format!("sha256:{}", digest.get(..16).unwrap_or_default())
}

/// DSSE's pre-authentication encoding: what is actually signed.
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut encoded = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    encoded.extend_from_slice(payload);
    encoded
}

/// The name of the statement's second subject: the compressed archive.
fn archive_subject(package: &Package) -> String {
    format!("{}#archive", package.file_name())
}

/// The in-toto statement listing every file of the package with its SHA-256.
fn statement(package: &Package, archive_sha256: &str) -> Value {
    let digests = package.file_digests();
    json!({
        "_type": STATEMENT_TYPE,
        "subject": [{
            "name": package.file_name(),
            "digest": { "sha256": root_digest(digests.values()) },
        }, {
            "name": archive_subject(package),
            "digest": { "sha256": archive_sha256 },
        }],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "resources": digests.iter().map(|(name, digest)| json!({
                "name": name, "algorithm": "sha256", "digest": digest,
            })).collect::<Vec<_>>(),
            "serialization": {
                "method": "files",
                "hash_type": "sha256",
                "allow_symlinks": false,
                "ignore_paths": [SIGNATURE_FILE],
            },
        },
    })
}

/// The signature bundle for a packed `package`, signed with `key`. Deterministic: ed25519
/// signatures are, and the JSON is written with sorted keys.
pub fn sign(package: &Package, key: &SigningKey) -> Result<Vec<u8>, SigningError> {
    let archive = package
        .archive_sha256
        .as_deref()
        .ok_or_else(|| SigningError::NotPacked(package.path.display().to_string()))?;
    let payload = statement(package, archive).to_string().into_bytes();
    Ok(sign_payload(&payload, key))
}

/// The bundle around any `payload`, signed with `key`, exactly as `sign` writes it. Public so
/// that the signature fuzz target can hand `verify` statements a trusted key really signed:
/// without it, mutated input never gets past the signature check to the statement's parser.
pub fn sign_payload(payload: &[u8], key: &SigningKey) -> Vec<u8> {
    let signature = key.sign(&pae(PAYLOAD_TYPE, payload));
    bundle_bytes(payload, &signature, &key.verifying_key())
}

/// The bundle as `sign` writes it.
fn bundle_bytes(payload: &[u8], signature: &Signature, key: &VerifyingKey) -> Vec<u8> {
    let bundle = json!({
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {
            "publicKey": { "hint": fingerprint(key) },
            "tlogEntries": [],
        },
        "dsseEnvelope": {
            "payload": BASE64.encode(payload),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{ "sig": BASE64.encode(signature.to_bytes()) }],
        },
    });
    let mut bytes = serde_json::to_vec_pretty(&bundle).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// The fingerprint of the key the signature says made it, read without checking anything: for
/// the permissions screen, before a policy is at hand. `None` for an unsigned package or an
/// unreadable signature.
pub fn claimed_signer(package: &Package) -> Option<String> {
    let bundle: Value = serde_json::from_slice(package.signature.as_ref()?).ok()?;
    bundle
        .pointer("/verificationMaterial/publicKey/hint")
        .and_then(Value::as_str)
        // Unverified text from the package: escaped and cut before anything shows it.
        .map(|hint| cordon_config::names::printable(hint, 128))
}

/// What a verified signature established.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verified {
    pub publisher: String,
    /// The trusted key that signed it.
    pub key_fingerprint: String,
    /// The signed root digest, equal to the package's.
    pub digest: String,
}

/// Checks `package`'s signature against the keys `trusted` for its manifest's publisher, then
/// every file against the signed statement.
pub fn verify(package: &Package, trusted: &[VerifyingKey]) -> Result<Verified, VerifyError> {
    let name = package.path.display().to_string();
    let publisher = package.manifest.publisher.to_string();
    let bytes = package
        .signature
        .as_ref()
        .ok_or_else(|| VerifyError::Unsigned {
            package: name.clone(),
        })?;
    if trusted.is_empty() {
        return Err(VerifyError::NoTrustedKeys {
            package: name.clone(),
            publisher,
        });
    }
    let envelope = read_envelope(&name, bytes)?;
    let (signer, signature) = find_trusted_signature(&name, &publisher, &envelope, trusted)?;

    // Bytes outside the signed payload (the key hint, the layout) must be exactly what `sign`
    // writes: no byte of the signature either can change unnoticed.
    if *bytes != bundle_bytes(&envelope.payload, signature, signer) {
        return Err(malformed(
            &name,
            "it differs from the bundle `cordon sign` writes",
        ));
    }

    // The signed statement must list exactly the package's files, with their digests, and the
    // archive's digest.
    let statement = read_statement(&name, &envelope.payload)?;
    check_archive_digest(&name, package, &statement)?;
    let listed = listed_resources(&name, &statement)?;
    check_files_match(&name, package, &listed)?;
    Ok(Verified {
        publisher,
        key_fingerprint: fingerprint(signer),
        digest: package.digest(),
    })
}

/// A refusal of `package`'s signature as malformed, saying why.
fn malformed(package: &str, why: &str) -> VerifyError {
    VerifyError::Malformed {
        package: package.to_owned(),
        why: why.to_owned(),
    }
}

/// What a signature bundle holds, read but not yet checked against any key.
struct Envelope {
    /// The whole bundle, for the key hint an error names.
    bundle: Value,
    /// The signed bytes: the in-toto statement.
    payload: Vec<u8>,
    /// Every ed25519 signature the envelope carries.
    signatures: Vec<Signature>,
}

/// The bundle must be a Sigstore bundle around an in-toto DSSE envelope with at least one
/// ed25519 signature; anything else is refused as malformed before any key is tried.
fn read_envelope(package: &str, bytes: &[u8]) -> Result<Envelope, VerifyError> {
    let bundle: Value =
        serde_json::from_slice(bytes).map_err(|e| malformed(package, &e.to_string()))?;
    if bundle.get("mediaType").and_then(Value::as_str) != Some(BUNDLE_MEDIA_TYPE) {
        return Err(malformed(package, "not a Sigstore bundle (mediaType)"));
    }
    let envelope = bundle
        .get("dsseEnvelope")
        .ok_or_else(|| malformed(package, "no dsseEnvelope"))?;
    if envelope.get("payloadType").and_then(Value::as_str) != Some(PAYLOAD_TYPE) {
        return Err(malformed(
            package,
            "the envelope's payloadType is not in-toto",
        ));
    }
    let payload = envelope
        .get("payload")
        .and_then(Value::as_str)
        .and_then(|p| BASE64.decode(p).ok())
        .ok_or_else(|| malformed(package, "the envelope's payload is not base64"))?;
    let signatures: Vec<Signature> = envelope
        .get("signatures")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|s| s.get("sig").and_then(Value::as_str))
                .filter_map(|s| BASE64.decode(s).ok())
                .filter_map(|b| Signature::from_slice(&b).ok())
                .collect()
        })
        .unwrap_or_default();
    if signatures.is_empty() {
        return Err(malformed(package, "the envelope has no ed25519 signature"));
    }
    Ok(Envelope {
        bundle,
        payload,
        signatures,
    })
}

/// The signature must come from a key trusted for this publisher. When none verifies, the
/// bundle's key hint tells the two failures apart: a trusted key whose signature does not
/// verify (the statement was changed), or a key the policy does not trust.
fn find_trusted_signature<'a>(
    package: &str,
    publisher: &str,
    envelope: &'a Envelope,
    trusted: &'a [VerifyingKey],
) -> Result<(&'a VerifyingKey, &'a Signature), VerifyError> {
    let signed = pae(PAYLOAD_TYPE, &envelope.payload);
    let signer = trusted.iter().find_map(|key| {
        envelope
            .signatures
            .iter()
            .find(|s| key.verify_strict(&signed, s).is_ok())
            .map(|s| (key, s))
    });
    if let Some(signer) = signer {
        return Ok(signer);
    }
    let hint = envelope
        .bundle
        .pointer("/verificationMaterial/publicKey/hint")
        .and_then(Value::as_str)
        .unwrap_or("(no hint)")
        .to_owned();
    Err(if trusted.iter().any(|key| fingerprint(key) == hint) {
        VerifyError::BadSignature {
            package: package.to_owned(),
            fingerprint: hint,
        }
    } else {
        VerifyError::UntrustedKey {
            package: package.to_owned(),
            publisher: publisher.to_owned(),
            fingerprint: hint,
        }
    })
}

/// The signed payload must be a model-signing v1.0 in-toto statement.
fn read_statement(package: &str, payload: &[u8]) -> Result<Value, VerifyError> {
    let statement: Value =
        serde_json::from_slice(payload).map_err(|e| malformed(package, &e.to_string()))?;
    if statement.get("_type").and_then(Value::as_str) != Some(STATEMENT_TYPE)
        || statement.get("predicateType").and_then(Value::as_str) != Some(PREDICATE_TYPE)
    {
        return Err(malformed(
            package,
            "not a model-signing v1.0 in-toto statement",
        ));
    }
    Ok(statement)
}

/// The statement's archive subject must be the SHA-256 of the compressed archive as stored,
/// so that not even bytes the file digests do not cover (compression, padding) can change.
fn check_archive_digest(
    name: &str,
    package: &Package,
    statement: &Value,
) -> Result<(), VerifyError> {
    let archive = package.archive_sha256.clone().unwrap_or_default();
    let signed_archive = statement
        .get("subject")
        .and_then(Value::as_array)
        .and_then(|subjects| {
            subjects.iter().find(|s| {
                s.get("name").and_then(Value::as_str) == Some(archive_subject(package).as_str())
            })
        })
        .and_then(|s| s.pointer("/digest/sha256"))
        .and_then(Value::as_str)
        .ok_or_else(|| malformed(name, "the statement has no digest of the archive"))?;
    if signed_archive != archive {
        return Err(VerifyError::ArchiveMismatch {
            package: name.to_owned(),
            signed: signed_archive.to_owned(),
            found: archive,
        });
    }
    Ok(())
}

/// The files the statement lists, by name, with their signed SHA-256; a resource that is not
/// a sha256 name and digest is refused rather than skipped.
fn listed_resources(
    package: &str,
    statement: &Value,
) -> Result<BTreeMap<String, String>, VerifyError> {
    let mut listed: BTreeMap<String, String> = BTreeMap::new();
    for resource in statement
        .pointer("/predicate/resources")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed(package, "the statement lists no resources"))?
    {
        let (Some(file), Some("sha256"), Some(digest)) = (
            resource.get("name").and_then(Value::as_str),
            resource.get("algorithm").and_then(Value::as_str),
            resource.get("digest").and_then(Value::as_str),
        ) else {
            return Err(malformed(
                package,
                "a resource is not a sha256 name and digest",
            ));
        };
        listed.insert(file.to_owned(), digest.to_owned());
    }
    Ok(listed)
}

/// The package must hold exactly the listed files with exactly their digests: a file added,
/// changed or removed after signing is refused, naming the file.
fn check_files_match(
    name: &str,
    package: &Package,
    listed: &BTreeMap<String, String>,
) -> Result<(), VerifyError> {
    let found = package.file_digests();
    for (file, digest) in &found {
        match listed.get(file) {
            None => {
                return Err(VerifyError::Unlisted {
                    package: name.to_owned(),
                    file: file.clone(),
                });
            }
            Some(signed) if signed != digest => {
                return Err(VerifyError::DigestMismatch {
                    package: name.to_owned(),
                    file: file.clone(),
                    signed: signed.clone(),
                    found: digest.clone(),
                });
            }
            Some(_) => {}
        }
    }
    if let Some(file) = listed.keys().find(|file| !found.contains_key(*file)) {
        return Err(VerifyError::MissingFile {
            package: name.to_owned(),
            file: file.clone(),
        });
    }
    Ok(())
}
