// records.h: the records netview.c writes to the ring buffer, shared with
// user space: ../records.go decodes them, and ../layout_test.go compiles
// this header with the host's gcc to check its offsets against the C.
// It uses vmlinux.h's u8..u64 and s32, so include it after that (the test
// defines them from <linux/types.h>). Every record is naturally aligned and
// has no implicit padding, so the host lays it out as the BPF target does.

#ifndef NETVIEW_RECORDS_H
#define NETVIEW_RECORDS_H

// Record types: the first byte of every record.
#define REC_OPEN 1   // a connect reached ESTABLISHED, or an accept returned
#define REC_CLOSE 2  // a socket reached CLOSE
#define REC_DNS 3    // a packet sent to a DNS port
#define REC_LOOKUP 4 // a getaddrinfo call returned

// Flow flags: what the socket went through.
#define F_OUT 0x01       // it connected (SYN_SENT)
#define F_IN 0x02        // a listener created it (SYN_RECV)
#define F_ESTAB 0x04     // it reached ESTABLISHED
#define F_FIN_OUT 0x08   // this side sent its FIN
#define F_FIN_IN 0x10    // the peer's FIN arrived
#define F_FIN_ACKED 0x20 // at close: this side's FIN was acknowledged
#define F_OPENED 0x40    // a REC_OPEN went out for it
#define F_ATTR 0x80      // pid and comm were taken in the process's context

#define DNS_CAP 512
#define MAX_ADDRS 16
#define NAME_CAP 256

struct flow_rec {
	u8 type;
	u8 family;
	u8 oldstate; // REC_CLOSE: the state before CLOSE
	u8 flags;
	u16 sport; // local port
	u16 dport; // remote port
	u32 pid;   // process (thread group) id, 0 when unknown
	u32 uid;
	u64 ts;     // CLOCK_MONOTONIC ns of this record
	u64 start;  // CLOCK_MONOTONIC ns of the connect or SYN, 0 when unknown
	u64 sk;     // the socket's address: its identity while it lives
	u64 acked;  // REC_CLOSE: tcp_sock.bytes_acked
	u64 received; // REC_CLOSE: tcp_sock.bytes_received
	u64 pstart; // the process's start_boottime, to verify its pid later
	u8 saddr[16]; // local
	u8 daddr[16]; // remote
	char comm[16];
	u64 netns; // inode of the socket's network namespace, 0 when unknown
};

struct dns_rec {
	u8 type;
	u8 family;
	u8 proto;
	u8 pad;
	u16 sport;
	u16 dport;
	u32 pid;
	u32 uid;
	u64 ts;
	u64 pstart;
	u8 saddr[16];
	u8 daddr[16];
	char comm[16];
	u32 len; // bytes captured in data
	u32 size; // bytes the call sends
	u64 netns; // inode of the sending socket's network namespace
	u8 data[DNS_CAP];
};

struct lookup_rec {
	u8 type;
	u8 naddr;
	u16 pad;
	s32 ret;
	u32 pid;
	u32 uid;
	u64 ts;
	u64 start;
	u64 pstart;
	char comm[16];
	char name[NAME_CAP];
	u8 fam[MAX_ADDRS];
	u8 addrs[MAX_ADDRS][16];
	u64 netns; // inode of the calling process's network namespace
};

#endif
