//! Frame-level, state-machine, round-trip and randomized tests of the ISO-TP layer.

extern crate std;

use super::*;
use std::vec;
use std::vec::Vec as StdVec;

const TESTER: u16 = 0x7E0;
const ECU: u16 = 0x7E8;

fn sid(raw: u16) -> Id {
    standard_id(raw).unwrap()
}

/// The ECU side of a link: receives on 0x7E0, sends on 0x7E8.
fn ecu_cfg() -> Config {
    Config::new(sid(ECU), sid(TESTER))
}

/// The tester side: the mirror image.
fn tester_cfg() -> Config {
    Config::new(sid(TESTER), sid(ECU))
}

/// A frame as the peer of `link` would send it.
fn inject<const T: usize, const R: usize>(link: &mut Link<T, R>, data: &[u8], now: u64) -> bool {
    let f = Frame {
        id: link.config().rx_id,
        data: heapless::Vec::from_slice(data).unwrap(),
        fd: data.len() > 8,
    };
    link.handle_frame(&f, now)
}

fn events<const T: usize, const R: usize>(link: &mut Link<T, R>) -> StdVec<Event> {
    core::iter::from_fn(|| link.poll_event()).collect()
}

fn out<const T: usize, const R: usize>(link: &mut Link<T, R>, now: u64) -> StdVec<StdVec<u8>> {
    core::iter::from_fn(|| link.poll_transmit(now))
        .map(|f| f.data.to_vec())
        .collect()
}

fn pattern(len: usize, seed: u32) -> StdVec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) as u8 ^ (i >> 8) as u8)
        .collect()
}

/// Deterministic xorshift64 generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn bytes(&mut self, n: usize) -> StdVec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Run in a thread with a large stack: links holding 100 kB buffers are built on the stack
/// in debug builds.
fn big_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

// ---------------------------------------------------------------------------------------
// Frame level: encode/decode round trips.

#[test]
fn single_frame_round_trips_classic_and_fd() {
    for n in 1..=7 {
        let msg = pattern(n, 1);
        for padding in [None, Some(0xCC), Some(0x00)] {
            let data = Pdu::Single { data: &msg }.encode(padding).unwrap();
            assert_eq!(data[0], n as u8);
            assert_eq!(data.len(), if padding.is_some() { 8 } else { n + 1 });
            assert_eq!(Pdu::decode(&data), Ok(Pdu::Single { data: &msg }));
        }
    }
    for n in 8..=62 {
        let msg = pattern(n, 2);
        let data = Pdu::Single { data: &msg }.encode(None).unwrap();
        assert_eq!(&data[..2], &[0x00, n as u8]);
        assert_eq!(data.len(), round_up_dl(n + 2).unwrap());
        assert!(data[n + 2..].iter().all(|&b| b == DEFAULT_PADDING));
        assert_eq!(Pdu::decode(&data), Ok(Pdu::Single { data: &msg }));
        let padded = Pdu::Single { data: &msg }.encode(Some(0xAA)).unwrap();
        assert!(padded[n + 2..].iter().all(|&b| b == 0xAA));
    }
    // 63 bytes do not fit a single frame.
    assert_eq!(Pdu::Single { data: &[0; 63] }.encode(None), None);
    assert_eq!(Pdu::Single { data: &[] }.encode(None), None);
}

#[test]
fn first_frame_round_trips() {
    let payload = pattern(64, 3);
    // (announced length, frame length): classic 12-bit, classic escape, FD 12-bit, FD escape.
    for (len, dl) in [
        (8u32, 8usize),
        (4095, 8),
        (4096, 8),
        (100_000, 8),
        (u32::MAX, 8),
        (63, 64),
        (4095, 64),
        (4096, 64),
        (1 << 20, 64),
        (11, 12),
    ] {
        let cap = first_frame_capacity(dl, u64::from(len));
        let pdu = Pdu::First {
            len,
            data: &payload[..cap],
        };
        let data = pdu.encode(Some(0xCC)).unwrap();
        assert_eq!(data.len(), dl, "len {len} dl {dl}");
        if len > 4095 {
            assert_eq!(&data[..2], &[0x10, 0x00]);
            assert_eq!(&data[2..6], &len.to_be_bytes());
        } else {
            assert_eq!(data[0], 0x10 | (len >> 8) as u8);
            assert_eq!(data[1], len as u8);
        }
        assert_eq!(Pdu::decode(&data), Ok(pdu));
    }
}

#[test]
fn consecutive_and_flow_control_round_trips() {
    let payload = pattern(63, 4);
    for sn in 0..16u8 {
        for n in [1usize, 6, 7, 11, 63] {
            let pdu = Pdu::Consecutive {
                sn,
                data: &payload[..n],
            };
            let data = pdu.encode(None).unwrap();
            assert_eq!(data[0], 0x20 | sn);
            let Ok(Pdu::Consecutive {
                sn: got,
                data: body,
            }) = Pdu::decode(&data)
            else {
                panic!("not a CF");
            };
            assert_eq!(got, sn);
            // Padding up to the CAN FD size is part of the frame; the receiver trims it.
            assert_eq!(&body[..n], &payload[..n]);
            assert!(body[n..].iter().all(|&b| b == DEFAULT_PADDING));
        }
    }
    for status in [
        FlowStatus::ContinueToSend,
        FlowStatus::Wait,
        FlowStatus::Overflow,
    ] {
        for bs in [0u8, 1, 8, 255] {
            for st in [0u8, 0x7F, 0x80, 0xF1, 0xF9, 0xFF] {
                let pdu = Pdu::FlowControl {
                    status,
                    block_size: bs,
                    st_min: StMin::from_raw(st),
                };
                for padding in [None, Some(0xCC)] {
                    let data = pdu.encode(padding).unwrap();
                    assert_eq!(&data[..3], &[0x30 | status as u8, bs, st]);
                    assert_eq!(data.len(), if padding.is_some() { 8 } else { 3 });
                    assert_eq!(Pdu::decode(&data), Ok(pdu));
                }
            }
        }
    }
}

