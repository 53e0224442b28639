//! A port wrapper that injects faults, deterministically (after smoltcp's `fault_injector`).
//!
//! [`FaultPort`] wraps any [`Port`] and, per frame, by seeded dice rolls:
//! - drops received frames (releasing them to the inner port, so nothing leaks),
//! - truncates received frames to a random shorter length (possibly 0),
//! - corrupts one random byte of received frames (XOR with a non-zero value),
//! - refuses frames offered for transmission: the first refused frame and every frame after it
//!   stay in the caller's burst, as a full tx ring would leave them.
//!
//! Invariants: the same seed, configuration and call sequence give the same faults (a splitmix64-
//! seeded xorshift64* generator, no global randomness); a fault that is configured off rolls no
//! dice; every frame that comes in goes out exactly once (to the caller, to the inner port, or back
//! through `release`), and the counters record what was done.

use crate::{Burst, Frame, Port};

/// The probability of a fault, in steps of 2^-32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Chance(u64);

impl Chance {
    /// Never happens.
    pub const NEVER: Self = Self(0);
    /// Always happens.
    pub const ALWAYS: Self = Self(1 << 32);

    /// `p` percent (values above 100 mean always).
    pub const fn percent(p: u8) -> Self {
        let p = if p > 100 { 100 } else { p as u64 };
        Self((p << 32) / 100)
    }

    /// `n` in a million (values above a million mean always).
    pub const fn per_million(n: u32) -> Self {
        let n = if n > 1_000_000 { 1_000_000 } else { n as u64 };
        Self((n << 32) / 1_000_000)
    }

    /// True when this chance can never happen (so no dice are rolled for it).
    pub const fn is_never(self) -> bool {
        self.0 == 0
    }

    #[inline]
    fn roll(self, rng: &mut XorShift) -> bool {
        !self.is_never() && u64::from(rng.next_u32()) < self.0
    }
}

/// Which faults a [`FaultPort`] injects; all off by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FaultConfig {
    /// Chance that a received frame is dropped.
    pub rx_drop: Chance,
    /// Chance that a received frame (not dropped) is cut to a random shorter length.
    pub rx_truncate: Chance,
    /// Chance that one byte of a received frame (not dropped) is changed.
    pub rx_corrupt: Chance,
    /// Chance, per frame offered for transmission, that it and all frames after it are refused.
    pub tx_refuse: Chance,
}

impl FaultConfig {
    fn rx_active(&self) -> bool {
        !(self.rx_drop.is_never() && self.rx_truncate.is_never() && self.rx_corrupt.is_never())
    }
}

/// What a [`FaultPort`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Frames received from the inner port.
    pub rx_seen: u64,
    /// Received frames dropped.
    pub rx_dropped: u64,
    /// Received frames truncated.
    pub rx_truncated: u64,
    /// Received frames with a corrupted byte.
    pub rx_corrupted: u64,
    /// Frames offered for transmission.
    pub tx_seen: u64,
    /// Offered frames refused by the fault (not counting refusals by the inner port).
    pub tx_refused: u64,
}

/// xorshift64* (Vigna), seeded through splitmix64 so that any seed, 0 included, gives a good state.
#[derive(Debug, Clone)]
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        // xorshift's one forbidden state.
        Self(if z == 0 { 0x9e37_79b9_7f4a_7c15 } else { z })
    }

    #[inline]
    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    #[inline]
    fn next_u32(&mut self) -> u32 {
        // The high bits of xorshift64* are the strong ones.
        (self.next_u64() >> 32) as u32
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; `n` must be non-zero).
    #[inline]
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// Wraps a port and injects the faults of a [`FaultConfig`].
#[derive(Debug)]
pub struct FaultPort<P: Port> {
    inner: P,
    config: FaultConfig,
    rng: XorShift,
    stats: FaultStats,
}

