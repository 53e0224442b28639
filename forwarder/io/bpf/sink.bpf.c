// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
//
// The benchmarks' cheap sink: counts and drops, in XDP, the packets ecmpfwd-pktgen tagged, and
// leaves everything else (ARP, neighbour discovery, the kernel's own chatter) to the kernel,
// counted apart. A backend with this program costs the sender's core one XDP run per packet,
// instead of a trip through the backend's IP and UDP stack (and an ICMP port unreachable back),
// which is what a throughput run must not measure. Interface counters cannot stand in for it:
// they also count ND/MLD.
//
// A packet is the generator's when its L4 payload starts with the tag magic "EFWG", found as
// the generator writes it (TCP or UDP over IPv4 or IPv6, behind up to two VLAN tags) or one
// tunnel deep, as ecmpfwd's encapsulating groups send it: VXLAN (UDP port 4789, an inner
// Ethernet frame), IP-in-IP and IPv6-in-IP (protocols 4 and 41) and GRE (protocol 47, inner IP,
// optional checksum/key/sequence words). GUE and MPLS-over-UDP payloads are not looked into:
// their packets count as passed.
//
// Every read is preceded by a check against data_end (the verifier insists, and a runt frame
// must be passed, not misparsed).

#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "headers.h"

#define ETH_P_TEB 0x6558
#define PROTO_IPIP 4
#define PROTO_TCP 6
#define PROTO_UDP 17
#define PROTO_IPV6 41
#define PROTO_GRE 47
#define VXLAN_PORT 4789
// ecmp_pktgen::MAGIC, "EFWG".
#define TAG_MAGIC 0x45465747

// Indices of the per-CPU counters; the Rust side (xdp::sink) mirrors these.
enum counter {
	CNT_TAGGED = 0,
	CNT_TAGGED_BYTES = 1,
	CNT_PASSED = 2,
	CNT_MAX = 3,
};

struct udp_hdr {
	__be16 sport;
	__be16 dport;
	__be16 len;
	__be16 check;
};

struct tcp_hdr {
	__be16 sport;
	__be16 dport;
	__be32 seq;
	__be32 ack;
	__u8 off_res;
	__u8 flags;
	__be16 window;
	__be16 check;
	__be16 urg;
};

struct gre_hdr {
	__be16 flags;
	__be16 proto;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void add(__u32 idx, __u64 n)
{
	COUNTER_ADD(idx, n);
}

// Skips Ethernet and up to two VLAN tags; returns the L3 header (NULL when too short) and its
// ethertype in *proto.
static __always_inline void *skip_l2(void *eth_start, void *end, __u16 *proto)
{
	struct eth_hdr *eth = eth_start;
	void *l3;

	if ((void *)(eth + 1) > end)
		return NULL;
	*proto = bpf_ntohs(eth->proto);
	l3 = eth + 1;
#pragma unroll
	for (int depth = 0; depth < 2; depth++) {
		struct vlan_tag *tag = l3;

		if (*proto != ETH_P_8021Q && *proto != ETH_P_8021AD)
			break;
		if ((void *)(tag + 1) > end)
			return NULL;
		*proto = bpf_ntohs(tag->proto);
		l3 = tag + 1;
	}
	return l3;
}

static __always_inline int is_tag(void *payload, void *end)
{
	__be32 *magic = payload;

	return (void *)(magic + 1) <= end && *magic == bpf_htonl(TAG_MAGIC);
}

SEC("xdp")
int ecmpfwd_sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u16 proto = 0;
	void *l3 = skip_l2(data, end, &proto);

	if (!l3)
		goto pass;
	// The outer headers, then at most one tunnel's inner ones.
#pragma unroll
	for (int level = 0; level < 2; level++) {
		void *l4;
		__u8 l4proto;

		if (proto == ETH_P_IPV4) {
			struct ipv4_hdr *ip = l3;
			__u32 ihl;

			if ((void *)(ip + 1) > end)
				goto pass;
			ihl = ip->ver_ihl & 0x0f;
			if (ihl < 5)
				goto pass;
			l4 = l3 + ihl * 4;
			l4proto = ip->protocol;
		} else if (proto == ETH_P_IPV6) {
			struct ipv6_hdr *ip6 = l3;

			if ((void *)(ip6 + 1) > end)
				goto pass;
			l4 = ip6 + 1;
			l4proto = ip6->nexthdr;
		} else {
			goto pass;
		}

		if (l4proto == PROTO_UDP) {
			struct udp_hdr *udp = l4;

			if ((void *)(udp + 1) > end)
				goto pass;
			if (level == 0 && udp->dport == bpf_htons(VXLAN_PORT)) {
				// 8 bytes of VXLAN header, then the inner Ethernet frame.
				l3 = skip_l2((void *)(udp + 1) + 8, end, &proto);
				if (!l3)
					goto pass;
				continue;
			}
			if (is_tag(udp + 1, end))
				goto tagged;
			goto pass;
		}
		if (l4proto == PROTO_TCP) {
			struct tcp_hdr *tcp = l4;
			__u32 doff;

			if ((void *)(tcp + 1) > end)
				goto pass;
			doff = (tcp->off_res >> 4) * 4;
			if (doff < sizeof(*tcp))
				goto pass;
			if (is_tag(l4 + doff, end))
				goto tagged;
			goto pass;
		}
		if (level > 0)
			goto pass;
		if (l4proto == PROTO_IPIP || l4proto == PROTO_IPV6) {
			proto = l4proto == PROTO_IPIP ? ETH_P_IPV4 : ETH_P_IPV6;
			l3 = l4;
			continue;
		}
		if (l4proto == PROTO_GRE) {
			struct gre_hdr *gre = l4;
			__u16 flags;
			__u32 len = sizeof(*gre);

			if ((void *)(gre + 1) > end)
				goto pass;
			flags = bpf_ntohs(gre->flags);
			// Checksum (C), key (K) and sequence (S) each add a 4-byte word.
			len += (flags & 0x8000) ? 4 : 0;
			len += (flags & 0x2000) ? 4 : 0;
			len += (flags & 0x1000) ? 4 : 0;
			proto = bpf_ntohs(gre->proto);
			if (proto == ETH_P_TEB) {
				l3 = skip_l2(l4 + len, end, &proto);
				if (!l3)
					goto pass;
			} else {
				l3 = l4 + len;
			}
			continue;
		}
		goto pass;
	}
pass:
	add(CNT_PASSED, 1);
	return XDP_PASS;
tagged:
	add(CNT_TAGGED, 1);
	add(CNT_TAGGED_BYTES, (__u64)(end - data));
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
