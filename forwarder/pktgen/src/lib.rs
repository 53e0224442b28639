//! The packet generator and traffic sink behind `ecmpfwd-pktgen`, and the synthetic traffic
//! templates ([`traffic`]) the daemon's demo and in-process bench, the benches and tests build on.
//!
//! The generator sends a set of flows ([`FlowSet`]) out of any [`Port`]; every packet carries a
//! [`Tag`] at the start of its L4 payload (magic, flow id, per-flow sequence number, and the
//! CLOCK_MONOTONIC transmit time), so the sink ([`sink`]) can attribute each packet it receives
//! to its flow and measure one-way latency on the same host.
//!
//! Invariants:
//! - A flow's headers are built once (by [`FrameSpec`], every checksum right) into a template; a
//!   packet is the template with the tag written in and the L4 checksum updated incrementally
//!   (RFC 1624), so every packet on the wire has valid checksums.
//! - Flows are a pure function of [`FlowConfig`] (seed included): the same arguments give the same
//!   flows, so a test can predict where each flow goes.
//! - With a count, packets go to flows round-robin, so each of F flows gets `count / F` packets
//!   (the first `count % F` flows one more).
//! - Both loops are bounded: by their duration, their count, or the stop flag (set from
//!   SIGTERM/SIGINT by the binary); the sender also gives up when the port refuses every frame for
//!   [`SendOptions::stall_timeout`].
//!
//! AF_XDP: [`XdpSender`] is a tx-only socket (no XDP program needed to transmit); [`XdpSink`]
//! attaches the ecmpfwd XDP program, which steers transit IPv4/IPv6 packets of its queue to the
//! sink's socket and passes the interface's own traffic (ARP, pings to its addresses) to the
//! kernel. The program hangs on a bpf_link owned by the `XdpSink`, so it goes when the sink is
//! dropped or the process dies.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ecmp_io::netlink::NetlinkError;
use ecmp_io::xdp::{
    AttachMode, BindMode, Umem, UmemConfig, XdpError, XdpFrame, XdpProgram, XskConfig, XskPort,
};
use ecmp_port::memory::{FramePool, MemFrame};
use ecmp_port::{BURST, Burst, Frame, Port};
use ecmp_wire::{checksum, ip_proto};
use serde::Serialize;

pub mod traffic;

use ecmp_testkit::frames::{FrameSpec, TcpFlags};

use crate::traffic::Rng;

/// First four bytes of every tag ("EFWG").
pub const MAGIC: u32 = 0x4546_5747;
/// Bytes of a [`Tag`] on the wire.
pub const TAG_LEN: usize = 24;
/// Largest frame (without FCS) the generator builds: a 1500-byte MTU.
pub const MAX_FRAME: usize = 1514;
/// Smallest frame the generator accepts (a 64-byte frame on the wire); the headers plus the tag
/// may need more (see [`FlowSet::min_frame_len`]).
pub const MIN_FRAME: usize = 60;

/// Errors of building flows.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PktgenError {
    /// Source and destination addresses are of different families.
    #[error("source {src} and destination {dst} are of different address families")]
    FamilyMismatch {
        /// The source address.
        src: IpAddr,
        /// The destination address.
        dst: IpAddr,
    },
    /// Zero flows were asked for.
    #[error("at least one flow is needed")]
    NoFlows,
    /// More flows than distinct source ports or addresses available.
    #[error("{flows} flows asked for, but only {max} distinct ones can be made this way")]
    TooManyFlows {
        /// Flows asked for.
        flows: u32,
        /// Most flows possible.
        max: u64,
    },
    /// The frame size is outside what the headers, the tag and the MTU allow.
    #[error("frame size {size} out of range {min}..={max} for these headers")]
    SizeOutOfRange {
        /// Size asked for.
        size: usize,
        /// Smallest size holding the headers and the tag.
        min: usize,
        /// Largest size.
        max: usize,
    },
    /// The frame builder refused a flow's template.
    #[error("building a flow template: {0}")]
    Frame(#[from] ecmp_testkit::frames::FrameError),
}

/// What distinguishes the flows of a [`FlowSet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Vary {
    /// Distinct source ports (drawn from the seed, 1024..=65535); one source address.
    #[default]
    Port,
    /// Distinct source addresses (the base address plus 0..F, in an order drawn from the seed);
    /// one source port.
    Addr,
    /// Both: distinct source ports and distinct source addresses.
    Both,
    /// Source ports times source addresses: every port (a seeded permutation of 1024..=65535)
    /// with the fewest addresses (base address up) that give the flows; reaches millions of
    /// flows from a few addresses, as many clients behind a few NATs would.
    Grid,
}

/// The transport protocol of generated packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// UDP.
    #[default]
    Udp,
    /// TCP (data segments; flags from [`FlowConfig::tcp_flags`]).
    Tcp,
}

/// Everything that defines a set of flows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowConfig {
    /// Source MAC of every frame.
    pub src_mac: [u8; 6],
    /// Destination MAC of every frame.
    pub dst_mac: [u8; 6],
    /// Source address (the base address with [`Vary::Addr`] / [`Vary::Both`]).
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// UDP or TCP.
    pub proto: Proto,
    /// TCP flags (ignored for UDP).
    pub tcp_flags: TcpFlags,
    /// Source port when it does not vary.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Number of flows.
    pub flows: u32,
    /// What makes flows distinct.
    pub vary: Vary,
    /// Seed of the source ports and address order.
    pub seed: u64,
    /// Frame length without FCS; `None` is the smallest that holds the headers and the tag.
    pub frame_len: Option<usize>,
    /// TTL / hop limit.
    pub ttl: u8,
    /// VLAN tags of every frame, outermost first, as (TPID, VLAN id); empty for untagged frames.
    pub vlans: Vec<(u16, u16)>,
}

/// The identification every generated packet carries at the start of its L4 payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    /// Index of the flow in its [`FlowSet`].
    pub flow: u32,
    /// Per-flow sequence number, from 0.
    pub seq: u64,
    /// CLOCK_MONOTONIC transmit time in ns (0 when unknown).
    pub tx_ns: u64,
}

impl Tag {
    /// The tag's wire form: magic, flow, seq, tx_ns, all big-endian.
    pub fn encode(&self) -> [u8; TAG_LEN] {
        let mut b = [0u8; TAG_LEN];
        b[0..4].copy_from_slice(&MAGIC.to_be_bytes());
        b[4..8].copy_from_slice(&self.flow.to_be_bytes());
        b[8..16].copy_from_slice(&self.seq.to_be_bytes());
        b[16..24].copy_from_slice(&self.tx_ns.to_be_bytes());
        b
    }

