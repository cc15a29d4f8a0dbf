//! The ECU trust document: provisioning, rotation as a TUF root (supplier key rotation,
//! supplier replacement, compromise recovery), and refusal of stale, forked, forged and
//! malformed documents.

use ota_ecu::compact_manifest::{CompactManifest, Field, SignatureListError};
use ota_ecu::trust::{assemble, Error, KeySpec, Mode, Signed, TrustBody, TrustDocument};
use ota_metadata::documents::compact::{keyid_bytes, sign_compact};
use ota_metadata::documents::ImageManifest;
use ota_metadata::SigningKey;
use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

const HW: &str = "BRAKE-A";

/// 0, 1: OEM ecu-trust signers; 2, 3: suppliers (old, new); 4: regulator; 5: attacker.
fn keys() -> &'static [SigningKey] {
    static K: OnceLock<Vec<SigningKey>> = OnceLock::new();
    K.get_or_init(|| {
        (0..6)
            .map(|_| SigningKey::generate(2048).unwrap())
            .collect()
    })
}

struct Spec {
    keyid: [u8; 32],
    modulus: Vec<u8>,
}

fn spec(k: &SigningKey) -> Spec {
    Spec {
        keyid: keyid_bytes(k.key_id()).unwrap(),
        modulus: k.rsa_public().n().to_bytes_be(),
    }
}

fn specs<'a>(ks: &[&'a Spec]) -> Vec<KeySpec<'a>> {
    ks.iter()
        .map(|s| KeySpec {
            keyid: s.keyid,
            exponent: 65537,
            modulus: &s.modulus,
        })
        .collect()
}

/// A document of `version` trusting `suppliers`, signed by `signed_by`, naming `signers`.
fn doc(
    version: u32,
    hw: &str,
    mode: Mode,
    suppliers: &[&SigningKey],
    signers: &[&SigningKey],
    signed_by: &[&SigningKey],
) -> Vec<u8> {
    doc_floor(version, 0, hw, mode, suppliers, signers, signed_by)
}

/// [`doc`] with a release-counter floor.
fn doc_floor(
    version: u32,
    floor: u64,
    hw: &str,
    mode: Mode,
    suppliers: &[&SigningKey],
    signers: &[&SigningKey],
    signed_by: &[&SigningKey],
) -> Vec<u8> {
    doc_instructed(version, floor, hw, mode, suppliers, signers, signed_by, &[])
}

/// [`doc_floor`] naming the OEM's instruction keys (format 3).
#[allow(clippy::too_many_arguments)]
fn doc_instructed(
    version: u32,
    floor: u64,
    hw: &str,
    mode: Mode,
    suppliers: &[&SigningKey],
    signers: &[&SigningKey],
    signed_by: &[&SigningKey],
    instruction_keys: &[[u8; 32]],
) -> Vec<u8> {
    let regulator = &keys()[4];
    doc_regulated(
        version,
        floor,
        hw,
        mode,
        suppliers,
        (&[regulator], 1),
        signers,
        signed_by,
        instruction_keys,
    )
}

/// [`doc_instructed`] with the regulator keys and threshold given.
#[allow(clippy::too_many_arguments)]
fn doc_regulated(
    version: u32,
    floor: u64,
    hw: &str,
    mode: Mode,
    suppliers: &[&SigningKey],
    regulators: (&[&SigningKey], u8),
    signers: &[&SigningKey],
    signed_by: &[&SigningKey],
    instruction_keys: &[[u8; 32]],
) -> Vec<u8> {
    let sup: Vec<Spec> = suppliers.iter().map(|k| spec(k)).collect();
    let reg: Vec<Spec> = regulators.0.iter().map(|k| spec(k)).collect();
    let sig: Vec<Spec> = signers.iter().map(|k| spec(k)).collect();
    let (sup_r, reg_r, sig_r): (Vec<&Spec>, Vec<&Spec>, Vec<&Spec>) = (
        sup.iter().collect(),
        reg.iter().collect(),
        sig.iter().collect(),
    );
    let (sup_s, reg_s, sig_s) = (specs(&sup_r), specs(&reg_r), specs(&sig_r));
    let body = TrustBody {
        version,
        hardware_id: Field::new(hw).unwrap(),
        mode,
        min_release_counter: floor,
        suppliers: (&sup_s, 1),
        regulators: (&reg_s, regulators.1),
        signers: (&sig_s, 1),
        instruction_keys,
    }
    .encode();
    signed(&body, signed_by)
}

/// A trust document: `body` with the signatures of `signed_by`.
fn signed(body: &[u8], signed_by: &[&SigningKey]) -> Vec<u8> {
    let sigs: Vec<([u8; 32], Vec<u8>)> = signed_by
        .iter()
        .map(|k| (keyid_bytes(k.key_id()).unwrap(), k.sign(body).unwrap()))
        .collect();
    let refs: Vec<([u8; 32], &[u8])> = sigs.iter().map(|(i, s)| (*i, s.as_slice())).collect();
    assemble(body, &refs)
}

fn manifest(signer: &SigningKey) -> Vec<u8> {
    let img = b"firmware";
    let m = ImageManifest::new(
        "acme",
        "brake-fw",
        "1.0",
        1,
        vec![HW.into()],
        img.len() as u64,
        Sha256::digest(img).into(),
    )
    .unwrap();
    sign_compact(&m.compact_body().unwrap(), &[signer]).unwrap()
}

/// Whether the ECU holding `t` would accept a manifest signed by `signer`.
fn accepts(t: &TrustDocument, signer: &SigningKey) -> bool {
    CompactManifest::parse(&manifest(signer))
        .unwrap()
        .verify(&t.suppliers.keys, t.suppliers.threshold)
        .is_ok()
}

