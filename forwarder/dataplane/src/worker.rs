//! One poll-mode worker's loop body, generic over the port type: rx bursts through the pipeline
//! into per-port tx batches, flushed when full or when the drain timer fires.
//!
//! The worker owns its ports, its pipeline and its tx batches; nothing here is shared with other
//! threads except the snapshot cell (read once per poll) and the published counters.

use std::sync::Arc;

use ecmp_tables::snapshot::{ReaderId, Snapshot, SnapshotCell};

use crate::capture::{CaptureSession, CaptureTap, Direction};
use crate::counters::{Counter, SharedCounters, SharedHopPackets};
use crate::error::DataplaneError;
use crate::pipeline::{Pipeline, PipelineConfig, Verdict};
use ecmp_port::{BURST, Burst, Frame, Port, PortId};

/// Partial tx batches wait at most this long before they are sent (DPDK l3fwd uses ~100 us).
pub const TX_DRAIN_NS: u64 = 100_000;

/// A worker: ports, pipeline, tx batches, and its view of the published tables.
pub struct Worker<P: Port> {
    ports: Vec<P>,
    tx: Vec<Burst<P::Frame>>,
    /// Bytes of the frames in each tx batch (tallied as they are batched, so that sending a
    /// batch reads no frame).
    tx_bytes: Vec<u64>,
    rx: Burst<P::Frame>,
    verdicts: [Verdict; BURST],
    pipeline: Pipeline,
    cell: Arc<SnapshotCell>,
    reader: ReaderId,
    snapshot: Arc<Snapshot>,
    generation: u64,
    shared: Arc<SharedCounters>,
    last_drain_ns: u64,
    /// Where the control side arms a capture; looked at once per poll.
    tap: Arc<CaptureTap>,
    /// The tap's version when its session was last fetched.
    tap_version: u64,
    /// The armed capture, if any.
    capture: Option<Arc<CaptureSession>>,
}

impl<P: Port> Worker<P> {
    /// Builds a worker over `ports` (index = port id) reading tables from `cell`.
    pub fn new(
        ports: Vec<P>,
        cfg: &PipelineConfig,
        cell: Arc<SnapshotCell>,
        shared: Arc<SharedCounters>,
    ) -> Result<Self, DataplaneError> {
        let reader = cell.register_reader()?;
        let snapshot = cell.load();
        let generation = snapshot.generation;
        let mut pipeline = Pipeline::new(cfg)?;
        // The pipeline never emits a verdict for a port this worker lacks, so the tx batches
        // below can be indexed by verdict.
        pipeline.set_egress_ports(ports.len());
        pipeline.on_new_snapshot(&snapshot);
        cell.report(reader, generation);
        let tx = ports.iter().map(|_| Burst::new()).collect();
        let tx_bytes = vec![0; ports.len()];
        Ok(Worker {
            ports,
            tx,
            tx_bytes,
            rx: Burst::new(),
            verdicts: [Verdict::Tx(0); BURST],
            pipeline,
            cell,
            reader,
            snapshot,
            generation,
            shared,
            last_drain_ns: 0,
            tap: Arc::new(CaptureTap::default()),
            tap_version: 0,
            capture: None,
        })
    }

    /// The pipeline (counters, flow cache).
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Changes the flow cache's timeouts; call between polls (see
    /// [`crate::flowcache::FlowCache::set_timeouts`]).
    pub fn set_flow_timeouts(
        &mut self,
        timeouts: crate::flowcache::FlowTimeouts,
    ) -> Result<(), crate::flowcache::FlowCacheError> {
        self.pipeline.set_flow_timeouts(timeouts)
    }

    /// The ports, e.g. for a test to inspect what was sent.
    pub fn ports_mut(&mut self) -> &mut [P] {
        &mut self.ports
    }

    /// Stops the worker: sends what is batched and hands the ports back (e.g. to flush a capture).
    pub fn into_ports(mut self) -> Vec<P> {
        self.drain();
        std::mem::take(&mut self.ports)
    }

    /// Frames in the worker's hands between polls: in its tx batches (sent by the next full
    /// batch, the drain timer or an idle poll) and its rx burst (empty between polls).
    pub fn frames_held(&self) -> usize {
        self.rx.len() + self.tx.iter().map(|b| b.len()).sum::<usize>()
    }

