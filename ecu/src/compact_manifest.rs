//! The compact image manifest: the fixed binary layout a supplier signs next to its JSON image
//! manifest, so an ECU can verify an image without a JSON parser.
//!
//! Layout, all integers big-endian (format version 1):
//!
//! | offset | size   | field                                                      |
//! |-------:|-------:|------------------------------------------------------------|
//! | 0      | 4      | magic `OTAM`                                               |
//! | 4      | 1      | format version, 1                                          |
//! | 5      | 1      | number of hardware ids, 1..=4                              |
//! | 6      | 2      | reserved, zero                                             |
//! | 8      | 32     | uid, ASCII, zero-padded                                    |
//! | 40     | 32     | version, ASCII, zero-padded                                |
//! | 72     | 8      | release counter                                            |
//! | 80     | 8      | image length in bytes                                      |
//! | 88     | 32     | image SHA-256                                              |
//! | 120    | 4 × 32 | hardware ids, ASCII, zero-padded; unused slots all zero    |
//! | 248    | 1      | number of signatures, 1..=4                                |
//! | 249    | …      | per signature: key id (32), signature length (2), bytes   |
//!
//! The signed message is the 248-byte body (offsets 0..248); the magic keeps it from ever being
//! mistaken for a JSON document signed by the same key. Signatures are RSASSA-PSS-SHA256 with a
//! 32-byte salt, by the keys of the supplier role that signed the image's target, and the key
//! id is that key's TUF key id (the SHA-256 of its canonical key object).

use heapless::Vec;
use rsa::signature::Verifier;
use sha2::Sha256;

pub const MAGIC: [u8; 4] = *b"OTAM";
pub const FORMAT_VERSION: u8 = 1;
/// Width of the uid, version and hardware id fields.
pub const FIELD_LEN: usize = 32;
pub const MAX_HARDWARE_IDS: usize = 4;
pub const BODY_LEN: usize = 8 + 2 * FIELD_LEN + 8 + 8 + 32 + MAX_HARDWARE_IDS * FIELD_LEN;
pub const MAX_SIGNATURES: usize = 4;
/// Room for an RSA-4096 signature.
pub const MAX_SIG_LEN: usize = 512;
/// The largest well-formed compact manifest.
pub const MAX_LEN: usize = BODY_LEN + 1 + MAX_SIGNATURES * (32 + 2 + MAX_SIG_LEN);
/// PSS salt length used by every signer in the project.
pub const PSS_SALT_LEN: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Fewer bytes than the layout needs.
    Truncated,
    /// More bytes than the layout describes.
    TrailingBytes,
    BadMagic,
    UnsupportedFormat(u8),
    ReservedNotZero,
    /// A text field is empty, not zero-padded, or holds a byte outside printable ASCII.
    BadField(&'static str),
    BadHardwareIdCount(u8),
    BadSignatureCount(u8),
    SignatureTooLong(u16),
    /// Fewer distinct provisioned keys signed than the threshold requires.
    Threshold {
        valid: u8,
        threshold: u8,
    },
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Truncated => f.write_str("truncated"),
            Error::TrailingBytes => f.write_str("trailing bytes after the last signature"),
            Error::BadMagic => f.write_str("bad magic (not a compact manifest)"),
            Error::UnsupportedFormat(v) => write!(f, "unsupported format version {v}"),
            Error::ReservedNotZero => f.write_str("reserved bytes are not zero"),
            Error::BadField(name) => write!(f, "malformed {name} field"),
            Error::BadHardwareIdCount(n) => write!(f, "{n} hardware ids (1..=4 allowed)"),
            Error::BadSignatureCount(n) => write!(f, "{n} signatures (1..=4 allowed)"),
            Error::SignatureTooLong(n) => write!(f, "signature of {n} bytes (512 at most)"),
            Error::Threshold { valid, threshold } => {
                write!(f, "{valid} valid signature(s), threshold {threshold}")
            }
        }
    }
}

/// A zero-padded ASCII text field.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Field([u8; FIELD_LEN]);

impl Field {
    /// Build from text; `None` if empty, too long, or not printable ASCII.
    pub fn new(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.is_empty() || b.len() > FIELD_LEN || !b.iter().all(|c| (0x21..=0x7e).contains(c)) {
            return None;
        }
        let mut f = [0u8; FIELD_LEN];
        f[..b.len()].copy_from_slice(b);
        Some(Field(f))
    }

    fn decode(raw: &[u8], name: &'static str) -> Result<Self, Error> {
        let raw: [u8; FIELD_LEN] = raw.try_into().map_err(|_| Error::Truncated)?;
        let len = raw.iter().position(|&c| c == 0).unwrap_or(FIELD_LEN);
        let (text, pad) = raw.split_at(len);
        if text.is_empty()
            || !text.iter().all(|c| (0x21..=0x7e).contains(c))
            || pad.iter().any(|&c| c != 0)
        {
            return Err(Error::BadField(name));
        }
        Ok(Field(raw))
    }

