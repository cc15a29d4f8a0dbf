//! The compact manifest: signed by the publisher's code, parsed and verified by the ECU's.

mod common;
use common::keys;
use ota_ecu::compact_manifest::{
    CompactManifest, Error as CError, ProvisionedKey, BODY_LEN, MAX_LEN,
};
use ota_metadata::documents::compact::{keyid_bytes, parse_compact, sign_compact};
use ota_metadata::documents::ImageManifest;

fn manifest() -> ImageManifest {
    ImageManifest::new(
        "acme",
        "brake-fw",
        "1.2.3+b7",
        42,
        vec!["BRAKE-A".into(), "BRAKE-B".into()],
        65_536,
        [0xab; 32],
    )
    .unwrap()
}

fn provisioned(k: &ota_metadata::SigningKey) -> ProvisionedKey {
    ProvisionedKey {
        keyid: keyid_bytes(k.key_id()).unwrap(),
        key: k.rsa_public(),
    }
}

#[test]
fn round_trip_and_verify_with_the_ecu_parser() {
    let m = manifest();
    let k = &keys()[0];
    let bytes = sign_compact(&m.compact_body().unwrap(), &[k]).unwrap();
    let c = parse_compact(&bytes).unwrap();
    assert_eq!(c.body.uid.as_str(), "brake-fw");
    assert_eq!(c.body.version.as_str(), "1.2.3+b7");
    assert_eq!(c.body.release_counter, 42);
    assert_eq!(c.body.length, 65_536);
    assert!(c.body.fits("BRAKE-B") && !c.body.fits("BRAKE-C"));
    assert_eq!(c.encode().as_slice(), bytes.as_slice());
    m.check_compact(&c).unwrap();
    c.verify(&[provisioned(k)], 1).unwrap();
}

/// Scenario: Arbitrary software | a compact manifest signed by another key or altered | the ECU refuses it
#[test]
fn wrong_key_tampering_and_threshold() {
    let m = manifest();
    let (a, b) = (&keys()[0], &keys()[1]);
    let bytes = sign_compact(&m.compact_body().unwrap(), &[a]).unwrap();
    let c = parse_compact(&bytes).unwrap();
    // Provisioned key under a's id but with b's material.
    let wrong = ProvisionedKey {
        keyid: keyid_bytes(a.key_id()).unwrap(),
        key: b.rsa_public(),
    };
    assert!(matches!(
        c.verify(&[wrong], 1),
        Err(CError::Threshold { valid: 0, .. })
    ));
    // A flipped release counter byte breaks the signature.
    let mut t = bytes.clone();
    t[79] ^= 1;
    let tc = parse_compact(&t).unwrap();
    assert_eq!(tc.body.release_counter, 43);
    assert!(tc.verify(&[provisioned(a)], 1).is_err());
    assert!(m.check_compact(&tc).is_err());
    // The same signature twice does not meet a threshold of 2.
    let mut dup = parse_compact(&bytes).unwrap();
    let s = dup.signatures[0].clone();
    dup.signatures.push(s).unwrap();
    let dup = parse_compact(&dup.encode()).unwrap();
    assert!(matches!(
        dup.verify(&[provisioned(a), provisioned(b)], 2),
        Err(CError::Threshold {
            valid: 1,
            threshold: 2
        })
    ));
    let both = parse_compact(&sign_compact(&m.compact_body().unwrap(), &[a, b]).unwrap()).unwrap();
    both.verify(&[provisioned(a), provisioned(b)], 2).unwrap();
    // Threshold 0 is never satisfied.
    assert!(both.verify(&[provisioned(a)], 0).is_err());
}

