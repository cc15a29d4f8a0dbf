//! The ECU's trust document: which supplier keys (and how many of them) may sign its images,
//! which regulator keys (and how many) must approve them, and whether it checks the regulators
//! at all (full or partial verification). Versioned and rotated like a TUF root, so a supplier
//! key rotation, a supplier replacement or the revocation of a stolen key reaches a deployed ECU
//! without re-provisioning it.
//!
//! Layout, all integers big-endian (format version 2, or 3 with instruction keys):
//!
//! | offset | size | field                                                          |
//! |-------:|-----:|----------------------------------------------------------------|
//! | 0      | 4    | magic `OTAT`                                                   |
//! | 4      | 1    | format version, 2 or 3                                         |
//! | 5      | 1    | mode: 0 partial (supplier only), 1 full (supplier + regulators) |
//! | 6      | 2    | reserved, zero                                                 |
//! | 8      | 4    | document version, ≥ 1                                          |
//! | 12     | 32   | hardware id, ASCII, zero-padded                                |
//! | 44     | 2    | supplier keys: threshold, count                                |
//! | 46     | 2    | regulator keys: threshold, count                               |
//! | 48     | 2    | signer (OEM `ecu-trust`) keys: threshold, count                |
//! | 50     | 1    | format 3: instruction keys, 1..=2 (format 2: zero)             |
//! | 51     | 1    | reserved, zero                                                 |
//! | 52     | 8    | release-counter floor: images below it are refused             |
//! | 60     | …    | the keys, suppliers then regulators then signers, each: key id (32), RSA exponent (4), modulus length (2), modulus |
//! | …      | …    | format 3: the OEM's instruction keys, Ed25519, 32 bytes each   |
//! | …      | 1    | number of signatures, 1..=4                                    |
//! | …      | …    | per signature: key id (32), signature length (2), bytes        |
//!
//! Every set holds at most [`MAX_KEYS`] keys; thresholds are 1..=count, except the regulator
//! set of a partial-mode document, which may be empty with threshold 0. The signed message is
//! everything before the signature count. Signatures are RSASSA-PSS-SHA256 (32-byte salt),
//! counted by distinct key material as for the compact manifest.
//!
//! Rotation (as TUF's root): version N+1 is accepted only if a threshold of version N's signer
//! keys *and* a threshold of its own signer keys signed it, its hardware id is the ECU's, and
//! its version is higher. A document of the same version is accepted only if it is the very
//! same document (idempotent re-send); a lower version is refused (no downgrade).
//!
//! Instruction keys (format 3) make the ECU require, with every download, the OEM's signed
//! instruction naming this ECU's serial and the manifest ([`crate::instruction`]); a format 2
//! document leaves the ECU in the legacy mode of ECUs provisioned before instructions existed.
//!
//! The release-counter floor is the OEM's answer to a revoked release. An ECU has no clock, so
//! it cannot tell a fresh regulator approval from one a compromised gateway kept and replays
//! after the regulator revoked it. When a release is revoked the OEM issues the next trust
//! document with the floor above that release's counter; once an honest gateway forwarded it
//! (gateways forward a changed document to every ECU at their next check, update or not), no
//! gateway can install the revoked release again, approval bundle or not.

use crate::compact_manifest::{
    parse_signatures, verify_threshold, Error as SigError, Field, ProvisionedKey, SignatureEntry,
    SignatureListError, FIELD_LEN, MAX_SIGNATURES, MAX_SIG_LEN,
};
use heapless::Vec;

pub const MAGIC: [u8; 4] = *b"OTAT";
pub const FORMAT_VERSION: u8 = 2;
/// The format of a document with instruction keys.
pub const FORMAT_INSTRUCTIONS: u8 = 3;
/// Instruction keys a document names (a current and a next one, for rotation).
pub const MAX_INSTRUCTION_KEYS: usize = 2;
/// Keys per set (suppliers, regulators, signers).
pub const MAX_KEYS: usize = 4;
/// Largest modulus accepted: RSA-4096.
pub const MAX_MODULUS: usize = 512;
/// Fixed header before the keys.
pub const HEADER_LEN: usize = 60;
/// Largest well-formed document.
pub const MAX_LEN: usize = HEADER_LEN
    + 3 * MAX_KEYS * (32 + 4 + 2 + MAX_MODULUS)
    + MAX_INSTRUCTION_KEYS * crate::instruction::KEY_LEN
    + 1
    + MAX_SIGNATURES * (34 + MAX_SIG_LEN);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Supplier signature only (the paper's ECU; the smallest parts).
    Partial = 0,
    /// Supplier signature and a threshold of regulator attestations.
    Full = 1,
}

