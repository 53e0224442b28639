//! The in-process memory rig: one [`Worker`] over memory ports, on the calling thread, driven
//! on a simulated clock (or the caller's). `ecmpfwd demo` and `ecmpfwd bench` run on it, and so
//! do the golden fixtures (re-exported by the test kit), the daemon's in-process tests and the
//! pipeline fuzz target.
//!
//! Layout: ports `0..n` are [`MemoryPort`]s, port id = index (for [`Rig::from_config`], the
//! config's `[[port]]` order, as `ecmpfwd run` numbers them), all drawing from one
//! [`FramePool`]; the worker reads its tables from a [`SnapshotCell`] the rig shares with whoever
//! publishes ([`Rig::publish`], or the cell handed to [`Rig::new`]). Frames enter by
//! [`Rig::inject`] on any port (queued, in order) or by [`Rig::replay`] (cycled forever); the
//! one-shot runs ([`Rig::run`], [`Rig::run_burst`]) inject on [`INGRESS`]. What the worker sends
//! is held on its port in [`TxMode::Collect`] until read ([`Rig::take_sent`],
//! [`Rig::for_each_sent`]), or counted and recycled at once in [`TxMode::Count`].
//!
//! Clock: [`Rig::poll`] polls at the rig's time, then advances it by [`RigOptions::step_ns`]
//! (0 keeps it still until [`Rig::advance`]); the same inputs give the same run.
//! [`Rig::poll_at`] polls at the caller's time and leaves the rig's alone (the bench's wall
//! clock).
//!
//! Cost: `pool_frames` buffers of [`ecmp_port::memory::FRAME_SIZE`] bytes and the worker's flow
//! cache, allocated once by the constructor. [`Rig::poll_at`] is the worker's poll and nothing
//! else; [`Rig::poll`] adds one addition.
//!
//! Invariants:
//! - no allocation per burst after warm-up: the ports' queues are sized for the whole pool when
//!   built, so polling (and injecting) never grows them; only the inspection side allocates
//!   ([`Rig::take_sent`] copies, [`Rig::run_burst`] builds its report);
//! - every frame accounted for: after [`Rig::settle`] each injected frame was received, then sent
//!   or dropped and counted under exactly one reason; once the sent frames are read,
//!   `pool().outstanding()` is back to 0 (in [`TxMode::Count`], right after [`Rig::drain`]).

use std::sync::Arc;

use ecmp_dataplane::counters::{Counter, Counters, SharedCounters};
use ecmp_dataplane::drop::DropReason;
use ecmp_dataplane::error::DataplaneError;
use ecmp_dataplane::pipeline::PipelineConfig;
use ecmp_dataplane::worker::Worker;
use ecmp_port::memory::{FramePool, MemoryPort, TxMode};
use ecmp_port::{BURST, Frame as _, PortError, PortId};
use ecmp_tables::snapshot::{Snapshot, SnapshotCell};

use crate::config::Config;
use crate::setup::{self, SetupError, Tables, pipeline_config};

/// The port [`Rig::run`] and [`Rig::run_burst`] inject on (the config's first `[[port]]`).
pub const INGRESS: PortId = 0;
/// Default frames in a rig's pool: a few bursts' worth for every port's queues.
pub const POOL_FRAMES: usize = 16 * BURST;
/// Default simulated time per poll.
pub const STEP_NS: u64 = 1_000_000;
/// Polls in a row that take no frame while some are queued before the worker counts as stalled.
const STALL_POLLS: usize = 1_000;

