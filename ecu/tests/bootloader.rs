//! The bootloader state machine with manifests signed by the publishers' own code.

use ota_ecu::bootloader::{Boot, Bootloader, Identity, Refusal, ResetCause, MAX_TRIAL_BOOTS};
use ota_ecu::compact_manifest::{Field, ProvisionedKey};
use ota_ecu::delta::{make, Encoding};
use ota_ecu::flash::mem::MemFlash;
use ota_ecu::flash::{Slot, STATE_LEN};
use ota_ecu::state::{ImageInfo, RevertReason};
use ota_ecu::uds::{Nrc, Server};
use ota_metadata::documents::compact::{keyid_bytes, sign_compact};
use ota_metadata::documents::ImageManifest;
use ota_metadata::SigningKey;
use ota_testkit::images::point_release_pair;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

fn signers() -> &'static [SigningKey] {
    static K: OnceLock<Vec<SigningKey>> = OnceLock::new();
    K.get_or_init(|| {
        (0..2)
            .map(|_| SigningKey::generate(2048).unwrap())
            .collect()
    })
}

fn provisioned() -> Vec<ProvisionedKey> {
    vec![ProvisionedKey {
        keyid: keyid_bytes(signers()[0].key_id()).unwrap(),
        key: signers()[0].rsa_public(),
    }]
}

fn image(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn manifest(img: &[u8], version: &str, counter: u64, hw: &str, signer: &SigningKey) -> Vec<u8> {
    let m = ImageManifest::new(
        "acme",
        "brake-fw",
        version,
        counter,
        vec![hw.into()],
        img.len() as u64,
        Sha256::digest(img).into(),
    )
    .unwrap();
    sign_compact(&m.compact_body().unwrap(), &[signer]).unwrap()
}

fn identity(keys: &[ProvisionedKey]) -> Identity<'_> {
    Identity {
        hardware_id: Field::new("BRAKE-A").unwrap(),
        keys,
        threshold: 1,
    }
}

/// Send a whole image in blocks of `block` bytes: it ends verified and pending.
fn stage<F: ota_ecu::flash::Flash>(
    bl: &mut Bootloader<'_, F>,
    m: &[u8],
    img: &[u8],
    block: usize,
) -> Result<ImageInfo, Refusal> {
    bl.request_download(m)?;
    for (i, chunk) in img.chunks(block).enumerate() {
        bl.transfer_data(((i + 1) % 256) as u8, chunk)?;
    }
    bl.transfer_exit()
}

/// Send a whole image and activate it (on trial).
fn install<F: ota_ecu::flash::Flash>(
    bl: &mut Bootloader<'_, F>,
    m: &[u8],
    img: &[u8],
    block: usize,
) -> Result<(), Refusal> {
    let info = stage(bl, m, img, block)?;
    bl.activate(&info.sha256).map(|_| ())
}

/// A start-up of an image that confirms itself.
fn start<F: ota_ecu::flash::Flash>(bl: &mut Bootloader<'_, F>) -> Result<(), Refusal> {
    bl.boot(ResetCause::PowerOn)?;
    bl.confirm()
}

/// Send a whole image, activate it, and start it: it confirms itself.
fn transfer<F: ota_ecu::flash::Flash>(
    bl: &mut Bootloader<'_, F>,
    m: &[u8],
    img: &[u8],
    block: usize,
) -> Result<(), Refusal> {
    install(bl, m, img, block)?;
    start(bl)
}

/// An ECU running brake-fw 1.0 (counter 3, confirmed), with 2.0 (counter 4) verified and
/// pending; the images.
fn staged_2_0(prov: &[ProvisionedKey]) -> (Bootloader<'_, MemFlash>, Vec<u8>, Vec<u8>) {
    let mut bl = Bootloader::new(MemFlash::new(1 << 20), identity(prov)).unwrap();
    let old = image(50_000, 1);
    let m_old = manifest(&old, "1.0", 3, "BRAKE-A", &signers()[0]);
    transfer(&mut bl, &m_old, &old, 4000).unwrap();
    let new = image(50_000, 2);
    let m_new = manifest(&new, "2.0", 4, "BRAKE-A", &signers()[0]);
    stage(&mut bl, &m_new, &new, 4000).unwrap();
    (bl, old, new)
}

/// [`staged_2_0`] with 2.0 activated: on trial.
fn on_trial(prov: &[ProvisionedKey]) -> (Bootloader<'_, MemFlash>, Vec<u8>, Vec<u8>) {
    let (mut bl, old, new) = staged_2_0(prov);
    bl.activate(&Sha256::digest(&new).into()).unwrap();
    (bl, old, new)
}