    /// The snapshot currently in use.
    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snapshot
    }

    /// Adds `cycles` the runtime measured around polls that moved frames to
    /// [`Counter::BusyCycles`] (published with the next poll). The dataplane reads no clock of
    /// its own: the runtime owns the time source.
    pub fn add_busy_cycles(&mut self, cycles: u64) {
        self.pipeline
            .counters_mut()
            .add(Counter::BusyCycles, cycles);
    }

    /// Makes the worker's per-hop packet counts readable through `sink`.
    pub fn set_hop_sink(&mut self, sink: Arc<SharedHopPackets>) {
        self.pipeline.set_hop_sink(sink);
    }

    /// Makes `tap` the one this worker captures through (each worker starts with its own,
    /// never armed).
    pub fn set_capture_tap(&mut self, tap: Arc<CaptureTap>) {
        self.tap = tap;
        self.tap_version = 0;
        self.capture = None;
    }

    /// One pass over every port: returns how many frames were received. `now_ns` is a monotonic
    /// clock read once per poll by the caller.
    pub fn poll(&mut self, now_ns: u64) -> usize {
        // One atomic load per poll; the Arc is replaced only when a new generation was published.
        let generation = self.cell.generation();
        if generation != self.generation {
            self.snapshot = self.cell.load();
            self.generation = self.snapshot.generation;
            self.pipeline.on_new_snapshot(&self.snapshot);
        }
        let now_ms = now_ns / 1_000_000;
        // The only capture cost while none runs: one relaxed load per poll.
        let version = self.tap.version();
        if version != self.tap_version {
            self.tap_version = version;
            self.capture = self.tap.session();
        }

        let mut received = 0;
        let mut bursts = 0;
        for p in 0..self.ports.len() {
            let n = self.ports[p].rx_burst(&mut self.rx);
            if n == 0 {
                continue;
            }
            received += n;
            bursts += 1;
            // Port ids are the indices of the worker's ports (at most u16::MAX of them).
            // While no capture runs this is the one test it costs per burst; the captured
            // path is out of line so the common one keeps the shape it has without capture.
            if self.capture.is_none() {
                self.pipeline.process(
                    &self.snapshot,
                    p as PortId,
                    &mut self.rx,
                    &mut self.verdicts,
                    now_ms,
                );
            } else {
                self.process_captured(p as PortId, now_ns, now_ms);
            }
            if self.forward_whole_burst() {
                continue;
            }
            for (frame, verdict) in self.rx.drain(..).zip(self.verdicts.iter()) {
                match *verdict {
                    Verdict::Tx(out) => {
                        let out = out as usize;
                        if self.tx[out].is_full() {
                            send(
                                &mut self.ports,
                                &mut self.tx,
                                &mut self.tx_bytes,
                                out,
                                &mut self.pipeline,
                            );
                        }
                        // A batch that stayed full after send had every frame released, so
                        // there is room now.
                        self.tx_bytes[out] += frame.data().len() as u64;
                        self.tx[out].push(frame);
                    }
                    Verdict::Drop(_) => self.ports[p].release(frame),
                }
            }
        }

        // Full batches went out above; partial ones go when idle or when the drain timer fires.
        if received == 0 || now_ns.saturating_sub(self.last_drain_ns) >= TX_DRAIN_NS {
            self.drain();
            self.last_drain_ns = now_ns;
        }
        self.cell.report(self.reader, self.generation);
        let cache = self.pipeline.flow_cache();
        let (entries, inserts) = (cache.len() as u64, cache.counters().inserts);
        let counters = self.pipeline.counters_mut();
        counters.add(Counter::Polls, 1);
        counters.add(Counter::BusyPolls, u64::from(received > 0));
        counters.add(Counter::Bursts, bursts);
        counters.set(Counter::FlowInserts, inserts);
        counters.set(Counter::FlowEntries, entries);
        counters.publish(&self.shared);
        received
    }

    /// [`Pipeline::process`] with the burst offered to the armed capture before (as received)
    /// and after (with its verdicts).
    #[cold]
    #[inline(never)]
    fn process_captured(&mut self, port: PortId, now_ns: u64, now_ms: u64) {
        if let Some(cap) = &self.capture {
            capture_rx(cap, port, &self.rx, now_ns);
        }
        self.pipeline.process(
            &self.snapshot,
            port,
            &mut self.rx,
            &mut self.verdicts,
            now_ms,
        );
        if let Some(cap) = &self.capture {
            capture_verdicts(cap, port, &self.rx, &self.verdicts, now_ns);
        }
    }

    /// The common case in one move: every frame of the rx burst goes to the same port. Does
    /// what the per-frame loop would (send a full batch first, then append in order) when that
    /// port's batch is then empty, by swapping the whole burst in; returns false, having done
    /// nothing, otherwise.
    #[inline]
    fn forward_whole_burst(&mut self) -> bool {
        let n = self.rx.len();
        let Some(&Verdict::Tx(out)) = self.verdicts.first() else {
            return false;
        };
        let out = usize::from(out);
        if n == 0
            || out >= self.tx.len()
            || !self.verdicts[..n.min(BURST)]
                .iter()
                .all(|v| *v == Verdict::Tx(out as u16))
        {
            return false;
        }
        if self.tx[out].is_full() {
            send(
                &mut self.ports,
                &mut self.tx,
                &mut self.tx_bytes,
                out,
                &mut self.pipeline,
            );
        }
        if !self.tx[out].is_empty() {
            return false;
        }
        std::mem::swap(&mut self.rx, &mut self.tx[out]);
        // Every frame of the burst got this verdict: the pipeline's tally is the batch's.
        self.tx_bytes[out] = self.pipeline.tx_bytes();
        true
    }

    /// Sends every partial tx batch and flushes every port.
    pub fn drain(&mut self) {
        for out in 0..self.tx.len() {
            if !self.tx[out].is_empty() {
                send(
                    &mut self.ports,
                    &mut self.tx,
                    &mut self.tx_bytes,
                    out,
                    &mut self.pipeline,
                );
            }
        }
        for port in &mut self.ports {
            port.flush();
        }
    }
}

