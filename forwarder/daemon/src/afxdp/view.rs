//! What the control socket sees of the running workers: counters read from their published
//! atomics, and flow-cache questions asked through a per-worker mailbox that the worker answers
//! between two polls (the flow cache is the worker's own; nobody else reads it). The same mailbox
//! carries a reload's new flow-cache timeouts, which the worker applies between two polls.

use ecmp_io::tsc::TscClock;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ecmp_control::control::CaptureStream;
use ecmp_control::control::{DataQueryError, Dataplane};
use ecmp_dataplane::capture::CaptureTap;
use ecmp_dataplane::flowcache::FlowTimeouts;
use ecmp_proto::ctl::{CaptureRequest, CaptureStarted};

use crate::capture::CaptureHub;
use ecmp_dataplane::counters::{Counter, SharedCounters, SharedHopPackets};
use ecmp_dataplane::drop::DropReason;
use ecmp_dataplane::pipeline::{Choice, ingress_mac};
use ecmp_mem::{Placement, TableMemory};
use ecmp_port::{PortId, PortStats};
use ecmp_proto::ctl::{
    DeviceState, FlowEntry, FlowsReply, HopCounters, HopFlows, PortCounters, StatsReply,
    TraceQuery, TraceReply, TraceVia, UmemFrames, WorkerCounters,
};
use ecmp_tables::snapshot::{Snapshot, SnapshotCell};
use ecmp_wire::meta::IpVersion;

/// The port `ecmpctl trace` flows are traced as arriving on.
const TRACE_INGRESS: PortId = 0;

/// How long the control thread waits for a worker to answer a mailbox question.
const ANSWER_WAIT: Duration = Duration::from_secs(1);

/// A question for one worker.
#[derive(Debug, Clone)]
pub enum Query {
    /// Flow-cache totals per hop and the first `top` flows.
    Flows {
        /// Flows to list.
        top: usize,
    },
    /// Which hop this frame would take.
    Trace {
        /// The port it would arrive on.
        ingress: PortId,
        /// A packet of the flow, as it would arrive (addressed to that port's MAC).
        frame: Vec<u8>,
    },
}

/// A worker's answer.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Flow-cache totals.
    Flows {
        /// Flows cached.
        total: u64,
        /// (hop id, flows).
        per_hop: Vec<(u32, u64)>,
        /// Up to `top` flows.
        flows: Vec<FlowEntry>,
        /// Flows the cache holds at most.
        capacity: u64,
    },
    /// The choice (or why the packet would be dropped).
    Trace(Result<Choice, DropReason>),
}

#[derive(Debug, Default)]
struct Slot {
    query: Option<Query>,
    answer: Option<Answer>,
    /// Timeouts posted and not taken yet (the latest wins).
    timeouts: Option<FlowTimeouts>,
}

/// One worker's mailbox: the control thread posts one question at a time and waits, or posts
/// new flow-cache timeouts without waiting; the worker looks at `pending` (one load) once per
/// poll loop. `pending` is set and cleared under the slot's lock, and stays set while timeouts
/// wait, so a post that races with the worker's [`Mailbox::serve`] is seen on its next loop.
#[derive(Debug, Default)]
pub struct Mailbox {
    pending: AtomicBool,
    slot: Mutex<Slot>,
    answered: Condvar,
}

impl Mailbox {
    /// Worker side: whether a question waits (cheap; call once per loop).
    #[inline]
    pub fn pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Worker side: takes the question, answers it with `f`, and wakes the asker.
    pub fn serve(&self, f: impl FnOnce(Query) -> Answer) {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(q) = slot.query.take() {
            slot.answer = Some(f(q));
        }
        self.pending
            .store(slot.timeouts.is_some(), Ordering::Release);
        self.answered.notify_all();
    }

    /// Worker side: the timeouts posted since the last call, if any (call before
    /// [`Self::serve`] when `pending`).
    pub fn take_timeouts(&self) -> Option<FlowTimeouts> {
        self.slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .timeouts
            .take()
    }

    /// Control side: hands the worker new flow-cache timeouts, which it applies between two
    /// polls; does not wait.
    pub fn post_timeouts(&self, timeouts: FlowTimeouts) {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        slot.timeouts = Some(timeouts);
        self.pending.store(true, Ordering::Release);
    }