/// Scenario: ECU trial boot | an activated image that confirms itself | it stays, and only then does the release counter rise
#[test]
fn an_activated_image_is_on_trial_until_it_confirms_itself() {
    let prov = provisioned();
    let (mut bl, _, new) = on_trial(&prov);
    let st = *bl.state();
    assert_eq!(st.image.unwrap().version.as_str(), "2.0");
    assert_eq!(
        st.release_counter, 3,
        "not final before the image confirms itself"
    );
    assert!(st.trial.is_some());
    // No download while on trial: it would erase the image to return to.
    let other = image(1000, 9);
    assert_eq!(
        bl.request_download(&manifest(&other, "3.0", 5, "BRAKE-A", &signers()[0])),
        Err(Refusal::OnTrial)
    );
    // The trial survives a restart; the start-up counts it; the image confirms itself.
    let mut bl = Bootloader::new(bl.into_flash(), identity(&prov)).unwrap();
    assert_eq!(bl.state().trial, st.trial);
    match bl.boot(ResetCause::PowerOn).unwrap() {
        Boot::Image { info, trial } => {
            assert!(trial);
            assert_eq!(info.sha256, <[u8; 32]>::from(Sha256::digest(&new)));
        }
        b => panic!("{b:?}"),
    }
    bl.confirm().unwrap();
    assert_eq!(bl.state().release_counter, 4);
    assert!(bl.state().trial.is_none());
    // Confirmed: later resets of any kind keep it.
    for cause in [ResetCause::Watchdog, ResetCause::Fault, ResetCause::PowerOn] {
        assert_eq!(
            bl.boot(cause).unwrap(),
            Boot::Image {
                info: bl.state().image.unwrap(),
                trial: false
            }
        );
    }
    assert_eq!(bl.state().image.unwrap().version.as_str(), "2.0");
}

/// Scenario: ECU trial boot | the activated image faults, is reset by the watchdog, never confirms, or is nothing the board can start | the bootloader returns to the previous image by itself, remembers why, and refuses those bytes again
#[test]
fn a_trial_image_that_fails_is_reverted_and_never_runs_again() {
    let prov = provisioned();
    for (causes, reason) in [
        (
            vec![ResetCause::PowerOn, ResetCause::Fault],
            RevertReason::Fault,
        ),
        (
            vec![ResetCause::PowerOn, ResetCause::Watchdog],
            RevertReason::Watchdog,
        ),
        (
            vec![ResetCause::PowerOn; usize::from(MAX_TRIAL_BOOTS) + 1],
            RevertReason::Unconfirmed,
        ),
        // The board's start-up code finds nothing it can start (`Bootloader::fail_trial`).
        (vec![ResetCause::PowerOn], RevertReason::NotStartable),
    ] {
        let (mut bl, old, new) = on_trial(&prov);
        let trial_slot = bl.state().active;
        let mut last = None;
        for c in &causes {
            last = Some(bl.boot(*c).unwrap());
        }
        if reason == RevertReason::NotStartable {
            bl.fail_trial(reason).unwrap();
            // No trial any more: a second call writes nothing.
            let st = *bl.state();
            bl.fail_trial(reason).unwrap();
            assert_eq!(*bl.state(), st);
            last = Some(bl.boot(ResetCause::PowerOn).unwrap());
        }
        let st = *bl.state();
        assert_eq!(
            last.unwrap(),
            Boot::Image {
                info: st.image.unwrap(),
                trial: false
            },
            "{reason:?}"
        );
        assert_eq!(st.image.unwrap().version.as_str(), "1.0", "{reason:?}");
        assert_eq!(st.active, trial_slot.other());
        assert_eq!(
            st.release_counter, 3,
            "the trial's counter never became final"
        );
        assert!(st.trial.is_none());
        let r = st.reverted.unwrap();
        assert_eq!((r.version.as_str(), r.reason), ("2.0", reason));
        assert!(bl.verify_active().unwrap(), "the previous image is intact");
        assert_eq!(st.image.unwrap().sha256[..], Sha256::digest(&old)[..]);
        // Survives a restart, and the same bytes are refused from now on: activating them
        // again (nothing pending) and downloading them again.
        let mut bl = Bootloader::new(bl.into_flash(), identity(&prov)).unwrap();
        assert_eq!(bl.state().reverted, st.reverted);
        let sha: [u8; 32] = Sha256::digest(&new).into();
        assert_eq!(bl.activate(&sha), Err(Refusal::NothingPending));
        assert_eq!(
            bl.request_download(&manifest(&new, "2.0", 4, "BRAKE-A", &signers()[0])),
            Err(Refusal::Reverted)
        );
        // A fixed build (other bytes) installs.
        let fixed = image(50_000, 3);
        transfer(
            &mut bl,
            &manifest(&fixed, "2.1", 5, "BRAKE-A", &signers()[0]),
            &fixed,
            4000,
        )
        .unwrap();
        assert_eq!(bl.state().release_counter, 5);
    }
}

