// netview.c: the sensor's kernel probes. TCP lifecycle from the
// sock/inet_sock_set_state tracepoint (with the process taken where it is
// current: at connect, and at the return of accept), DNS messages sent to
// ports 53, 853 and 5353 (at the send syscalls), and getaddrinfo calls in
// the C library (uprobes). Only tracepoints and uprobes are used: kernels
// without CONFIG_KPROBES (like the sensor's own) offer no kprobes.
// Records go to user space through one ring buffer; their layouts, in
// records.h, are decoded by ../records.go.
//
// Built by bpf2go (see ../gen.go) with clang-16; the generated .o and Go
// files are committed so that building the sensor needs no clang.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "records.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17

// Kernel TCP states (include/net/tcp_states.h).
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_SYN_RECV 3
#define TCP_FIN_WAIT1 4
#define TCP_FIN_WAIT2 5
#define TCP_TIME_WAIT 6
#define TCP_CLOSE 7
#define TCP_CLOSE_WAIT 8
#define TCP_LAST_ACK 9
#define TCP_LISTEN 10
#define TCP_CLOSING 11

// What is known of a socket between its state changes.
struct sk_info {
	u64 start;
	u64 pstart;
	u32 pid;
	u32 uid;
	u8 flags;
	u8 pad[7];
	char comm[16];
};

struct gai_call {
	u64 start;
	u64 node; // const char *
	u64 res;  // struct addrinfo **
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

// Sockets followed from their first state change until CLOSE.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, u64);
	__type(value, struct sk_info);
} socks SEC(".maps");

// getaddrinfo calls in flight, by thread.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, u64);
	__type(value, struct gai_call);
} gai SEC(".maps");

// Counters read by user space: 0 records lost (ring buffer full), 1 sockets
// not followed (socks full).
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, u32);
	__type(value, u64);
} stats SEC(".maps");

static __always_inline void count(u32 i)
{
	u64 *v = bpf_map_lookup_elem(&stats, &i);
	if (v)
		(*v)++;
}

// submit hands a record over without waking the reader, which drains the
// ring every 100 ms (or when the sensor polls): a wakeup per record would
// cost more than the record. A ring a quarter full wakes it at once.
static __always_inline void submit(void *r)
{
	u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	bpf_ringbuf_submit(r, avail > (256 << 10) ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
}

static __always_inline u64 proc_start(void)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	return BPF_CORE_READ(t, group_leader, start_boottime);
}

// proc_comm reads the process's name (its main thread's, as
// /proc/<pid>/comm shows), not the calling thread's.
static __always_inline void proc_comm(char *dst)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	BPF_CORE_READ_STR_INTO((char(*)[16])dst, t, group_leader, comm);
}

// sk_netns is the inode of the network namespace a socket lives in, 0 on
// a kernel built without namespaces (no skc_net.net to read).
static __always_inline u64 sk_netns(struct sock *sk)
{
	if (!bpf_core_field_exists(sk->__sk_common.skc_net.net))
		return 0;
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

// proc_netns is the inode of the current process's network namespace, for
// records with no socket (getaddrinfo); 0 while the task exits (no nsproxy).
static __always_inline u64 proc_netns(void)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	return BPF_CORE_READ(t, nsproxy, net_ns, ns.inum);
}

static __always_inline void take_process(struct sk_info *in)
{
	in->pid = bpf_get_current_pid_tgid() >> 32;
	in->uid = (u32)bpf_get_current_uid_gid();
	in->pstart = proc_start();
	proc_comm(in->comm);
	in->flags |= F_ATTR;
}

// track notes a state change in the socket's flags.
static __always_inline void track(struct sk_info *in, int newstate)
{
	switch (newstate) {
	case TCP_ESTABLISHED:
		in->flags |= F_ESTAB;
		break;
	case TCP_FIN_WAIT1:
	case TCP_LAST_ACK:
		in->flags |= F_FIN_OUT | F_ESTAB;
		break;
	case TCP_CLOSE_WAIT:
		in->flags |= F_FIN_IN | F_ESTAB;
		break;
	case TCP_CLOSING:
		in->flags |= F_FIN_IN | F_FIN_OUT | F_ESTAB;
		break;
	}
}

