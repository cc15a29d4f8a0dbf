//! The ECU simulator as a separate process on the UDP bus, driven by a tester in this process:
//! a download leaves a verified pending image that survives a kill of the ECU process and runs
//! only once activated; the activation survives a kill too; a refused download (or a flash
//! that fails) leaves the image as it was.

use ota_ecu::bus::udp::UdpBus;
use ota_ecu::flasher::{activate, discard, flash_image, FlashError};
use ota_ecu::isotp::{standard_id, Config, Mode};
use ota_ecu::transport::Endpoint;
use ota_ecu::uds::{client, Nrc};
use ota_metadata::documents::compact::sign_compact;
use ota_metadata::documents::ImageManifest;
use ota_metadata::SigningKey;
use sha2::{Digest, Sha256};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn free_port() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

struct Sim(Child);
impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(me: SocketAddr, tester: SocketAddr, key: &Path, flash: &Path) -> Sim {
    start_with(me, tester, key, flash, &[])
}

fn start_with(me: SocketAddr, tester: SocketAddr, key: &Path, flash: &Path, extra: &[&str]) -> Sim {
    let child = Command::new(env!("CARGO_BIN_EXE_ota-ecu-sim"))
        .args([
            "--bind",
            &me.to_string(),
            "--peer",
            &tester.to_string(),
            "--serial",
            "ECU-9",
            "--hardware-id",
            "HW-1",
        ])
        .arg("--supplier-key")
        .arg(key)
        .arg("--flash-dir")
        .arg(flash)
        .args(["--rx-id", "0x7E0", "--tx-id", "0x7E8", "--fd"])
        .args(extra)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    Sim(child)
}

fn tester(me: SocketAddr, ecu: SocketAddr) -> Endpoint<UdpBus> {
    let bus = UdpBus::bind(me, vec![ecu]).unwrap();
    let mut cfg = Config::new(standard_id(0x7E0).unwrap(), standard_id(0x7E8).unwrap());
    cfg.mode = Mode::FD64;
    Endpoint::new(bus, cfg).unwrap()
}

/// Ask for the identification until the simulator answers (it may still be starting).
fn identification(ep: &mut Endpoint<UdpBus>) -> ota_ecu::uds::Identification {
    for _ in 0..50 {
        if let Ok(resp) = ep.request(&client::read_identification(), Duration::from_millis(200)) {
            let payload = client::check(ota_ecu::uds::READ_DATA_BY_ID, &resp).unwrap();
            return client::parse_identification(payload).unwrap();
        }
    }
    panic!("the ECU simulator did not answer");
}

#[test]
fn download_to_a_simulator_process() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate(2048).unwrap();
    let pubkey = dir.path().join("supplier.pub.pem");
    std::fs::write(
        &pubkey,
        ota_metadata::signing::public_pem(&key.rsa_public()).unwrap(),
    )
    .unwrap();
    let flash = dir.path().join("flash");
    let (me, ecu) = (free_port(), free_port());
    let sim = start(ecu, me, &pubkey, &flash);
    let mut ep = tester(me, ecu);
    assert!(identification(&mut ep).image.is_none());

    let img: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let m = ImageManifest::new(
        "acme",
        "fw",
        "3.1",
        7,
        vec!["HW-1".into()],
        img.len() as u64,
        Sha256::digest(&img).into(),
    )
    .unwrap();
    let compact = sign_compact(&m.compact_body().unwrap(), &[&key]).unwrap();
    flash_image(
        &mut ep,
        &compact,
        &mut img.as_slice(),
        img.len() as u64,
        |_| {},
    )
    .unwrap();

    // Kill the ECU process (SIGKILL) and start it again: the image is verified and pending,
    // not running.
    drop(sim);
    let sim = start(ecu, me, &pubkey, &flash);
    assert!(
        identification(&mut ep).image.is_none(),
        "pending is not active"
    );
    let sha: [u8; 32] = Sha256::digest(&img).into();
    activate(&mut ep, &sha).unwrap();
    // Again: the activation and the counter persist in its flash files; activating again is
    // harmless.
    drop(sim);
    let sim = start(ecu, me, &pubkey, &flash);
    assert_eq!(identification(&mut ep).image.unwrap().1.as_str(), "3.1");
    activate(&mut ep, &sha).unwrap();
    let id = identification(&mut ep);
    let (uid, version) = id.image.unwrap();
    assert_eq!(
        (uid.as_str(), version.as_str(), id.release_counter),
        ("fw", "3.1", 7)
    );
    assert_eq!(id.sha256, <[u8; 32]>::from(Sha256::digest(&img)));

    // A wrong hardware id is refused before any data; the image stays.
    let wrong = ImageManifest::new(
        "acme",
        "fw",
        "3.2",
        8,
        vec!["HW-2".into()],
        10,
        Sha256::digest([0u8; 10]).into(),
    )
    .unwrap();
    let compact = sign_compact(&wrong.compact_body().unwrap(), &[&key]).unwrap();
    let err = flash_image(&mut ep, &compact, &mut &[0u8; 10][..], 10, |_| {}).unwrap_err();
    assert!(
        matches!(
            err,
            FlashError::Refused {
                nrc: Some(Nrc::WrongHardwareId),
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(identification(&mut ep).image.unwrap().1.as_str(), "3.1");

    // A verified 3.2 pending, then discarded: 3.1 stays, and 3.2 cannot be activated.
    let img2 = vec![0x5Au8; 3000];
    let m2 = ImageManifest::new(
        "acme",
        "fw",
        "3.2",
        8,
        vec!["HW-1".into()],
        img2.len() as u64,
        Sha256::digest(&img2).into(),
    )
    .unwrap();
    let compact2 = sign_compact(&m2.compact_body().unwrap(), &[&key]).unwrap();
    flash_image(&mut ep, &compact2, &mut img2.as_slice(), 3000, |_| {}).unwrap();
    discard(&mut ep).unwrap();
    let err = activate(&mut ep, &Sha256::digest(&img2).into()).unwrap_err();
    assert!(
        matches!(
            err,
            FlashError::Refused {
                nrc: Some(Nrc::NothingPending),
                ..
            }
        ),
        "{err}"
    );

    // The same ECU with a failing flash refuses the download; 3.1 stays.
    drop(sim);
    let _sim = start_with(ecu, me, &pubkey, &flash, &["--flash-fault"]);
    assert_eq!(identification(&mut ep).image.unwrap().1.as_str(), "3.1");
    let err = flash_image(&mut ep, &compact2, &mut img2.as_slice(), 3000, |_| {}).unwrap_err();
    assert!(
        matches!(
            err,
            FlashError::Refused {
                nrc: Some(Nrc::ProgrammingFailure),
                ..
            }
        ),
        "{err}"
    );
    let id = identification(&mut ep);
    assert_eq!(
        (id.image.unwrap().1.as_str(), id.release_counter),
        ("3.1", 7)
    );
}
