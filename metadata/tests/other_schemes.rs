//! Verification of the schemes other TUF tooling signs with: ed25519 and ECDSA P-256.

use ota_metadata::canonical::to_canonical;
use ota_metadata::keys::{Key, KeyId, KeyVal};
use ota_metadata::Envelope;
use serde_json::json;
use std::collections::BTreeMap;

fn key(keytype: &str, scheme: &str, public: String) -> Key {
    Key {
        keytype: keytype.into(),
        scheme: scheme.into(),
        keyval: KeyVal {
            public,
            extra: BTreeMap::new(),
        },
        extra: BTreeMap::new(),
    }
}

fn check(k: Key, sign: impl Fn(&[u8]) -> Vec<u8>) {
    let signed = json!({"_type": "timestamp", "version": 1});
    let msg = to_canonical(&signed).unwrap();
    let id = KeyId("01".repeat(32));
    let keys = BTreeMap::from([(id.clone(), k)]);
    let env = |sig: Vec<u8>| {
        let bytes = serde_json::to_vec(
            &json!({"signed": signed, "signatures": [{"keyid": id.0, "sig": hex::encode(sig)}]}),
        )
        .unwrap();
        Envelope::parse("t", &bytes, 1 << 16).unwrap()
    };
    let good = sign(&msg);
    assert_eq!(
        env(good.clone())
            .verify("t", std::slice::from_ref(&id), 1, &keys)
            .unwrap(),
        1
    );
    let mut bad = good;
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(env(bad)
        .verify("t", std::slice::from_ref(&id), 1, &keys)
        .is_err());
    assert!(env(sign(b"other message"))
        .verify("t", &[id], 1, &keys)
        .is_err());
}

#[test]
fn ed25519() {
    use ed25519_dalek::Signer;
    let sk = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let k = key(
        "ed25519",
        "ed25519",
        hex::encode(sk.verifying_key().as_bytes()),
    );
    check(k, |m| sk.sign(m).to_bytes().to_vec());
}

#[test]
fn ecdsa_p256_pem_and_hex_keys() {
    use p256::ecdsa::signature::Signer;
    use p256::pkcs8::{EncodePublicKey, LineEnding};
    let sk = p256::ecdsa::SigningKey::from_bytes(&[9u8; 32].into()).unwrap();
    let vk = sk.verifying_key();
    let sign = |m: &[u8]| {
        let s: p256::ecdsa::Signature = sk.sign(m);
        s.to_der().as_bytes().to_vec()
    };
    let pem = vk.to_public_key_pem(LineEnding::LF).unwrap();
    check(key("ecdsa", "ecdsa-sha2-nistp256", pem), sign);
    let hex_point = hex::encode(vk.to_encoded_point(false).as_bytes());
    check(
        key("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256", hex_point),
        sign,
    );
}

#[test]
fn unknown_scheme_is_an_error_not_a_pass() {
    let k = key("rsa", "rsassa-pkcs1v15-sha256", "x".into());
    assert!(k.to_public(&KeyId("a".into())).is_err());
}

#[test]
fn rsa_pkcs1v15_sha256() {
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    use rsa::signature::{SignatureEncoding, Signer};
    let sk = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
    let pem = sk
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(sk);
    check(key("rsa", "rsa-pkcs1v15-sha256", pem), |m| {
        signer.sign(m).to_vec()
    });
}
