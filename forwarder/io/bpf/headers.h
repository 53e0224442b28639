// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
//
// What the XDP programs (redirect, sink, fib) share: the header layouts they read, the
// ethertypes, and the per-CPU counter bump each program's `counters` map is read through.
// Each program defines its own `counters` array (its own indices) before including the
// COUNT_HELPER part, so the Rust side reads every program's map the same way.

#ifndef ECMPFWD_BPF_HEADERS_H
#define ECMPFWD_BPF_HEADERS_H

#include <linux/types.h>

#define ETH_P_IPV4 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8

struct eth_hdr {
	__u8 dst[6];
	__u8 src[6];
	__be16 proto;
};

struct vlan_tag {
	__be16 tci;
	__be16 proto;
};

struct ipv4_hdr {
	__u8 ver_ihl;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag;
	__u8 ttl;
	__u8 protocol;
	__be16 check;
	__be32 saddr;
	__be32 daddr;
};

struct ipv6_addr {
	__u8 b[16];
};

struct ipv6_hdr {
	__be32 ver_tc_flow;
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	struct ipv6_addr saddr;
	struct ipv6_addr daddr;
};

// Adds `n` to slot `idx` of the including program's per-CPU `counters` array.
#define COUNTER_ADD(idx, n)                                         \
	do {                                                        \
		__u32 key_ = (idx);                                 \
		__u64 *c_ = bpf_map_lookup_elem(&counters, &key_); \
		if (c_)                                             \
			*c_ += (n);                                 \
	} while (0)

#endif