    /// Reads a tag from the start of `payload`; `None` when it is too short or lacks the magic.
    pub fn decode(payload: &[u8]) -> Option<Tag> {
        let b: &[u8; TAG_LEN] = payload.get(..TAG_LEN)?.try_into().ok()?;
        let word =
            |r: std::ops::Range<usize>| b[r].iter().fold(0u64, |a, &x| a << 8 | u64::from(x));
        (word(0..4) == u64::from(MAGIC)).then(|| Tag {
            flow: word(4..8) as u32,
            seq: word(8..16),
            tx_ns: word(16..24),
        })
    }

    /// Finds the tag of an Ethernet frame: parses Ethernet/VLAN, IPv4/IPv6 and TCP/UDP, and
    /// decodes the start of the L4 payload. A frame that carries no tag there but tunnels one
    /// (VXLAN, GRE, IP-in-IP: what an encapsulating forwarder sends its backends) is looked into,
    /// so a sink on a backend counts and times encapsulated traffic too.
    pub fn of_frame(frame: &[u8]) -> Option<Tag> {
        let meta = ecmp_wire::parse_frame(frame).ok()?;
        Self::at_payload(frame, &meta).or_else(|| {
            let inner = ecmp_wire::parse::parse_inner(frame, &meta)?;
            Self::at_payload(frame, &inner)
        })
    }

    /// The tag at the start of the L4 payload `meta` (offsets into `frame`) describes.
    fn at_payload(frame: &[u8], meta: &ecmp_wire::meta::PacketMeta) -> Option<Tag> {
        if meta.fragment {
            return None;
        }
        let l4 = usize::from(meta.l4_offset);
        let payload = match meta.protocol {
            ip_proto::UDP => l4 + 8,
            ip_proto::TCP => l4 + usize::from(frame.get(l4 + 12)? >> 4) * 4,
            _ => return None,
        };
        Tag::decode(frame.get(payload..)?)
    }
}

/// One flow of a [`FlowSet`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    /// Source address.
    pub src: IpAddr,
    /// Source port.
    pub src_port: u16,
    template: Vec<u8>,
    /// The template's L4 checksum.
    csum: u16,
}

/// The flows a generator sends: one prebuilt frame per flow.
#[derive(Debug, Clone)]
pub struct FlowSet {
    flows: Vec<Flow>,
    frame_len: usize,
    tag_at: usize,
    csum_at: usize,
    udp: bool,
}

/// `base + k` in the same family, or `None` past the end of the address space.
fn offset_addr(base: IpAddr, k: u32) -> Option<IpAddr> {
    match base {
        IpAddr::V4(a) => u32::from(a).checked_add(k).map(|v| IpAddr::V4(v.into())),
        IpAddr::V6(a) => u128::from(a)
            .checked_add(u128::from(k))
            .map(|v| IpAddr::V6(v.into())),
    }
}

impl FlowSet {
    /// The smallest frame holding the headers of `cfg`'s family and protocol plus the tag.
    pub fn min_frame_len(cfg: &FlowConfig) -> usize {
        let ip = if cfg.src.is_ipv4() { 20 } else { 40 };
        let l4 = match cfg.proto {
            Proto::Udp => 8,
            Proto::Tcp => 20,
        };
        (Self::l3_offset(cfg) + ip + l4 + TAG_LEN).max(MIN_FRAME)
    }

    /// Where the IP header starts: after the Ethernet header and the VLAN tags.
    fn l3_offset(cfg: &FlowConfig) -> usize {
        14 + 4 * cfg.vlans.len()
    }

    /// Builds the flows of `cfg`.
    pub fn new(cfg: &FlowConfig) -> Result<FlowSet, PktgenError> {
        if cfg.src.is_ipv4() != cfg.dst.is_ipv4() {
            return Err(PktgenError::FamilyMismatch {
                src: cfg.src,
                dst: cfg.dst,
            });
        }
        if cfg.flows == 0 {
            return Err(PktgenError::NoFlows);
        }
        let min = Self::min_frame_len(cfg);
        let frame_len = cfg.frame_len.unwrap_or(min);
        if !(min..=MAX_FRAME).contains(&frame_len) {
            return Err(PktgenError::SizeOutOfRange {
                size: frame_len,
                min,
                max: MAX_FRAME,
            });
        }
        let n = cfg.flows as usize;
        let mut rng = Rng::new(cfg.seed);
        const LOW: u16 = 1024;
        const PORTS: u64 = (u16::MAX - LOW) as u64 + 1;
        // Grid: the fewest addresses whose ports give the flows.
        let grid_addrs = u64::from(cfg.flows).div_ceil(PORTS);
        // Addresses from the base up (IPv6 offsets are 32 bits).
        let addr_room = match cfg.src {
            IpAddr::V4(a) => u64::from(u32::MAX - u32::from(a)) + 1,
            IpAddr::V6(_) => u64::from(u32::MAX),
        };
        let too_many = |max| PktgenError::TooManyFlows {
            flows: cfg.flows,
            max,
        };
        let ports: Vec<u16> = match cfg.vary {
            Vary::Addr => vec![cfg.src_port; n],
            Vary::Grid => {
                // Flow k takes address k % A and port perm[k / A]: consecutive flows differ in
                // both, and every (address, port) pair is used at most once.
                let mut perm: Vec<u16> = (LOW..=u16::MAX).collect();
                rng.shuffle(&mut perm);
                (0..u64::from(cfg.flows))
                    .map(|k| perm[(k / grid_addrs) as usize])
                    .collect()
            }
            Vary::Port | Vary::Both => {
                if u64::from(cfg.flows) > PORTS {
                    return Err(too_many(PORTS));
                }
                let mut seen = HashSet::with_capacity(n);
                let mut ports = Vec::with_capacity(n);
                while ports.len() < n {
                    let p = LOW + rng.below(PORTS) as u16;
                    if seen.insert(p) {
                        ports.push(p);
                    }
                }
                ports
            }
        };
        let addrs: Vec<IpAddr> = match cfg.vary {
            Vary::Port => vec![cfg.src; n],
            Vary::Grid => {
                let a = grid_addrs as u32;
                let bases: Vec<IpAddr> = (0..a)
                    .map(|k| offset_addr(cfg.src, k))
                    .collect::<Option<_>>()
                    .ok_or_else(|| too_many(addr_room * PORTS))?;
                (0..cfg.flows).map(|k| bases[(k % a) as usize]).collect()
            }
            Vary::Addr | Vary::Both => {
                let mut order: Vec<u32> = (0..cfg.flows).collect();
                rng.shuffle(&mut order);
                order
                    .into_iter()
                    .map(|k| offset_addr(cfg.src, k))
                    .collect::<Option<_>>()
                    .ok_or_else(|| too_many(addr_room))?
            }
        };
        let l4_at = Self::l3_offset(cfg) + if cfg.src.is_ipv4() { 20 } else { 40 };
        let l4_hdr = match cfg.proto {
            Proto::Udp => 8,
            Proto::Tcp => 20,
        };
        let csum_at = l4_at + if cfg.proto == Proto::Udp { 6 } else { 16 };
        let flows: Vec<Flow> = ports
            .into_iter()
            .zip(addrs)
            .map(|(src_port, src)| {
                let spec = FrameSpec::udp(src, cfg.dst, src_port, cfg.dst_port, frame_len)
                    .macs(cfg.src_mac, cfg.dst_mac)
                    .vlans(&cfg.vlans)
                    .ttl(cfg.ttl);
                let template = match cfg.proto {
                    Proto::Udp => spec,
                    Proto::Tcp => spec.with_tcp(cfg.tcp_flags),
                }
                .build()?;
                let csum = u16::from_be_bytes([template[csum_at], template[csum_at + 1]]);
                Ok(Flow {
                    src,
                    src_port,
                    template,
                    csum,
                })
            })
            .collect::<Result<_, PktgenError>>()?;
        Ok(FlowSet {
            flows,
            frame_len,
            tag_at: l4_at + l4_hdr,
            csum_at,
            udp: cfg.proto == Proto::Udp,
        })
    }

