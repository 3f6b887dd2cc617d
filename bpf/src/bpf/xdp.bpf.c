// SPDX-License-Identifier: MIT OR Apache-2.0
//
// quicpro XDP steering: hands QUIC packets for our UDP ports to the AF_XDP
// socket bound to the queue they arrived on, and checks that the connection
// ID of short-header packets names the worker of that queue.
//
// Why "this queue" and not "the worker the CID names": an XSKMAP redirect
// only delivers to a socket bound to the same (device, queue) the packet
// came in on (the kernel compares xs->queue_id with rxq->queue_index and
// drops otherwise). So each worker owns one queue, issues CIDs carrying its
// queue number (quic_core::cid_gen, worker id at CID offset 1), and RSS
// keeps a 4-tuple on one queue.
//
// Decisions:
// - Long header (Initial, 0-RTT, Handshake, Retry-answered Initials): to
//   this queue's socket. The client-chosen DCID carries no worker id; the
//   4-tuple hash keeps a client's retransmitted Initials and its Handshake
//   packets on the same queue, hence the same worker.
// - Short header whose worker id byte matches the queue: to the socket
//   (counted "steered").
// - Short header naming another worker (a client whose address or port
//   changed, so RSS picked another queue): XDP_PASS, counted
//   "cid_mismatch". XDP cannot move it to another queue's socket; the kernel
//   UDP path delivers it to the SO_REUSEPORT group, where every AF_XDP worker
//   also keeps a UDP socket (and a SK_REUSEPORT program can steer by CID).
//   Delivering it to this queue's worker instead would make that worker
//   answer with a stateless reset for a CID it does not know, killing the
//   migrated connection.
// - Anything else (ARP, other protocols or ports, IP options, fragments,
//   IPv6 extension headers, truncated or malformed headers): XDP_PASS, so
//   the kernel handles it as if no program were attached.
//
// Written without libbpf's headers: only the UAPI headers are on the build
// machines, so the few helper declarations and map macros are spelled out.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) __typeof__(val) *name
#define ALWAYS_INLINE static inline __attribute__((always_inline))

// Helper numbers from enum bpf_func_id (include/uapi/linux/bpf.h).
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)51;

#define bswap16(x) __builtin_bswap16(x)
#define ETH_P_8021Q_BE 0x0081  // 0x8100 in network order, read as host u16
#define ETH_P_8021AD_BE 0xA888 // 0x88A8
#define ETH_P_IP_BE 0x0008
#define ETH_P_IPV6_BE 0xDD86
#define IP_MF_OFFSET_MASK 0xFF3F // htons(0x3FFF): More Fragments + offset

// Must match bpf/src/xdp.rs (Counter).
enum counter {
    C_STEERED_SHORT = 0,
    C_STEERED_LONG,
    C_CID_MISMATCH,
    C_PASSED_NOT_QUIC,   // not IPv4/IPv6 + UDP (ARP, ICMP, TCP...)
    C_PASSED_OTHER_PORT, // UDP to a port that is not ours
    C_MALFORMED_ETH,     // truncated Ethernet or VLAN header
    C_MALFORMED_IP,      // truncated IP header, bad version or IHL
    C_UNSUPPORTED_IP,    // IPv4 options or fragment, IPv6 extension header
    C_MALFORMED_UDP,     // truncated UDP header, bad length
    C_MALFORMED_QUIC,    // empty payload, short header shorter than a CID
    C_NO_SOCKET,         // no AF_XDP socket registered for this queue
    C_COUNT
};

// Connection IDs this server issues: 8 bytes, worker id at offset 1
// (RoutableCidGenerator::for_worker). A short header is 1 flags byte + DCID.
#define CID_LEN 8
#define CID_WORKER_OFFSET 1
#define MAX_QUEUES 64
#define MAX_PORTS 16

struct {
    __uint(type, BPF_MAP_TYPE_XSKMAP);
    __uint(max_entries, MAX_QUEUES);
    __type(key, __u32);
    __type(value, __u32);
} xsks_map SEC(".maps");

// UDP destination ports (host order) we serve.
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, MAX_PORTS);
    __type(key, __u16);
    __type(value, __u8);
} quic_ports SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, C_COUNT);
    __type(key, __u32);
    __type(value, __u64);
} counters SEC(".maps");

ALWAYS_INLINE int count(__u32 which, int verdict) {
    __u64 *c = bpf_map_lookup_elem(&counters, &which);
    if (c)
        *c += 1; // per-CPU slot: no other writer
    return verdict;
}

