//! `ecmpfwd run` on AF_XDP ports: the real forwarder.
//!
//! Start-up, in order, each step failing with an error that names the port (and file:line):
//! 1. every port's interface is looked up over netlink (it must exist; the configured queues
//!    must exist), its MAC (unless configured), MTU and addresses are read;
//! 2. the XDP program is attached to every interface through a bpf_link, in the configured mode,
//!    passing the interface's own addresses, ARP and neighbour discovery to the kernel;
//! 3. the control plane is built: static tables from the config, a [`Builder`] whose resolver
//!    knows the ports' connected subnets and the kernel's neighbour table (static
//!    `[[neighbor]]` entries win), the first snapshot;
//! 4. one thread per `[[worker]]`, pinned, builds its UMEM and sockets on its own core and
//!    polls until stopped;
//! 5. the control thread serves the feed socket, the control socket and the neighbour upkeep,
//!    and reloads the config file on `ecmpctl reload` or SIGHUP ([`crate::reload`]);
//! 6. once every worker runs the first tables, systemd hears `READY=1` (when `$NOTIFY_SOCKET`
//!    is set), and the control thread pings its watchdog while every worker polls (see
//!    [`crate::sdnotify`]).
//!
//! Stopping (SIGTERM/SIGINT): with `[[bgp.announce]]` prefixes, the companion is first told to
//! withdraw them and the workers keep forwarding for `[bgp] announce_grace`, so upstream routers
//! move the traffic away before it is dropped; then the control thread stops (no new
//! publications), then the workers send what they hold and close their sockets, then the XDP
//! programs are detached (their links dropped). A worker that fails stops everything the same
//! way, without the grace wait.

// Start-up errors carry the kernel's and the control plane's errors whole; they are returned
// once per run, never on the data path, so their size costs nothing worth boxing for.
#![allow(clippy::result_large_err)]

mod error;
mod neigh;
pub mod view;
mod worker;

// The DPDK runtime's share of this one.
#[cfg(feature = "dpdk")]
pub(crate) use neigh::{IdleTimers, static_neighbours};
#[cfg(feature = "dpdk")]
pub(crate) use worker::{Polling, poll_until_stopped, publish_ports, start_failed};

pub use error::AfXdpError;

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use ecmp_control::announce::{AnnounceConfig, AnnounceNextHop, AnnounceSpec};
use ecmp_control::builder::{
    ActionTemplate, Builder, BuilderConfig, ConnectedResolver, GroupPolicy, PrefixPolicy,
    StaticTables,
};
use ecmp_control::control::{ControlConfig, ControlHandle, ControlThread, Upkeep};
use ecmp_control::ctl_server::{CtlConfig, CtlListener};
use ecmp_control::feed_server::{FeedServer, FeedServerConfig};
use ecmp_control::metrics_server::MetricsListener;
use ecmp_control::{Rib, RibConfig};
use ecmp_dataplane::counters::{Counters, SharedCounters};
use ecmp_io::netlink;
use ecmp_io::xdp::{AttachMode, XdpProgram};
use ecmp_proto::{Community, Prefix};
use ecmp_tables::group::GroupMode as TableMode;
use ecmp_tables::nexthop::{PortId, PortInfo};
use ecmp_tables::policy::HashPolicy;
use ecmp_tables::snapshot::SnapshotCell;

use crate::config::{self, ActionTemplateSpec, Config, GroupPolicySpec, PortKind, XdpMode};
use crate::reload::{FileSource, Policies};
use crate::sdnotify::{self, Notifier, Watchdog};
use crate::setup::{self, pipeline_config};
use crate::stats;
use view::{LiveView, Mailbox, SharedPortStats, SharedUmemStats, WorkerShared};

/// How long a worker may take to open its sockets and report ready.
pub(crate) const WORKER_START: Duration = Duration::from_secs(30);
/// How long the workers may take to load the first tables once they run.
const FIRST_TABLES: Duration = Duration::from_secs(5);

