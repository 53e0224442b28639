//! Packet capture on the data path: which frames a worker copies out while `ecmpctl capture`
//! runs, the classic BPF filter that picks them, and the bounded ring they go through.
//!
//! The control side (the daemon) compiles the tcpdump expression with libpcap, builds one
//! [`CaptureSession`] per worker and arms each worker's [`CaptureTap`]; it then drains the
//! sessions' rings. A worker looks at its tap once per poll (one relaxed load compared with the
//! generation it last saw) and does nothing else per burst unless a session is armed: no
//! capture costs no per-packet work.
//!
//! Invariants:
//! - A [`Filter`] is validated when built: every jump lands inside the program and only forward
//!   (classic BPF has no backward jumps, so a run takes at most one step per instruction), every
//!   scratch-memory index is below 16 and the last instruction returns. Running it never panics:
//!   a load past the frame, or a division by zero, rejects the frame as libpcap's interpreter does.
//! - The ring has one producer (its worker) and one consumer (the control side); its slots are
//!   allocated when the session is built, never on the data path. A full ring counts the frame
//!   in `ring_dropped` and the worker carries on: capture never blocks forwarding.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use ecmp_port::PortId;

use crate::drop::DropReason;

/// Scratch memory words of a classic BPF machine.
const BPF_MEMWORDS: u32 = 16;
/// Longest filter accepted (libpcap's own `BPF_MAXINSNS`).
pub const MAX_INSNS: usize = 4096;
/// The most bytes a ring slot holds: a frame never exceeds the port frame size, so a larger
/// snaplen only wastes memory.
pub const MAX_SLOT_BYTES: usize = 16 * 1024;
/// Bytes of slot buffers per worker ring at most (the slot count follows from the snaplen).
pub const RING_BYTES: usize = 4 << 20;

/// One classic BPF instruction (`struct bpf_insn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BpfInsn {
    /// Opcode: class, size/operation, mode/source.
    pub code: u16,
    /// Jump offset when true.
    pub jt: u8,
    /// Jump offset when false.
    pub jf: u8,
    /// The constant operand.
    pub k: u32,
}

/// Why a program is not accepted as a filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// The program has no instructions or more than [`MAX_INSNS`].
    #[error("a filter needs 1 to {MAX_INSNS} instructions, this one has {0}")]
    Length(usize),
    /// An instruction jumps past the end of the program.
    #[error("instruction {0} jumps past the end")]
    JumpOut(usize),
    /// An instruction uses scratch memory past word 15.
    #[error("instruction {0} uses scratch memory word {1}")]
    Memory(usize, u32),
    /// An opcode this interpreter does not know.
    #[error("instruction {0} has unknown opcode {1:#06x}")]
    Opcode(usize, u16),
    /// The last instruction does not return.
    #[error("the last instruction does not return")]
    NoReturn,
}

// Opcode fields (linux/filter.h, pcap/bpf.h).
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const ST: u16 = 0x02;
const STX: u16 = 0x03;
const ALU: u16 = 0x04;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const MISC: u16 = 0x07;
const W: u16 = 0x00;
const H: u16 = 0x08;
const B: u16 = 0x10;
const IMM: u16 = 0x00;
const ABS: u16 = 0x20;
const IND: u16 = 0x40;
const MEM: u16 = 0x60;
const LEN: u16 = 0x80;
const MSH: u16 = 0xa0;
const SRC_X: u16 = 0x08;
const ADD: u16 = 0x00;
const SUB: u16 = 0x10;
const MUL: u16 = 0x20;
const DIV: u16 = 0x30;
const OR: u16 = 0x40;
const AND: u16 = 0x50;
const LSH: u16 = 0x60;
const RSH: u16 = 0x70;
const NEG: u16 = 0x80;
const MOD: u16 = 0x90;
const XOR: u16 = 0xa0;
const JA: u16 = 0x00;
const JEQ: u16 = 0x10;
const JGT: u16 = 0x20;
const JGE: u16 = 0x30;
const JSET: u16 = 0x40;
const RVAL_K: u16 = 0x00;
const RVAL_A: u16 = 0x10;
const TAX: u16 = 0x00;
const TXA: u16 = 0x80;

fn class(code: u16) -> u16 {
    code & 0x07
}

/// A validated classic BPF program (see the module doc for what validation guarantees).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    insns: Box<[BpfInsn]>,
}

