//! The ECU's storage, behind a trait: two image slots (A/B) and two copies of a small state
//! record. A host implementation keeps them in files (for the simulator and the tests); a real
//! ECU implements the trait over its flash controller.

/// One of the two image slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    A,
    B,
}

impl Slot {
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }
    pub fn index(self) -> u8 {
        match self {
            Slot::A => 0,
            Slot::B => 1,
        }
    }
    pub fn from_index(i: u8) -> Option<Slot> {
        match i {
            0 => Some(Slot::A),
            1 => Some(Slot::B),
            _ => None,
        }
    }
}

/// Size of one state record copy.
pub const STATE_LEN: usize = 608;

/// Capacity of one trust document copy: the largest document a UDS message carries.
pub const TRUST_LEN: usize = 4096;

/// Storage as the bootloader needs it. Writes to a slot never touch the other slot or the
/// state; writing one state copy never touches the other copy. Implementations report failures
/// (including a simulated power cut) as errors; the bootloader turns them into a programming
/// failure and keeps the previous image.
pub trait Flash {
    type Error: core::fmt::Debug;
    /// Capacity of each slot in bytes.
    fn slot_size(&self) -> u64;
    fn erase_slot(&mut self, slot: Slot) -> Result<(), Self::Error>;
    fn write_slot(&mut self, slot: Slot, offset: u64, data: &[u8]) -> Result<(), Self::Error>;
    fn read_slot(&mut self, slot: Slot, offset: u64, buf: &mut [u8]) -> Result<usize, Self::Error>;
    /// Read state copy `copy` (0 or 1); an erased or never-written copy reads as zeros.
    fn read_state(&mut self, copy: u8, buf: &mut [u8; STATE_LEN]) -> Result<(), Self::Error>;
    fn write_state(&mut self, copy: u8, data: &[u8; STATE_LEN]) -> Result<(), Self::Error>;
    /// Read trust document copy `copy` (0 or 1) into `buf` (at most [`TRUST_LEN`] bytes);
    /// the number of bytes read (0 for a never-written copy). Which copy is current, its
    /// length and hash are in the state, so a torn write of the other copy is harmless.
    fn read_trust(&mut self, copy: u8, buf: &mut [u8]) -> Result<usize, Self::Error>;
    fn write_trust(&mut self, copy: u8, data: &[u8]) -> Result<(), Self::Error>;
}

/// A flash in RAM (tests, simulations): optionally it "loses power" after a number of write
/// operations, failing that write half-way and every operation after it.
pub mod mem {
    use super::{Flash, Slot, STATE_LEN};
    use alloc::vec::Vec;

    #[derive(Clone, Debug)]
    pub struct MemFlash {
        pub slots: [Vec<u8>; 2],
        pub state: [[u8; STATE_LEN]; 2],
        pub trust: [Vec<u8>; 2],
        size: u64,
        /// Write operations left before the power cut; `None`: never.
        pub writes_left: Option<u64>,
        pub dead: bool,
    }

    #[derive(Debug, PartialEq, Eq)]
    pub struct PowerCut;

    impl MemFlash {
        pub fn new(size: u64) -> Self {
            MemFlash {
                slots: [Vec::new(), Vec::new()],
                state: [[0; STATE_LEN]; 2],
                trust: [Vec::new(), Vec::new()],
                size,
                writes_left: None,
                dead: false,
            }
        }

        /// Power back on: the contents stay as they were at the cut.
        pub fn power_on(&mut self) {
            self.dead = false;
            self.writes_left = None;
        }

        fn tick(&mut self) -> Result<bool, PowerCut> {
            if self.dead {
                return Err(PowerCut);
            }
            match &mut self.writes_left {
                Some(0) => {
                    self.dead = true;
                    Ok(false)
                }
                Some(n) => {
                    *n -= 1;
                    Ok(true)
                }
                None => Ok(true),
            }
        }
    }

