//! `ecmpctl capture` on the daemon's side: compiles the filter (libpcap, here on the control
//! side, never in a worker), arms one session per worker and turns what the workers' rings hold
//! into capture lines for the control connection that asked.
//!
//! One capture runs at a time: a second is refused while the first streams. The file itself is
//! written by `ecmpctl`, not here: the daemon runs as root and its socket admits other users
//! (`allowed_uids`/`allowed_gids`), so a path in the request would let them have root create or
//! overwrite any file; streaming the frames leaves the file to the client's own permissions.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ecmp_control::control::{CaptureStream, DataQueryError};
use ecmp_dataplane::capture::{
    BpfInsn, CaptureSession, CaptureTap, Direction, Filter, MAX_SLOT_BYTES,
};
use ecmp_port::PortId;
use ecmp_proto::ctl::{CaptureDir, CaptureRequest, CaptureStarted, CapturedPacket, hex_encode};

/// How often a stream waiting for frames looks at the rings again.
const DRAIN_EVERY: Duration = Duration::from_millis(2);

/// The workers' capture taps and what a capture needs to describe its frames.
#[derive(Debug)]
pub struct CaptureHub {
    taps: Vec<Arc<CaptureTap>>,
    port_names: Vec<String>,
    /// The clock the workers stamp frames with (ns since this instant).
    epoch: Instant,
    busy: Arc<AtomicBool>,
}

impl CaptureHub {
    /// A hub over these workers' taps; `epoch` is the clock their polls are given.
    pub fn new(taps: Vec<Arc<CaptureTap>>, port_names: Vec<String>, epoch: Instant) -> Self {
        CaptureHub {
            taps,
            port_names,
            epoch,
            busy: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Compiles `filter` (tcpdump syntax) into a program the workers run.
    pub fn filter(filter: &str) -> Result<Filter, DataQueryError> {
        let insns = ecmp_io::pcap_filter::compile(filter)
            .map_err(|e| DataQueryError::BadQuery(e.to_string()))?;
        Filter::new(
            insns
                .into_iter()
                .map(|i| BpfInsn {
                    code: i.code,
                    jt: i.jt,
                    jf: i.jf,
                    k: i.k,
                })
                .collect(),
        )
        .map_err(|e| DataQueryError::BadQuery(format!("capture filter {filter:?}: {e}")))
    }

    /// Starts a capture; refused (nothing armed) for an unknown port, a bad filter or while
    /// another capture runs.
    pub fn start(
        &self,
        req: &CaptureRequest,
    ) -> Result<(CaptureStarted, Box<dyn CaptureStream>), DataQueryError> {
        let port = match &req.port {
            None => None,
            Some(name) => Some(
                self.port_names
                    .iter()
                    .position(|p| p == name)
                    .ok_or_else(|| DataQueryError::BadQuery(format!("no port {name:?}")))?
                    as PortId,
            ),
        };
        let filter = req.filter.as_deref().map(Self::filter).transpose()?;
        // None named: everything.
        let all = !(req.rx || req.tx || req.drops);
        let dirs = (req.rx || all, req.tx || all, req.drops || all);
        let snaplen = req.snaplen.clamp(1, MAX_SLOT_BYTES as u32);
        if self.taps.is_empty() {
            return Err(DataQueryError::NoWorkers);
        }
        if self
            .busy
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(DataQueryError::BadQuery(
                "a capture is already running".to_owned(),
            ));
        }
        let sessions: Vec<Arc<CaptureSession>> = self
            .taps
            .iter()
            .map(|_| Arc::new(CaptureSession::new(filter.clone(), port, dirs, snaplen)))
            .collect();
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_sub(self.epoch.elapsed());
        for (tap, s) in self.taps.iter().zip(&sessions) {
            tap.set(Some(Arc::clone(s)));
        }
        let stream = LiveCapture {
            sessions,
            taps: self.taps.clone(),
            busy: Arc::clone(&self.busy),
            wall_at_epoch_ns: wall.as_nanos() as u64,
        };
        Ok((
            CaptureStarted {
                ports: self.port_names.clone(),
                snaplen,
            },
            Box::new(stream),
        ))
    }
}

/// A running capture; dropping it disarms every worker.
struct LiveCapture {
    sessions: Vec<Arc<CaptureSession>>,
    taps: Vec<Arc<CaptureTap>>,
    busy: Arc<AtomicBool>,
    wall_at_epoch_ns: u64,
}

impl LiveCapture {
    fn drain(&self, out: &mut Vec<CapturedPacket>) -> usize {
        let mut n = 0;
        for s in &self.sessions {
            n += s.ring.drain(|c| {
                out.push(CapturedPacket {
                    port: c.port,
                    dir: match c.direction {
                        Direction::Rx => CaptureDir::Rx,
                        Direction::Tx => CaptureDir::Tx,
                        Direction::Drop => CaptureDir::Drop,
                    },
                    ts_ns: self.wall_at_epoch_ns.saturating_add(c.ts_ns),
                    len: c.len,
                    data: hex_encode(c.data),
                    drop: c.reason.map(|r| r.name().to_owned()),
                });
            });
        }
        n
    }
}

impl CaptureStream for LiveCapture {
    fn next(&mut self, out: &mut Vec<CapturedPacket>, wait: Duration) {
        let until = Instant::now() + wait;
        while self.drain(out) == 0 && Instant::now() < until {
            std::thread::sleep(DRAIN_EVERY);
        }
    }