#[test]
fn supplier_key_rotation_reaches_the_ecu_and_the_old_key_is_refused() {
    let k = keys();
    let v1 = doc(1, HW, Mode::Partial, &[&k[2]], &[&k[0]], &[&k[0]]);
    let t1 = TrustDocument::provision(&v1, HW).unwrap();
    assert!(accepts(&t1, &k[2]));
    assert!(!accepts(&t1, &k[3]));
    let v2 = doc(2, HW, Mode::Partial, &[&k[3]], &[&k[0]], &[&k[0]]);
    let t2 = t1.accept(&v2).unwrap();
    assert_eq!(t2.version, 2);
    assert!(accepts(&t2, &k[3]), "the new supplier key signs");
    assert!(!accepts(&t2, &k[2]), "the stolen or retired key is refused");
    // Re-sending the held document is idempotent; the older one is a downgrade.
    assert_eq!(t2.accept(&v2).unwrap().version, 2);
    assert_eq!(
        t2.accept(&v1).err(),
        Some(Error::Downgrade {
            held: 2,
            offered: 1
        })
    );
}

#[test]
fn supplier_replacement_and_full_mode_travel_in_one_document() {
    let k = keys();
    let t1 = TrustDocument::provision(&doc(1, HW, Mode::Partial, &[&k[2]], &[&k[0]], &[&k[0]]), HW)
        .unwrap();
    // Another supplier (key 5 stands for the replacement's key) and full verification.
    let t2 = t1
        .accept(&doc(2, HW, Mode::Full, &[&k[5]], &[&k[0]], &[&k[0]]))
        .unwrap();
    assert_eq!(t2.mode, Mode::Full);
    assert_eq!(t2.regulators.keys.len(), 1);
    assert!(accepts(&t2, &k[5]) && !accepts(&t2, &k[2]));
}

#[test]
fn signer_key_rotation_needs_both_the_old_and_the_new_signers() {
    let k = keys();
    let t1 = TrustDocument::provision(&doc(1, HW, Mode::Partial, &[&k[2]], &[&k[0]], &[&k[0]]), HW)
        .unwrap();
    // Compromise recovery of the signer key itself: v2 names signer 1 instead of 0.
    let only_old = doc(2, HW, Mode::Partial, &[&k[3]], &[&k[1]], &[&k[0]]);
    assert_eq!(t1.accept(&only_old).err(), Some(Error::NotSelfSigned));
    let only_new = doc(2, HW, Mode::Partial, &[&k[3]], &[&k[1]], &[&k[1]]);
    assert_eq!(t1.accept(&only_new).err(), Some(Error::NotSignedByCurrent));
    let both = doc(2, HW, Mode::Partial, &[&k[3]], &[&k[1]], &[&k[0], &k[1]]);
    let t2 = t1.accept(&both).unwrap();
    // From now on the retired signer alone cannot issue version 3.
    let by_old = doc(3, HW, Mode::Partial, &[&k[2]], &[&k[0]], &[&k[0]]);
    assert_eq!(t2.accept(&by_old).err(), Some(Error::NotSignedByCurrent));
}

#[test]
fn forged_forked_and_foreign_documents_are_refused() {
    let k = keys();
    let t1 = TrustDocument::provision(&doc(1, HW, Mode::Partial, &[&k[2]], &[&k[0]], &[&k[0]]), HW)
        .unwrap();
    // The attacker's own document, signed by itself: not by the current signers.
    let forged = doc(2, HW, Mode::Partial, &[&k[5]], &[&k[5]], &[&k[5]]);
    assert_eq!(t1.accept(&forged).err(), Some(Error::NotSignedByCurrent));
    // A valid document with one bit flipped in the signed part.
    let mut flipped = doc(2, HW, Mode::Partial, &[&k[3]], &[&k[0]], &[&k[0]]);
    flipped[60] ^= 1;
    assert!(matches!(
        t1.accept(&flipped).err(),
        Some(Error::NotSignedByCurrent) | Some(Error::BadKey)
    ));
    // Same version, other content: a fork of the chain.
    let fork = doc(1, HW, Mode::Partial, &[&k[5]], &[&k[0]], &[&k[0]]);
    assert_eq!(
        t1.accept(&fork).err(),
        Some(Error::Downgrade {
            held: 1,
            offered: 1
        })
    );
    // For another ECU type.
    let other = doc(2, "WIPER-B", Mode::Partial, &[&k[3]], &[&k[0]], &[&k[0]]);
    assert_eq!(t1.accept(&other).err(), Some(Error::WrongHardwareId));
    assert_eq!(
        TrustDocument::provision(&other, HW).err(),
        Some(Error::WrongHardwareId)
    );
    // Provisioning refuses a document its own signers did not sign.
    let unsigned = doc(1, HW, Mode::Partial, &[&k[2]], &[&k[0]], &[&k[5]]);
    assert_eq!(
        TrustDocument::provision(&unsigned, HW).err(),
        Some(Error::NotSelfSigned)
    );
}

#[test]
fn no_panic_on_truncated_mutated_or_random_bytes() {
    let k = keys();
    let good = doc(2, HW, Mode::Full, &[&k[3]], &[&k[0]], &[&k[0]]);
    assert!(Signed::parse(&good).is_ok());
    for n in 0..good.len() {
        assert!(Signed::parse(&good[..n]).is_err(), "prefix of {n} bytes");
    }
    let mut long = good.clone();
    long.push(0);
    assert_eq!(
        Signed::parse(&long).err(),
        Some(Error::Signatures(SignatureListError::TrailingBytes))
    );
    // Every header byte set to every value: parse must return, never panic.
    for at in 0..ota_ecu::trust::HEADER_LEN {
        for v in [0u8, 1, 2, 4, 5, 0x7f, 0xff] {
            let mut m = good.clone();
            m[at] = v;
            let _ = Signed::parse(&m);
        }
    }
    // Pseudo-random garbage, with and without a valid magic and format.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for round in 0..2000 {
        let len = (round * 7) % 900;
        let mut b: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        if round % 2 == 0 && b.len() > 52 {
            b[..5].copy_from_slice(b"OTAT\x01");
            b[5] &= 1;
            b[6..8].fill(0);
            b[44..50].iter_mut().for_each(|c| *c &= 3);
        }
        let _ = Signed::parse(&b);
    }
}

