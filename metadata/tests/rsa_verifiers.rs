//! RSA signatures are verified by ring on the hosted side (fast enough for the fleet ingest) and
//! by the rsa crate on the ECU (`no_std`). The two must agree on every signature, or a
//! signature would count at the gateway and not on the ECU (or the other way round): this
//! checks both on valid signatures, corrupted ones, other salt lengths, the other padding,
//! wrong lengths and small exponents; and that parsing refuses the keys ring never accepts.

use ota_metadata::keys::{Key, KeyId, KeyVal, PSS_SALT_LEN};
use ota_metadata::PublicKey;
use rsa::pkcs8::EncodePublicKey;
use rsa::signature::{RandomizedSigner, SignatureEncoding, Verifier};
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;
use std::collections::BTreeMap;

fn key(public: &RsaPublicKey, scheme: &str) -> Key {
    Key {
        keytype: "rsa".into(),
        scheme: scheme.into(),
        keyval: KeyVal {
            public: public
                .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
                .unwrap(),
            extra: BTreeMap::new(),
        },
        extra: BTreeMap::new(),
    }
}

fn parsed(public: &RsaPublicKey, scheme: &str) -> PublicKey {
    key(public, scheme).to_public(&KeyId("k".into())).unwrap()
}

/// The ECU's check (ecu/src/compact_manifest.rs): the rsa crate, salt of 32 bytes.
fn rsa_crate_pss(public: &RsaPublicKey, msg: &[u8], sig: &[u8]) -> bool {
    let Ok(sig) = rsa::pss::Signature::try_from(sig) else {
        return false;
    };
    rsa::pss::VerifyingKey::<Sha256>::new_with_salt_len(public.clone(), PSS_SALT_LEN)
        .verify(msg, &sig)
        .is_ok()
}

fn rsa_crate_pkcs1(public: &RsaPublicKey, msg: &[u8], sig: &[u8]) -> bool {
    let Ok(sig) = rsa::pkcs1v15::Signature::try_from(sig) else {
        return false;
    };
    rsa::pkcs1v15::VerifyingKey::<Sha256>::new(public.clone())
        .verify(msg, &sig)
        .is_ok()
}

fn pss_sign(private: &RsaPrivateKey, salt: usize, msg: &[u8]) -> Vec<u8> {
    rsa::pss::BlindedSigningKey::<Sha256>::new_with_salt_len(private.clone(), salt)
        .sign_with_rng(&mut rand_core::OsRng, msg)
        .to_vec()
}

fn variants(good: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![("valid".to_string(), good.to_vec())];
    for at in [0, 1, good.len() / 2, good.len() - 1] {
        let mut bad = good.to_vec();
        bad[at] ^= 0x01;
        out.push((format!("bit flipped at byte {at}"), bad));
    }
    out.push(("one byte short".into(), good[1..].to_vec()));
    let mut long = vec![0u8];
    long.extend_from_slice(good);
    out.push(("a zero byte in front".into(), long));
    out.push(("empty".into(), Vec::new()));
    out.push(("all zero".into(), vec![0; good.len()]));
    out.push(("all 0xff".into(), vec![0xff; good.len()]));
    out
}

/// Scenario: Arbitrary software | a signature the gateway's verifier (ring) and the ECU's (the rsa crate) would judge differently: corrupted, another salt length, the other padding, one byte short or long | both verifiers agree on every one, and only the valid signature with the project's salt counts
#[test]
fn ring_and_the_rsa_crate_agree_on_pss_signatures() {
    let msg = b"{\"signed\":{\"_type\":\"targets\"}}";
    for bits in [2048, 3072] {
        let private = RsaPrivateKey::new(&mut rand_core::OsRng, bits).unwrap();
        let public = private.to_public_key();
        let hosted = parsed(&public, "rsassa-pss-sha256");
        let mut accepted = 0;
        for salt in [0, 20, PSS_SALT_LEN, 64] {
            for (what, sig) in variants(&pss_sign(&private, salt, msg)) {
                let ecu = rsa_crate_pss(&public, msg, &sig);
                assert_eq!(
                    hosted.verify(msg, &sig),
                    ecu,
                    "{bits}-bit key, salt {salt}, {what}: the verifiers disagree"
                );
                accepted += usize::from(ecu);
            }
            // Another message never verifies.
            let sig = pss_sign(&private, salt, msg);
            assert!(!hosted.verify(b"another message", &sig));
        }
        // Only the valid signature with the project's salt length counts, for both.
        assert_eq!(accepted, 1, "{bits}-bit key");
        // A PKCS#1 v1.5 signature is not a PSS signature.
        let pkcs1 = rsa::pkcs1v15::SigningKey::<Sha256>::new(private.clone())
            .sign_with_rng(&mut rand_core::OsRng, msg)
            .to_vec();
        assert!(!hosted.verify(msg, &pkcs1));
        assert!(!rsa_crate_pss(&public, msg, &pkcs1));
    }
}