    /// Control side: asks and waits (bounded) for the answer.
    pub fn ask(&self, query: Query) -> Option<Answer> {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        slot.query = Some(query);
        slot.answer = None;
        self.pending.store(true, Ordering::Release);
        let deadline = Instant::now() + ANSWER_WAIT;
        while slot.answer.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                slot.query = None;
                self.pending
                    .store(slot.timeouts.is_some(), Ordering::Release);
                return None;
            }
            slot = self
                .answered
                .wait_timeout(slot, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        slot.answer.take()
    }
}

/// Port counters a worker publishes (plain relaxed atomics, written by that worker only).
#[derive(Debug, Default)]
pub struct SharedPortStats {
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
    tx_refused: AtomicU64,
}

impl SharedPortStats {
    /// Worker side: publishes the port's counters.
    pub fn publish(&self, s: &PortStats) {
        self.rx_packets.store(s.rx_packets, Ordering::Relaxed);
        self.rx_bytes.store(s.rx_bytes, Ordering::Relaxed);
        self.tx_packets.store(s.tx_packets, Ordering::Relaxed);
        self.tx_bytes.store(s.tx_bytes, Ordering::Relaxed);
        self.tx_refused.store(s.tx_refused, Ordering::Relaxed);
    }

    fn read(&self) -> [u64; 5] {
        [
            self.rx_packets.load(Ordering::Relaxed),
            self.rx_bytes.load(Ordering::Relaxed),
            self.tx_packets.load(Ordering::Relaxed),
            self.tx_bytes.load(Ordering::Relaxed),
            self.tx_refused.load(Ordering::Relaxed),
        ]
    }
}

/// Where a worker's UMEM frames are, as it last published them (between two polls).
#[derive(Debug, Default)]
pub struct SharedUmemStats {
    frames: AtomicU64,
    outstanding: AtomicU64,
    kernel_held: AtomicU64,
    in_worker: AtomicU64,
}

/// One reading of [`SharedUmemStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UmemReading {
    /// Frames the UMEM has.
    pub frames: u64,
    /// Frames not on its free list.
    pub outstanding: u64,
    /// Frames lent to the kernel: in the ports' fill, rx, tx and completion rings.
    pub kernel_held: u64,
    /// Frames in the worker's own batches.
    pub in_worker: u64,
}

impl SharedUmemStats {
    /// Worker side, between polls.
    pub fn publish(&self, r: UmemReading) {
        self.frames.store(r.frames, Ordering::Relaxed);
        self.outstanding.store(r.outstanding, Ordering::Relaxed);
        self.kernel_held.store(r.kernel_held, Ordering::Relaxed);
        self.in_worker.store(r.in_worker, Ordering::Relaxed);
    }

    /// The last reading (fields stored one by one: a reader racing a publish may mix two
    /// readings, each of which was consistent; a leak shows in every reading after it).
    pub fn read(&self) -> UmemReading {
        UmemReading {
            frames: self.frames.load(Ordering::Relaxed),
            outstanding: self.outstanding.load(Ordering::Relaxed),
            kernel_held: self.kernel_held.load(Ordering::Relaxed),
            in_worker: self.in_worker.load(Ordering::Relaxed),
        }
    }
}

/// What the control side holds of one worker.
#[derive(Debug)]
pub struct WorkerShared {
    /// The pipeline's counters.
    pub counters: Arc<SharedCounters>,
    /// Per port of the worker (index = port id).
    pub ports: Vec<Arc<SharedPortStats>>,
    /// Questions from the control socket.
    pub mailbox: Arc<Mailbox>,
    /// The CPU it is pinned to.
    pub cpu: Option<usize>,
    /// Where its flow cache and UMEM live (reported once it started).
    pub memory: Vec<Placement>,
    /// Where `ecmpctl capture` arms it.
    pub tap: Arc<CaptureTap>,
    /// Its packets per hop id.
    pub hops: Arc<SharedHopPackets>,
    /// Where its UMEM's frames are (AF_XDP workers; `None` for backends without a UMEM).
    pub umem: Option<Arc<SharedUmemStats>>,
}