/// Why a rig could not be built or run.
#[derive(Debug, thiserror::Error)]
pub enum RigError {
    /// The config's tables could not be built.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The worker could not be built (e.g. a flow cache capacity out of range).
    #[error("worker: {0}")]
    Dataplane(#[from] DataplaneError),
    /// A memory port refused a frame (pool exhausted, frame too large).
    #[error("port: {0}")]
    Port(#[from] PortError),
    /// A frame was given to a port the rig does not have.
    #[error("the rig has no port {0}")]
    NoPort(PortId),
    /// The worker stopped taking frames off its queues.
    #[error("the worker stopped taking frames with {pending} still queued")]
    Stalled {
        /// Frames left in the queues.
        pending: usize,
    },
    /// One frame in did not give exactly one frame out or exactly one drop.
    #[error("one frame in gave {sent} sent and {drops} drops")]
    Unaccounted {
        /// Frames sent.
        sent: usize,
        /// Drops counted.
        drops: u64,
    },
}

/// How a rig is sized and clocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RigOptions {
    /// Frames in the pool: everything queued, in flight and held as sent at once must fit.
    pub pool_frames: usize,
    /// What the ports do with frames they send.
    pub tx_mode: TxMode,
    /// The time of the first [`Rig::poll`].
    pub start_ns: u64,
    /// How far each [`Rig::poll`] advances the clock.
    pub step_ns: u64,
}

impl Default for RigOptions {
    /// [`POOL_FRAMES`] frames, collecting, first poll at [`STEP_NS`] and [`STEP_NS`] per poll.
    fn default() -> Self {
        Self {
            pool_frames: POOL_FRAMES,
            tx_mode: TxMode::Collect,
            start_ns: STEP_NS,
            step_ns: STEP_NS,
        }
    }
}

/// What one frame became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Sent on `port` as `frame`.
    Tx {
        /// The egress port.
        port: PortId,
        /// The bytes sent.
        frame: Vec<u8>,
    },
    /// Dropped for this reason.
    Drop(DropReason),
}

/// What a burst of frames became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BurstOutcome {
    /// Frames sent, per port id, in order.
    pub sent: Vec<Vec<Vec<u8>>>,
    /// Drops counted during the burst, per reason (indexed by `DropReason as usize`).
    pub drops: [u64; DropReason::COUNT],
}

impl BurstOutcome {
    /// Frames sent on all ports.
    pub fn sent_total(&self) -> usize {
        self.sent.iter().map(Vec::len).sum()
    }

    /// Drops of all reasons.
    pub fn drops_total(&self) -> u64 {
        self.drops.iter().sum()
    }
}

/// A worker over memory ports, its pool, its snapshot cell and its clock.
pub struct Rig {
    worker: Worker<MemoryPort>,
    pool: FramePool,
    cell: Arc<SnapshotCell>,
    now_ns: u64,
    step_ns: u64,
}

impl Rig {
    /// A worker with `pipeline`'s settings over `ports` memory ports, reading tables from
    /// `cell` (which must have room for one more reader).
    pub fn new(
        ports: usize,
        pipeline: &PipelineConfig,
        cell: Arc<SnapshotCell>,
        opts: RigOptions,
    ) -> Result<Self, RigError> {
        let pool = FramePool::new(opts.pool_frames);
        let ports = (0..ports)
            .map(|_| MemoryPort::with_tx_mode(pool.clone(), opts.tx_mode))
            .collect();
        let counters = Arc::new(SharedCounters::default());
        let worker = Worker::new(ports, pipeline, Arc::clone(&cell), counters)?;
        Ok(Self {
            worker,
            pool,
            cell,
            now_ns: opts.start_ns,
            step_ns: opts.step_ns,
        })
    }

    /// The worker `ecmpfwd run` builds for `cfg` (tables by [`setup::build`], settings by
    /// [`pipeline_config`], one port per `[[port]]`), and the control-side tables, so that the
    /// caller can change groups and [`Self::publish`] the result.
    pub fn from_config(cfg: &Config, opts: RigOptions) -> Result<(Self, Tables), RigError> {
        let tables = setup::build(cfg)?;
        let cell = Arc::new(SnapshotCell::new(tables.snapshot.clone(), 1));
        let rig = Self::new(cfg.ports.len(), &pipeline_config(cfg), cell, opts)?;
        Ok((rig, tables))
    }

    fn port(&mut self, port: PortId) -> Result<&mut MemoryPort, RigError> {
        self.worker
            .ports_mut()
            .get_mut(usize::from(port))
            .ok_or(RigError::NoPort(port))
    }

