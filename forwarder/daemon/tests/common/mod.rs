//! A small in-process lab for the daemon's integration tests: tables from a TOML string, the
//! memory rig ([`ecmpfwd::rig`]) over them, and helpers to send flows and see which hop each one
//! reached.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use ecmp_dataplane::counters::{Counter, Counters};
use ecmp_pktgen::traffic::Rng;
use ecmp_port::memory::TxMode;
use ecmp_tables::nexthop::{HopId, HopState};
use ecmp_testkit::frames::{FrameSpec, TcpFlags};
use ecmpfwd::config::Config;
use ecmpfwd::rig::{Rig, RigOptions};
use ecmpfwd::setup::Tables;

/// An anycast VIP behind `hops` servers in a group of the given mode.
pub fn vip_config(hops: usize, mode: &str, buckets: u32, cache: usize) -> String {
    let mut s = format!(
        "[instance]\nname = \"test\"\n\
         [flow_cache]\ncapacity = {cache}\n\
         [[port]]\nname = \"uplink\"\nkind = \"memory\"\nmac = \"02:00:00:00:00:01\"\n\
         [[port]]\nname = \"servers\"\nkind = \"memory\"\nmac = \"02:00:00:00:00:02\"\n\
         [[worker]]\ncore = 0\nports = [\"uplink\", \"servers\"]\n"
    );
    let mut members = Vec::new();
    for i in 1..=hops {
        s += &format!(
            "[[nexthop]]\nname = \"s{i}\"\naddress = \"198.18.1.{i}\"\nport = \"servers\"\n\
             mac = \"02:be:00:00:00:{i:02x}\"\n"
        );
        members.push(format!("\"s{i}\""));
    }
    s += &format!(
        "[[group]]\nname = \"vip\"\nmode = \"{mode}\"\nbuckets = {buckets}\nmembers = [{}]\n\
         [[route]]\nprefix = \"192.0.2.10/32\"\ngroup = \"vip\"\n",
        members.join(", ")
    );
    s
}

pub const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

/// Frames sent in per round trip through the worker.
const CHUNK: usize = 256;

/// One worker over two memory ports (0 = uplink, 1 = servers), with the control-side tables.
/// Its clock moves only by [`Lab::advance_ms`].
pub struct Lab {
    pub tables: Tables,
    pub rig: Rig,
}

impl Lab {
    pub fn new(toml: &str) -> Lab {
        let cfg = Config::parse(toml, "test.toml").expect("config");
        let opts = RigOptions {
            pool_frames: 4096,
            tx_mode: TxMode::Collect,
            start_ns: 1_000_000,
            step_ns: 0,
        };
        let (rig, tables) = Rig::from_config(&cfg, opts).expect("rig");
        Lab { tables, rig }
    }

    /// Advances the lab's clock.
    pub fn advance_ms(&mut self, ms: u64) {
        self.rig.advance(ms * 1_000_000);
    }

    /// Sends frames in through the uplink, polls until forwarded, returns what the servers port sent.
    pub fn send(&mut self, frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for chunk in frames.chunks(CHUNK) {
            let mut sent = self.rig.run_burst(chunk).expect("burst").sent;
            out.append(&mut sent[1]);
        }
        out
    }

    /// Applies a state change to a hop of group 1 and publishes the new tables.
    pub fn set_state(&mut self, hop: HopId, state: HopState) {
        self.tables
            .group_mut(1)
            .expect("group")
            .set_state(hop, state)
            .expect("state");
        self.publish();
    }

    pub fn publish(&mut self) {
        self.rig.publish(self.tables.rebuild_snapshot());
    }

    pub fn counters(&self) -> Counters {
        self.rig.counters().clone()
    }

    pub fn counter(&self, c: Counter) -> u64 {
        self.rig.counter(c)
    }
}

/// A flow: its first (SYN) and later (ACK) packets toward the VIP.
#[derive(Clone)]
pub struct Flow {
    pub syn: Vec<u8>,
    pub ack: Vec<u8>,
}

pub fn flows(n: usize, seed: u64) -> Vec<Flow> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let src = IpAddr::V4(Ipv4Addr::from(
                0xC612_0000 | (rng.next_u64() as u32 & 0xFFFF),
            ));
            let spec = FrameSpec::udp(
                src,
                IpAddr::V4(VIP),
                1024 + rng.below(60_000) as u16,
                443,
                60,
            );
            Flow {
                syn: spec
                    .clone()
                    .with_tcp(TcpFlags::SYN)
                    .build()
                    .expect("flow frame builds"),
                ack: spec
                    .with_tcp(TcpFlags::ACK)
                    .build()
                    .expect("flow frame builds"),
            }
        })
        .collect()
}

/// The hop a forwarded frame went to: hops are numbered by the last byte of their MAC.
pub fn hop_of(frame: &[u8]) -> HopId {
    HopId::from(frame[5])
}

/// Sends one packet per flow (`ack` packets unless `syn`) and returns the hop of each flow, in order.
pub fn placement(lab: &mut Lab, flows: &[Flow], syn: bool) -> Vec<HopId> {
    let frames: Vec<Vec<u8>> = flows
        .iter()
        .map(|f| if syn { f.syn.clone() } else { f.ack.clone() })
        .collect();
    let out = lab.send(&frames);
    assert_eq!(
        out.len(),
        flows.len(),
        "every packet must be forwarded: {:?}",
        lab.counters()
    );
    // Frames leave in order, one per flow.
    out.iter().map(|f| hop_of(f)).collect()
}

pub fn tally(p: &[HopId]) -> HashMap<HopId, usize> {
    let mut m = HashMap::new();
    for h in p {
        *m.entry(*h).or_insert(0) += 1;
    }
    m
}
