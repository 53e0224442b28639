//! `ecmpfwd-pktgen`: send tagged flows out of an interface, or count them on arrival.
//!
//! Runs in whatever network namespace it is started in (`ip netns exec NS ecmpfwd-pktgen ...`).
//! `send` prints one JSON summary line; `sink` writes one JSON report to stdout or `--out`;
//! `xdp-fib` holds the in-kernel XDP forwarding baseline on an interface and writes its counters.
//! Both stop at their duration or count, and cleanly on SIGTERM/SIGINT (an AF_XDP sink detaches
//! its XDP program on the way out).
//!
//! Drivers: `afxdp` (an AF_XDP socket on one queue; the sink attaches the ecmpfwd XDP program),
//! `afpacket` (a raw socket, every queue), or `auto`: AF_XDP when its socket (and, for the sink,
//! the program) can be set up, else AF_PACKET with a line on stderr saying why. The sink also has
//! `xdp-drop`: an XDP program counts and drops tagged packets (every queue) without handing them
//! to anyone, the cheapest sink for throughput runs (totals only: no per-flow counts, latency or
//! dump).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use ecmp_io::packet::{PacketOptions, PacketPort};
use ecmp_io::xdp::{AttachMode, DropSink, FibForwarder};
use ecmp_pktgen::{
    FlowConfig, FlowSet, Proto, SendOptions, SinkOptions, SinkReport, Vary, XdpSender, XdpSink,
};
use ecmp_port::Port;
use ecmp_port::memory::FramePool;
use ecmp_testkit::frames::TcpFlags;

#[derive(Parser)]
#[command(
    name = "ecmpfwd-pktgen",
    version,
    about = "Tagged-flow packet generator and sink for ecmpfwd labs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// How packets get on and off the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Driver {
    /// AF_XDP if it can be set up (needs root or CAP_NET_RAW/CAP_BPF), else AF_PACKET, saying
    /// why on stderr.
    Auto,
    /// An AF_XDP socket on one queue (`--queue`); bursts, one wakeup per burst.
    Afxdp,
    /// An AF_PACKET raw socket (a syscall per packet; sees every queue).
    Afpacket,
}

/// How the sink receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SinkDriver {
    /// As the sender's `auto`.
    Auto,
    /// As the sender's `afxdp`.
    Afxdp,
    /// As the sender's `afpacket`.
    Afpacket,
    /// Count and drop tagged packets in XDP (every queue): totals only.
    XdpDrop,
}

/// Where the sink's XDP program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum XdpMode {
    /// In the driver (native XDP).
    Driver,
    /// In the generic network stack (works on every interface, slower).
    Generic,
}