    /// Queues a copy of `frame` on `port` for the next poll (its pool frame is taken now).
    pub fn inject(&mut self, port: PortId, frame: &[u8]) -> Result<(), RigError> {
        Ok(self.port(port)?.inject(frame)?)
    }

    /// Queues a copy of each of `frames` on `port`, in order.
    pub fn inject_all<I, F>(&mut self, port: PortId, frames: I) -> Result<(), RigError>
    where
        I: IntoIterator<Item = F>,
        F: AsRef<[u8]>,
    {
        let port = self.port(port)?;
        for f in frames {
            port.inject(f.as_ref())?;
        }
        Ok(())
    }

    /// Makes `port` receive `frames` in a cycle forever, after anything injected (copied once,
    /// here; an empty list stops the replay).
    pub fn replay<I, F>(&mut self, port: PortId, frames: I) -> Result<(), RigError>
    where
        I: IntoIterator<Item = F>,
        F: AsRef<[u8]>,
    {
        Ok(self.port(port)?.replay(frames)?)
    }

    /// One poll of every port at the rig's time, which then advances by a step; returns the
    /// frames received.
    pub fn poll(&mut self) -> usize {
        let n = self.worker.poll(self.now_ns);
        self.now_ns += self.step_ns;
        n
    }

    /// One poll at `now_ns` (a monotonic clock the caller reads once per poll); the rig's own
    /// clock is left alone.
    #[inline]
    pub fn poll_at(&mut self, now_ns: u64) -> usize {
        self.worker.poll(now_ns)
    }

    /// Moves the rig's clock forward by `ns`.
    pub fn advance(&mut self, ns: u64) {
        self.now_ns += ns;
    }

    /// The time of the next [`Self::poll`].
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// Injected frames not yet received, all ports together.
    pub fn pending(&mut self) -> usize {
        self.worker.ports_mut().iter().map(|p| p.rx_pending()).sum()
    }

    /// Polls until every injected frame was received (some may still sit in tx batches: see
    /// [`Self::settle`]).
    pub fn run_pending(&mut self) -> Result<(), RigError> {
        let mut idle = 0;
        loop {
            let pending = self.pending();
            if pending == 0 {
                return Ok(());
            }
            if self.poll() > 0 {
                idle = 0;
            } else {
                idle += 1;
                if idle > STALL_POLLS {
                    return Err(RigError::Stalled { pending });
                }
            }
        }
    }

    /// Polls until every injected frame was received, then sends the partial tx batches: every
    /// frame injected so far is now sent or dropped.
    pub fn settle(&mut self) -> Result<(), RigError> {
        self.run_pending()?;
        self.drain();
        Ok(())
    }

    /// Sends the partial tx batches.
    pub fn drain(&mut self) {
        self.worker.drain();
    }

    /// Copies of the frames each port sent since the last read (index = port id); their pool
    /// frames go back.
    pub fn take_sent(&mut self) -> Vec<Vec<Vec<u8>>> {
        self.worker
            .ports_mut()
            .iter_mut()
            .map(MemoryPort::take_sent)
            .collect()
    }

    /// Calls `f` with each frame sent since the last read, port by port and in order on each,
    /// then returns their pool frames (no copy).
    pub fn for_each_sent(&mut self, mut f: impl FnMut(PortId, &[u8])) {
        for (port, p) in (0..=PortId::MAX).zip(self.worker.ports_mut()) {
            for frame in p.sent() {
                f(port, frame.data());
            }
            p.clear_sent();
        }
    }

    /// Injects `frames` on [`INGRESS`], settles, and reports what was sent (taken from every
    /// port) and dropped.
    pub fn run_burst<I, F>(&mut self, frames: I) -> Result<BurstOutcome, RigError>
    where
        I: IntoIterator<Item = F>,
        F: AsRef<[u8]>,
    {
        let before = self.counters().drops;
        self.inject_all(INGRESS, frames)?;
        self.settle()?;
        let after = self.counters().drops;
        let mut drops = [0u64; DropReason::COUNT];
        for (d, (a, b)) in drops.iter_mut().zip(after.iter().zip(before.iter())) {
            *d = a.saturating_sub(*b);
        }
        Ok(BurstOutcome {
            sent: self.take_sent(),
            drops,
        })
    }