/// Scenario: ECU trial boot | the trial slot is altered after activation; a first image fails its trial | the altered image is not run; with nothing to return to the ECU waits in its bootloader
#[test]
fn a_failed_trial_never_runs_an_altered_image_and_a_first_image_has_nothing_to_return_to() {
    let prov = provisioned();
    // The trial slot changes after activation: reverted at the next start-up, before it runs.
    let (mut bl, _, _) = on_trial(&prov);
    let slot = bl.state().active;
    bl.flash_mut().slots[slot.index() as usize][100] ^= 1;
    let b = bl.boot(ResetCause::PowerOn).unwrap();
    assert_eq!(bl.state().reverted.unwrap().reason, RevertReason::Corrupt);
    assert_eq!(
        b,
        Boot::Image {
            info: bl.state().image.unwrap(),
            trial: false
        }
    );
    assert_eq!(bl.state().image.unwrap().version.as_str(), "1.0");
    // A first image has nothing to return to: its failure leaves the ECU in its bootloader.
    let mut bl = Bootloader::new(MemFlash::new(1 << 20), identity(&prov)).unwrap();
    let first = image(10_000, 1);
    let info = stage(
        &mut bl,
        &manifest(&first, "1.0", 3, "BRAKE-A", &signers()[0]),
        &first,
        4000,
    )
    .unwrap();
    bl.activate(&info.sha256).unwrap();
    bl.boot(ResetCause::PowerOn).unwrap();
    assert_eq!(bl.boot(ResetCause::Fault).unwrap(), Boot::Bootloader);
    assert_eq!(bl.state().image, None);
    assert_eq!(bl.state().release_counter, 0);
    // The trial is over, and the failed image is recorded as reverted: reported, and never
    // accepted again (mutation testing found these three writes of the no-previous-image
    // revert held by no test).
    assert_eq!(bl.state().trial, None);
    let reverted = bl.state().reverted.unwrap();
    assert_eq!(
        (reverted.sha256, reverted.reason),
        (info.sha256, RevertReason::Fault)
    );
    assert!(bl.state().revert_history.contains(&info.sha256));
    assert_eq!(
        bl.request_download(&manifest(&first, "1.0", 3, "BRAKE-A", &signers()[0])),
        Err(Refusal::Reverted)
    );
    // Restarted (the state read back from flash), it is still refused.
    let mut bl = Bootloader::new(bl.into_flash(), identity(&prov)).unwrap();
    assert_eq!(bl.boot(ResetCause::PowerOn).unwrap(), Boot::Bootloader);
    assert_eq!(
        bl.request_download(&manifest(&first, "1.0", 3, "BRAKE-A", &signers()[0])),
        Err(Refusal::Reverted)
    );
}

#[test]
fn installs_into_the_inactive_slot_and_activates_on_a_matching_hash() {
    let prov = provisioned();
    let mut bl = Bootloader::new(MemFlash::new(1 << 20), identity(&prov)).unwrap();
    let img = image(300_000, 1);
    transfer(
        &mut bl,
        &manifest(&img, "1.0", 3, "BRAKE-A", &signers()[0]),
        &img,
        4000,
    )
    .unwrap();
    let st = *bl.state();
    assert_eq!(st.active, Slot::B);
    assert_eq!(st.release_counter, 3);
    assert_eq!(st.image.unwrap().version.as_str(), "1.0");
    assert!(bl.verify_active().unwrap());
    // Survives a restart.
    let flash = bl.into_flash();
    let mut bl = Bootloader::new(flash, identity(&prov)).unwrap();
    assert_eq!(*bl.state(), st);
    // The next image goes to slot A; block counters wrap past 255.
    let img2 = image(300_000, 2);
    transfer(
        &mut bl,
        &manifest(&img2, "2.0", 4, "BRAKE-A", &signers()[0]),
        &img2,
        1000,
    )
    .unwrap();
    assert_eq!(bl.state().active, Slot::A);
    assert!(bl.verify_active().unwrap());
}

/// Scenario: Uptane release counter | the ECU offered a manifest with a lower counter, wrong hardware id or bad signature | refused by the ECU before any data
#[test]
fn refusals_before_any_data_is_accepted() {
    let prov = provisioned();
    let mut bl = Bootloader::new(MemFlash::new(100_000), identity(&prov)).unwrap();
    let img = image(5000, 3);
    transfer(
        &mut bl,
        &manifest(&img, "1.0", 5, "BRAKE-A", &signers()[0]),
        &img,
        512,
    )
    .unwrap();
    let before = *bl.state();
    let cases = [
        (
            manifest(&img, "1.1", 5, "BRAKE-A", &signers()[1]),
            Refusal::BadSignature,
        ),
        (
            manifest(&img, "1.1", 5, "BRAKE-Z", &signers()[0]),
            Refusal::WrongHardwareId,
        ),
        (
            manifest(&img, "0.9", 4, "BRAKE-A", &signers()[0]),
            Refusal::Rollback,
        ),
        (
            manifest(&image(200_000, 1), "9", 9, "BRAKE-A", &signers()[0]),
            Refusal::TooLarge,
        ),
        (b"garbage".to_vec(), Refusal::BadManifest),
    ];
    for (m, refusal) in cases {
        assert_eq!(bl.request_download(&m), Err(refusal));
        assert_eq!(
            bl.transfer_data(1, &img[..10]),
            Err(Refusal::Sequence),
            "no data after a refusal"
        );
    }
    assert_eq!(*bl.state(), before);
    assert!(bl.verify_active().unwrap());
}

/// The slot's capacity is a bound, not one byte less: an image that fills it exactly installs,
/// one byte more is refused before the slot is erased (mutation testing found the bound
/// held by no test).
#[test]
fn an_image_that_fills_its_slot_exactly_installs_and_one_byte_more_is_refused() {
    let prov = provisioned();
    let mut bl = Bootloader::new(MemFlash::new(20_000), identity(&prov)).unwrap();
    let slot = usize::try_from(ota_ecu::flash::Flash::slot_size(bl.flash_mut())).unwrap();
    let full = image(slot, 9);
    transfer(
        &mut bl,
        &manifest(&full, "1.0", 1, "BRAKE-A", &signers()[0]),
        &full,
        1024,
    )
    .unwrap();
    assert_eq!(bl.state().image.map(|i| i.length), Some(slot as u64));
    let over = image(slot + 1, 4);
    assert_eq!(
        bl.request_download(&manifest(&over, "1.1", 2, "BRAKE-A", &signers()[0])),
        Err(Refusal::TooLarge)
    );
    assert!(bl.verify_active().unwrap());
}

