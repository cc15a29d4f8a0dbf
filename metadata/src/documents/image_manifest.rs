//! The image manifest (the paper's Mi): what a supplier says one image is, signed by the keys
//! of the supplier role that lists the image.

use crate::error::{Error, Result};
use crate::names;
use crate::roles::{sha256_of, Hashes, TargetFile, SPEC_VERSION};
use ota_ecu::compact_manifest::{Body, CompactManifest, Field, MAX_HARDWARE_IDS};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageManifest {
    #[serde(rename = "_type")]
    pub type_: String,
    pub spec_version: String,
    pub supplier: String,
    pub uid: String,
    pub version: String,
    pub release_counter: u64,
    pub hardware_ids: Vec<String>,
    /// Target name of the image this manifest describes.
    pub target: String,
    /// The target's length and hashes: the ciphertext's when the image is encrypted.
    pub length: u64,
    pub hashes: Hashes,
    /// Present when the published image is encrypted (issue 11): then `length` and `hashes`
    /// describe the ciphertext (the TUF target), and this the plaintext, which the compact
    /// manifest carries and the ECU verifies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
    /// Deltas published with the image (issue 26), each rebuilding it from an earlier release
    /// (`ota_ecu::delta`). Only a way to carry the image: the ECU checks what a delta rebuilds
    /// against this manifest's length and SHA-256, as it checks the image itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deltas: Vec<DeltaEntry>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// One delta of an image: from which release, and the target that carries it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeltaEntry {
    /// The earlier release of the same uid the delta applies to, and its image's SHA-256: an
    /// ECU that runs exactly that image can take the delta.
    pub from_version: String,
    pub from_sha256: String,
    /// The delta's target name ([`ImageTargets::delta`]), length and hashes.
    pub target: String,
    pub length: u64,
    pub hashes: Hashes,
}

/// Most deltas one image may list.
pub const MAX_DELTAS: usize = 16;

/// How an encrypted image was encrypted, and what it decrypts to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encryption {
    /// `ota-crypt-stream-v1`: chunked XChaCha20-Poly1305 (`ota_crypt::stream`).
    pub scheme: String,
    pub chunk_size: u32,
    /// The plaintext's length and hashes.
    pub length: u64,
    pub hashes: Hashes,
}

/// The three targets that one image puts in a supplier repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageTargets {
    pub image: String,
    pub manifest: String,
    pub compact: String,
}

impl ImageTargets {
    pub fn new(uid: &str, version: &str) -> Self {
        ImageTargets {
            image: format!("{uid}-{version}.bin"),
            manifest: format!("{uid}-{version}.image.json"),
            compact: format!("{uid}-{version}.manifest.bin"),
        }
    }

    /// The target name of the delta that rebuilds `uid` `version` from `from_version`.
    pub fn delta(uid: &str, version: &str, from_version: &str) -> String {
        format!("{uid}-{version}.from-{from_version}.delta")
    }
}

/// What a target is, in its `custom` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageKind {
    Image,
    ImageManifest,
    CompactManifest,
    /// A delta that rebuilds the image from an earlier release ([`DeltaEntry`]).
    Delta,
}

/// The `custom` object of a supplier target, so readers can find images without opening them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageTargetCustom {
    pub kind: ImageKind,
    pub uid: String,
    pub version: String,
    pub release_counter: u64,
    pub hardware_ids: Vec<String>,
}

impl ImageManifest {
    pub const TYPE: &'static str = "image-manifest";

    pub fn new(
        supplier: &str,
        uid: &str,
        version: &str,
        release_counter: u64,
        hardware_ids: Vec<String>,
        length: u64,
        sha256: [u8; 32],
    ) -> Result<Self> {
        let m = ImageManifest {
            type_: Self::TYPE.into(),
            spec_version: SPEC_VERSION.into(),
            supplier: supplier.into(),
            uid: uid.into(),
            version: version.into(),
            release_counter,
            hardware_ids,
            target: ImageTargets::new(uid, version).image,
            length,
            hashes: BTreeMap::from([("sha256".to_string(), hex::encode(sha256))]),
            encryption: None,
            deltas: Vec::new(),
            extra: BTreeMap::new(),
        };
        m.validate()?;
        Ok(m)
    }

