// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
//
// ecmpfwd's XDP program: steers transit traffic into the AF_XDP socket bound to the receiving
// queue and leaves everything the host itself needs (ARP, neighbour discovery, link-scope and
// multicast traffic, packets to the host's own addresses) to the kernel.
//
// Every header read is preceded by a check against data_end: the verifier rejects the program
// otherwise, and a runt frame must fall back to the kernel rather than be misparsed.
//
// VLAN tags are followed as ecmpfwd's parser (ecmp_wire::parse) follows them: up to two, each
// announced by 0x8100 or 0x88a8 in either position (802.1ad S-tag + 802.1Q C-tag, but also
// 802.1Q-in-802.1Q). Whatever the parser takes as IP is redirected, so it is forwarded or
// counted by its drop reason, not left to a kernel with no VLAN device for it. A frame that still
// names a TPID after two tags is not IP to either side and goes to the kernel (pass_not_ip). The
// io tests (xdp_program.rs) check this agreement against the parser for every TPID combination.

#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "headers.h"

#define MAX_VLAN_DEPTH 2
#define IPPROTO_ICMPV6_ 58

// Indices of the per-CPU counters; the Rust side (xdp::program) mirrors these in XdpCounter.
enum counter {
	CNT_REDIRECTED = 0,
	CNT_PASS_NOT_IP = 1,
	CNT_PASS_NEIGHBOUR = 2,
	CNT_PASS_HOST = 3,
	CNT_PASS_LINK_SCOPE = 4,
	CNT_PASS_NO_SOCKET = 5,
	CNT_PASS_MALFORMED = 6,
	CNT_MAX = 7,
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

// Keys are addresses in network byte order; the value is unused (presence is what matters).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u8);
} pass_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct ipv6_addr);
	__type(value, __u8);
} pass_v6 SEC(".maps");

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

static __always_inline int is_tpid(__u16 proto)
{
	return proto == ETH_P_8021Q || proto == ETH_P_8021AD;
}

static __always_inline int v4_link_scope(__be32 daddr)
{
	__u32 a = bpf_ntohl(daddr);

	return (a & 0xffff0000) == 0xa9fe0000 /* 169.254/16 */
	       || (a & 0xf0000000) == 0xe0000000 /* 224/4 */
	       || a == 0xffffffff;
}

static __always_inline int v6_link_scope(const struct ipv6_addr *a)
{
	return a->b[0] == 0xff /* ff00::/8 */
	       || (a->b[0] == 0xfe && (a->b[1] & 0xc0) == 0x80); /* fe80::/10 */
}

SEC("xdp")
int ecmpfwd_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct eth_hdr *eth = data;
	void *l3;
	__u16 proto;

	if ((void *)(eth + 1) > data_end)
		return count(CNT_PASS_MALFORMED, XDP_PASS);
	proto = bpf_ntohs(eth->proto);
	l3 = eth + 1;
	// Unrolled, so each path has constant header offsets for the verifier to check.
#pragma unroll
	for (int depth = 0; depth < MAX_VLAN_DEPTH; depth++) {
		struct vlan_tag *tag = l3;

		if (!is_tpid(proto))
			break;
		if ((void *)(tag + 1) > data_end)
			return count(CNT_PASS_MALFORMED, XDP_PASS);
		proto = bpf_ntohs(tag->proto);
		l3 = tag + 1;
	}

	if (proto == ETH_P_IPV4) {
		struct ipv4_hdr *ip = l3;

		if ((void *)(ip + 1) > data_end)
			return count(CNT_PASS_MALFORMED, XDP_PASS);
		if (v4_link_scope(ip->daddr))
			return count(CNT_PASS_LINK_SCOPE, XDP_PASS);
		if (bpf_map_lookup_elem(&pass_v4, &ip->daddr))
			return count(CNT_PASS_HOST, XDP_PASS);
	} else if (proto == ETH_P_IPV6) {
		struct ipv6_hdr *ip6 = l3;

		if ((void *)(ip6 + 1) > data_end)
			return count(CNT_PASS_MALFORMED, XDP_PASS);
		if (ip6->nexthdr == IPPROTO_ICMPV6_) {
			__u8 *type = (__u8 *)(ip6 + 1);

			if ((void *)(type + 1) > data_end)
				return count(CNT_PASS_MALFORMED, XDP_PASS);
			// Router solicitation/advertisement, neighbour solicitation/advertisement,
			// redirect: the host's neighbour table must see them whatever the address.
			if (*type >= 133 && *type <= 137)
				return count(CNT_PASS_NEIGHBOUR, XDP_PASS);
		}
		if (v6_link_scope(&ip6->daddr))
			return count(CNT_PASS_LINK_SCOPE, XDP_PASS);
		if (bpf_map_lookup_elem(&pass_v6, &ip6->daddr))
			return count(CNT_PASS_HOST, XDP_PASS);
	} else {
		return count(CNT_PASS_NOT_IP, XDP_PASS);
	}

	// The low bits of the flags are the verdict when no socket is bound on this queue.
	if (bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS) == XDP_REDIRECT)
		return count(CNT_REDIRECTED, XDP_REDIRECT);
	return count(CNT_PASS_NO_SOCKET, XDP_PASS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