impl From<XdpMode> for AttachMode {
    fn from(m: XdpMode) -> Self {
        match m {
            XdpMode::Driver => AttachMode::Driver,
            XdpMode::Generic => AttachMode::Generic,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Send F flows of tagged packets out of an interface.
    Send(SendArgs),
    /// Receive on an interface and count tagged packets per flow.
    Sink(SinkArgs),
    /// Forward in the kernel with XDP, the benchmarks' baseline: bpf_fib_lookup over the
    /// kernel's routes and nexthop groups, then a redirect in the driver, on `--iface` (the
    /// ingress) until a signal or `--duration`; prints the program's counters as JSON.
    XdpFib(XdpFibArgs),
}

#[derive(Args)]
struct XdpFibArgs {
    /// The ingress interface (forwarding must be enabled on it).
    #[arg(long)]
    iface: String,
    /// Where the program runs.
    #[arg(long, value_enum, default_value = "driver")]
    xdp_mode: XdpMode,
    /// Seconds to stay attached (0 = until SIGTERM/SIGINT).
    #[arg(long, default_value_t = 0.0)]
    duration: f64,
    /// Create this file once the program is attached.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// Write the JSON counters here instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct SendArgs {
    /// The interface to send on.
    #[arg(long)]
    iface: String,
    /// Packet I/O driver.
    #[arg(long, value_enum, default_value = "auto")]
    driver: Driver,
    /// Interface queue of the AF_XDP socket.
    #[arg(long, default_value_t = 0)]
    queue: u32,
    /// Destination MAC (the next hop's, e.g. the forwarder port's).
    #[arg(long, value_parser = parse_mac)]
    dst_mac: [u8; 6],
    /// Source MAC; defaults to the interface's own.
    #[arg(long, value_parser = parse_mac)]
    src_mac: Option<[u8; 6]>,
    /// Source address (the base address when addresses vary).
    #[arg(long)]
    src_ip: IpAddr,
    /// Destination address (same family as --src-ip).
    #[arg(long)]
    dst_ip: IpAddr,
    /// Transport protocol.
    #[arg(long, value_enum, default_value = "udp")]
    proto: Proto,
    /// TCP flags: names joined by commas (fin,syn,rst,psh,ack,urg) or a number (0x10).
    #[arg(long, default_value = "ack", value_parser = parse_tcp_flags)]
    tcp_flags: TcpFlags,
    /// Source port when ports do not vary.
    #[arg(long, default_value_t = 1024)]
    src_port: u16,
    /// Destination port.
    #[arg(long, default_value_t = 80)]
    dst_port: u16,
    /// Number of flows.
    #[arg(long, default_value_t = 1)]
    flows: u32,
    /// What distinguishes flows.
    #[arg(long, value_enum, default_value = "port")]
    vary: Vary,
    /// Seed of the flows' source ports and address order.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Frame size in bytes without FCS (default: the smallest holding headers and tag).
    #[arg(long)]
    size: Option<usize>,
    /// TTL / hop limit.
    #[arg(long, default_value_t = 64)]
    ttl: u8,
    /// A VLAN tag as TPID:VID (e.g. 0x88a8:100), repeated outermost first (QinQ: the S-tag,
    /// then the C-tag); none by default.
    #[arg(long = "vlan", value_parser = parse_vlan)]
    vlans: Vec<(u16, u16)>,
    /// Packets per second (0 = as fast as possible).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Number of packets to send.
    #[arg(long)]
    count: Option<u64>,
    /// Seconds to send for.
    #[arg(long)]
    duration: Option<f64>,
    /// Give up after the interface refused every packet for this many seconds.
    #[arg(long, default_value_t = 2.0)]
    stall_timeout: f64,
    /// Write the JSON summary here instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct SinkArgs {
    /// The interface to receive on.
    #[arg(long)]
    iface: String,
    /// Packet I/O driver (afxdp receives only transit IPv4/IPv6 packets of one queue; the
    /// interface's own traffic still goes to the host; xdp-drop counts tagged packets in XDP and
    /// drops them).
    #[arg(long, value_enum, default_value = "afpacket")]
    driver: SinkDriver,
    /// Interface queue of the AF_XDP socket.
    #[arg(long, default_value_t = 0)]
    queue: u32,
    /// Where the XDP program runs (afxdp, xdp-drop).
    #[arg(long, value_enum, default_value = "driver")]
    xdp_mode: XdpMode,
    /// Seconds to listen (0 = until --count or a signal).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Stop once this many tagged packets arrived.
    #[arg(long)]
    count: Option<u64>,
    /// Receive frames addressed to other MACs too (afpacket; XDP sees every frame anyway).
    #[arg(long)]
    promisc: bool,
    /// Write the JSON report here instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write every received frame (first 128 bytes, hex) to this file, one a line.
    #[arg(long)]
    dump: Option<PathBuf>,
    /// Create this file once the sink is listening (for scripts that must not send earlier).
    #[arg(long)]
    ready_file: Option<PathBuf>,
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.trim().split(':').collect();
    let mut mac = [0u8; 6];
    if parts.len() != 6 {
        return Err(format!("{s:?}: a MAC is six hex bytes joined by ':'"));
    }
    for (b, p) in mac.iter_mut().zip(parts) {
        *b = u8::from_str_radix(p, 16).map_err(|_| format!("{s:?}: {p:?} is not a hex byte"))?;
    }
    Ok(mac)
}

fn parse_vlan(s: &str) -> Result<(u16, u16), String> {
    let (tpid, vid) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?}: a VLAN tag is TPID:VID, e.g. 0x8100:100"))?;
    let tpid = match tpid.strip_prefix("0x") {
        Some(hex) => u16::from_str_radix(hex, 16),
        None => tpid.parse(),
    }
    .map_err(|e| format!("{s:?}: TPID {tpid:?}: {e}"))?;
    let vid: u16 = vid
        .parse()
        .map_err(|e| format!("{s:?}: VID {vid:?}: {e}"))?;
    if vid > 4095 {
        return Err(format!(
            "{s:?}: VID {vid} does not fit in 12 bits (0..=4095)"
        ));
    }
    Ok((tpid, vid))
}

fn parse_tcp_flags(s: &str) -> Result<TcpFlags, String> {
    if let Some(hex) = s.strip_prefix("0x") {
        return u8::from_str_radix(hex, 16)
            .map(TcpFlags::from_bits)
            .map_err(|e| format!("{s:?}: {e}"));
    }
    if let Ok(n) = s.parse::<u8>() {
        return Ok(TcpFlags::from_bits(n));
    }
    s.split(',').try_fold(TcpFlags::NONE, |acc, name| {
        let bit = match name.trim().to_ascii_lowercase().as_str() {
            "fin" => TcpFlags::FIN,
            "syn" => TcpFlags::SYN,
            "rst" => TcpFlags::RST,
            "psh" => TcpFlags::PSH,
            "ack" => TcpFlags::ACK,
            "urg" => TcpFlags::URG,
            "none" | "" => TcpFlags::NONE,
            other => return Err(format!("unknown TCP flag {other:?}")),
        };
        Ok(acc | bit)
    })
}

fn seconds(s: f64, what: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(s).with_context(|| format!("{what}: {s} is not a duration"))
}

fn signal_flag() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    Ok(stop)
}