impl<P: Port> Drop for Worker<P> {
    fn drop(&mut self) {
        // Frames still batched go out (or back to their pool): nothing leaks on shutdown.
        self.drain();
        self.cell
            .report(self.reader, ecmp_tables::snapshot::OFFLINE);
    }
}

/// Offers a received burst to the capture, before the pipeline rewrites it. Out of line: the
/// poll loop keeps only the test of whether a capture runs.
#[cold]
#[inline(never)]
fn capture_rx<F: Frame>(cap: &CaptureSession, port: PortId, rx: &Burst<F>, now_ns: u64) {
    if cap.rx {
        for f in rx.iter() {
            cap.offer(port, Direction::Rx, None, now_ns, f.data());
        }
    }
}

/// Offers a processed burst to the capture: sent frames under their egress port, dropped ones
/// under the port they came in on, with the reason.
#[cold]
#[inline(never)]
fn capture_verdicts<F: Frame>(
    cap: &CaptureSession,
    ingress: PortId,
    rx: &Burst<F>,
    verdicts: &[Verdict; BURST],
    now_ns: u64,
) {
    for (f, v) in rx.iter().zip(verdicts.iter()) {
        match *v {
            Verdict::Tx(out) if cap.tx => cap.offer(out, Direction::Tx, None, now_ns, f.data()),
            Verdict::Drop(reason) if cap.drops => {
                cap.offer(ingress, Direction::Drop, Some(reason), now_ns, f.data());
            }
            _ => {}
        }
    }
}