    impl Flash for MemFlash {
        type Error = PowerCut;
        fn slot_size(&self) -> u64 {
            self.size
        }
        fn erase_slot(&mut self, slot: Slot) -> Result<(), PowerCut> {
            let whole = self.tick()?;
            let s = &mut self.slots[usize::from(slot.index())];
            // A cut during an erase leaves it half erased.
            let keep = if whole { 0 } else { s.len() / 2 };
            s.truncate(keep);
            if whole {
                Ok(())
            } else {
                Err(PowerCut)
            }
        }
        fn write_slot(&mut self, slot: Slot, offset: u64, data: &[u8]) -> Result<(), PowerCut> {
            let whole = self.tick()?;
            let n = if whole { data.len() } else { data.len() / 2 };
            let s = &mut self.slots[usize::from(slot.index())];
            let off = usize::try_from(offset).map_err(|_| PowerCut)?;
            if s.len() < off + n {
                s.resize(off + n, 0xff);
            }
            s[off..off + n].copy_from_slice(&data[..n]);
            if whole {
                Ok(())
            } else {
                Err(PowerCut)
            }
        }
        fn read_slot(
            &mut self,
            slot: Slot,
            offset: u64,
            buf: &mut [u8],
        ) -> Result<usize, PowerCut> {
            if self.dead {
                return Err(PowerCut);
            }
            let s = &self.slots[usize::from(slot.index())];
            let off = usize::try_from(offset).unwrap_or(usize::MAX).min(s.len());
            let n = buf.len().min(s.len() - off);
            buf[..n].copy_from_slice(&s[off..off + n]);
            Ok(n)
        }
        fn read_state(&mut self, copy: u8, buf: &mut [u8; STATE_LEN]) -> Result<(), PowerCut> {
            if self.dead {
                return Err(PowerCut);
            }
            *buf = self.state[usize::from(copy & 1)];
            Ok(())
        }
        fn write_state(&mut self, copy: u8, data: &[u8; STATE_LEN]) -> Result<(), PowerCut> {
            let whole = self.tick()?;
            let c = &mut self.state[usize::from(copy & 1)];
            if whole {
                *c = *data;
                Ok(())
            } else {
                // Torn: the first half new, the rest as it was.
                c[..STATE_LEN / 2].copy_from_slice(&data[..STATE_LEN / 2]);
                Err(PowerCut)
            }
        }
        fn read_trust(&mut self, copy: u8, buf: &mut [u8]) -> Result<usize, PowerCut> {
            if self.dead {
                return Err(PowerCut);
            }
            let t = &self.trust[usize::from(copy & 1)];
            let n = t.len().min(buf.len());
            buf[..n].copy_from_slice(&t[..n]);
            Ok(n)
        }
        fn write_trust(&mut self, copy: u8, data: &[u8]) -> Result<(), PowerCut> {
            let whole = self.tick()?;
            let t = &mut self.trust[usize::from(copy & 1)];
            t.clear();
            if whole {
                t.extend_from_slice(data);
                Ok(())
            } else {
                t.extend_from_slice(&data[..data.len() / 2]);
                Err(PowerCut)
            }
        }
    }
}

/// Flash kept in files of a directory (`slot-a.bin`, `slot-b.bin`, `state-0.bin`,
/// `state-1.bin`): the simulator's storage, surviving restarts like real flash.
#[cfg(feature = "std")]
pub mod file {
    use super::{Flash, Slot, STATE_LEN};
    use std::fs::{File, OpenOptions};
    use std::io::{Read, Seek, SeekFrom, Write};
    use std::path::{Path, PathBuf};

    pub struct FileFlash {
        dir: PathBuf,
        size: u64,
    }

    impl FileFlash {
        pub fn open(dir: &Path, slot_size: u64) -> std::io::Result<Self> {
            std::fs::create_dir_all(dir)?;
            Ok(FileFlash {
                dir: dir.to_path_buf(),
                size: slot_size,
            })
        }
        fn slot_path(&self, slot: Slot) -> PathBuf {
            self.dir.join(match slot {
                Slot::A => "slot-a.bin",
                Slot::B => "slot-b.bin",
            })
        }
        fn trust_path(&self, copy: u8) -> PathBuf {
            self.dir.join(if copy & 1 == 0 {
                "trust-0.bin"
            } else {
                "trust-1.bin"
            })
        }
        fn state_path(&self, copy: u8) -> PathBuf {
            self.dir.join(if copy & 1 == 0 {
                "state-0.bin"
            } else {
                "state-1.bin"
            })
        }
    }

    impl Flash for FileFlash {
        type Error = std::io::Error;
        fn slot_size(&self) -> u64 {
            self.size
        }
        fn erase_slot(&mut self, slot: Slot) -> std::io::Result<()> {
            let f = File::create(self.slot_path(slot))?;
            f.sync_all()
        }
        fn write_slot(&mut self, slot: Slot, offset: u64, data: &[u8]) -> std::io::Result<()> {
            let mut f = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(self.slot_path(slot))?;
            f.seek(SeekFrom::Start(offset))?;
            f.write_all(data)?;
            f.sync_data()
        }
        fn read_slot(&mut self, slot: Slot, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
            let mut f = match File::open(self.slot_path(slot)) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
                Err(e) => return Err(e),
            };
            f.seek(SeekFrom::Start(offset))?;
            let mut n = 0;
            while n < buf.len() {
                let k = f.read(&mut buf[n..])?;
                if k == 0 {
                    break;
                }
                n += k;
            }
            Ok(n)
        }
        fn read_state(&mut self, copy: u8, buf: &mut [u8; STATE_LEN]) -> std::io::Result<()> {
            *buf = [0; STATE_LEN];
            match File::open(self.state_path(copy)) {
                Ok(mut f) => {
                    let mut n = 0;
                    while n < STATE_LEN {
                        let k = f.read(&mut buf[n..])?;
                        if k == 0 {
                            break;
                        }
                        n += k;
                    }
                    Ok(())
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            }
        }
        fn write_state(&mut self, copy: u8, data: &[u8; STATE_LEN]) -> std::io::Result<()> {
            // Overwritten in place, like a flash page: the other copy covers a torn write.
            let mut f = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(self.state_path(copy))?;
            f.write_all(data)?;
            f.sync_data()
        }
        fn read_trust(&mut self, copy: u8, buf: &mut [u8]) -> std::io::Result<usize> {
            match std::fs::read(self.trust_path(copy)) {
                Ok(b) => {
                    let n = b.len().min(buf.len());
                    buf[..n].copy_from_slice(&b[..n]);
                    Ok(n)
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
                Err(e) => Err(e),
            }
        }
        fn write_trust(&mut self, copy: u8, data: &[u8]) -> std::io::Result<()> {
            let mut f = File::create(self.trust_path(copy))?;
            f.write_all(data)?;
            f.sync_data()
        }
    }
}