#[derive(Debug, Default)]
struct Rates {
    at: Option<Instant>,
    /// Per (worker, port): rx, tx packets at `at`.
    ports: Vec<(u64, u64)>,
    /// Per worker: rx packets at `at`.
    workers: Vec<u64>,
    /// Per hop id: its address and packets at `at`.
    hops: Vec<Option<(IpAddr, u64)>>,
}

/// Reads the state of the devices behind the ports, for `stats` (the DPDK runtime's link
/// state and device counters; the control thread calls it, never a worker).
pub trait DeviceReader: std::fmt::Debug + Send + Sync {
    /// One entry per device.
    fn read(&self) -> Vec<DeviceState>;
}

/// The [`Dataplane`] of a running forwarder.
#[derive(Debug)]
pub struct LiveView {
    cell: Arc<SnapshotCell>,
    workers: Vec<WorkerShared>,
    port_names: Vec<String>,
    started: Instant,
    /// Started with the view: the time-stamp counter's rate over the daemon's whole life.
    tsc: TscClock,
    rates: Mutex<Rates>,
    capture: Option<CaptureHub>,
    devices: Option<Box<dyn DeviceReader>>,
}

impl LiveView {
    /// A view over these workers.
    pub fn new(
        cell: Arc<SnapshotCell>,
        workers: Vec<WorkerShared>,
        port_names: Vec<String>,
    ) -> Self {
        LiveView {
            cell,
            workers,
            port_names,
            started: Instant::now(),
            tsc: TscClock::new(),
            rates: Mutex::default(),
            capture: None,
            devices: None,
        }
    }

    /// Reports the devices `reader` reads in `stats`.
    pub fn with_devices(mut self, reader: Box<dyn DeviceReader>) -> Self {
        self.devices = Some(reader);
        self
    }

    /// Serves `ecmpctl capture` through the workers' taps; `epoch` is the clock their polls
    /// are given.
    pub fn with_capture(mut self, epoch: Instant) -> Self {
        self.capture = Some(CaptureHub::new(
            self.workers.iter().map(|w| Arc::clone(&w.tap)).collect(),
            self.port_names.clone(),
            epoch,
        ));
        self
    }
}

fn flow_query(q: &TraceQuery) -> Result<Vec<u8>, DataQueryError> {
    use ecmp_testkit::frames::{FrameSpec, TcpFlags};
    if q.src.is_ipv4() != q.dst.is_ipv4() {
        return Err(DataQueryError::BadQuery(
            "source and destination are of different families".to_owned(),
        ));
    }
    let spec = FrameSpec::udp(q.src, q.dst, q.sport, q.dport, 128);
    let spec = match q.proto {
        6 => spec.with_tcp(TcpFlags::ACK),
        17 => spec,
        p => {
            return Err(DataQueryError::BadQuery(format!(
                "trace supports TCP (6) and UDP (17), not protocol {p}"
            )));
        }
    };
    spec.build()
        .map_err(|e| DataQueryError::BadQuery(e.to_string()))
}

/// Every big table and how the kernel backs it now: the published FIBs, then each worker's flow
/// cache and UMEM.
pub(crate) fn table_memory(
    snapshot: &Snapshot,
    workers: &[WorkerShared],
) -> Vec<(Option<usize>, TableMemory)> {
    let mut placed: Vec<(Option<usize>, Placement)> = snapshot
        .fib4
        .memory()
        .into_iter()
        .chain(snapshot.fib6.memory())
        .map(|p| (None, p))
        .collect();
    for (wi, w) in workers.iter().enumerate() {
        placed.extend(w.memory.iter().map(|p| (Some(wi), *p)));
    }
    let read = ecmp_mem::read_back(&placed.iter().map(|(_, p)| *p).collect::<Vec<_>>());
    placed.iter().map(|(w, _)| *w).zip(read).collect()
}

impl Dataplane for LiveView {
    // Not through `stats`: that one moves the rate interval, and this runs every few ms.
    fn worker_polls(&self) -> Vec<u64> {
        self.workers
            .iter()
            .map(|w| w.counters.read().get(Counter::Polls))
            .collect()
    }

