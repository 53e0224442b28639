//! `ecmpctl top`: a live view of a running forwarder, redrawn every interval like `top`.
//!
//! Each refresh takes one [`Sample`] over the control socket (`stats`, `flows`, `nexthops`,
//! `route-events`); the screen is [`render`]ed from the previous and the current sample alone,
//! so every rate is a difference of two counter readings over the daemon's own clock (its
//! uptime), not a rate some other client's `stats` call reset.
//!
//! The terminal is put in raw mode (no echo, keys unbuffered) on the alternate screen; `q`,
//! `Esc` or Ctrl-C ends it and restores the terminal as it was. `--once` prints one frame
//! (two samples an interval apart) to stdout as plain text, for scripts and pipes.

use std::fmt::Write as _;
use std::io::{self, IsTerminal, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ecmp_proto::ctl::{
    FlowsReply, NexthopSummary, Reply, Request, RouteEvent, RouteEventSource, StatsReply,
};
use rustix::termios::{self, OptionalActions, SpecialCodeIndex, Termios};

/// Route events asked for on each refresh (the screen shows what fits).
const EVENTS_ASKED: usize = 64;
/// How long a key read waits before the loop looks at the clock again.
const KEY_POLL_DECISECONDS: u8 = 1;

/// One reading of the daemon.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Counters (required).
    pub stats: StatsReply,
    /// Flow-cache totals, or why there are none (a worker that did not answer).
    pub flows: Result<FlowsReply, String>,
    /// Next hops in use.
    pub hops: Vec<NexthopSummary>,
    /// The latest route changes, oldest first (empty from a daemon that predates them).
    pub events: Vec<RouteEvent>,
}

fn result<T: serde::de::DeserializeOwned>(reply: Reply, what: &str) -> Result<T, String> {
    if !reply.ok {
        return Err(reply.error.unwrap_or_else(|| format!("{what} refused")));
    }
    serde_json::from_value(reply.result).map_err(|e| format!("{what}: {e}"))
}

/// Takes one sample through `ask` (one request, one reply).
pub fn sample(ask: &dyn Fn(&Request) -> Result<Reply>) -> Result<Sample> {
    let stats = result(ask(&Request::Stats {})?, "stats").map_err(anyhow::Error::msg)?;
    let flows = result(ask(&Request::Flows { top: 0 })?, "flows");
    let hops = result(ask(&Request::Nexthops {})?, "nexthops").map_err(anyhow::Error::msg)?;
    // An older daemon refuses the request: no events then, not a failure.
    let events = result(
        ask(&Request::RouteEvents { last: EVENTS_ASKED })?,
        "route-events",
    )
    .unwrap_or_default();
    Ok(Sample {
        stats,
        flows,
        hops,
        events,
    })
}

/// Per second from two readings `secs` apart (None without a previous reading or interval).
fn per_sec(now: u64, before: Option<u64>, secs: Option<f64>) -> Option<f64> {
    match (before, secs) {
        (Some(b), Some(s)) if s > 0.0 => Some(now.saturating_sub(b) as f64 / s),
        _ => None,
    }
}

fn rate_text(rate: Option<f64>) -> String {
    match rate {
        None => "-".to_owned(),
        Some(r) if r >= 10_000_000.0 => format!("{:.1}M", r / 1e6),
        Some(r) if r >= 100_000.0 => format!("{:.0}k", r / 1e3),
        Some(r) => format!("{r:.0}"),
    }
}

