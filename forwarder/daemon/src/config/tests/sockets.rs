use super::*;

#[test]
fn control_socket() {
    let c = ok("");
    assert_eq!((c.control.as_ref(), c.feed.as_ref()), (None, None));
    let c = ok("[control]\nsocket = \"ctl.sock\"\n");
    assert_eq!(
        c.control,
        Some(ControlSpec {
            socket: "/etc/ecmpfwd/ctl.sock".into(),
            mode: 0o660,
            group: None,
            allowed_uids: vec![],
            allowed_gids: vec![],
            max_clients: 256,
            line: 17,
        })
    );
    let c = ok(
        "\n[control]\nsocket = \"/run/x/ctl.sock\"\nmode = 0o600\ngroup = 4321\nallowed_uids = [1000, 0]\nallowed_gids = [27]\nmax_clients = 4\n",
    );
    let ctl = c.control.unwrap();
    assert_eq!(ctl.socket, Path::new("/run/x/ctl.sock"));
    assert_eq!(
        (ctl.mode, ctl.group, ctl.max_clients, ctl.line),
        (0o600, Some(4321), 4, 18)
    );
    assert_eq!(
        (ctl.allowed_uids, ctl.allowed_gids),
        (vec![1000, 0], vec![27])
    );
    let c = ok("[control]\nsocket = \"/s\"\ngroup = \"4321\"\n");
    assert_eq!(
        c.control.unwrap().group,
        Some(4321),
        "a string of digits is a gid"
    );
}

#[test]
fn control_socket_errors() {
    fails_whole(
        "[instance]\nname = \"t\"\ncontrol_socket = \"/run/x.sock\" #<\n",
        "instance.control_socket",
        "moved to [control] socket",
    );
    fails(
        "[control] #<\nmode = 0o600\n",
        "control.socket",
        "missing field `socket`",
    );
    fails(
        "[control]\nsocket = \"\" #<\n",
        "control.socket",
        "empty path",
    );
    fails(
        &format!("[control]\nsocket = \"/{}\" #<\n", "s".repeat(107)),
        "control.socket",
        "at most 107",
    );
    fails(
        "[control]\nsocket = \"/s\"\nmode = 0o1777 #<\n",
        "control.mode",
        "mode 0o1777 sets bits beyond 0o777",
    );
    fails(
        "[control]\nsocket = \"/s\"\nmode = -1 #<\n",
        "control.mode",
        "not permission bits",
    );
    fails(
        "[control]\nsocket = \"/s\"\nmode = \"660\" #<\n",
        "control.mode",
        "invalid type",
    );
    fails(
        "[control]\nsocket = \"/s\"\ngroup = \"no-such-group-ecmpfwd\" #<\n",
        "control.group",
        "no group named \"no-such-group-ecmpfwd\" in /etc/group",
    );
    fails(
        "[control]\nsocket = \"/s\"\ngroup = \"a b\" #<\n",
        "control.group",
        "invalid group name",
    );
    fails(
        "[control]\nsocket = \"/s\"\ngroup = 4294967296 #<\n",
        "control.group",
        "outside 0..=4294967295",
    );
    fails(
        "[control]\nsocket = \"/s\"\nallowed_uids = [0, 5,\n  5] #<\n",
        "control.allowed_uids[2]",
        "5 is listed twice",
    );
    fails(
        "[control]\nsocket = \"/s\"\nallowed_gids = [-3] #<\n",
        "control.allowed_gids[0]",
        "invalid value",
    );
    fails(
        "[control]\nsocket = \"/s\"\nmax_clients = 0 #<\n",
        "control.max_clients",
        "at least 1",
    );
    fails(
        "[control]\nsocket = \"/s\"\nbacklog = 5 #<\n",
        "control.backlog",
        "unknown field `backlog`",
    );
}

#[test]
fn groups_by_name() {
    let text = "# comment\nroot:x:0:\nwheel:x:10:alice,bob\nbad:x:oops:\nlab::4242:\n";
    assert_eq!(gid_in_group_file(text, "root"), Some(0));
    assert_eq!(gid_in_group_file(text, "wheel"), Some(10));
    assert_eq!(gid_in_group_file(text, "lab"), Some(4242));
    assert_eq!(gid_in_group_file(text, "bad"), None);
    assert_eq!(gid_in_group_file(text, "whee"), None);
    assert_eq!(gid_in_group_file(text, "# comment"), None);
    // Every Linux system has a root group with gid 0.
    let c = ok("[feed]\nsocket = \"/f\"\ngroup = \"root\"\n");
    assert_eq!(c.feed.unwrap().group, Some(0));
}

