//! Real TCP connections through `ecmpfwd run` (`scripts/lab`, needs root): an HTTP server in
//! every backend, GETs from the client to the VIP over IPv4 and IPv6. The replies come back
//! through the forwarder too (its static routes to the client subnets), so every connection
//! needs both directions forwarded, with correct checksums, and each connection's packets must
//! keep to one backend.

mod lab_common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lab_common::*;
use serde_json::Value;

fn python() -> &'static str {
    if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// The client's side: `n` GETs of /id.txt from `host`, each from its own source port, each
/// bounded by 5 s. Prints one JSON list of [body, seconds].
const CLIENT: &str = r#"
import http.client, json, socket, sys, time
host, src, n, base = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
out = []
for i in range(n):
    t = time.monotonic()
    c = http.client.HTTPConnection(host, 8080, timeout=5, source_address=(src, base + i))
    c.request("GET", "/id.txt")
    r = c.getresponse()
    body = r.read().decode()
    c.close()
    out.append([r.status, body, time.monotonic() - t])
print(json.dumps(out))
"#;

#[test]
fn http_connections_to_the_vip_succeed_over_ipv4_and_ipv6() {
    let lab = Lab::up("lt", 4);
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = dir.path().join("ctl.sock");
    let cfg = write(dir.path(), "c.toml", &config(&ConfigOpts::default(), &ctl));
    let fw = Forwarder::start(&lab.fw(), &cfg, &ctl);

    // One server per backend, each serving its own name, listening on both families.
    let mut servers = Vec::new();
    for i in 1..=lab.backends {
        let root = dir.path().join(format!("www{i}"));
        std::fs::create_dir(&root).expect("mkdir");
        std::fs::write(root.join("id.txt"), format!("b{i}")).expect("write id");
        let child = Command::new("ip")
            .args(["netns", "exec", &lab.b(i), python(), "-m", "http.server"])
            .args(["--bind", "::", "--directory"])
            .arg(&root)
            .arg("8080")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn http.server");
        servers.push(Proc(child));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for i in 1..=lab.backends {
        loop {
            let out = lab.sh(&lab.b(i), &["ss", "-Hltn", "sport = :8080"]);
            if !out.trim().is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "no server in backend {i}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    for (host, src, base) in [
        (VIP4, "198.18.0.1", 40000),
        (VIP6, lab.env("LAB_CL_IP6"), 41000),
    ] {
        let out = Command::new("timeout")
            .args([
                "60",
                "ip",
                "netns",
                "exec",
                &lab.cl(),
                python(),
                "-c",
                CLIENT,
            ])
            .args([host, src, "20", &base.to_string()])
            .output()
            .expect("run client");
        assert!(
            out.status.success(),
            "GETs to {host} failed: {}\nforwarder log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            fw.log()
        );
        let results: Value = serde_json::from_slice(&out.stdout).expect("client JSON");
        let results = results.as_array().expect("list");
        assert_eq!(results.len(), 20);
        let mut served = BTreeSet::new();
        for r in results {
            assert_eq!(r[0], 200, "{r}");
            let body = r[1].as_str().expect("body");
            assert!(
                (1..=lab.backends).any(|i| body == format!("b{i}")),
                "unexpected body {body:?}"
            );
            assert!(r[2].as_f64().expect("seconds") < 5.0, "{r}");
            served.insert(body.to_owned());
        }
        // 20 connections from distinct source ports over four backends: one backend taking
        // them all would mean the flows are not spread (chance 4^-19 if they were).
        assert!(served.len() >= 2, "{host}: all served by {served:?}");
    }

    drop(servers);
    let stopped = fw.stop();
    assert!(stopped.status.success(), "{stopped:?}");
    let counters: Value = serde_json::from_str(&stopped.stdout).expect("counters");
    assert_eq!(counters["drops"]["bad_ipv4_checksum"], 0, "{counters}");
}