fn interface_mac(iface: &str) -> Result<[u8; 6]> {
    let path = format!("/sys/class/net/{iface}/address");
    let text = std::fs::read_to_string(&path).with_context(|| format!("{path}: cannot read"))?;
    parse_mac(&text).map_err(anyhow::Error::msg)
}

fn write_out(out: Option<&PathBuf>, json: &str) -> Result<()> {
    match out {
        Some(path) => std::fs::write(path, format!("{json}\n"))
            .with_context(|| format!("{}: cannot write", path.display())),
        None => {
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{json}")?;
            stdout.flush()?;
            Ok(())
        }
    }
}

fn run_send(a: SendArgs) -> Result<bool> {
    if a.count.is_none() && a.duration.is_none() {
        bail!("give --count or --duration (or both): the sender must end on its own");
    }
    let stop = signal_flag()?;
    let src_mac = match a.src_mac {
        Some(m) => m,
        None => interface_mac(&a.iface)?,
    };
    let cfg = FlowConfig {
        src_mac,
        dst_mac: a.dst_mac,
        src: a.src_ip,
        dst: a.dst_ip,
        proto: a.proto,
        tcp_flags: a.tcp_flags,
        src_port: a.src_port,
        dst_port: a.dst_port,
        flows: a.flows,
        vary: a.vary,
        seed: a.seed,
        frame_len: a.size,
        ttl: a.ttl,
        vlans: a.vlans,
    };
    let flows = FlowSet::new(&cfg)?;
    let opts = SendOptions {
        rate_pps: a.rate,
        count: a.count,
        duration: a.duration.map(|d| seconds(d, "--duration")).transpose()?,
        stall_timeout: seconds(a.stall_timeout, "--stall-timeout")?,
    };
    let xdp = match a.driver {
        Driver::Afpacket => None,
        Driver::Afxdp => Some(
            XdpSender::open(&a.iface, a.queue)
                .with_context(|| format!("{} queue {}: opening AF_XDP", a.iface, a.queue))?,
        ),
        Driver::Auto => match XdpSender::open(&a.iface, a.queue) {
            Ok(x) => Some(x),
            Err(e) => {
                eprintln!(
                    "ecmpfwd-pktgen send: {} queue {}: AF_XDP unavailable ({e}); using afpacket",
                    a.iface, a.queue
                );
                None
            }
        },
    };
    let report = match xdp {
        Some(mut x) => {
            let report = x.send(&flows, &opts, &stop);
            if report.unconfirmed > 0 {
                eprintln!(
                    "ecmpfwd-pktgen send: {}: {} packets not confirmed sent at exit",
                    a.iface, report.unconfirmed
                );
            }
            report
        }
        None => {
            let mut pool = FramePool::new(4 * ecmp_port::BURST);
            let mut port = PacketPort::open(&a.iface, pool.clone())?;
            let report = ecmp_pktgen::send(&mut port, &mut pool, &flows, &opts, &stop);
            if let Some(e) = port.take_error() {
                eprintln!("ecmpfwd-pktgen send: {}: {e}", a.iface);
            }
            report
        }
    };
    write_out(a.out.as_ref(), &serde_json::to_string(&report)?)?;
    Ok(!report.stalled)
}

