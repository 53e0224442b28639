//! `ecmpctl`: look at and steer a running ecmpfwd through its control socket.
//!
//! Human tables by default; `--json` prints the daemon's reply as is (one JSON object), for
//! scripts. The exit status is 0 when the daemon carried the command out, 1 when it refused it
//! (the reason goes to stderr), 2 when the socket could not be reached.

use std::io::{self, BufRead, BufReader, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

mod capture;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use ecmp_proto::Prefix;
use ecmp_proto::ctl::{
    AnnounceLine, Changed, ConvergenceReply, FlowsReply, GroupsReply, MAX_FLOWS_LISTED,
    NexthopSummary, PeerLine, ReloadCounts, ReloadReply, Reply, Request, RouteDetail, RouteEvent,
    RouteSummary, StatsReply, TraceQuery, TraceReply, TraceVia, WhatIfReply,
};

mod top;

/// `println!` for ecmpctl's output: a reader that went away (`ecmpctl routes | head -3`) ends
/// ecmpctl quietly, as other command-line tools do, instead of a panic with a backtrace.
macro_rules! outln {
    () => {
        emit(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        emit(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Writes to stdout, ending the process if stdout is gone or broken.
fn emit(args: std::fmt::Arguments<'_>) {
    if let Err(e) = io::stdout().lock().write_fmt(args) {
        stdout_failed(&e);
    }
}

/// A closed pipe is the reader saying it has seen enough: exit 0 without a word. Anything else
/// (a full disk behind a redirection) is an error worth saying.
fn stdout_failed(e: &io::Error) -> ! {
    if e.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("ecmpctl: writing to stdout: {e}");
    std::process::exit(2);
}

/// Flushes what is still buffered before the exit status is set.
fn flush_stdout() {
    if let Err(e) = io::stdout().lock().flush() {
        stdout_failed(&e);
    }
}

/// Where the daemon listens unless the config says otherwise.
const DEFAULT_SOCKET: &str = "/run/ecmpfwd/control.sock";

#[derive(Parser, Debug)]
#[command(
    name = "ecmpctl",
    version,
    about = "Inspect and steer a running ecmpfwd"
)]
struct Cli {
    /// The daemon's control socket (the config's [control] socket).
    #[arg(long, short, env = "ECMPCTL_SOCKET", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Print the daemon's JSON reply instead of a table.
    #[arg(long)]
    json: bool,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Every route with its group summary and bucket-map digest, then the table's digest.
    Routes,
    /// Every group with its bucket map's digest (compare forwarders by digest, not by id).
    Groups,
    /// `route PREFIX`: the group in detail with its bucket map; `route add PREFIX via HOP...` and
    /// `route del PREFIX` manage static routes.
    Route {
        /// PREFIX, or `add PREFIX via HOP...`, or `del PREFIX`.
        #[arg(num_args = 1.., required = true)]
        args: Vec<String>,
    },
    /// Every next hop in use.
    Nexthops,
    /// Cached flows: totals per worker and per hop, and the first N flows.
    Flows {
        /// Flows to list (0: totals only; the daemon lists a bounded number).
        #[arg(
            long,
            default_value_t = 10,
            value_parser = clap::builder::RangedU64ValueParser::<usize>::new()
                .range(0..=MAX_FLOWS_LISTED as u64)
        )]
        top: usize,
    },
    /// Counters per port, worker and drop reason, feed counters.
    Stats,
    /// Which next hop a 5-tuple takes now, and why.
    Trace {
        /// Source address.
        src: IpAddr,
        /// Destination address.
        dst: IpAddr,
        /// tcp, udp, icmp or a protocol number.
        #[arg(long, default_value = "tcp")]
        proto: String,
        /// Source port.
        #[arg(long, default_value_t = 0)]
        sport: u16,
        /// Destination port.
        #[arg(long, default_value_t = 0)]
        dport: u16,
    },
    /// Stop giving new flows to a next hop (its established flows stay).
    Drain {
        /// The next hop's address.
        hop: IpAddr,
    },
    /// Undo `drain`.
    Undrain {
        /// The next hop's address.
        hop: IpAddr,
    },
    /// Rebalance a prefix's group as its mode defines.
    Clear {
        /// The prefix.
        prefix: Prefix,
    },
    /// What a change would move, without making it: `what-if remove HOP`, `what-if add PREFIX HOP`.
    WhatIf {
        /// `remove HOP` or `add PREFIX HOP`.
        #[arg(num_args = 2..=3, required = true)]
        args: Vec<String>,
    },
    /// Feed sessions and their path counts.
    Peers,
    /// The `[[bgp.announce]]` prefixes: announced or withdrawn, why, since when.
    Announce,
    /// Route-update convergence histogram.
    Convergence,
    /// The latest route changes (feed batches and operator commands), oldest first.
    RouteEvents {
        /// How many (0: every one the daemon keeps).
        #[arg(long, default_value_t = 20)]
        last: usize,
    },
    /// A live view, redrawn every interval: port and worker rates, busy ratio, flow cache,
    /// flows per next hop, drops by reason, route events. `q` or Ctrl-C quits.
    Top {
        /// Seconds between refreshes.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
        /// Print one frame (two samples an interval apart) as plain text and exit.
        #[arg(long)]
        once: bool,
    },
    /// Re-read the daemon's config file and apply what changed (next hops, groups, routes,
    /// policies, timeouts); refused, changing nothing, if the file is invalid or needs a restart.
    Reload,
    /// Capture frames into a pcapng file (drops carry their reason as the packet comment):
    /// `capture [--port P] [--rx] [--tx] [--drops] [--count N] [--snaplen S] [FILTER] -w FILE`.
    /// No direction named: all three. Runs until N packets, --seconds, or Ctrl-C.
    Capture {
        /// Only this port (its config name).
        #[arg(long)]
        port: Option<String>,
        /// Frames as received.
        #[arg(long)]
        rx: bool,
        /// Frames as sent (after rewrite or encapsulation).
        #[arg(long)]
        tx: bool,
        /// Dropped frames.
        #[arg(long)]
        drops: bool,
        /// Stop after N packets.
        #[arg(long, short = 'c')]
        count: Option<u64>,
        /// Stop after this many seconds.
        #[arg(long)]
        seconds: Option<u64>,
        /// Bytes kept of each frame.
        #[arg(long, short = 's', default_value_t = ecmp_proto::ctl::CAPTURE_DEFAULT_SNAPLEN)]
        snaplen: u32,
        /// The pcapng file to write.
        #[arg(short = 'w', long = "write")]
        file: PathBuf,
        /// A tcpdump filter expression (its words are joined, as tcpdump does).
        filter: Vec<String>,
    },
}

fn proto_number(name: &str) -> Result<u8> {
    Ok(match name {
        "tcp" => 6,
        "udp" => 17,
        "icmp" => 1,
        "icmpv6" => 58,
        "sctp" => 132,
        n => n
            .parse()
            .with_context(|| format!("unknown protocol {n:?} (tcp, udp, icmp or a number)"))?,
    })
}

fn request(command: &Command) -> Result<Request> {
    Ok(match command {
        Command::Routes => Request::Routes {},
        Command::Groups => Request::Groups {},
        Command::Route { args } => match args.as_slice() {
            [prefix] => Request::Route {
                prefix: prefix
                    .parse()
                    .with_context(|| format!("bad prefix {prefix:?}"))?,
            },
            [add, prefix, via, hops @ ..] if add == "add" && via == "via" && !hops.is_empty() => {
                Request::RouteAdd {
                    prefix: prefix
                        .parse()
                        .with_context(|| format!("bad prefix {prefix:?}"))?,
                    via: hops
                        .iter()
                        .map(|h| h.parse().with_context(|| format!("bad next hop {h:?}")))
                        .collect::<Result<_>>()?,
                }
            }
            [del, prefix] if del == "del" => Request::RouteDel {
                prefix: prefix
                    .parse()
                    .with_context(|| format!("bad prefix {prefix:?}"))?,
            },
            _ => bail!("usage: route PREFIX | route add PREFIX via HOP... | route del PREFIX"),
        },
        Command::Nexthops => Request::Nexthops {},
        Command::Flows { top } => Request::Flows { top: *top },
        Command::Stats => Request::Stats {},
        Command::Trace {
            src,
            dst,
            proto,
            sport,
            dport,
        } => Request::Trace(TraceQuery {
            src: *src,
            dst: *dst,
            proto: proto_number(proto)?,
            sport: *sport,
            dport: *dport,
        }),
        Command::Drain { hop } => Request::Drain { hop: *hop },
        Command::Undrain { hop } => Request::Undrain { hop: *hop },
        Command::Clear { prefix } => Request::Clear { prefix: *prefix },
        Command::WhatIf { args } => match args.as_slice() {
            [remove, hop] if remove == "remove" => Request::WhatIfRemove {
                hop: hop
                    .parse()
                    .with_context(|| format!("bad next hop {hop:?}"))?,
            },
            [add, prefix, hop] if add == "add" => Request::WhatIfAdd {
                prefix: prefix
                    .parse()
                    .with_context(|| format!("bad prefix {prefix:?}"))?,
                hop: hop
                    .parse()
                    .with_context(|| format!("bad next hop {hop:?}"))?,
            },
            _ => bail!("usage: what-if remove HOP | what-if add PREFIX HOP"),
        },
        Command::Peers => Request::Peers {},
        Command::Announce => Request::Announcements {},
        Command::Convergence => Request::Convergence {},
        Command::RouteEvents { last } => Request::RouteEvents { last: *last },
        Command::Top { .. } => bail!("top asks several questions, not one"),
        Command::Reload => Request::Reload {},
        Command::Capture {
            port,
            rx,
            tx,
            drops,
            count,
            seconds,
            snaplen,
            filter,
            ..
        } => Request::Capture(ecmp_proto::ctl::CaptureRequest {
            port: port.clone(),
            rx: *rx,
            tx: *tx,
            drops: *drops,
            count: *count,
            seconds: *seconds,
            snaplen: *snaplen,
            filter: (!filter.is_empty()).then(|| filter.join(" ")),
        }),
    })
}

/// `capture`: exit 0 when it ended (count, time), 1 when the daemon refused it, 2 when the
/// socket or the file failed.
fn run_capture(cli: &Cli, req: &Request, file: &std::path::Path) -> ExitCode {
    let stream = match UnixStream::connect(&cli.socket) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "ecmpctl: {}: cannot connect (is ecmpfwd running?): {e}",
                cli.socket.display()
            );
            return ExitCode::from(2);
        }
    };
    let timeout = Some(Duration::from_secs(cli.timeout.max(1)));
    if stream.set_read_timeout(timeout).is_err() || stream.set_write_timeout(timeout).is_err() {
        return ExitCode::from(2);
    }
    match capture::run(stream, req, file) {
        Ok(end) => {
            if cli.json {
                if let Ok(text) = serde_json::to_string(&end) {
                    outln!("{text}");
                }
            } else {
                eprintln!(
                    "ecmpctl: {} packet(s) written to {} ({}); {} lost to full capture rings",
                    end.captured,
                    file.display(),
                    end.reason,
                    end.ring_dropped
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ecmpctl: {e:#}");
            if e.chain().any(|c| c.is::<capture::Refused>()) {
                ExitCode::from(1)
            } else {
                ExitCode::from(2)
            }
        }
    }
}

fn ask(cli: &Cli, req: &Request) -> Result<Reply> {
    let mut stream = UnixStream::connect(&cli.socket).with_context(|| {
        format!(
            "{}: cannot connect (is ecmpfwd running?)",
            cli.socket.display()
        )
    })?;
    let timeout = Some(Duration::from_secs(cli.timeout.max(1)));
    stream.set_read_timeout(timeout)?;
    stream.set_write_timeout(timeout)?;
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut reply = String::new();
    BufReader::new(&stream)
        .read_line(&mut reply)
        .with_context(|| format!("{}: no reply", cli.socket.display()))?;
    if reply.is_empty() {
        bail!("{}: the daemon closed the connection", cli.socket.display());
    }
    serde_json::from_str(&reply).context("the daemon's reply is not valid")
}

fn mac_state(n: &NexthopSummary) -> String {
    if n.resolved {
        n.mac.clone()
    } else {
        "unresolved".to_owned()
    }
}

fn print_routes(routes: &[RouteSummary]) {
    outln!(
        "{:<24} {:<8} {:>5} {:<14} {:>6} {:>8} {:>6} {:>7} {:<16}  installed",
        "prefix",
        "origin",
        "group",
        "mode",
        "active",
        "draining",
        "failed",
        "buckets",
        "digest"
    );
    for r in routes {
        outln!(
            "{:<24} {:<8} {:>5} {:<14} {:>6} {:>8} {:>6} {:>7} {:<16}  {}",
            r.prefix.to_string(),
            format!("{:?}", r.origin).to_lowercase(),
            r.group,
            r.mode,
            r.active,
            r.draining,
            r.failed,
            r.buckets,
            r.digest.map_or_else(|| "-".to_owned(), |d| d.to_string()),
            if r.installed { "yes" } else { "no (shadowed)" }
        );
    }
    // The same function the daemon's `groups` reply uses, over the same installed routes.
    let installed: Option<Vec<_>> = routes
        .iter()
        .filter(|r| r.installed)
        .map(|r| r.digest.map(|d| (r.prefix, d)))
        .collect();
    match installed {
        Some(routes) => outln!("table digest {}", ecmp_proto::digest::table_digest(routes)),
        None => outln!("table digest unknown (the daemon predates digests)"),
    }
}

fn print_announce(lines: &[AnnounceLine]) {
    outln!(
        "{:<24} {:<10} {:>10}  {:<16} why",
        "announce",
        "state",
        "since (s)",
        "next hop"
    );
    for l in lines {
        outln!(
            "{:<24} {:<10} {:>10.1}  {:<16} {}",
            l.prefix.to_string(),
            if l.announced {
                "announced"
            } else {
                "withdrawn"
            },
            l.since_s,
            l.next_hop,
            l.reason.map(|r| r.to_string()).unwrap_or_default()
        );
    }
}

fn print_groups(reply: &GroupsReply) {
    outln!(
        "{:>5} {:<14} {:>7} {:>6} {:<16}  prefixes",
        "group",
        "mode",
        "buckets",
        "active",
        "digest"
    );
    for g in &reply.groups {
        let prefixes: Vec<String> = g.prefixes.iter().map(ToString::to_string).collect();
        outln!(
            "{:>5} {:<14} {:>7} {:>6} {:<16}  {}",
            g.group,
            g.mode,
            g.buckets,
            g.active,
            g.digest.to_string(),
            prefixes.join(" ")
        );
    }
    outln!("table digest {}", reply.digest);
}

fn print_route(details: &[RouteDetail]) {
    for d in details {
        let s = &d.summary;
        outln!(
            "{} ({}), group {}, {} mode, {} buckets, hash {}, action {}{}",
            s.prefix,
            format!("{:?}", s.origin).to_lowercase(),
            s.group,
            s.mode,
            s.buckets,
            d.hash,
            d.action,
            if s.installed {
                ""
            } else {
                ", not installed (a static route wins)"
            }
        );
        if !d.mode_note.is_empty() {
            outln!("  {}", d.mode_note);
        }
        outln!(
            "  {:>5} {:<40} {:<9} {:>7}  why",
            "hop",
            "address",
            "state",
            "buckets"
        );
        for m in &d.members {
            outln!(
                "  {:>5} {:<40} {:<9} {:>7}  {}",
                m.hop,
                m.addr.to_string(),
                format!("{:?}", m.state).to_lowercase(),
                m.buckets,
                m.reason.map(|r| r.to_string()).unwrap_or_default()
            );
        }
        outln!("  bucket map (hop id per bucket; * = moved since the last rebalance):");
        for (row, chunk) in d.buckets.chunks(16).enumerate() {
            let cells: Vec<String> = chunk
                .iter()
                .map(|b| format!("{:>4}{}", b.hop, if b.replaced { "*" } else { " " }))
                .collect();
            outln!("  {:>5}: {}", row * 16, cells.join(""));
        }
    }
}

fn print(command: &Command, result: serde_json::Value) -> Result<()> {
    match command {
        Command::Routes => print_routes(&serde_json::from_value::<Vec<RouteSummary>>(result)?),
        Command::Groups => print_groups(&serde_json::from_value::<GroupsReply>(result)?),
        Command::Route { args } if args.len() == 1 => {
            print_route(&serde_json::from_value::<Vec<RouteDetail>>(result)?);
        }
        Command::Nexthops => {
            let hops: Vec<NexthopSummary> = serde_json::from_value(result)?;
            outln!(
                "{:>5} {:<40} {:<10} {:<18} {:>6} {:<8} action",
                "hop",
                "address",
                "port",
                "mac",
                "groups",
                "origin"
            );
            for n in hops {
                outln!(
                    "{:>5} {:<40} {:<10} {:<18} {:>6} {:<8} {}{}",
                    n.hop,
                    n.addr.to_string(),
                    n.port,
                    mac_state(&n),
                    n.groups,
                    if n.configured { "config" } else { "bgp" },
                    n.action,
                    if n.drained { " (drained)" } else { "" }
                );
            }
        }
        Command::Flows { .. } => {
            let f: FlowsReply = serde_json::from_value(result)?;
            outln!("{} flows cached (per worker: {:?})", f.total, f.per_worker);
            outln!("  {:>5} {:>10}", "hop", "flows");
            for h in &f.per_hop {
                outln!("  {:>5} {:>10}", h.hop, h.flows);
            }
            for e in &f.flows {
                outln!(
                    "  worker {} {} {}:{} -> {}:{} group {} hop {}",
                    e.worker,
                    e.flow.proto,
                    e.flow.src,
                    e.flow.sport,
                    e.flow.dst,
                    e.flow.dport,
                    e.group,
                    e.hop
                );
            }
        }
        Command::Stats => {
            let s: StatsReply = serde_json::from_value(result)?;
            outln!("uptime {:.1} s", s.uptime_s);
            outln!(
                "{:<12} {:>6} {:>14} {:>12} {:>14} {:>12} {:>10}",
                "port",
                "worker",
                "rx packets",
                "rx pps",
                "tx packets",
                "tx pps",
                "tx refused"
            );
            for p in &s.ports {
                outln!(
                    "{:<12} {:>6} {:>14} {:>12.0} {:>14} {:>12.0} {:>10}",
                    p.name,
                    p.worker,
                    p.rx_packets,
                    p.rx_pps,
                    p.tx_packets,
                    p.tx_pps,
                    p.tx_refused
                );
            }
            if !s.devices.is_empty() {
                outln!(
                    "{:<12} {:<6} {:>8} {:>14} {:>14} {:>10} {:>10} {:>10} {:>10}",
                    "device of",
                    "link",
                    "Mb/s",
                    "rx packets",
                    "tx packets",
                    "rx missed",
                    "rx errors",
                    "tx errors",
                    "no mbuf"
                );
                for d in &s.devices {
                    if let Some(e) = &d.error {
                        outln!("{:<12} {e}", d.port);
                        continue;
                    }
                    outln!(
                        "{:<12} {:<6} {:>8} {:>14} {:>14} {:>10} {:>10} {:>10} {:>10}",
                        d.port,
                        if d.link_up { "up" } else { "down" },
                        d.speed_mbps,
                        d.ipackets,
                        d.opackets,
                        d.imissed,
                        d.ierrors,
                        d.oerrors,
                        d.rx_nombuf
                    );
                }
            }
            outln!(
                "{:<6} {:>5} {:>14} {:>14} {:>12} {:>12} {:>12} {:>10} {:>6} {:>10}",
                "worker",
                "cpu",
                "packets",
                "forwarded",
                "dropped",
                "cache hits",
                "pps",
                "generation",
                "busy",
                "cycles/pkt"
            );
            for w in &s.workers {
                // Since start: a live per-interval ratio is what `top` shows.
                let busy = if w.polls == 0 {
                    "-".to_owned()
                } else {
                    format!("{:.0}%", 100.0 * w.busy_polls as f64 / w.polls as f64)
                };
                // Busy cycles per forwarded packet since start, in the daemon's TSC ticks.
                let cost = if w.forwarded == 0 || w.busy_cycles == 0 {
                    "-".to_owned()
                } else {
                    format!("{:.0}", w.busy_cycles as f64 / w.forwarded as f64)
                };
                outln!(
                    "{:<6} {:>5} {:>14} {:>14} {:>12} {:>12} {:>12.0} {:>10} {:>6} {:>10}",
                    w.worker,
                    w.cpu.map_or_else(|| "-".to_owned(), |c| c.to_string()),
                    w.packets,
                    w.forwarded,
                    w.dropped,
                    w.cache_hits,
                    w.pps,
                    w.generation,
                    busy,
                    cost
                );
            }
            for w in &s.workers {
                if let Some(u) = w.umem {
                    outln!(
                        "umem of worker {}: {} frames, {} free, {} with the kernel, {} in the worker, {} unaccounted",
                        w.worker,
                        u.frames,
                        u.frames.saturating_sub(u.outstanding),
                        u.kernel_held,
                        u.in_worker,
                        u.unaccounted()
                    );
                }
            }
            if !s.hops.is_empty() {
                outln!(
                    "{:<6} {:<40} {:>14} {:>12}",
                    "hop",
                    "address",
                    "packets",
                    "pps"
                );
                for h in &s.hops {
                    outln!(
                        "{:<6} {:<40} {:>14} {:>12.0}",
                        h.hop,
                        h.addr.to_string(),
                        h.packets,
                        h.pps
                    );
                }
            }
            if !s.drops.is_empty() {
                outln!("drops:");
                for (reason, n) in &s.drops {
                    outln!("  {reason:<24} {n:>14}");
                }
            }
            outln!("feed:");
            for (name, n) in &s.feed {
                outln!("  {name:<24} {n:>14}");
            }
            if !s.memory.is_empty() {
                outln!(
                    "{:<22} {:>6} {:>10} {:<8} {:>10}",
                    "memory",
                    "worker",
                    "MiB",
                    "backing",
                    "huge MiB"
                );
                let mib = |b: u64| b as f64 / f64::from(1u32 << 20);
                for t in &s.memory {
                    outln!(
                        "{:<22} {:>6} {:>10.1} {:<8} {:>10.1}",
                        t.name,
                        t.worker.map_or_else(|| "-".to_owned(), |w| w.to_string()),
                        mib(t.bytes),
                        t.backing,
                        mib(t.huge_bytes)
                    );
                }
            }
            if !s.announce.is_empty() {
                print_announce(&s.announce);
            }
        }
        Command::Announce => {
            let lines: Vec<AnnounceLine> = serde_json::from_value(result)?;
            if lines.is_empty() {
                outln!("no [[bgp.announce]] prefix configured");
            } else {
                print_announce(&lines);
            }
        }
        Command::Trace { .. } => {
            let t: TraceReply = serde_json::from_value(result)?;
            let via = match t.via {
                TraceVia::Cache { worker } => format!("cached on worker {worker}"),
                TraceVia::Bucket { bucket } => format!("new flow: bucket {bucket}"),
            };
            outln!("group {} -> hop {} ({}), {via}", t.group, t.hop, t.addr);
        }
        Command::WhatIf { .. } => {
            let w: WhatIfReply = serde_json::from_value(result)?;
            for g in &w.groups {
                let name = g
                    .prefix
                    .map_or_else(|| format!("group {}", g.group), |p| p.to_string());
                outln!("{name:<24} {:>6} buckets move", g.buckets);
            }
            match w.flows {
                Some(f) => outln!("total: {} buckets, {f} cached flows move", w.buckets),
                None => outln!(
                    "total: {} buckets move; cached flows stay on their hops",
                    w.buckets
                ),
            }
        }
        Command::Peers => {
            let peers: Vec<PeerLine> = serde_json::from_value(result)?;
            outln!(
                "{:<40} {:>10} {:<10} {:>8} {:>6}",
                "peer",
                "as",
                "state",
                "paths",
                "stale"
            );
            for p in peers {
                outln!(
                    "{:<40} {:>10} {:<10} {:>8} {:>6}{}",
                    p.peer.to_string(),
                    p.asn.map_or_else(|| "-".to_owned(), |a| a.to_string()),
                    p.state,
                    p.paths,
                    p.stale,
                    p.last_down_reason
                        .map(|r| format!("  ({r})"))
                        .unwrap_or_default()
                );
            }
        }
        Command::Convergence => {
            let c: ConvergenceReply = serde_json::from_value(result)?;
            outln!(
                "{} publications: p50 {:.1} us, p99 {:.1} us, max {:.1} us",
                c.samples,
                c.p50_us,
                c.p99_us,
                c.max_us
            );
            for (upto, n) in &c.histogram {
                outln!("  <= {upto:>10.0} us {n:>8}");
            }
        }
        Command::RouteEvents { .. } => {
            let events: Vec<RouteEvent> = serde_json::from_value(result)?;
            for e in events {
                outln!(
                    "{:>10.3} s  gen {:<6} {:<8} {}{}",
                    e.uptime_s,
                    e.generation,
                    format!("{:?}", e.source).to_lowercase(),
                    e.prefix.map(|p| format!("{p}  ")).unwrap_or_default(),
                    e.what
                );
            }
        }
        Command::Top { .. } => bail!("top draws its own screen"),
        Command::Reload => {
            let r: ReloadReply = serde_json::from_value(result)?;
            let line = |what: &str, c: &ReloadCounts| {
                outln!(
                    "{what:<10} {} added, {} removed, {} changed",
                    c.added,
                    c.removed,
                    c.changed
                );
            };
            line("next hops", &r.nexthops);
            line("groups", &r.groups);
            line("routes", &r.routes);
            if !r.settings.is_empty() {
                outln!("settings   {}", r.settings.join(", "));
            }
            if r.published {
                outln!("reloaded: generation {} published", r.generation);
            } else {
                outln!("reloaded: no table changed (generation {})", r.generation);
            }
        }
        Command::Drain { .. }
        | Command::Undrain { .. }
        | Command::Clear { .. }
        | Command::Route { .. } => {
            let c: Changed = serde_json::from_value(result)?;
            if c.published {
                outln!("done: generation {} published", c.generation);
            } else {
                outln!("nothing to change (generation {})", c.generation);
            }
        }
        // Streamed to its file by `run_capture`; no reply reaches here.
        Command::Capture { .. } => {}
    }
    Ok(())
}

fn main() -> ExitCode {
    let code = run();
    flush_stdout();
    code
}

fn run() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Top { interval, once } = cli.command {
        let ask = |req: &Request| ask(&cli, req);
        let every = Duration::try_from_secs_f64(interval).unwrap_or(Duration::ZERO);
        let title = cli.socket.display().to_string();
        return match top::run(&ask, &title, every, once) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ecmpctl: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    let req = match request(&cli.command) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ecmpctl: {e:#}");
            return ExitCode::from(2);
        }
    };
    if let Command::Capture { file, .. } = &cli.command {
        return run_capture(&cli, &req, file);
    }
    let reply = match ask(&cli, &req) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ecmpctl: {e:#}");
            return ExitCode::from(2);
        }
    };
    if cli.json {
        match serde_json::to_string_pretty(&reply) {
            Ok(text) => outln!("{text}"),
            Err(e) => {
                eprintln!("ecmpctl: {e}");
                return ExitCode::from(2);
            }
        }
        return if reply.ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        };
    }
    if !reply.ok {
        eprintln!(
            "ecmpctl: {}",
            reply.error.as_deref().unwrap_or("refused without a reason")
        );
        return ExitCode::from(1);
    }
    match print(&cli.command, reply.result) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ecmpctl: cannot show the reply: {e:#}");
            ExitCode::from(2)
        }
    }
}