    fn ring_dropped(&self) -> u64 {
        self.sessions.iter().map(|s| s.ring.dropped()).sum()
    }
}

impl Drop for LiveCapture {
    fn drop(&mut self) {
        for tap in &self.taps {
            tap.set(None);
        }
        self.busy.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(workers: usize) -> CaptureHub {
        CaptureHub::new(
            (0..workers)
                .map(|_| Arc::new(CaptureTap::default()))
                .collect(),
            vec!["a".to_owned(), "b".to_owned()],
            Instant::now(),
        )
    }

    fn request() -> CaptureRequest {
        serde_json::from_str(r#"{"rx": true}"#).unwrap()
    }

    #[test]
    fn a_bad_filter_is_refused_naming_it_and_arms_nothing() {
        let h = hub(2);
        let req = CaptureRequest {
            filter: Some("udp port banana".to_owned()),
            ..request()
        };
        let Err(e) = h.start(&req) else {
            panic!("a bad filter starts nothing");
        };
        assert!(e.to_string().contains("udp port banana"), "{e}");
        assert!(h.taps.iter().all(|t| t.version() == 0));
        let Err(e) = h.start(&CaptureRequest {
            port: Some("c".to_owned()),
            ..request()
        }) else {
            panic!("an unknown port starts nothing");
        };
        assert!(e.to_string().contains("\"c\""), "{e}");
    }

    #[test]
    fn one_capture_at_a_time_and_dropping_it_disarms_every_worker() {
        let h = hub(2);
        let (started, stream) = h
            .start(&CaptureRequest {
                filter: Some("udp".to_owned()),
                snaplen: 1 << 30,
                ..request()
            })
            .unwrap();
        assert_eq!(started.ports, ["a", "b"]);
        assert_eq!(started.snaplen, MAX_SLOT_BYTES as u32);
        assert!(h.taps.iter().all(|t| t.session().is_some()));
        assert!(h.start(&request()).is_err(), "a second capture is refused");
        drop(stream);
        assert!(h.taps.iter().all(|t| t.session().is_none()));
        assert!(
            h.start(&request()).is_ok(),
            "free again once the first ended"
        );
    }

    #[test]
    fn frames_come_out_with_wall_clock_time_hex_bytes_and_drop_names() {
        let h = hub(1);
        let (_, mut stream) = h.start(&request()).unwrap();
        let session = h.taps[0].session().unwrap();
        session.offer(
            1,
            Direction::Drop,
            Some(ecmp_dataplane::drop::DropReason::TtlExpired),
            7,
            &[0xab, 0x01],
        );
        let mut out = Vec::new();
        stream.next(&mut out, Duration::from_millis(100));
        assert_eq!(out.len(), 1);
        let p = &out[0];
        assert_eq!(
            (p.port, p.dir, p.len, p.data.as_str()),
            (1, CaptureDir::Drop, 2, "ab01")
        );
        assert_eq!(p.drop.as_deref(), Some("ttl_expired"));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        assert!(
            p.ts_ns <= now && now - p.ts_ns < 60_000_000_000,
            "{} vs {now}",
            p.ts_ns
        );
    }
}