#[test]
fn malformed_frames_are_rejected() {
    use PduError::*;
    let cases: &[(&[u8], PduError)] = &[
        (&[], Empty),
        (&[0x40, 0, 0, 0, 0, 0, 0, 0], UnknownType(4)),
        (&[0xF0], UnknownType(15)),
        // SF_DL 0 in a classic-sized frame (the escape needs CAN_DL > 8).
        (&[0x00, 1, 2, 3, 4, 5, 6, 7], BadSingleLength),
        (&[0x00, 0x05, 1, 2, 3, 4, 5, 0xCC], BadSingleLength),
        // SF_DL longer than the frame.
        (&[0x05, 1, 2, 3], BadSingleLength),
        (&[0x08, 1, 2, 3, 4, 5, 6, 7], BadSingleLength),
        (&[0x01], BadSingleLength),
        // First frame shorter than 8 bytes, FF_DL below FF_DLmin.
        (&[0x10, 20, 1, 2, 3, 4, 5], BadFirstLength),
        (&[0x10, 7, 1, 2, 3, 4, 5, 6], BadFirstLength),
        // Escape with a length the 12-bit field holds.
        (&[0x10, 0x00, 0, 0, 0x0F, 0xFF, 1, 2], EscapeMisuse),
        (&[0x10, 0x00, 0, 0, 0, 0, 1, 2], EscapeMisuse),
        (&[0x10, 0x00, 0, 0, 0, 8, 1, 2], EscapeMisuse),
        // Truncated CF and FC, reserved flow status.
        (&[0x21], Truncated),
        (&[0x30, 0], Truncated),
        (&[0x30], Truncated),
        (&[0x33, 0, 0], BadFlowStatus(3)),
        (
            &[0x3F, 0, 0, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC],
            BadFlowStatus(15),
        ),
    ];
    for (data, want) in cases {
        assert_eq!(Pdu::decode(data), Err(*want), "{data:02x?}");
    }
    // CAN FD sizes: lengths that are not a DLC size, and over 64.
    assert_eq!(Pdu::decode(&[0x01; 13]), Err(BadDataLength(13)));
    assert_eq!(Pdu::decode(&[0x01; 65]), Err(BadDataLength(65)));
    // FD single frame: classic nibble in a long frame, SF_DL 0 or beyond the frame.
    let mut fd = [0xCCu8; 12];
    fd[0] = 0x03;
    assert_eq!(Pdu::decode(&fd), Err(BadSingleLength));
    fd[0] = 0x00;
    fd[1] = 0;
    assert_eq!(Pdu::decode(&fd), Err(BadSingleLength));
    fd[1] = 11;
    assert_eq!(Pdu::decode(&fd), Err(BadSingleLength));
    fd[1] = 10;
    assert!(matches!(Pdu::decode(&fd), Ok(Pdu::Single { data }) if data.len() == 10));
    // FD first frame: FF_DL must be at least RX_DL - 1.
    let mut ff = [0u8; 64];
    ff[0] = 0x10;
    ff[1] = 62;
    assert_eq!(Pdu::decode(&ff), Err(BadFirstLength));
    ff[1] = 63;
    assert!(matches!(Pdu::decode(&ff), Ok(Pdu::First { len: 63, .. })));
    // A well-formed escape in a classic frame.
    let esc = [0x10, 0x00, 0, 0, 0x10, 0x00, 1, 2];
    assert_eq!(
        Pdu::decode(&esc),
        Ok(Pdu::First {
            len: 4096,
            data: &[1, 2]
        })
    );
}

#[test]
fn st_min_encoding() {
    let cases = [
        (0x00u8, 0u32, false),
        (0x01, 1_000, false),
        (0x7F, 127_000, false),
        (0x80, 127_000, true),
        (0xF0, 127_000, true),
        (0xF1, 100, false),
        (0xF5, 500, false),
        (0xF9, 900, false),
        (0xFA, 127_000, true),
        (0xFF, 127_000, true),
    ];
    for (raw, us, reserved) in cases {
        let s = StMin::from_raw(raw);
        assert_eq!(s.as_micros(), us, "{raw:#x}");
        assert_eq!(s.is_reserved(), reserved, "{raw:#x}");
    }
    for raw in 0..=255u8 {
        let s = StMin::from_raw(raw);
        assert!(s.as_micros() <= 127_000);
        if !s.is_reserved() {
            assert_eq!(StMin::from_micros(s.as_micros()), s, "{raw:#x}");
        }
    }
    assert_eq!(StMin::from_micros(1).raw(), 0xF1);
    assert_eq!(StMin::from_micros(101).raw(), 0xF2);
    assert_eq!(StMin::from_micros(901).raw(), 0x01);
    assert_eq!(StMin::from_micros(1_001).raw(), 0x02);
    assert_eq!(StMin::from_micros(10_000_000).raw(), 0x7F);
}

#[test]
fn dlc_helpers() {
    for dlc in 0..=15u8 {
        let len = dlc_to_len(dlc).unwrap();
        assert_eq!(len_to_dlc(len), Some(dlc));
        assert!(is_valid_dl(len));
    }
    assert_eq!(dlc_to_len(16), None);
    assert_eq!(len_to_dlc(13), None);
    assert_eq!(round_up_dl(0), Some(0));
    assert_eq!(round_up_dl(8), Some(8));
    assert_eq!(round_up_dl(9), Some(12));
    assert_eq!(round_up_dl(33), Some(48));
    assert_eq!(round_up_dl(64), Some(64));
    assert_eq!(round_up_dl(65), None);
}

#[test]
fn frame_counts() {
    let f = |len, dl| frames_for_message(len, dl).unwrap();
    assert_eq!(f(1, 8), 1);
    assert_eq!(f(7, 8), 1);
    assert_eq!(f(8, 8), 2);
    assert_eq!(f(13, 8), 2);
    assert_eq!(f(14, 8), 3);
    assert_eq!(f(4095, 8), 1 + (4095 - 6u64).div_ceil(7));
    assert_eq!(f(4096, 8), 1 + (4096 - 2u64).div_ceil(7));
    assert_eq!(f(1 << 20, 8), 149_798);
    assert_eq!(f(62, 64), 1);
    assert_eq!(f(63, 64), 2);
    assert_eq!(f(1 << 20, 64), 1 + ((1u64 << 20) - 58).div_ceil(63));
    assert_eq!(f(10, 12), 1);
    assert_eq!(f(11, 12), 2);
    assert_eq!(frames_for_message(0, 8), None);
    assert_eq!(frames_for_message(10, 13), None);
    assert_eq!(frames_for_message(1 << 33, 8), None);
    assert_eq!(flow_control_frames(7, 8, 0), Some(0));
    assert_eq!(flow_control_frames(100, 8, 0), Some(1));
    // 100 bytes classic: FF + 14 CFs; BS 4 -> FCs before blocks of 4, 4, 4, 2.
    assert_eq!(flow_control_frames(100, 8, 4), Some(4));
    assert_eq!(flow_control_frames(100, 8, 1), Some(14));
}

/// A classic-only driver frame type, to check the generic conversions.
#[derive(Debug, PartialEq)]
struct DriverFrame {
    id: Id,
    data: StdVec<u8>,
    remote: bool,
}

impl embedded_can::Frame for DriverFrame {
    fn new(id: impl Into<Id>, data: &[u8]) -> Option<Self> {
        (data.len() <= 8).then(|| DriverFrame {
            id: id.into(),
            data: data.to_vec(),
            remote: false,
        })
    }
    fn new_remote(id: impl Into<Id>, dlc: usize) -> Option<Self> {
        (dlc <= 8).then(|| DriverFrame {
            id: id.into(),
            data: vec![],
            remote: true,
        })
    }
    fn is_extended(&self) -> bool {
        matches!(self.id, Id::Extended(_))
    }
    fn is_remote_frame(&self) -> bool {
        self.remote
    }
    fn id(&self) -> Id {
        self.id
    }
    fn dlc(&self) -> usize {
        self.data.len()
    }
    fn data(&self) -> &[u8] {
        &self.data
    }
}