    /// Number of flows.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// True when there are no flows (never, for a set built by [`FlowSet::new`]).
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// The flows, indexed by flow id.
    pub fn flows(&self) -> &[Flow] {
        &self.flows
    }

    /// Length of every frame (without FCS).
    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    /// The frame of `tag.flow` before its tag is written (what [`FlowSet::stamp`] expects).
    /// Panics when the flow id is out of range.
    pub fn template(&self, flow: u32) -> &[u8] {
        &self.flows[flow as usize].template
    }

    /// Writes `tag` into `frame` (a copy of the template of `tag.flow`) and fixes the L4
    /// checksum. Panics when the flow id is out of range or `frame` is shorter than the template.
    pub fn stamp(&self, tag: &Tag, frame: &mut [u8]) {
        let flow = &self.flows[tag.flow as usize];
        let new = tag.encode();
        let old = &flow.template[self.tag_at..self.tag_at + TAG_LEN];
        // The tag sits at an even offset of the checksummed data (after an 8- or 20-byte header).
        let mut csum = checksum::update_bytes(flow.csum, 0, old, &new);
        // Both encodings of ones'-complement zero are equivalent, except that UDP reserves 0 for
        // "no checksum".
        if self.udp && csum == 0 {
            csum = 0xffff;
        }
        frame[self.tag_at..self.tag_at + TAG_LEN].copy_from_slice(&new);
        frame[self.csum_at..self.csum_at + 2].copy_from_slice(&csum.to_be_bytes());
    }

    /// A complete tagged frame (allocates; for tests and one-off use).
    pub fn build(&self, tag: &Tag) -> Vec<u8> {
        let mut f = self.template(tag.flow).to_vec();
        self.stamp(tag, &mut f);
        f
    }
}

/// Where the sender gets frames for a port: a pool's frame filled with a copy of some bytes.
pub trait FrameSource<F: Frame> {
    /// A frame holding a copy of `bytes`, or `None` when no buffer is free.
    fn frame_from(&mut self, bytes: &[u8]) -> Option<F>;
}

impl FrameSource<MemFrame> for FramePool {
    fn frame_from(&mut self, bytes: &[u8]) -> Option<MemFrame> {
        FramePool::frame_from(self, bytes).ok()
    }
}

impl FrameSource<XdpFrame> for Umem {
    #[inline]
    fn frame_from(&mut self, bytes: &[u8]) -> Option<XdpFrame> {
        // Not `Umem::frame_from`: its error (a formatted message) would allocate whenever the
        // free list runs dry, which a sender outrunning its completions hits routinely.
        let mut frame = self.alloc()?;
        if !frame.set_len(bytes.len()) {
            self.release(frame);
            return None;
        }
        frame.data_mut().copy_from_slice(bytes);
        Some(frame)
    }
}

/// Errors of setting up an AF_XDP sender or sink.
#[derive(Debug, thiserror::Error)]
pub enum XdpSetupError {
    /// The UMEM, the socket or the XDP program could not be set up.
    #[error(transparent)]
    Xdp(#[from] XdpError),
    /// The interface's addresses could not be read.
    #[error("reading the addresses of {ifname}: {source}")]
    Addresses {
        /// The interface.
        ifname: String,
        /// What netlink said.
        source: NetlinkError,
    },
}

/// Tx ring slots of the sender's socket: room for many bursts while the kernel catches up.
const SENDER_TX_RING: u32 = 2048;
/// Rx and fill ring slots of the sender's socket. The kernel wants both rings; with no XDP
/// program nothing arrives, so the frames lent to the fill ring are kept to a minimum.
const SENDER_RX_RING: u32 = 64;
/// How long the sender waits at the end for the kernel to confirm the last transmissions.
const SENDER_DRAIN: Duration = Duration::from_secs(1);
/// Rx and fill ring slots of the sink's socket: ~4 ms of packets at 2 Mpps, so a sink that
/// loses its core for a few scheduler ticks on a busy box (or sleeps between idle polls) drops
/// nothing. 32 MiB of UMEM.
const SINK_RX_RING: u32 = 8192;
/// Tx and completion ring slots of the sink's socket (it never transmits).
const SINK_TX_RING: u32 = 64;

/// An AF_XDP socket for sending, with its own UMEM. Needs no XDP program.
pub struct XdpSender {
    port: XskPort,
    umem: Umem,
    /// Frames the socket keeps in its fill ring (constant: nothing is received).
    idle_held: u32,
}

impl XdpSender {
    /// Opens a socket on `ifname` queue `queue` (zero-copy if the driver can, else copy mode).
    pub fn open(ifname: &str, queue: u32) -> Result<Self, XdpSetupError> {
        let config = XskConfig {
            rx_size: SENDER_RX_RING,
            fill_size: SENDER_RX_RING,
            tx_size: SENDER_TX_RING,
            comp_size: SENDER_TX_RING,
            ..XskConfig::default()
        };
        // Fill ring + a full tx ring + a full completion ring + the burst in hand: the free
        // list cannot run dry for long.
        let frames = config.fill_size + config.tx_size + config.comp_size + 2 * BURST as u32;
        let umem = Umem::new(UmemConfig {
            frame_count: frames,
            ..UmemConfig::default()
        })?;
        let port = XskPort::open(&umem, ifname, queue, BindMode::Auto, &config)?;
        let idle_held = port.kernel_held();
        Ok(Self {
            port,
            umem,
            idle_held,
        })
    }

