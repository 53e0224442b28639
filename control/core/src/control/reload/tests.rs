//! `reload` through the control socket and through the reload flag, against a stand-in config
//! source: applied as one publication, or refused (by the source or by the builder) with nothing
//! changed and nothing published.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use ecmp_proto::ctl::{NexthopSummary, ReloadCounts, RouteSummary};
use ecmp_tables::nexthop::{Action, HopState, NextHop};

use super::super::*;
use crate::builder::{ConfigGroup, ConfigHop, ConfigMember};
use crate::ctl_server::{CtlConfig, CtlListener};
use crate::testkit::*;

type Outcomes = Arc<Mutex<Vec<(Result<ReloadReply, String>, bool)>>>;

/// Hands out whatever the test put in `next`; records every outcome.
struct StandIn {
    next: Arc<Mutex<Result<DesiredConfig, String>>>,
    outcomes: Outcomes,
}

impl ConfigSource for StandIn {
    fn load(&mut self) -> Result<DesiredConfig, String> {
        self.next.lock().unwrap().clone()
    }

    fn finished(&mut self, outcome: &Result<ReloadReply, String>, signal: bool) {
        self.outcomes
            .lock()
            .unwrap()
            .push((outcome.clone(), signal));
    }
}

struct Harness {
    handle: Option<ControlHandle<Resolve>>,
    ctl: std::path::PathBuf,
    next: Arc<Mutex<Result<DesiredConfig, String>>>,
    outcomes: Outcomes,
    flag: Arc<AtomicBool>,
    publishes: Arc<AtomicU64>,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn start() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let ctl = dir.path().join("ctl.sock");
        let listener = CtlListener::bind(&ctl, CtlConfig::default()).unwrap();
        let next = Arc::new(Mutex::new(Err("nothing yet".to_owned())));
        let outcomes = Outcomes::default();
        let flag = Arc::new(AtomicBool::new(false));
        let publishes = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&publishes);
        let source = StandIn {
            next: Arc::clone(&next),
            outcomes: Arc::clone(&outcomes),
        };
        let handle = ControlThread::new(ControlConfig::default())
            .serve(listener)
            .with_config_source(Box::new(source), Arc::clone(&flag))
            .spawn(Rib::new(RibConfig::default()), builder(), move |_| {
                counted.fetch_add(1, Ordering::Relaxed);
            })
            .unwrap();
        Harness {
            handle: Some(handle),
            ctl,
            next,
            outcomes,
            flag,
            publishes,
            _dir: dir,
        }
    }

    fn ask(&self, req: &Request) -> Reply {
        let mut s = UnixStream::connect(&self.ctl).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut line = serde_json::to_vec(req).unwrap();
        line.push(b'\n');
        s.write_all(&line).unwrap();
        let mut reply = String::new();
        BufReader::new(s).read_line(&mut reply).unwrap();
        serde_json::from_str(&reply).unwrap()
    }

    fn ok<T: serde::de::DeserializeOwned>(&self, req: &Request) -> T {
        let reply = self.ask(req);
        assert!(reply.ok, "{req:?}: {reply:?}");
        serde_json::from_value(reply.result).unwrap()
    }

    fn publishes(&self) -> u64 {
        self.publishes.load(Ordering::Relaxed)
    }

    fn outcomes(&self) -> Vec<(Result<ReloadReply, String>, bool)> {
        self.outcomes.lock().unwrap().clone()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
    }
}

/// One group "web" of `hops` (192.0.2.1, .2, ...) routed from 10.0.0.0/8, its feed timing
/// `stale`.
fn desired(hops: u8, stale: Duration) -> DesiredConfig {
    let hops: Vec<ConfigHop> = (1..=hops)
        .map(|i| ConfigHop {
            name: format!("h{i}"),
            hop: NextHop {
                id: 0,
                addr: ip(&format!("192.0.2.{i}")),
                port: 0,
                mac: [2, 0, 0, 0, 0, i],
                weight: 1,
                action: Action::Rewrite,
            },
            state: HopState::Active,
        })
        .collect();
    DesiredConfig {
        origin: "c.toml".into(),
        tables: ConfigTables {
            groups: vec![ConfigGroup {
                name: "web".into(),
                mode: ecmp_tables::group::GroupMode::AutoRecovery,
                buckets: 16,
                hash: Default::default(),
                members: (0..hops.len())
                    .map(|hop| ConfigMember { hop, weight: 1 })
                    .collect(),
            }],
            hops,
            routes: vec![("10.0.0.0/8".parse().unwrap(), 0)],
            ..ConfigTables::default()
        },
        rib: RibConfig {
            stale_time: stale,
            ..RibConfig::default()
        },
        settings: vec!["feed.stale_time".into()],
        ..DesiredConfig::default()
    }
}