    fn stats(&self) -> StatsReply {
        let now = Instant::now();
        let mut rates = self.rates.lock().unwrap_or_else(PoisonError::into_inner);
        let secs = rates.at.map(|t| now.duration_since(t).as_secs_f64());
        let rate = |new: u64, old: Option<u64>| match (secs, old) {
            (Some(s), Some(o)) if s > 0.0 => new.saturating_sub(o) as f64 / s,
            _ => 0.0,
        };
        let mut ports = Vec::new();
        let mut port_now = Vec::new();
        let mut workers = Vec::new();
        let mut worker_now = Vec::new();
        let mut drops = vec![0u64; DropReason::ALL.len()];
        let generation_of = |_w: usize| self.cell.min_reported();
        let snapshot = self.cell.load();
        let mut hop_packets: Vec<u64> = Vec::new();
        for (wi, w) in self.workers.iter().enumerate() {
            let c = w.counters.read();
            let per_hop = w.hops.read();
            if hop_packets.len() < per_hop.len() {
                hop_packets.resize(per_hop.len(), 0);
            }
            for (sum, n) in hop_packets.iter_mut().zip(per_hop) {
                *sum += n;
            }
            for (pi, p) in w.ports.iter().enumerate() {
                let [rx_packets, rx_bytes, tx_packets, tx_bytes, tx_refused] = p.read();
                let old = rates.ports.get(port_now.len()).copied();
                ports.push(PortCounters {
                    name: self.port_names.get(pi).cloned().unwrap_or_default(),
                    worker: wi,
                    rx_packets,
                    rx_bytes,
                    tx_packets,
                    tx_bytes,
                    tx_refused,
                    rx_pps: rate(rx_packets, old.map(|o| o.0)),
                    tx_pps: rate(tx_packets, old.map(|o| o.1)),
                });
                port_now.push((rx_packets, tx_packets));
            }
            let packets = c.get(Counter::RxPackets);
            let dropped = c.total_drops();
            for (i, r) in DropReason::ALL.iter().enumerate() {
                drops[i] += c.drops(*r);
            }
            workers.push(WorkerCounters {
                worker: wi,
                cpu: w.cpu,
                packets,
                forwarded: c.get(Counter::TxPackets),
                dropped,
                cache_hits: c.get(Counter::CacheHits),
                cache_misses: c.get(Counter::CacheMisses),
                generation: generation_of(wi),
                pps: rate(packets, rates.workers.get(wi).copied()),
                polls: c.get(Counter::Polls),
                busy_polls: c.get(Counter::BusyPolls),
                busy_cycles: c.get(Counter::BusyCycles),
                bursts: c.get(Counter::Bursts),
                flow_inserts: c.get(Counter::FlowInserts),
                flow_evictions: c.get(Counter::Evictions),
                flows_not_cached: c.get(Counter::NotCached),
                flow_repicks: c.get(Counter::Repicks),
                flow_entries: c.get(Counter::FlowEntries),
                umem: w.umem.as_ref().map(|u| {
                    let u = u.read();
                    UmemFrames {
                        frames: u.frames,
                        outstanding: u.outstanding,
                        kernel_held: u.kernel_held,
                        in_worker: u.in_worker,
                    }
                }),
            });
            worker_now.push(packets);
        }
        // A hop id a worker has not counted for yet (a snapshot it has not switched to) reads 0.
        let hops: Vec<HopCounters> = snapshot
            .hops
            .iter()
            .enumerate()
            .filter(|(i, h)| *i != 0 && h.id as usize == *i)
            .map(|(i, h)| {
                let packets = hop_packets.get(i).copied().unwrap_or(0);
                let old = rates
                    .hops
                    .get(i)
                    .copied()
                    .flatten()
                    .filter(|(addr, _)| *addr == h.addr)
                    .map(|(_, n)| n);
                HopCounters {
                    hop: h.id,
                    addr: h.addr,
                    packets,
                    pps: rate(packets, old),
                }
            })
            .collect();
        let mut hops_now = vec![None; snapshot.hops.len()];
        for h in &hops {
            hops_now[h.hop as usize] = Some((h.addr, h.packets));
        }
        *rates = Rates {
            at: Some(now),
            ports: port_now,
            workers: worker_now,
            hops: hops_now,
        };
        StatsReply {
            hops,
            // The control thread adds the announcements it owns.
            announce: Vec::new(),
            devices: self.devices.as_ref().map_or_else(Vec::new, |d| d.read()),
            memory: table_memory(&snapshot, &self.workers)
                .into_iter()
                .map(|(w, t)| crate::stats::table_backing(w, t))
                .collect(),
            uptime_s: self.started.elapsed().as_secs_f64(),
            tsc_hz: self.tsc.hz(),
            ports,
            workers,
            drops: DropReason::ALL
                .iter()
                .zip(drops)
                .filter(|(_, n)| *n > 0)
                .map(|(r, n)| (r.name().to_owned(), n))
                .collect(),
            feed: Vec::new(),
        }
    }