    /// From the raw zero-padded bytes, validated as [`Field`]'s decoder does.
    pub fn from_raw(raw: [u8; FIELD_LEN]) -> Option<Self> {
        Self::decode(&raw, "field").ok()
    }

    pub fn as_bytes(&self) -> &[u8; FIELD_LEN] {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        let len = self.0.iter().position(|&c| c == 0).unwrap_or(FIELD_LEN);
        // Only printable ASCII ever gets in (checked in `new` and `decode`).
        core::str::from_utf8(&self.0[..len]).unwrap_or("")
    }
}

impl core::fmt::Debug for Field {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// The signed body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Body {
    pub uid: Field,
    pub version: Field,
    pub release_counter: u64,
    pub length: u64,
    pub sha256: [u8; 32],
    pub hardware_ids: Vec<Field, MAX_HARDWARE_IDS>,
}

impl Body {
    pub fn encode(&self) -> [u8; BODY_LEN] {
        let mut b = [0u8; BODY_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4] = FORMAT_VERSION;
        // At most MAX_HARDWARE_IDS (4) by the type, so this fits a byte.
        b[5] = self.hardware_ids.len() as u8;
        b[8..40].copy_from_slice(&self.uid.0);
        b[40..72].copy_from_slice(&self.version.0);
        b[72..80].copy_from_slice(&self.release_counter.to_be_bytes());
        b[80..88].copy_from_slice(&self.length.to_be_bytes());
        b[88..120].copy_from_slice(&self.sha256);
        for (i, hw) in self.hardware_ids.iter().enumerate() {
            let at = 120 + i * FIELD_LEN;
            b[at..at + FIELD_LEN].copy_from_slice(&hw.0);
        }
        b
    }

    pub fn decode(b: &[u8; BODY_LEN]) -> Result<Self, Error> {
        if b[0..4] != MAGIC {
            return Err(Error::BadMagic);
        }
        if b[4] != FORMAT_VERSION {
            return Err(Error::UnsupportedFormat(b[4]));
        }
        let n = b[5];
        if n == 0 || usize::from(n) > MAX_HARDWARE_IDS {
            return Err(Error::BadHardwareIdCount(n));
        }
        if b[6] != 0 || b[7] != 0 {
            return Err(Error::ReservedNotZero);
        }
        let u64_at = |at: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[at..at + 8]);
            u64::from_be_bytes(x)
        };
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(&b[88..120]);
        let mut hardware_ids = Vec::new();
        for i in 0..MAX_HARDWARE_IDS {
            let at = 120 + i * FIELD_LEN;
            let slot = &b[at..at + FIELD_LEN];
            if i < usize::from(n) {
                let f = Field::decode(slot, "hardware id")?;
                hardware_ids
                    .push(f)
                    .map_err(|_| Error::BadHardwareIdCount(n))?;
            } else if slot.iter().any(|&c| c != 0) {
                return Err(Error::BadField("unused hardware id slot"));
            }
        }
        Ok(Body {
            uid: Field::decode(&b[8..40], "uid")?,
            version: Field::decode(&b[40..72], "version")?,
            release_counter: u64_at(72),
            length: u64_at(80),
            sha256,
            hardware_ids,
        })
    }

    /// Whether this image is built for `hardware_id`.
    pub fn fits(&self, hardware_id: &str) -> bool {
        self.hardware_ids.iter().any(|h| h.as_str() == hardware_id)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureEntry {
    pub keyid: [u8; 32],
    pub sig: Vec<u8, MAX_SIG_LEN>,
}

/// A parsed compact manifest: the body, its exact signed bytes, and the signatures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactManifest {
    pub body: Body,
    pub body_bytes: [u8; BODY_LEN],
    pub signatures: Vec<SignatureEntry, MAX_SIGNATURES>,
}

/// A key provisioned into the ECU: the supplier's TUF key id and RSA public key.
pub struct ProvisionedKey {
    pub keyid: [u8; 32],
    pub key: rsa::RsaPublicKey,
}

/// Why a signature list was refused (see [`parse_signatures`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureListError {
    Truncated,
    TrailingBytes,
    BadCount(u8),
    TooLong(u16),
}

impl core::fmt::Display for SignatureListError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SignatureListError::Truncated => f.write_str("truncated"),
            SignatureListError::TrailingBytes => {
                f.write_str("trailing bytes after the last signature")
            }
            SignatureListError::BadCount(n) => write!(f, "{n} signatures (1..=4 allowed)"),
            SignatureListError::TooLong(n) => write!(f, "signature of {n} bytes (512 at most)"),
        }
    }
}

impl From<SignatureListError> for Error {
    fn from(e: SignatureListError) -> Error {
        match e {
            SignatureListError::Truncated => Error::Truncated,
            SignatureListError::TrailingBytes => Error::TrailingBytes,
            SignatureListError::BadCount(n) => Error::BadSignatureCount(n),
            SignatureListError::TooLong(n) => Error::SignatureTooLong(n),
        }
    }
}