// ---------------------------------------------------------------------------------------------
// In the bootloader, over the UDS server: stored power-loss safely, used for the next manifest.
// ---------------------------------------------------------------------------------------------

use ota_ecu::bootloader::{Bootloader, Identity, Refusal};
use ota_ecu::flash::mem::MemFlash;
use ota_ecu::uds::{Nrc, Server, NEGATIVE};

/// The ECU's bootloader on `flash`, with no factory supplier keys (trust documents only).
fn bootloader(flash: MemFlash) -> Bootloader<'static, MemFlash> {
    Bootloader::new(
        flash,
        Identity {
            hardware_id: Field::new(HW).unwrap(),
            keys: &[],
            threshold: 1,
        },
    )
    .unwrap()
}

fn server(flash: MemFlash) -> Server<'static, MemFlash> {
    Server::new(bootloader(flash), Field::new("SN").unwrap())
}

fn send_trust(s: &mut Server<'_, MemFlash>, doc: &[u8]) -> Result<u32, Nrc> {
    let mut req = vec![0x31, 0x01, 0x02, 0x03];
    req.extend_from_slice(doc);
    let r = s.handle(&req);
    if r[0] == NEGATIVE {
        return Err(Nrc::from_u8(r[2]).unwrap());
    }
    assert_eq!(&r[..4], &[0x71, 0x01, 0x02, 0x03]);
    Ok(u32::from_be_bytes(r[4..8].try_into().unwrap()))
}

fn read_trust(s: &mut Server<'_, MemFlash>) -> (u32, u8) {
    let r = s.handle(&[0x22, 0xF1, 0xA2]);
    assert_eq!(&r[..3], &[0x62, 0xF1, 0xA2]);
    (u32::from_be_bytes(r[3..7].try_into().unwrap()), r[7])
}

fn download(s: &mut Server<'_, MemFlash>, signer: &SigningKey) -> Result<(), Nrc> {
    let mut req = vec![0x34, 0, 0];
    req.extend_from_slice(&manifest(signer));
    let r = s.handle(&req);
    if r[0] == NEGATIVE {
        return Err(Nrc::from_u8(r[2]).unwrap());
    }
    Ok(())
}

#[test]
fn over_uds_rotation_is_stored_survives_a_restart_and_drives_the_manifest_check() {
    let k = keys();
    let mut s = server(MemFlash::new(1 << 16));
    assert_eq!(read_trust(&mut s), (0, 0));
    // No anchor: nothing is accepted from the bus.
    let v1 = doc(1, HW, Mode::Partial, &[&k[2]], &[&k[0]], &[&k[0]]);
    assert_eq!(send_trust(&mut s, &v1), Err(Nrc::NoTrustAnchor));
    // Provisioning (the factory) installs version 1.
    assert_eq!(s.bootloader.provision_trust(&v1), Ok(1));
    assert_eq!(read_trust(&mut s), (1, 0));
    assert_eq!(download(&mut s, &k[2]), Ok(()));
    assert_eq!(download(&mut s, &k[3]), Err(Nrc::BadSignature));

    // The supplier rotates from key 2 to key 3 (say key 2 was stolen).
    let v2 = doc(2, HW, Mode::Partial, &[&k[3]], &[&k[0]], &[&k[0]]);
    assert_eq!(send_trust(&mut s, &v2), Ok(2));
    assert_eq!(send_trust(&mut s, &v2), Ok(2), "idempotent");
    assert_eq!(read_trust(&mut s), (2, 0));
    assert_eq!(download(&mut s, &k[3]), Ok(()));
    assert_eq!(download(&mut s, &k[2]), Err(Nrc::BadSignature));

    // Stale, forged, forked, foreign: typed refusals, nothing changes.
    assert_eq!(send_trust(&mut s, &v1), Err(Nrc::TrustDowngrade));
    let forged = doc(3, HW, Mode::Partial, &[&k[5]], &[&k[5]], &[&k[5]]);
    assert_eq!(send_trust(&mut s, &forged), Err(Nrc::TrustSignature));
    let fork = doc(2, HW, Mode::Partial, &[&k[2]], &[&k[0]], &[&k[0]]);
    assert_eq!(send_trust(&mut s, &fork), Err(Nrc::TrustDowngrade));
    let other = doc(3, "WIPER-B", Mode::Partial, &[&k[2]], &[&k[0]], &[&k[0]]);
    assert_eq!(send_trust(&mut s, &other), Err(Nrc::WrongHardwareId));
    assert_eq!(send_trust(&mut s, b"OTAT"), Err(Nrc::TrustMalformed));
    assert_eq!(read_trust(&mut s), (2, 0));

    // A restart reads version 2 back from flash; the factory file (version 1) cannot undo it.
    let mut s = server(s.bootloader.into_flash());
    assert_eq!(read_trust(&mut s), (2, 0));
    assert_eq!(
        s.bootloader.provision_trust(&v1),
        Err(Refusal::TrustDowngrade)
    );
    assert_eq!(download(&mut s, &k[2]), Err(Nrc::BadSignature));
    assert_eq!(download(&mut s, &k[3]), Ok(()));
}

#[test]
fn a_power_cut_while_storing_a_trust_document_leaves_the_old_or_the_new_one() {
    let k = keys();
    let v1 = doc(1, HW, Mode::Partial, &[&k[2]], &[&k[0]], &[&k[0]]);
    let v2 = doc(2, HW, Mode::Partial, &[&k[3]], &[&k[0]], &[&k[0]]);
    for cut in 0..4 {
        let mut s = server(MemFlash::new(1 << 16));
        s.bootloader.provision_trust(&v1).unwrap();
        let mut f = s.bootloader.into_flash();
        f.writes_left = Some(cut);
        let mut s = server(f);
        let done = send_trust(&mut s, &v2).is_ok();
        let mut f = s.bootloader.into_flash();
        f.power_on();
        let mut s = server(f);
        let (v, _) = read_trust(&mut s);
        assert_eq!(v, if done { 2 } else { 1 }, "cut after {cut} writes");
        assert!(!s.bootloader.state_lost());
        // Whichever survived, the chain goes on.
        assert_eq!(send_trust(&mut s, &v2), Ok(2));
    }
}

