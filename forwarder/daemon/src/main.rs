//! `ecmpfwd`: run, check a config, or benchmark the pipeline.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Result;
use clap::{Parser, Subcommand};
use ecmpfwd::config::{Config, PortKind};
use ecmpfwd::{afxdp, bench, demo, replay, setup, stats};

#[derive(Parser)]
#[command(
    name = "ecmpfwd",
    version,
    about = "Userspace resilient-ECMP forwarder"
)]
struct Cli {
    /// Log format on stderr: `human` (one line per event) or `json` (one object per line, for
    /// log shippers). Levels and targets come from RUST_LOG (default `info`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

/// Logs go to stderr (stdout carries reports), filtered by RUST_LOG.
fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[derive(Subcommand)]
enum Command {
    /// Start the workers over the configured ports (until SIGINT/SIGTERM, or until every pcap
    /// input has been forwarded).
    Run {
        /// The TOML config.
        #[arg(long)]
        config: PathBuf,
        /// Print the final counters as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Validate a config (errors name the file, line and key) and build its tables.
    Check {
        /// The TOML config.
        #[arg(long)]
        config: PathBuf,
    },
    /// Run the whole pipeline on synthetic traffic over in-memory ports (or, with `--io dpdk`,
    /// DPDK devices) and print Mpps.
    Bench {
        #[command(flatten)]
        options: bench::BenchOptions,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Then time each stage alone (parse, hash, lpm, flow cache, bucket, action) on the same
        /// tables and frames, and report them beside the whole pipeline.
        #[arg(long)]
        stages: bool,
    },
    /// Replay synthetic flows through the pipeline in-process: spread over next hops, fail one,
    /// drain another, bring the first back; checks every claim and fails if one does not hold.
    Demo {
        /// The TOML config.
        #[arg(long, default_value = "configs/anycast-vip.toml")]
        config: PathBuf,
        #[command(flatten)]
        options: demo::DemoOptions,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ecmpfwd: {}", report(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each said once: some errors already name their cause in
/// their own text (`cannot read: No such file...`), and anyhow's chain would repeat it.
fn report(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// `ecmpfwd run` over DPDK ports: the DPDK runtime when built with it.
#[cfg(feature = "dpdk")]
fn run_dpdk(cfg: &Config, stop: Arc<AtomicBool>) -> Result<ecmp_dataplane::counters::Counters> {
    Ok(ecmpfwd::dpdk::run(cfg, stop)?)
}

/// Without the DPDK runtime, the pcap runtime refuses the DPDK ports, naming the feature.
#[cfg(not(feature = "dpdk"))]
fn run_dpdk(cfg: &Config, stop: Arc<AtomicBool>) -> Result<ecmp_dataplane::counters::Counters> {
    Ok(replay::run(cfg, stop)?)
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Check { config } => {
            let cfg = Config::load(&config)?;
            // As `run` would: a `require` this machine cannot meet fails the check.
            ecmp_mem::set_policy(cfg.memory.hugepages)?;
            let tables = setup::build(&cfg)?;
            println!(
                "{}: ok: {} ports, {} workers, {} next hops, {} groups, {} IPv4 + {} IPv6 routes",
                cfg.origin,
                cfg.ports.len(),
                cfg.workers.len(),
                cfg.nexthops.len(),
                cfg.groups.len(),
                tables.snapshot.fib4.len(),
                tables.snapshot.fib6.len()
            );
            Ok(())
        }
        Command::Run { config, json } => {
            let cfg = Config::load(&config)?;
            // Before any table is built: they all follow it. `require` without a pool stops here.
            ecmp_mem::set_policy(cfg.memory.hugepages)?;
            let stop = Arc::new(AtomicBool::new(false));
            for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                signal_hook::flag::register(sig, Arc::clone(&stop))?;
            }
            let afxdp = cfg
                .ports
                .iter()
                .any(|p| matches!(p.kind, PortKind::AfXdp { .. }));
            let dpdk = cfg
                .ports
                .iter()
                .any(|p| matches!(p.kind, PortKind::Dpdk { .. }));
            let totals = if afxdp {
                afxdp::run(&cfg, stop)?
            } else if dpdk {
                run_dpdk(&cfg, stop)?
            } else {
                replay::run(&cfg, stop)?
            };
            if json {
                println!("{}", stats::json(&totals));
            } else {
                print!("{}", stats::human(&totals));
            }
            Ok(())
        }
        Command::Bench {
            options,
            json,
            stages,
        } => {
            let r = if stages {
                bench::run_with_stages(&options)?
            } else {
                bench::run(&options)?
            };
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "{:.2} Mpps, {:.1} ns/packet ({} packets in {:.3} s; {} flows, {} routes, \
                     {}-way groups, {:?}; {} drops, {} cache hits, {} misses)",
                    r.mpps,
                    r.ns_per_packet,
                    r.packets,
                    r.seconds,
                    options.flows,
                    options.routes,
                    options.group_size,
                    options.action,
                    r.drops,
                    r.cache_hits,
                    r.cache_misses
                );
                for t in r.memory.iter().filter(|t| t.worker.is_some()) {
                    println!(
                        "{}: {:.1} MiB, {} ({:.1} MiB on huge pages)",
                        t.name,
                        t.bytes as f64 / f64::from(1u32 << 20),
                        t.backing,
                        t.huge_bytes as f64 / f64::from(1u32 << 20)
                    );
                }
                if let Some(d) = &r.dpdk {
                    for dev in &d.devices {
                        println!(
                            "DPDK {}: {} in, {} out, {} missed, {} rx errors, {} tx errors, \
                             {} rx no-mbuf",
                            dev.device,
                            dev.ipackets,
                            dev.opackets,
                            dev.imissed,
                            dev.ierrors,
                            dev.oerrors,
                            dev.rx_nombuf
                        );
                    }
                    println!(
                        "mbuf pool: {} mbufs, {} out at the end",
                        d.pool_mbufs, d.pool_in_use_at_end
                    );
                }
                if !r.stages.is_empty() {
                    print!("{}", bench::stages::render(&r.stages));
                }
                print!("{}", bench::render_extras(&r));
            }
            Ok(())
        }
        Command::Demo {
            config,
            options,
            json,
        } => {
            let cfg = Config::load(&config)?;
            ecmp_mem::set_policy(cfg.memory.hugepages)?;
            let report = demo::run(&cfg, &options)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.render());
            }
            if !report.passed() {
                anyhow::bail!(
                    "demo: {} of {} claims did not hold",
                    report.failures(),
                    report.checks().count()
                );
            }
            Ok(())
        }
    }
}