#[test]
fn frame_type_and_embedded_can_conversions() {
    let ext = extended_id(0x18DA_F110).unwrap();
    assert!(standard_id(0x800).is_none());
    assert!(extended_id(0x2000_0000).is_none());
    assert_eq!(raw_id(ext), 0x18DA_F110);

    assert!(Frame::new(ext, &[0; 9], false).is_none());
    assert!(Frame::new(ext, &[0; 13], true).is_none());
    assert!(Frame::new(ext, &[0; 65], true).is_none());
    let f = Frame::new(ext, &[1, 2, 3], false).unwrap();
    assert!(f.is_extended() && f.is_valid());
    assert_eq!(f.raw_id(), 0x18DA_F110);

    let d: DriverFrame = f.to_can().unwrap();
    assert_eq!(d.data, [1, 2, 3]);
    assert_eq!(Frame::from_can(&d).unwrap(), f);
    let fd = Frame::new(sid(0x123), &[7; 12], true).unwrap();
    assert!(fd.to_can::<DriverFrame>().is_none());
    let remote = <DriverFrame as embedded_can::Frame>::new_remote(sid(1), 2).unwrap();
    assert!(Frame::from_can(&remote).is_none());

    // The owned type is itself an embedded-can frame (for in-memory and UDP buses).
    let g = <Frame as embedded_can::Frame>::new(sid(0x7E0), &[9; 64]).unwrap();
    assert!(g.fd);
    assert_eq!(embedded_can::Frame::dlc(&g), 64);
    assert!(<Frame as embedded_can::Frame>::new(sid(0x7E0), &[9; 20]).is_some());
    assert!(<Frame as embedded_can::Frame>::new(sid(0x7E0), &[9; 21]).is_none());
    assert!(<Frame as embedded_can::Frame>::new_remote(sid(0x7E0), 1).is_none());
    let back: Frame = g.to_can().unwrap();
    assert_eq!(back, g);
}

#[test]
fn config_validation() {
    assert!(Link::<8, 8>::new(ecu_cfg()).is_ok());
    let mut c = ecu_cfg();
    c.mode = Mode::Fd { tx_dl: 13 };
    assert_eq!(Link::<8, 8>::new(c).err(), Some(ConfigError::BadTxDl(13)));
    c.mode = Mode::Fd { tx_dl: 48 };
    assert!(Link::<8, 8>::new(c).is_ok());
    c.rx_id = c.tx_id;
    assert_eq!(Link::<8, 8>::new(c).err(), Some(ConfigError::SameIds));
}

// ---------------------------------------------------------------------------------------
// The sender.

#[test]
fn sender_single_frames() {
    let mut l = Link::<128, 8>::new(tester_cfg()).unwrap();
    l.send(&[1, 2, 3, 4, 5], 0).unwrap();
    assert_eq!(l.poll_timeout(), Some(0));
    let f = l.poll_transmit(0).unwrap();
    assert_eq!(f.id, sid(TESTER));
    assert!(!f.fd);
    assert_eq!(&f.data[..], &[5, 1, 2, 3, 4, 5, 0xCC, 0xCC]);
    assert_eq!(l.poll_transmit(0), None);
    assert_eq!(events(&mut l), [Event::Sent { len: 5 }]);
    assert!(l.is_tx_idle());
    assert_eq!(l.poll_timeout(), None);

    let mut c = tester_cfg();
    c.padding = None;
    let mut l = Link::<128, 8>::new(c).unwrap();
    l.send(&[9; 7], 0).unwrap();
    assert_eq!(out(&mut l, 0), [vec![7, 9, 9, 9, 9, 9, 9, 9]]);

    let mut c = tester_cfg();
    c.mode = Mode::FD64;
    let mut l = Link::<128, 8>::new(c).unwrap();
    l.send(&[4; 20], 0).unwrap();
    let f = l.poll_transmit(0).unwrap();
    assert!(f.fd);
    assert_eq!(f.data.len(), 24);
    assert_eq!(&f.data[..2], &[0x00, 20]);
    assert_eq!(&f.data[22..], &[0xCC, 0xCC]);
    l.send(&[5; 62], 0).unwrap();
    assert_eq!(out(&mut l, 0)[0].len(), 64);
    // 63 bytes need a first frame.
    l.send(&[6; 63], 0).unwrap();
    let ff = out(&mut l, 0);
    assert_eq!(ff.len(), 1);
    assert_eq!(&ff[0][..2], &[0x10, 63]);
}

#[test]
fn sender_refuses_bad_requests() {
    let mut l = Link::<16, 8>::new(tester_cfg()).unwrap();
    assert_eq!(l.send(&[], 0), Err(SendError::Empty));
    assert_eq!(
        l.send(&[0; 17], 0),
        Err(SendError::TooLong { len: 17, max: 16 })
    );
    l.send(&[0; 16], 0).unwrap();
    assert_eq!(l.send(&[1], 0), Err(SendError::Busy));
}

#[test]
fn sender_block_size_st_min_and_sequence_numbers() {
    let mut l = Link::<256, 8>::new(tester_cfg()).unwrap();
    let msg = pattern(200, 5);
    l.send(&msg, 1_000).unwrap();
    let ff = out(&mut l, 1_000);
    assert_eq!(ff, [[&[0x10, 200][..], &msg[..6]].concat()]);
    // Waiting for flow control: nothing to send, the N_Bs deadline is next.
    assert_eq!(out(&mut l, 5_000), StdVec::<StdVec<u8>>::new());
    assert_eq!(l.poll_timeout(), Some(1_000 + DEFAULT_TIMEOUT_US));

    // CTS, BS 3, STmin 10 ms: the first CF at once, the next two 10 ms apart.
    let mut t = 10_000;
    assert!(inject(
        &mut l,
        &[0x30, 3, 10, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC],
        t
    ));
    let mut got = msg[..6].to_vec();
    let mut sns = vec![];
    let mut cf = |l: &mut Link<256, 8>, t: u64| {
        let f = l.poll_transmit(t).expect("CF due");
        assert_eq!(f.data[0] >> 4, 2);
        sns.push(f.data[0] & 0xF);
        got.extend_from_slice(&f.data[1..]);
    };
    cf(&mut l, t);
    assert_eq!(l.poll_transmit(t + 9_999), None);
    assert_eq!(l.poll_timeout(), Some(t + 10_000));
    t += 10_000;
    cf(&mut l, t);
    t += 10_000;
    cf(&mut l, t);
    // Block done: wait for the next flow control.
    assert_eq!(l.poll_transmit(t + 50_000), None);
    assert_eq!(l.poll_timeout(), Some(t + DEFAULT_TIMEOUT_US));
    // CTS, BS 0, STmin 500 µs (0xF5): the rest, 500 µs apart.
    t += 20_000;
    assert!(inject(&mut l, &[0x30, 0, 0xF5], t));
    while !l.is_tx_idle() {
        if l.poll_timeout().unwrap() > t {
            assert_eq!(l.poll_timeout(), Some(t + 500));
            t += 500;
        }
        cf(&mut l, t);
    }
    got.truncate(200);
    assert_eq!(got, msg);
    // 194 bytes after the FF: 28 CFs with SN 1..15, 0..12.
    let want: StdVec<u8> = (1..=28u8).map(|i| i & 0xF).collect();
    assert_eq!(sns, want);
    assert_eq!(events(&mut l), [Event::Sent { len: 200 }]);
}

