//! The workers' classic BPF interpreter against libpcap's own (`pcap_offline_filter`), over
//! tcpdump expressions compiled by libpcap and frames built to hit their fields (VLAN tags,
//! IPv4 with options, IPv6, TCP/UDP/ICMP, truncation anywhere).

use ecmp_dataplane::capture::{BpfInsn, Filter};
use ecmp_io::pcap_filter::{self, BpfInsn as PcapInsn};
use proptest::prelude::*;

const EXPRESSIONS: &[&str] = &[
    "ip",
    "ip6",
    "arp",
    "udp",
    "tcp port 80",
    "udp dst port 53",
    "icmp",
    "ip[8] == 1",
    "host 10.0.0.1",
    "net 10.0.0.0/8 and not tcp",
    "src host 172.16.0.1 or dst net 192.0.2.0/24",
    "ip6 and tcp",
    "ip6 and udp port 4789",
    "vlan and udp",
    "vlan 100 and ip",
    "len > 100",
    "greater 64",
    "less 60",
    "ether src 02:cc:00:00:00:01",
    "ether broadcast",
    "ip[2:2] > 50",
    "tcp[tcpflags] & tcp-syn != 0",
    "portrange 1000-2000",
    "ip and ip[6] & 0x20 != 0",
    "ip proto 47",
    "udp[8:4] == 0x08000000",
    "ip multicast",
];

fn ours(insns: &[PcapInsn]) -> Filter {
    Filter::new(
        insns
            .iter()
            .map(|i| BpfInsn {
                code: i.code,
                jt: i.jt,
                jf: i.jf,
                k: i.k,
            })
            .collect(),
    )
    .expect("libpcap's programs validate")
}

/// A frame shaped like traffic (so the filters' branches are taken), cut at `cut`.
fn frame() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(vec![0x0800u16, 0x86dd, 0x8100, 0x0806, 0x1234]),
        prop::sample::select(vec![0x0800u16, 0x86dd]),
        prop::sample::select(vec![100u16, 200]),
        prop::sample::select(vec![6u8, 17, 1, 47, 58]),
        prop::sample::select(vec![4u8, 5, 6, 15]),
        prop::sample::select(vec![
            [10u8, 0, 0, 1],
            [192, 0, 2, 9],
            [224, 0, 0, 5],
            [172, 16, 0, 1],
        ]),
        prop::collection::vec(any::<u8>(), 120),
        prop::sample::select(vec![53u16, 80, 1500, 4789, 9999]),
        0usize..220,
    )
        .prop_map(|(et, inner, vid, proto, ihl, addr, noise, port, cut)| {
            let mut f = Vec::new();
            f.extend_from_slice(&[0x02, 0xaa, 0, 0, 0, 0]);
            f.extend_from_slice(&[0x02, 0xcc, 0, 0, 0, 1]);
            f.extend_from_slice(&et.to_be_bytes());
            let l3 = if et == 0x8100 {
                f.extend_from_slice(&vid.to_be_bytes());
                f.extend_from_slice(&inner.to_be_bytes());
                inner
            } else {
                et
            };
            match l3 {
                0x0800 => {
                    let mut h = noise[..usize::from(ihl.max(5)) * 4].to_vec();
                    h[0] = 0x40 | ihl;
                    h[9] = proto;
                    h[12..16].copy_from_slice(&[172, 16, 0, 1]);
                    h[16..20].copy_from_slice(&addr);
                    f.extend_from_slice(&h);
                }
                0x86dd => {
                    let mut h = noise[..40].to_vec();
                    h[0] = 0x60;
                    h[6] = proto;
                    f.extend_from_slice(&h);
                }
                _ => {}
            }
            f.extend_from_slice(&port.to_be_bytes());
            f.extend_from_slice(&port.wrapping_add(1).to_be_bytes());
            f.extend_from_slice(&noise[60..]);
            f.truncate(cut);
            f
        })
}

#[test]
fn every_expression_compiles_to_a_program_the_workers_accept() {
    for e in EXPRESSIONS {
        let insns = pcap_filter::compile(e).unwrap_or_else(|err| panic!("{e}: {err}"));
        ours(&insns);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_interpreter_agrees_with_libpcap(f in frame()) {
        for e in EXPRESSIONS {
            let insns = pcap_filter::compile(e).unwrap();
            let expected = pcap_filter::offline_filter(&insns, &f);
            prop_assert_eq!(ours(&insns).run(&f, f.len() as u32), expected, "{} on {:02x?}", e, f);
        }
    }

    #[test]
    fn random_bytes_agree_too(f in prop::collection::vec(any::<u8>(), 0..128)) {
        for e in EXPRESSIONS {
            let insns = pcap_filter::compile(e).unwrap();
            prop_assert_eq!(
                ours(&insns).run(&f, f.len() as u32),
                pcap_filter::offline_filter(&insns, &f)
            );
        }
    }
}