    /// Runs one frame in on [`INGRESS`]: it must be sent exactly once or dropped exactly once.
    pub fn run(&mut self, frame: &[u8]) -> Result<Outcome, RigError> {
        let out = self.run_burst([frame])?;
        let (sent, drops) = (out.sent_total(), out.drops_total());
        if (sent, drops) == (1, 0) {
            for (port, mut frames) in (0..=PortId::MAX).zip(out.sent) {
                if let Some(frame) = frames.pop() {
                    return Ok(Outcome::Tx { port, frame });
                }
            }
        }
        if (sent, drops) == (0, 1) {
            for (reason, n) in DropReason::ALL.iter().zip(out.drops.iter()) {
                if *n == 1 {
                    return Ok(Outcome::Drop(*reason));
                }
            }
        }
        Err(RigError::Unaccounted { sent, drops })
    }

    /// Publishes `snapshot` to the worker (picked up at its next poll); returns its generation.
    pub fn publish(&self, snapshot: Snapshot) -> u64 {
        self.cell.publish(snapshot)
    }

    /// The cell the worker reads its tables from.
    pub fn cell(&self) -> &Arc<SnapshotCell> {
        &self.cell
    }

    /// The snapshot the worker used at its last poll.
    pub fn snapshot(&self) -> &Arc<Snapshot> {
        self.worker.snapshot()
    }

    /// The pipeline's counters, current to the last frame processed.
    #[inline]
    pub fn counters(&self) -> &Counters {
        self.worker.pipeline().counters()
    }

    /// One counter of [`Self::counters`].
    pub fn counter(&self, c: Counter) -> u64 {
        self.counters().get(c)
    }

    /// The frame pool (nothing leaked: `outstanding() == 0` once sent frames are read).
    pub fn pool(&self) -> &FramePool {
        &self.pool
    }