/// One port as found on the system.
#[derive(Debug, Clone)]
pub struct LivePort {
    /// The config's port name.
    pub name: String,
    /// The interface.
    pub ifname: String,
    /// Its index.
    pub ifindex: u32,
    /// The MAC frames leave with (configured, or the interface's).
    pub mac: [u8; 6],
    /// The L3 MTU (the smaller of the config's and the interface's).
    pub mtu: u16,
    /// The interface's addresses (connected subnets; the XDP program passes traffic to them).
    pub addrs: Vec<(IpAddr, u8)>,
    /// Attach mode.
    pub mode: AttachMode,
    /// Bind zero-copy when the driver can.
    pub zero_copy: bool,
}

/// Looks up every port's interface (step 1 of the module doc).
pub fn resolve_ports(cfg: &Config) -> Result<Vec<LivePort>, AfXdpError> {
    let mut out = Vec::new();
    for (pi, p) in cfg.ports.iter().enumerate() {
        let PortKind::AfXdp {
            interface,
            mode,
            zero_copy,
            ..
        } = &p.kind
        else {
            return Err(AfXdpError::MixedPorts {
                origin: cfg.origin.clone(),
                line: p.line,
                port: p.name.clone(),
                kind: match p.kind {
                    PortKind::Memory => "memory",
                    PortKind::Dpdk { .. } => "dpdk",
                    _ => "pcap",
                },
            });
        };
        let iface = netlink::interface(interface).map_err(|e| match e {
            netlink::NetlinkError::NoSuchInterface { .. } => AfXdpError::NoInterface {
                origin: cfg.origin.clone(),
                line: p.line,
                port: p.name.clone(),
                iface: interface.clone(),
            },
            source => AfXdpError::Interface {
                origin: cfg.origin.clone(),
                line: p.line,
                port: p.name.clone(),
                iface: interface.clone(),
                source,
            },
        })?;
        for w in &cfg.workers {
            for q in w.ports.iter().filter(|q| q.port == pi) {
                if u32::from(q.queue) >= iface.rx_queues {
                    return Err(AfXdpError::NoQueue {
                        origin: cfg.origin.clone(),
                        line: w.line,
                        port: p.name.clone(),
                        core: w.core,
                        queue: q.queue,
                        iface: interface.clone(),
                        rx_queues: iface.rx_queues,
                    });
                }
            }
        }
        if !iface.up {
            return Err(AfXdpError::InterfaceDown {
                origin: cfg.origin.clone(),
                line: p.line,
                port: p.name.clone(),
                iface: interface.clone(),
            });
        }
        let addrs = match &p.addresses {
            Some(list) => list.iter().map(|a| (a.addr, a.len)).collect(),
            None => iface.addrs.clone(),
        };
        out.push(LivePort {
            name: p.name.clone(),
            ifname: interface.clone(),
            ifindex: iface.index,
            mac: p.mac.map_or(iface.mac, |m| m.0),
            mtu: u16::try_from(iface.mtu).unwrap_or(u16::MAX).min(p.mtu),
            addrs,
            mode: match mode {
                XdpMode::Driver => AttachMode::Driver,
                XdpMode::Generic => AttachMode::Generic,
            },
            zero_copy: *zero_copy,
        });
    }
    Ok(out)
}

/// Attaches the XDP program to every port (step 2).
fn attach(cfg: &Config, ports: &[LivePort]) -> Result<Vec<Arc<XdpProgram>>, AfXdpError> {
    let mut out = Vec::new();
    for (p, spec) in ports.iter().zip(&cfg.ports) {
        let prog = XdpProgram::attach(&p.ifname, p.mode).map_err(|source| AfXdpError::Attach {
            origin: cfg.origin.clone(),
            line: spec.line,
            port: p.name.clone(),
            iface: p.ifname.clone(),
            mode: p.mode,
            source,
        })?;
        if prog.replaced_stale() {
            tracing::warn!(
                "port {:?}: replaced a stale ecmpfwd XDP program left on {:?} by an earlier run",
                p.name,
                p.ifname
            );
        }
        let own: Vec<IpAddr> = p.addrs.iter().map(|a| a.0).collect();
        prog.set_pass_addrs(&own)
            .map_err(|source| AfXdpError::PassAddrs {
                port: p.name.clone(),
                source,
            })?;
        tracing::info!(
            "port {:?}: XDP program {} attached to {} ({:?} mode)",
            p.name,
            prog.prog_id(),
            p.ifname,
            p.mode
        );
        out.push(Arc::new(prog));
    }
    Ok(out)
}