#[test]
fn a_lost_state_refuses_every_install_until_restored_but_a_blank_ecu_starts_at_zero() {
    let prov = provisioned();
    let img = image(5000, 3);
    let m5 = manifest(&img, "1.0", 5, "BRAKE-A", &signers()[0]);
    let m1 = manifest(&img, "0.9", 1, "BRAKE-A", &signers()[0]);

    // A factory-blank ECU (never written, in either erased pattern) takes any counter.
    for erased in [0x00, 0xFF] {
        let mut blank = MemFlash::new(100_000);
        blank.state = [[erased; STATE_LEN]; 2];
        let mut bl = Bootloader::new(blank, identity(&prov)).unwrap();
        assert!(!bl.state_lost());
        assert_eq!(bl.state().release_counter, 0);
        transfer(&mut bl, &m1, &img, 512).unwrap();
    }

    // Installed at counter 5, then both state copies corrupted.
    let mut bl = Bootloader::new(MemFlash::new(100_000), identity(&prov)).unwrap();
    transfer(&mut bl, &m5, &img, 512).unwrap();
    let mut flash = bl.into_flash();
    let good = flash.state;
    for copy in &mut flash.state {
        copy[20] ^= 0x10;
    }
    let mut bl = Bootloader::new(flash.clone(), identity(&prov)).unwrap();
    assert!(bl.state_lost());
    // Neither the rollback to counter 1 nor a legitimate update is accepted.
    for m in [&m1, &m5] {
        assert_eq!(bl.request_download(m), Err(Refusal::StateLost));
        assert_eq!(bl.transfer_data(1, &img[..10]), Err(Refusal::Sequence));
    }
    assert_eq!(bl.flash_mut().state, flash.state, "nothing written");
    // Over UDS: the negative response says why.
    let mut server = Server::new(bl, Field::new("SN").unwrap());
    let mut req = vec![0x34, 0x00, 0x00];
    req.extend_from_slice(&m1);
    assert_eq!(server.handle(&req), [0x7F, 0x34, Nrc::StateLost as u8]);

    // The state restored (a workshop writes a valid copy back): rollback refused again,
    // updates accepted.
    flash.state[0] = good[0];
    let mut bl = Bootloader::new(flash, identity(&prov)).unwrap();
    assert!(!bl.state_lost());
    assert_eq!(bl.state().release_counter, 5);
    assert_eq!(bl.request_download(&m1), Err(Refusal::Rollback));
    transfer(&mut bl, &m5, &img, 512).unwrap();
}

#[test]
fn a_power_cut_during_the_first_install_never_loses_the_state() {
    let prov = provisioned();
    let img = image(3000, 9);
    let m = manifest(&img, "1.0", 4, "BRAKE-A", &signers()[0]);
    // erase + 3 blocks + the blank state + the pending state + the active state = 7 writes;
    // cut before each one.
    let mut outcomes = Vec::new();
    for cut in 0..8u64 {
        let mut flash = MemFlash::new(100_000);
        flash.writes_left = Some(cut);
        let mut bl = Bootloader::new(flash, identity(&prov)).unwrap();
        let result = install(&mut bl, &m, &img, 1000);
        outcomes.push(result.is_ok());
        let mut flash = bl.into_flash();
        flash.power_on();
        let mut bl = Bootloader::new(flash, identity(&prov)).unwrap();
        assert!(!bl.state_lost(), "cut {cut}");
        start(&mut bl).unwrap();
        if result.is_err() {
            assert_eq!(bl.state().release_counter, 0, "cut {cut}");
            transfer(&mut bl, &m, &img, 1000).unwrap();
        }
        assert_eq!(bl.state().release_counter, 4, "cut {cut}");
        assert!(bl.verify_active().unwrap());
    }
    assert_cuts_bite(&outcomes, 5);
}

/// The fault injection really cut: every cut before the last write failed the install, every
/// later one let it finish, and at least `min_writes` writes were cut (else a flash that ignored
/// `writes_left` would pass the power-cut tests unnoticed).
fn assert_cuts_bite(outcomes: &[bool], min_writes: usize) {
    let first_ok = outcomes
        .iter()
        .position(|ok| *ok)
        .expect("no cut let the install finish");
    assert!(
        outcomes[first_ok..].iter().all(|ok| *ok),
        "an install failed after a later cut: {outcomes:?}"
    );
    assert!(
        first_ok >= min_writes,
        "only {first_ok} cut(s) failed the install: {outcomes:?}"
    );
}