/// Scenario: Thresholds | the ECU given one key under two ids | counts key material once
#[test]
fn the_ecu_counts_key_material_not_key_ids() {
    let m = manifest();
    let (a, b) = (&keys()[0], &keys()[1]);
    let bytes = sign_compact(&m.compact_body().unwrap(), &[a]).unwrap();
    // a's key provisioned a second time under another key id, and a second signature slot
    // naming that id with a's (valid) signature: one key, whatever the ids say.
    let alias = [0x5a; 32];
    let mut two_ids = parse_compact(&bytes).unwrap();
    let mut s = two_ids.signatures[0].clone();
    s.keyid = alias;
    two_ids.signatures.push(s).unwrap();
    let two_ids = parse_compact(&two_ids.encode()).unwrap();
    let aliased = || ProvisionedKey {
        keyid: alias,
        key: a.rsa_public(),
    };
    assert!(matches!(
        two_ids.verify(&[provisioned(a), aliased()], 2),
        Err(CError::Threshold {
            valid: 1,
            threshold: 2
        })
    ));
    two_ids.verify(&[provisioned(a), aliased()], 1).unwrap();
    // The same key provisioned twice under the same id counts once too.
    let twice = parse_compact(&bytes).unwrap();
    assert!(matches!(
        twice.verify(&[provisioned(a), provisioned(a)], 2),
        Err(CError::Threshold { valid: 1, .. })
    ));
    // Two distinct keys still meet a threshold of 2, with an alias of one of them beside.
    let both = parse_compact(&sign_compact(&m.compact_body().unwrap(), &[a, b]).unwrap()).unwrap();
    both.verify(&[provisioned(a), aliased(), provisioned(b)], 2)
        .unwrap();
}

#[test]
fn every_truncation_and_extension_is_an_error() {
    let bytes = sign_compact(&manifest().compact_body().unwrap(), &[&keys()[0]]).unwrap();
    for n in 0..bytes.len() {
        assert!(
            CompactManifest::parse(&bytes[..n]).is_err(),
            "prefix of {n}"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(CompactManifest::parse(&longer), Err(CError::TrailingBytes));
    assert!(CompactManifest::parse(&vec![0u8; MAX_LEN + 1]).is_err());
}

#[test]
fn malformed_headers_and_fields() {
    let bytes = sign_compact(&manifest().compact_body().unwrap(), &[&keys()[0]]).unwrap();
    let with = |at: usize, v: u8| {
        let mut b = bytes.clone();
        b[at] = v;
        CompactManifest::parse(&b)
    };
    assert_eq!(with(0, b'X'), Err(CError::BadMagic));
    assert_eq!(with(4, 2), Err(CError::UnsupportedFormat(2)));
    assert_eq!(with(5, 0), Err(CError::BadHardwareIdCount(0)));
    assert_eq!(with(5, 5), Err(CError::BadHardwareIdCount(5)));
    assert_eq!(with(6, 1), Err(CError::ReservedNotZero));
    assert_eq!(with(8, 0), Err(CError::BadField("uid"))); // empty uid
    assert_eq!(with(8 + 20, b'x'), Err(CError::BadField("uid"))); // byte after the padding starts
    assert_eq!(with(41, 0x7f), Err(CError::BadField("version")));
    assert!(with(120 + 2 * 32, b'Z').is_err()); // unused hardware-id slot
    assert_eq!(with(BODY_LEN, 0), Err(CError::BadSignatureCount(0)));
    assert_eq!(with(BODY_LEN, 5), Err(CError::BadSignatureCount(5)));
    let mut long_sig = bytes.clone();
    long_sig[BODY_LEN + 1 + 32] = 0x02;
    long_sig[BODY_LEN + 1 + 33] = 0x01;
    assert_eq!(
        CompactManifest::parse(&long_sig),
        Err(CError::SignatureTooLong(513))
    );
}

#[test]
fn random_input_never_panics() {
    // A small deterministic generator: the point is coverage of odd inputs, not randomness.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let good = sign_compact(&manifest().compact_body().unwrap(), &[&keys()[0]]).unwrap();
    for _ in 0..20_000 {
        let mut b = good.clone();
        let flips = (next() % 8) as usize;
        for _ in 0..flips {
            let i = (next() as usize) % b.len();
            b[i] = next() as u8;
        }
        b.truncate((next() as usize) % (good.len() + 1));
        let _ = CompactManifest::parse(&b);
    }
}

#[test]
fn fields_that_do_not_fit_are_refused_at_creation() {
    let hw = vec!["A".into(), "B".into(), "C".into(), "D".into(), "E".into()];
    assert!(ImageManifest::new("s", "u", "1", 1, hw, 1, [0; 32]).is_err());
    assert!(
        ImageManifest::new("s", &"u".repeat(33), "1", 1, vec!["A".into()], 1, [0; 32]).is_err()
    );
    assert!(
        ImageManifest::new("s", "u", "1", 1, vec!["A".into(), "A".into()], 1, [0; 32]).is_err()
    );
    assert!(ImageManifest::new("s", "u", "1", 1, vec![], 1, [0; 32]).is_err());
}
