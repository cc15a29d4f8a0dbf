//! Signature and threshold verification over parsed envelopes.

mod common;
use common::keys;
use ota_metadata::keys::{Key, KeyId};
use ota_metadata::{sign_document, Envelope, Error};
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn keymap(ks: &[&ota_metadata::SigningKey]) -> (BTreeMap<KeyId, Key>, Vec<KeyId>) {
    let mut m = BTreeMap::new();
    for k in ks {
        m.insert(k.key_id().clone(), k.public().clone());
    }
    let ids = m.keys().cloned().collect();
    (m, ids)
}

fn doc() -> Value {
    json!({"_type": "targets", "version": 3, "note": "héllo \"world\"\n", "b": [1, 2]})
}

fn parse(bytes: &[u8]) -> Envelope {
    Envelope::parse("test", bytes, 1 << 20).unwrap()
}

#[test]
fn valid_signature_meets_threshold_one() {
    let k = &keys()[0];
    let bytes = sign_document(&doc(), &[k]).unwrap();
    let (m, ids) = keymap(&[k]);
    assert_eq!(parse(&bytes).verify("targets", &ids, 1, &m).unwrap(), 1);
}

#[test]
fn wrong_key_is_rejected() {
    let (signer, trusted) = (&keys()[0], &keys()[1]);
    let bytes = sign_document(&doc(), &[signer]).unwrap();
    // The trusted key listed under the signer's key id: the signature must not verify.
    let mut m = BTreeMap::new();
    m.insert(signer.key_id().clone(), trusted.public().clone());
    let err = parse(&bytes)
        .verify("targets", &[signer.key_id().clone()], 1, &m)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Threshold {
                valid: 0,
                threshold: 1,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn modified_signed_bytes_are_rejected() {
    let k = &keys()[0];
    let bytes = sign_document(&doc(), &[k]).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let tampered = text.replace("\"version\": 3", "\"version\": 4");
    assert_ne!(text, tampered);
    let (m, ids) = keymap(&[k]);
    assert!(matches!(
        parse(tampered.as_bytes()).verify("targets", &ids, 1, &m),
        Err(Error::Threshold { valid: 0, .. })
    ));
}

#[test]
fn reformatting_outside_the_canonical_form_keeps_signatures_valid() {
    // Signatures cover canonical JSON: whitespace and key order in the file do not matter.
    let k = &keys()[0];
    let bytes = sign_document(&doc(), &[k]).unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    let compact = serde_json::to_vec(&v).unwrap();
    let (m, ids) = keymap(&[k]);
    assert_eq!(parse(&compact).verify("targets", &ids, 1, &m).unwrap(), 1);
    assert_eq!(parse(&compact).raw(), compact.as_slice());
}

/// Scenario: Thresholds | the same signature repeated | refused
#[test]
fn a_repeated_key_id_in_signatures_is_refused() {
    // TUF: key ids in `signatures` MUST be unique. A repeat is refused, not skipped, whatever
    // the threshold and even if the repeated signature is valid.
    let k = &keys()[0];
    let other = &keys()[1];
    let bytes = sign_document(&doc(), &[k]).unwrap();
    let mut v: Value = serde_json::from_slice(&bytes).unwrap();
    let sig = v["signatures"][0].clone();
    v["signatures"].as_array_mut().unwrap().push(sig);
    let dup = serde_json::to_vec(&v).unwrap();
    let (m, ids) = keymap(&[k, other]);
    for threshold in [1, 2] {
        let err = parse(&dup)
            .verify("targets", &ids, threshold, &m)
            .unwrap_err();
        assert!(
            matches!(&err, Error::DuplicateSignature { role, keyid }
                if role == "targets" && keyid == &k.key_id().0),
            "{err}"
        );
    }
    // Also when the repeat is a garbage signature, or from a key the role does not list.
    let mut v: Value = serde_json::from_slice(&bytes).unwrap();
    v["signatures"]
        .as_array_mut()
        .unwrap()
        .push(json!({"keyid": k.key_id().0, "sig": "00"}));
    let dup = serde_json::to_vec(&v).unwrap();
    assert!(matches!(
        parse(&dup).verify("targets", &ids, 1, &m),
        Err(Error::DuplicateSignature { .. })
    ));
    let both = sign_document(&doc(), &[k, other]).unwrap();
    let mut v: Value = serde_json::from_slice(&both).unwrap();
    let sig = v["signatures"][1].clone();
    v["signatures"].as_array_mut().unwrap().push(sig);
    let dup = serde_json::to_vec(&v).unwrap();
    assert!(matches!(
        parse(&dup).verify("targets", &[k.key_id().clone()], 1, &m),
        Err(Error::DuplicateSignature { .. })
    ));
    // With both keys signing once each, threshold 2 is met.
    assert_eq!(parse(&both).verify("targets", &ids, 2, &m).unwrap(), 2);
}

#[test]
fn sign_document_never_repeats_a_key_id() {
    let k = &keys()[0];
    let bytes = sign_document(&doc(), &[k, k, &keys()[1], k]).unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["signatures"].as_array().unwrap().len(), 2);
    let (m, ids) = keymap(&[k, &keys()[1]]);
    assert_eq!(parse(&bytes).verify("targets", &ids, 2, &m).unwrap(), 2);
}

/// Scenario: Thresholds | one key listed under two key ids to meet a threshold of 2 | counts once; refused
#[test]
fn same_key_under_two_key_ids_counts_once() {
    let k = &keys()[0];
    let bytes = sign_document(&doc(), &[k]).unwrap();
    let mut v: Value = serde_json::from_slice(&bytes).unwrap();
    // Same key material, second id (as python-tuf and tough spell the same PEM differently).
    let alias = KeyId("aa".repeat(32));
    let mut sig2 = v["signatures"][0].clone();
    sig2["keyid"] = json!(alias.0);
    v["signatures"].as_array_mut().unwrap().push(sig2);
    let dup = serde_json::to_vec(&v).unwrap();
    let mut m = BTreeMap::new();
    m.insert(k.key_id().clone(), k.public().clone());
    let mut alias_key = k.public().clone();
    alias_key.keyval.public.push('\n');
    m.insert(alias.clone(), alias_key);
    let ids = vec![k.key_id().clone(), alias];
    let err = parse(&dup).verify("targets", &ids, 2, &m).unwrap_err();
    assert!(matches!(err, Error::Threshold { valid: 1, .. }), "{err}");
}

#[test]
fn repeated_key_id_in_role_counts_once() {
    let k = &keys()[0];
    let bytes = sign_document(&doc(), &[k]).unwrap();
    let (m, _) = keymap(&[k]);
    let ids = vec![k.key_id().clone(), k.key_id().clone()];
    assert!(parse(&bytes).verify("targets", &ids, 2, &m).is_err());
}

#[test]
fn signature_from_unlisted_key_is_ignored() {
    let (a, b) = (&keys()[0], &keys()[1]);
    let bytes = sign_document(&doc(), &[a, b]).unwrap();
    let (m, _) = keymap(&[a, b]);
    // Only `a` is authorized for this role.
    assert_eq!(
        parse(&bytes)
            .verify("targets", &[a.key_id().clone()], 1, &m)
            .unwrap(),
        1
    );
    assert!(parse(&bytes)
        .verify("targets", &[a.key_id().clone()], 2, &m)
        .is_err());
}

#[test]
fn garbage_signatures_and_keys_never_panic() {
    let k = &keys()[0];
    let (mut m, ids) = keymap(&[k]);
    for sig in ["", "zz", "00", &"ff".repeat(300), &"00".repeat(256)] {
        let bytes = serde_json::to_vec(&json!({
            "signed": doc(),
            "signatures": [{"keyid": ids[0].0, "sig": sig}]
        }))
        .unwrap();
        assert!(parse(&bytes).verify("targets", &ids, 1, &m).is_err());
    }
    m.get_mut(&ids[0]).unwrap().keyval.public = "not a pem".into();
    let bytes = sign_document(&doc(), &[k]).unwrap();
    assert!(parse(&bytes).verify("targets", &ids, 1, &m).is_err());
}

#[test]
fn malformed_documents_are_typed_errors() {
    let cases: &[&[u8]] = &[
        b"",
        b"{",
        b"[]",
        b"{\"signed\": 1, \"signatures\": []}",
        b"{\"signed\": {}, \"signatures\": {}}",
        b"{\"signed\": {\"x\": 1.5}, \"signatures\": []}",
        b"{\"signatures\": []}",
        b"\xff\xfe",
    ];
    for c in cases {
        assert!(
            Envelope::parse("test", c, 1 << 20).is_err(),
            "{:?}",
            String::from_utf8_lossy(c)
        );
    }
    let big = vec![b' '; 100];
    assert!(matches!(
        Envelope::parse("test", &big, 99),
        Err(Error::TooLarge {
            len: 100,
            limit: 99,
            ..
        })
    ));
    // Deep nesting is refused by the parser's depth limit, not by a stack overflow.
    let deep = format!(
        "{{\"signed\": {{\"a\": {}1{}}}, \"signatures\": []}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    assert!(Envelope::parse("test", deep.as_bytes(), 1 << 20).is_err());
}

#[test]
fn decode_checks_the_type() {
    let k = &keys()[0];
    let bytes = sign_document(&doc(), &[k]).unwrap();
    let e = parse(&bytes);
    assert!(matches!(
        e.decode::<Value>("x", "root"),
        Err(Error::WrongType { .. })
    ));
    assert!(e.decode::<Value>("x", "targets").is_ok());
}