static __always_inline void fill_addrs(struct flow_rec *r, struct trace_event_raw_inet_sock_set_state *ctx)
{
	r->family = ctx->family;
	r->sport = ctx->sport;
	r->dport = ctx->dport;
	// Copied with probe reads: the verifier refuses loads through a
	// pointer computed from ctx.
	if (ctx->family == AF_INET) {
		bpf_probe_read_kernel(r->saddr, 4, ctx->saddr);
		bpf_probe_read_kernel(r->daddr, 4, ctx->daddr);
	} else {
		bpf_probe_read_kernel(r->saddr, 16, ctx->saddr_v6);
		bpf_probe_read_kernel(r->daddr, 16, ctx->daddr_v6);
	}
}

static __always_inline void fill_process(struct flow_rec *r, struct sk_info *in)
{
	r->pid = in->pid;
	r->uid = in->uid;
	r->pstart = in->pstart;
	r->start = in->start;
	__builtin_memcpy(r->comm, in->comm, sizeof(r->comm));
}

static __always_inline int emit_open(void *ctx, struct sk_info *in, struct trace_event_raw_inet_sock_set_state *tp)
{
	struct flow_rec *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		count(0);
		return 0;
	}
	__builtin_memset(r, 0, sizeof(*r));
	r->type = REC_OPEN;
	r->ts = bpf_ktime_get_ns();
	r->sk = (u64)tp->skaddr;
	r->flags = in->flags;
	r->netns = sk_netns((struct sock *)tp->skaddr);
	fill_addrs(r, tp);
	fill_process(r, in);
	submit(r);
	in->flags |= F_OPENED;
	return 0;
}

SEC("tracepoint/sock/inet_sock_set_state")
int inet_sock_set_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	if (ctx->protocol != IPPROTO_TCP)
		return 0;
	u64 sk = (u64)ctx->skaddr;
	int newstate = ctx->newstate, oldstate = ctx->oldstate;
	struct sk_info *in = bpf_map_lookup_elem(&socks, &sk);

	if (newstate == TCP_SYN_SENT || (newstate == TCP_SYN_RECV && oldstate != TCP_SYN_SENT)) {
		// A connect runs in the caller's context: its process is current.
		// A SYN_RECV child is made in softirq: its process is learnt at
		// accept.
		struct sk_info fresh = {};
		fresh.start = bpf_ktime_get_ns();
		if (newstate == TCP_SYN_SENT) {
			fresh.flags = F_OUT;
			take_process(&fresh);
		} else {
			fresh.flags = F_IN;
		}
		if (bpf_map_update_elem(&socks, &sk, &fresh, BPF_ANY))
			count(1);
		return 0;
	}
	// A listener is not a flow: its opening and closing move no bytes to
	// anyone (the listen probe reports it). Left to the code below, a
	// listener opened after the sensor was followed as a connection and
	// its close sent as an established flow to 0.0.0.0:0.
	if (newstate == TCP_LISTEN || oldstate == TCP_LISTEN) {
		if (in)
			bpf_map_delete_elem(&socks, &sk);
		return 0;
	}
	if (newstate == TCP_CLOSE) {
		struct flow_rec *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
		if (!r) {
			count(0);
			if (in)
				bpf_map_delete_elem(&socks, &sk);
			return 0;
		}
		__builtin_memset(r, 0, sizeof(*r));
		r->type = REC_CLOSE;
		r->ts = bpf_ktime_get_ns();
		r->sk = sk;
		r->oldstate = oldstate;
		r->netns = sk_netns((struct sock *)ctx->skaddr);
		fill_addrs(r, ctx);
		u8 flags = 0;
		if (in) {
			fill_process(r, in);
			flags = in->flags;
		} else {
			// Followed from before the sensor: judge from the last state.
			struct sk_info tmp = {};
			if (oldstate != TCP_SYN_SENT && oldstate != TCP_SYN_RECV)
				tmp.flags |= F_ESTAB;
			track(&tmp, oldstate);
			flags = tmp.flags;
		}
		struct tcp_sock *tp = (struct tcp_sock *)ctx->skaddr;
		struct sock *s = (struct sock *)ctx->skaddr;
		// tcp_fin sets SOCK_DONE when the peer's FIN arrives, and nothing
		// else does: the one sign of it once a FIN_WAIT2 socket closes.
		u64 skflags = BPF_CORE_READ(s, __sk_common.skc_flags);
		if (skflags & (1ULL << bpf_core_enum_value(enum sock_flags, SOCK_DONE)))
			flags |= F_FIN_IN;
		r->acked = BPF_CORE_READ(tp, bytes_acked);
		r->received = BPF_CORE_READ(tp, bytes_received);
		if ((flags & F_FIN_OUT) && BPF_CORE_READ(tp, snd_una) == BPF_CORE_READ(tp, write_seq))
			flags |= F_FIN_ACKED;
		r->flags = flags;
		submit(r);
		if (in)
			bpf_map_delete_elem(&socks, &sk);
		return 0;
	}
	if (!in) {
		// A socket open before the sensor: follow it from here on.
		struct sk_info fresh = {};
		if (newstate != TCP_SYN_RECV)
			fresh.flags = F_ESTAB;
		track(&fresh, newstate);
		if (bpf_map_update_elem(&socks, &sk, &fresh, BPF_NOEXIST))
			count(1);
		return 0;
	}
	track(in, newstate);
	if (newstate == TCP_ESTABLISHED && oldstate == TCP_SYN_SENT && !(in->flags & F_OPENED))
		return emit_open(ctx, in, ctx); // ports are known only now
	return 0;
}

