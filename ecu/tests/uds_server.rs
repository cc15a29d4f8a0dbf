//! The ECU's UDS server against hostile requests, and the tester's handling of a busy ECU.

use ota_ecu::bootloader::{Bootloader, Identity};
use ota_ecu::bus::mem::MemBus;
use ota_ecu::compact_manifest::{Field, ProvisionedKey};
use ota_ecu::flash::mem::MemFlash;
use ota_ecu::flasher::{activate, flash_image};
use ota_ecu::isotp::{standard_id, Config};
use ota_ecu::transport::Endpoint;
use ota_ecu::uds::{Nrc, Server, NEGATIVE};
use ota_metadata::documents::compact::{keyid_bytes, sign_compact};
use ota_metadata::documents::ImageManifest;
use ota_metadata::SigningKey;
use sha2::{Digest, Sha256};
use std::time::Duration;

#[test]
fn random_requests_never_panic_and_never_install() {
    let key = SigningKey::generate(2048).unwrap();
    let keys = [ProvisionedKey {
        keyid: keyid_bytes(key.key_id()).unwrap(),
        key: key.rsa_public(),
    }];
    let bl = Bootloader::new(
        MemFlash::new(1 << 16),
        Identity {
            hardware_id: Field::new("HW").unwrap(),
            keys: &keys,
            threshold: 1,
        },
    )
    .unwrap();
    let mut server = Server::new(bl, Field::new("SN").unwrap());
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..50_000 {
        let len = (next() % 40) as usize;
        let mut req: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // Bias towards the real services so the deeper paths run too.
        if let Some(first) = req.first_mut() {
            *first = [0x34, 0x36, 0x37, 0x22, 0x31, *first][(next() % 6) as usize];
        }
        let resp = server.handle(&req);
        assert!(!resp.is_empty());
    }
    assert!(
        server.bootloader.state().image.is_none(),
        "garbage must never install anything"
    );
}

#[test]
fn a_busy_ecu_is_asked_again() {
    let key = SigningKey::generate(2048).unwrap();
    let img = vec![5u8; 3000];
    let m = ImageManifest::new(
        "s",
        "fw",
        "1",
        1,
        vec!["HW".into()],
        3000,
        Sha256::digest(&img).into(),
    )
    .unwrap();
    let compact = sign_compact(&m.compact_body().unwrap(), &[&key]).unwrap();
    let bus = MemBus::new();
    let (a, b) = (standard_id(0x7E0).unwrap(), standard_id(0x7E8).unwrap());
    let ecu_can = bus.node();
    let kid = keyid_bytes(key.key_id()).unwrap();
    let public = key.rsa_public();
    let ecu = std::thread::spawn(move || {
        let keys = [ProvisionedKey {
            keyid: kid,
            key: public,
        }];
        let bl = Bootloader::new(
            MemFlash::new(1 << 16),
            Identity {
                hardware_id: Field::new("HW").unwrap(),
                keys: &keys,
                threshold: 1,
            },
        )
        .unwrap();
        let mut server = Server::new(bl, Field::new("SN").unwrap());
        let mut ep = Endpoint::new(ecu_can, Config::new(b, a)).unwrap();
        let mut busy_left = 2;
        // Serve until the activation, answering the first two requests "busy".
        loop {
            let req = ep.receive(Duration::from_secs(5)).unwrap();
            let resp = if busy_left > 0 {
                busy_left -= 1;
                vec![NEGATIVE, req[0], Nrc::Busy as u8]
            } else {
                server.handle(&req).to_vec()
            };
            ep.send(&resp, Duration::from_secs(5)).unwrap();
            if req.first() == Some(&0x31) {
                return server
                    .bootloader
                    .state()
                    .image
                    .map(|i| i.version.as_str().to_string());
            }
        }
    });
    let mut tester = Endpoint::new(bus.node(), Config::new(a, b)).unwrap();
    flash_image(&mut tester, &compact, &mut img.as_slice(), 3000, |_| {}).unwrap();
    activate(&mut tester, &Sha256::digest(&img).into()).unwrap();
    assert_eq!(ecu.join().unwrap().as_deref(), Some("1"));
}