    pub fn validate(&self) -> Result<()> {
        names::check_uid(&self.uid)?;
        names::check_image_version(&self.version)?;
        if self.hardware_ids.is_empty() || self.hardware_ids.len() > MAX_HARDWARE_IDS {
            return Err(Error::malformed(
                "image manifest",
                format!(
                    "{} hardware ids; 1 to {MAX_HARDWARE_IDS} allowed",
                    self.hardware_ids.len()
                ),
            ));
        }
        let mut seen = BTreeSet::new();
        for h in &self.hardware_ids {
            names::check_hardware_id(h)?;
            if !seen.insert(h) {
                return Err(Error::malformed(
                    "image manifest",
                    format!("hardware id {h:?} listed twice"),
                ));
            }
        }
        sha256_of(&self.hashes, "image manifest")?;
        if let Some(e) = &self.encryption {
            let bad = |why: String| Err(Error::malformed("image manifest encryption", why));
            if e.scheme != ota_crypt::stream::SCHEME {
                return bad(format!("unknown scheme {:?}", e.scheme));
            }
            sha256_of(&e.hashes, "image manifest encryption")?;
            match ota_crypt::stream::ciphertext_len(e.chunk_size, e.length) {
                Some(n) if n == self.length => {}
                Some(n) => {
                    return bad(format!(
                        "{} plaintext bytes in chunks of {} encrypt to {n} bytes, not {}",
                        e.length, e.chunk_size, self.length
                    ))
                }
                None => {
                    return bad(format!(
                        "chunk size {} or length {} out of range",
                        e.chunk_size, e.length
                    ))
                }
            }
        }
        self.validate_deltas()
    }

    fn validate_deltas(&self) -> Result<()> {
        let bad = |why: String| Err(Error::malformed("image manifest deltas", why));
        if self.deltas.len() > MAX_DELTAS {
            return bad(format!(
                "{} deltas; at most {MAX_DELTAS}",
                self.deltas.len()
            ));
        }
        if !self.deltas.is_empty() && self.encryption.is_some() {
            return bad("an encrypted image has no deltas (they would carry its plaintext)".into());
        }
        let mut bases = BTreeSet::new();
        for d in &self.deltas {
            names::check_image_version(&d.from_version)?;
            let expected = ImageTargets::delta(&self.uid, &self.version, &d.from_version);
            if d.target != expected {
                return bad(format!("delta target {:?}, not {expected:?}", d.target));
            }
            if d.from_version == self.version {
                return bad(format!("a delta from version {} to itself", d.from_version));
            }
            sha256_of(&d.hashes, "image manifest delta")?;
            let base_ok = hex::decode(&d.from_sha256).is_ok_and(|b| b.len() == 32);
            if !base_ok || !bases.insert(d.from_sha256.as_str()) {
                return bad(format!(
                    "delta from {}: base SHA-256 {:?} malformed or listed twice",
                    d.from_version, d.from_sha256
                ));
            }
        }
        Ok(())
    }

    /// The delta this image lists for an ECU running the image of SHA-256 `running` (hex).
    pub fn delta_from(&self, running: &str) -> Option<&DeltaEntry> {
        self.deltas
            .iter()
            .find(|d| d.from_sha256.eq_ignore_ascii_case(running))
    }

    /// The SHA-256 of the published target (the ciphertext, if encrypted).
    pub fn sha256(&self) -> Result<[u8; 32]> {
        sha256_of(&self.hashes, "image manifest")
    }

    /// The length and SHA-256 of the image an ECU receives (the plaintext).
    pub fn plaintext(&self) -> Result<(u64, [u8; 32])> {
        match &self.encryption {
            Some(e) => Ok((e.length, sha256_of(&e.hashes, "image manifest encryption")?)),
            None => Ok((self.length, self.sha256()?)),
        }
    }