/// Hands port `out` its batch (whose frames hold `tx_bytes[out]` bytes); whatever it refuses is
/// released and counted, never leaked. The batch leaves empty and its tally zero.
fn send<P: Port>(
    ports: &mut [P],
    tx: &mut [Burst<P::Frame>],
    tx_bytes: &mut [u64],
    out: usize,
    pipeline: &mut Pipeline,
) {
    let batch = &mut tx[out];
    let bytes = std::mem::take(&mut tx_bytes[out]);
    let before = batch.len();
    let sent = ports[out].tx_burst(batch);
    let c = pipeline.counters_mut();
    c.add(Counter::TxPackets, sent as u64);
    if sent == before {
        c.add(Counter::TxBytes, bytes);
    } else {
        let unsent: u64 = batch.iter().map(|f| f.data().len() as u64).sum();
        c.add(Counter::TxBytes, bytes - unsent);
        for frame in batch.drain(..) {
            c.drop(crate::drop::DropReason::TxRefused);
            ports[out].release(frame);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use ecmp_port::memory::{FramePool, MemoryPort, TxMode};
    use ecmp_tables::group::{GroupMode, ResilientGroup};
    use ecmp_tables::nexthop::{Action, NextHop, PortInfo};
    use ecmp_tables::{Fib4, Fib6};

    use super::*;
    use crate::drop::DropReason;
    use crate::flowcache::FlowCacheConfig;
    use crate::hash::DEFAULT_RSS_KEY;
    use crate::pipeline::Choice;

    fn hop(id: u32, port: u16) -> NextHop {
        NextHop {
            id,
            addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, id as u8)),
            port,
            mac: [0x02, 0, 0, 0, 0, id as u8],
            weight: u32::from(id != 0),
            action: Action::Rewrite,
        }
    }

    fn pipeline_config() -> PipelineConfig {
        PipelineConfig {
            seed: 7,
            rss_key: DEFAULT_RSS_KEY,
            flow_cache: FlowCacheConfig {
                capacity: 1024,
                ..FlowCacheConfig::default()
            },
        }
    }

    /// 10/8 to group 1 (hop 1 on port 1).
    fn snapshot() -> Snapshot {
        let mut g = ResilientGroup::new(16, GroupMode::Manual, 0).unwrap();
        g.add_member(1, 1).unwrap();
        g.clear();
        let mut fib4 = Fib4::new(16);
        fib4.insert(Ipv4Addr::new(10, 0, 0, 0), 8, 1).unwrap();
        let unset = ResilientGroup::new(1, GroupMode::Manual, 0)
            .unwrap()
            .table();
        Snapshot {
            generation: 0,
            fib_changed: 0,
            fib4: Arc::new(fib4),
            fib6: Arc::new(Fib6::new()),
            groups: vec![Arc::new(unset), Arc::new(g.table())].into(),
            hops: vec![hop(0, 0), hop(1, 1)],
            ports: vec![
                PortInfo {
                    mac: [0x02, 0xaa, 0, 0, 0, 0],
                    mtu: 1500,
                },
                PortInfo {
                    mac: [0x02, 0xbb, 0, 0, 0, 0],
                    mtu: 1500,
                },
            ],
        }
    }

    /// A worker over two memory ports (64 frames between them) on [`snapshot`], publishing into
    /// `shared`; the pool comes back for leak checks.
    fn two_port_worker(tx: TxMode, shared: Arc<SharedCounters>) -> (FramePool, Worker<MemoryPort>) {
        let pool = FramePool::new(64);
        let ports = (0..2)
            .map(|_| MemoryPort::with_tx_mode(pool.clone(), tx))
            .collect();
        let cell = Arc::new(SnapshotCell::new(snapshot(), 1));
        let w = Worker::new(ports, &pipeline_config(), cell, shared).unwrap();
        (pool, w)
    }

    /// An untagged IPv4/UDP frame to 10.0.0.1 with `payload` bytes of UDP payload, padded by
    /// `pad` bytes after the IP packet (which the rewrite trims).
    fn frame(sport: u16, payload: usize, pad: usize, ttl: u8) -> Vec<u8> {
        let ip_len = 20 + 8 + payload;
        let mut f = vec![0u8; 14 + ip_len + pad];
        f[..6].copy_from_slice(&[0x02, 0xaa, 0, 0, 0, 0]);
        f[6..12].copy_from_slice(&[0x02, 0xcc, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip = &mut f[14..];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
        ip[8] = ttl;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&[172, 16, 0, 1]);
        ip[16..20].copy_from_slice(&[10, 0, 0, 1]);
        ip[20..22].copy_from_slice(&sport.to_be_bytes());
        ip[22..24].copy_from_slice(&53u16.to_be_bytes());
        ip[24..26].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
        ecmp_wire::ipv4::Packet::new_unchecked(&mut f[14..]).fill_checksum();
        f
    }

    #[test]
    fn trace_tells_a_cached_flow_from_a_bucket_pick_without_changing_state() {
        let (_pool, mut w) = two_port_worker(TxMode::Count, Arc::default());
        let seen = frame(100, 10, 0, 64);
        let unseen = frame(101, 10, 0, 64);
        w.ports_mut()[0].inject(&seen).unwrap();
        w.poll(1_000_000);
        let snap = Arc::clone(w.snapshot());
        let p = w.pipeline();
        let cached = p.flow_cache().len();
        match p.trace(&snap, 0, &seen, 1) {
            Ok(Choice::Cached(c)) => assert_eq!((c.group, c.hop), (1, 1)),
            other => panic!("a forwarded flow traces as cached: {other:?}"),
        }
        match p.trace(&snap, 0, &unseen, 1) {
            Ok(Choice::Bucket { hop, bucket }) => {
                assert_eq!(hop.hop, 1);
                assert!(bucket < 16);
            }
            other => panic!("a new flow traces as a bucket pick: {other:?}"),
        }
        assert_eq!(p.flow_cache().len(), cached, "trace inserts nothing");
        let mut no_route = frame(102, 10, 0, 64);
        no_route[14 + 16] = 11;
        ecmp_wire::ipv4::Packet::new_unchecked(&mut no_route[14..]).fill_checksum();
        assert_eq!(p.trace(&snap, 0, &no_route, 1), Err(DropReason::NoRoute));
    }

    #[test]
    fn an_armed_tap_captures_frames_as_received_as_sent_and_as_dropped() {
        use crate::capture::{CaptureSession, CaptureTap, Direction};
        let (_pool, mut w) = two_port_worker(TxMode::Count, Arc::default());
        let tap = Arc::new(CaptureTap::default());
        w.set_capture_tap(Arc::clone(&tap));
        let forwarded = frame(100, 10, 0, 64);
        let expired = frame(101, 10, 0, 1);
        // Nothing is captured before the tap is armed.
        w.ports_mut()[0].inject(&forwarded).unwrap();
        w.poll(1_000_000);
        let session = Arc::new(CaptureSession::new(None, None, (true, true, true), 30));
        tap.set(Some(Arc::clone(&session)));
        w.ports_mut()[0].inject(&forwarded).unwrap();
        w.ports_mut()[0].inject(&expired).unwrap();
        w.poll(2_000_000);
        let mut got = Vec::new();
        session.ring.drain(|c| {
            got.push((
                c.port,
                c.direction,
                c.reason,
                c.ts_ns,
                c.len,
                c.data.to_vec(),
            ));
        });
        let len = forwarded.len() as u32;
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(
            got[0],
            (
                0,
                Direction::Rx,
                None,
                2_000_000,
                len,
                forwarded[..30].to_vec()
            )
        );
        assert_eq!(
            got[1],
            (
                0,
                Direction::Rx,
                None,
                2_000_000,
                len,
                expired[..30].to_vec()
            )
        );
        let (port, dir, reason, _, _, ref data) = got[2];
        assert_eq!((port, dir, reason), (1, Direction::Tx, None));
        assert_eq!(data[14 + 8], 63, "sent as rewritten: TTL decremented");
        assert_eq!(&data[..6], &[0x02, 0, 0, 0, 0, 1], "to the hop's MAC");
        let (port, dir, reason, _, _, _) = got[3];
        assert_eq!(
            (port, dir, reason),
            (0, Direction::Drop, Some(DropReason::TtlExpired))
        );
        // Disarmed: the next poll captures nothing.
        tap.set(None);
        w.ports_mut()[0].inject(&forwarded).unwrap();
        w.poll(3_000_000);
        assert_eq!(session.ring.drain(|_| ()), 0);
        assert_eq!(session.ring.dropped(), 0);
    }

    #[test]
    fn every_poll_is_counted_and_busy_ones_apart_in_the_shared_block() {
        let shared = Arc::new(SharedCounters::default());
        let (_pool, mut w) = two_port_worker(TxMode::Count, Arc::clone(&shared));
        w.poll(1_000_000);
        w.ports_mut()[0].inject(&frame(100, 10, 0, 64)).unwrap();
        w.ports_mut()[0].inject(&frame(101, 10, 0, 64)).unwrap();
        assert_eq!(w.poll(2_000_000), 2);
        w.poll(3_000_000);
        w.add_busy_cycles(1234);
        w.add_busy_cycles(1);
        w.poll(3_500_000);
        let c = shared.read();
        assert_eq!(c.get(Counter::Polls), 4);
        assert_eq!(
            c.get(Counter::BusyPolls),
            1,
            "two frames in one poll are one busy poll"
        );
        assert_eq!(
            c.get(Counter::BusyCycles),
            1235,
            "published with the next poll"
        );
    }

    #[test]
    fn bursts_and_the_flow_cache_levels_are_published_per_poll() {
        let shared = Arc::new(SharedCounters::default());
        let (_pool, mut w) = two_port_worker(TxMode::Count, Arc::clone(&shared));
        // Two flows in one poll: one burst, two new flows.
        w.ports_mut()[0].inject(&frame(100, 10, 0, 64)).unwrap();
        w.ports_mut()[0].inject(&frame(101, 10, 0, 64)).unwrap();
        assert_eq!(w.poll(1_000_000), 2);
        // An empty poll is no burst; the first flow again is a hit, not an insert.
        w.poll(2_000_000);
        w.ports_mut()[0].inject(&frame(100, 10, 0, 64)).unwrap();
        assert_eq!(w.poll(3_000_000), 1);
        let c = shared.read();
        assert_eq!(c.get(Counter::Bursts), 2);
        assert_eq!(c.get(Counter::FlowInserts), 2);
        assert_eq!(c.get(Counter::FlowEntries), 2);
        assert_eq!(c.get(Counter::CacheHits), 1);
    }

    #[test]
    fn a_hop_on_a_port_the_worker_lacks_is_dropped_not_panicked() {
        let pool = FramePool::new(64);
        // The tables route to port 1; this worker has only port 0.
        let ports = vec![MemoryPort::with_tx_mode(pool.clone(), TxMode::Collect)];
        let cfg = pipeline_config();
        let cell = Arc::new(SnapshotCell::new(snapshot(), 1));
        let mut w = Worker::new(ports, &cfg, cell, Arc::new(SharedCounters::default())).unwrap();
        for i in 0..3 {
            w.ports_mut()[0].inject(&frame(100 + i, 10, 0, 64)).unwrap();
        }
        // One packet of another route's drop keeps the burst from being forwarded whole.
        w.ports_mut()[0].inject(&frame(200, 10, 0, 1)).unwrap();
        w.poll(1_000_000);
        w.drain();
        let c = w.pipeline().counters();
        assert_eq!(c.drops(DropReason::NoEgressPort), 3);
        assert_eq!(c.drops(DropReason::TtlExpired), 1);
        assert_eq!(pool.outstanding(), 0);
    }

    #[test]
    fn tx_bytes_are_the_bytes_the_port_accepted() {
        let pool = FramePool::new(256);
        let ports = (0..2)
            .map(|_| MemoryPort::with_tx_mode(pool.clone(), TxMode::Collect))
            .collect();
        let cfg = pipeline_config();
        let cell = Arc::new(SnapshotCell::new(snapshot(), 1));
        let shared = Arc::new(SharedCounters::default());
        let mut w = Worker::new(ports, &cfg, cell, shared).unwrap();

        // A burst forwarded whole (padding trimmed, so sent lengths differ from received
        // ones), then one with a drop in it (frame by frame), then more than a batch.
        let whole: Vec<Vec<u8>> = (0..5).map(|i| frame(1000 + i, i.into(), 7, 64)).collect();
        let mixed: Vec<Vec<u8>> = (0..6)
            .map(|i| frame(2000 + i, 3 * usize::from(i), 0, if i == 2 { 1 } else { 64 }))
            .collect();
        let many: Vec<Vec<u8>> = (0..40).map(|i| frame(3000 + i, 10, 3, 64)).collect();
        let mut now = 1_000_000_000;
        for burst in [&whole, &mixed, &many] {
            for f in burst {
                w.ports_mut()[0].inject(f).unwrap();
            }
            while w.poll(now) > 0 {
                now += 1_000;
            }
        }
        w.drain();
        let tx_bytes = w.pipeline().counters().get(Counter::TxBytes);
        let port = &w.ports_mut()[1];
        let sent: u64 = port.sent().iter().map(|f| f.data().len() as u64).sum();
        assert_eq!(port.sent().len(), 5 + 5 + 40);
        assert_eq!(port.stats().tx_bytes, sent);
        assert_eq!(tx_bytes, sent);
        let received: u64 = [&whole, &mixed, &many]
            .iter()
            .flat_map(|b| b.iter())
            .map(|f| f.len() as u64)
            .sum();
        assert!(sent < received, "padding was trimmed and one frame dropped");
        assert_eq!(w.pipeline().counters().get(Counter::TxPackets), 50);
        assert_eq!(w.pipeline().counters().total_drops(), 1);
        drop(w);
        assert_eq!(pool.outstanding(), 0);
    }
}