#[test]
fn a_flipped_last_byte_is_caught_and_the_old_image_stays_active() {
    let prov = provisioned();
    let mut bl = Bootloader::new(MemFlash::new(100_000), identity(&prov)).unwrap();
    let old = image(5000, 4);
    transfer(
        &mut bl,
        &manifest(&old, "1.0", 1, "BRAKE-A", &signers()[0]),
        &old,
        700,
    )
    .unwrap();
    let before = *bl.state();
    let new = image(6000, 5);
    let m = manifest(&new, "2.0", 2, "BRAKE-A", &signers()[0]);
    let mut flipped = new.clone();
    *flipped.last_mut().unwrap() ^= 0x01;
    assert_eq!(
        transfer(&mut bl, &m, &flipped, 700),
        Err(Refusal::HashMismatch)
    );
    assert_eq!(*bl.state(), before);
    assert!(bl.verify_active().unwrap());
    // Short image, extra data, wrong block counter, exit without a download.
    bl.request_download(&m).unwrap();
    bl.transfer_data(1, &new[..100]).unwrap();
    assert_eq!(
        bl.transfer_data(3, &new[100..200]),
        Err(Refusal::WrongBlock)
    );
    assert_eq!(bl.transfer_exit(), Err(Refusal::HashMismatch));
    assert_eq!(bl.transfer_exit(), Err(Refusal::Sequence));
    bl.request_download(&m).unwrap();
    assert_eq!(bl.transfer_data(1, &image(6001, 5)), Err(Refusal::TooLarge));
    assert_eq!(*bl.state(), before);
    // And then the real thing installs.
    transfer(&mut bl, &m, &new, 700).unwrap();
    assert_eq!(bl.state().release_counter, 2);
}

/// Scenario: Power loss | power cut at every flash write of the ECU | the old image stays bootable
#[test]
fn power_cut_at_every_write_keeps_the_old_image_bootable_and_the_retry_succeeds() {
    let prov = provisioned();
    let old = image(20_000, 6);
    let new = image(24_000, 7);
    let m_old = manifest(&old, "1.0", 1, "BRAKE-A", &signers()[0]);
    let m_new = manifest(&new, "2.0", 2, "BRAKE-A", &signers()[0]);
    let mut base = Bootloader::new(MemFlash::new(100_000), identity(&prov)).unwrap();
    transfer(&mut base, &m_old, &old, 1000).unwrap();
    let base_flash = base.into_flash();
    // erase + 24 blocks + pending state + active state = 27 write operations; cut before each.
    let mut outcomes = Vec::new();
    for cut in 0..28u64 {
        let mut flash = base_flash.clone();
        flash.writes_left = Some(cut);
        let mut bl = Bootloader::new(flash, identity(&prov)).unwrap();
        let result = install(&mut bl, &m_new, &new, 1000);
        outcomes.push(result.is_ok());
        let mut flash = bl.into_flash();
        flash.power_on();
        let mut bl = Bootloader::new(flash, identity(&prov)).unwrap();
        start(&mut bl).unwrap();
        let version = bl.state().image.unwrap().version;
        if result.is_ok() {
            assert_eq!(version.as_str(), "2.0");
        } else {
            assert_eq!(
                version.as_str(),
                "1.0",
                "cut {cut}: the old image must stay active"
            );
            // Pending only once the whole image verified.
            if let Some(p) = bl.state().pending {
                assert_eq!(p.version.as_str(), "2.0", "cut {cut}");
                assert_eq!(p.sha256, <[u8; 32]>::from(Sha256::digest(&new)));
            }
        }
        assert!(
            bl.verify_active().unwrap(),
            "cut {cut}: the active image must verify"
        );
        transfer(&mut bl, &m_new, &new, 1000)
            .or_else(|e| if result.is_ok() { Ok(()) } else { Err(e) })
            .unwrap();
        assert_eq!(
            bl.state().image.unwrap().version.as_str(),
            "2.0",
            "cut {cut}: retry"
        );
        assert!(bl.verify_active().unwrap());
    }
    // The erase and the 24 blocks at least.
    assert_cuts_bite(&outcomes, 25);
}