    fn flows(&self, top: usize) -> Result<FlowsReply, DataQueryError> {
        let mut total = 0;
        let mut capacity = 0;
        let mut per_worker = Vec::new();
        let mut per_hop: std::collections::BTreeMap<u32, u64> = Default::default();
        let mut flows = Vec::new();
        for (wi, w) in self.workers.iter().enumerate() {
            match w.mailbox.ask(Query::Flows {
                top: top.saturating_sub(flows.len()),
            }) {
                Some(Answer::Flows {
                    total: t,
                    per_hop: ph,
                    flows: mut f,
                    capacity: c,
                }) => {
                    total += t;
                    capacity += c;
                    per_worker.push(t);
                    for (hop, n) in ph {
                        *per_hop.entry(hop).or_default() += n;
                    }
                    for e in &mut f {
                        e.worker = wi;
                    }
                    flows.extend(f);
                }
                _ => return Err(DataQueryError::NoAnswer(wi)),
            }
        }
        let mut per_hop: Vec<HopFlows> = per_hop
            .into_iter()
            .map(|(hop, flows)| HopFlows { hop, flows })
            .collect();
        per_hop.sort_by(|a, b| b.flows.cmp(&a.flows).then(a.hop.cmp(&b.hop)));
        Ok(FlowsReply {
            total,
            per_worker,
            per_hop,
            flows,
            capacity,
        })
    }

    fn trace(&self, query: &TraceQuery) -> Result<TraceReply, DataQueryError> {
        let mut frame = flow_query(query)?;
        let snap = self.cell.load();
        // Routing does not depend on the ingress port: the flow is traced as it would arrive on
        // the first port, sent to that port's MAC as the input checks require.
        if let Some(dst) = frame.first_chunk_mut::<6>() {
            *dst = ingress_mac(&snap, TRACE_INGRESS);
        }
        let addr_of = |hop: u32| -> IpAddr {
            snap.hop(hop)
                .map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |h| h.addr)
        };
        let mut bucket = None;
        for (wi, w) in self.workers.iter().enumerate() {
            match w.mailbox.ask(Query::Trace {
                ingress: TRACE_INGRESS,
                frame: frame.clone(),
            }) {
                Some(Answer::Trace(Ok(Choice::Cached(c)))) => {
                    return Ok(TraceReply {
                        worker: Some(wi),
                        group: c.group,
                        hop: c.hop,
                        addr: addr_of(c.hop),
                        via: TraceVia::Cache { worker: wi },
                    });
                }
                Some(Answer::Trace(Ok(Choice::Bucket { hop, bucket: b }))) => {
                    bucket.get_or_insert((hop, b));
                }
                Some(Answer::Trace(Err(reason))) => {
                    return Err(DataQueryError::WouldDrop(reason.name()));
                }
                _ => return Err(DataQueryError::NoAnswer(wi)),
            }
        }
        let (hop, b) = bucket.ok_or(DataQueryError::NoWorkers)?;
        Ok(TraceReply {
            worker: None,
            group: hop.group,
            hop: hop.hop,
            addr: addr_of(hop.hop),
            via: TraceVia::Bucket { bucket: b },
        })
    }

    fn generation(&self) -> u64 {
        self.cell.generation()
    }

    fn applied_generation(&self) -> u64 {
        self.cell.min_reported()
    }

    fn port_name(&self, port: u16) -> Option<String> {
        self.port_names.get(usize::from(port)).cloned()
    }

    fn capture(
        &self,
        request: &CaptureRequest,
    ) -> Result<(CaptureStarted, Box<dyn CaptureStream>), DataQueryError> {
        match &self.capture {
            Some(hub) => hub.start(request),
            None => Err(DataQueryError::BadQuery(
                "this runtime cannot capture".to_owned(),
            )),
        }
    }
}