#[test]
fn an_altered_stored_trust_document_is_lost_trust_not_the_factory_keys() {
    let k = keys();
    let mut s = server(MemFlash::new(1 << 16));
    s.bootloader
        .provision_trust(&doc(1, HW, Mode::Partial, &[&k[2]], &[&k[0]], &[&k[0]]))
        .unwrap();
    let mut f = s.bootloader.into_flash();
    let last = f.trust[0].len() - 1;
    f.trust[0][last] ^= 1;
    let mut s = server(f);
    assert!(s.bootloader.state_lost());
    assert_eq!(download(&mut s, &k[2]), Err(Nrc::StateLost));
}

// ---------------------------------------------------------------------------------------------
// Part 2: the regulators' veto. Full mode needs the compact attestation bundle.
// ---------------------------------------------------------------------------------------------

fn bundle(signers: &[&SigningKey]) -> Vec<u8> {
    bundle_over(&manifest(&keys()[3]), signers)
}

/// An approval by `signers` of the release `compact` describes.
fn bundle_over(compact: &[u8], signers: &[&SigningKey]) -> Vec<u8> {
    let m = CompactManifest::parse(compact).unwrap();
    let msg = ota_ecu::attestation::message(&m.body_bytes);
    let sigs: Vec<([u8; 32], Vec<u8>)> = signers
        .iter()
        .map(|k| (keyid_bytes(k.key_id()).unwrap(), k.sign(&msg).unwrap()))
        .collect();
    let refs: Vec<([u8; 32], &[u8])> = sigs.iter().map(|(i, s)| (*i, s.as_slice())).collect();
    ota_ecu::attestation::assemble(&refs)
}

fn download_attested(
    s: &mut Server<'_, MemFlash>,
    signer: &SigningKey,
    bundle: &[u8],
) -> Result<(), Nrc> {
    let m = manifest(signer);
    let mut req = vec![0x34, 0, 1];
    req.extend_from_slice(&(m.len() as u16).to_be_bytes());
    req.extend_from_slice(&m);
    req.extend_from_slice(bundle);
    let r = s.handle(&req);
    if r[0] == NEGATIVE {
        return Err(Nrc::from_u8(r[2]).unwrap());
    }
    Ok(())
}

#[test]
fn full_mode_requires_the_regulators_approval_and_partial_mode_does_not() {
    let k = keys();
    // Partial: the supplier's signature is enough, a bundle is ignored.
    let mut s = server(MemFlash::new(1 << 16));
    s.bootloader
        .provision_trust(&doc(1, HW, Mode::Partial, &[&k[3]], &[&k[0]], &[&k[0]]))
        .unwrap();
    assert_eq!(download(&mut s, &k[3]), Ok(()));
    assert_eq!(download_attested(&mut s, &k[3], &bundle(&[&k[5]])), Ok(()));

    // Full (regulator key 4, threshold 1): no bundle, a bundle by another key, a bundle over
    // another manifest, garbage: all refused before any data; the regulator's own is accepted.
    let mut s = server(MemFlash::new(1 << 16));
    s.bootloader
        .provision_trust(&doc(1, HW, Mode::Full, &[&k[3]], &[&k[0]], &[&k[0]]))
        .unwrap();
    assert_eq!(download(&mut s, &k[3]), Err(Nrc::NotApproved));
    assert_eq!(
        download_attested(&mut s, &k[3], &bundle(&[&k[5]])),
        Err(Nrc::NotApproved)
    );
    // The regulator's genuine approval of another release (another version, counter, hash).
    let other_release = {
        let img = b"other firmware";
        let m = ImageManifest::new(
            "acme",
            "brake-fw",
            "1.1",
            2,
            vec![HW.into()],
            img.len() as u64,
            Sha256::digest(img).into(),
        )
        .unwrap();
        sign_compact(&m.compact_body().unwrap(), &[&k[3]]).unwrap()
    };
    assert_eq!(
        download_attested(&mut s, &k[3], &bundle_over(&other_release, &[&k[4]])),
        Err(Nrc::NotApproved)
    );
    let mut damaged = bundle(&[&k[4]]);
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    assert_eq!(
        download_attested(&mut s, &k[3], &damaged),
        Err(Nrc::NotApproved)
    );
    assert_eq!(
        download_attested(&mut s, &k[3], &[0xFF; 9]),
        Err(Nrc::NotApproved)
    );
    assert_eq!(download_attested(&mut s, &k[3], &bundle(&[&k[4]])), Ok(()));
    // The supplier's signature is still checked first.
    assert_eq!(
        download_attested(&mut s, &k[2], &bundle(&[&k[4]])),
        Err(Nrc::BadSignature)
    );
}

/// Scenario: Regulators | a compromised gateway presents one regulator's approval twice (the same signature repeated, or the key listed twice in the document) to meet a threshold of two | refused: a regulator key counts once, by its key material, however often it signs or is listed
#[test]
fn one_regulator_key_counts_once_toward_the_approval_threshold() {
    let k = keys();
    let two = |regs: &[&SigningKey]| {
        doc_regulated(
            1,
            0,
            HW,
            Mode::Full,
            &[&k[3]],
            (regs, 2),
            &[&k[0]],
            &[&k[0]],
            &[],
        )
    };
    // Two regulators (4 and 5), threshold 2.
    let mut s = server(MemFlash::new(1 << 16));
    s.bootloader.provision_trust(&two(&[&k[4], &k[5]])).unwrap();
    assert_eq!(
        download_attested(&mut s, &k[3], &bundle(&[&k[4]])),
        Err(Nrc::NotApproved)
    );
    assert_eq!(
        download_attested(&mut s, &k[3], &bundle(&[&k[4], &k[4]])),
        Err(Nrc::NotApproved),
        "the same signature twice"
    );
    assert_eq!(
        download_attested(&mut s, &k[3], &bundle(&[&k[4], &k[5]])),
        Ok(())
    );
    // The same key listed twice in the document: refused when provisioned, or it counts once.
    let mut s = server(MemFlash::new(1 << 16));
    if s.bootloader.provision_trust(&two(&[&k[4], &k[4]])).is_ok() {
        assert_eq!(
            download_attested(&mut s, &k[3], &bundle(&[&k[4]])),
            Err(Nrc::NotApproved)
        );
        assert_eq!(
            download_attested(&mut s, &k[3], &bundle(&[&k[4], &k[4]])),
            Err(Nrc::NotApproved)
        );
    }
}