#[test]
fn a_verified_image_waits_pending_until_activated_or_discarded() {
    let prov = provisioned();
    let mut bl = Bootloader::new(MemFlash::new(100_000), identity(&prov)).unwrap();
    let old = image(5000, 11);
    let new = image(7000, 12);
    let next = image(6000, 13);
    let (m_old, m_new, m_next) = (
        manifest(&old, "1.0", 1, "BRAKE-A", &signers()[0]),
        manifest(&new, "2.0", 2, "BRAKE-A", &signers()[0]),
        manifest(&next, "3.0", 3, "BRAKE-A", &signers()[0]),
    );
    let sha = |b: &[u8]| <[u8; 32]>::from(Sha256::digest(b));
    transfer(&mut bl, &m_old, &old, 1000).unwrap();
    let before = *bl.state();

    // Verified and pending: the old image stays active, the counter stays, across a restart.
    let info = stage(&mut bl, &m_new, &new, 1000).unwrap();
    let st = *bl.state();
    assert_eq!((st.active, st.release_counter), (before.active, 1));
    assert_eq!(st.image, before.image);
    assert_eq!(st.pending, Some(info));
    assert!(bl.verify_active().unwrap());
    let mut bl = Bootloader::new(bl.into_flash(), identity(&prov)).unwrap();
    assert_eq!(*bl.state(), st, "the pending image survives a restart");

    // Only the pending image's hash activates it.
    assert_eq!(bl.activate(&sha(&next)), Err(Refusal::NothingPending));
    assert_eq!(*bl.state(), st);
    assert_eq!(bl.activate(&sha(&new)).unwrap(), info);
    assert_eq!(bl.state().release_counter, 1, "on trial: not final yet");
    start(&mut bl).unwrap();
    let st = *bl.state();
    assert_eq!(st.active, before.active.other());
    assert_eq!((st.release_counter, st.pending), (2, None));
    assert_eq!(st.image.unwrap().version.as_str(), "2.0");
    assert!(bl.verify_active().unwrap());
    // Idempotent: activating the active image again writes nothing; the old one is gone.
    assert_eq!(bl.activate(&sha(&new)).unwrap().version.as_str(), "2.0");
    assert_eq!(*bl.state(), st);
    assert_eq!(bl.activate(&sha(&old)), Err(Refusal::NothingPending));

    // Discard drops a pending image (idempotent); the active one stays.
    stage(&mut bl, &m_next, &next, 1000).unwrap();
    bl.discard().unwrap();
    let discarded = *bl.state();
    assert_eq!((discarded.pending, discarded.image), (None, st.image));
    bl.discard().unwrap();
    assert_eq!(*bl.state(), discarded, "nothing written the second time");
    assert_eq!(bl.activate(&sha(&next)), Err(Refusal::NothingPending));

    // A pending slot that no longer hashes right is never activated, and is dropped.
    stage(&mut bl, &m_next, &next, 1000).unwrap();
    let slot = usize::from(bl.state().active.other().index());
    bl.flash_mut().slots[slot][10] ^= 1;
    assert_eq!(bl.activate(&sha(&next)), Err(Refusal::HashMismatch));
    assert_eq!(bl.state().pending, None);
    assert_eq!(bl.state().image.unwrap().version.as_str(), "2.0");
    assert!(bl.verify_active().unwrap());

    // A new download drops the pending record before it erases that slot.
    stage(&mut bl, &m_next, &next, 1000).unwrap();
    bl.request_download(&m_next).unwrap();
    assert_eq!(bl.state().pending, None);
    let mut bl = Bootloader::new(bl.into_flash(), identity(&prov)).unwrap();
    assert_eq!(bl.activate(&sha(&next)), Err(Refusal::NothingPending));
}

/// Scenario: Power loss | power cut at every flash write of an activation, the trial's boots, the revert of a faulting image and the confirmation of a good one | the ECU always starts a verified image, never with the counter of an unconfirmed one, and ends where the uncut run ends
#[test]
fn a_power_cut_at_every_write_of_a_trial_keeps_a_verified_image_and_a_final_counter() {
    let prov = provisioned();
    // What the uncut runs end with: a faulting 2.0 reverted to 1.0 (counter 3), a good 2.0
    // confirmed (counter 4).
    for faults in [true, false] {
        let mut cut = 0u64;
        loop {
            let (bl, old, new) = staged_2_0(&prov);
            let mut flash = bl.into_flash();
            flash.writes_left = Some(cut);
            let mut bl = Bootloader::new(flash, identity(&prov)).unwrap();
            // The activation, then start-ups until the trial ends: a faulting image resets
            // with a fault each time.
            let mut finished = bl.activate(&Sha256::digest(&new).into()).is_ok();
            let mut cause = ResetCause::PowerOn;
            for _ in 0..=MAX_TRIAL_BOOTS {
                if !finished {
                    break;
                }
                match bl.boot(cause) {
                    Ok(Boot::Image { trial: true, .. }) if faults => cause = ResetCause::Fault,
                    Ok(Boot::Image { trial: true, .. }) => {
                        finished &= bl.confirm().is_ok();
                        break;
                    }
                    Ok(_) => break,
                    Err(_) => {
                        finished = false;
                        break;
                    }
                }
            }
            let mut flash = bl.into_flash();
            let cut_bit = flash.writes_left == Some(0);
            flash.power_on();
            let mut bl = Bootloader::new(flash, identity(&prov)).unwrap();
            let st = *bl.state();
            assert!(!bl.state_lost(), "cut {cut}");
            assert!(bl.verify_active().unwrap(), "cut {cut}: {st:?}");
            let running = st.image.unwrap().sha256;
            assert!(
                running[..] == Sha256::digest(&old)[..] || running[..] == Sha256::digest(&new)[..]
            );
            if st.trial.is_some() || running[..] == Sha256::digest(&old)[..] || faults {
                // A faulting 2.0 never confirms: its counter is never the ECU's.
                assert_eq!(
                    st.release_counter, 3,
                    "cut {cut}: 2.0 unconfirmed, not final"
                );
            }
            // Starting again converges on the uncut run's end (a cut before the activation's
            // write leaves 2.0 pending: activated again, as the gateway's roll-forward does).
            if st.pending.is_some() {
                bl.activate(&Sha256::digest(&new).into()).unwrap();
            }
            let mut cause = ResetCause::PowerOn;
            for _ in 0..=MAX_TRIAL_BOOTS {
                match bl.boot(cause).unwrap() {
                    Boot::Image { trial: true, .. } if faults => cause = ResetCause::Fault,
                    Boot::Image { trial: true, .. } => {
                        bl.confirm().unwrap();
                        break;
                    }
                    _ => break,
                }
            }
            let end = *bl.state();
            let want = if faults { ("1.0", 3) } else { ("2.0", 4) };
            assert_eq!(
                (end.image.unwrap().version.as_str(), end.release_counter),
                want,
                "faults={faults} cut {cut}"
            );
            assert!(end.trial.is_none());
            if finished && !cut_bit {
                break;
            }
            cut += 1;
            assert!(cut < 20, "the writes never ran out");
        }
        assert!(cut >= 2, "faults={faults}: the cuts bit only {cut} writes");
    }
}