#[test]
fn sender_treats_reserved_st_min_as_127_ms() {
    for raw in [0x80u8, 0xF0, 0xFA, 0xFF] {
        let mut l = Link::<64, 8>::new(tester_cfg()).unwrap();
        l.send(&[0; 30], 0).unwrap();
        out(&mut l, 0);
        inject(&mut l, &[0x30, 0, raw], 0);
        assert!(l.poll_transmit(0).is_some());
        assert_eq!(l.sender().st_min_us(), 127_000);
        assert_eq!(l.poll_transmit(126_999), None);
        assert!(l.poll_transmit(127_000).is_some());
    }
}

#[test]
fn sender_flow_control_errors() {
    // Overflow.
    let mut l = Link::<64, 8>::new(tester_cfg()).unwrap();
    l.send(&[0; 30], 0).unwrap();
    out(&mut l, 0);
    assert!(inject(&mut l, &[0x32, 0, 0], 10));
    assert_eq!(events(&mut l), [Event::TxFailed(TxError::Overflow)]);
    assert!(l.is_tx_idle());
    assert_eq!(l.poll_transmit(20), None);

    // Reserved flow status aborts a sender waiting for flow control...
    l.send(&[0; 30], 0).unwrap();
    out(&mut l, 0);
    assert!(inject(&mut l, &[0x35, 0, 0], 10));
    assert_eq!(
        events(&mut l),
        [Event::TxFailed(TxError::InvalidFlowStatus(5))]
    );
    // ...and is ignored otherwise, as is any flow control while idle.
    assert!(!inject(&mut l, &[0x35, 0, 0], 10));
    assert!(!inject(&mut l, &[0x30, 0, 0], 10));
    assert!(!inject(&mut l, &[0x32, 0, 0], 10));
    assert_eq!(l.stats().ignored, 3);
    assert_eq!(events(&mut l), []);

    // Flow control while sending consecutive frames (not waiting): ignored.
    l.send(&[0; 60], 0).unwrap();
    out(&mut l, 0);
    inject(&mut l, &[0x30, 0, 5], 0);
    assert!(l.poll_transmit(0).is_some());
    assert!(!inject(&mut l, &[0x32, 0, 0], 1));
    assert!(!inject(&mut l, &[0x30, 0, 0], 1));
    assert_eq!(events(&mut l), []);
    assert!(!l.is_tx_idle());
}

#[test]
fn sender_wait_frames_and_limit() {
    let mut c = tester_cfg();
    c.wft_max = 2;
    let mut l = Link::<64, 8>::new(c).unwrap();
    l.send(&[0; 30], 0).unwrap();
    out(&mut l, 0);
    // Each WAIT restarts N_Bs.
    inject(&mut l, &[0x31, 0, 0], 900_000);
    l.handle_timeout(1_000_000);
    assert_eq!(events(&mut l), []);
    assert_eq!(l.poll_timeout(), Some(1_900_000));
    inject(&mut l, &[0x31, 0, 0], 1_800_000);
    // A CTS resets the count...
    inject(&mut l, &[0x30, 1, 0], 1_800_001);
    assert!(l.poll_transmit(1_800_001).is_some());
    inject(&mut l, &[0x31, 0, 0], 1_800_002);
    inject(&mut l, &[0x31, 0, 0], 1_800_003);
    assert_eq!(events(&mut l), []);
    // ...and the third WAIT in a row aborts (N_WFTmax = 2).
    inject(&mut l, &[0x31, 0, 0], 1_800_004);
    assert_eq!(events(&mut l), [Event::TxFailed(TxError::WaitLimit)]);
    assert!(l.is_tx_idle());

    // N_WFTmax 0: no WAIT accepted at all.
    c.wft_max = 0;
    let mut l = Link::<64, 8>::new(c).unwrap();
    l.send(&[0; 30], 0).unwrap();
    out(&mut l, 0);
    inject(&mut l, &[0x31, 0, 0], 1);
    assert_eq!(events(&mut l), [Event::TxFailed(TxError::WaitLimit)]);
}

#[test]
fn sender_n_bs_timeout() {
    let mut c = tester_cfg();
    c.n_bs_us = 150_000;
    let mut l = Link::<64, 8>::new(c).unwrap();
    l.send(&[0; 30], 0).unwrap();
    out(&mut l, 10);
    l.handle_timeout(150_009);
    assert_eq!(events(&mut l), []);
    l.handle_timeout(150_010);
    assert_eq!(events(&mut l), [Event::TxFailed(TxError::Timeout)]);
    assert!(l.is_tx_idle());
    // Also after a block: BS 1 means a flow control after every CF.
    l.send(&[0; 30], 0).unwrap();
    out(&mut l, 0);
    inject(&mut l, &[0x30, 1, 0], 5);
    assert_eq!(out(&mut l, 5).len(), 1);
    l.handle_timeout(150_004);
    assert_eq!(events(&mut l), []);
    l.handle_timeout(150_005);
    assert_eq!(events(&mut l), [Event::TxFailed(TxError::Timeout)]);
}

// ---------------------------------------------------------------------------------------
// The receiver.

#[test]
fn receiver_single_frame() {
    let mut l = Link::<8, 64>::new(ecu_cfg()).unwrap();
    assert!(inject(
        &mut l,
        &[3, 0xA, 0xB, 0xC, 0xCC, 0xCC, 0xCC, 0xCC],
        0
    ));
    assert_eq!(events(&mut l), [Event::Received { len: 3 }]);
    assert_eq!(l.received(), Some(&[0xA, 0xB, 0xC][..]));
    assert_eq!(l.poll_transmit(0), None);
    // An unpadded frame.
    assert!(inject(&mut l, &[1, 0x42], 0));
    assert_eq!(l.received(), Some(&[0x42][..]));
    // Malformed ones are ignored and leave nothing behind.
    for bad in [&[][..], &[0x00; 8], &[0x07, 1, 2], &[0x45, 1, 2, 3]] {
        assert!(!inject(&mut l, bad, 0));
    }
    assert_eq!(l.stats().ignored, 4);
    // The escaped SF on an FD link; a classic link ignores FD-sized frames.
    let mut sf = vec![0x00, 20];
    sf.extend(pattern(20, 6));
    sf.resize(24, 0xCC);
    events(&mut l);
    assert!(!inject(&mut l, &sf, 0));
    let mut c = ecu_cfg();
    c.mode = Mode::FD64;
    let mut fd = Link::<8, 64>::new(c).unwrap();
    assert!(inject(&mut fd, &sf, 0));
    assert_eq!(fd.received(), Some(&pattern(20, 6)[..]));
}

#[test]
fn receiver_flow_control_and_block_size() {
    let mut c = ecu_cfg();
    c.block_size = 2;
    c.st_min = StMin::from_raw(0xF3);
    let mut l = Link::<8, 64>::new(c).unwrap();
    let msg = pattern(34, 7); // FF 6 + 4 CFs of 7.
    assert!(inject(&mut l, &[&[0x10, 34][..], &msg[..6]].concat(), 0));
    assert_eq!(
        out(&mut l, 0),
        [vec![0x30, 2, 0xF3, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC]]
    );
    let cf = |sn: u8, i: usize| [&[0x20 | sn][..], &msg[6 + 7 * i..6 + 7 * (i + 1)]].concat();
    assert!(inject(&mut l, &cf(1, 0), 1));
    assert_eq!(out(&mut l, 1).len(), 0);
    assert!(inject(&mut l, &cf(2, 1), 2));
    assert_eq!(
        out(&mut l, 2),
        [vec![0x30, 2, 0xF3, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC]]
    );
    assert!(inject(&mut l, &cf(3, 2), 3));
    assert!(inject(&mut l, &cf(4, 3), 4));
    // Complete: no flow control after the last block.
    assert_eq!(out(&mut l, 4).len(), 0);
    assert_eq!(events(&mut l), [Event::Received { len: 34 }]);
    assert_eq!(l.received(), Some(&msg[..]));
    assert!(l.is_rx_idle());
}