fn table_mode(p: &GroupPolicySpec) -> TableMode {
    match p.mode {
        config::GroupMode::Manual => TableMode::Manual,
        config::GroupMode::AutoRecovery => TableMode::AutoRecovery,
        config::GroupMode::Maglev => TableMode::Maglev,
        config::GroupMode::Rendezvous => TableMode::Rendezvous,
        config::GroupMode::Idle => TableMode::Idle {
            idle_timer_ms: p.idle_timer.as_millis() as u64,
            unbalanced_timer_ms: p.unbalanced_timer.as_millis() as u64,
        },
    }
}

fn group_policy(p: &GroupPolicySpec) -> GroupPolicy {
    GroupPolicy {
        mode: table_mode(p),
        buckets: p.buckets,
        hash: HashPolicy::from(p.hash),
        action: match p.action {
            ActionTemplateSpec::Rewrite => ActionTemplate::Rewrite,
            ActionTemplateSpec::Encap { kind, src } => ActionTemplate::Encap {
                kind: kind.into(),
                src,
            },
        },
    }
}

fn proto_prefix(p: config::Prefix) -> Result<Prefix, AfXdpError> {
    Prefix::new(p.addr, p.len).map_err(|source| AfXdpError::Prefix {
        prefix: p.to_string(),
        source,
    })
}

/// The BGP policies of `cfg`: `[[bgp.policy]]` and `[bgp]` (at start and on reload).
pub fn bgp_policies(cfg: &Config) -> Result<Policies, AfXdpError> {
    let policies = cfg
        .bgp
        .policies
        .iter()
        .map(|p| {
            Ok(PrefixPolicy {
                range: proto_prefix(p.range)?,
                group: group_policy(&p.group),
            })
        })
        .collect::<Result<_, AfXdpError>>()?;
    Ok((policies, group_policy(&cfg.bgp.default_policy)))
}

/// [`bgp_policies`] with the error as the text a reload's reply carries.
fn reload_policies(cfg: &Config) -> Result<Policies, String> {
    bgp_policies(cfg).map_err(|e| e.to_string())
}

/// The control plane's builder over the config's static tables and these ports (step 3).
pub fn builder(cfg: &Config, ports: &[LivePort]) -> Result<Builder<ConnectedResolver>, AfXdpError> {
    let l3: Vec<PortL3> = ports
        .iter()
        .map(|p| PortL3 {
            mac: p.mac,
            mtu: p.mtu,
            addrs: p.addrs.clone(),
        })
        .collect();
    builder_over(cfg, &l3)
}

/// What the control plane needs of a port, whatever its backend: its MAC, MTU and connected
/// subnets.
#[derive(Debug, Clone)]
pub struct PortL3 {
    /// The MAC frames leave with.
    pub mac: [u8; 6],
    /// The L3 MTU.
    pub mtu: u16,
    /// Its addresses with their prefix lengths (connected subnets).
    pub addrs: Vec<(IpAddr, u8)>,
}

/// [`builder`] over ports of any backend.
pub fn builder_over(
    cfg: &Config,
    ports: &[PortL3],
) -> Result<Builder<ConnectedResolver>, AfXdpError> {
    let tables = setup::build(cfg)?;
    let port_infos: Vec<PortInfo> = ports
        .iter()
        .map(|p| PortInfo {
            mac: p.mac,
            mtu: p.mtu,
        })
        .collect();
    let statics = StaticTables {
        hops: tables.snapshot.hops.iter().skip(1).copied().collect(),
        groups: tables.groups.clone(),
        routes: cfg
            .routes
            .iter()
            .map(|r| Ok((proto_prefix(r.prefix)?, r.group as u32 + 1)))
            .collect::<Result<_, AfXdpError>>()?,
        // Names and configured states: what a reload matches and compares.
        hop_names: tables.hop_names.clone(),
        hop_states: cfg.nexthops.iter().map(|h| h.state.into()).collect(),
        group_names: tables.group_names.clone(),
    };
    let (policies, default_policy) = bgp_policies(cfg)?;
    let bc = BuilderConfig {
        policies,
        default_policy,
        ports: port_infos,
        seed: cfg.instance.seed,
        max_tbl8: cfg.fib.max_tbl8 as usize,
        statics,
    };
    let mut subnets = Vec::new();
    for (pi, p) in ports.iter().enumerate() {
        for &(addr, len) in &p.addrs {
            // Link-local subnets are on every port: they cannot say where a hop is.
            let link_local = match addr {
                IpAddr::V4(a) => a.is_link_local(),
                IpAddr::V6(a) => a.is_unicast_link_local(),
            };
            if link_local {
                continue;
            }
            if let Ok(subnet) = Prefix::new(addr, len) {
                subnets.push((subnet, pi as PortId));
            }
        }
    }
    let resolver = ConnectedResolver::new(subnets);
    Builder::new(bc, resolver).map_err(|source| AfXdpError::Builder {
        origin: cfg.origin.clone(),
        source,
    })
}