impl<P: Port> FaultPort<P> {
    /// Wraps `inner`; `seed` fixes every dice roll.
    pub fn new(inner: P, seed: u64, config: FaultConfig) -> Self {
        Self {
            inner,
            config,
            rng: XorShift::new(seed),
            stats: FaultStats::default(),
        }
    }

    /// The faults injected.
    pub fn config(&self) -> &FaultConfig {
        &self.config
    }

    /// Changes the faults from the next call on (e.g. take a link down and up again).
    pub fn set_config(&mut self, config: FaultConfig) {
        self.config = config;
    }

    /// What the wrapper did so far.
    pub fn stats(&self) -> FaultStats {
        self.stats
    }

    /// The wrapped port.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// The wrapped port, mutably.
    pub fn inner_mut(&mut self) -> &mut P {
        &mut self.inner
    }

    /// Unwraps the port.
    pub fn into_inner(self) -> P {
        self.inner
    }
}

impl<P: Port> Port for FaultPort<P> {
    type Frame = P::Frame;

    fn rx_burst(&mut self, out: &mut Burst<P::Frame>) -> usize {
        let start = out.len();
        let n = self.inner.rx_burst(out);
        self.stats.rx_seen += n as u64;
        if n == 0 || !self.config.rx_active() {
            return n;
        }
        let fresh: Burst<P::Frame> = out.drain(start..).collect();
        for mut frame in fresh {
            if self.config.rx_drop.roll(&mut self.rng) {
                self.stats.rx_dropped += 1;
                self.inner.release(frame);
                continue;
            }
            let len = frame.data().len();
            if len > 0 && self.config.rx_truncate.roll(&mut self.rng) {
                frame.truncate(self.rng.below(len));
                self.stats.rx_truncated += 1;
            }
            let len = frame.data().len();
            if len > 0 && self.config.rx_corrupt.roll(&mut self.rng) {
                let at = self.rng.below(len);
                // 1..=255, so the byte always changes.
                let flip = 1 + self.rng.below(255) as u8;
                frame.data_mut()[at] ^= flip;
                self.stats.rx_corrupted += 1;
            }
            out.push(frame);
        }
        out.len() - start
    }

    fn tx_burst(&mut self, frames: &mut Burst<P::Frame>) -> usize {
        let offered = frames.len();
        self.stats.tx_seen += offered as u64;
        let pass = if self.config.tx_refuse.is_never() {
            offered
        } else {
            (0..offered)
                .position(|_| self.config.tx_refuse.roll(&mut self.rng))
                .unwrap_or(offered)
        };
        if pass == offered {
            return self.inner.tx_burst(frames);
        }
        // Hold the refused tail aside so the inner port sees only the head, then put it back
        // behind whatever the inner port itself refused: the burst keeps its order.
        let mut tail: Burst<P::Frame> = frames.drain(pass..).collect();
        self.stats.tx_refused += tail.len() as u64;
        let accepted = self.inner.tx_burst(frames);
        frames.extend(tail.drain(..));
        accepted
    }

    fn release(&mut self, frame: P::Frame) {
        self.inner.release(frame);
    }