// sk_addrs copies a socket's local and remote addresses (4 or 16 bytes).
static __always_inline void sk_addrs(struct sock *sk, u16 family, u8 *local, u8 *remote)
{
	if (family == AF_INET) {
		bpf_core_read(local, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(remote, 4, &sk->__sk_common.skc_daddr);
	} else {
		bpf_core_read(local, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(remote, 16, &sk->__sk_common.skc_v6_daddr);
	}
}

// fd_sock returns the socket behind a file descriptor of the current
// process, or 0 when the descriptor is not a socket.
static __always_inline struct sock *fd_sock(s64 fd)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(t, files, fdt);
	u32 max = BPF_CORE_READ(fdt, max_fds);
	if (fd < 0 || fd >= max)
		return 0;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = 0;
	if (bpf_probe_read_kernel(&f, sizeof(f), fds + fd) || !f)
		return 0;
	if ((BPF_CORE_READ(f, f_inode, i_mode) & 0xF000) != 0xC000) // S_IFSOCK
		return 0;
	struct socket *so = BPF_CORE_READ(f, private_data);
	return BPF_CORE_READ(so, sk);
}

// accept and accept4 return the accepted socket's descriptor in the
// accepting process: its process is learnt here.
SEC("tracepoint/syscalls/sys_exit_accept4")
int sys_exit_accept(struct sys_exit_ctx *ctx)
{
	struct sock *sk = fd_sock(ctx->ret);
	if (!sk)
		return 0;
	u64 key = (u64)sk;
	struct sk_info *in = bpf_map_lookup_elem(&socks, &key);
	if (!in || (in->flags & F_OPENED))
		return 0; // not followed from its SYN (predates the sensor), or not TCP
	take_process(in);
	struct flow_rec *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		count(0);
		return 0;
	}
	__builtin_memset(r, 0, sizeof(*r));
	r->type = REC_OPEN;
	r->ts = bpf_ktime_get_ns();
	r->sk = key;
	r->flags = in->flags;
	u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	r->family = family;
	r->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	r->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	sk_addrs(sk, family, r->saddr, r->daddr);
	r->netns = sk_netns(sk);
	fill_process(r, in);
	submit(r);
	in->flags |= F_OPENED;
	return 0;
}