fn run_sink(a: SinkArgs) -> Result<bool> {
    if a.driver == SinkDriver::XdpDrop && a.dump.is_some() {
        bail!("--dump needs a driver that receives the frames (xdp-drop drops them)");
    }
    let stop = signal_flag()?;
    let opts = SinkOptions {
        duration: (a.duration > 0.0)
            .then(|| seconds(a.duration, "--duration"))
            .transpose()?,
        count: a.count,
    };
    let mut dump_file = match &a.dump {
        Some(path) => {
            Some(BufWriter::new(File::create(path).with_context(|| {
                format!("{}: cannot create", path.display())
            })?))
        }
        None => None,
    };
    let xdp = match a.driver {
        SinkDriver::XdpDrop => {
            let prog = DropSink::attach(&a.iface, a.xdp_mode.into())
                .with_context(|| format!("{}: attaching the XDP drop sink", a.iface))?;
            if let Some(path) = &a.ready_file {
                File::create(path).with_context(|| format!("{}: cannot create", path.display()))?;
            }
            eprintln!(
                "ecmpfwd-pktgen sink: counting and dropping in XDP on {} ({:?} mode)",
                a.iface,
                prog.mode()
            );
            let report = ecmp_pktgen::drop_sink(&prog, &opts, &stop)?;
            write_out(a.out.as_ref(), &serde_json::to_string(&report)?)?;
            return Ok(true);
        }
        SinkDriver::Afpacket => None,
        SinkDriver::Afxdp => Some(
            XdpSink::open(&a.iface, a.queue, a.xdp_mode.into())
                .with_context(|| format!("{} queue {}: setting up AF_XDP", a.iface, a.queue))?,
        ),
        SinkDriver::Auto => match XdpSink::open(&a.iface, a.queue, a.xdp_mode.into()) {
            Ok(x) => Some(x),
            Err(e) => {
                eprintln!(
                    "ecmpfwd-pktgen sink: {} queue {}: AF_XDP unavailable ({e}); using afpacket",
                    a.iface, a.queue
                );
                None
            }
        },
    };
    let report = match xdp {
        // Dropped at the end of this arm, which detaches the XDP program.
        Some(mut x) => {
            eprintln!(
                "ecmpfwd-pktgen sink: XDP program {} on {} ({:?} mode), AF_XDP queue {}",
                x.program().prog_id(),
                a.iface,
                x.program().mode(),
                a.queue
            );
            let report = listen(
                x.port(),
                &a,
                &opts,
                &stop,
                dump_file.as_mut().map(|w| w as &mut dyn Write),
            )?;
            // Where packets the sink never saw went: the kernel's socket drops and the
            // program's verdicts.
            if let (Ok(k), Ok(c)) = (x.port().kernel_stats(), x.program().counters()) {
                eprintln!(
                    "ecmpfwd-pktgen sink: redirected {} passed {} rx_dropped {} rx_ring_full {} \
                     fill_ring_empty {}",
                    c.redirected,
                    c.passed(),
                    k.rx_dropped,
                    k.rx_ring_full,
                    k.rx_fill_ring_empty
                );
            }
            report
        }
        None => {
            let pool = FramePool::new(4 * ecmp_port::BURST);
            let popts = PacketOptions {
                promiscuous: a.promisc,
                ..PacketOptions::default()
            };
            let mut port = PacketPort::with_options(&a.iface, pool, popts)?;
            let report = listen(
                &mut port,
                &a,
                &opts,
                &stop,
                dump_file.as_mut().map(|w| w as &mut dyn Write),
            )?;
            if let Some(e) = port.take_error() {
                eprintln!("ecmpfwd-pktgen sink: {}: {e}", a.iface);
            }
            report
        }
    };
    if let Some(mut w) = dump_file {
        w.flush()?;
    }
    write_out(a.out.as_ref(), &serde_json::to_string(&report)?)?;
    Ok(true)
}