impl Filter {
    /// Checks `insns` and wraps them.
    pub fn new(insns: Vec<BpfInsn>) -> Result<Filter, FilterError> {
        let n = insns.len();
        if n == 0 || n > MAX_INSNS {
            return Err(FilterError::Length(n));
        }
        for (pc, i) in insns.iter().enumerate() {
            let left = n - pc - 1;
            let ok = match class(i.code) {
                LD => match i.code & 0xe0 {
                    ABS | IND | IMM | LEN => matches!(i.code & 0x18, W | H | B),
                    MEM => {
                        if i.k >= BPF_MEMWORDS {
                            return Err(FilterError::Memory(pc, i.k));
                        }
                        true
                    }
                    _ => false,
                },
                LDX => match i.code & 0xe0 {
                    IMM | LEN => true,
                    MSH => i.code & 0x18 == B,
                    MEM => {
                        if i.k >= BPF_MEMWORDS {
                            return Err(FilterError::Memory(pc, i.k));
                        }
                        true
                    }
                    _ => false,
                },
                ST | STX => {
                    if i.k >= BPF_MEMWORDS {
                        return Err(FilterError::Memory(pc, i.k));
                    }
                    true
                }
                ALU => matches!(
                    i.code & 0xf0,
                    ADD | SUB | MUL | DIV | OR | AND | LSH | RSH | NEG | MOD | XOR
                ),
                JMP => match i.code & 0xf0 {
                    JA => {
                        if i.k as usize >= left {
                            return Err(FilterError::JumpOut(pc));
                        }
                        true
                    }
                    JEQ | JGT | JGE | JSET => {
                        if usize::from(i.jt) >= left || usize::from(i.jf) >= left {
                            return Err(FilterError::JumpOut(pc));
                        }
                        true
                    }
                    _ => false,
                },
                RET => matches!(i.code & 0x18, RVAL_K | RVAL_A),
                MISC => matches!(i.code & 0xf8, TAX | TXA),
                _ => false,
            };
            if !ok {
                return Err(FilterError::Opcode(pc, i.code));
            }
        }
        if insns.last().is_some_and(|i| class(i.code) != RET) {
            return Err(FilterError::NoReturn);
        }
        Ok(Filter {
            insns: insns.into_boxed_slice(),
        })
    }

    /// The instructions.
    pub fn insns(&self) -> &[BpfInsn] {
        &self.insns
    }

    /// Runs the program over `pkt` (captured bytes) whose length on the wire was `wirelen`;
    /// returns the snapshot length it asks for (0: reject), as libpcap's `bpf_filter` does.
    pub fn run(&self, pkt: &[u8], wirelen: u32) -> u32 {
        let mut a: u32 = 0;
        let mut x: u32 = 0;
        let mut mem = [0u32; BPF_MEMWORDS as usize];
        let mut pc = 0usize;
        // Validation made every jump forward and in range and the last instruction a return,
        // so the loop ends within `insns.len()` steps and every index below is in range.
        while let Some(i) = self.insns.get(pc) {
            pc += 1;
            let k = i.k;
            match class(i.code) {
                LD => {
                    a = match i.code & 0xe0 {
                        IMM => k,
                        LEN => wirelen,
                        MEM => mem[(k % BPF_MEMWORDS) as usize],
                        mode => {
                            let off = if mode == IND { x.wrapping_add(k) } else { k };
                            // libpcap checks `k` and `x + k` without wrapping past 2^32.
                            if mode == IND && u64::from(x) + u64::from(k) > u64::from(u32::MAX) {
                                return 0;
                            }
                            match load(pkt, off, i.code & 0x18) {
                                Some(v) => v,
                                None => return 0,
                            }
                        }
                    };
                }
                LDX => {
                    x = match i.code & 0xe0 {
                        IMM => k,
                        LEN => wirelen,
                        MEM => mem[(k % BPF_MEMWORDS) as usize],
                        _ => match pkt.get(k as usize) {
                            Some(&b) => u32::from(b & 0x0f) << 2,
                            None => return 0,
                        },
                    };
                }
                ST => mem[(k % BPF_MEMWORDS) as usize] = a,
                STX => mem[(k % BPF_MEMWORDS) as usize] = x,
                ALU => {
                    let v = if i.code & SRC_X != 0 { x } else { k };
                    a = match i.code & 0xf0 {
                        ADD => a.wrapping_add(v),
                        SUB => a.wrapping_sub(v),
                        MUL => a.wrapping_mul(v),
                        DIV => match a.checked_div(v) {
                            Some(q) => q,
                            None => return 0,
                        },
                        MOD => match a.checked_rem(v) {
                            Some(r) => r,
                            None => return 0,
                        },
                        OR => a | v,
                        AND => a & v,
                        LSH => a.checked_shl(v).unwrap_or(0),
                        RSH => a.checked_shr(v).unwrap_or(0),
                        XOR => a ^ v,
                        _ => a.wrapping_neg(),
                    };
                }
                JMP => {
                    let v = if i.code & SRC_X != 0 { x } else { k };
                    let taken = match i.code & 0xf0 {
                        JA => {
                            pc += k as usize;
                            continue;
                        }
                        JEQ => a == v,
                        JGT => a > v,
                        JGE => a >= v,
                        _ => a & v != 0,
                    };
                    pc += usize::from(if taken { i.jt } else { i.jf });
                }
                RET => return if i.code & 0x18 == RVAL_A { a } else { k },
                _ => {
                    if i.code & 0xf8 == TXA {
                        a = x;
                    } else {
                        x = a;
                    }
                }
            }
        }
        0
    }