    /// The socket.
    pub fn port(&self) -> &XskPort {
        &self.port
    }

    /// [`send`] over the socket, then waits (up to a second) until the kernel has confirmed
    /// every transmission; the report's time includes that wait, and frames still unconfirmed
    /// after it are in [`SendReport::unconfirmed`].
    pub fn send(&mut self, flows: &FlowSet, opts: &SendOptions, stop: &AtomicBool) -> SendReport {
        let start = Instant::now();
        let mut report = send(&mut self.port, &mut self.umem, flows, opts, stop);
        let deadline = Instant::now() + SENDER_DRAIN;
        loop {
            self.port.flush();
            if self.port.kernel_held() <= self.idle_held || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        report.unconfirmed = u64::from(self.port.kernel_held().saturating_sub(self.idle_held));
        report.seconds = start.elapsed().as_secs_f64();
        report.mpps = report.packets as f64 / report.seconds / 1e6;
        report
    }
}

/// An AF_XDP socket for receiving: its UMEM, and the XDP program steering the queue's transit
/// packets to it. Dropping it detaches the program.
pub struct XdpSink {
    // The socket keeps its UMEM alive; it closes before the program detaches.
    port: XskPort,
    program: XdpProgram,
}

impl XdpSink {
    /// Attaches the XDP program to `ifname` in `mode`, tells it the interface's own addresses
    /// (their packets keep going to the kernel), and opens and registers a socket on `queue`.
    pub fn open(ifname: &str, queue: u32, mode: AttachMode) -> Result<Self, XdpSetupError> {
        let iface =
            ecmp_io::netlink::interface(ifname).map_err(|source| XdpSetupError::Addresses {
                ifname: ifname.to_owned(),
                source,
            })?;
        let program = XdpProgram::attach(ifname, mode)?;
        let own: Vec<IpAddr> = iface.addrs.iter().map(|a| a.0).collect();
        program.set_pass_addrs(&own)?;
        let config = XskConfig {
            rx_size: SINK_RX_RING,
            fill_size: SINK_RX_RING,
            tx_size: SINK_TX_RING,
            comp_size: SINK_TX_RING,
            ..XskConfig::default()
        };
        let umem = Umem::new(UmemConfig {
            frame_count: config.fill_size + config.tx_size + 2 * BURST as u32,
            ..UmemConfig::default()
        })?;
        let port = XskPort::open(&umem, ifname, queue, BindMode::Auto, &config)?;
        program.register_socket(queue, std::os::fd::AsFd::as_fd(&port))?;
        Ok(Self { port, program })
    }

    /// The socket, to pass to [`sink`].
    pub fn port(&mut self) -> &mut XskPort {
        &mut self.port
    }

    /// The attached program.
    pub fn program(&self) -> &XdpProgram {
        &self.program
    }
}

/// How long and how fast [`send`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendOptions {
    /// Packets per second; 0 sends as fast as the port takes them.
    pub rate_pps: u64,
    /// Stop after this many packets.
    pub count: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Give up when the port has refused every frame for this long.
    pub stall_timeout: Duration,
}

/// What [`send`] did (printed as one JSON line by the binary).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SendReport {
    /// Packets the port accepted.
    pub packets: u64,
    /// Bytes of those packets (without FCS).
    pub bytes: u64,
    /// Wall time of the run in seconds.
    pub seconds: f64,
    /// `packets / seconds / 1e6`.
    pub mpps: f64,
    /// Number of flows.
    pub flows: usize,
    /// Frame length (without FCS).
    pub frame_len: usize,
    /// Times the port refused part of a burst (the frames were retried).
    pub refusals: u64,
    /// True when the run stopped because the port refused everything for the stall timeout.
    pub stalled: bool,
    /// Accepted packets the kernel had not confirmed as sent when the run ended (AF_XDP only:
    /// other ports hand packets over synchronously).
    pub unconfirmed: u64,
}

/// Sends the flows of `flows` out of `port` until the count, the duration or `stop` ends the run.
pub fn send<P, S>(
    port: &mut P,
    source: &mut S,
    flows: &FlowSet,
    opts: &SendOptions,
    stop: &AtomicBool,
) -> SendReport
where
    P: Port,
    S: FrameSource<P::Frame>,
{
    let n_flows = flows.len() as u64;
    let mut seqs = vec![0u64; flows.len()];
    let mut burst: Burst<P::Frame> = Burst::new();
    let (mut built, mut packets, mut bytes, mut refusals) = (0u64, 0u64, 0u64, 0u64);
    let mut stalled = false;
    let start = Instant::now();
    let mut last_progress = start;
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let now = Instant::now();
        let elapsed = now - start;
        if opts.duration.is_some_and(|d| elapsed >= d) {
            break;
        }
        let left = opts.count.map_or(u64::MAX, |c| c - built);
        if left == 0 && burst.is_empty() {
            break;
        }
        // Pacing: how many packets the rate allows by now.
        let allowed = if opts.rate_pps == 0 {
            u64::MAX
        } else {
            let due = elapsed.as_nanos() * u128::from(opts.rate_pps) / 1_000_000_000;
            u64::try_from(due).unwrap_or(u64::MAX).saturating_sub(built)
        };
        let want = left.min(allowed).min(burst.remaining_capacity() as u64);
        let mut dry = false;
        if want > 0 {
            let tx_ns = ecmp_io::packet::monotonic_ns();
            for _ in 0..want {
                let flow = (built % n_flows) as u32;
                let Some(mut frame) = source.frame_from(flows.template(flow)) else {
                    dry = true;
                    break;
                };
                let seq = &mut seqs[flow as usize];
                flows.stamp(
                    &Tag {
                        flow,
                        seq: *seq,
                        tx_ns,
                    },
                    frame.data_mut(),
                );
                *seq += 1;
                built += 1;
                burst.push(frame);
            }
        }
        if burst.is_empty() && dry {
            // Every buffer is queued in the port: reap its completions to get some back.
            port.flush();
            if now - last_progress >= opts.stall_timeout {
                stalled = true;
                break;
            }
            continue;
        }
        if burst.is_empty() {
            // Nothing due yet: wait for the next packet's slot, briefly, to stay responsive.
            if opts.rate_pps > 0 {
                let next = Duration::from_nanos(
                    ((built + 1) as u128 * 1_000_000_000 / u128::from(opts.rate_pps))
                        .try_into()
                        .unwrap_or(u64::MAX),
                );
                let wait = next.saturating_sub(start.elapsed());
                std::thread::sleep(wait.min(Duration::from_millis(10)));
            }
            continue;
        }
        let before = burst.len();
        let len_before: u64 = burst.iter().map(|f| f.data().len() as u64).sum();
        let accepted = port.tx_burst(&mut burst);
        port.flush();
        let len_after: u64 = burst.iter().map(|f| f.data().len() as u64).sum();
        packets += accepted as u64;
        bytes += len_before - len_after;
        if accepted < before {
            refusals += 1;
        }
        if accepted > 0 {
            last_progress = now;
        } else if now - last_progress >= opts.stall_timeout {
            stalled = true;
            break;
        } else {
            // The port's queue is full: let the kernel (or the peer) drain it.
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    for f in burst.drain(..) {
        port.release(f);
    }
    let seconds = start.elapsed().as_secs_f64();
    SendReport {
        packets,
        bytes,
        seconds,
        mpps: if seconds > 0.0 {
            packets as f64 / seconds / 1e6
        } else {
            0.0
        },
        flows: flows.len(),
        frame_len: flows.frame_len(),
        refusals,
        stalled,
        unconfirmed: 0,
    }
}

/// How long [`sink`] listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkOptions {
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Stop once this many tagged packets arrived.
    pub count: Option<u64>,
}