/// Worker side: the answer to a `Flows` question from its flow cache.
pub fn answer_flows(
    cache: &ecmp_dataplane::flowcache::FlowCache,
    now_ms: u64,
    top: usize,
) -> Answer {
    let mut per_hop: std::collections::BTreeMap<u32, u64> = Default::default();
    let mut total = 0;
    let mut flows = Vec::new();
    cache.for_each(now_ms, |key, hop| {
        total += 1;
        *per_hop.entry(hop.hop).or_default() += 1;
        if flows.len() < top {
            let addr = |b: &[u8; 16]| -> IpAddr {
                match key.version {
                    IpVersion::V4 => IpAddr::from([b[0], b[1], b[2], b[3]]),
                    IpVersion::V6 => IpAddr::from(*b),
                }
            };
            flows.push(FlowEntry {
                worker: 0,
                flow: TraceQuery {
                    src: addr(&key.src),
                    dst: addr(&key.dst),
                    proto: key.protocol,
                    sport: key.src_port,
                    dport: key.dst_port,
                },
                hop: hop.hop,
                group: hop.group,
            });
        }
    });
    Answer::Flows {
        total,
        per_hop: per_hop.into_iter().collect(),
        flows,
        capacity: cache.capacity() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailbox_round_trip_and_timeout() {
        let mb = Arc::new(Mailbox::default());
        assert!(!mb.pending());
        let worker = {
            let mb = Arc::clone(&mb);
            std::thread::spawn(move || {
                let end = Instant::now() + Duration::from_secs(5);
                while !mb.pending() {
                    assert!(Instant::now() < end);
                    std::thread::yield_now();
                }
                mb.serve(|q| match q {
                    Query::Flows { top } => Answer::Flows {
                        total: top as u64,
                        per_hop: vec![(1, 2)],
                        flows: Vec::new(),
                        capacity: 64,
                    },
                    Query::Trace { .. } => Answer::Trace(Err(DropReason::NoRoute)),
                });
            })
        };
        match mb.ask(Query::Flows { top: 7 }) {
            Some(Answer::Flows { total, per_hop, .. }) => {
                assert_eq!((total, per_hop), (7, vec![(1, 2)]));
            }
            other => panic!("{other:?}"),
        }
        worker.join().unwrap();
        // Nobody serves: the asker gives up within the bound and leaves nothing pending.
        let t = Instant::now();
        assert!(mb.ask(Query::Flows { top: 1 }).is_none());
        assert!(t.elapsed() < ANSWER_WAIT * 2);
        assert!(!mb.pending());
    }

    const T1: FlowTimeouts = FlowTimeouts {
        idle_timeout_ms: 2_000,
        embryonic_timeout_ms: 1_000,
        fin_timeout_ms: 1_000,
    };

    #[test]
    fn posted_timeouts_stay_pending_until_taken_and_the_latest_wins() {
        let mb = Mailbox::default();
        mb.post_timeouts(ecmp_dataplane::flowcache::FlowCacheConfig::default().timeouts());
        mb.post_timeouts(T1);
        assert!(mb.pending());
        assert_eq!(mb.take_timeouts(), Some(T1));
        // Posted after the worker took the last ones but before it served: still pending, so
        // its next loop applies them.
        let t2 = FlowTimeouts {
            idle_timeout_ms: 9_000,
            ..T1
        };
        mb.post_timeouts(t2);
        mb.serve(|_| unreachable!("no question was asked"));
        assert!(mb.pending());
        assert_eq!(mb.take_timeouts(), Some(t2));
        mb.serve(|_| unreachable!("no question was asked"));
        assert!(!mb.pending());
        assert_eq!(mb.take_timeouts(), None);
    }

    #[test]
    fn an_unanswered_question_leaves_posted_timeouts_pending() {
        let mb = Mailbox::default();
        mb.post_timeouts(T1);
        assert!(mb.ask(Query::Flows { top: 1 }).is_none());
        assert!(mb.pending());
        assert_eq!(mb.take_timeouts(), Some(T1));
    }
}