    /// Whether the frame passes.
    #[inline]
    pub fn matches(&self, frame: &[u8]) -> bool {
        self.run(frame, frame.len() as u32) != 0
    }
}

/// A big-endian load of 4, 2 or 1 bytes at `off`, or None past the end.
fn load(pkt: &[u8], off: u32, size: u16) -> Option<u32> {
    let off = off as usize;
    match size {
        W => pkt
            .get(off..off.checked_add(4)?)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        H => pkt
            .get(off..off.checked_add(2)?)
            .map(|b| u32::from(u16::from_be_bytes([b[0], b[1]]))),
        _ => pkt.get(off).map(|&b| u32::from(b)),
    }
}

/// Which frames of a port a capture takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Direction {
    /// Frames as received, before any rewrite.
    Rx = 0,
    /// Frames as handed to the egress port, after rewrite or encapsulation.
    Tx = 1,
    /// Frames the pipeline dropped, as they were when dropped.
    Drop = 2,
}

/// One captured frame, as the consumer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured<'a> {
    /// The port it was received on (rx, drop) or sent on (tx).
    pub port: PortId,
    /// Which way.
    pub direction: Direction,
    /// Why it was dropped (drops only).
    pub reason: Option<DropReason>,
    /// The worker's clock when its burst was handled (ns).
    pub ts_ns: u64,
    /// The frame's length (the captured bytes may be fewer).
    pub len: u32,
    /// Up to the session's snaplen bytes of the frame.
    pub data: &'a [u8],
}

#[derive(Debug)]
struct Slot {
    port: PortId,
    direction: Direction,
    reason: Option<DropReason>,
    ts_ns: u64,
    len: u32,
    caplen: usize,
    data: Box<[u8]>,
}

/// A bounded single-producer single-consumer ring of preallocated frame slots.
///
/// Producer and consumer never touch the same slot at once (a slot is the producer's from
/// `tail` until it publishes it, then the consumer's until it advances `head`), so each slot's
/// mutex is always free when taken: it costs one uncontended atomic exchange and keeps this
/// crate free of `unsafe`.
#[derive(Debug)]
pub struct CaptureRing {
    slots: Box<[Mutex<Slot>]>,
    /// Next slot the consumer reads (written by the consumer only).
    head: AtomicU64,
    /// Next slot the producer writes (written by the producer only).
    tail: AtomicU64,
    /// Frames that matched while the ring was full.
    dropped: AtomicU64,
}