    /// The body of the compact form of this manifest.
    pub fn compact_body(&self) -> Result<Body> {
        let field = |s: &str, what: &str| {
            Field::new(s).ok_or_else(|| {
                Error::malformed(
                    "image manifest",
                    format!("{what} {s:?} does not fit the compact form"),
                )
            })
        };
        let mut hardware_ids = heapless::Vec::new();
        for h in &self.hardware_ids {
            hardware_ids
                .push(field(h, "hardware id")?)
                .map_err(|_| Error::malformed("image manifest", "too many hardware ids"))?;
        }
        // The ECU verifies what it receives: the plaintext.
        let (length, sha256) = self.plaintext()?;
        Ok(Body {
            uid: field(&self.uid, "uid")?,
            version: field(&self.version, "version")?,
            release_counter: self.release_counter,
            length,
            sha256,
            hardware_ids,
        })
    }

    /// Check that a compact manifest says exactly what this manifest says.
    pub fn check_compact(&self, compact: &CompactManifest) -> Result<()> {
        if compact.body != self.compact_body()? {
            return Err(Error::malformed(
                "compact manifest",
                format!(
                    "does not agree with the image manifest of {}-{}",
                    self.uid, self.version
                ),
            ));
        }
        Ok(())
    }

    /// Check that the target entry a repository lists for the image agrees with this manifest.
    pub fn check_target(&self, name: &str, target: &TargetFile) -> Result<()> {
        if name != self.target {
            return Err(Error::malformed(
                "image manifest",
                format!("describes {:?}, not {name:?}", self.target),
            ));
        }
        if target.length != self.length {
            return Err(Error::Length {
                what: format!("target {name} against its image manifest"),
                found: target.length,
                expected: self.length,
            });
        }
        let listed = sha256_of(&target.hashes, name)?;
        if listed != self.sha256()? {
            return Err(Error::Hash {
                what: format!("target {name} against its image manifest"),
                found: hex::encode(listed),
                expected: hex::encode(self.sha256()?),
            });
        }
        Ok(())
    }

    pub fn custom(&self, kind: ImageKind) -> ImageTargetCustom {
        ImageTargetCustom {
            kind,
            uid: self.uid.clone(),
            version: self.version.clone(),
            release_counter: self.release_counter,
            hardware_ids: self.hardware_ids.clone(),
        }
    }
}

/// Largest image manifest accepted (they are a few hundred bytes).
pub const MAX_MANIFEST_LEN: u64 = 64 * 1024;

/// Verify an image manifest as every consumer must (gateway, regulator, OEM, `verify`): signed
/// by a threshold of the role that lists the image, describing exactly the listed image, within
/// the role's hardware-id restriction; and, if given, its compact form saying the same and
/// signed by the same role's keys.
pub fn verify_image_manifest(
    manifest_bytes: &[u8],
    signer: &crate::trusted_set::RoleSigner,
    image_name: &str,
    image: &TargetFile,
    compact_bytes: Option<&[u8]>,
) -> Result<ImageManifest> {
    use crate::documents::compact::{keyid_bytes, parse_compact, ProvisionedKey};
    let what = format!("image manifest of {image_name} (role {})", signer.role);
    let env = crate::Envelope::parse(&what, manifest_bytes, MAX_MANIFEST_LEN)?;
    env.verify(&what, &signer.keyids, signer.threshold, &signer.keys)?;
    let m: ImageManifest = env.decode(&what, ImageManifest::TYPE)?;
    m.validate()?;
    m.check_target(image_name, image)?;
    if let Some(allowed) = &signer.hardware_ids {
        if let Some(h) = m.hardware_ids.iter().find(|h| !allowed.contains(h)) {
            return Err(Error::policy(
                &signer.role,
                format!(
                    "signs {image_name} for hardware id {h:?}, outside its delegation {allowed:?}"
                ),
            ));
        }
    }
    if let Some(cb) = compact_bytes {
        let compact = parse_compact(cb)?;
        m.check_compact(&compact)?;
        let mut provisioned = Vec::new();
        for id in &signer.keyids {
            if let (Some(k), Ok(raw)) = (signer.keys.get(id), keyid_bytes(id)) {
                if let Ok(crate::PublicKey::Rsa(rsa)) = k.to_public(id) {
                    provisioned.push(ProvisionedKey {
                        keyid: raw,
                        key: *rsa,
                    });
                }
            }
        }
        let threshold = u8::try_from(signer.threshold).unwrap_or(u8::MAX);
        compact
            .verify(&provisioned, threshold)
            .map_err(Error::Compact)?;
    }
    Ok(m)
}