#define SOCK_STREAM 1
#define SOCK_DGRAM 2

struct dns_dst {
	u8 family;
	u16 sport;
	u16 dport;
	u8 saddr[16];
	u8 daddr[16];
	u64 netns;
};

// dns_dest reads where a message on sk goes: the destination the call
// names (uaddr, user memory) when it names one, else the socket's peer. It
// returns 0 unless that is a DNS port, so that no record is reserved for
// the many sends that are not DNS.
static __always_inline int dns_dest(struct dns_dst *d, struct sock *sk, u8 proto, u64 uaddr)
{
	u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return 0;
	d->family = family;
	u16 port = 0;
	if (uaddr && proto == IPPROTO_UDP) {
		struct sockaddr_in6_raw sa = {};
		if (bpf_probe_read_user(&sa, sizeof(sa), (void *)uaddr))
			return 0;
		port = bpf_ntohs(sa.port);
		if (sa.family == AF_INET) {
			d->family = AF_INET;
			__builtin_memcpy(d->daddr, &((struct sockaddr_in_raw *)&sa)->addr, 4);
		} else if (sa.family == AF_INET6) {
			d->family = AF_INET6;
			__builtin_memcpy(d->daddr, sa.addr, 16);
		} else {
			return 0;
		}
	} else {
		port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	}
	d->dport = port;
	if (proto == IPPROTO_TCP) {
		if (port != 53 && port != 853)
			return 0;
	} else if (port != 53 && port != 853 && port != 5353) {
		return 0;
	}
	d->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	u8 peer[16] = {};
	sk_addrs(sk, family, d->saddr, peer);
	if (!(uaddr && proto == IPPROTO_UDP))
		__builtin_memcpy(d->daddr, peer, 16);
	d->netns = sk_netns(sk);
	return 1;
}

// dns_sock returns the socket behind fd when it is a TCP or UDP socket, and
// its protocol.
static __always_inline struct sock *dns_sock(s64 fd, u8 *proto)
{
	struct sock *sk = fd_sock(fd);
	if (!sk)
		return 0;
	u16 p = BPF_CORE_READ(sk, sk_protocol);
	if (p != IPPROTO_TCP && p != IPPROTO_UDP)
		return 0;
	*proto = p;
	return sk;
}

static __always_inline struct dns_rec *dns_start(u8 proto, u64 size, struct dns_dst *d)
{
	struct dns_rec *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		count(0);
		return 0;
	}
	__builtin_memset(r, 0, __builtin_offsetof(struct dns_rec, data)); // the header; data is bounded by len
	r->type = REC_DNS;
	r->proto = proto;
	r->family = d->family;
	r->sport = d->sport;
	r->dport = d->dport;
	__builtin_memcpy(r->saddr, d->saddr, 16);
	__builtin_memcpy(r->daddr, d->daddr, 16);
	r->ts = bpf_ktime_get_ns();
	r->pid = bpf_get_current_pid_tgid() >> 32;
	r->uid = (u32)bpf_get_current_uid_gid();
	r->pstart = proc_start();
	r->size = size;
	r->netns = d->netns;
	proc_comm(r->comm);
	return r;
}

// capture_buf copies the start of one user buffer. Sizes are masked as well
// as capped: the verifier wants them unsigned and below the buffer's end.
static __always_inline void capture_buf(struct dns_rec *r, u64 base, u64 len)
{
	u32 n = len > DNS_CAP - 1 ? DNS_CAP - 1 : len;
	n &= DNS_CAP - 1;
	if (n > 0 && !bpf_probe_read_user(r->data, n, (void *)base))
		r->len = n;
}

