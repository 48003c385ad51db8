/* A trimmed vmlinux.h: only the kernel types netview.c reads, written by
 * hand from `bpftool btf dump file /sys/kernel/btf/vmlinux format c`.
 * preserve_access_index makes every field access a CO-RE relocation, so
 * offsets come from the running kernel's BTF at load time, not from here. */
#ifndef NETVIEW_VMLINUX_H
#define NETVIEW_VMLINUX_H
#define __VMLINUX_H__ // tells bpf_tracing.h to use the kernel's pt_regs names

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef short __s16;
typedef int __s32;
typedef long long __s64;
typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s32 s32;
typedef __s64 s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;
typedef unsigned long size_t;

enum { false = 0, true = 1 };

enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_RINGBUF = 27,
};

enum {
	BPF_F_NO_PREALLOC = 1,
};

enum {
	BPF_RB_NO_WAKEUP = 1,
	BPF_RB_FORCE_WAKEUP = 2,
};

enum {
	BPF_RB_AVAIL_DATA = 0,
};

enum {
	BPF_ANY = 0,
	BPF_NOEXIST = 1,
};

enum sock_flags {
	SOCK_DEAD = 0,
	SOCK_DONE = 1,
};

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct pt_regs {
	long unsigned int r15;
	long unsigned int r14;
	long unsigned int r13;
	long unsigned int r12;
	long unsigned int bp;
	long unsigned int bx;
	long unsigned int r11;
	long unsigned int r10;
	long unsigned int r9;
	long unsigned int r8;
	long unsigned int ax;
	long unsigned int cx;
	long unsigned int dx;
	long unsigned int si;
	long unsigned int di;
	long unsigned int orig_ax;
	long unsigned int ip;
	long unsigned int cs;
	long unsigned int flags;
	long unsigned int sp;
	long unsigned int ss;
};

struct trace_entry {
	short unsigned int type;
	unsigned char flags;
	unsigned char preempt_count;
	int pid;
};

struct trace_event_raw_inet_sock_set_state {
	struct trace_entry ent;
	const void *skaddr;
	int oldstate;
	int newstate;
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u16 protocol;
	__u8 saddr[4];
	__u8 daddr[4];
	__u8 saddr_v6[16];
	__u8 daddr_v6[16];
};

struct in6_addr {
	__u8 s6_addr[16];
};

/* A socket's and a process's network namespace: its ns.inum is the inode
 * /proc/<pid>/ns/net shows, what the snapshot rows carry as netns. */
struct ns_common {
	unsigned int inum;
};

struct net {
	struct ns_common ns;
};

typedef struct {
	struct net *net;
} possible_net_t;

struct nsproxy {
	struct net *net_ns;
};

struct sock_common {
	long unsigned int skc_flags;
	possible_net_t skc_net;
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num;
	short unsigned int skc_family;
	volatile unsigned char skc_state;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
};

struct sock {
	struct sock_common __sk_common;
	u16 sk_protocol;
};

struct inode {
	unsigned short i_mode;
};

struct file {
	void *private_data;
	struct inode *f_inode;
};

struct fdtable {
	unsigned int max_fds;
	struct file **fd;
};

struct files_struct {
	struct fdtable *fdt;
};

struct socket {
	short int type;
	struct sock *sk;
};

struct tcp_sock {
	u64 bytes_received;
	u64 bytes_acked;
	u32 snd_una;
	u32 write_seq;
};

struct task_struct {
	struct task_struct *group_leader;
	struct files_struct *files;
	struct nsproxy *nsproxy;
	u64 start_boottime;
	char comm[16];
};

#pragma clang attribute pop

/* Layouts of the syscall tracepoints' records: a trace event header, the
 * syscall number, then each argument in 8 bytes (see their format files).
 * These are a stable ABI, not kernel types, so they have no CO-RE. */
struct sys_enter_ctx {
	u64 common;
	s32 nr;
	u32 pad;
	u64 args[6];
};

struct sys_exit_ctx {
	u64 common;
	s32 nr;
	u32 pad;
	s64 ret;
};

/* User space's own structs (the x86-64 ABI). */
struct iovec_user {
	u64 base;
	u64 len;
};

struct msghdr_user {
	u64 name;
	s32 namelen;
	u32 pad;
	u64 iov;
	u64 iovlen;
	u64 control;
	u64 controllen;
	u32 flags;
	u32 pad2;
};

struct sockaddr_in_raw {
	u16 family;
	__be16 port;
	__be32 addr;
};

struct sockaddr_in6_raw {
	u16 family;
	__be16 port;
	u32 flowinfo;
	u8 addr[16];
};

#endif