#[test]
fn ring_and_the_rsa_crate_agree_on_pkcs1_signatures_and_small_exponents() {
    let msg = b"version report";
    for exponent in [3u32, 65537] {
        let private =
            RsaPrivateKey::new_with_exp(&mut rand_core::OsRng, 2048, &BigUint::from(exponent))
                .unwrap();
        let public = private.to_public_key();
        let pkcs1 = parsed(&public, "rsa-pkcs1v15-sha256");
        let good = rsa::pkcs1v15::SigningKey::<Sha256>::new(private.clone())
            .sign_with_rng(&mut rand_core::OsRng, msg)
            .to_vec();
        for (what, sig) in variants(&good) {
            assert_eq!(
                pkcs1.verify(msg, &sig),
                rsa_crate_pkcs1(&public, msg, &sig),
                "e = {exponent}, {what}: the verifiers disagree"
            );
        }
        assert!(pkcs1.verify(msg, &good), "e = {exponent}");
        let pss = parsed(&public, "rsassa-pss-sha256");
        let sig = pss_sign(&private, PSS_SALT_LEN, msg);
        assert!(pss.verify(msg, &sig), "e = {exponent}");
        assert!(
            !pkcs1.verify(msg, &sig),
            "a PSS signature is not PKCS#1 v1.5"
        );
    }
}

/// A PKCS#1 PEM of any modulus and exponent, as an attacker could write it (the rsa crate's
/// own constructor would refuse some).
fn raw_pem(n: &BigUint, e: &BigUint) -> String {
    use rsa::pkcs1::der::{pem::LineEnding, Encode, EncodePem};
    let (n, e) = (n.to_bytes_be(), e.to_bytes_be());
    let doc = rsa::pkcs1::RsaPublicKey {
        modulus: rsa::pkcs1::UintRef::new(&n).unwrap(),
        public_exponent: rsa::pkcs1::UintRef::new(&e).unwrap(),
    };
    let _ = doc.to_der().unwrap();
    doc.to_pem(LineEnding::LF).unwrap()
}

/// Scenario: Arbitrary software | an RSA key with an even exponent, an exponent of 1 or an even modulus, written by hand into metadata | refused when parsed, with the reason, never listed as a key that could count
#[test]
fn keys_no_verifier_could_use_are_refused_when_parsed() {
    let private = RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
    let n = private.to_public_key().n().clone();
    let even_n = &n + BigUint::from(1u8);
    for (what, n, e) in [
        ("an even exponent", &n, 65536u32),
        ("an exponent of 1", &n, 1),
        ("an even modulus", &even_n, 65537),
    ] {
        let mut k = key(&private.to_public_key(), "rsassa-pss-sha256");
        k.keyval.public = raw_pem(n, &BigUint::from(e));
        assert!(
            k.to_public(&KeyId("k".into())).is_err(),
            "a key with {what} was accepted"
        );
    }
    // The same writer's PEM of the real key parses: the refusals above are the key's.
    let mut k = key(&private.to_public_key(), "rsassa-pss-sha256");
    k.keyval.public = raw_pem(&n, &BigUint::from(65537u32));
    assert!(k.to_public(&KeyId("k".into())).is_ok());
}
