//! Whole downloads over ISO-TP on buses: the tester (gateway side) against the ECU's UDS server
//! and bootloader, over the in-memory bus (threads) and the UDP bus.

use ota_ecu::bootloader::{Bootloader, Identity};
use ota_ecu::bus::mem::MemBus;
use ota_ecu::bus::udp::UdpBus;
use ota_ecu::compact_manifest::{Field, ProvisionedKey};
use ota_ecu::flash::mem::MemFlash;
use ota_ecu::flasher::{activate, flash_image, serve, FlashError};
use ota_ecu::isotp::{standard_id, Config, Frame, Mode};
use ota_ecu::transport::Endpoint;
use ota_ecu::uds::{Nrc, Server};
use ota_metadata::documents::compact::{keyid_bytes, sign_compact};
use ota_metadata::documents::ImageManifest;
use ota_metadata::SigningKey;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

fn key() -> &'static SigningKey {
    static K: OnceLock<SigningKey> = OnceLock::new();
    K.get_or_init(|| SigningKey::generate(2048).unwrap())
}

fn manifest(img: &[u8], counter: u64) -> Vec<u8> {
    let m = ImageManifest::new(
        "acme",
        "fw",
        "1.0",
        counter,
        vec!["HW-1".into()],
        img.len() as u64,
        Sha256::digest(img).into(),
    )
    .unwrap();
    sign_compact(&m.compact_body().unwrap(), &[key()]).unwrap()
}

fn configs(fd: bool) -> (Config, Config) {
    let (a, b) = (standard_id(0x7E0).unwrap(), standard_id(0x7E8).unwrap());
    let mut tester = Config::new(a, b);
    let mut ecu = Config::new(b, a);
    if fd {
        tester.mode = Mode::FD64;
        ecu.mode = Mode::FD64;
    }
    (tester, ecu)
}

/// Run an ECU on its own thread over `can`; returns a handle that yields its flash at the end.
fn spawn_ecu<C>(can: C, cfg: Config, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<MemFlash>
where
    C: embedded_can::nb::Can<Frame = Frame> + Send + 'static,
    C::Error: std::fmt::Debug,
{
    std::thread::spawn(move || {
        let keys = [ProvisionedKey {
            keyid: keyid_bytes(key().key_id()).unwrap(),
            key: key().rsa_public(),
        }];
        let bl = Bootloader::new(
            MemFlash::new(4 << 20),
            Identity {
                hardware_id: Field::new("HW-1").unwrap(),
                keys: &keys,
                threshold: 1,
            },
        )
        .unwrap();
        let mut server = Server::new(bl, Field::new("ECU-1").unwrap());
        let mut ep = Endpoint::new(can, cfg).unwrap();
        serve(&mut ep, &mut server, &stop).unwrap();
        server.bootloader.into_flash()
    })
}

fn image(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 131 % 251) as u8).collect()
}

#[test]
fn download_over_the_memory_bus_classic_and_fd() {
    for fd in [false, true] {
        let bus = MemBus::new();
        let (tcfg, ecfg) = configs(fd);
        let stop = Arc::new(AtomicBool::new(false));
        let ecu = spawn_ecu(bus.node(), ecfg, stop.clone());
        let mut tester = Endpoint::new(bus.node(), tcfg).unwrap();
        let img = image(100_000);
        let mut last = 0;
        flash_image(
            &mut tester,
            &manifest(&img, 1),
            &mut img.as_slice(),
            img.len() as u64,
            |n| last = n,
        )
        .unwrap();
        assert_eq!(last, img.len() as u64);
        activate(&mut tester, &Sha256::digest(&img).into()).unwrap();
        // A lower release counter is refused by the ECU itself.
        let err = flash_image(
            &mut tester,
            &manifest(&image(10), 0),
            &mut &image(10)[..],
            10,
            |_| {},
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                FlashError::Refused {
                    nrc: Some(Nrc::ReleaseCounterRollback),
                    ..
                }
            ),
            "{err}"
        );
        stop.store(true, Ordering::Relaxed);
        let flash = ecu.join().unwrap();
        assert_eq!(&flash.slots[1][..img.len()], &img[..], "fd={fd}");
    }
}

/// Scenario: Arbitrary software | a byte flipped on the CAN bus | the ECU refuses; the old image stays active
#[test]
fn a_byte_flipped_in_transit_is_refused_and_the_old_image_stays() {
    let bus = MemBus::new();
    let (tcfg, ecfg) = configs(false);
    let stop = Arc::new(AtomicBool::new(false));
    let ecu = spawn_ecu(bus.node(), ecfg, stop.clone());
    let mut tester = Endpoint::new(bus.node(), tcfg).unwrap();
    let old = image(5000);
    flash_image(
        &mut tester,
        &manifest(&old, 1),
        &mut old.as_slice(),
        5000,
        |_| {},
    )
    .unwrap();
    activate(&mut tester, &Sha256::digest(&old).into()).unwrap();
    let new = image(9000);
    let mut flipped = new.clone();
    *flipped.last_mut().unwrap() ^= 0x80;
    let err = flash_image(
        &mut tester,
        &manifest(&new, 2),
        &mut flipped.as_slice(),
        9000,
        |_| {},
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            FlashError::Refused {
                nrc: Some(Nrc::HashMismatch),
                ..
            }
        ),
        "{err}"
    );
    stop.store(true, Ordering::Relaxed);
    let flash = ecu.join().unwrap();
    // Slot B holds the old image and stays active (the failed one went to slot A).
    let st = {
        let mut f = flash.clone();
        ota_ecu::state::EcuState::load(&mut f).unwrap()
    };
    assert_eq!(st.active, ota_ecu::flash::Slot::B);
    assert_eq!(&flash.slots[1][..5000], &old[..]);
}

#[test]
fn download_over_the_udp_bus() {
    let mut gw = UdpBus::bind("127.0.0.1:0".parse().unwrap(), vec![]).unwrap();
    let ecu_bus = UdpBus::bind(
        "127.0.0.1:0".parse().unwrap(),
        vec![gw.local_addr().unwrap()],
    )
    .unwrap();
    gw.add_peer(ecu_bus.local_addr().unwrap());
    let (tcfg, ecfg) = configs(true);
    let stop = Arc::new(AtomicBool::new(false));
    let ecu = spawn_ecu(ecu_bus, ecfg, stop.clone());
    let mut tester = Endpoint::new(gw, tcfg).unwrap();
    let img = image(300_000);
    flash_image(
        &mut tester,
        &manifest(&img, 1),
        &mut img.as_slice(),
        img.len() as u64,
        |_| {},
    )
    .unwrap();
    activate(&mut tester, &Sha256::digest(&img).into()).unwrap();
    stop.store(true, Ordering::Relaxed);
    let flash = ecu.join().unwrap();
    assert_eq!(&flash.slots[1][..img.len()], &img[..]);
}
