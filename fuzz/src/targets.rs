//! The fuzz targets: each takes untrusted bytes the way the shipped code receives them and must
//! return (an error is fine) without panicking, hanging or allocating without bound.

use ota_ecu::bootloader::{Bootloader, Identity};
use ota_ecu::compact_manifest::{CompactManifest, Field, ProvisionedKey};
use ota_ecu::flash::mem::MemFlash;
use ota_ecu::isotp::{standard_id, Config, Frame, Link};
use ota_ecu::uds::{client, Server};
use ota_metadata::documents::compact::{keyid_bytes, sign_compact};
use ota_metadata::documents::vehicles::{check_node, VehicleIndex, VehicleNode};
use ota_metadata::documents::{Attestation, ImageManifest, Review, VehicleVersionReport};
use ota_metadata::roles::{Root, Snapshot, Targets, Timestamp};
use ota_metadata::{DateTime, Envelope, MetadataLimits, SigningKey, TrustedSet};
use std::path::{Path, PathBuf};

/// What a target runs on each input.
pub type Run = Box<dyn FnMut(&[u8])>;

/// A target: what it reads, its seeds and the function run on each input.
pub struct Target {
    pub what: &'static str,
    pub seeds: Vec<Vec<u8>>,
    /// Inputs longer than this are cut (what the shipped code bounds before parsing).
    pub max_len: usize,
    pub run: Run,
}

/// Every `*.json` under the sample trees' `repository/` directories.
fn sample_json(sample: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut stack = vec![sample.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "json")
                && p.to_string_lossy().contains("/repository/")
            {
                if let Ok(b) = std::fs::read(&p) {
                    out.push(b);
                }
            }
        }
    }
    out
}

fn files_ending(sample: &Path, suffix: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut stack = vec![sample.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(suffix) {
                out.extend(std::fs::read(&p));
            }
        }
    }
    out
}

/// Signed metadata as the gateway and `ota-repo verify` read it: the envelope, every role and
/// document type, vehicle tree nodes, and a root as the first trusted root.
pub fn metadata(sample: &Path) -> Target {
    let now = DateTime::parse("2026-12-01T00:00:00Z").unwrap_or(DateTime(0));
    let limits = MetadataLimits::default();
    let chain = Chain::of(&sample.join("oem/repository"), now, limits);
    Target {
        what: "envelope, roles, documents, vehicle nodes, TrustedSet (new root, then each update)",
        seeds: sample_json(sample),
        max_len: 256 * 1024,
        run: Box::new(move |b| {
            if let Ok(env) = Envelope::parse("fuzz", b, b.len() as u64 + 1) {
                let _ = env.decode::<Root>("root", Root::TYPE);
                let _ = env.decode::<Timestamp>("timestamp", Timestamp::TYPE);
                let _ = env.decode::<Snapshot>("snapshot", Snapshot::TYPE);
                let _ = env.decode::<Targets>("targets", Targets::TYPE);
                let _ = env.decode::<Review>("review", Review::TYPE);
                let _ = env.decode::<Attestation>("attestation", Attestation::TYPE);
                let _ = env.decode::<ImageManifest>("manifest", ImageManifest::TYPE);
                let _ = env.decode::<VehicleVersionReport>("report", VehicleVersionReport::TYPE);
                if let Ok(i) = env.decode::<VehicleIndex>("vehicles", VehicleIndex::TYPE) {
                    let _ = i.check();
                }
            }
            let _ = TrustedSet::new(b, now, limits);
            if let Some(c) = &chain {
                c.update_each_step(b);
            }
            // A node is checked at the prefix it is reached at: the one it claims, and the root.
            if let Ok(n) = serde_json_prefix(b) {
                let _ = check_node(b, &n);
            }
            let _ = check_node(b, "");
        }),
    }
}

/// The sample OEM repository as a gateway's trusted set holds it before each step of the
/// TUF client's update (root; then timestamp; then snapshot), so an input is
/// tried as the next root, timestamp, snapshot and targets: the order of checks behind
/// each signature, not only the root's parser.
struct Chain {
    root: TrustedSet,
    timestamp: Option<TrustedSet>,
    snapshot: Option<TrustedSet>,
}