/// Start a 100-byte reception (FF + 14 CFs) on a fresh ECU link; returns the link and message.
fn receiving() -> (Link<8, 128>, StdVec<u8>) {
    let mut l = Link::<8, 128>::new(ecu_cfg()).unwrap();
    let msg = pattern(100, 8);
    assert!(inject(&mut l, &[&[0x10, 100][..], &msg[..6]].concat(), 0));
    assert_eq!(out(&mut l, 0).len(), 1);
    (l, msg)
}

fn cf_of(msg: &[u8], sn: u8, i: usize) -> StdVec<u8> {
    let end = (6 + 7 * (i + 1)).min(msg.len());
    let mut v = [&[0x20 | (sn & 0xF)][..], &msg[6 + 7 * i..end]].concat();
    v.resize(8, 0xCC);
    v
}

#[test]
fn receiver_ignores_consecutive_frame_before_first_frame() {
    let mut l = Link::<8, 128>::new(ecu_cfg()).unwrap();
    assert!(!inject(&mut l, &[0x21, 1, 2, 3, 4, 5, 6, 7], 0));
    assert!(!inject(&mut l, &[0x20, 1, 2, 3, 4, 5, 6, 7], 0));
    assert_eq!(events(&mut l), []);
    assert_eq!(l.stats().ignored, 2);
    assert_eq!(l.poll_transmit(0), None);
    assert_eq!(l.received(), None);
}

#[test]
fn receiver_wrong_sequence_lost_and_duplicate() {
    // Wrong first SN.
    let (mut l, msg) = receiving();
    inject(&mut l, &cf_of(&msg, 2, 0), 1);
    assert_eq!(
        events(&mut l),
        [Event::RxFailed(RxError::WrongSequence {
            expected: 1,
            got: 2
        })]
    );
    assert!(l.is_rx_idle());
    // The rest of the message is now ignored.
    assert!(!inject(&mut l, &cf_of(&msg, 3, 1), 2));
    assert_eq!(events(&mut l), []);

    // A lost CF.
    let (mut l, msg) = receiving();
    inject(&mut l, &cf_of(&msg, 1, 0), 1);
    inject(&mut l, &cf_of(&msg, 3, 2), 2);
    assert_eq!(
        events(&mut l),
        [Event::RxFailed(RxError::WrongSequence {
            expected: 2,
            got: 3
        })]
    );

    // A duplicated CF.
    let (mut l, msg) = receiving();
    inject(&mut l, &cf_of(&msg, 1, 0), 1);
    inject(&mut l, &cf_of(&msg, 1, 0), 2);
    assert_eq!(
        events(&mut l),
        [Event::RxFailed(RxError::WrongSequence {
            expected: 2,
            got: 1
        })]
    );
    assert_eq!(l.received(), None);

    // In order (SN wrapping 15 -> 0) it completes.
    let (mut l, msg) = receiving();
    for i in 0..14 {
        inject(&mut l, &cf_of(&msg, (i + 1) as u8, i), 1);
    }
    assert_eq!(events(&mut l), [Event::Received { len: 100 }]);
    assert_eq!(l.received(), Some(&msg[..]));
}

#[test]
fn receiver_n_cr_timeout() {
    let (mut l, msg) = receiving();
    l.handle_timeout(DEFAULT_TIMEOUT_US - 1);
    assert_eq!(events(&mut l), []);
    // Each CF restarts N_Cr.
    inject(&mut l, &cf_of(&msg, 1, 0), 600_000);
    l.handle_timeout(1_599_999);
    assert_eq!(events(&mut l), []);
    assert_eq!(l.poll_timeout(), Some(1_600_000));
    l.handle_timeout(1_600_000);
    assert_eq!(events(&mut l), [Event::RxFailed(RxError::Timeout)]);
    assert!(!inject(&mut l, &cf_of(&msg, 2, 1), 1_600_001));
}

#[test]
fn receiver_n_cr_starts_when_flow_control_goes_out() {
    let mut l = Link::<8, 128>::new(ecu_cfg()).unwrap();
    let msg = pattern(100, 8);
    inject(&mut l, &[&[0x10, 100][..], &msg[..6]].concat(), 0);
    // The FC is owed at once.
    assert_eq!(l.poll_timeout(), Some(0));
    assert_eq!(out(&mut l, 300_000).len(), 1);
    l.handle_timeout(1_299_999);
    assert_eq!(events(&mut l), []);
    l.handle_timeout(1_300_000);
    assert_eq!(events(&mut l), [Event::RxFailed(RxError::Timeout)]);
}

#[test]
fn receiver_overflow() {
    // FF longer than the buffer: FC.OVFLW, nothing kept.
    let mut l = Link::<8, 64>::new(ecu_cfg()).unwrap();
    assert!(inject(&mut l, &[0x10, 100, 1, 2, 3, 4, 5, 6], 0));
    assert_eq!(
        out(&mut l, 0),
        [vec![0x32, 0, 0, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC]]
    );
    assert_eq!(
        events(&mut l),
        [Event::RxFailed(RxError::Overflow { len: 100 })]
    );
    assert!(l.is_rx_idle());
    assert!(!inject(&mut l, &[0x21, 1, 2, 3, 4, 5, 6, 7], 1));
    // Escaped FF announcing 4 GiB.
    assert!(inject(&mut l, &[0x10, 0, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2], 2));
    assert_eq!(out(&mut l, 2)[0][0], 0x32);
    assert_eq!(
        events(&mut l),
        [Event::RxFailed(RxError::Overflow { len: u32::MAX })]
    );
    // A single frame longer than the buffer.
    let mut tiny = Link::<8, 4>::new(ecu_cfg()).unwrap();
    assert!(inject(&mut tiny, &[7, 1, 2, 3, 4, 5, 6, 7], 0));
    assert_eq!(
        events(&mut tiny),
        [Event::RxFailed(RxError::Overflow { len: 7 })]
    );
    assert_eq!(tiny.received(), None);
    assert_eq!(tiny.poll_transmit(0), None);
}