/// The signature list that ends a compact manifest, an ECU trust document and a regulators'
/// attestation bundle: a count (1 to [`MAX_SIGNATURES`]), then per signature its key id (32),
/// length (u16, big-endian, at most [`MAX_SIG_LEN`]) and bytes, and nothing after. Untrusted
/// bytes; never panics.
pub fn parse_signatures(
    bytes: &[u8],
) -> Result<Vec<SignatureEntry, MAX_SIGNATURES>, SignatureListError> {
    let (&count, mut rest) = bytes.split_first().ok_or(SignatureListError::Truncated)?;
    if count == 0 || usize::from(count) > MAX_SIGNATURES {
        return Err(SignatureListError::BadCount(count));
    }
    let mut out = Vec::new();
    for _ in 0..count {
        if rest.len() < 34 {
            return Err(SignatureListError::Truncated);
        }
        let mut keyid = [0u8; 32];
        keyid.copy_from_slice(&rest[..32]);
        let len = u16::from_be_bytes([rest[32], rest[33]]);
        let n = usize::from(len);
        if n > MAX_SIG_LEN {
            return Err(SignatureListError::TooLong(len));
        }
        rest = &rest[34..];
        if rest.len() < n {
            return Err(SignatureListError::Truncated);
        }
        let sig = Vec::from_slice(&rest[..n]).map_err(|_| SignatureListError::TooLong(len))?;
        rest = &rest[n..];
        out.push(SignatureEntry { keyid, sig })
            .map_err(|_| SignatureListError::BadCount(count))?;
    }
    if !rest.is_empty() {
        return Err(SignatureListError::TrailingBytes);
    }
    Ok(out)
}

impl CompactManifest {
    /// Parse untrusted bytes. Checks layout only; call [`CompactManifest::verify`] before use.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() < BODY_LEN + 1 {
            return Err(Error::Truncated);
        }
        if bytes.len() > MAX_LEN {
            return Err(Error::TrailingBytes);
        }
        let mut body_bytes = [0u8; BODY_LEN];
        body_bytes.copy_from_slice(&bytes[..BODY_LEN]);
        let body = Body::decode(&body_bytes)?;
        let signatures = parse_signatures(&bytes[BODY_LEN..])?;
        Ok(CompactManifest {
            body,
            body_bytes,
            signatures,
        })
    }

    /// Serialize; the inverse of [`CompactManifest::parse`].
    pub fn encode(&self) -> Vec<u8, MAX_LEN> {
        let mut out: Vec<u8, MAX_LEN> = Vec::new();
        // Capacity is MAX_LEN, which the type bounds (at most 4 signatures of 512 bytes)
        // guarantee, so these extends cannot fail.
        let _ = out.extend_from_slice(&self.body_bytes);
        let _ = out.push(self.signatures.len() as u8);
        for s in &self.signatures {
            let _ = out.extend_from_slice(&s.keyid);
            let _ = out.extend_from_slice(&(s.sig.len() as u16).to_be_bytes());
            let _ = out.extend_from_slice(&s.sig);
        }
        out
    }

    /// Check that at least `threshold` distinct provisioned keys signed the body.
    ///
    /// Keys are counted by their material (modulus and exponent), not their key ids: the same
    /// public key provisioned under two key ids, or two signature slots naming the same key,
    /// count once, as the gateway counts them. No allocation: the keys that verified are
    /// remembered as indices into `keys`.
    pub fn verify(&self, keys: &[ProvisionedKey], threshold: u8) -> Result<(), Error> {
        verify_threshold(&self.body_bytes, &self.signatures, keys, threshold)
    }
}

/// Check that at least `threshold` distinct keys of `keys` signed `msg` among `signatures`
/// (see [`CompactManifest::verify`]); shared with the trust document.
pub fn verify_threshold(
    msg: &[u8],
    signatures: &[SignatureEntry],
    keys: &[ProvisionedKey],
    threshold: u8,
) -> Result<(), Error> {
    let mut counted = [0usize; MAX_SIGNATURES];
    let mut valid: u8 = 0;
    for s in signatures {
        let done = &counted[..usize::from(valid)];
        // A slot repeating a key id already counted is skipped (at worst an undercount,
        // never an overcount), sparing the RSA work.
        if done.iter().any(|&i| keys[i].keyid == s.keyid) {
            continue;
        }
        let Ok(sig) = rsa::pss::Signature::try_from(s.sig.as_slice()) else {
            continue;
        };
        // Every provisioned key under this id, in case an id was provisioned twice.
        let verified = keys.iter().enumerate().find(|(_, k)| {
            k.keyid == s.keyid
                && rsa::pss::VerifyingKey::<Sha256>::new_with_salt_len(k.key.clone(), PSS_SALT_LEN)
                    .verify(msg, &sig)
                    .is_ok()
        });
        let Some((i, k)) = verified else {
            continue;
        };
        if done.iter().any(|&j| keys[j].key == k.key) {
            continue;
        }
        // At most MAX_SIGNATURES slots, so `valid` stays within `counted`.
        if let Some(slot) = counted.get_mut(usize::from(valid)) {
            *slot = i;
            valid += 1;
        }
    }
    if threshold == 0 || valid < threshold {
        return Err(Error::Threshold { valid, threshold });
    }
    Ok(())
}