/// Scenario: Regulators | a compromised gateway replays a regulator approval the regulator later revoked | refused once the OEM's raised release-counter floor reached the ECU, also for an image already pending
#[test]
fn a_raised_floor_refuses_a_revoked_release_whatever_approval_is_replayed() {
    let k = keys();
    let mut s = server(MemFlash::new(1 << 16));
    // Full mode; release counter 1 approved by the regulator (the bundle a gateway keeps).
    s.bootloader
        .provision_trust(&doc(1, HW, Mode::Full, &[&k[3]], &[&k[0]], &[&k[0]]))
        .unwrap();
    let approval = bundle(&[&k[4]]);
    let m = manifest(&k[3]);
    let bl = &mut s.bootloader;
    bl.request_download_attested(&m, Some(&approval)).unwrap();
    bl.transfer_data(1, b"firmware").unwrap();
    let pending = bl.transfer_exit().unwrap();
    assert_eq!(pending.release_counter, 1);

    // The regulator revokes release 1; the OEM raises the floor to 2 in version 2.
    let v2 = doc_floor(2, 2, HW, Mode::Full, &[&k[3]], &[&k[0]], &[&k[0]]);
    assert_eq!(Signed::parse(&v2).unwrap().doc.min_release_counter, 2);
    assert_eq!(bl.update_trust(&v2), Ok(2));
    // The pending image is not activated, and the kept approval no longer opens a download.
    assert_eq!(bl.activate(&pending.sha256), Err(Refusal::Rollback));
    assert_eq!(bl.state().image, None);
    assert_eq!(
        bl.request_download_attested(&m, Some(&approval)),
        Err(Refusal::Rollback)
    );
    // The floor survives a restart (it is part of the stored document).
    let mut bl = bootloader(s.bootloader.into_flash());
    assert_eq!(bl.trust().unwrap().min_release_counter, 2);
    assert_eq!(
        bl.request_download_attested(&m, Some(&approval)),
        Err(Refusal::Rollback)
    );
    // Another version-2 document with another floor is a fork, not a re-send.
    let fork = doc_floor(2, 0, HW, Mode::Full, &[&k[3]], &[&k[0]], &[&k[0]]);
    assert_eq!(bl.update_trust(&fork), Err(Refusal::TrustDowngrade));
}

#[test]
fn bundle_parser_never_panics() {
    let good = bundle(&[&keys()[4]]);
    assert!(ota_ecu::attestation::parse(&good).is_ok());
    for n in 0..good.len() {
        assert!(ota_ecu::attestation::parse(&good[..n]).is_err());
    }
    let mut x: u64 = 0x1234_5678_9abc_def1;
    for round in 0..5000 {
        let b: Vec<u8> = (0..(round % 700))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let _ = ota_ecu::attestation::parse(&b);
    }
}

