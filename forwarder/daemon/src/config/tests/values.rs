use super::*;

#[test]
fn durations() {
    assert_eq!(parse_duration("300s"), Ok(Duration::from_secs(300)));
    assert_eq!(parse_duration("120ms"), Ok(Duration::from_millis(120)));
    assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
    assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
    assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    for bad in ["", "300", "s", "5 m", "1.5s", "-1s", "10d", "m5"] {
        assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
    }
    assert!(parse_duration("99999999999999999999h").is_err());
}

#[test]
fn macs() {
    let m: MacAddr = "02:00:00:00:00:01".parse().unwrap();
    assert_eq!(m.0, [2, 0, 0, 0, 0, 1]);
    assert_eq!(m.to_string(), "02:00:00:00:00:01");
    let m: MacAddr = "AB-bb-CC-dd-EE-ff".parse().unwrap();
    assert_eq!(m.0, [0xab, 0xbb, 0xcc, 0xdd, 0xee, 0xff]);
    assert!(m.is_multicast());
    for bad in [
        "02:00:00:00:00",
        "02:00:00:00:00:01:02",
        "2:0:0:0:0:1",
        "02:00:00:00:00:zz",
        "020000000001",
    ] {
        assert!(bad.parse::<MacAddr>().is_err(), "{bad:?} should be refused");
    }
}

#[test]
fn prefixes() {
    let p: Prefix = "192.0.2.10/32".parse().unwrap();
    assert_eq!(p.to_string(), "192.0.2.10/32");
    let p: Prefix = "2001:db8::/32".parse().unwrap();
    assert_eq!((p.addr, p.len), ("2001:db8::".parse().unwrap(), 32));
    let p: Prefix = "0.0.0.0/0".parse().unwrap();
    assert_eq!(p.len, 0);
    let p: Prefix = "2001:db8::1".parse().unwrap();
    assert_eq!(p.len, 128);
    let e = "192.0.2.1/24".parse::<Prefix>().unwrap_err();
    assert!(e.contains("did you mean 192.0.2.0/24"), "{e}");
    for bad in [
        "192.0.2.0/33",
        "2001:db8::/129",
        "192.0.2.0/",
        "192.0.2.0/+8",
        "bogus/8",
    ] {
        assert!(bad.parse::<Prefix>().is_err(), "{bad:?} should be refused");
    }
}

#[test]
fn every_masked_prefix_round_trips() {
    let addrs: [IpAddr; 2] = [
        "203.0.113.77".parse().unwrap(),
        "2001:db8:ffff:1234::77".parse().unwrap(),
    ];
    for addr in addrs {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        for len in 0..=max {
            let text = format!("{}/{len}", mask(addr, len));
            let p: Prefix = text.parse().unwrap();
            assert_eq!(p.to_string(), text);
            assert_eq!(mask(p.addr, p.len), p.addr);
            if len < max {
                let host = format!("{addr}/{len}");
                assert_eq!(
                    host.parse::<Prefix>().is_ok(),
                    mask(addr, len) == addr,
                    "{host}"
                );
            }
        }
    }
}

#[test]
fn derived_seeds_are_stable_distinct_and_nonzero() {
    let a = seed_from_name("fwd-a");
    assert_eq!(a, seed_from_name("fwd-a"));
    assert_ne!(a, seed_from_name("fwd-b"));
    assert_ne!(a, 0);
    assert_ne!(seed_from_name(""), 0);
}

#[test]
fn key_paths_follow_spans() {
    let text =
        "[instance]\nname = \"x\"\n\n[[port]]\nname = \"p0\"\n[[port]]\nname = \"p1\"\nmtu = 9\n";
    let doc = DeTable::parse(text).unwrap();
    let at = |needle: &str| {
        let start = text.find(needle).unwrap();
        key_path(doc.get_ref(), &(start..start + needle.len()))
    };
    assert_eq!(at("\"p1\"").as_deref(), Some("port[1].name"));
    assert_eq!(at("mtu").as_deref(), Some("port[1].mtu"));
    assert_eq!(at("9").as_deref(), Some("port[1].mtu"));
    assert_eq!(at("\"x\"").as_deref(), Some("instance.name"));
}

#[test]
fn lines_count_from_one() {
    let ctx = Ctx {
        origin: "t",
        text: "a\nb\nc",
    };
    assert_eq!(ctx.line(0), 1);
    assert_eq!(ctx.line(2), 2);
    assert_eq!(ctx.line(4), 3);
    assert_eq!(ctx.line(99), 3);
}

#[test]
fn error_display_is_file_line_key_message() {
    let e = ConfigError::Invalid {
        at: Location {
            origin: "configs/x.toml".into(),
            line: 14,
            key: "nexthop[2].port".into(),
        },
        message: "unknown port \"p9\"".into(),
    };
    assert_eq!(
        e.to_string(),
        "configs/x.toml:14: nexthop[2].port: unknown port \"p9\""
    );
    let e = ConfigError::Syntax {
        at: Location {
            origin: "x.toml".into(),
            line: 3,
            key: String::new(),
        },
        message: "unclosed table".into(),
    };
    assert_eq!(e.to_string(), "x.toml:3: unclosed table");
}

#[test]
fn memory_hugepages() {
    assert_eq!(ok("").memory.hugepages, ecmp_mem::HugePages::Auto);
    for (text, want) in [
        ("auto", ecmp_mem::HugePages::Auto),
        ("require", ecmp_mem::HugePages::Require),
        ("off", ecmp_mem::HugePages::Off),
    ] {
        let c = ok(&format!("[memory]\nhugepages = \"{text}\"\n"));
        assert_eq!(c.memory.hugepages, want, "{text}");
    }
    assert_eq!(ok("[memory]\n").memory.hugepages, ecmp_mem::HugePages::Auto);
    fails(
        "[memory]\nhugepages = \"always\" #<\n",
        "memory.hugepages",
        "unknown variant `always`, expected one of `auto`, `require`, `off`",
    );
    fails(
        "[memory]\nhugepages = true #<\n",
        "memory.hugepages",
        "wanted string",
    );
    fails(
        "[memory]\nhuge_pages = \"auto\" #<\n",
        "memory.huge_pages",
        "unknown field `huge_pages`",
    );
}