/// Scenario: ECU trial boot | an image reverted, then another, then the first one's bytes offered again (re-released under a new version) | refused: every image this ECU reverted from is remembered (the last eight), not only the last
#[test]
fn every_reverted_image_stays_refused_not_only_the_last() {
    let prov = provisioned();
    let (mut bl, _, x) = on_trial(&prov);
    bl.boot(ResetCause::PowerOn).unwrap();
    bl.boot(ResetCause::Fault).unwrap();
    assert_eq!(bl.state().reverted.unwrap().version.as_str(), "2.0");
    // Y reverts too.
    let y = image(50_000, 4);
    let info = stage(
        &mut bl,
        &manifest(&y, "2.1", 5, "BRAKE-A", &signers()[0]),
        &y,
        4000,
    )
    .unwrap();
    bl.activate(&info.sha256).unwrap();
    bl.boot(ResetCause::PowerOn).unwrap();
    bl.boot(ResetCause::Fault).unwrap();
    assert_eq!(bl.state().reverted.unwrap().version.as_str(), "2.1");
    // X's bytes again, under another version and counter: still refused, across a restart.
    let mut bl = Bootloader::new(bl.into_flash(), identity(&prov)).unwrap();
    for (img, v) in [(&x, "2.2"), (&y, "2.3")] {
        assert_eq!(
            bl.request_download(&manifest(img, v, 6, "BRAKE-A", &signers()[0])),
            Err(Refusal::Reverted),
            "{v}"
        );
    }
}

/// Send an image carried in `encoding` (a packed image or a delta) in blocks of `block` bytes.
fn stage_encoded<F: ota_ecu::flash::Flash>(
    bl: &mut Bootloader<'_, F>,
    m: &[u8],
    data: &[u8],
    block: usize,
    encoding: Encoding,
) -> Result<ImageInfo, Refusal> {
    bl.request_download_encoded(m, None, encoding)?;
    for (i, chunk) in data.chunks(block).enumerate() {
        bl.transfer_data(((i + 1) % 256) as u8, chunk)?;
    }
    bl.transfer_exit()
}