/// A version-1 document trusting the supplier keys `suppliers` as given (key id and modulus
/// chosen freely), regulator 4, signed by and naming signer 0.
fn doc_with_supplier_specs(suppliers: &[KeySpec<'_>]) -> Vec<u8> {
    let k = keys();
    let reg = spec(&k[4]);
    doc_with_sets(Mode::Partial, (suppliers, 1), (&specs(&[&reg]), 1), 1)
}

/// A version-1 document with the key sets and thresholds given (signers: key 0, at
/// `signer_threshold`), signed by key 0.
fn doc_with_sets(
    mode: Mode,
    suppliers: (&[KeySpec<'_>], u8),
    regulators: (&[KeySpec<'_>], u8),
    signer_threshold: u8,
) -> Vec<u8> {
    let k = keys();
    let sig = spec(&k[0]);
    let body = TrustBody {
        version: 1,
        hardware_id: Field::new(HW).unwrap(),
        mode,
        min_release_counter: 0,
        suppliers,
        regulators,
        signers: (&specs(&[&sig]), signer_threshold),
        instruction_keys: &[],
    }
    .encode();
    signed(&body, &[&k[0]])
}

/// Every key set's threshold is at least one and at most its keys, with at most MAX_KEYS
/// keys; only a partial-mode ECU's regulators may be none at all (threshold 0 of 0 keys).
/// A document breaking this is refused whole, naming the set (0 suppliers, 1 regulators,
/// 2 signers): a threshold of zero would let an unsigned image or document through, one
/// above the keys would lock the ECU (mutation testing found these checks held by no test).
#[test]
fn every_key_set_needs_a_threshold_its_keys_can_meet() {
    let k = keys();
    let (s2, s3, s4, s5, s1) = (
        spec(&k[2]),
        spec(&k[3]),
        spec(&k[4]),
        spec(&k[5]),
        spec(&k[1]),
    );
    let one = specs(&[&s3]);
    let reg = specs(&[&s4]);
    let five = specs(&[&s1, &s2, &s3, &s4, &s5]);
    let four = &five[..4];
    let refused = |doc: Vec<u8>| TrustDocument::provision(&doc, HW).err();
    let cases: [(&str, Vec<u8>, Option<Error>); 10] = [
        (
            "suppliers 1 of 1",
            doc_with_sets(Mode::Partial, (&one, 1), (&reg, 1), 1),
            None,
        ),
        (
            "suppliers 4 of 4",
            doc_with_sets(Mode::Partial, (four, 4), (&reg, 1), 1),
            None,
        ),
        (
            "suppliers 0 of 1",
            doc_with_sets(Mode::Partial, (&one, 0), (&reg, 1), 1),
            Some(Error::BadKeySet(0)),
        ),
        (
            "suppliers 2 of 1",
            doc_with_sets(Mode::Partial, (&one, 2), (&reg, 1), 1),
            Some(Error::BadKeySet(0)),
        ),
        (
            "suppliers 1 of 5",
            doc_with_sets(Mode::Partial, (&five, 1), (&reg, 1), 1),
            Some(Error::BadKeySet(0)),
        ),
        (
            "no regulators, partial",
            doc_with_sets(Mode::Partial, (&one, 1), (&[], 0), 1),
            None,
        ),
        (
            "no regulators, full",
            doc_with_sets(Mode::Full, (&one, 1), (&[], 0), 1),
            Some(Error::BadKeySet(1)),
        ),
        (
            "regulators 0 of 1, partial",
            doc_with_sets(Mode::Partial, (&one, 1), (&reg, 0), 1),
            Some(Error::BadKeySet(1)),
        ),
        (
            "regulators 2 of 1",
            doc_with_sets(Mode::Full, (&one, 1), (&reg, 2), 1),
            Some(Error::BadKeySet(1)),
        ),
        (
            "signers 0 of 1",
            doc_with_sets(Mode::Partial, (&one, 1), (&reg, 1), 0),
            Some(Error::BadKeySet(2)),
        ),
    ];
    for (what, doc, expected) in cases {
        assert_eq!(refused(doc), expected, "{what}");
    }
}

/// Another document under the held version is a fork, refused, even when it differs only in
/// one key's material under the same key id, or one key id over the same material (mutation
/// testing found the key-by-key comparison held by no test).
#[test]
fn a_document_under_the_held_version_differing_in_one_key_is_a_fork() {
    let k = keys();
    let (k3, k2) = (spec(&k[3]), spec(&k[2]));
    let held = doc_with_supplier_specs(&specs(&[&k3]));
    let trusted = TrustDocument::provision(&held, HW).unwrap();
    assert!(
        trusted.accept(&held).is_ok(),
        "the held document sent again"
    );
    let other_material = KeySpec {
        keyid: k3.keyid,
        exponent: 65537,
        modulus: &k2.modulus,
    };
    let other_id = KeySpec {
        keyid: k2.keyid,
        exponent: 65537,
        modulus: &k3.modulus,
    };
    for fork in [other_material, other_id] {
        assert_eq!(
            trusted.accept(&doc_with_supplier_specs(&[fork])).err(),
            Some(Error::Downgrade {
                held: 1,
                offered: 1
            })
        );
    }
}

/// A modulus is at most MAX_MODULUS bytes as sent, leading zeros included: the bound is on
/// what the ECU reads, not on the number it makes (mutation testing found it untested, since
/// the RSA crate refuses most oversized keys by itself).
#[test]
fn a_modulus_over_its_byte_bound_is_refused_even_padded_with_zeros() {
    use ota_ecu::trust::MAX_MODULUS;
    let k3 = spec(&keys()[3]);
    let mut padded = vec![0u8; MAX_MODULUS + 1 - k3.modulus.len()];
    padded.extend_from_slice(&k3.modulus);
    let at_bound = &padded[1..];
    assert_eq!(at_bound.len(), MAX_MODULUS);
    let key = |modulus| KeySpec {
        keyid: k3.keyid,
        exponent: 65537,
        modulus,
    };
    assert!(TrustDocument::provision(&doc_with_supplier_specs(&[key(at_bound)]), HW).is_ok());
    assert_eq!(
        TrustDocument::provision(&doc_with_supplier_specs(&[key(&padded)]), HW).err(),
        Some(Error::BadKey)
    );
}

/// A signature list declares 1 to MAX_SIGNATURES entries: zero or more is refused by its
/// count before anything else is read (mutation testing found the zero case untested).
#[test]
fn a_signature_list_of_zero_or_too_many_entries_is_refused_by_its_count() {
    use ota_ecu::compact_manifest::{parse_signatures, MAX_SIGNATURES};
    assert_eq!(parse_signatures(&[0]), Err(SignatureListError::BadCount(0)));
    let too_many = MAX_SIGNATURES as u8 + 1;
    assert_eq!(
        parse_signatures(&[too_many]),
        Err(SignatureListError::BadCount(too_many))
    );
    assert_eq!(parse_signatures(&[]), Err(SignatureListError::Truncated));
    assert_eq!(parse_signatures(&[1]), Err(SignatureListError::Truncated));
    // An entry is its key id and length (34 bytes), then the signature: an empty signature
    // is well-formed (and verifies nothing); a declared length over MAX_SIG_LEN is refused
    // by that length, before the bytes are looked for.
    let mut empty = vec![1];
    empty.extend_from_slice(&[7; 32]);
    empty.extend_from_slice(&[0, 0]);
    let parsed = parse_signatures(&empty).unwrap();
    assert_eq!((parsed[0].keyid, parsed[0].sig.len()), ([7; 32], 0));
    let mut long = vec![1];
    long.extend_from_slice(&[7; 32]);
    let over = u16::try_from(ota_ecu::compact_manifest::MAX_SIG_LEN + 1).unwrap();
    long.extend_from_slice(&over.to_be_bytes());
    assert_eq!(
        parse_signatures(&long),
        Err(SignatureListError::TooLong(over))
    );
}

/// The bundle's size bound is exact (the largest well-formed bundle parses, one byte more is
/// refused before its signatures are read), and a short approval says how many distinct keys
/// approved of how many required (mutation testing found neither held by a test).
#[test]
fn the_largest_bundle_parses_and_a_short_approval_counts_its_distinct_keys() {
    use ota_ecu::attestation::{self, Error, MAX_LEN};
    use ota_ecu::compact_manifest::{MAX_SIGNATURES, MAX_SIG_LEN};
    let sig = [0x5a; MAX_SIG_LEN];
    let entries: Vec<([u8; 32], &[u8])> = (0..MAX_SIGNATURES as u8)
        .map(|i| ([i; 32], &sig[..]))
        .collect();
    let largest = attestation::assemble(&entries);
    assert_eq!(largest.len(), MAX_LEN);
    assert_eq!(
        attestation::parse(&largest).map(|s| s.len()),
        Ok(MAX_SIGNATURES)
    );
    let mut longer = largest.clone();
    longer.push(0);
    assert_eq!(attestation::parse(&longer), Err(Error::TrailingBytes));

    // Regulators 4 and 5, threshold 2: one approval (even twice) is 1 of 2.
    let k = keys();
    let doc = doc_regulated(
        1,
        0,
        HW,
        Mode::Full,
        &[&k[3]],
        (&[&k[4], &k[5]], 2),
        &[&k[0]],
        &[&k[0]],
        &[],
    );
    let trusted = TrustDocument::provision(&doc, HW).unwrap();
    let body = CompactManifest::parse(&manifest(&k[3])).unwrap().body_bytes;
    for signers in [&[&k[4]][..], &[&k[4], &k[4]][..]] {
        assert_eq!(
            attestation::verify(&bundle(signers), &body, &trusted.regulators),
            Err(Error::Threshold {
                valid: 1,
                threshold: 2
            })
        );
    }
    assert_eq!(
        attestation::verify(&bundle(&[&k[4], &k[5]]), &body, &trusted.regulators),
        Ok(())
    );
}

// ---- The OEM's per-ECU instruction (issue 23) ------------------------------------------------

fn instruction_key(b: u8) -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[b; 32])
}

/// The OEM's instruction for `serial` to install the manifest `signer` signed (see
/// [`manifest`]: release counter 1), at `sequence`, signed by `key`.
fn instruction(
    key: &ed25519_dalek::SigningKey,
    serial: &str,
    signer: &SigningKey,
    sequence: u32,
) -> Vec<u8> {
    instruction_for(key, serial, signer, 1, sequence)
}

/// [`instruction`] naming release counter `counter`.
fn instruction_for(
    key: &ed25519_dalek::SigningKey,
    serial: &str,
    signer: &SigningKey,
    counter: u64,
    sequence: u32,
) -> Vec<u8> {
    use ed25519_dalek::Signer;
    let m = CompactManifest::parse(&manifest(signer)).unwrap();
    let i = ota_ecu::instruction::Instruction::new(serial, &m.body_bytes, counter, sequence);
    i.assemble(&key.sign(&i.body()).to_bytes()).to_vec()
}

fn send_instruction(s: &mut Server<'_, MemFlash>, bytes: &[u8]) -> Result<(), Nrc> {
    let mut req = vec![0x31, 0x01, 0x02, 0x04];
    req.extend_from_slice(bytes);
    let r = s.handle(&req);
    if r[0] == NEGATIVE {
        return Err(Nrc::from_u8(r[2]).unwrap());
    }
    assert_eq!(&r[..4], &[0x71, 0x01, 0x02, 0x04]);
    Ok(())
}

/// An instruction at the sequence already recorded is held again without writing the state:
/// a gateway re-sending it (every retry of a download does) costs the ECU no flash write and
/// no window for a power cut (mutation testing found the write-only-when-higher rule untested).
#[test]
fn an_instruction_sent_again_is_held_without_writing_the_state() {
    let k = keys();
    let oem = instruction_key(7);
    let keys = [oem.verifying_key().to_bytes()];
    let v1 = doc_instructed(1, 0, HW, Mode::Partial, &[&k[2]], &[&k[0]], &[&k[0]], &keys);
    let mut s = server(MemFlash::new(1 << 16));
    s.bootloader.provision_trust(&v1).unwrap();
    let before = s.bootloader.state().sequence;
    send_instruction(&mut s, &instruction(&oem, "SN", &k[2], 5)).unwrap();
    let recorded = s.bootloader.state().sequence;
    assert!(recorded > before, "a higher sequence is recorded at once");
    assert_eq!(s.bootloader.state().instruction_sequence, 5);
    for _ in 0..3 {
        send_instruction(&mut s, &instruction(&oem, "SN", &k[2], 5)).unwrap();
        assert_eq!(
            s.bootloader.state().sequence,
            recorded,
            "no write for the same sequence"
        );
    }
    assert_eq!(download(&mut s, &k[2]), Ok(()));
    assert_eq!(s.bootloader.state().instruction_sequence, 5);
}

/// Scenario: Uptane ECU serial | a compromised gateway sends a partial-mode ECU an image its supplier signed but the OEM assigned to another ECU, or one whose assignment was since replaced | refused by the ECU itself (its OEM instruction names another serial, or a lower sequence)
#[test]
fn a_partial_ecu_installs_only_what_the_oem_instructed_it_to() {
    let k = keys();
    let oem = instruction_key(7);
    let keys = [oem.verifying_key().to_bytes()];
    let v1 = doc_instructed(1, 0, HW, Mode::Partial, &[&k[2]], &[&k[0]], &[&k[0]], &keys);
    let mut s = server(MemFlash::new(1 << 16));
    s.bootloader.provision_trust(&v1).unwrap();

    // No instruction: refused, though the supplier signed the image.
    assert_eq!(download(&mut s, &k[2]), Err(Nrc::InstructionMissing));
    // The instruction for another ECU of the same hardware id: refused when given.
    assert_eq!(
        send_instruction(&mut s, &instruction(&oem, "SN-OTHER", &k[2], 5)),
        Err(Nrc::InstructionRejected)
    );
    assert_eq!(download(&mut s, &k[2]), Err(Nrc::InstructionMissing));
    // Signed by another key (the gateway's own, say): refused.
    assert_eq!(
        send_instruction(&mut s, &instruction(&instruction_key(8), "SN", &k[2], 5)),
        Err(Nrc::InstructionRejected)
    );
    // For this ECU but another release (another counter): refused at the download.
    send_instruction(&mut s, &instruction_for(&oem, "SN", &k[2], 2, 5)).unwrap();
    assert_eq!(download(&mut s, &k[2]), Err(Nrc::InstructionRejected));
    // Its own instruction: accepted, and used up by the download.
    send_instruction(&mut s, &instruction(&oem, "SN", &k[2], 5)).unwrap();
    assert_eq!(download(&mut s, &k[2]), Ok(()));
    assert_eq!(download(&mut s, &k[2]), Err(Nrc::InstructionMissing));

    // The OEM replaced that assignment (sequence 6) and the ECU saw it: the earlier
    // instruction (sequence 5) is refused from then on, also after a restart.
    send_instruction(&mut s, &instruction(&oem, "SN", &k[2], 6)).unwrap();
    assert_eq!(download(&mut s, &k[2]), Ok(()));
    let mut s = server(s.bootloader.into_flash());
    assert_eq!(
        send_instruction(&mut s, &instruction(&oem, "SN", &k[2], 5)),
        Err(Nrc::InstructionRejected)
    );
    send_instruction(&mut s, &instruction(&oem, "SN", &k[2], 6)).unwrap();
    assert_eq!(
        download(&mut s, &k[2]),
        Ok(()),
        "the same instruction again"
    );
}

/// Scenario: Uptane ECU serial | an ECU provisioned before instructions (a format-2 trust document) | legacy mode: installs without one, ignores one sent
#[test]
fn a_legacy_trust_document_needs_no_instruction() {
    let k = keys();
    let v1 = doc(1, HW, Mode::Partial, &[&k[2]], &[&k[0]], &[&k[0]]);
    let mut s = server(MemFlash::new(1 << 16));
    s.bootloader.provision_trust(&v1).unwrap();
    assert_eq!(download(&mut s, &k[2]), Ok(()));
    send_instruction(
        &mut s,
        &instruction(&instruction_key(7), "SN-OTHER", &k[2], 1),
    )
    .unwrap();
    assert_eq!(download(&mut s, &k[2]), Ok(()));
    // A document naming a key that is not a curve point is refused, not installed.
    let not_a_point = (0..=255u8)
        .map(|b| [b; 32])
        .find(|k| ed25519_dalek::VerifyingKey::from_bytes(k).is_err())
        .unwrap();
    let bad = doc_instructed(
        2,
        0,
        HW,
        Mode::Partial,
        &[&k[2]],
        &[&k[0]],
        &[&k[0]],
        &[not_a_point],
    );
    assert_eq!(send_trust(&mut s, &bad), Err(Nrc::TrustMalformed));
    // The rotation to instruction keys: from then on an instruction is needed.
    let oem = instruction_key(7);
    let v2 = doc_instructed(
        2,
        0,
        HW,
        Mode::Partial,
        &[&k[2]],
        &[&k[0]],
        &[&k[0]],
        &[oem.verifying_key().to_bytes()],
    );
    assert_eq!(send_trust(&mut s, &v2), Ok(2));
    assert_eq!(download(&mut s, &k[2]), Err(Nrc::InstructionMissing));
}

/// Scenario: Uptane ECU serial | a compromised gateway shows the ECU the OEM's newer instruction, withholds its image, then offers the replaced assignment's older instruction | refused: a newer instruction seen is a floor at once (found by the attack pass)
#[test]
fn a_newer_instruction_seen_is_a_floor_even_without_its_download() {
    let k = keys();
    let oem = instruction_key(7);
    let keys = [oem.verifying_key().to_bytes()];
    let v1 = doc_instructed(1, 0, HW, Mode::Partial, &[&k[2]], &[&k[0]], &[&k[0]], &keys);
    let mut s = server(MemFlash::new(1 << 16));
    s.bootloader.provision_trust(&v1).unwrap();
    send_instruction(&mut s, &instruction(&oem, "SN", &k[2], 6)).unwrap();
    // A power cut, even: the floor was stored.
    let mut s = server(s.bootloader.into_flash());
    assert_eq!(
        send_instruction(&mut s, &instruction(&oem, "SN", &k[2], 5)),
        Err(Nrc::InstructionRejected)
    );
    assert_eq!(download(&mut s, &k[2]), Err(Nrc::InstructionMissing));
    // The newer one still goes through (the honest gateway's, later).
    send_instruction(&mut s, &instruction(&oem, "SN", &k[2], 6)).unwrap();
    assert_eq!(download(&mut s, &k[2]), Ok(()));
}

/// Scenario: Uptane ECU serial | a compromised gateway sends a full-verification ECU an image with a valid regulator approval but another ECU's instruction, or none | refused: instructions bind full ECUs as partial ones
#[test]
fn a_full_ecu_also_requires_its_own_instruction() {
    let k = keys();
    let oem = instruction_key(7);
    let keys = [oem.verifying_key().to_bytes()];
    let v1 = doc_instructed(1, 0, HW, Mode::Full, &[&k[3]], &[&k[0]], &[&k[0]], &keys);
    let mut s = server(MemFlash::new(1 << 16));
    s.bootloader.provision_trust(&v1).unwrap();
    let approved = bundle(&[&k[4]]);
    assert_eq!(
        download_attested(&mut s, &k[3], &approved),
        Err(Nrc::InstructionMissing)
    );
    assert_eq!(
        send_instruction(&mut s, &instruction(&oem, "SN-OTHER", &k[3], 1)),
        Err(Nrc::InstructionRejected)
    );
    send_instruction(&mut s, &instruction(&oem, "SN", &k[3], 1)).unwrap();
    // Its own instruction does not stand in for the approval.
    assert_eq!(download_attested(&mut s, &k[3], &[]), Err(Nrc::NotApproved));
    send_instruction(&mut s, &instruction(&oem, "SN", &k[3], 1)).unwrap();
    assert_eq!(download_attested(&mut s, &k[3], &approved), Ok(()));
}