/// One-way latency percentiles (transmit stamp to the sink's receipt), in ns.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Latency {
    /// Packets measured.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
    /// The whole histogram as (value, packets) pairs, value being the highest latency its
    /// bucket holds (3 significant digits): sinks on several backends report one each, and a
    /// harness sums the counts per value to get exact percentiles of all of them together.
    pub buckets: Vec<(u64, u64)>,
}

impl Latency {
    /// Percentiles and buckets of a histogram; `None` when it is empty.
    pub fn of(hist: &hdrhistogram::Histogram<u64>) -> Option<Latency> {
        if hist.is_empty() {
            return None;
        }
        Some(Latency {
            count: hist.len(),
            p50: hist.value_at_quantile(0.5),
            p90: hist.value_at_quantile(0.9),
            p99: hist.value_at_quantile(0.99),
            p999: hist.value_at_quantile(0.999),
            max: hist.max(),
            buckets: hist
                .iter_recorded()
                .map(|v| {
                    (
                        hist.highest_equivalent(v.value_iterated_to()),
                        v.count_at_value(),
                    )
                })
                .collect(),
        })
    }
}

/// What [`sink`] received (written as one JSON object by the binary).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SinkReport {
    /// Tagged packets received.
    pub packets: u64,
    /// Bytes of the tagged packets (without FCS).
    pub bytes: u64,
    /// Frames without a tag (host chatter such as ARP or neighbour discovery); not counted above.
    pub ignored: u64,
    /// Tagged packets per flow id.
    pub flows: BTreeMap<u32, u64>,
    /// Tagged packets whose sequence number was not above the last one seen on their flow.
    pub reordered: u64,
    /// Hex of the first tagged frame, for checks of its MACs, TTL and checksums.
    pub first_packet: Option<String>,
    /// Latency of the packets that carried a transmit time.
    pub latency_ns: Option<Latency>,
    /// Wall time listened, in seconds.
    pub seconds: f64,
    /// Seconds from the burst holding the first tagged packet to the one holding the last.
    pub active_seconds: f64,
    /// Tagged packets per second over `active_seconds`, in millions (those of the first burst
    /// not counted: they arrived at its start); 0 with fewer than two bursts.
    pub mpps: f64,
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            use std::fmt::Write as _;
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Receives from `port` until the duration, the count or `stop` ends the run; writes one hex
/// line per received frame (tagged or not, at most its first 128 bytes) to `dump` if given.
pub fn sink<P: Port>(
    port: &mut P,
    opts: &SinkOptions,
    stop: &AtomicBool,
    mut dump: Option<&mut dyn Write>,
) -> std::io::Result<SinkReport> {
    let mut report = SinkReport {
        packets: 0,
        bytes: 0,
        ignored: 0,
        flows: BTreeMap::new(),
        reordered: 0,
        first_packet: None,
        latency_ns: None,
        seconds: 0.0,
        active_seconds: 0.0,
        mpps: 0.0,
    };
    // Arrival time of the first burst with a tagged packet, and the tagged packets up to it.
    let mut first: Option<(u64, u64)> = None;
    let mut last_ns = 0u64;
    // 3 significant digits up to 100 s: plenty for a lab, and allocated once here.
    let mut hist = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 100_000_000_000, 3)
        .map_err(std::io::Error::other)?;
    let mut last_seq: BTreeMap<u32, u64> = BTreeMap::new();
    let mut burst: Burst<P::Frame> = Burst::new();
    let start = Instant::now();
    let mut idle = 0u32;
    let mut result = Ok(());
    while !stop.load(Ordering::Relaxed)
        && opts.duration.is_none_or(|d| start.elapsed() < d)
        && opts.count.is_none_or(|c| report.packets < c)
    {
        if port.rx_burst(&mut burst) == 0 {
            // Spin briefly for low latency, then back off to spare the core.
            idle = idle.saturating_add(1);
            if idle > 64 {
                std::thread::sleep(Duration::from_micros(100));
            } else {
                std::thread::yield_now();
            }
            continue;
        }
        idle = 0;
        let now_ns = ecmp_io::packet::monotonic_ns();
        let tagged_before = report.packets;
        for frame in burst.drain(..) {
            let data = frame.data();
            if let (Some(w), Ok(())) = (dump.as_deref_mut(), &result) {
                result = writeln!(w, "{}", hex(&data[..data.len().min(128)]));
            }
            match Tag::of_frame(data) {
                Some(tag) => {
                    report.packets += 1;
                    report.bytes += data.len() as u64;
                    *report.flows.entry(tag.flow).or_default() += 1;
                    if let Some(prev) = last_seq.insert(tag.flow, tag.seq)
                        && tag.seq <= prev
                    {
                        report.reordered += 1;
                    }
                    if report.first_packet.is_none() {
                        report.first_packet = Some(hex(data));
                    }
                    if tag.tx_ns != 0 && now_ns >= tag.tx_ns {
                        hist.saturating_record(now_ns - tag.tx_ns);
                    }
                }
                None => report.ignored += 1,
            }
            port.release(frame);
        }
        if report.packets > tagged_before {
            first.get_or_insert((now_ns, report.packets));
            last_ns = now_ns;
        }
    }
    for f in burst.drain(..) {
        port.release(f);
    }
    report.seconds = start.elapsed().as_secs_f64();
    if let Some((first_ns, at_first)) = first
        && last_ns > first_ns
    {
        report.active_seconds = (last_ns - first_ns) as f64 / 1e9;
        report.mpps = (report.packets - at_first) as f64 / report.active_seconds / 1e6;
    }
    report.latency_ns = Latency::of(&hist);
    result.map(|()| report)
}

