//! The decrypting tap when the gateway is stopped (SIGTERM) mid-download: it keeps its
//! plaintext and the stream's header for the next run, which resumes from the whole chunks
//! held. Its own test binary: the stop flag is process-wide, and no other test must see it.

mod world;

use ota_client::decrypt::DecryptingTap;
use ota_client::tuf::StreamTap;
use ota_repo::supplier;
use world::World;

const CHUNK: u32 = 1024;

#[test]
fn a_stopped_tap_keeps_its_plaintext_and_the_next_one_resumes_from_it() {
    let w = World::new();
    let image: Vec<u8> = (0..10_000u32).map(|i| (i % 241) as u8).collect();
    let key_file = w.add_encrypted("fw", "1.0", 1, &image, CHUNK);
    let key = ota_crypt::content_key::ContentKey::parse(&std::fs::read(key_file).unwrap())
        .unwrap()
        .key;
    let s = supplier::Settings::load(&w.p("acme")).unwrap();
    let record = s.images.iter().find(|i| i.uid == "fw").unwrap();
    let manifest = supplier::manifest_of("acme", record).unwrap();
    let mut ciphertext = Vec::new();
    ota_crypt::stream::encrypt(
        &key,
        &mut &image[..],
        image.len() as u64,
        &mut ciphertext,
        CHUNK,
    )
    .unwrap();
    let plain = w.p(".partial-fw.plain");
    let header = w.p(".partial-fw.plain.header");
    let half = ciphertext.len() / 2;

    // Not stopping: a dropped tap leaves nothing.
    let mut tap = DecryptingTap::new(&key, &plain, &manifest).unwrap();
    tap.restart().unwrap();
    tap.write(&ciphertext[..half]).unwrap();
    assert!(plain.exists() && header.exists());
    drop(tap);
    assert!(
        !plain.exists() && !header.exists(),
        "left behind when not stopping"
    );

    // Stopping: the plaintext so far and the header stay.
    let mut tap = DecryptingTap::new(&key, &plain, &manifest).unwrap();
    tap.restart().unwrap();
    tap.write(&ciphertext[..half]).unwrap();
    ota_client::stop::request();
    drop(tap);
    let held = std::fs::read(&plain).unwrap();
    assert!(
        !held.is_empty() && image.starts_with(&held),
        "{} bytes",
        held.len()
    );
    assert_eq!(
        std::fs::read(&header).unwrap(),
        ciphertext[..ota_crypt::stream::HEADER_LEN]
    );

    // The next run: the whole chunks held give back the ciphertext they came from.
    let mut tap = DecryptingTap::new(&key, &plain, &manifest).unwrap();
    let mut shown = Vec::new();
    let n = tap.resume(&mut |c| shown.extend_from_slice(c)).unwrap();
    assert_eq!(n as usize, shown.len());
    let whole = held.len() / CHUNK as usize;
    assert_eq!(
        shown.len(),
        ota_crypt::stream::HEADER_LEN + whole * (CHUNK as usize + ota_crypt::stream::TAG_LEN)
    );
    assert_eq!(shown, ciphertext[..shown.len()]);
    tap.write(&ciphertext[shown.len()..]).unwrap();
    assert_eq!(tap.finish().unwrap(), plain);
    assert_eq!(std::fs::read(&plain).unwrap(), image);
    assert!(
        !header.exists(),
        "the header outlived the finished plaintext"
    );
}
