//! The fleet's private entries on a public CDN (issue 23): each vehicle finds its entry in the
//! OEM's vehicle tree by a *locator* and reads it under an *entry key*, both derived from a
//! secret the vehicle is provisioned with; the CDN serves only locators and sealed, padded
//! entries, so it names no VIN, no serial and no assignment.
//!
//! ```text
//! fleet secret F        the OEM's, 32 random bytes (DIR/keys/fleet.secret); never served
//! vehicle secret S      HMAC-SHA256(F, "ota fleet v1 vehicle secret" ‖ VIN): provisioned into the
//!                       vehicle's gateway (again, unchanged, into a replacement gateway)
//! locator               first 16 bytes of HMAC-SHA256(S, "ota fleet v1 locator"), 32 hex digits
//! entry key             HMAC-SHA256(S, "ota fleet v1 entry key")
//! sealed entry          nonce (24) ‖ XChaCha20-Poly1305(entry key, nonce, aad, padded) ‖ tag (16)
//!   padded              plaintext ‖ 0x80 ‖ 0x00…, to the smallest of [`PADDED_SIZES`] that holds it
//!   nonce               first 24 bytes of HMAC-SHA256(entry key, "ota fleet v1 nonce" ‖ locator
//!                       ‖ padded): a synthetic IV, so sealing is deterministic (the same
//!                       entry gives the same bytes, the tree's shape stays canonical) and two
//!                       different entries never share a nonce, whatever the OEM's state did
//!   aad                 "ota fleet v1 entry" ‖ locator: an entry moved under another locator
//!                       does not open
//! ```
//!
//! Deriving every vehicle's secret from one OEM secret is what lets the OEM shard its own state
//! by locator (the tree's key) while it is addressed by VIN, without a table of a million
//! secrets; a random secret per vehicle would protect exactly as much (whoever holds the OEM's
//! state holds either), and a leaked vehicle secret opens that vehicle's entry only.

use crate::sealed::hmac;
use crate::xchacha::TAG_LEN;
use crate::Key;

/// Sizes a padded entry takes: an observer learns which of these an entry is, nothing finer
/// (the publisher pads for every ECU a vehicle has: one ECU is 768 bytes, two to six 3 KiB,
/// with or without assignments or an update pending). The smallest holds one ECU's assignment
/// with its instruction; at a million vehicles each 256 bytes more cost about 10% of a first
/// publish (the fleet benchmark).
pub const PADDED_SIZES: [usize; 5] = [768, 3 * 1024, 12 * 1024, 48 * 1024, 128 * 1024];
/// Nonce and tag around the padded entry.
pub const SEALED_OVERHEAD: usize = 24 + TAG_LEN;
/// Hex digits of a locator (128 bits: no two of a fleet collide in practice, and the
/// publisher refuses if they do).
pub const LOCATOR_HEX: usize = 32;

/// Why a sealed entry does not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("{0} bytes is not the length of a sealed entry (one of the padded sizes plus 40)")]
    Length(usize),
    #[error(
        "the entry does not authenticate under this vehicle's key (another vehicle's, or altered)"
    )]
    Unauthentic,
    #[error("the entry's padding is malformed")]
    Padding,
    #[error("the entry is larger than the largest padded size")]
    TooLarge,
}

/// The OEM's fleet secret: every vehicle's secret derives from it.
pub struct FleetSecret(pub Key);

impl FleetSecret {
    pub fn generate() -> FleetSecret {
        FleetSecret(Key::generate())
    }

    /// A value that identifies this secret without revealing it (HMAC-SHA256 of a fixed
    /// label under it, hex): kept beside the state, so another secret is recognised.
    pub fn check_value(&self) -> String {
        hex::encode(hmac(&self.0 .0, &[b"ota fleet v1 check"]))
    }

    /// The secret vehicle `vin` is provisioned with.
    pub fn vehicle(&self, vin: &str) -> VehicleSecret {
        VehicleSecret(Key(hmac(
            &self.0 .0,
            &[b"ota fleet v1 vehicle secret", vin.as_bytes()],
        )))
    }
}

/// One vehicle's secret: where its entry is and how to read it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VehicleSecret(pub Key);

impl VehicleSecret {
    /// The file a gateway is provisioned with: 64 hex digits and a newline.
    pub fn to_file_text(&self) -> String {
        format!("{}\n", hex::encode(self.0 .0))
    }

    /// Parse [`Self::to_file_text`]'s output (surrounding white space ignored).
    pub fn parse(text: &[u8]) -> Option<VehicleSecret> {
        let t = std::str::from_utf8(text).ok()?.trim();
        let mut k = [0u8; 32];
        hex::decode_to_slice(t, &mut k).ok()?;
        Some(VehicleSecret(Key(k)))
    }