SEC("xdp")
int quicpro_xdp(struct xdp_md *ctx) {
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;

    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return count(C_MALFORMED_ETH, XDP_PASS);
    __u16 proto = eth->h_proto;
    void *l3 = eth + 1;
    if (proto == ETH_P_8021Q_BE || proto == ETH_P_8021AD_BE) {
        // One tag: 2 bytes TCI, 2 bytes inner EtherType.
        __u16 *tag = l3;
        if ((void *)(tag + 2) > data_end)
            return count(C_MALFORMED_ETH, XDP_PASS);
        proto = tag[1];
        l3 = tag + 2;
    }

    struct udphdr *udp;
    __u16 l3_payload_len;
    if (proto == ETH_P_IP_BE) {
        struct iphdr *ip = l3;
        if ((void *)(ip + 1) > data_end)
            return count(C_MALFORMED_IP, XDP_PASS);
        if (ip->version != 4 || ip->ihl < 5)
            return count(C_MALFORMED_IP, XDP_PASS);
        if (ip->protocol != IPPROTO_UDP)
            return count(C_PASSED_NOT_QUIC, XDP_PASS);
        if (ip->ihl != 5 || (ip->frag_off & IP_MF_OFFSET_MASK))
            return count(C_UNSUPPORTED_IP, XDP_PASS);
        __u16 tot = bswap16(ip->tot_len);
        if (tot < sizeof(*ip))
            return count(C_MALFORMED_IP, XDP_PASS);
        l3_payload_len = tot - sizeof(*ip);
        udp = (void *)(ip + 1);
    } else if (proto == ETH_P_IPV6_BE) {
        struct ipv6hdr *ip6 = l3;
        if ((void *)(ip6 + 1) > data_end)
            return count(C_MALFORMED_IP, XDP_PASS);
        if (ip6->version != 6)
            return count(C_MALFORMED_IP, XDP_PASS);
        if (ip6->nexthdr != IPPROTO_UDP) {
            // Extension headers are not walked; TCP, ICMPv6... are not ours.
            switch (ip6->nexthdr) {
            case 0: case 43: case 44: case 50: case 51: case 60: case 135:
                return count(C_UNSUPPORTED_IP, XDP_PASS);
            default:
                return count(C_PASSED_NOT_QUIC, XDP_PASS);
            }
        }
        l3_payload_len = bswap16(ip6->payload_len);
        udp = (void *)(ip6 + 1);
    } else {
        return count(C_PASSED_NOT_QUIC, XDP_PASS);
    }

    if ((void *)(udp + 1) > data_end)
        return count(C_MALFORMED_UDP, XDP_PASS);
    __u16 port = bswap16(udp->dest);
    if (!bpf_map_lookup_elem(&quic_ports, &port))
        return count(C_PASSED_OTHER_PORT, XDP_PASS);
    __u16 udp_len = bswap16(udp->len);
    // The UDP length must cover its header and fit in the IP payload, and
    // the frame must hold it (Ethernet padding may follow, never less).
    if (udp_len < sizeof(*udp) || udp_len > l3_payload_len ||
        (void *)udp + udp_len > data_end)
        return count(C_MALFORMED_UDP, XDP_PASS);

    __u8 *quic = (void *)(udp + 1);
    if ((void *)(quic + 1) > data_end || udp_len == sizeof(*udp))
        return count(C_MALFORMED_QUIC, XDP_PASS);

    __u32 queue = ctx->rx_queue_index;
    __u32 steered = C_STEERED_LONG;
    if (!(quic[0] & 0x80)) {
        // Short header (RFC 9000 §17.3.1): flags byte, then our DCID.
        if ((void *)(quic + 1 + CID_LEN) > data_end ||
            udp_len < sizeof(*udp) + 1 + CID_LEN)
            return count(C_MALFORMED_QUIC, XDP_PASS);
        if (quic[1 + CID_WORKER_OFFSET] != queue)
            return count(C_CID_MISMATCH, XDP_PASS);
        steered = C_STEERED_SHORT;
    }
    // The flags argument is the verdict when the queue has no socket.
    long verdict = bpf_redirect_map(&xsks_map, queue, XDP_PASS);
    if (verdict == XDP_REDIRECT)
        return count(steered, XDP_REDIRECT);
    return count(C_NO_SOCKET, (int)verdict);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