#[test]
fn routine_control_requests_are_checked() {
    let keys: [ProvisionedKey; 0] = [];
    let bl = Bootloader::new(
        MemFlash::new(1 << 16),
        Identity {
            hardware_id: Field::new("HW").unwrap(),
            keys: &keys,
            threshold: 1,
        },
    )
    .unwrap();
    let mut server = Server::new(bl, Field::new("SN").unwrap());
    let activate_unknown = ota_ecu::uds::client::activate(&[0xAA; 32]);
    let cases: [(&[u8], &[u8]); 7] = [
        // Discard with nothing pending: done, nothing written.
        (&[0x31, 0x01, 0x02, 0x02], &[0x71, 0x01, 0x02, 0x02]),
        (&[0x31, 0x01, 0x02, 0x02, 0x00], &[NEGATIVE, 0x31, 0x13]),
        // Activate needs a 32-byte hash, and something pending (or active) of that hash.
        (&[0x31, 0x01, 0x02, 0x01, 0xAA], &[NEGATIVE, 0x31, 0x13]),
        (&activate_unknown, &[NEGATIVE, 0x31, 0xF7]),
        // Unknown routine, stop-routine sub-function, too short.
        (&[0x31, 0x01, 0x12, 0x34], &[NEGATIVE, 0x31, 0x31]),
        (&[0x31, 0x02, 0x02, 0x01], &[NEGATIVE, 0x31, 0x31]),
        (&[0x31, 0x01], &[NEGATIVE, 0x31, 0x13]),
    ];
    for (req, want) in cases {
        assert_eq!(&server.handle(req)[..], want, "{req:02X?}");
    }
    assert_eq!(
        server.bootloader.flash_mut().state,
        [[0; ota_ecu::flash::STATE_LEN]; 2]
    );
}

fn bare_server<'k>(keys: &'k [ProvisionedKey]) -> Server<'k, MemFlash> {
    let bl = Bootloader::new(
        MemFlash::new(1 << 16),
        Identity {
            hardware_id: Field::new("HW").unwrap(),
            keys,
            threshold: 1,
        },
    )
    .unwrap();
    Server::new(bl, Field::new("SN").unwrap())
}

#[test]
fn session_control_answers_the_programming_and_default_sessions_only() {
    let mut server = bare_server(&[]);
    assert_eq!(
        &server.handle(&[0x10, 0x02])[..],
        &[0x50, 0x02, 0x00, 0x32, 0x01, 0xF4]
    );
    assert!(!server.take_leave(), "the programming session stays");
    assert_eq!(
        &server.handle(&[0x10, 0x01])[..],
        &[0x50, 0x01, 0x00, 0x32, 0x01, 0xF4]
    );
    assert!(
        server.take_leave(),
        "the default session lets the ECU leave"
    );
    assert!(!server.take_leave(), "asked once");
    assert_eq!(&server.handle(&[0x10, 0x03])[..], &[NEGATIVE, 0x10, 0x12]);
    assert_eq!(&server.handle(&[0x10])[..], &[NEGATIVE, 0x10, 0x13]);
    assert_eq!(
        &server.handle(&[0x10, 0x02, 0x00])[..],
        &[NEGATIVE, 0x10, 0x13]
    );
}

/// An ECU that is resetting into its bootloader loses the first programming-session request
/// and answers it late; the tester asks again, and the late answer is not taken for the answer
/// to the next request.
#[test]
fn a_late_programming_session_answer_is_not_taken_for_the_next_answer() {
    let bus = MemBus::new();
    let (a, b) = (standard_id(0x7E0).unwrap(), standard_id(0x7E8).unwrap());
    let ecu_can = bus.node();
    let ecu = std::thread::spawn(move || {
        let mut server = bare_server(&[]);
        let mut ep = Endpoint::new(ecu_can, Config::new(b, a)).unwrap();
        let mut first = true;
        for _ in 0..3 {
            let req = ep.receive(Duration::from_secs(20)).unwrap();
            if std::mem::take(&mut first) {
                // Longer than the tester waits for one attempt (2.5 s).
                std::thread::sleep(Duration::from_secs(3));
            }
            ep.send(&server.handle(&req), Duration::from_secs(5))
                .unwrap();
        }
    });
    let mut tester = Endpoint::new(bus.node(), Config::new(a, b)).unwrap();
    ota_ecu::flasher::enter_programming(&mut tester).unwrap();
    let resp = tester
        .request(
            &ota_ecu::uds::client::read_identification(),
            Duration::from_secs(5),
        )
        .unwrap();
    let id = ota_ecu::uds::client::check(0x22, &resp).expect("the identification, not 50 02");
    assert_eq!(
        ota_ecu::uds::client::parse_identification(id)
            .unwrap()
            .serial
            .as_str(),
        "SN"
    );
    ecu.join().unwrap();
}

/// An ECU without sessions (a bootloader alone, an older one) answers "service not supported":
/// it is in its bootloader already, and the download goes on.
#[test]
fn an_ecu_without_sessions_is_taken_as_in_its_bootloader() {
    let bus = MemBus::new();
    let (a, b) = (standard_id(0x7E0).unwrap(), standard_id(0x7E8).unwrap());
    let ecu_can = bus.node();
    let ecu = std::thread::spawn(move || {
        let mut ep = Endpoint::new(ecu_can, Config::new(b, a)).unwrap();
        let req = ep.receive(Duration::from_secs(20)).unwrap();
        ep.send(&[NEGATIVE, req[0], 0x11], Duration::from_secs(5))
            .unwrap();
        req
    });
    let mut tester = Endpoint::new(bus.node(), Config::new(a, b)).unwrap();
    ota_ecu::flasher::enter_programming(&mut tester).unwrap();
    assert_eq!(ecu.join().unwrap(), [0x10, 0x02]);
}