/// Why a trust document was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    Truncated,
    TrailingBytes,
    BadMagic,
    UnsupportedFormat(u8),
    BadMode(u8),
    ReservedNotZero,
    BadHardwareId,
    /// Version 0 is not a version.
    ZeroVersion,
    /// A key set's count or threshold is out of range (set 0 suppliers, 1 regulators, 2
    /// signers, 3 instruction keys).
    BadKeySet(u8),
    /// A key is not a usable public key (an RSA size or exponent, an Ed25519 non-point).
    BadKey,
    /// The signature list is malformed.
    Signatures(SignatureListError),
    /// For another hardware id.
    WrongHardwareId,
    /// Version below the held one, or the same version with different content.
    Downgrade {
        held: u32,
        offered: u32,
    },
    /// Not signed by a threshold of the held document's signer keys.
    NotSignedByCurrent,
    /// Not signed by a threshold of its own signer keys.
    NotSelfSigned,
}

impl From<SignatureListError> for Error {
    fn from(e: SignatureListError) -> Error {
        Error::Signatures(e)
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Truncated => f.write_str("truncated"),
            Error::TrailingBytes => f.write_str("trailing bytes"),
            Error::BadMagic => f.write_str("bad magic (not a trust document)"),
            Error::UnsupportedFormat(v) => write!(f, "unsupported format version {v}"),
            Error::BadMode(m) => write!(f, "unknown mode {m}"),
            Error::ReservedNotZero => f.write_str("reserved bytes are not zero"),
            Error::BadHardwareId => f.write_str("malformed hardware id"),
            Error::ZeroVersion => f.write_str("version 0"),
            Error::BadKeySet(s) => write!(f, "key set {s}: bad count or threshold"),
            Error::BadKey => f.write_str("unusable public key"),
            Error::Signatures(e) => write!(f, "signature list: {e}"),
            Error::WrongHardwareId => f.write_str("trust document for another hardware id"),
            Error::Downgrade { held, offered } => {
                write!(
                    f,
                    "version {offered} does not supersede the held version {held}"
                )
            }
            Error::NotSignedByCurrent => {
                f.write_str("not signed by a threshold of the current trust document's signers")
            }
            Error::NotSelfSigned => f.write_str("not signed by a threshold of its own signers"),
        }
    }
}

/// A set of keys and how many of them must sign.
pub struct KeySet {
    pub keys: Vec<ProvisionedKey, MAX_KEYS>,
    pub threshold: u8,
}

impl KeySet {
    fn same(&self, other: &KeySet) -> bool {
        self.threshold == other.threshold
            && self.keys.len() == other.keys.len()
            && self
                .keys
                .iter()
                .zip(other.keys.iter())
                .all(|(a, b)| a.keyid == b.keyid && a.key == b.key)
    }
}

/// A parsed trust document (its signatures checked separately, see [`TrustDocument::accept`]).
pub struct TrustDocument {
    pub version: u32,
    pub hardware_id: Field,
    pub mode: Mode,
    /// Images with a lower release counter are refused (see the module documentation).
    pub min_release_counter: u64,
    pub suppliers: KeySet,
    pub regulators: KeySet,
    pub signers: KeySet,
    /// The OEM's instruction keys (Ed25519): with any, every download needs an instruction
    /// one of them signed; none is the legacy mode.
    pub instruction_keys: Vec<[u8; crate::instruction::KEY_LEN], MAX_INSTRUCTION_KEYS>,
}

/// A document as received: parsed fields, the signed bytes and the signatures.
pub struct Signed<'a> {
    pub doc: TrustDocument,
    pub signed: &'a [u8],
    pub signatures: Vec<SignatureEntry, MAX_SIGNATURES>,
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if self.0.len() < n {
            return Err(Error::Truncated);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u16(&mut self) -> Result<u16, Error> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, Error> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn keyid(&mut self) -> Result<[u8; 32], Error> {
        let mut k = [0u8; 32];
        k.copy_from_slice(self.take(32)?);
        Ok(k)
    }
}

fn read_set(r: &mut Reader<'_>, threshold: u8, count: u8, which: u8) -> Result<KeySet, Error> {
    let mut keys = Vec::new();
    for _ in 0..count {
        let keyid = r.keyid()?;
        let e = r.u32()?;
        let n_len = usize::from(r.u16()?);
        if n_len == 0 || n_len > MAX_MODULUS {
            return Err(Error::BadKey);
        }
        let n = r.take(n_len)?;
        let key = rsa::RsaPublicKey::new(
            rsa::BigUint::from_bytes_be(n),
            rsa::BigUint::from(u64::from(e)),
        )
        .map_err(|_| Error::BadKey)?;
        keys.push(ProvisionedKey { keyid, key })
            .map_err(|_| Error::BadKeySet(which))?;
    }
    Ok(KeySet { keys, threshold })
}