// capture_iov copies the start of an iovec array: the first segment, or
// when it is short (TCP DNS is often written as a 2-byte length, then the
// message) the first two.
static __always_inline void capture_iov(struct dns_rec *r, u64 uiov, u64 cnt)
{
	struct iovec_user v0 = {}, v1 = {};
	if (cnt == 0 || bpf_probe_read_user(&v0, sizeof(v0), (void *)uiov))
		return;
	if (v0.len >= 16 || cnt == 1) {
		capture_buf(r, v0.base, v0.len);
		return;
	}
	u32 a = v0.len & 15;
	if (a > 0 && bpf_probe_read_user(r->data, a, (void *)v0.base))
		return;
	r->len = a;
	if (bpf_probe_read_user(&v1, sizeof(v1), (void *)(uiov + sizeof(v0))))
		return;
	u32 b = v1.len > DNS_CAP - 16 ? DNS_CAP - 16 : v1.len;
	b &= DNS_CAP - 1;
	if (b > DNS_CAP - 16)
		return;
	if (b > 0 && !bpf_probe_read_user(r->data + a, b, (void *)v1.base))
		r->len = a + b;
}

// sendto(fd, buf, len, flags, addr, addrlen)
SEC("tracepoint/syscalls/sys_enter_sendto")
int sys_enter_sendto(struct sys_enter_ctx *ctx)
{
	u8 proto = 0;
	struct sock *sk = dns_sock(ctx->args[0], &proto);
	if (!sk)
		return 0;
	struct dns_dst d = {};
	if (!dns_dest(&d, sk, proto, ctx->args[4]))
		return 0;
	struct dns_rec *r = dns_start(proto, ctx->args[2], &d);
	if (!r)
		return 0;
	if (r->dport != 853)
		capture_buf(r, ctx->args[1], ctx->args[2]);
	submit(r);
	return 0;
}

// dns_msghdr reports one user msghdr sent on sk.
static __always_inline void dns_msghdr(struct sock *sk, u8 proto, u64 umsg)
{
	struct msghdr_user m = {};
	if (bpf_probe_read_user(&m, sizeof(m), (void *)umsg))
		return;
	struct dns_dst d = {};
	if (!dns_dest(&d, sk, proto, m.name))
		return;
	struct dns_rec *r = dns_start(proto, 0, &d);
	if (!r)
		return;
	if (r->dport != 853)
		capture_iov(r, m.iov, m.iovlen);
	r->size = r->len;
	submit(r);
}

// sendmsg(fd, msg, flags)
SEC("tracepoint/syscalls/sys_enter_sendmsg")
int sys_enter_sendmsg(struct sys_enter_ctx *ctx)
{
	u8 proto = 0;
	struct sock *sk = dns_sock(ctx->args[0], &proto);
	if (sk)
		dns_msghdr(sk, proto, ctx->args[1]);
	return 0;
}

// sendmmsg(fd, msgvec, vlen, flags): the C library's resolver sends its A
// and AAAA queries together; the first two messages are read.
SEC("tracepoint/syscalls/sys_enter_sendmmsg")
int sys_enter_sendmmsg(struct sys_enter_ctx *ctx)
{
	u8 proto = 0;
	struct sock *sk = dns_sock(ctx->args[0], &proto);
	if (!sk)
		return 0;
	u64 vec = ctx->args[1], vlen = ctx->args[2];
	if (vlen > 0)
		dns_msghdr(sk, proto, vec);
	if (vlen > 1)
		dns_msghdr(sk, proto, vec + 64); // sizeof(struct mmsghdr)
	return 0;
}

// write(fd, buf, count): how a connected UDP socket often sends (Go's own
// resolver does). Every write on the host passes here, so the socket checks
// come first and are cheap.
SEC("tracepoint/syscalls/sys_enter_write")
int sys_enter_write(struct sys_enter_ctx *ctx)
{
	u8 proto = 0;
	struct sock *sk = dns_sock(ctx->args[0], &proto);
	if (!sk)
		return 0;
	struct dns_dst d = {};
	if (!dns_dest(&d, sk, proto, 0))
		return 0;
	struct dns_rec *r = dns_start(proto, ctx->args[2], &d);
	if (!r)
		return 0;
	if (d.dport != 853)
		capture_buf(r, ctx->args[1], ctx->args[2]);
	submit(r);
	return 0;
}