    /// Where the vehicle's entry sits in the tree: 32 lower-case hex digits.
    pub fn locator(&self) -> String {
        let h = hmac(&self.0 .0, &[b"ota fleet v1 locator"]);
        hex::encode(&h[..LOCATOR_HEX / 2])
    }

    fn entry_key(&self) -> Key {
        Key(hmac(&self.0 .0, &[b"ota fleet v1 entry key"]))
    }

    /// Pad and seal `plaintext` (see the module doc).
    pub fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, EntryError> {
        self.seal_padded(plaintext, 0)
    }

    /// [`Self::seal`], padded to at least `min` bytes (the smallest size class holding
    /// both): what the publisher uses so that the size class follows what an observer may
    /// know anyway, not what the entry says.
    pub fn seal_padded(&self, plaintext: &[u8], min: usize) -> Result<Vec<u8>, EntryError> {
        let size = PADDED_SIZES
            .into_iter()
            .find(|s| plaintext.len() < *s && min <= *s)
            .ok_or(EntryError::TooLarge)?;
        let locator = self.locator();
        crate::sealed::seal(
            &self.entry_key(),
            &[b"ota fleet v1 nonce".as_slice(), locator.as_bytes()].concat(),
            &aad(&locator),
            plaintext,
            size,
        )
        .map_err(|_| EntryError::TooLarge)
    }

    /// Check and open a sealed entry; returns the plaintext without its padding.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, EntryError> {
        if !is_sealed_length(sealed.len()) {
            return Err(EntryError::Length(sealed.len()));
        }
        let locator = self.locator();
        crate::sealed::open(&self.entry_key(), &aad(&locator), sealed).map_err(|e| match e {
            crate::sealed::Error::Padding => EntryError::Padding,
            _ => EntryError::Unauthentic,
        })
    }
}

fn aad(locator: &str) -> Vec<u8> {
    [b"ota fleet v1 entry".as_slice(), locator.as_bytes()].concat()
}

/// Whether `len` is the length of a sealed entry of one of the padded sizes.
pub fn is_sealed_length(len: usize) -> bool {
    PADDED_SIZES.iter().any(|s| s + SEALED_OVERHEAD == len)
}

/// Whether `s` is a well-formed locator (32 lower-case hex digits).
pub fn is_locator(s: &str) -> bool {
    s.len() == LOCATOR_HEX && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet() -> FleetSecret {
        FleetSecret(Key([7; 32]))
    }

    #[test]
    fn an_entry_opens_for_its_vehicle_only_and_sizes_are_padded() {
        let f = fleet();
        let (a, b) = (f.vehicle("VIN-A"), f.vehicle("VIN-B"));
        assert_ne!(a.locator(), b.locator());
        assert!(is_locator(&a.locator()));
        for len in [0usize, 1, 300, 511, 512, 2047, 5000] {
            let msg: Vec<u8> = (0..len).map(|i| (i % 251) as u8 + 1).collect();
            let s = a.seal(&msg).unwrap();
            let want = PADDED_SIZES.iter().find(|p| len < **p).unwrap() + SEALED_OVERHEAD;
            assert_eq!(s.len(), want, "{len}");
            assert_eq!(a.open(&s).unwrap(), msg);
            // Deterministic: the same entry seals to the same bytes.
            assert_eq!(a.seal(&msg).unwrap(), s);
            assert_eq!(b.open(&s), Err(EntryError::Unauthentic));
        }
    }

    #[test]
    fn any_changed_byte_or_length_is_refused() {
        let a = fleet().vehicle("VIN-A");
        let s = a.seal(b"{\"version\":1}").unwrap();
        for i in [0, 23, 24, 300, s.len() - 1] {
            let mut t = s.clone();
            t[i] ^= 1;
            assert_eq!(a.open(&t), Err(EntryError::Unauthentic), "byte {i}");
        }
        assert_eq!(
            a.open(&s[..s.len() - 1]),
            Err(EntryError::Length(s.len() - 1))
        );
        assert_eq!(a.open(&[]), Err(EntryError::Length(0)));
        let big = vec![1u8; PADDED_SIZES[4]];
        assert_eq!(a.seal(&big), Err(EntryError::TooLarge));
    }

    #[test]
    fn secrets_differ_per_fleet_and_round_trip_as_text() {
        let a = fleet().vehicle("VIN-A");
        let other = FleetSecret(Key([8; 32])).vehicle("VIN-A");
        assert_ne!(a.locator(), other.locator());
        assert_eq!(VehicleSecret::parse(a.to_file_text().as_bytes()), Some(a));
        assert_eq!(VehicleSecret::parse(b"zz"), None);
    }
}
