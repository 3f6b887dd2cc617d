// SPDX-License-Identifier: MIT OR Apache-2.0
//
// SO_REUSEPORT steering of QUIC datagrams by connection ID.
//
// Every worker of a server binds its own UDP socket to the same port with
// SO_REUSEPORT. Without this program the kernel picks a socket by a hash of
// the 4-tuple, so a client whose address changes (NAT rebinding, RFC 9000
// §9.3) lands on a worker that does not know its connection. Our connection
// IDs carry the worker ID at a fixed offset (quic-core cid_gen.rs, after
// QUIC-LB draft §9.2), so this program reads it and selects that worker's
// socket from a REUSEPORT_SOCKARRAY.
//
// The program never drops: whenever it cannot decide (unknown layout, worker
// index out of range, the worker's slot empty because its socket closed) it
// returns SK_PASS without selecting, and the kernel falls back to its own
// 4-tuple hash. Each outcome is counted in a per-CPU array.
//
// The context data starts at the UDP header (8 bytes); QUIC begins after it.

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define UDP_HDR_LEN 8
// RFC 9000 §17.2: a QUIC version 1 connection ID is at most 20 bytes.
#define MAX_CID_LEN 20
// Long header: flags(1) version(4) dcid_len(1) dcid(...)  (RFC 9000 §17.2).
#define LONG_DCID_LEN_OFFSET (UDP_HDR_LEN + 5)
#define LONG_DCID_OFFSET (UDP_HDR_LEN + 6)
// Short header: flags(1) dcid(...)  (RFC 9000 §17.3.1).
#define SHORT_DCID_OFFSET (UDP_HDR_LEN + 1)
#define HEADER_FORM_LONG 0x80
#define ERR_NOENT 2

// Indexes of the counters array; mirrored by `Counter` in reuseport.rs.
enum counter {
	STEERED_BY_CID = 0,
	STEERED_BY_HASH = 1,
	FALLBACK_EMPTY_SLOT = 2,
	FALLBACK_OUT_OF_RANGE = 3,
	MALFORMED = 4,
	FALLBACK_SELECT_ERROR = 5,
	COUNTER_COUNT = 6,
};

// Written once by the loader (reuseport.rs `SteerConfig`), read per packet.
struct steer_config {
	__u32 workers;
	__u32 worker_id_offset;
	__u32 cid_len;
	__u32 hash_workers;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct steer_config);
} steer_config SEC(".maps");

// Slot i holds worker i's socket. The loader resizes it to the worker count
// before loading. Values are 64 bits so a lookup from user space returns the
// socket cookie (tests use it to see a closed socket leave its slot).
struct {
	__uint(type, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} worker_sockets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNTER_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} steer_counters SEC(".maps");

static __always_inline void count(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&steer_counters, &which);

	if (v)
		*v += 1;
}

// FNV-1a over the first `len` bytes of the DCID: any stable function of the
// DCID alone works, so that every Initial (and 0-RTT) packet a client sends
// with the same DCID, from whatever source port, reaches the same worker.
static __always_inline __u32 dcid_hash(const __u8 *dcid, __u32 len)
{
	__u32 h = 2166136261u;

#pragma unroll
	for (__u32 i = 0; i < MAX_CID_LEN; i++) {
		if (i < len) {
			h ^= dcid[i];
			h *= 16777619u;
		}
	}
	return h;
}

SEC("sk_reuseport")
int steer_by_cid(struct sk_reuseport_md *md)
{
	__u32 zero = 0;
	struct steer_config *cfg = bpf_map_lookup_elem(&steer_config, &zero);
	__u32 workers, offset, index, outcome;
	__u8 first;

	if (!cfg || cfg->workers == 0)
		return SK_PASS;
	workers = cfg->workers;
	offset = cfg->worker_id_offset;
	if (offset >= MAX_CID_LEN) {
		count(MALFORMED);
		return SK_PASS;
	}
	if (bpf_skb_load_bytes(md, UDP_HDR_LEN, &first, 1) < 0) {
		count(MALFORMED);
		return SK_PASS;
	}

	if (!(first & HEADER_FORM_LONG)) {
		// Short header: the DCID is one of ours (we issued it), so the
		// worker byte is authoritative.
		__u8 worker;

		if (bpf_skb_load_bytes(md, SHORT_DCID_OFFSET + offset, &worker, 1) < 0) {
			count(MALFORMED);
			return SK_PASS;
		}
		index = worker;
		outcome = STEERED_BY_CID;
	} else {
		// Long header. The DCID is either chosen by the client (its
		// first Initials and 0-RTT) or one of ours (Initials after the
		// server's first flight, Handshake packets, Initials answering a
		// Retry). Ours are recognised by length and a worker byte in
		// range; anything else is hashed. Both are functions of the DCID
		// only, so retransmissions stay on one worker.
		__u8 dcid[MAX_CID_LEN] = {};
		__u8 len_byte;
		__u32 dcid_len;

		if (bpf_skb_load_bytes(md, LONG_DCID_LEN_OFFSET, &len_byte, 1) < 0) {
			count(MALFORMED);
			return SK_PASS;
		}
		dcid_len = len_byte;
		if (dcid_len == 0 || dcid_len > MAX_CID_LEN) {
			count(MALFORMED);
			return SK_PASS;
		}
		if (bpf_skb_load_bytes(md, LONG_DCID_OFFSET, dcid, dcid_len) < 0) {
			count(MALFORMED);
			return SK_PASS;
		}
		__u8 worker = 0xff;
#pragma unroll
		for (__u32 i = 0; i < MAX_CID_LEN; i++) {
			if (i == offset)
				worker = dcid[i];
		}
		if (dcid_len == cfg->cid_len && offset < dcid_len && worker < workers) {
			index = worker;
			outcome = STEERED_BY_CID;
		} else {
			// Hashed over the workers that joined so far when the
			// group has room for more (hash_workers; 0 means all).
			__u32 hashed = cfg->hash_workers;
			if (hashed == 0 || hashed > workers)
				hashed = workers;
			index = dcid_hash(dcid, dcid_len) % hashed;
			outcome = STEERED_BY_HASH;
		}
	}

	if (index >= workers) {
		count(FALLBACK_OUT_OF_RANGE);
		return SK_PASS;
	}
	long err = bpf_sk_select_reuseport(md, &worker_sockets, &index, 0);
	if (err == -ERR_NOENT) {
		// The worker's socket closed (the kernel cleared its slot) or
		// never joined: the kernel's hash picks a live socket.
		count(FALLBACK_EMPTY_SLOT);
		return SK_PASS;
	}
	if (err < 0) {
		count(FALLBACK_SELECT_ERROR);
		return SK_PASS;
	}
	count(outcome);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