impl Chain {
    fn of(repo: &Path, now: DateTime, limits: MetadataLimits) -> Option<Chain> {
        let read = |name: &str| std::fs::read(repo.join(name)).ok();
        let root = TrustedSet::new(&read("1.root.json")?, now, limits).ok()?;
        let timestamp = read("timestamp.json").and_then(|b| {
            let mut t = root.clone();
            t.update_timestamp(&b).ok().map(|_| t)
        });
        // The newest snapshot the timestamp names.
        let snapshot = timestamp.as_ref().and_then(|t| {
            (1..=9).rev().find_map(|v| {
                let bytes = read(&format!("{v}.snapshot.json"))?;
                let mut s = t.clone();
                s.update_snapshot(&bytes, false).ok().map(|()| s)
            })
        });
        Some(Chain {
            root,
            timestamp,
            snapshot,
        })
    }

    /// Offer `b` as the next root, timestamp, snapshot and targets: which steps took it.
    fn update_each_step(&self, b: &[u8]) -> [bool; 4] {
        [
            self.root.clone().update_root(b).is_ok(),
            self.root.clone().update_timestamp(b).is_ok(),
            self.timestamp
                .as_ref()
                .is_some_and(|t| t.clone().update_snapshot(b, false).is_ok()),
            self.snapshot
                .as_ref()
                .is_some_and(|s| s.clone().update_targets(b).is_ok()),
        ]
    }
}

/// The prefix a node claims, if it parses as a node at all (bounded: it becomes a lookup key).
fn serde_json_prefix(b: &[u8]) -> Result<String, ()> {
    let n: VehicleNode = serde_json::from_slice(b).map_err(|_| ())?;
    if n.prefix.len() <= 64 {
        Ok(n.prefix)
    } else {
        Err(())
    }
}

/// The sample trees' TEST-ONLY keys, built in: the same keys in every process, so an input
/// signed in one run (AFL++'s corpus, a regression) still verifies in the next and keeps
/// reaching the code behind the signature check.
fn fixed_key(which: FixedKey) -> SigningKey {
    let pem = match which {
        FixedKey::Supplier => include_str!("../../sample-repo/keys/acme-targets.TEST-ONLY.pem"),
        FixedKey::Oem => include_str!("../../sample-repo/keys/oem-root.TEST-ONLY.pem"),
        FixedKey::Other => include_str!("../../sample-repo/keys/oem-targets.TEST-ONLY.pem"),
    };
    SigningKey::from_pem(pem).expect("a TEST-ONLY key of the sample trees")
}

#[derive(Clone, Copy)]
enum FixedKey {
    Supplier,
    Oem,
    Other,
}

/// A supplier key, and compact manifests it signed, for the ECU targets.
struct Supplier {
    keys: Vec<ProvisionedKey>,
    manifests: Vec<Vec<u8>>,
}

fn supplier() -> Supplier {
    let key = fixed_key(FixedKey::Supplier);
    let keys = vec![ProvisionedKey {
        keyid: keyid_bytes(key.key_id()).expect("a key id"),
        key: key.rsa_public(),
    }];
    let manifests = [(100u64, 1u64), (5000, 2), (70_000, 3)]
        .iter()
        .filter_map(|&(len, counter)| {
            let m = ImageManifest::new(
                "acme",
                "fw",
                &counter.to_string(),
                counter,
                vec!["HW".into()],
                len,
                [7; 32],
            )
            .ok()?;
            sign_compact(&m.compact_body().ok()?, &[&key]).ok()
        })
        .collect();
    Supplier { keys, manifests }
}

/// The compact manifest as the ECU reads it off the bus: layout, then signatures.
pub fn compact_manifest(sample: &Path) -> Target {
    let s = supplier();
    let mut seeds = files_ending(sample, ".manifest.bin");
    seeds.extend(s.manifests.iter().cloned());
    Target {
        what: "CompactManifest::parse and verify (ECU)",
        seeds,
        max_len: 4096,
        run: Box::new(move |b| {
            if let Ok(m) = CompactManifest::parse(b) {
                let _ = m.verify(&s.keys, 1);
            }
        }),
    }
}