    /// The worker (pipeline, flow cache, per-hop counters).
    pub fn worker(&self) -> &Worker<MemoryPort> {
        &self.worker
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use ecmp_testkit::frames::FrameSpec;

    use super::*;

    /// Two ports; 192.0.2.0/24 goes to two hops on port 1.
    const CONFIG: &str = r#"
[instance]
name = "rig"
[[port]]
name = "uplink"
kind = "memory"
mac = "02:00:00:00:00:01"
[[port]]
name = "servers"
kind = "memory"
mac = "02:00:00:00:00:02"
[[worker]]
core = 0
ports = ["uplink", "servers"]
[[nexthop]]
name = "s1"
address = "198.18.1.1"
port = "servers"
mac = "02:be:00:00:00:01"
[[nexthop]]
name = "s2"
address = "198.18.1.2"
port = "servers"
mac = "02:be:00:00:00:02"
[[group]]
name = "web"
members = ["s1", "s2"]
[[route]]
prefix = "192.0.2.0/24"
group = "web"
"#;

    fn rig(opts: RigOptions) -> (Rig, Tables) {
        let cfg = Config::parse(CONFIG, "rig.toml").expect("config");
        Rig::from_config(&cfg, opts).expect("rig")
    }

    fn frame(dst: Ipv4Addr, sport: u16) -> Vec<u8> {
        let src = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
        FrameSpec::udp(src, IpAddr::V4(dst), sport, 80, 60)
            .build()
            .expect("a UDP frame")
    }

    fn routed(n: u16) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| frame(Ipv4Addr::new(192, 0, 2, 10), 1000 + i))
            .collect()
    }

    #[test]
    fn a_burst_is_sent_or_dropped_frame_by_frame_and_the_pool_comes_back() {
        let (mut rig, _) = rig(RigOptions::default());
        let mut frames = routed(100);
        frames.push(frame(Ipv4Addr::new(203, 0, 113, 1), 1));
        let out = rig.run_burst(&frames).expect("burst");
        assert_eq!(out.sent.len(), 2);
        assert_eq!((out.sent[0].len(), out.sent[1].len()), (0, 100));
        assert_eq!(out.drops_total(), 1);
        assert_eq!(out.drops[DropReason::NoRoute as usize], 1);
        assert_eq!(rig.counter(Counter::RxPackets), 101);
        assert_eq!(rig.pool().outstanding(), 0);
    }

    #[test]
    fn run_names_the_port_or_the_reason() {
        let (mut rig, _) = rig(RigOptions::default());
        let f = frame(Ipv4Addr::new(192, 0, 2, 1), 7);
        match rig.run(&f).expect("run") {
            Outcome::Tx { port, frame } => {
                assert_eq!(port, 1);
                assert_eq!(frame.len(), f.len());
            }
            other => panic!("not sent: {other:?}"),
        }
        let lost = frame(Ipv4Addr::new(203, 0, 113, 1), 7);
        assert_eq!(
            rig.run(&lost).expect("run"),
            Outcome::Drop(DropReason::NoRoute)
        );
        assert_eq!(rig.pool().outstanding(), 0);
    }

    #[test]
    fn sent_frames_are_held_until_read_in_place() {
        let (mut rig, _) = rig(RigOptions::default());
        rig.inject_all(INGRESS, routed(40)).expect("inject");
        assert_eq!(rig.pending(), 40);
        rig.settle().expect("settle");
        assert_eq!(rig.pool().outstanding(), 40, "held on port 1 until read");
        let mut seen = Vec::new();
        rig.for_each_sent(|port, f| seen.push((port, f.len())));
        assert_eq!(seen, vec![(1, 60); 40]);
        assert_eq!(rig.pool().outstanding(), 0);
        assert!(rig.take_sent().iter().all(Vec::is_empty));
    }

    #[test]
    fn published_tables_are_used_from_the_next_poll() {
        let (mut rig, mut tables) = rig(RigOptions::default());
        let before = rig.snapshot().generation;
        for hop in [1, 2] {
            let g = tables.group_mut(1).expect("group");
            g.set_state(hop, ecmp_tables::nexthop::HopState::Failed)
                .expect("state");
        }
        let generation = rig.publish(tables.rebuild_snapshot());
        assert!(generation > before);
        assert_eq!(rig.snapshot().generation, before, "not before a poll");
        let out = rig.run_burst(routed(3)).expect("burst");
        assert_eq!(rig.snapshot().generation, generation);
        assert_eq!(out.sent_total(), 0);
        assert_eq!(out.drops[DropReason::NoNextHop as usize], 3);
        assert_eq!(rig.cell().min_reported(), generation);
    }

    #[test]
    fn the_clock_steps_per_poll_and_poll_at_leaves_it_alone() {
        let opts = RigOptions {
            start_ns: 5,
            step_ns: 10,
            ..RigOptions::default()
        };
        let (mut rig, _) = rig(opts);
        assert_eq!(rig.poll(), 0);
        assert_eq!(rig.poll(), 0);
        assert_eq!(rig.now_ns(), 25);
        rig.poll_at(1_000_000_000);
        rig.advance(75);
        assert_eq!(rig.now_ns(), 100);
    }

    #[test]
    fn counting_ports_recycle_at_once_and_replay_cycles() {
        let opts = RigOptions {
            tx_mode: TxMode::Count,
            ..RigOptions::default()
        };
        let (mut rig, _) = rig(opts);
        rig.replay(INGRESS, routed(50)).expect("replay");
        while rig.counter(Counter::RxPackets) < 500 {
            rig.poll_at(0);
        }
        rig.drain();
        let c = rig.counters();
        assert_eq!(c.get(Counter::TxPackets), c.get(Counter::RxPackets));
        assert_eq!(rig.pool().outstanding(), 0);
        assert!(rig.take_sent().iter().all(Vec::is_empty), "nothing held");
    }

    #[test]
    fn a_missing_port_or_a_full_pool_is_an_error() {
        let opts = RigOptions {
            pool_frames: 4,
            ..RigOptions::default()
        };
        let (mut rig, _) = rig(opts);
        assert!(matches!(
            rig.inject(2, &routed(1)[0]),
            Err(RigError::NoPort(2))
        ));
        assert!(matches!(rig.run_burst(routed(5)), Err(RigError::Port(_))));
    }
}