#[test]
fn a_reload_is_applied_as_one_publication_and_reported() {
    let mut h = Harness::start();
    *h.next.lock().unwrap() = Ok(desired(2, Duration::from_secs(9)));
    let r: ReloadReply = h.ok(&Request::Reload {});
    assert_eq!(
        (r.nexthops, r.groups, r.routes),
        (
            ReloadCounts {
                added: 2,
                ..ReloadCounts::default()
            },
            ReloadCounts {
                added: 1,
                ..ReloadCounts::default()
            },
            ReloadCounts {
                added: 1,
                ..ReloadCounts::default()
            },
        )
    );
    assert_eq!(r.settings, ["feed.stale_time"]);
    assert!(r.published);
    assert_eq!(h.publishes(), 1);
    let routes: Vec<RouteSummary> = h.ok(&Request::Routes {});
    assert_eq!((routes.len(), routes[0].active), (1, 2));
    assert_eq!(h.outcomes(), [(Ok(r), false)]);
    // The route-events view says what the reload changed.
    let events: Vec<ecmp_proto::ctl::RouteEvent> = h.ok(&Request::RouteEvents { last: 1 });
    assert_eq!(
        events[0].what,
        "reload: routes +1 -0 ~0, next hops +2 -0 ~0, groups +1 -0 ~0"
    );
    // The same file again: nothing to publish.
    let again: ReloadReply = h.ok(&Request::Reload {});
    assert!(!again.published);
    assert_eq!(h.publishes(), 1);
    let handle = h.handle.take().unwrap();
    assert_eq!(handle.stats().publishes, 1);
    let (rib, _) = handle.join().unwrap();
    assert_eq!(
        rib.config().stale_time,
        Duration::from_secs(9),
        "the new timing"
    );
}

#[test]
fn a_refused_reload_changes_and_publishes_nothing() {
    let mut h = Harness::start();
    *h.next.lock().unwrap() = Ok(desired(2, Duration::from_secs(9)));
    let _: ReloadReply = h.ok(&Request::Reload {});
    let hops: Vec<NexthopSummary> = h.ok(&Request::Nexthops {});
    // The source refuses (an invalid file, a restart key): its text is the error.
    let refusal = "c.toml:3: nexthop[0].address: invalid IP address syntax";
    *h.next.lock().unwrap() = Err(refusal.into());
    let reply = h.ask(&Request::Reload {});
    assert_eq!(reply.error.as_deref(), Some(refusal));
    // The builder refuses: a configured route where an operator route is.
    let via = vec![ip("192.0.2.9")];
    let prefix: ecmp_proto::Prefix = "10.9.0.0/16".parse().unwrap();
    let _: ecmp_proto::ctl::Changed = h.ok(&Request::RouteAdd { prefix, via });
    let published = h.publishes();
    let mut clash = desired(3, Duration::from_secs(1));
    clash.tables.routes.push((prefix, 0));
    *h.next.lock().unwrap() = Ok(clash);
    let reply = h.ask(&Request::Reload {});
    assert!(
        reply
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("c.toml: route 10.9.0.0/16")),
        "{reply:?}"
    );
    assert_eq!(h.publishes(), published);
    let after: Vec<NexthopSummary> = h.ok(&Request::Nexthops {});
    assert_eq!(after.iter().filter(|n| n.configured).count(), 2);
    assert_eq!(after.len(), hops.len() + 1, "the operator route's hop only");
    let outcomes = h.outcomes();
    assert_eq!(outcomes.len(), 3);
    assert!(
        outcomes[1..]
            .iter()
            .all(|(o, signal)| o.is_err() && !signal)
    );
    let (rib, _) = h.handle.take().unwrap().join().unwrap();
    assert_eq!(
        rib.config().stale_time,
        Duration::from_secs(9),
        "the old timing"
    );
}

#[test]
fn the_reload_flag_reloads_and_reports_to_the_source() {
    let h = Harness::start();
    *h.next.lock().unwrap() = Ok(desired(1, Duration::ZERO));
    h.flag.store(true, Ordering::Relaxed);
    let end = Instant::now() + WAIT;
    while h.outcomes().is_empty() {
        assert!(Instant::now() < end, "the flag was never seen");
        thread::sleep(Duration::from_millis(5));
    }
    let outcomes = h.outcomes();
    assert!(matches!(&outcomes[..], [(Ok(r), true)] if r.published));
    assert!(!h.flag.load(Ordering::Relaxed), "the flag is taken");
    assert_eq!(h.publishes(), 1);
}