/// Frames as they come off the CAN bus into an ECU's ISO-TP link (the shipped sizes), with
/// time passing and the link's own output drained. Input: frames as `len|0x80 if FD, bytes`.
pub fn isotp() -> Target {
    let seeds: Vec<Vec<u8>> = vec![
        vec![3, 0x02, 0x10, 0x03],
        // A first frame of 20 bytes, then its consecutive frames.
        [
            &[8u8, 0x10, 20, 1, 2, 3, 4, 5, 6][..],
            &[8, 0x21, 7, 8, 9, 10, 11, 12, 13],
            &[8, 0x22, 14, 15, 16, 17, 18, 19, 20],
        ]
        .concat(),
        // CAN FD: an escaped single frame, then a long first frame.
        [
            &[0x80 | 12, 0x00, 10][..],
            &[0; 10],
            &[0x80 | 64, 0x10, 0x00, 0, 0, 0x10, 0],
            &[9; 58],
        ]
        .concat(),
        // A flow control frame (the ECU is not sending: ignored).
        vec![3, 0x30, 0, 0],
    ];
    Target {
        what: "ISO-TP reassembly and flow control (ECU Link<4096, 4096>)",
        seeds,
        max_len: 8192,
        run: Box::new(|b| {
            let (Some(rx), Some(tx)) = (standard_id(0x7E0), standard_id(0x7E8)) else {
                return;
            };
            let Ok(mut link) = Link::<4096, 4096>::new(Config::new(tx, rx)) else {
                return;
            };
            let mut now = 0u64;
            let mut i = 0;
            while i < b.len() {
                let head = b[i];
                let fd = head & 0x80 != 0;
                let len = usize::from(head & 0x7F).min(b.len() - i - 1);
                let data = &b[i + 1..i + 1 + len];
                i += 1 + len;
                if let Some(f) = Frame::new(rx, data, fd) {
                    link.handle_frame(&f, now);
                }
                now += u64::from(head) * 997;
                link.handle_timeout(now);
                while link.poll_transmit(now).is_some() {}
                while link.poll_event().is_some() {
                    let _ = link.received();
                }
            }
        }),
    }
}

/// UDS requests as the ECU's server receives them (after ISO-TP), on a fresh bootloader each
/// time, and the gateway's parsing of ECU responses. Input: requests as `len (2 bytes BE), bytes`.
pub fn uds() -> Target {
    let s = supplier();
    let mut seeds = Vec::new();
    for m in &s.manifests {
        let reqs = [
            client::request_download(m),
            client::transfer_data(1, &[7; 100]),
            client::transfer_exit().to_vec(),
            client::activate(&[7; 32]).to_vec(),
            client::discard().to_vec(),
            client::read_identification().to_vec(),
            client::read_signed_report(&[1; 16]),
        ];
        let mut seed = Vec::new();
        for r in reqs {
            seed.extend((r.len() as u16).to_be_bytes());
            seed.extend(r);
        }
        seeds.push(seed);
    }
    Target {
        what: "the ECU's UDS server (download, transfer, exit, activate, discard, reads) and the gateway's response parsers",
        seeds,
        max_len: 16 * 1024,
        run: Box::new(move |b| {
            let (Some(hw), Some(sn)) = (Field::new("HW"), Field::new("SN")) else {
                return;
            };
            let identity = Identity {
                hardware_id: hw,
                keys: &s.keys,
                threshold: 1,
            };
            let Ok(bl) = Bootloader::new(MemFlash::new(1 << 17), identity) else {
                return;
            };
            let mut server = Server::new(bl, sn);
            let mut i = 0;
            while i + 2 <= b.len() {
                let len = usize::from(u16::from_be_bytes([b[i], b[i + 1]])).min(b.len() - i - 2);
                let req = &b[i + 2..i + 2 + len];
                i += 2 + len;
                let resp = server.handle(req);
                let _ = client::parse_identification(req);
                let _ = client::parse_signed_report(req);
                let _ = client::max_block(req);
                let _ = client::check(0x34, req);
                drop(resp);
            }
        }),
    }
}

/// The gateway's configuration file, as `ota-gateway --config FILE` loads it.
pub fn gateway_config() -> Target {
    let doc = include_str!("../../client/src/config.rs")
        .lines()
        .filter_map(|l| l.strip_prefix("//! "))
        .skip_while(|l| !l.starts_with("vin = "))
        .take_while(|l| !l.starts_with("```"))
        .collect::<Vec<_>>()
        .join("\n");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("gateway.toml");
    Target {
        what: "ota-gateway's TOML configuration",
        seeds: vec![doc.into_bytes()],
        max_len: 64 * 1024,
        run: Box::new(move |b| {
            let _keep = &dir;
            if std::fs::write(&path, b).is_ok() {
                let _ = ota_client::config::Config::load(&path);
            }
        }),
    }
}

