// SPDX-License-Identifier: Apache-2.0
/*
 * The AFTR's XDP program: steers to the board's AF_XDP sockets only what the data plane
 * owns, and passes everything else to the kernel, so ARP, neighbour discovery,
 * management and the HA channel stay ordinary Linux.
 *
 * Owned by the data plane, while the board is active (`active[0] != 0`):
 *   - IPv6 to an AFTR endpoint (softwire packets, their fragments, ICMPv6 to the
 *     endpoint), except neighbour discovery and router messages (ICMPv6 133-137);
 *   - IPv4 to a pool address.
 * Either may come behind one 802.1Q or 802.1ad tag. A queue with no socket in `xsks`
 * passes its frames to the kernel (the XDP_PASS fallback of bpf_redirect_map).
 *
 * Built by dataplane/build.rs with clang (-target bpf); loaded by dataplane/src/io/xdp.rs.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

/* Keep in step with io/xdp.rs. */
#define MAX_QUEUES 64
#define MAX_ENDPOINTS 256
#define MAX_POOL_PREFIXES 8192

enum stat {
	STAT_REDIRECTED,   /* handed to a socket (or to the kernel if the queue had none) */
	STAT_NOT_OURS,     /* passed: not to an endpoint or a pool */
	STAT_STANDBY,      /* passed: ours, but the board is not active */
	STAT_ND,           /* passed: neighbour discovery to an endpoint */
	STAT_COUNT,
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENDPOINTS);
	__type(key, struct in6_addr);
	__type(value, __u32);
} endpoints SEC(".maps");

struct pool_key {
	__u32 prefixlen;
	__u32 addr; /* network order */
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, MAX_POOL_PREFIXES);
	__type(key, struct pool_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} pools SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} active SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

struct vlan_hdr {
	__be16 tci;
	__be16 proto;
};

static __always_inline int count(__u32 which, int action)
{
	__u64 *c = bpf_map_lookup_elem(&stats, &which);

	if (c)
		*c += 1;
	return action;
}

static __always_inline int steer(struct xdp_md *ctx)
{
	__u32 zero = 0;
	__u32 *on = bpf_map_lookup_elem(&active, &zero);

	if (!on || !*on)
		return count(STAT_STANDBY, XDP_PASS);
	count(STAT_REDIRECTED, 0);
	return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
}

SEC("xdp")
int aftr_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	void *l3;
	__be16 proto;

	if ((void *)(eth + 1) > end)
		return count(STAT_NOT_OURS, XDP_PASS);
	proto = eth->h_proto;
	l3 = eth + 1;
	/* One 802.1Q tag, as the data plane parses (802.1ad and QinQ stay with the kernel). */
	if (proto == bpf_htons(ETH_P_8021Q)) {
		struct vlan_hdr *tag = l3;

		if ((void *)(tag + 1) > end)
			return count(STAT_NOT_OURS, XDP_PASS);
		proto = tag->proto;
		l3 = tag + 1;
	}

	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;

		if ((void *)(ip6 + 1) > end)
			return count(STAT_NOT_OURS, XDP_PASS);
		if (!bpf_map_lookup_elem(&endpoints, &ip6->daddr))
			return count(STAT_NOT_OURS, XDP_PASS);
		if (ip6->nexthdr == IPPROTO_ICMPV6) {
			__u8 *type = (void *)(ip6 + 1);

			if ((void *)(type + 1) > end)
				return count(STAT_NOT_OURS, XDP_PASS);
			if (*type >= 133 && *type <= 137)
				return count(STAT_ND, XDP_PASS);
			/* The engine answers echo requests and translates errors (destination
			 * unreachable, packet too big, time exceeded); the rest is the kernel's. */
			if (*type != 128 && (*type < 1 || *type > 3))
				return count(STAT_NOT_OURS, XDP_PASS);
		}
		return steer(ctx);
	}

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;
		struct pool_key key = { .prefixlen = 32 };

		if ((void *)(ip + 1) > end)
			return count(STAT_NOT_OURS, XDP_PASS);
		key.addr = ip->daddr;
		if (!bpf_map_lookup_elem(&pools, &key))
			return count(STAT_NOT_OURS, XDP_PASS);
		return steer(ctx);
	}

	return count(STAT_NOT_OURS, XDP_PASS);
}

char LICENSE[] SEC("license") = "Apache-2.0";