fn run_xdp_fib(a: XdpFibArgs) -> Result<bool> {
    let stop = signal_flag()?;
    let limit = (a.duration > 0.0)
        .then(|| seconds(a.duration, "--duration"))
        .transpose()?;
    let prog = FibForwarder::attach(&a.iface, a.xdp_mode.into())
        .with_context(|| format!("{}: attaching the XDP FIB program", a.iface))?;
    if let Some(path) = &a.ready_file {
        File::create(path).with_context(|| format!("{}: cannot create", path.display()))?;
    }
    eprintln!(
        "ecmpfwd-pktgen xdp-fib: forwarding from {} ({:?} mode)",
        a.iface,
        prog.mode()
    );
    let start = std::time::Instant::now();
    while !stop.load(std::sync::atomic::Ordering::Relaxed)
        && limit.is_none_or(|d| start.elapsed() < d)
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    let c = prog.counters()?;
    let report = serde_json::json!({
        "redirected": c.redirected,
        "pass_not_ip": c.pass_not_ip,
        "pass_no_route": c.pass_no_route,
        "pass_ttl": c.pass_ttl,
        "pass_malformed": c.pass_malformed,
        "seconds": start.elapsed().as_secs_f64(),
    });
    write_out(a.out.as_ref(), &report.to_string())?;
    Ok(true)
}

/// Announces readiness (`--ready-file`, a line on stderr) and runs the sink on `port`.
fn listen<P: Port>(
    port: &mut P,
    a: &SinkArgs,
    opts: &SinkOptions,
    stop: &AtomicBool,
    dump: Option<&mut dyn Write>,
) -> Result<SinkReport> {
    if let Some(path) = &a.ready_file {
        File::create(path).with_context(|| format!("{}: cannot create", path.display()))?;
    }
    eprintln!("ecmpfwd-pktgen sink: listening on {}", a.iface);
    Ok(ecmp_pktgen::sink(port, opts, stop, dump)?)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Send(a) => run_send(a),
        Command::Sink(a) => run_sink(a),
        Command::XdpFib(a) => run_xdp_fib(a),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("ecmpfwd-pktgen: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_vlan;

    #[test]
    fn vlan_tags_are_tpid_colon_vid() {
        assert_eq!(parse_vlan("0x88a8:100"), Ok((0x88a8, 100)));
        assert_eq!(parse_vlan("33024:4095"), Ok((0x8100, 4095)));
        for bad in [
            "0x8100",
            "0x8100:4096",
            "0x1ffff:1",
            "0xzz:1",
            "0x8100:-1",
            ":",
        ] {
            assert!(parse_vlan(bad).is_err(), "{bad} accepted");
        }
    }
}