/// Every file directly in `dir` (none if it does not exist), sorted by name.
pub fn files_in(dir: &Path) -> Vec<Vec<u8>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_none_or(|e| e != "md"))
        .collect();
    paths.sort();
    paths.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

/// Panics on an input that starts with 0xFF: the harness must report it (fuzz/tests/harness.rs).
pub fn selftest() -> Target {
    Target {
        what: "a target that panics on purpose",
        seeds: vec![b"seed".to_vec()],
        max_len: 64,
        run: Box::new(|b| assert_ne!(b.first(), Some(&0xFF), "the self-test's planted bug")),
    }
}

/// A trust document signed by `signers` (all also its signer set), trusting `supplier`.
fn trust_document(version: u32, supplier: &SigningKey, signers: &[&SigningKey]) -> Vec<u8> {
    use ota_ecu::trust::{assemble, KeySpec, Mode, TrustBody};
    use rsa::traits::PublicKeyParts;
    let moduli: Vec<(Vec<u8>, [u8; 32])> = std::iter::once(supplier)
        .chain(signers.iter().copied())
        .map(|k| {
            let id = keyid_bytes(k.key_id()).unwrap_or([0; 32]);
            (k.rsa_public().n().to_bytes_be(), id)
        })
        .collect();
    fn spec((m, id): &(Vec<u8>, [u8; 32])) -> KeySpec<'_> {
        KeySpec {
            keyid: *id,
            exponent: 65_537,
            modulus: m,
        }
    }
    let suppliers = [spec(&moduli[0])];
    let signer_specs: Vec<KeySpec> = moduli[1..].iter().map(spec).collect();
    let Some(hw) = Field::new("HW") else {
        return Vec::new();
    };
    let body = TrustBody {
        version,
        hardware_id: hw,
        mode: Mode::Full,
        min_release_counter: 0,
        suppliers: (&suppliers, 1),
        regulators: (&suppliers, 1),
        signers: (&signer_specs, 1),
        instruction_keys: &[],
    }
    .encode();
    let sigs: Vec<([u8; 32], Vec<u8>)> = signers
        .iter()
        .filter_map(|k| Some((keyid_bytes(k.key_id()).ok()?, k.sign(&body).ok()?)))
        .collect();
    let refs: Vec<([u8; 32], &[u8])> = sigs.iter().map(|(i, s)| (*i, s.as_slice())).collect();
    assemble(&body, &refs)
}

/// The ECU trust document (provisioning and rotation) and the regulators' attestation bundle,
/// as the ECU receives them over UDS.
pub fn ecu_trust() -> Target {
    use ota_ecu::trust::TrustDocument;
    let (a, b) = (fixed_key(FixedKey::Oem), fixed_key(FixedKey::Other));
    let v1 = trust_document(1, &a, &[&a]);
    let v2 = trust_document(2, &b, &[&a, &b]);
    let held = TrustDocument::provision(&v1, "HW").ok();
    let s = supplier();
    let body = s
        .manifests
        .first()
        .and_then(|m| CompactManifest::parse(m).ok())
        .map(|m| m.body_bytes);
    let bundle = body
        .and_then(|body| {
            let sig = a.sign(&ota_ecu::attestation::message(&body)).ok()?;
            let id = keyid_bytes(a.key_id()).ok()?;
            Some(ota_ecu::attestation::assemble(&[(id, sig.as_slice())]))
        })
        .unwrap_or_default();
    Target {
        what: "ECU trust document (provision, rotate) and regulator attestation bundle",
        seeds: vec![v1, v2, bundle],
        max_len: 8192,
        run: Box::new(move |b| {
            let _ = TrustDocument::provision(b, "HW");
            if let Some(h) = &held {
                let _ = h.accept(b);
                if let Some(body) = &body {
                    let _ = ota_ecu::attestation::verify(b, body, &h.regulators);
                }
            }
            let _ = ota_ecu::attestation::parse(b);
        }),
    }
}