fn chown_group(path: &Path, gid: Option<u32>) -> Result<(), AfXdpError> {
    if let Some(gid) = gid {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(|source| {
            AfXdpError::SocketFile {
                path: path.to_owned(),
                what: format!("setting group {gid}"),
                source,
            }
        })?;
    }
    Ok(())
}

/// Creates the directory a socket goes in.
fn socket_dir(socket: &Path) -> Result<(), AfXdpError> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).map_err(|source| AfXdpError::SocketFile {
            path: dir.to_owned(),
            what: "creating the directory".to_owned(),
            source,
        })?;
    }
    Ok(())
}

/// Runs the forwarder on AF_XDP ports until `stop`; returns the summed counters.
pub fn run(cfg: &Config, stop: Arc<AtomicBool>) -> Result<Counters, AfXdpError> {
    setup::check_workers(cfg)?;
    // Before any thread is spawned, so every non-worker thread inherits the mask.
    let worker_cores: Vec<usize> = cfg.workers.iter().map(|w| w.core).collect();
    match crate::affinity::keep_off_worker_cores(&worker_cores) {
        Some(cores) => {
            tracing::info!("control threads on cores {cores:?}, off the workers' {worker_cores:?}")
        }
        None => tracing::info!(
            "control threads share the workers' cores {worker_cores:?} (no other core to use)"
        ),
    }
    let ports = resolve_ports(cfg)?;
    let programs = attach(cfg, &ports)?;
    let mut builder = builder(cfg, &ports)?;
    // One clock for the workers' bucket-use stamps and the control thread's idle timers.
    let epoch = std::time::Instant::now();
    let mut upkeep = neigh::NeighUpkeep::new(cfg, &ports, epoch)?;
    upkeep.prime(&mut builder);
    let cell = Arc::new(SnapshotCell::new(builder.snapshot(), cfg.workers.len()));

    // Workers first: the control thread must find them running to answer questions.
    let workers_stop = Arc::new(AtomicBool::new(false));
    let pcfg = pipeline_config(cfg);
    let mut view_workers = Vec::new();
    let mut handles: Vec<thread::JoinHandle<Result<(), AfXdpError>>> = Vec::new();
    let stop_workers = |handles: Vec<thread::JoinHandle<Result<(), AfXdpError>>>| {
        workers_stop.store(true, Ordering::Relaxed);
        let mut failure = None;
        for h in handles {
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failure = Some(e),
                Err(_) => failure = Some(AfXdpError::WorkerPanicked),
            }
        }
        failure
    };
    for w in &cfg.workers {
        let umem: Arc<SharedUmemStats> = Arc::default();
        let ws = WorkerShared {
            counters: Arc::new(SharedCounters::default()),
            ports: ports
                .iter()
                .map(|_| Arc::new(SharedPortStats::default()))
                .collect(),
            mailbox: Arc::new(Mailbox::default()),
            cpu: Some(w.core),
            memory: Vec::new(),
            tap: Arc::default(),
            hops: Arc::default(),
            umem: Some(Arc::clone(&umem)),
        };
        let queues = (0..cfg.ports.len())
            .map(|pi| {
                w.ports
                    .iter()
                    .find(|q| q.port == pi)
                    .map_or(0, |q| u32::from(q.queue))
            })
            .collect();
        let job = worker::Job {
            ports: ports.clone(),
            queues,
            programs: programs.clone(),
            core: w.core,
            pipeline: pcfg.clone(),
            cell: Arc::clone(&cell),
            counters: Arc::clone(&ws.counters),
            port_stats: ws.ports.clone(),
            mailbox: Arc::clone(&ws.mailbox),
            tap: Arc::clone(&ws.tap),
            hops: Arc::clone(&ws.hops),
            umem,
            stop: Arc::clone(&workers_stop),
            epoch,
        };
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let mut ws = ws;
        let handle = thread::Builder::new()
            .name(format!("ecmpfwd-w{}", w.core))
            .spawn(move || worker::run(job, ready_tx))
            .map_err(AfXdpError::Spawn)?;
        handles.push(handle);
        // One worker at a time, so an error names the first port that failed.
        let started = match ready_rx.recv_timeout(WORKER_START) {
            Ok(Ok(memory)) => {
                ws.memory = memory;
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(AfXdpError::StartTimeout(WORKER_START.as_secs())),
        };
        if let Err(e) = started {
            let _ = stop_workers(handles);
            return Err(AfXdpError::WorkerStart {
                origin: cfg.origin.clone(),
                line: w.line,
                core: w.core,
                source: Box::new(e),
            });
        }
        view_workers.push(ws);
    }
    let shared: Vec<Arc<SharedCounters>> = view_workers
        .iter()
        .map(|w| Arc::clone(&w.counters))
        .collect();
    let notifier = notifier();

    // Read back from the kernel, not assumed from the policy: under `require` a big table off
    // the hugetlb pool is a start-up error naming it.
    if let Err(e) = stats::log_memory(view::table_memory(&cell.load(), &view_workers)) {
        let _ = stop_workers(handles);
        return Err(AfXdpError::Memory(e));
    }

    let upkeep = ControlUpkeep {
        inner: Box::new(upkeep),
        watchdog: watchdog(&shared),
    };
    // SIGHUP asks the control thread for a reload, as `ecmpctl reload` does.
    let reload = Arc::new(AtomicBool::new(false));
    let sighup = match signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&reload))
    {
        Ok(id) => id,
        Err(e) => {
            let _ = stop_workers(handles);
            return Err(AfXdpError::Signal(e));
        }
    };
    let started = start_control(
        cfg,
        ports.iter().map(|p| p.name.clone()).collect(),
        &cell,
        view_workers,
        builder,
        ControlExtras {
            upkeep,
            reload,
            epoch,
            devices: None,
        },
    );
    let control = match started {
        Ok(c) => c,
        Err(e) => {
            signal_hook::low_level::unregister(sighup);
            let _ = stop_workers(handles);
            return Err(e);
        }
    };
    supervise(cfg, &cell, &stop, notifier.as_ref(), &control, || {
        handles.iter().any(|h| h.is_finished())
    });
    // No publication after this; then the workers drain and close; then the programs go.
    let control_result = control.join();
    signal_hook::low_level::unregister(sighup);
    let failure = stop_workers(handles);
    drop(programs);
    if let Some(e) = failure {
        return Err(AfXdpError::WorkerStopped(Box::new(e)));
    }
    control_result?;
    Ok(stats::sum(&shared))
}