#[test]
fn receiver_new_message_interrupts_reception() {
    // A new FF: the old reception is aborted, the new one proceeds.
    let (mut l, msg) = receiving();
    inject(&mut l, &cf_of(&msg, 1, 0), 1);
    let other = pattern(20, 9);
    assert!(inject(&mut l, &[&[0x10, 20][..], &other[..6]].concat(), 2));
    assert_eq!(events(&mut l), [Event::RxFailed(RxError::Interrupted)]);
    assert_eq!(out(&mut l, 2).len(), 1);
    inject(&mut l, &[&[0x21][..], &other[6..13]].concat(), 3);
    inject(&mut l, &[&[0x22][..], &other[13..20]].concat(), 4);
    assert_eq!(events(&mut l), [Event::Received { len: 20 }]);
    assert_eq!(l.received(), Some(&other[..]));

    // A new SF: the old reception is aborted and the SF delivered; the FC owed for the
    // aborted message is dropped.
    let mut l = Link::<8, 128>::new(ecu_cfg()).unwrap();
    inject(&mut l, &[&[0x10, 100][..], &msg[..6]].concat(), 0);
    assert!(inject(&mut l, &[2, 0xAB, 0xCD], 1));
    assert_eq!(
        events(&mut l),
        [
            Event::RxFailed(RxError::Interrupted),
            Event::Received { len: 2 }
        ]
    );
    assert_eq!(l.received(), Some(&[0xAB, 0xCD][..]));
    assert_eq!(l.poll_transmit(1), None);
    assert!(!inject(&mut l, &cf_of(&msg, 1, 0), 2));
}

#[test]
fn receiver_consecutive_frame_sizes() {
    // A short CF before the last one.
    let (mut l, _) = receiving();
    inject(&mut l, &[0x21, 1, 2, 3], 1);
    assert_eq!(
        events(&mut l),
        [Event::RxFailed(RxError::BadConsecutiveFrame)]
    );
    // The unpadded last CF is fine.
    let mut c = ecu_cfg();
    c.padding = None;
    let mut l = Link::<8, 128>::new(c).unwrap();
    let msg = pattern(9, 10);
    inject(&mut l, &[&[0x10, 9][..], &msg[..6]].concat(), 0);
    inject(&mut l, &[&[0x21][..], &msg[6..]].concat(), 1);
    assert_eq!(events(&mut l), [Event::Received { len: 9 }]);
    assert_eq!(l.received(), Some(&msg[..]));

    // On FD, RX_DL comes from the FF: a CF longer than it is refused.
    let mut c = ecu_cfg();
    c.mode = Mode::FD64;
    let mut l = Link::<8, 128>::new(c).unwrap();
    let msg = pattern(30, 11);
    inject(&mut l, &[&[0x10, 30][..], &msg[..6]].concat(), 0);
    inject(&mut l, &[&[0x21][..], &msg[6..17]].concat(), 1);
    assert_eq!(
        events(&mut l),
        [Event::RxFailed(RxError::BadConsecutiveFrame)]
    );
}

#[test]
fn unread_message_is_never_misreported() {
    let mut l = Link::<8, 64>::new(ecu_cfg()).unwrap();
    inject(&mut l, &[1, 0x11], 0);
    inject(&mut l, &[1, 0x22], 1);
    assert_eq!(
        events(&mut l),
        [Event::RxFailed(RxError::Unread), Event::Received { len: 1 }]
    );
    assert_eq!(l.received(), Some(&[0x22][..]));
}

#[test]
fn frames_for_other_ids_are_not_looked_at() {
    let mut l = Link::<8, 64>::new(ecu_cfg()).unwrap();
    let f = Frame::new(sid(0x123), &[1, 0x11], false).unwrap();
    assert!(!l.handle_frame(&f, 0));
    let f = Frame::new(extended_id(u32::from(TESTER)).unwrap(), &[1, 0x11], false).unwrap();
    assert!(!l.handle_frame(&f, 0));
    assert_eq!(l.stats(), Stats::default());
    assert_eq!(l.received(), None);
}

#[test]
fn event_queue_is_bounded() {
    let mut l = Link::<8, 64>::new(ecu_cfg()).unwrap();
    for i in 0..20u8 {
        inject(&mut l, &[0x10, 100, i, 0, 0, 0, 0, 0], u64::from(i));
    }
    let ev = events(&mut l);
    assert_eq!(ev.len(), 8);
    assert_eq!(l.stats().events_dropped, 12);
}

// ---------------------------------------------------------------------------------------
// Whole messages between two links over a simulated bus.

#[derive(Debug, Default)]
struct Transfer {
    /// Frames each side put on the bus.
    a_frames: u64,
    b_frames: u64,
    /// Simulated time at the end, in µs.
    elapsed: u64,
    a_events: StdVec<Event>,
    b_events: StdVec<Event>,
}

/// Check a frame a link sent against its configuration.
fn check_frame(f: &Frame, cfg: &Config) {
    assert_eq!(f.id, cfg.tx_id);
    assert!(f.is_valid());
    assert_eq!(f.fd, cfg.mode.is_fd());
    assert!(f.data.len() <= cfg.mode.tx_dl().max(8));
    if cfg.padding.is_some() {
        assert!(f.data.len() >= 8);
    }
    Pdu::decode(&f.data).expect("links only send well-formed frames");
}

/// Move frames between `a` and `b` (each frame takes `frame_us` of bus time) until both are
/// idle with nothing due, checking STmin at every consecutive frame. `a_msgs` / `b_msgs` are
/// sent in turn by each side.
fn run<const TA: usize, const RA: usize, const TB: usize, const RB: usize>(
    a: &mut Link<TA, RA>,
    b: &mut Link<TB, RB>,
    a_msgs: &[&[u8]],
    b_msgs: &[&[u8]],
    frame_us: u64,
) -> (Transfer, StdVec<StdVec<u8>>, StdVec<StdVec<u8>>) {
    let mut t = Transfer::default();
    let (mut a_next, mut b_next) = (0, 0);
    let (mut at_b, mut at_a) = (vec![], vec![]);
    let mut now: u64 = 0;
    // Time of the previous CF from each side and whether an FC came in between.
    let mut last_cf = [None::<u64>; 2];
    for _ in 0..10_000_000u32 {
        if a.is_tx_idle() && a_next < a_msgs.len() {
            a.send(a_msgs[a_next], now).unwrap();
            a_next += 1;
        }
        if b.is_tx_idle() && b_next < b_msgs.len() {
            b.send(b_msgs[b_next], now).unwrap();
            b_next += 1;
        }
        a.handle_timeout(now);
        b.handle_timeout(now);
        let mut moved = false;
        if let Some(f) = a.poll_transmit(now) {
            check_frame(&f, a.config());
            check_st_min(&f, &mut last_cf, 0, now, b.config().st_min);
            t.a_frames += 1;
            now += frame_us;
            b.handle_frame(&f, now);
            moved = true;
        }
        if let Some(f) = b.poll_transmit(now) {
            check_frame(&f, b.config());
            check_st_min(&f, &mut last_cf, 1, now, a.config().st_min);
            t.b_frames += 1;
            now += frame_us;
            a.handle_frame(&f, now);
            moved = true;
        }
        while let Some(e) = a.poll_event() {
            if let Event::Received { len } = e {
                let m = a.received().unwrap();
                assert_eq!(m.len(), len);
                at_a.push(m.to_vec());
            }
            t.a_events.push(e);
        }
        while let Some(e) = b.poll_event() {
            if let Event::Received { len } = e {
                let m = b.received().unwrap();
                assert_eq!(m.len(), len);
                at_b.push(m.to_vec());
            }
            t.b_events.push(e);
        }
        if moved {
            continue;
        }
        let pending = a_next < a_msgs.len() || b_next < b_msgs.len();
        match (a.poll_timeout(), b.poll_timeout()) {
            (None, None) if !pending => {
                t.elapsed = now;
                return (t, at_b, at_a);
            }
            (None, None) => {}
            (x, y) => {
                let next = x.unwrap_or(u64::MAX).min(y.unwrap_or(u64::MAX));
                assert!(
                    next > now,
                    "something due at {next} but nothing moved at {now}"
                );
                now = next;
            }
        }
    }
    panic!("transfer did not finish");
}