/// What a gateway reads for an encrypted image: the encrypted stream (decrypted while it
/// downloads, then checked against the manifest), a shard of wrapped content keys, and the
/// vehicle's key file; and what the OEM reads from a supplier, the content-key file.
pub fn image_crypt() -> Target {
    use ota_crypt::plain::PlainWriter;
    use ota_crypt::receiver::{PathKeys, ReceiverKeys};
    use ota_crypt::subtree::{Secret, Tree};
    use ota_crypt::wrap_set::{Shard, WrapSet};
    use ota_crypt::{stream, Key};
    use sha2::{Digest, Sha256};
    let content = Key([7; 32]);
    let plain: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
    let sha: [u8; 32] = Sha256::digest(&plain).into();
    let mut ct = Vec::new();
    let _ = stream::encrypt(&content, &mut &plain[..], 5000, &mut ct, 1024);
    let secret = Secret(Key([9; 32]));
    let Ok(tree) = Tree::new(8) else {
        return selftest();
    };
    let Ok(mine) = PathKeys::issue(&secret, tree, 3) else {
        return selftest();
    };
    let Ok(file) =
        ReceiverKeys::issue(&secret, &[("hw:BRAKE-A", tree, 3), ("regulators", tree, 1)])
    else {
        return selftest();
    };
    let shards: Vec<Vec<u8>> = WrapSet::build(&secret, tree, &[1, 200].into(), &content, &sha, 4)
        .map(|s| s.shards.values().map(Shard::encode).collect())
        .unwrap_or_default();
    let content_key = ota_crypt::content_key::ContentKey {
        uid: "brake-fw".into(),
        version: "1.0".into(),
        image_sha256: sha,
        key: Key([7; 32]),
    };
    let mut seeds = vec![ct, file.to_json(), content_key.to_json()];
    seeds.extend(shards);
    Target {
        what: "encrypted image stream, wrapped-key shard, vehicle key file, content-key file",
        seeds,
        max_len: 16 * 1024,
        run: Box::new(move |b| {
            let want = ota_crypt::plain::Expected {
                length: 5000,
                sha256: sha,
                chunk_size: 1024,
            };
            let mut w = PlainWriter::new(&content, std::io::sink(), want);
            // As a download delivers it, in uneven pieces.
            let ok = b.chunks(777).all(|c| w.update(c).is_ok());
            if ok {
                let _ = w.finish();
            }
            if let Ok(s) = Shard::parse(b) {
                let wraps: Vec<&[u8]> = s.wraps.iter().map(|w| &w[..]).collect();
                let _ = mine.open(s.depth, &wraps, &s.image_sha256);
            }
            let _ = ReceiverKeys::parse(b);
            let _ = ota_crypt::content_key::ContentKey::parse(b);
        }),
    }
}

/// What the emulated ECU reads off its serial line (SLCAN lines, split by its bounded decoder)
/// and off its flash's factory sector; and the bridge's side of the same lines.
pub fn serial_line() -> Target {
    let key = fixed_key(FixedKey::Supplier).rsa_public();
    let mut factory = ota_ecu::factory::build("BRK-1", "BRAKE-A", &[([7; 32], key)], 1)
        .expect("a factory record");
    factory.resize(600, 0xFF);
    Target {
        what: "slcan::Decoder (UART lines) and factory::parse (ECU)",
        seeds: vec![
            b"t7E080322F1A0CCCCCCCC\rS6\rO\rd7E0F".to_vec(),
            b"T18DAF1108021001000000000000\rt1230\r".to_vec(),
            factory,
        ],
        max_len: 8192,
        run: Box::new(|b| {
            let mut d = ota_ecu::slcan::Decoder::default();
            let mut out = [0u8; ota_ecu::slcan::MAX_LINE + 1];
            for &x in b {
                if let Some(ota_ecu::slcan::Line::Frame(f)) = d.push(x) {
                    // What decodes encodes again, and back to the same frame.
                    let n = ota_ecu::slcan::encode(&f, &mut out).expect("a decoded frame encodes");
                    assert_eq!(
                        ota_ecu::slcan::decode(&out[..n - 1]),
                        Some(ota_ecu::slcan::Line::Frame(f))
                    );
                }
            }
            let _ = ota_ecu::factory::parse(b);
        }),
    }
}