/// From start to stop, the same for every runtime: tells systemd `READY=1` once every worker
/// runs the first tables, waits for `stop` (or for a worker to end: `any_finished`), then, with
/// `[[bgp.announce]]` prefixes, withdraws them and keeps forwarding for `[bgp] announce_grace`.
/// The caller then joins the control thread and stops its workers.
pub(crate) fn supervise(
    cfg: &Config,
    cell: &SnapshotCell,
    stop: &AtomicBool,
    notifier: Option<&Notifier>,
    control: &ControlHandle<ConnectedResolver>,
    any_finished: impl Fn() -> bool,
) {
    let status = format!(
        "forwarding on {} port(s) with {} worker(s)",
        cfg.ports.len(),
        cfg.workers.len()
    );
    tracing::info!("{status}");
    if let Some(n) = notifier {
        // Every port is open and every worker polls; wait for the workers to
        // run the first tables, so "ready" means packets are forwarded.
        let first = cell.generation();
        let deadline = std::time::Instant::now() + FIRST_TABLES;
        while cell.min_reported() < first
            && std::time::Instant::now() < deadline
            && !stop.load(Ordering::Relaxed)
        {
            thread::sleep(Duration::from_millis(1));
        }
        if cell.min_reported() < first {
            tracing::warn!(
                "workers still run generation {} of {first} after {FIRST_TABLES:?}; telling systemd \
                 ready anyway",
                cell.min_reported()
            );
        }
        n.send_or_log(&format!("READY=1\nSTATUS={status}"));
        tracing::info!("told systemd READY=1 on {}", n.name());
    }
    while !stop.load(Ordering::Relaxed) && !any_finished() {
        thread::sleep(Duration::from_millis(20));
    }
    if let Some(n) = notifier {
        n.send_or_log("STOPPING=1");
    }
    if !cfg.announce.entries.is_empty() {
        control.withdraw_all();
        if !any_finished() {
            let grace = cfg.announce.grace;
            tracing::info!(
                "withdrawing {} announced prefix(es); forwarding for {grace:?} more",
                cfg.announce.entries.len()
            );
            let end = std::time::Instant::now() + grace;
            while std::time::Instant::now() < end && !any_finished() {
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// What the control thread gets besides its sockets and tables.
pub(crate) struct ControlExtras {
    /// Between messages: the backend's upkeep, then the watchdog.
    pub upkeep: ControlUpkeep,
    /// Set by SIGHUP: reload the config.
    pub reload: Arc<AtomicBool>,
    /// The workers' clock, for capture timestamps.
    pub epoch: std::time::Instant,
    /// What `stats` reports of the devices behind the ports, if the backend has devices.
    pub devices: Option<Box<dyn view::DeviceReader>>,
}

/// The control thread: feed socket (if configured), control socket (if configured), metrics
/// listener (if configured), the backend's upkeep; publishes into `cell`. `port_names` are
/// the config's, by port id. Shared by the AF_XDP and DPDK runtimes.
pub(crate) fn start_control(
    cfg: &Config,
    port_names: Vec<String>,
    cell: &Arc<SnapshotCell>,
    workers: Vec<WorkerShared>,
    builder: Builder<ConnectedResolver>,
    extras: ControlExtras,
) -> Result<ControlHandle<ConnectedResolver>, AfXdpError> {
    let ControlExtras {
        upkeep,
        reload,
        epoch,
        devices,
    } = extras;
    let mut rib_config = RibConfig::default();
    let mut control_config = ControlConfig::default();
    let server = match &cfg.feed {
        Some(f) => {
            socket_dir(&f.socket)?;
            rib_config.stale_time = f.stale_time;
            rib_config.refresh_timeout = f.refresh_timeout;
            control_config.batch_window = f.batch_window;
            control_config.startup_hold = f.startup_hold;
            let server = FeedServer::bind(
                &f.socket,
                FeedServerConfig {
                    mode: f.mode,
                    allowed_uids: f.allowed_uids.clone(),
                    allowed_gids: f.allowed_gids.clone(),
                    max_line: f.max_line,
                    ..FeedServerConfig::default()
                },
            )
            .map_err(|source| AfXdpError::Socket {
                origin: cfg.origin.clone(),
                line: f.line,
                section: "feed",
                source,
            })?;
            chown_group(&f.socket, f.group)?;
            ControlThread::new(control_config).serve(server)
        }
        None => ControlThread::new(control_config),
    };
    // A reload's flow-cache timeouts go to every worker through its mailbox.
    let mailboxes: Vec<Arc<Mailbox>> = workers.iter().map(|w| Arc::clone(&w.mailbox)).collect();
    let view = LiveView::new(Arc::clone(cell), workers, port_names).with_capture(epoch);
    let view = match devices {
        Some(d) => view.with_devices(d),
        None => view,
    };
    let server = match &cfg.control {
        Some(c) => {
            socket_dir(&c.socket)?;
            let ctl = CtlListener::bind(
                &c.socket,
                CtlConfig {
                    mode: c.mode,
                    allowed_uids: c.allowed_uids.clone(),
                    allowed_gids: c.allowed_gids.clone(),
                    max_clients: c.max_clients,
                    ..CtlConfig::default()
                },
            )
            .map_err(|source| AfXdpError::Socket {
                origin: cfg.origin.clone(),
                line: c.line,
                section: "control",
                source,
            })?;
            chown_group(&c.socket, c.group)?;
            server.serve(ctl)
        }
        None => server,
    };
    let server = match &cfg.metrics {
        Some(m) => {
            let listener =
                MetricsListener::bind(m.listen).map_err(|source| AfXdpError::Metrics {
                    origin: cfg.origin.clone(),
                    line: m.line,
                    source,
                })?;
            tracing::info!("metrics on http://{}/metrics", listener.local_addr());
            server.serve(listener)
        }
        None => server,
    };
    // The data side answers whoever asks about it: the control socket or a scrape.
    let server = if cfg.control.is_some() || cfg.metrics.is_some() {
        server.with_dataplane(Box::new(view))
    } else {
        server
    };
    let source = FileSource::new(
        cfg.clone(),
        reload_policies,
        Box::new(move |timeouts| {
            for m in &mailboxes {
                m.post_timeouts(timeouts);
            }
        }),
    );
    let server = server
        .with_config_source(Box::new(source), reload)
        .with_announcements(announce_config(&cfg.announce)?);
    let cell = Arc::clone(cell);
    let handle = server.spawn_with(
        Rib::new(rib_config),
        builder,
        move |snapshot| {
            cell.publish(snapshot);
        },
        Some(Box::new(upkeep)),
    )?;
    Ok(handle)
}

/// The control side's view of `[[bgp.announce]]`.
fn announce_config(spec: &config::AnnounceSpecs) -> Result<AnnounceConfig, AfXdpError> {
    Ok(AnnounceConfig {
        entries: spec
            .entries
            .iter()
            .map(|e| {
                Ok(AnnounceSpec {
                    prefix: proto_prefix(e.prefix)?,
                    next_hop: match e.next_hop {
                        config::AnnounceNextHopSpec::Local => AnnounceNextHop::Local,
                        config::AnnounceNextHopSpec::Addr(a) => AnnounceNextHop::Addr(a),
                    },
                    med: e.med,
                    communities: e
                        .communities
                        .iter()
                        .map(|&(asn, value)| Community { asn, value })
                        .collect(),
                    neighbors: e.neighbors.clone(),
                })
            })
            .collect::<Result<_, AfXdpError>>()?,
        stall_time: spec.stall_time,
    })
}

/// `$NOTIFY_SOCKET`'s notifier, if systemd gave one; a malformed one is logged and ignored (a
/// service that never says ready is systemd's to time out, and a manual run must not fail).
pub(crate) fn notifier() -> Option<Notifier> {
    Notifier::from_env().unwrap_or_else(|e| {
        tracing::warn!("{e}; no systemd notifications");
        None
    })
}

/// Poll counts per worker: what the watchdog judges progress by.
pub(crate) type Progress = Box<dyn FnMut() -> Vec<u64> + Send>;

/// The watchdog `$WATCHDOG_USEC` asks for, reading the workers' poll counters.
pub(crate) fn watchdog(workers: &[Arc<SharedCounters>]) -> Option<Watchdog<Progress>> {
    let interval = match sdnotify::watchdog_from_env() {
        Ok(Some(i)) => i,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!("{e}; no watchdog pings");
            return None;
        }
    };
    let notifier = notifier()?;
    let workers: Vec<Arc<SharedCounters>> = workers.to_vec();
    let progress: Progress = Box::new(move || {
        workers
            .iter()
            .map(|w| w.read().get(ecmp_dataplane::counters::Counter::Polls))
            .collect()
    });
    tracing::info!(
        "systemd watchdog every {interval:?}: pinged every {:?} while every worker polls",
        interval / 2
    );
    Some(Watchdog::new(notifier, interval, progress))
}

/// What the control thread does between messages: the backend's upkeep (the AF_XDP runtime's
/// neighbour table and idle timers, the DPDK runtime's idle timers), then the watchdog.
pub(crate) struct ControlUpkeep {
    /// The backend's part.
    pub inner: Box<dyn Upkeep<ConnectedResolver>>,
    /// Pinged while every worker polls.
    pub watchdog: Option<Watchdog<Progress>>,
}

impl Upkeep<ConnectedResolver> for ControlUpkeep {
    fn run(
        &mut self,
        builder: &mut Builder<ConnectedResolver>,
        now: std::time::Instant,
    ) -> Option<ecmp_tables::Snapshot> {
        let snapshot = self.inner.run(builder, now);
        if let Some(w) = &mut self.watchdog {
            w.tick(now);
        }
        snapshot
    }
}