/// How often [`drop_sink`] reads the program's counters: the resolution of `active_seconds`.
const DROP_SINK_READ_EVERY: Duration = Duration::from_millis(1);

/// Counts tagged packets with an XDP [`DropSink`](ecmp_io::xdp::DropSink) until the duration,
/// the count or `stop` ends the run. The program drops them in XDP, so there is nothing to
/// attribute per flow, to time or to dump: `flows`, `reordered`, `first_packet` and
/// `latency_ns` stay empty. `active_seconds` runs from the first counter read that saw a tagged
/// packet to the last one that saw the count grow (1 ms apart at most); `mpps` leaves out the
/// packets of the first read, as [`sink`] leaves out its first burst's.
pub fn drop_sink(
    prog: &ecmp_io::xdp::DropSink,
    opts: &SinkOptions,
    stop: &AtomicBool,
) -> Result<SinkReport, XdpError> {
    let base = prog.counters()?;
    let start = Instant::now();
    let mut first: Option<(Instant, u64)> = None;
    let mut last = start;
    let mut now = base;
    loop {
        let done = stop.load(Ordering::Relaxed)
            || opts.duration.is_some_and(|d| start.elapsed() >= d)
            || opts.count.is_some_and(|c| now.tagged - base.tagged >= c);
        if done {
            break;
        }
        std::thread::sleep(DROP_SINK_READ_EVERY);
        let read = prog.counters()?;
        let at = Instant::now();
        if read.tagged > now.tagged {
            first.get_or_insert((at, read.tagged - base.tagged));
            last = at;
        }
        now = read;
    }
    let packets = now.tagged - base.tagged;
    let (active_seconds, mpps) = match first {
        Some((t0, at_first)) if last > t0 => {
            let s = (last - t0).as_secs_f64();
            (s, (packets - at_first) as f64 / s / 1e6)
        }
        _ => (0.0, 0.0),
    };
    Ok(SinkReport {
        packets,
        bytes: now.tagged_bytes - base.tagged_bytes,
        ignored: now.passed - base.passed,
        flows: BTreeMap::new(),
        reordered: 0,
        first_packet: None,
        latency_ns: None,
        seconds: start.elapsed().as_secs_f64(),
        active_seconds,
        mpps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecmp_port::memory::{MemoryPort, TxMode};
    use ecmp_wire::{ipv4, ipv6, tcp, udp, vlan};

    fn cfg(src: &str, dst: &str, proto: Proto, flows: u32, vary: Vary) -> FlowConfig {
        FlowConfig {
            src_mac: [2, 0xef, 0, 0, 0, 1],
            dst_mac: [2, 0xef, 0, 0, 0, 0xfe],
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            proto,
            tcp_flags: TcpFlags::ACK,
            src_port: 4000,
            dst_port: 80,
            flows,
            vary,
            seed: 7,
            frame_len: None,
            ttl: 64,
            vlans: Vec::new(),
        }
    }

    /// Verifies the L4 checksum of a frame from scratch.
    fn l4_checksum_ok(f: &[u8]) -> bool {
        let m = ecmp_wire::parse_frame(f).unwrap();
        let l4 = usize::from(m.l4_offset);
        let len = f.len() - l4;
        let l3 = usize::from(m.l3_offset);
        let pseudo = if m.version == ecmp_wire::meta::IpVersion::V4 {
            let ip = ipv4::Packet::new_checked(&f[l3..]).unwrap();
            checksum::pseudo_header_v4(
                ip.src_addr().octets(),
                ip.dst_addr().octets(),
                m.protocol,
                len as u16,
            )
        } else {
            let ip = ipv6::Packet::new_checked(&f[l3..]).unwrap();
            checksum::pseudo_header_v6(
                ip.src_addr().octets(),
                ip.dst_addr().octets(),
                m.protocol,
                len as u32,
            )
        };
        if m.protocol == ip_proto::UDP {
            udp::Packet::new_checked(&f[l4..])
                .unwrap()
                .verify_checksum(pseudo)
        } else {
            tcp::Packet::new_checked(&f[l4..])
                .unwrap()
                .verify_checksum(pseudo)
        }
    }

    #[test]
    fn tag_round_trips_and_rejects_foreign_payloads() {
        let t = Tag {
            flow: 0xdead_beef,
            seq: u64::MAX - 3,
            tx_ns: 123_456_789_012,
        };
        let b = t.encode();
        assert_eq!(&b[..4], b"EFWG");
        assert_eq!(Tag::decode(&b), Some(t));
        assert_eq!(Tag::decode(&b[..TAG_LEN - 1]), None);
        let mut bad = b;
        bad[0] ^= 1;
        assert_eq!(Tag::decode(&bad), None);
        // Trailing bytes are padding, not part of the tag.
        let mut long = b.to_vec();
        long.extend_from_slice(&[9; 40]);
        assert_eq!(Tag::decode(&long), Some(t));
    }

    #[test]
    fn tags_are_found_inside_vxlan() {
        let set =
            FlowSet::new(&cfg("198.18.0.1", "198.19.0.1", Proto::Udp, 4, Vary::Port)).unwrap();
        let tag = Tag {
            flow: 3,
            seq: 9,
            tx_ns: 77,
        };
        let inner = set.build(&tag);
        // Outer Ethernet, IPv4 (checksum right), UDP to 4789, VXLAN with the I flag, then the
        // tagged frame as it was sent.
        let ip_len = (20 + 8 + 8 + inner.len()) as u16;
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        f.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0]);
        f[16..18].copy_from_slice(&ip_len.to_be_bytes());
        f.extend_from_slice(&[198, 18, 1, 254, 198, 18, 1, 1]);
        let csum = checksum::compute(&f[14..34]);
        f[24..26].copy_from_slice(&csum.to_be_bytes());
        // UDP: source port, 4789, length; checksum 0, then VXLAN: flags, reserved, VNI 101.
        f.extend_from_slice(&[0xc0, 0x01, 0x12, 0xb5]);
        f.extend_from_slice(&(ip_len - 20).to_be_bytes());
        f.extend_from_slice(&[0, 0, 0x08, 0, 0, 0, 0, 0, 101, 0]);
        f.extend_from_slice(&inner);
        assert_eq!(Tag::of_frame(&f), Some(tag));
        // Without the VXLAN I flag it is not VXLAN, and the outer payload carries no tag.
        f[42] = 0;
        assert_eq!(Tag::of_frame(&f), None);
    }

    #[test]
    fn every_family_and_protocol_gives_valid_tagged_frames() {
        for (src, dst) in [
            ("198.18.0.1", "198.19.0.1"),
            ("2001:2::1", "2001:2:0:ffff::1"),
        ] {
            for proto in [Proto::Udp, Proto::Tcp] {
                let c = cfg(src, dst, proto, 8, Vary::Port);
                let set = FlowSet::new(&c).unwrap();
                assert_eq!(set.frame_len(), FlowSet::min_frame_len(&c));
                for size in [set.frame_len(), 1514] {
                    let set = FlowSet::new(&FlowConfig {
                        frame_len: Some(size),
                        ..c.clone()
                    })
                    .unwrap();
                    // Many tags, so both checksum edge cases (0 and 0xffff) get a chance.
                    for i in 0..2000u64 {
                        let tag = Tag {
                            flow: (i % 8) as u32,
                            seq: i * 0x0101_0101,
                            tx_ns: i.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                        };
                        let f = set.build(&tag);
                        assert_eq!(f.len(), size);
                        assert!(l4_checksum_ok(&f), "{src} {proto:?} {size} {i}");
                        assert_eq!(Tag::of_frame(&f), Some(tag));
                        let m = ecmp_wire::parse_frame(&f).unwrap();
                        assert_eq!(m.src_port, set.flows()[tag.flow as usize].src_port);
                        assert_eq!(m.dst_ip(), c.dst);
                        if proto == Proto::Tcp {
                            assert_eq!(m.tcp_flags, TcpFlags::ACK.bits());
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn vlan_tags_come_before_the_ip_header_of_every_frame() {
        let tags = [(0x88a8, 100), (0x8100, 200)];
        for (src, dst) in [
            ("198.18.0.1", "198.19.0.1"),
            ("2001:2::1", "2001:2:0:ffff::1"),
        ] {
            for proto in [Proto::Udp, Proto::Tcp] {
                let untagged = cfg(src, dst, proto, 4, Vary::Port);
                let c = FlowConfig {
                    vlans: tags.to_vec(),
                    ..untagged.clone()
                };
                let set = FlowSet::new(&c).unwrap();
                // Every family and protocol needs more than 60 bytes untagged: two tags add 8.
                assert_eq!(
                    set.frame_len(),
                    FlowSet::min_frame_len(&untagged) + 2 * vlan::HEADER_LEN
                );
                for i in 0..64u64 {
                    let tag = Tag {
                        flow: (i % 4) as u32,
                        seq: i,
                        tx_ns: i * 1000,
                    };
                    let f = set.build(&tag);
                    assert_eq!(f[12..14], [0x88, 0xa8]);
                    assert_eq!(f[16..18], [0x81, 0x00]);
                    let m = ecmp_wire::parse_frame(&f).unwrap();
                    assert_eq!((m.vlan_depth, m.l3_offset), (2, 22));
                    assert_eq!(m.src_port, set.flows()[tag.flow as usize].src_port);
                    assert!(l4_checksum_ok(&f), "{src} {proto:?} {i}");
                    assert_eq!(Tag::of_frame(&f), Some(tag));
                }
            }
        }
    }

    #[test]
    fn flow_sets_are_distinct_and_deterministic() {
        let c = cfg("198.18.0.1", "198.19.0.1", Proto::Udp, 1000, Vary::Port);
        let a = FlowSet::new(&c).unwrap();
        let b = FlowSet::new(&c).unwrap();
        assert_eq!(a.flows(), b.flows());
        let ports: HashSet<u16> = a.flows().iter().map(|f| f.src_port).collect();
        assert_eq!(ports.len(), 1000);
        assert!(ports.iter().all(|&p| p >= 1024));
        assert!(a.flows().iter().all(|f| f.src == c.src));
        let other = FlowSet::new(&FlowConfig {
            seed: 8,
            ..c.clone()
        })
        .unwrap();
        assert_ne!(a.flows(), other.flows());

        let c = cfg("198.18.0.10", "198.19.0.1", Proto::Tcp, 50, Vary::Addr);
        let s = FlowSet::new(&c).unwrap();
        let addrs: HashSet<IpAddr> = s.flows().iter().map(|f| f.src).collect();
        let want: HashSet<IpAddr> = (10..60)
            .map(|k| IpAddr::from([198, 18, 0, k as u8]))
            .collect();
        assert_eq!(addrs, want);
        assert!(s.flows().iter().all(|f| f.src_port == 4000));

        let c = cfg(
            "2001:2::100",
            "2001:2:0:ffff::1",
            Proto::Udp,
            64,
            Vary::Both,
        );
        let s = FlowSet::new(&c).unwrap();
        let pairs: HashSet<(IpAddr, u16)> = s.flows().iter().map(|f| (f.src, f.src_port)).collect();
        assert_eq!(pairs.len(), 64);
        assert_eq!(
            s.flows()
                .iter()
                .map(|f| f.src)
                .collect::<HashSet<_>>()
                .len(),
            64
        );
    }

    #[test]
    fn grid_flows_cross_ports_with_the_fewest_addresses() {
        let c = cfg("198.18.5.0", "198.19.0.1", Proto::Udp, 150_000, Vary::Grid);
        let s = FlowSet::new(&c).unwrap();
        assert_eq!(s.len(), 150_000);
        let pairs: HashSet<(IpAddr, u16)> = s.flows().iter().map(|f| (f.src, f.src_port)).collect();
        assert_eq!(
            pairs.len(),
            150_000,
            "every flow is a distinct (address, port)"
        );
        // 150000 flows over 64512 ports need 3 addresses, used in turn by consecutive flows.
        let addrs: HashSet<IpAddr> = s.flows().iter().map(|f| f.src).collect();
        let want: HashSet<IpAddr> = (0..3).map(|k| IpAddr::from([198, 18, 5, k])).collect();
        assert_eq!(addrs, want);
        assert_ne!(s.flows()[0].src, s.flows()[1].src);
        assert!(s.flows().iter().all(|f| f.src_port >= 1024));
        // A few flows fit the ports of one address.
        let c = cfg("198.18.5.0", "198.19.0.1", Proto::Udp, 100, Vary::Grid);
        let s = FlowSet::new(&c).unwrap();
        assert!(s.flows().iter().all(|f| f.src == s.flows()[0].src));
        assert_eq!(
            s.flows()
                .iter()
                .map(|f| f.src_port)
                .collect::<HashSet<_>>()
                .len(),
            100
        );
        // Too few addresses left above the base.
        let c = cfg(
            "255.255.255.255",
            "198.19.0.1",
            Proto::Udp,
            70_000,
            Vary::Grid,
        );
        assert!(matches!(
            FlowSet::new(&c),
            Err(PktgenError::TooManyFlows { max: 64512, .. })
        ));
    }

    #[test]
    fn latency_buckets_sum_to_the_count_and_merge_exactly() {
        let mut a = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 100_000_000_000, 3).unwrap();
        let mut b = a.clone();
        for v in 1..=1000u64 {
            a.record(v * 1000).unwrap();
            b.record(v * 7).unwrap();
        }
        let la = Latency::of(&a).unwrap();
        let lb = Latency::of(&b).unwrap();
        assert_eq!(la.count, 1000);
        assert_eq!(la.buckets.iter().map(|&(_, n)| n).sum::<u64>(), 1000);
        assert!(la.p50 <= la.p90 && la.p90 <= la.p99 && la.p99 <= la.p999 && la.p999 <= la.max);
        assert_eq!(la.max, a.max());
        // Re-recording both sets of buckets gives the histogram of both runs together.
        let mut merged = a.clone();
        merged.add(&b).unwrap();
        let mut rebuilt =
            hdrhistogram::Histogram::<u64>::new_with_bounds(1, 100_000_000_000, 3).unwrap();
        for &(v, n) in la.buckets.iter().chain(&lb.buckets) {
            rebuilt.record_n(v, n).unwrap();
        }
        let lm = Latency::of(&merged).unwrap();
        let lr = Latency::of(&rebuilt).unwrap();
        assert_eq!(
            (lr.count, lr.p50, lr.p99, lr.max),
            (lm.count, lm.p50, lm.p99, lm.max)
        );
        assert!(Latency::of(&hdrhistogram::Histogram::<u64>::new(3).unwrap()).is_none());
    }

    #[test]
    fn bad_flow_configs_are_refused() {
        let c = cfg("198.18.0.1", "2001:2::1", Proto::Udp, 1, Vary::Port);
        assert!(matches!(
            FlowSet::new(&c),
            Err(PktgenError::FamilyMismatch { .. })
        ));
        let c = cfg("198.18.0.1", "198.19.0.1", Proto::Udp, 0, Vary::Port);
        assert_eq!(FlowSet::new(&c).unwrap_err(), PktgenError::NoFlows);
        let c = cfg("198.18.0.1", "198.19.0.1", Proto::Udp, 70_000, Vary::Port);
        assert!(matches!(
            FlowSet::new(&c),
            Err(PktgenError::TooManyFlows { max: 64512, .. })
        ));
        let c = cfg("255.255.255.250", "198.19.0.1", Proto::Udp, 10, Vary::Addr);
        assert!(matches!(
            FlowSet::new(&c),
            Err(PktgenError::TooManyFlows { max: 6, .. })
        ));
        let c = cfg("2001:2::1", "2001:2::2", Proto::Tcp, 1, Vary::Port);
        assert_eq!(
            FlowSet::new(&FlowConfig {
                frame_len: Some(64),
                ..c
            })
            .unwrap_err(),
            PktgenError::SizeOutOfRange {
                size: 64,
                min: 98,
                max: 1514
            }
        );
    }

    #[test]
    fn send_then_sink_over_memory_counts_every_flow() {
        let c = cfg("198.18.0.1", "198.19.0.1", Proto::Udp, 16, Vary::Port);
        let set = FlowSet::new(&c).unwrap();
        let mut pool = FramePool::new(256);
        let mut tx = MemoryPort::new(pool.clone());
        let mut rx = MemoryPort::with_tx_mode(pool.clone(), TxMode::Count);
        let opts = SendOptions {
            rate_pps: 0,
            count: Some(200),
            duration: Some(Duration::from_secs(10)),
            stall_timeout: Duration::from_secs(1),
        };
        let stop = AtomicBool::new(false);
        let report = send(&mut tx, &mut pool, &set, &opts, &stop);
        assert_eq!(report.packets, 200);
        assert_eq!(report.bytes, 200 * set.frame_len() as u64);
        for p in tx.take_sent() {
            rx.inject(&p).unwrap();
        }
        rx.inject(&[0u8; 60]).unwrap();
        let mut dump = Vec::new();
        let r = sink(
            &mut rx,
            &SinkOptions {
                duration: Some(Duration::from_secs(5)),
                count: Some(200),
            },
            &stop,
            Some(&mut dump),
        )
        .unwrap();
        assert_eq!(r.packets, 200);
        assert_eq!(r.ignored, 1);
        assert_eq!(r.reordered, 0);
        assert_eq!(r.flows.len(), 16);
        // Round-robin: 200 = 16 * 12 + 8, so flows 0..8 got 13 and the rest 12.
        for (&flow, &n) in &r.flows {
            assert_eq!(n, if flow < 8 { 13 } else { 12 }, "flow {flow}");
        }
        assert!(r.latency_ns.is_some());
        let first = r.first_packet.unwrap();
        assert_eq!(first.len(), 2 * set.frame_len());
        assert!(first.starts_with("02ef000000fe02ef00000001"));
        assert_eq!(String::from_utf8(dump).unwrap().lines().count(), 201);
        assert_eq!(pool.outstanding(), 0);
    }

    #[test]
    fn send_is_paced_and_stops_on_the_flag() {
        let c = cfg("198.18.0.1", "198.19.0.1", Proto::Tcp, 4, Vary::Port);
        let set = FlowSet::new(&c).unwrap();
        let mut pool = FramePool::new(64);
        let mut tx = MemoryPort::with_tx_mode(pool.clone(), TxMode::Count);
        let stop = AtomicBool::new(false);
        let opts = SendOptions {
            rate_pps: 2000,
            count: None,
            duration: Some(Duration::from_millis(200)),
            stall_timeout: Duration::from_secs(1),
        };
        let r = send(&mut tx, &mut pool, &set, &opts, &stop);
        // 2000 pps for 0.2 s is 400 packets; allow for a slow scheduler, never for a burst.
        assert!((300..=401).contains(&r.packets), "{}", r.packets);
        stop.store(true, Ordering::Relaxed);
        let r = send(
            &mut tx,
            &mut pool,
            &set,
            &SendOptions {
                rate_pps: 0,
                ..opts
            },
            &stop,
        );
        assert_eq!(r.packets, 0);
        assert_eq!(pool.outstanding(), 0);
    }
}