fn check_counts(which: u8, threshold: u8, count: u8, may_be_empty: bool) -> Result<(), Error> {
    let ok = usize::from(count) <= MAX_KEYS
        && threshold <= count
        && (threshold >= 1 || (may_be_empty && count == 0));
    if ok {
        Ok(())
    } else {
        Err(Error::BadKeySet(which))
    }
}

impl<'a> Signed<'a> {
    /// Parse untrusted bytes: layout only, no signature is checked. Never panics.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_LEN {
            return Err(Error::TrailingBytes);
        }
        let mut r = Reader(bytes);
        let h = r.take(HEADER_LEN)?;
        if h[0..4] != MAGIC {
            return Err(Error::BadMagic);
        }
        let instruction_count = match h[4] {
            FORMAT_VERSION => 0,
            FORMAT_INSTRUCTIONS => h[50],
            v => return Err(Error::UnsupportedFormat(v)),
        };
        let mode = match h[5] {
            0 => Mode::Partial,
            1 => Mode::Full,
            m => return Err(Error::BadMode(m)),
        };
        if h[6] != 0 || h[7] != 0 || (h[4] == FORMAT_VERSION && h[50] != 0) || h[51] != 0 {
            return Err(Error::ReservedNotZero);
        }
        if h[4] == FORMAT_INSTRUCTIONS
            && !(1..=MAX_INSTRUCTION_KEYS).contains(&usize::from(instruction_count))
        {
            return Err(Error::BadKeySet(3));
        }
        let version = u32::from_be_bytes([h[8], h[9], h[10], h[11]]);
        if version == 0 {
            return Err(Error::ZeroVersion);
        }
        let mut hw = [0u8; FIELD_LEN];
        hw.copy_from_slice(&h[12..44]);
        let hardware_id = Field::from_raw(hw).ok_or(Error::BadHardwareId)?;
        let mut floor = [0u8; 8];
        floor.copy_from_slice(&h[52..60]);
        let min_release_counter = u64::from_be_bytes(floor);
        check_counts(0, h[44], h[45], false)?;
        check_counts(1, h[46], h[47], mode == Mode::Partial)?;
        check_counts(2, h[48], h[49], false)?;
        let suppliers = read_set(&mut r, h[44], h[45], 0)?;
        let regulators = read_set(&mut r, h[46], h[47], 1)?;
        let signers = read_set(&mut r, h[48], h[49], 2)?;
        let mut instruction_keys = Vec::new();
        for _ in 0..instruction_count {
            let k = r.keyid()?;
            // A key that is not a point of the curve could never verify: refused here, so a
            // document cannot silently require what no instruction can satisfy.
            ed25519_dalek::VerifyingKey::from_bytes(&k).map_err(|_| Error::BadKey)?;
            instruction_keys.push(k).map_err(|_| Error::BadKeySet(3))?;
        }
        let signed_len = bytes.len() - r.0.len();
        let signatures = parse_signatures(r.0)?;
        Ok(Signed {
            doc: TrustDocument {
                version,
                hardware_id,
                mode,
                min_release_counter,
                suppliers,
                regulators,
                signers,
                instruction_keys,
            },
            signed: &bytes[..signed_len],
            signatures,
        })
    }

    fn signed_by(&self, set: &KeySet) -> Result<(), SigError> {
        verify_threshold(self.signed, &self.signatures, &set.keys, set.threshold)
    }
}

impl TrustDocument {
    /// The initial anchor, installed at provisioning: parsed, for `hardware_id`, and signed by
    /// a threshold of its own signer keys.
    pub fn provision(bytes: &[u8], hardware_id: &str) -> Result<TrustDocument, Error> {
        let s = Signed::parse(bytes)?;
        if s.doc.hardware_id.as_str() != hardware_id {
            return Err(Error::WrongHardwareId);
        }
        s.signed_by(&s.doc.signers)
            .map_err(|_| Error::NotSelfSigned)?;
        Ok(s.doc)
    }