// writev(fd, iov, iovcnt): how the C library's resolver writes DNS over TCP.
SEC("tracepoint/syscalls/sys_enter_writev")
int sys_enter_writev(struct sys_enter_ctx *ctx)
{
	u8 proto = 0;
	struct sock *sk = dns_sock(ctx->args[0], &proto);
	if (!sk || proto != IPPROTO_TCP)
		return 0;
	struct dns_dst d = {};
	if (!dns_dest(&d, sk, proto, 0))
		return 0;
	struct dns_rec *r = dns_start(proto, 0, &d);
	if (!r)
		return 0;
	if (r->dport != 853)
		capture_iov(r, ctx->args[1], ctx->args[2]);
	r->size = r->len;
	submit(r);
	return 0;
}

// getaddrinfo(node, service, hints, res): the name at entry, the answers
// at return, walked from *res.
SEC("uprobe/getaddrinfo")
int BPF_KPROBE(getaddrinfo, const char *node, const char *service, const void *hints, void **res)
{
	if (!node)
		return 0;
	u64 id = bpf_get_current_pid_tgid();
	struct gai_call c = {.start = bpf_ktime_get_ns(), .node = (u64)node, .res = (u64)res};
	bpf_map_update_elem(&gai, &id, &c, BPF_ANY);
	return 0;
}

// struct addrinfo of the C library (x86-64 and arm64 layouts agree).
struct addrinfo_raw {
	int ai_flags;
	int ai_family;
	int ai_socktype;
	int ai_protocol;
	u32 ai_addrlen;
	u32 pad;
	void *ai_addr;
	char *ai_canonname;
	void *ai_next;
};

SEC("uretprobe/getaddrinfo")
int BPF_KRETPROBE(getaddrinfo_ret, int ret)
{
	u64 id = bpf_get_current_pid_tgid();
	struct gai_call *c = bpf_map_lookup_elem(&gai, &id);
	if (!c)
		return 0;
	struct gai_call call = *c;
	bpf_map_delete_elem(&gai, &id);
	struct lookup_rec *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		count(0);
		return 0;
	}
	r->type = REC_LOOKUP;
	r->naddr = 0;
	r->pad = 0;
	r->ret = ret;
	r->pid = id >> 32;
	r->uid = (u32)bpf_get_current_uid_gid();
	r->ts = bpf_ktime_get_ns();
	r->start = call.start;
	r->pstart = proc_start();
	r->netns = proc_netns();
	proc_comm(r->comm);
	if (bpf_probe_read_user_str(r->name, sizeof(r->name), (const char *)call.node) < 0)
		r->name[0] = 0;
	__builtin_memset(r->fam, 0, sizeof(r->fam));
	void *ai = 0;
	if (ret == 0)
		bpf_probe_read_user(&ai, sizeof(ai), (void *)call.res);
	u8 n = 0;
	for (int i = 0; i < MAX_ADDRS && ai; i++) {
		struct addrinfo_raw a;
		if (bpf_probe_read_user(&a, sizeof(a), ai))
			break;
		ai = a.ai_next;
		if (a.ai_family == AF_INET && a.ai_addr) {
			if (bpf_probe_read_user(r->addrs[i], 4, a.ai_addr + 4))
				continue;
		} else if (a.ai_family == AF_INET6 && a.ai_addr) {
			if (bpf_probe_read_user(r->addrs[i], 16, a.ai_addr + 8))
				continue;
		} else {
			continue;
		}
		r->fam[i] = a.ai_family;
		n = i + 1;
	}
	// User space reads the slots below naddr whose family is set.
	r->naddr = n;
	submit(r);
	return 0;
}