/// STmin is a minimum between consecutive frames within a block.
fn check_st_min(f: &Frame, last: &mut [Option<u64>; 2], side: usize, now: u64, asked: StMin) {
    match f.data[0] >> 4 {
        2 => {
            if let Some(prev) = last[side] {
                assert!(
                    now - prev >= u64::from(asked.as_micros()),
                    "CF {} µs after the previous one, STmin {} µs",
                    now - prev,
                    asked.as_micros()
                );
            }
            last[side] = Some(now);
        }
        // A flow control frame from the other side starts a new block.
        3 => last[1 - side] = None,
        _ => last[side] = None,
    }
}

fn pair(mode: Mode, padding: Option<u8>, bs: u8, st: u8) -> (Config, Config) {
    let mut a = tester_cfg();
    let mut b = ecu_cfg();
    for c in [&mut a, &mut b] {
        c.mode = mode;
        c.padding = padding;
        c.block_size = bs;
        c.st_min = StMin::from_raw(st);
    }
    (a, b)
}

const LENGTHS: [usize; 8] = [1, 7, 8, 62, 63, 4095, 4096, 100_000];

#[test]
fn message_round_trips_classic_and_fd() {
    big_stack(|| {
        let settings = [
            (Mode::Classic, Some(0xCC), 0, 0),
            (Mode::Classic, None, 8, 0xF5),
            (Mode::Classic, Some(0x55), 1, 0x01),
            (Mode::Fd { tx_dl: 8 }, Some(0xAA), 3, 0),
            (Mode::Fd { tx_dl: 12 }, None, 15, 0xF1),
            (Mode::Fd { tx_dl: 32 }, Some(0xCC), 0, 0x02),
            (Mode::FD64, Some(0xCC), 0, 0),
            (Mode::FD64, None, 4, 0xF9),
        ];
        for (mode, padding, bs, st) in settings {
            let (ca, cb) = pair(mode, padding, bs, st);
            let mut a = std::boxed::Box::new(Link::<100_000, 64>::new(ca).unwrap());
            let mut b = std::boxed::Box::new(Link::<64, 100_000>::new(cb).unwrap());
            for (i, &len) in LENGTHS.iter().enumerate() {
                let msg = pattern(len, i as u32);
                let (t, got, _) = run(&mut *a, &mut *b, &[&msg], &[], 150);
                let what = std::format!("{mode:?} pad {padding:?} bs {bs} st {st:#x} len {len}");
                assert_eq!(got, core::slice::from_ref(&msg), "{what}");
                assert_eq!(t.a_events, [Event::Sent { len }], "{what}");
                assert_eq!(t.b_events, [Event::Received { len }], "{what}");
                // Exactly the ISO-TP minimum of data frames, and the expected flow controls.
                let dl = mode.tx_dl();
                assert_eq!(
                    Some(t.a_frames),
                    frames_for_message(len as u64, dl),
                    "{what}"
                );
                assert_eq!(
                    Some(t.b_frames),
                    flow_control_frames(len as u64, dl, bs),
                    "{what}"
                );
                assert!(a.is_tx_idle() && b.is_rx_idle());
            }
        }
    });
}

#[test]
fn full_duplex_both_directions_at_once() {
    big_stack(|| {
        let (ca, cb) = pair(Mode::Classic, Some(0xCC), 2, 0);
        let mut a = Link::<5000, 5000>::new(ca).unwrap();
        let mut b = Link::<5000, 5000>::new(cb).unwrap();
        let (m1, m2, m3) = (pattern(4096, 1), pattern(3000, 2), pattern(5, 3));
        let (t, at_b, at_a) = run(&mut a, &mut b, &[&m1, &m3], &[&m2, &m1], 100);
        assert_eq!(at_b, [m1.clone(), m3]);
        assert_eq!(at_a, [m2, m1]);
        assert!(!t
            .a_events
            .iter()
            .chain(&t.b_events)
            .any(|e| matches!(e, Event::RxFailed(_) | Event::TxFailed(_))));
    });
}

#[test]
fn classic_and_fd_peers_with_extended_ids() {
    let mut ca = Config::new(
        extended_id(0x18DA_10F1).unwrap(),
        extended_id(0x18DA_F110).unwrap(),
    );
    let mut cb = Config::new(ca.rx_id, ca.tx_id);
    ca.mode = Mode::Classic;
    // An FD node answering a classic peer uses 8-byte frames.
    cb.mode = Mode::Fd { tx_dl: 8 };
    let mut a = Link::<1000, 1000>::new(ca).unwrap();
    let mut b = Link::<1000, 1000>::new(cb).unwrap();
    let (m1, m2) = (pattern(700, 4), pattern(900, 5));
    let (_, at_b, at_a) = run(&mut a, &mut b, &[&m1], &[&m2], 0);
    assert_eq!(at_b, core::slice::from_ref(&m1));
    assert_eq!(at_a, core::slice::from_ref(&m2));
    // The FD receiver takes a classic sender's frames; the classic receiver ignores 64-byte
    // frames, so the FD sender gets no flow control and times out.
    cb.mode = Mode::FD64;
    let mut b = Link::<1000, 1000>::new(cb).unwrap();
    let (t, at_b, at_a) = run(&mut a, &mut b, &[&m1], &[&m2], 0);
    assert_eq!(at_b, [m1]);
    assert!(at_a.is_empty());
    assert_eq!(t.b_events.last(), Some(&Event::TxFailed(TxError::Timeout)));
    assert!(a.stats().ignored > 0);
}

#[test]
fn st_min_paces_the_transfer() {
    // 4095 bytes classic = 585 CFs; with STmin 2 ms and instant frames, ~584 gaps of 2 ms.
    let (ca, cb) = pair(Mode::Classic, Some(0xCC), 0, 0x02);
    let mut a = Link::<4095, 8>::new(ca).unwrap();
    let mut b = Link::<8, 4095>::new(cb).unwrap();
    let msg = pattern(4095, 6);
    let (t, got, _) = run(&mut a, &mut b, &[&msg], &[], 0);
    assert_eq!(got, [msg]);
    assert_eq!(t.elapsed, 584 * 2_000);
}

// ---------------------------------------------------------------------------------------
// Randomized: garbage must never panic, a lossy bus must never deliver a wrong message.