fn uptime_text(s: f64) -> String {
    let s = s as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// The screen for `cur` (rates against `prev`), at most `height` lines of at most `width`
/// characters. `title` heads it (the socket's path).
pub fn render(
    prev: Option<&Sample>,
    cur: &Sample,
    title: &str,
    width: usize,
    height: usize,
) -> Vec<String> {
    let s = &cur.stats;
    let secs = prev.map(|p| s.uptime_s - p.stats.uptime_s);
    let mut out = Vec::new();
    let generation = s.workers.iter().map(|w| w.generation).max().unwrap_or(0);
    out.push(format!(
        "ecmpctl top  {title}  up {}  generation {generation}  interval {}  (q quits)",
        uptime_text(s.uptime_s),
        secs.filter(|s| *s > 0.0)
            .map_or_else(|| "-".to_owned(), |s| format!("{s:.1} s"))
    ));
    out.push(String::new());

    out.push(format!(
        "{:<12} {:>6} {:>10} {:>10} {:>14} {:>14} {:>10}",
        "PORT", "WORKER", "RX PPS", "TX PPS", "RX PACKETS", "TX PACKETS", "TX REFUSED"
    ));
    for p in &s.ports {
        let old = prev.and_then(|q| {
            q.stats
                .ports
                .iter()
                .find(|o| o.name == p.name && o.worker == p.worker)
        });
        out.push(format!(
            "{:<12} {:>6} {:>10} {:>10} {:>14} {:>14} {:>10}",
            p.name,
            p.worker,
            rate_text(per_sec(p.rx_packets, old.map(|o| o.rx_packets), secs)),
            rate_text(per_sec(p.tx_packets, old.map(|o| o.tx_packets), secs)),
            p.rx_packets,
            p.tx_packets,
            p.tx_refused
        ));
    }
    out.push(String::new());

    out.push(format!(
        "{:<6} {:>4} {:>10} {:>8} {:>10} {:>10} {:>10}",
        "WORKER", "CPU", "PPS", "BUSY", "DROP/S", "CACHE HIT", "GENERATION"
    ));
    for w in &s.workers {
        let old = prev.and_then(|q| q.stats.workers.iter().find(|o| o.worker == w.worker));
        // Busy over the last interval: the share of polls that received something.
        let busy = old.and_then(|o| {
            let polls = w.polls.checked_sub(o.polls).filter(|p| *p > 0)?;
            let busy = w.busy_polls.saturating_sub(o.busy_polls);
            Some(format!("{:.1}%", 100.0 * busy as f64 / polls as f64))
        });
        let lookups = w.cache_hits + w.cache_misses;
        let hit =
            (lookups > 0).then(|| format!("{:.1}%", 100.0 * w.cache_hits as f64 / lookups as f64));
        out.push(format!(
            "{:<6} {:>4} {:>10} {:>8} {:>10} {:>10} {:>10}",
            w.worker,
            w.cpu.map_or_else(|| "-".to_owned(), |c| c.to_string()),
            rate_text(per_sec(w.packets, old.map(|o| o.packets), secs)),
            busy.unwrap_or_else(|| "-".to_owned()),
            rate_text(per_sec(w.dropped, old.map(|o| o.dropped), secs)),
            hit.unwrap_or_else(|| "-".to_owned()),
            w.generation
        ));
    }
    out.push(String::new());

    match &cur.flows {
        Ok(f) => {
            let old = prev.and_then(|q| q.flows.as_ref().ok()).map(|o| o.total);
            let fill = if f.capacity > 0 {
                format!(
                    "{} / {} flows ({:.1}% full)",
                    f.total,
                    f.capacity,
                    100.0 * f.total as f64 / f.capacity as f64
                )
            } else {
                format!("{} flows", f.total)
            };
            let change = match (old, secs) {
                (Some(o), Some(s)) if s > 0.0 => {
                    format!("  {:+.0} flows/s", (f.total as f64 - o as f64) / s)
                }
                _ => String::new(),
            };
            out.push(format!("FLOW CACHE  {fill}{change}"));
        }
        Err(e) => out.push(format!("FLOW CACHE  unknown: {e}")),
    }
    out.push(String::new());

    // Packets per hop from the two samples' counts (a hop id given to another address in
    // between has no rate yet); cached flows per hop show how new flows spread.
    out.push(format!(
        "{:>5} {:<26} {:<10} {:<11} {:>10} {:>10} {:>9}",
        "HOP", "ADDRESS", "PORT", "STATE", "PKTS/S", "FLOWS", "FLOWS/S"
    ));
    let flows_of = |f: &Result<FlowsReply, String>, hop: u32| {
        f.as_ref().ok().map(|f| {
            f.per_hop
                .iter()
                .find(|h| h.hop == hop)
                .map_or(0, |h| h.flows)
        })
    };
    let packets_of = |st: &StatsReply, h: &NexthopSummary| {
        st.hops
            .iter()
            .find(|c| c.hop == h.hop && c.addr == h.addr)
            .map(|c| c.packets)
    };
    let hop_rate = |now: Option<u64>, before: Option<u64>, signed: bool| match (now, before, secs) {
        (Some(n), Some(b), Some(s)) if s > 0.0 => {
            let r = (n as f64 - b as f64) / s;
            if signed {
                format!("{r:+.0}")
            } else {
                format!("{:.0}", r.max(0.0))
            }
        }
        _ => "-".to_owned(),
    };
    for h in &cur.hops {
        let state = if h.drained {
            "drained"
        } else if !h.resolved {
            "unresolved"
        } else {
            "active"
        };
        let pps = hop_rate(
            packets_of(s, h),
            prev.and_then(|p| packets_of(&p.stats, h)),
            false,
        );
        let now = flows_of(&cur.flows, h.hop);
        let change = hop_rate(now, prev.and_then(|p| flows_of(&p.flows, h.hop)), true);
        out.push(format!(
            "{:>5} {:<26} {:<10} {:<11} {:>10} {:>10} {:>9}",
            h.hop,
            h.addr.to_string(),
            h.port,
            state,
            pps,
            now.map_or_else(|| "-".to_owned(), |n| n.to_string()),
            change
        ));
    }
    out.push(String::new());

    out.push(format!("{:<24} {:>10} {:>14}", "DROPS", "PER SEC", "TOTAL"));
    if s.drops.is_empty() {
        out.push("  (none)".to_owned());
    }
    for (reason, total) in &s.drops {
        // A reason first seen this interval started from zero.
        let old = prev.map(|q| {
            q.stats
                .drops
                .iter()
                .find(|(r, _)| r == reason)
                .map_or(0, |(_, n)| *n)
        });
        out.push(format!(
            "{:<24} {:>10} {:>14}",
            reason,
            rate_text(per_sec(*total, old, secs)),
            total
        ));
    }
    out.push(String::new());

    out.push("ROUTE EVENTS (newest last)".to_owned());
    let room = height.saturating_sub(out.len());
    if cur.events.is_empty() {
        out.push("  (none yet)".to_owned());
    }
    for e in &cur.events[cur.events.len().saturating_sub(room)..] {
        let source = match e.source {
            RouteEventSource::Feed => "feed",
            RouteEventSource::Operator => "operator",
        };
        let mut line = format!(
            "  {:>10}  gen {:<6} {:<8} ",
            uptime_text(e.uptime_s),
            e.generation,
            source
        );
        if let Some(p) = e.prefix {
            let _ = write!(line, "{:<20} ", p.to_string());
        }
        line.push_str(&e.what);
        out.push(line);
    }
    out.truncate(height);
    for line in &mut out {
        if let Some((cut, _)) = line.char_indices().nth(width) {
            line.truncate(cut);
        }
    }
    out
}

/// The terminal in raw mode on the alternate screen; restored when dropped (also on an error
/// or a panic unwinding).
struct Screen {
    saved: Termios,
}

impl Screen {
    fn enter() -> Result<Screen> {
        let stdin = io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).context("reading the terminal's mode")?;
        let mut raw = saved.clone();
        raw.make_raw();
        // Reads return after a tenth of a second without a key, so the loop keeps time.
        raw.special_codes[SpecialCodeIndex::VMIN] = 0;
        raw.special_codes[SpecialCodeIndex::VTIME] = KEY_POLL_DECISECONDS;
        termios::tcsetattr(stdin.as_fd(), OptionalActions::Flush, &raw)
            .context("setting the terminal to raw mode")?;
        let screen = Screen { saved };
        // Alternate screen, cursor hidden.
        write_all(b"\x1b[?1049h\x1b[?25l")?;
        Ok(screen)
    }

    fn size() -> (usize, usize) {
        match termios::tcgetwinsize(io::stdout().as_fd()) {
            Ok(w) if w.ws_col > 0 && w.ws_row > 0 => (usize::from(w.ws_col), usize::from(w.ws_row)),
            _ => (80, 24),
        }
    }

    fn draw(lines: &[String]) -> Result<()> {
        let mut frame = String::from("\x1b[H");
        for line in lines {
            frame.push_str(line);
            // Clear what an earlier, longer line left, then the next line.
            frame.push_str("\x1b[K\r\n");
        }
        frame.push_str("\x1b[J");
        write_all(frame.as_bytes())
    }

    /// Waits up to `until` for a key that ends the view; true when one came.
    fn quit_key(until: Instant) -> Result<bool> {
        let stdin = io::stdin();
        let mut buf = [0u8; 16];
        while Instant::now() < until {
            let n = rustix::io::read(stdin.as_fd(), &mut buf).context("reading a key")?;
            // q, Q, Esc, Ctrl-C, Ctrl-D.
            if buf[..n]
                .iter()
                .any(|b| matches!(b, b'q' | b'Q' | 0x1b | 0x03 | 0x04))
            {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = write_all(b"\x1b[?25h\x1b[?1049l");
        let _ = termios::tcsetattr(io::stdin().as_fd(), OptionalActions::Flush, &self.saved);
    }
}

fn write_all(bytes: &[u8]) -> Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()?;
    Ok(())
}

/// Runs the view until a quit key (or, with `once`, prints one frame).
pub fn run(
    ask: &dyn Fn(&Request) -> Result<Reply>,
    title: &str,
    interval: Duration,
    once: bool,
) -> Result<()> {
    if interval < Duration::from_millis(100) {
        bail!("--interval must be at least 0.1 s");
    }
    if once {
        let first = sample(ask)?;
        std::thread::sleep(interval);
        let second = sample(ask)?;
        for line in render(Some(&first), &second, title, usize::MAX, usize::MAX) {
            // ecmpctl's stdout writer: a reader that went away ends it quietly.
            super::emit(format_args!("{line}\n"));
        }
        return Ok(());
    }
    if !io::stdin().is_terminal() || !io::stdout().is_terminal() {
        bail!("top needs a terminal (use --once for a single frame as text)");
    }
    let _screen = Screen::enter()?;
    let mut prev: Option<Sample> = None;
    loop {
        let next = Instant::now() + interval;
        let cur = sample(ask)?;
        let (width, height) = Screen::size();
        Screen::draw(&render(prev.as_ref(), &cur, title, width, height))?;
        prev = Some(cur);
        if Screen::quit_key(next)? {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecmp_proto::ctl::{HopCounters, HopFlows, PortCounters, WorkerCounters};

    fn port(name: &str, rx: u64, tx: u64) -> PortCounters {
        PortCounters {
            name: name.to_owned(),
            worker: 0,
            rx_packets: rx,
            rx_bytes: rx * 100,
            tx_packets: tx,
            tx_bytes: tx * 100,
            tx_refused: 0,
            rx_pps: 0.0,
            tx_pps: 0.0,
        }
    }

    fn worker(packets: u64, polls: u64, busy_polls: u64, dropped: u64) -> WorkerCounters {
        WorkerCounters {
            worker: 0,
            cpu: Some(1),
            packets,
            forwarded: packets - dropped,
            dropped,
            cache_hits: packets * 9 / 10,
            cache_misses: packets / 10,
            generation: 3,
            pps: 0.0,
            polls,
            busy_polls,
            busy_cycles: 0,
            bursts: busy_polls,
            flow_inserts: 0,
            flow_evictions: 0,
            flows_not_cached: 0,
            flow_repicks: 0,
            flow_entries: 0,
            umem: None,
        }
    }

    fn hop(id: u32, addr: &str, drained: bool) -> NexthopSummary {
        NexthopSummary {
            hop: id,
            addr: addr.parse().unwrap(),
            port: format!("fb{id}"),
            mac: "02:00:00:00:00:01".to_owned(),
            resolved: true,
            action: "rewrite".to_owned(),
            groups: 1,
            configured: true,
            drained,
        }
    }

    fn at(uptime_s: f64, k: u64) -> Sample {
        Sample {
            stats: StatsReply {
                uptime_s,
                tsc_hz: None,
                ports: vec![port("fc0", 1000 * k, 0), port("fb1", 0, 1000 * k)],
                workers: vec![worker(1000 * k, 10_000 * k, 2500 * k, 10 * k)],
                drops: vec![("no_route".to_owned(), 10 * k)],
                hops: vec![HopCounters {
                    hop: 1,
                    addr: "198.18.1.1".parse().unwrap(),
                    packets: 900 * k,
                    pps: 0.0,
                }],
                feed: Vec::new(),
                memory: Vec::new(),
                announce: Vec::new(),
                devices: Vec::new(),
            },
            flows: Ok(FlowsReply {
                total: 100 * k,
                per_worker: vec![100 * k],
                per_hop: vec![HopFlows {
                    hop: 1,
                    flows: 100 * k,
                }],
                flows: Vec::new(),
                capacity: 65536,
            }),
            hops: vec![hop(1, "198.18.1.1", false), hop(2, "198.18.2.1", true)],
            events: vec![RouteEvent {
                uptime_s: 1.5,
                generation: 3,
                source: RouteEventSource::Operator,
                prefix: None,
                what: "drain 198.18.2.1".to_owned(),
            }],
        }
    }

    fn line<'a>(screen: &'a [String], start: &str) -> Vec<&'a str> {
        screen
            .iter()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line starting {start:?} in {screen:#?}"))
            .split_whitespace()
            .collect()
    }

    #[test]
    fn rates_and_ratios_come_from_the_two_samples() {
        // Two seconds apart: 2000 more packets each way, 20000 more polls, 5000 of them busy.
        let screen = render(Some(&at(10.0, 1)), &at(12.0, 3), "ctl.sock", 200, 100);
        assert!(screen[0].contains("ctl.sock") && screen[0].contains("interval 2.0 s"));
        assert_eq!(
            line(&screen, "fc0"),
            ["fc0", "0", "1000", "0", "3000", "0", "0"]
        );
        assert_eq!(
            line(&screen, "fb1"),
            ["fb1", "0", "0", "1000", "0", "3000", "0"]
        );
        // worker cpu pps busy drop/s hit generation
        assert_eq!(
            line(&screen, "0 "),
            ["0", "1", "1000", "25.0%", "10", "90.0%", "3"]
        );
        let fill = line(&screen, "FLOW CACHE").join(" ");
        assert_eq!(
            fill,
            "FLOW CACHE 300 / 65536 flows (0.5% full) +100 flows/s"
        );
        let hops: Vec<Vec<&str>> = ["    1", "    2"]
            .iter()
            .map(|h| line(&screen, h))
            .collect();
        // hop 1: 1800 more packets in 2 s; hop 2 has no count in either sample.
        assert_eq!(
            hops[0],
            ["1", "198.18.1.1", "fb1", "active", "900", "300", "+100"]
        );
        assert_eq!(
            hops[1],
            ["2", "198.18.2.1", "fb2", "drained", "-", "0", "+0"]
        );
        assert_eq!(line(&screen, "no_route"), ["no_route", "10", "30"]);
        let events = screen
            .iter()
            .position(|l| l.starts_with("ROUTE EVENTS"))
            .unwrap();
        assert!(
            screen[events + 1].ends_with("operator drain 198.18.2.1"),
            "{screen:#?}"
        );
    }

    #[test]
    fn the_first_frame_has_totals_but_no_rates() {
        let screen = render(None, &at(10.0, 1), "s", 200, 100);
        assert!(screen[0].contains("interval -"));
        assert_eq!(
            line(&screen, "fc0"),
            ["fc0", "0", "-", "-", "1000", "0", "0"]
        );
        assert_eq!(line(&screen, "0 "), ["0", "1", "-", "-", "-", "90.0%", "3"]);
    }

    #[test]
    fn the_screen_fits_the_terminal_and_keeps_the_newest_events() {
        let mut cur = at(12.0, 3);
        cur.events = (0..40)
            .map(|i| RouteEvent {
                uptime_s: f64::from(i),
                generation: u64::from(i as u32),
                source: RouteEventSource::Feed,
                prefix: Some("198.19.0.1/32".parse().unwrap()),
                what: format!("{i} next hops"),
            })
            .collect();
        let screen = render(Some(&at(10.0, 1)), &cur, "s", 40, 30);
        assert_eq!(screen.len(), 30);
        assert!(screen.iter().all(|l| l.chars().count() <= 40));
        let wide = render(Some(&at(10.0, 1)), &cur, "s", 300, 30);
        assert!(wide.last().unwrap().ends_with("39 next hops"), "{wide:#?}");
    }

    #[test]
    fn a_failed_flows_query_and_no_drops_are_said_as_such() {
        let mut cur = at(12.0, 3);
        cur.flows = Err("worker 0 did not answer".to_owned());
        cur.stats.drops.clear();
        cur.events.clear();
        let screen = render(None, &cur, "s", 200, 100);
        assert!(screen.contains(&"FLOW CACHE  unknown: worker 0 did not answer".to_owned()));
        assert!(screen.contains(&"  (none)".to_owned()));
        assert!(screen.contains(&"  (none yet)".to_owned()));
        assert_eq!(line(&screen, "    1")[4], "-");
    }
}