impl CaptureRing {
    /// A ring of `slots` slots of `slot_bytes` bytes each, allocated now.
    pub fn new(slots: usize, slot_bytes: usize) -> CaptureRing {
        let slots = (0..slots.max(1))
            .map(|_| {
                Mutex::new(Slot {
                    port: 0,
                    direction: Direction::Rx,
                    reason: None,
                    ts_ns: 0,
                    len: 0,
                    caplen: 0,
                    data: vec![0u8; slot_bytes].into_boxed_slice(),
                })
            })
            .collect();
        CaptureRing {
            slots,
            head: AtomicU64::new(0),
            tail: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// Slots in the ring.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Frames lost because the ring was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Producer side: copies up to the slot size of `frame` in; counts it as dropped when full.
    fn push(
        &self,
        port: PortId,
        direction: Direction,
        reason: Option<DropReason>,
        ts_ns: u64,
        frame: &[u8],
    ) {
        let tail = self.tail.load(Ordering::Relaxed);
        let head = self.head.load(Ordering::Acquire);
        if tail - head >= self.slots.len() as u64 {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let index = (tail % self.slots.len() as u64) as usize;
        {
            let mut s = self.slots[index]
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let caplen = frame.len().min(s.data.len());
            s.data[..caplen].copy_from_slice(&frame[..caplen]);
            s.caplen = caplen;
            s.len = frame.len() as u32;
            s.port = port;
            s.direction = direction;
            s.reason = reason;
            s.ts_ns = ts_ns;
        }
        self.tail.store(tail + 1, Ordering::Release);
    }

    /// Consumer side: hands every published frame to `f` in order; returns how many.
    pub fn drain(&self, mut f: impl FnMut(Captured<'_>)) -> usize {
        let tail = self.tail.load(Ordering::Acquire);
        let mut head = self.head.load(Ordering::Relaxed);
        let mut n = 0;
        while head < tail {
            let index = (head % self.slots.len() as u64) as usize;
            {
                let s = self.slots[index]
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                f(Captured {
                    port: s.port,
                    direction: s.direction,
                    reason: s.reason,
                    ts_ns: s.ts_ns,
                    len: s.len,
                    data: &s.data[..s.caplen],
                });
            }
            head += 1;
            n += 1;
            self.head.store(head, Ordering::Release);
        }
        n
    }
}

/// What one worker captures, and where it puts it.
#[derive(Debug)]
pub struct CaptureSession {
    /// Frames the filter must pass (None: every frame).
    pub filter: Option<Filter>,
    /// Only this port's frames (None: every port).
    pub port: Option<PortId>,
    /// Take received frames.
    pub rx: bool,
    /// Take sent frames.
    pub tx: bool,
    /// Take dropped frames.
    pub drops: bool,
    /// The worker's ring.
    pub ring: CaptureRing,
}

impl CaptureSession {
    /// A session whose ring holds up to `snaplen` bytes per frame, within [`RING_BYTES`].
    pub fn new(
        filter: Option<Filter>,
        port: Option<PortId>,
        (rx, tx, drops): (bool, bool, bool),
        snaplen: u32,
    ) -> CaptureSession {
        let slot_bytes = (snaplen as usize).clamp(1, MAX_SLOT_BYTES);
        let slots = (RING_BYTES / slot_bytes).clamp(16, 4096);
        CaptureSession {
            filter,
            port,
            rx,
            tx,
            drops,
            ring: CaptureRing::new(slots, slot_bytes),
        }
    }

    /// Tests one frame and copies it in when it passes.
    #[inline]
    pub fn offer(
        &self,
        port: PortId,
        direction: Direction,
        reason: Option<DropReason>,
        ts_ns: u64,
        frame: &[u8],
    ) {
        if self.port.is_some_and(|p| p != port) {
            return;
        }
        if self.filter.as_ref().is_some_and(|f| !f.matches(frame)) {
            return;
        }
        self.ring.push(port, direction, reason, ts_ns, frame);
    }
}

/// Where the control side arms and disarms one worker's capture. The worker reads `armed`
/// (one relaxed load) once per poll and fetches the session only when it changed.
#[derive(Debug, Default)]
pub struct CaptureTap {
    /// Bumped on every arm and disarm (0: never armed).
    armed: AtomicU64,
    session: Mutex<Option<Arc<CaptureSession>>>,
}

impl CaptureTap {
    /// Control side: starts (Some) or stops (None) this worker's capture. The worker picks the
    /// change up at its next poll; after a stop it may still push into the old session's ring
    /// for that one poll, which the consumer's final drain picks up or drops with the ring.
    pub fn set(&self, session: Option<Arc<CaptureSession>>) {
        let mut s = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        *s = session;
        self.armed.fetch_add(1, Ordering::Release);
    }

    /// Worker side: the change counter, compared with the last one seen.
    #[inline]
    pub fn version(&self) -> u64 {
        self.armed.load(Ordering::Relaxed)
    }

    /// Worker side: the current session, when the version moved.
    pub fn session(&self) -> Option<Arc<CaptureSession>> {
        self.session
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests;
