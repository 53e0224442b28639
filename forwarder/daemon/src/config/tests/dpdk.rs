use super::*;

#[test]
fn dpdk_ports_and_the_eal_section() {
    let c = ok(
        "[[port]]\nname = \"d0\"\nkind = \"dpdk\"\ndevice = \"net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap\"\nmac = \"02:00:00:00:00:05\"\n\
         [[port]]\nname = \"d1\"\nkind = \"dpdk\"\ndevice = \"0000:3b:00.1\"\nqueues = 2\nmac = \"02:00:00:00:00:06\"\n\
         [[worker]]\ncore = 1\nports = [\"d0\", \"d1:0\"]\n\
         [[worker]]\ncore = 2\nports = [\"d1:1\"]\n\
         [dpdk]\ncores = \"0,3-4\"\nmemory = 1024\nno_huge = true\nfile_prefix = \"lab.1\"\nargs = [\"--vdev\", \"net_null0\"]\n",
    );
    assert_eq!(
        c.ports[2].kind,
        PortKind::Dpdk {
            device: "net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap".into(),
            queues: 1
        }
    );
    assert_eq!(c.ports[3].queues(), 2);
    assert_eq!(c.ports[2].addresses, Some(vec![]), "none unless given");
    assert_eq!(
        c.dpdk.eal_args(),
        [
            "-l",
            "0,3-4",
            "-m",
            "1024",
            "--file-prefix",
            "lab.1",
            "--no-huge",
            "--vdev",
            "net_null0"
        ]
    );
}

#[test]
fn dpdk_section_defaults() {
    let c = ok("");
    assert_eq!(c.dpdk, DpdkSpec::defaults("t"));
    assert_eq!(c.dpdk.file_prefix, "ecmpfwd-t");
    assert_eq!(c.dpdk.memory_mb, DEFAULT_DPDK_MEMORY_MB);
    assert!(!c.dpdk.no_huge);
    assert!(!c.dpdk.eal_args().iter().any(|a| a == "--no-huge"));
}

#[test]
fn dpdk_errors_name_file_line_and_key() {
    fails(
        "[[port]]\nname = \"d0\"\nkind = \"dpdk\" #<\nmac = \"02:00:00:00:00:05\"\n",
        "port[2].device",
        "a dpdk port needs `device`",
    );
    fails(
        "[[port]]\nname = \"d0\"\nkind = \"dpdk\"\ndevice = \"net_null0 x\" #<\nmac = \"02:00:00:00:00:05\"\n",
        "port[2].device",
        "invalid DPDK device",
    );
    fails(
        "[[port]]\nname = \"d0\"\nkind = \"dpdk\"\ndevice = \"net_null0\"\ninterface = \"eth0\" #<\nmac = \"02:00:00:00:00:05\"\n",
        "port[2].interface",
        "not used by kind = \"dpdk\"",
    );
    fails(
        "[[port]]\nname = \"d0\"\nkind = \"dpdk\"\ndevice = \"net_null0\"\nqueues = 0 #<\nmac = \"02:00:00:00:00:05\"\n",
        "port[2].queues",
        "at least 1",
    );
    fails(
        "[[port]] #<\nname = \"d0\"\nkind = \"dpdk\"\ndevice = \"net_null0\"\n",
        "port[2].mac",
        "a dpdk port needs one",
    );
    fails(
        "[[port]]\nname = \"p0\"\nkind = \"pcap\"\noutput = \"o.pcap\"\ndevice = \"net_null0\" #<\nmac = \"02:00:00:00:00:05\"\n",
        "port[2].device",
        "not used by kind = \"pcap\"",
    );
    fails(
        "[[port]]\nname = \"p0\"\nkind = \"pcap\"\noutput = \"o.pcap\"\nqueues = 2 #<\nmac = \"02:00:00:00:00:05\"\n",
        "port[2].queues",
        "not used by kind = \"pcap\"",
    );
    fails(
        "[[port]]\nname = \"d0\"\nkind = \"dpdk\"\ndevice = \"net_null0\"\nqueues = 2\nmac = \"02:00:00:00:00:05\"\n\
         [[worker]]\ncore = 1\nports = [\"d0\"] #<\n",
        "worker[1].ports[0]",
        "has 2 queues; name one",
    );
    fails(
        "[dpdk]\ncores = \"0-\" #<\n",
        "dpdk.cores",
        "invalid core list",
    );
    fails("[dpdk]\nmemory = 8 #<\n", "dpdk.memory", "outside 64..=");
    fails(
        "[dpdk]\nfile_prefix = \"../x\" #<\n",
        "dpdk.file_prefix",
        "invalid file prefix",
    );
    fails(
        "[dpdk]\nargs = [\"--vdev\",\n  \"\"] #<\n",
        "dpdk.args[1]",
        "non-empty",
    );
    fails("[dpdk]\nhuge = true #<\n", "dpdk.huge", "unknown field");
}