/// A frame of random garbage, biased towards the PCI types so the state machines get deep.
/// `sn` follows the sequence numbers of the garbage so some of it reassembles.
fn garbage(rng: &mut Rng, id: Id, sn: &mut u8) -> Frame {
    let len = match rng.below(4) {
        0 => rng.below(9) as usize,
        1 => FD_DL_SIZES[rng.below(7) as usize],
        2 => 8,
        _ => rng.below(65) as usize,
    };
    let mut data = rng.bytes(len);
    if let Some(b0) = data.first_mut() {
        if rng.chance(80) {
            *b0 = ((rng.below(4) as u8) << 4) | (*b0 & 0x0F);
        }
        if rng.chance(20) {
            *b0 &= 0xF0; // SF escape, FF escape, CF SN 0, FC CTS
        }
    }
    if len > 1 && data[0] >> 4 == 1 && rng.chance(50) {
        data[0] = 0x10;
        data[1] = rng.below(0x80) as u8; // small first-frame lengths
        *sn = 1;
    }
    if len > 1 && data[0] >> 4 == 2 && rng.chance(70) {
        data[0] = 0x20 | *sn;
        *sn = (*sn + 1) & 0x0F;
    }
    Frame {
        id,
        data: heapless::Vec::from_slice(&data).unwrap(),
        fd: rng.chance(50),
    }
}

/// Events seen by the fuzzer, to check it reaches the interesting states.
#[derive(Default)]
struct Seen {
    received_multi: u32,
    received: u32,
    sent: u32,
    rx_failed: u32,
    tx_failed: u32,
}

fn fuzz_link<const T: usize, const R: usize>(cfg: Config, seed: u64, steps: u32, seen: &mut Seen) {
    let mut rng = Rng(seed);
    let mut l = Link::<T, R>::new(cfg).unwrap();
    let mut now: u64 = 0;
    let mut sn = 0;
    for _ in 0..steps {
        match rng.below(10) {
            0..=4 => {
                let id = if rng.chance(90) {
                    cfg.rx_id
                } else {
                    sid(rng.below(0x800) as u16)
                };
                let f = garbage(&mut rng, id, &mut sn);
                l.handle_frame(&f, now);
            }
            5 => now += rng.below(1_500_000),
            6 => l.handle_timeout(now),
            7 => {
                let len = rng.below(T as u64 + 2) as usize;
                let _ = l.send(&rng.bytes(len), now);
            }
            _ => {
                while let Some(f) = l.poll_transmit(now) {
                    check_frame(&f, &cfg);
                }
            }
        }
        while let Some(e) = l.poll_event() {
            match e {
                Event::Received { len } => {
                    assert_eq!(l.received().map(<[u8]>::len), Some(len));
                    assert!(len <= R);
                    seen.received += 1;
                    if len > 62 || (len > 7 && !cfg.mode.is_fd()) {
                        seen.received_multi += 1;
                    }
                }
                Event::Sent { .. } => seen.sent += 1,
                Event::RxFailed(_) => seen.rx_failed += 1,
                Event::TxFailed(_) => seen.tx_failed += 1,
            }
        }
        if let Some(m) = l.received() {
            assert!(m.len() <= R);
        }
    }
}

#[test]
fn garbage_frames_never_panic() {
    let mut fd = ecu_cfg();
    fd.mode = Mode::FD64;
    fd.padding = None;
    fd.block_size = 3;
    let mut fd12 = ecu_cfg();
    fd12.mode = Mode::Fd { tx_dl: 12 };
    fd12.wft_max = 1;
    let mut seen = Seen::default();
    for seed in 1..=8u64 {
        fuzz_link::<64, 64>(ecu_cfg(), seed, 50_000, &mut seen);
        fuzz_link::<300, 5000>(fd, seed * 7919, 50_000, &mut seen);
        fuzz_link::<20, 7>(fd12, seed * 104_729, 50_000, &mut seen);
    }
    std::println!(
        "fuzz: {} received ({} multi-frame), {} sent, {} rx failures, {} tx failures",
        seen.received,
        seen.received_multi,
        seen.sent,
        seen.rx_failed,
        seen.tx_failed
    );
    assert!(seen.received_multi > 0 && seen.sent > 0);
    assert!(seen.rx_failed > 0 && seen.tx_failed > 0);
    // The decoder alone, on any slice (longer than a frame too).
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..200_000 {
        let len = rng.below(80) as usize;
        let mut data = rng.bytes(len);
        if let Some(b) = data.first_mut() {
            *b &= 0x3F;
        }
        if let Ok(p) = Pdu::decode(&data) {
            // Whatever decodes re-encodes to something that decodes the same way, except
            // CF/FF bodies, which keep the frame's padding.
            if let Pdu::Single { .. } | Pdu::FlowControl { .. } = p {
                let again = p.encode(None).unwrap();
                assert_eq!(Pdu::decode(&again), Ok(p));
            }
        }
    }
}

#[test]
fn lossy_bus_never_delivers_a_wrong_message() {
    big_stack(|| {
        let mut rng = Rng(0xDEAD_BEEF);
        let mut delivered = 0;
        let mut failed = 0;
        for round in 0..4 {
            let mode = [Mode::Classic, Mode::FD64][round % 2];
            let (mut ca, mut cb) = pair(mode, Some(0xCC), [0, 5][round / 2], 0);
            ca.n_bs_us = 50_000;
            cb.n_cr_us = 50_000;
            let mut a = Link::<3000, 16>::new(ca).unwrap();
            let mut b = Link::<16, 3000>::new(cb).unwrap();
            let mut now = 0u64;
            for m in 0..150u32 {
                let msg = pattern(1 + rng.below(3000) as usize, m);
                a.send(&msg, now).unwrap();
                let mut steps = 0;
                loop {
                    steps += 1;
                    assert!(steps < 100_000);
                    a.handle_timeout(now);
                    b.handle_timeout(now);
                    let mut moved = false;
                    for dir in 0..2 {
                        let f = if dir == 0 {
                            a.poll_transmit(now)
                        } else {
                            b.poll_transmit(now)
                        };
                        let Some(f) = f else { continue };
                        moved = true;
                        now += 100;
                        if rng.below(1000) < 3 {
                            continue; // lost
                        }
                        let copies = if rng.below(1000) < 3 { 2 } else { 1 };
                        for _ in 0..copies {
                            if dir == 0 {
                                b.handle_frame(&f, now);
                            } else {
                                a.handle_frame(&f, now);
                            }
                        }
                    }
                    while let Some(e) = b.poll_event() {
                        if let Event::Received { .. } = e {
                            assert_eq!(b.received(), Some(&msg[..]));
                            delivered += 1;
                        }
                    }
                    while let Some(e) = a.poll_event() {
                        if let Event::TxFailed(_) = e {
                            failed += 1;
                        }
                    }
                    if !moved {
                        let next = [a.poll_timeout(), b.poll_timeout()]
                            .into_iter()
                            .flatten()
                            .min();
                        match next {
                            Some(t) => now = now.max(t),
                            None => break,
                        }
                    }
                }
                assert!(a.is_tx_idle() && b.is_rx_idle());
            }
        }
        std::println!("lossy bus: {delivered} of 600 delivered, {failed} sender failures");
        // Most messages get through, and some losses were noticed by the sender.
        assert!(delivered > 150, "{delivered} delivered");
        assert!(failed > 0);
    });
}

#[test]
fn memory_is_the_buffers_plus_a_little() {
    let overhead = |size: usize, buffers: usize| size - buffers;
    let ecu = core::mem::size_of::<Link<64, 4096>>();
    let big = core::mem::size_of::<Link<4096, 100_000>>();
    std::println!("Link<64, 4096>: {ecu} bytes; Link<4096, 100000>: {big} bytes");
    assert!(overhead(ecu, 64 + 4096) <= 512);
    assert!(overhead(big, 4096 + 100_000) <= 512);
}