/// A 32-bit little-endian ELF of two loadable segments and one that is not, as a linker makes
/// for a microcontroller.
fn small_elf() -> Vec<u8> {
    let segments: [(u32, u32, &[u8]); 3] = [
        (
            1,
            0x8_0000,
            &[0xE0, 0xFF, 0x00, 0x20, 0x01, 0x04, 0x08, 0x00],
        ),
        (0x6474_e551, 0, &[]),
        (1, 0x8_0400, &[0x70, 0x47, 0x00, 0xBF]),
    ];
    let mut out = vec![0u8; 52];
    out[..6].copy_from_slice(&[0x7F, b'E', b'L', b'F', 1, 1]);
    out[28..32].copy_from_slice(&52u32.to_le_bytes());
    out[42..44].copy_from_slice(&32u16.to_le_bytes());
    out[44..46].copy_from_slice(&3u16.to_le_bytes());
    let mut at = 52 + 32 * 3;
    let mut bodies = Vec::new();
    for (kind, addr, bytes) in segments {
        let mut ph = [0u8; 32];
        ph[..4].copy_from_slice(&kind.to_le_bytes());
        ph[4..8].copy_from_slice(&(at as u32).to_le_bytes());
        ph[8..12].copy_from_slice(&addr.to_le_bytes());
        ph[12..16].copy_from_slice(&addr.to_le_bytes());
        ph[16..20].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&ph);
        bodies.extend_from_slice(bytes);
        at += bytes.len();
    }
    out.extend_from_slice(&bodies);
    out
}

pub fn elf() -> Target {
    Target {
        what: "elf::image (the ELF a supplier turns into an ECU image)",
        seeds: vec![small_elf()],
        max_len: 4096,
        run: Box::new(|b| {
            if let Ok((base, image)) = ota_ecu::elf::image(b) {
                assert!(image.len() <= ota_ecu::elf::MAX_IMAGE);
                assert!(u64::from(base) + image.len() as u64 <= 1 << 33);
            }
        }),
    }
}

/// The base every `delta` input is applied to: 4 KiB like code.
fn delta_base() -> Vec<u8> {
    (0..4096u32)
        .map(|i| [0x2D, 0xE9, (i / 64) as u8, (i * 7 / 512) as u8][(i % 4) as usize])
        .collect()
}

/// The ECU's decoder of packed images and deltas (`ota_ecu::delta`), as the bootloader feeds
/// it: the first byte picks the encoding, the rest arrives in 61-byte pieces; what comes out
/// never exceeds the limit, and nothing panics or spins.
pub fn delta() -> Target {
    use ota_ecu::delta::{make, Encoding};
    let base = delta_base();
    let mut new = base.clone();
    new[100] ^= 0x55;
    new.splice(2000..2000, *b"inserted");
    let mut seeds = Vec::new();
    for (tag, data) in [
        (0u8, make::delta(&base, &new)),
        (1u8, make::packed(&new)),
        (0u8, make::delta(&base, &[])),
    ] {
        let mut s = vec![tag];
        s.extend_from_slice(&data);
        seeds.push(s);
    }
    Target {
        what: "delta::Decoder (packed images and deltas the ECU rebuilds)",
        seeds,
        max_len: 4096,
        run: Box::new(move |b| {
            let Some((&tag, data)) = b.split_first() else {
                return;
            };
            let encoding = if tag & 1 == 0 {
                Encoding::Delta
            } else {
                Encoding::Packed
            };
            const LIMIT: u64 = 64 * 1024;
            if let Ok(out) = make::apply(encoding, &base, data, LIMIT, 61) {
                assert!(out.len() as u64 <= LIMIT);
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample OEM repository's timestamp and snapshot verify under its root at the
    /// metadata target's date, so fuzzed inputs reach every step, not only the root's parser.
    #[test]
    fn the_metadata_target_holds_the_sample_chain_at_each_step() {
        let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sample-repo");
        let now = DateTime::parse("2026-12-01T00:00:00Z").unwrap();
        let chain = Chain::of(
            &sample.join("oem/repository"),
            now,
            MetadataLimits::default(),
        )
        .expect("the sample root");
        assert!(chain.timestamp.is_some(), "the sample timestamp verifies");
        assert!(chain.snapshot.is_some(), "the sample snapshot verifies");
        // Each real file is taken at its own step and refused at the others, so an input
        // reaches every update rule (a target that stopped offering one would fail here).
        let read = |name: &str| std::fs::read(sample.join("oem/repository").join(name)).unwrap();
        let targets = (1..=9)
            .rev()
            .map(|v| format!("{v}.targets.json"))
            .find(|n| sample.join("oem/repository").join(n).exists())
            .unwrap();
        assert_eq!(
            chain.update_each_step(&read("timestamp.json")),
            [false, true, false, false]
        );
        assert_eq!(
            chain.update_each_step(&read(&targets)),
            [false, false, false, true],
            "{targets}"
        );
        assert_eq!(chain.update_each_step(b"{}"), [false; 4]);
    }
}