    /// The document that follows `self` (see the module documentation). `Ok` with the new
    /// document, which the caller then stores; the same document again is accepted as is.
    pub fn accept(&self, bytes: &[u8]) -> Result<TrustDocument, Error> {
        let s = Signed::parse(bytes)?;
        if s.doc.hardware_id != self.hardware_id {
            return Err(Error::WrongHardwareId);
        }
        let downgrade = Error::Downgrade {
            held: self.version,
            offered: s.doc.version,
        };
        if s.doc.version < self.version {
            return Err(downgrade);
        }
        if s.doc.version == self.version {
            // A re-send of the held document is harmless; another document under the same
            // version is an attempt to fork the chain.
            return if s.doc.same(self) {
                Ok(s.doc)
            } else {
                Err(downgrade)
            };
        }
        s.signed_by(&self.signers)
            .map_err(|_| Error::NotSignedByCurrent)?;
        s.signed_by(&s.doc.signers)
            .map_err(|_| Error::NotSelfSigned)?;
        Ok(s.doc)
    }

    fn same(&self, o: &TrustDocument) -> bool {
        self.version == o.version
            && self.hardware_id == o.hardware_id
            && self.mode == o.mode
            && self.min_release_counter == o.min_release_counter
            && self.suppliers.same(&o.suppliers)
            && self.regulators.same(&o.regulators)
            && self.signers.same(&o.signers)
            && self.instruction_keys == o.instruction_keys
    }
}

/// The name under which the OEM publishes version `version` of the trust document for
/// `hardware_id` (a target of its top-level targets role): `ecu-trust.<hardware-id>.<version>.bin`.
pub fn target_name(hardware_id: &str, version: u32) -> alloc::string::String {
    alloc::format!("ecu-trust.{hardware_id}.{version}.bin")
}

/// One key of a set to encode: its key id, exponent and big-endian modulus.
pub struct KeySpec<'a> {
    pub keyid: [u8; 32],
    pub exponent: u32,
    pub modulus: &'a [u8],
}

/// What an issuer (the OEM) encodes: the inverse of the parser's fields.
pub struct TrustBody<'a> {
    pub version: u32,
    pub hardware_id: Field,
    pub mode: Mode,
    pub min_release_counter: u64,
    pub suppliers: (&'a [KeySpec<'a>], u8),
    pub regulators: (&'a [KeySpec<'a>], u8),
    pub signers: (&'a [KeySpec<'a>], u8),
    /// The OEM's instruction keys (Ed25519); empty for a legacy (format 2) document.
    pub instruction_keys: &'a [[u8; 32]],
}

impl TrustBody<'_> {
    /// The signed message. Counts are not checked here: [`Signed::parse`] refuses what is out
    /// of range, and issuers parse what they produce before publishing it.
    pub fn encode(&self) -> alloc::vec::Vec<u8> {
        let mut b = alloc::vec::Vec::with_capacity(HEADER_LEN + 1024);
        b.extend_from_slice(&MAGIC);
        b.push(if self.instruction_keys.is_empty() {
            FORMAT_VERSION
        } else {
            FORMAT_INSTRUCTIONS
        });
        b.push(self.mode as u8);
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&self.version.to_be_bytes());
        b.extend_from_slice(self.hardware_id.as_bytes());
        for (keys, t) in [self.suppliers, self.regulators, self.signers] {
            b.push(t);
            b.push(u8::try_from(keys.len()).unwrap_or(u8::MAX));
        }
        b.push(u8::try_from(self.instruction_keys.len()).unwrap_or(u8::MAX));
        b.push(0);
        b.extend_from_slice(&self.min_release_counter.to_be_bytes());
        for (keys, _) in [self.suppliers, self.regulators, self.signers] {
            for k in keys {
                b.extend_from_slice(&k.keyid);
                b.extend_from_slice(&k.exponent.to_be_bytes());
                b.extend_from_slice(&u16::try_from(k.modulus.len()).unwrap_or(0).to_be_bytes());
                b.extend_from_slice(k.modulus);
            }
        }
        for k in self.instruction_keys {
            b.extend_from_slice(k);
        }
        b
    }
}

/// The whole document: the signed message followed by its signatures (key id, signature).
pub fn assemble(signed: &[u8], signatures: &[([u8; 32], &[u8])]) -> alloc::vec::Vec<u8> {
    let mut b = alloc::vec::Vec::from(signed);
    b.push(u8::try_from(signatures.len()).unwrap_or(u8::MAX));
    for (keyid, sig) in signatures {
        b.extend_from_slice(keyid);
        b.extend_from_slice(&u16::try_from(sig.len()).unwrap_or(u16::MAX).to_be_bytes());
        b.extend_from_slice(sig);
    }
    b
}