fn slot_bytes(bl: &mut Bootloader<'_, MemFlash>, slot: Slot, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    let n = ota_ecu::flash::Flash::read_slot(bl.flash_mut(), slot, 0, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// Scenario: Deltas | an ECU rebuilds the next release from its active image and a delta, or unpacks a compressed image | verified as a full image, then activated
#[test]
fn a_delta_or_a_packed_image_becomes_the_verified_image_the_manifest_names() {
    let prov = provisioned();
    let (old, new) = point_release_pair(40_000, 0);
    let m_old = manifest(&old, "1.0", 1, "BRAKE-A", &signers()[0]);
    let m_new = manifest(&new, "1.1", 2, "BRAKE-A", &signers()[0]);
    // A delta arriving in ISO-TP-sized blocks and in odd ones.
    for block in [4092, 333] {
        let mut bl = Bootloader::new(MemFlash::new(100_000), identity(&prov)).unwrap();
        transfer(&mut bl, &m_old, &old, 4092).unwrap();
        let delta = make::delta(&old, &new);
        assert!(delta.len() * 10 < new.len());
        let info = stage_encoded(&mut bl, &m_new, &delta, block, Encoding::Delta).unwrap();
        assert_eq!(info.sha256, <[u8; 32]>::from(Sha256::digest(&new)));
        let pending_slot = bl.state().active.other();
        assert!(slot_bytes(&mut bl, pending_slot, new.len()) == new);
        bl.activate(&info.sha256).unwrap();
        start(&mut bl).unwrap();
        assert_eq!(bl.state().image.unwrap().version.as_str(), "1.1");
        assert!(bl.verify_active().unwrap());
    }
    // A packed image on an ECU that has none yet.
    let mut bl = Bootloader::new(MemFlash::new(100_000), identity(&prov)).unwrap();
    let packed = make::packed(&old);
    assert!(packed.len() < old.len());
    stage_encoded(&mut bl, &m_old, &packed, 4092, Encoding::Packed).unwrap();
    bl.activate(&Sha256::digest(&old).into()).unwrap();
    start(&mut bl).unwrap();
    assert!(bl.verify_active().unwrap());
}

/// Scenario: Deltas | a delta against another image, a corrupted delta, a delta to an ECU with no image | refused, nothing pending, the running image untouched
#[test]
fn a_delta_for_another_base_or_corrupted_never_becomes_pending() {
    let prov = provisioned();
    let (old, new) = point_release_pair(30_000, 0);
    let m_old = manifest(&old, "1.0", 1, "BRAKE-A", &signers()[0]);
    let m_new = manifest(&new, "1.1", 2, "BRAKE-A", &signers()[0]);
    let mut bl = Bootloader::new(MemFlash::new(100_000), identity(&prov)).unwrap();
    // No image active: there is no base.
    let delta = make::delta(&old, &new);
    assert_eq!(
        stage_encoded(&mut bl, &m_new, &delta, 4092, Encoding::Delta),
        Err(Refusal::WrongBase)
    );
    transfer(&mut bl, &m_old, &old, 4092).unwrap();
    let mut before = *bl.state();
    // Against another base (an image this ECU does not run).
    let mut other = old.clone();
    other[0] ^= 1;
    assert_eq!(
        stage_encoded(
            &mut bl,
            &m_new,
            &make::delta(&other, &new),
            4092,
            Encoding::Delta
        ),
        Err(Refusal::WrongBase)
    );
    // A delta whose header names this base but whose patch rebuilds another image: the
    // manifest's hash decides.
    let wrong = make::delta(&old, &other);
    assert_eq!(
        stage_encoded(&mut bl, &m_new, &wrong, 4092, Encoding::Delta),
        Err(Refusal::HashMismatch)
    );
    // Corrupted anywhere after its header: refused by the format or by the hash, every time.
    let mut caught_by_format = 0;
    for at in (ota_ecu::delta::DELTA_HEADER_LEN..delta.len()).step_by(5) {
        let mut bad = delta.clone();
        bad[at] ^= 0x40;
        match stage_encoded(&mut bl, &m_new, &bad, 4092, Encoding::Delta) {
            Err(Refusal::BadEncoding) | Err(Refusal::TooLarge) => caught_by_format += 1,
            Err(Refusal::HashMismatch) => {}
            // A flip that still rebuilds the very image (a back-reference to equal bytes):
            // verified, so acceptable; drop it again.
            Ok(info) if info.sha256 == <[u8; 32]>::from(Sha256::digest(&new)) => {
                bl.discard().unwrap();
                before = *bl.state();
            }
            other => panic!("byte {at} flipped: {other:?}"),
        }
        assert_eq!(*bl.state(), before, "byte {at} flipped");
    }
    assert!(caught_by_format > 0);
    // A packed image announced as a delta and the reverse.
    assert_eq!(
        stage_encoded(&mut bl, &m_new, &make::packed(&new), 4092, Encoding::Delta),
        Err(Refusal::BadEncoding)
    );
    assert_eq!(
        stage_encoded(&mut bl, &m_new, &delta, 4092, Encoding::Packed),
        Err(Refusal::BadEncoding)
    );
    assert_eq!(*bl.state(), before);
    assert!(bl.verify_active().unwrap());
    // Over UDS: an unknown compression method is refused before anything is erased.
    let mut server = Server::new(bl, Field::new("SN").unwrap());
    let mut req = vec![0x34, 0x30, 0];
    req.extend_from_slice(&m_new);
    assert_eq!(
        server.handle(&req)[..],
        [0x7F, 0x34, Nrc::RequestOutOfRange as u8]
    );
}

/// Scenario: Power loss | power cut at every flash write while a delta is applied | the old image still runs; the retry succeeds
#[test]
fn a_power_cut_at_every_write_while_applying_a_delta_keeps_the_old_image() {
    let prov = provisioned();
    let (old, new) = point_release_pair(12_000, 0);
    let m_old = manifest(&old, "1.0", 1, "BRAKE-A", &signers()[0]);
    let m_new = manifest(&new, "1.1", 2, "BRAKE-A", &signers()[0]);
    let delta = make::delta(&old, &new);
    let mut base = Bootloader::new(MemFlash::new(100_000), identity(&prov)).unwrap();
    transfer(&mut base, &m_old, &old, 4092).unwrap();
    let base_flash = base.into_flash();
    let mut outcomes = Vec::new();
    let mut cut = 0u64;
    loop {
        let mut flash = base_flash.clone();
        flash.writes_left = Some(cut);
        let mut bl = Bootloader::new(flash, identity(&prov)).unwrap();
        let result = stage_encoded(&mut bl, &m_new, &delta, 4092, Encoding::Delta)
            .and_then(|i| bl.activate(&i.sha256));
        outcomes.push(result.is_ok());
        let mut flash = bl.into_flash();
        flash.power_on();
        let mut bl = Bootloader::new(flash, identity(&prov)).unwrap();
        start(&mut bl).unwrap();
        let running = bl.state().image.unwrap().version;
        let expected = if result.is_ok() { "1.1" } else { "1.0" };
        assert_eq!(running.as_str(), expected, "cut {cut}");
        assert!(bl.verify_active().unwrap(), "cut {cut}");
        if result.is_ok() {
            break;
        }
        // The retry (the delta again: its base is still the active image).
        let info = stage_encoded(&mut bl, &m_new, &delta, 4092, Encoding::Delta).unwrap();
        bl.activate(&info.sha256).unwrap();
        start(&mut bl).unwrap();
        assert!(bl.verify_active().unwrap(), "cut {cut}: retry");
        cut += 1;
    }
    // The erase, the image's writes (in pieces as they come out of the patch), and the states.
    assert!(
        outcomes.len() > new.len() / 128,
        "only {} cuts",
        outcomes.len()
    );
}