#[test]
fn feed_socket() {
    let c = ok("[feed]\nsocket = \"feed.sock\"\n");
    assert_eq!(
        c.feed,
        Some(FeedSpec {
            socket: "/etc/ecmpfwd/feed.sock".into(),
            mode: 0o660,
            group: None,
            allowed_uids: vec![],
            allowed_gids: vec![],
            max_line: 1 << 20,
            batch_window: Duration::ZERO,
            stale_time: Duration::ZERO,
            refresh_timeout: Duration::from_secs(30),
            startup_hold: Duration::from_secs(2),
            line: 17,
        })
    );
    let c = ok(
        "[feed]\nsocket = \"/f\"\nmode = 0o640\ngroup = 7\nallowed_uids = [101]\nallowed_gids = [102, 103]\nmax_line = 65536\nbatch_window = \"0s\"\nstale_time = \"90s\"\nrefresh_timeout = \"1m\"\nstartup_hold = \"0s\"\n\
         [control]\nsocket = \"/c\"\n",
    );
    let f = c.feed.unwrap();
    assert_eq!((f.mode, f.group, f.max_line), (0o640, Some(7), 65536));
    assert_eq!(
        (f.allowed_uids, f.allowed_gids),
        (vec![101], vec![102, 103])
    );
    assert_eq!(
        (
            f.batch_window,
            f.stale_time,
            f.refresh_timeout,
            f.startup_hold
        ),
        (
            Duration::ZERO,
            Duration::from_secs(90),
            Duration::from_secs(60),
            Duration::ZERO
        )
    );
}

#[test]
fn feed_socket_errors() {
    fails(
        "[control]\nsocket = \"/run/s\"\n[feed]\nsocket = \"/run/s\" #<\n",
        "feed.socket",
        "also the control socket (line 17)",
    );
    fails(
        "[feed] #<\nmax_line = 2048\n",
        "feed.socket",
        "missing field `socket`",
    );
    fails(
        "[feed]\nsocket = \"/f\"\nmax_line = 100 #<\n",
        "feed.max_line",
        "outside 1024..=1073741824",
    );
    fails(
        "[feed]\nsocket = \"/f\"\nrefresh_timeout = \"0s\" #<\n",
        "feed.refresh_timeout",
        "greater than zero",
    );
    fails(
        "[feed]\nsocket = \"/f\"\nbatch_window = \"2 ms\" #<\n",
        "feed.batch_window",
        "invalid duration",
    );
    fails(
        "[feed]\nsocket = \"/f\"\nstartup_hold = \"2 s\" #<\n",
        "feed.startup_hold",
        "invalid duration",
    );
    fails(
        "[feed]\nsocket = \"/f\"\nstale_time = 90 #<\n",
        "feed.stale_time",
        "invalid type",
    );
    fails(
        "[feed]\nsocket = \"/f\"\nmode = 0o4660 #<\n",
        "feed.mode",
        "beyond 0o777",
    );
    fails(
        "[feed]\nsocket = \"/f\"\ngroup = \"no-such-group-ecmpfwd\" #<\n",
        "feed.group",
        "no group named",
    );
    fails(
        "[feed]\nsocket = \"/f\"\nallowed_uids = [1, 1] #<\n",
        "feed.allowed_uids[1]",
        "listed twice",
    );
    fails(
        "[feed]\nsocket = \"/f\"\nmax_clients = 3 #<\n",
        "feed.max_clients",
        "unknown field `max_clients`",
    );
}

#[test]
fn metrics_listener() {
    assert_eq!(ok("").metrics, None);
    assert_eq!(ok("[metrics]\n").metrics, None);
    let c = ok("\n[metrics]\nlisten = \"127.0.0.1:9433\"\n");
    assert_eq!(
        c.metrics,
        Some(MetricsSpec {
            listen: "127.0.0.1:9433".parse().unwrap(),
            line: 19,
        })
    );
    let c = ok("[metrics]\nlisten = \"[::1]:9100\"\n");
    assert_eq!(c.metrics.unwrap().listen, "[::1]:9100".parse().unwrap());
    fails(
        "[metrics]\nlisten = \"localhost:9433\" #<\n",
        "metrics.listen",
        "\"localhost:9433\" is not an IP address and port",
    );
    fails(
        "[metrics]\nlisten = \"127.0.0.1\" #<\n",
        "metrics.listen",
        "is not an IP address and port",
    );
    fails(
        "[metrics]\nlisten = \"127.0.0.1:0\" #<\n",
        "metrics.listen",
        "port 0",
    );
    fails(
        "[metrics]\nlisten = 9433 #<\n",
        "metrics.listen",
        "invalid type",
    );
    fails(
        "[metrics]\nport = 9433 #<\n",
        "metrics.port",
        "unknown field `port`",
    );
}