    fn flush(&mut self) {
        self.inner.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{FramePool, MemFrame, MemoryPort};
    use proptest::prelude::*;

    fn port(pool: &FramePool, seed: u64, config: FaultConfig) -> FaultPort<MemoryPort> {
        FaultPort::new(MemoryPort::new(pool.clone()), seed, config)
    }

    /// Packets whose first two bytes number them, 64 bytes each.
    fn numbered(n: u16) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                let mut p = vec![0x5a; 64];
                p[..2].copy_from_slice(&i.to_be_bytes());
                p
            })
            .collect()
    }

    fn index(f: &MemFrame) -> u16 {
        u16::from_be_bytes([f.data()[0], f.data()[1]])
    }

    /// Receives `bursts` bursts, recording the frames' contents, releasing every frame.
    fn receive(p: &mut FaultPort<MemoryPort>, bursts: usize) -> Vec<Vec<u8>> {
        let mut seen = Vec::new();
        let mut b = Burst::new();
        for _ in 0..bursts {
            p.rx_burst(&mut b);
            for f in b.drain(..) {
                seen.push(f.data().to_vec());
                p.release(f);
            }
        }
        seen
    }

    #[test]
    fn chance_bounds() {
        assert_eq!(Chance::percent(0), Chance::NEVER);
        assert_eq!(Chance::percent(100), Chance::ALWAYS);
        assert_eq!(Chance::percent(200), Chance::ALWAYS);
        assert_eq!(Chance::per_million(1_000_000), Chance::ALWAYS);
        assert_eq!(Chance::per_million(500_000), Chance::percent(50));
        let mut rng = XorShift::new(0);
        assert!((0..1000).all(|_| Chance::ALWAYS.roll(&mut rng)));
        assert!((0..1000).all(|_| !Chance::NEVER.roll(&mut rng)));
    }

    #[test]
    fn no_faults_is_transparent() {
        let pool = FramePool::new(64);
        let mut p = port(&pool, 1, FaultConfig::default());
        p.inner_mut().replay(numbered(5)).unwrap();
        let seen = receive(&mut p, 2);
        assert_eq!(seen.len(), 64);
        assert_eq!(seen[..5], numbered(5)[..]);
        assert_eq!(p.stats().rx_seen, 64);
        assert_eq!(pool.outstanding(), 0);
    }

    #[test]
    fn drop_fraction_is_close_and_frames_are_released() {
        let pool = FramePool::new(64);
        let config = FaultConfig {
            rx_drop: Chance::percent(25),
            ..FaultConfig::default()
        };
        let mut p = port(&pool, 7, config);
        p.inner_mut().replay(numbered(100)).unwrap();
        let seen = receive(&mut p, 1000);
        let s = p.stats();
        assert_eq!(s.rx_seen, 32_000);
        assert_eq!(s.rx_dropped + seen.len() as u64, 32_000);
        // 25% of 32000 is 8000; a standard deviation is about 77.
        assert!((7_600..=8_400).contains(&s.rx_dropped), "{s:?}");
        assert_eq!(pool.outstanding(), 0);
    }

    #[test]
    fn drop_all_receives_nothing() {
        let pool = FramePool::new(64);
        let config = FaultConfig {
            rx_drop: Chance::ALWAYS,
            ..FaultConfig::default()
        };
        let mut p = port(&pool, 7, config);
        p.inner_mut().replay(numbered(3)).unwrap();
        assert!(receive(&mut p, 10).is_empty());
        assert_eq!(p.stats().rx_dropped, 320);
        assert_eq!(pool.outstanding(), 0);
    }

    #[test]
    fn same_seed_same_faults_other_seed_other_faults() {
        let config = FaultConfig {
            rx_drop: Chance::percent(10),
            rx_truncate: Chance::percent(10),
            rx_corrupt: Chance::percent(10),
            tx_refuse: Chance::NEVER,
        };
        let run = |seed| {
            let pool = FramePool::new(64);
            let mut p = port(&pool, seed, config);
            p.inner_mut().replay(numbered(50)).unwrap();
            receive(&mut p, 20)
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }

    #[test]
    fn truncate_always_shortens() {
        let pool = FramePool::new(64);
        let config = FaultConfig {
            rx_truncate: Chance::ALWAYS,
            ..FaultConfig::default()
        };
        let mut p = port(&pool, 3, config);
        p.inner_mut().replay(numbered(10)).unwrap();
        let seen = receive(&mut p, 10);
        assert_eq!(seen.len(), 320);
        assert!(seen.iter().all(|d| d.len() < 64));
        assert!(seen.iter().any(|d| d.len() > 32));
        assert_eq!(p.stats().rx_truncated, 320);
        assert_eq!(pool.outstanding(), 0);
    }

    #[test]
    fn corrupt_always_changes_exactly_one_byte() {
        let pool = FramePool::new(64);
        let config = FaultConfig {
            rx_corrupt: Chance::ALWAYS,
            ..FaultConfig::default()
        };
        let mut p = port(&pool, 3, config);
        let originals = numbered(10);
        p.inner_mut().replay(&originals).unwrap();
        let seen = receive(&mut p, 10);
        for (i, d) in seen.iter().enumerate() {
            let orig = &originals[i % 10];
            let diffs = d.iter().zip(orig).filter(|(a, b)| a != b).count();
            assert_eq!(diffs, 1, "frame {i}");
        }
        assert_eq!(p.stats().rx_corrupted, 320);
    }

    #[test]
    fn tx_refuse_all_leaves_frames_for_the_caller() {
        let pool = FramePool::new(64);
        let config = FaultConfig {
            tx_refuse: Chance::ALWAYS,
            ..FaultConfig::default()
        };
        let mut p = port(&pool, 3, config);
        p.inner_mut().replay(numbered(40)).unwrap();
        let mut b = Burst::new();
        assert_eq!(p.rx_burst(&mut b), 32);
        assert_eq!(p.tx_burst(&mut b), 0);
        assert_eq!(b.len(), 32);
        assert!(
            b.iter()
                .enumerate()
                .all(|(i, f)| usize::from(index(f)) == i)
        );
        assert_eq!(p.stats().tx_refused, 32);
        assert_eq!(pool.outstanding(), 32);
        for f in b.drain(..) {
            p.release(f);
        }
        assert_eq!(pool.outstanding(), 0);
        assert!(p.inner().sent().is_empty());

        // Link back up: the same frames go through.
        p.set_config(FaultConfig::default());
        p.rx_burst(&mut b);
        assert_eq!(p.tx_burst(&mut b), 32);
        assert_eq!(p.inner_mut().take_sent().len(), 32);
        assert_eq!(pool.outstanding(), 0);
    }

    #[test]
    fn empty_frames_survive_every_fault() {
        let pool = FramePool::new(64);
        let config = FaultConfig {
            rx_drop: Chance::NEVER,
            rx_truncate: Chance::ALWAYS,
            rx_corrupt: Chance::ALWAYS,
            tx_refuse: Chance::NEVER,
        };
        let mut p = port(&pool, 9, config);
        p.inner_mut().replay([[0u8; 0]]).unwrap();
        let seen = receive(&mut p, 2);
        assert_eq!(seen.len(), 64);
        assert!(seen.iter().all(Vec::is_empty));
    }

    proptest! {
        // Whatever both layers refuse, the accepted frames are the front of the burst in order,
        // the refused ones stay behind them in order, and every frame is accounted for.
        #[test]
        fn partial_tx_keeps_order_and_frames(seed in any::<u64>(), outer in 0u8..=100, inner in 0u8..=100, n in 0u16..=32) {
            let pool = FramePool::new(64);
            let inner_port = FaultPort::new(
                MemoryPort::new(pool.clone()),
                seed ^ 1,
                FaultConfig { tx_refuse: Chance::percent(inner), ..FaultConfig::default() },
            );
            let mut p = FaultPort::new(
                inner_port,
                seed,
                FaultConfig { tx_refuse: Chance::percent(outer), ..FaultConfig::default() },
            );
            let mut b = Burst::new();
            for pkt in numbered(n) {
                b.push(pool.frame_from(&pkt).unwrap());
            }
            let accepted = p.tx_burst(&mut b);
            prop_assert_eq!(accepted + b.len(), usize::from(n));
            let sent = p.inner_mut().inner_mut().take_sent();
            prop_assert_eq!(sent.len(), accepted);
            for (i, s) in sent.iter().enumerate() {
                prop_assert_eq!(usize::from(u16::from_be_bytes([s[0], s[1]])), i);
            }
            for (k, f) in b.iter().enumerate() {
                prop_assert_eq!(usize::from(index(f)), accepted + k);
            }
            for f in b.drain(..) {
                p.release(f);
            }
            prop_assert_eq!(pool.outstanding(), 0);
        }
    }
}
