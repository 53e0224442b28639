// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
//
// The in-kernel XDP baseline the benchmarks put beside ecmpfwd (the class of Katran's and
// Cilium's XDP load balancers): each IPv4/IPv6 packet is looked up in the kernel's own FIB with
// bpf_fib_lookup, which follows multipath routes and nexthop groups, resilient ones included,
// hashing the L4 ports it is given as fib_multipath_hash_policy=1 does; on success the TTL or
// hop limit is decremented (IPv4 checksum updated incrementally, RFC 1624), the MACs are
// rewritten from the lookup's neighbour entry, and the frame is redirected to the egress device
// in the driver. Anything else (no route, no neighbour yet, TTL running out, fragments of
// unknown ports, not IP) goes to the kernel's stack, counted by reason. It keeps no per-flow
// state: when a hop fails, only what the kernel's group does protects established flows.
//
// Every read is preceded by a check against data_end. Needs forwarding enabled on the ingress
// device (the lookup refuses otherwise, counted as no_route).

#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "headers.h"

#define AF_INET 2
#define AF_INET6 10
#define PROTO_TCP 6
#define PROTO_UDP 17

// Indices of the per-CPU counters; the Rust side (xdp::fib) mirrors these.
enum counter {
	CNT_REDIRECTED = 0,
	CNT_PASS_NOT_IP = 1,
	CNT_PASS_NO_ROUTE = 2,
	CNT_PASS_TTL = 3,
	CNT_PASS_MALFORMED = 4,
	CNT_MAX = 5,
};

struct ports {
	__be16 sport;
	__be16 dport;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline int count(__u32 idx, int verdict)
{
	COUNTER_ADD(idx, 1);
	return verdict;
}

// The L4 ports at `l4` for TCP and UDP (zeros for other protocols and for non-first
// fragments, which carry none); -1 when the header is cut short.
static __always_inline int l4_ports(void *l4, void *end, __u8 proto, int first_fragment,
				    struct bpf_fib_lookup *p)
{
	struct ports *ports = l4;

	p->l4_protocol = proto;
	if ((proto != PROTO_TCP && proto != PROTO_UDP) || !first_fragment)
		return 0;
	if ((void *)(ports + 1) > end)
		return -1;
	p->sport = ports->sport;
	p->dport = ports->dport;
	return 0;
}

// TTL minus one with the checksum fixed up incrementally: the TTL is the high byte of its
// 16-bit word, so the one's complement sum drops by 0x0100.
static __always_inline void decrement_ttl(struct ipv4_hdr *ip)
{
	__u32 sum = (__u32)ip->check + (__u32)bpf_htons(0x0100);

	ip->check = (__be16)(sum + (sum >= 0xffff));
	ip->ttl--;
}

static __always_inline int redirect(struct eth_hdr *eth, struct bpf_fib_lookup *p)
{
	__builtin_memcpy(eth->dst, p->dmac, 6);
	__builtin_memcpy(eth->src, p->smac, 6);
	count(CNT_REDIRECTED, 0);
	return bpf_redirect(p->ifindex, 0);
}

SEC("xdp")
int ecmpfwd_xdp_fib(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct eth_hdr *eth = data;
	struct bpf_fib_lookup p = {};
	__u16 proto;

	if ((void *)(eth + 1) > end)
		return count(CNT_PASS_MALFORMED, XDP_PASS);
	proto = bpf_ntohs(eth->proto);
	p.ifindex = ctx->ingress_ifindex;

	if (proto == ETH_P_IPV4) {
		struct ipv4_hdr *ip = (void *)(eth + 1);
		__u32 ihl;

		if ((void *)(ip + 1) > end)
			return count(CNT_PASS_MALFORMED, XDP_PASS);
		ihl = ip->ver_ihl & 0x0f;
		if (ihl < 5)
			return count(CNT_PASS_MALFORMED, XDP_PASS);
		if (ip->ttl <= 1)
			return count(CNT_PASS_TTL, XDP_PASS);
		// Offset zero: the first (or only) fragment, the one with the ports.
		if (l4_ports((void *)ip + ihl * 4, end, ip->protocol,
			     (ip->frag & bpf_htons(0x1fff)) == 0, &p) < 0)
			return count(CNT_PASS_MALFORMED, XDP_PASS);
		p.family = AF_INET;
		p.tos = ip->tos;
		p.tot_len = bpf_ntohs(ip->tot_len);
		p.ipv4_src = ip->saddr;
		p.ipv4_dst = ip->daddr;
		if (bpf_fib_lookup(ctx, &p, sizeof(p), 0) != BPF_FIB_LKUP_RET_SUCCESS)
			return count(CNT_PASS_NO_ROUTE, XDP_PASS);
		decrement_ttl(ip);
		return redirect(eth, &p);
	}
	if (proto == ETH_P_IPV6) {
		struct ipv6_hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end)
			return count(CNT_PASS_MALFORMED, XDP_PASS);
		if (ip6->hop_limit <= 1)
			return count(CNT_PASS_TTL, XDP_PASS);
		if (l4_ports(ip6 + 1, end, ip6->nexthdr, 1, &p) < 0)
			return count(CNT_PASS_MALFORMED, XDP_PASS);
		p.family = AF_INET6;
		p.flowinfo = ip6->ver_tc_flow & bpf_htonl(0x0fffffff);
		p.tot_len = bpf_ntohs(ip6->payload_len);
		__builtin_memcpy(p.ipv6_src, &ip6->saddr, 16);
		__builtin_memcpy(p.ipv6_dst, &ip6->daddr, 16);
		if (bpf_fib_lookup(ctx, &p, sizeof(p), 0) != BPF_FIB_LKUP_RET_SUCCESS)
			return count(CNT_PASS_NO_ROUTE, XDP_PASS);
		ip6->hop_limit--;
		return redirect(eth, &p);
	}
	return count(CNT_PASS_NOT_IP, XDP_PASS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
