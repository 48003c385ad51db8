package ebpf

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// recordFields is every member of bpf/records.h that records.go reads: where
// the decoding reads it and how many bytes (Uint16 reads 2, an address 16).
var recordFields = []struct {
	rec, member string
	off, size   int
}{
	{"flow_rec", "type", recTypeAt, 1},
	{"flow_rec", "family", flowRecFamily, 1},
	{"flow_rec", "oldstate", flowRecOldState, 1},
	{"flow_rec", "flags", flowRecFlags, 1},
	{"flow_rec", "sport", flowRecSport, 2},
	{"flow_rec", "dport", flowRecDport, 2},
	{"flow_rec", "pid", flowRecPID, 4},
	{"flow_rec", "uid", flowRecUID, 4},
	{"flow_rec", "ts", flowRecTS, 8},
	{"flow_rec", "start", flowRecStart, 8},
	{"flow_rec", "sk", flowRecSk, 8},
	{"flow_rec", "acked", flowRecAcked, 8},
	{"flow_rec", "received", flowRecReceived, 8},
	{"flow_rec", "pstart", flowRecPStart, 8},
	{"flow_rec", "saddr", flowRecSaddr, addrLen},
	{"flow_rec", "daddr", flowRecDaddr, addrLen},
	{"flow_rec", "comm", flowRecComm, commLen},
	{"flow_rec", "netns", flowRecNetns, 8},

	{"dns_rec", "type", recTypeAt, 1},
	{"dns_rec", "family", dnsRecFamily, 1},
	{"dns_rec", "proto", dnsRecProto, 1},
	{"dns_rec", "sport", dnsRecSport, 2},
	{"dns_rec", "dport", dnsRecDport, 2},
	{"dns_rec", "pid", dnsRecPID, 4},
	{"dns_rec", "uid", dnsRecUID, 4},
	{"dns_rec", "ts", dnsRecTS, 8},
	{"dns_rec", "pstart", dnsRecPStart, 8},
	{"dns_rec", "saddr", dnsRecSaddr, addrLen},
	{"dns_rec", "daddr", dnsRecDaddr, addrLen},
	{"dns_rec", "comm", dnsRecComm, commLen},
	{"dns_rec", "len", dnsRecLen, 4},
	{"dns_rec", "size", dnsRecSendSize, 4},
	{"dns_rec", "netns", dnsRecNetns, 8},
	{"dns_rec", "data", dnsRecData, dnsCap},

	{"lookup_rec", "type", recTypeAt, 1},
	{"lookup_rec", "naddr", lookupRecNaddr, 1},
	{"lookup_rec", "ret", lookupRecRet, 4},
	{"lookup_rec", "pid", lookupRecPID, 4},
	{"lookup_rec", "uid", lookupRecUID, 4},
	{"lookup_rec", "ts", lookupRecTS, 8},
	{"lookup_rec", "start", lookupRecStart, 8},
	{"lookup_rec", "pstart", lookupRecPStart, 8},
	{"lookup_rec", "comm", lookupRecComm, commLen},
	{"lookup_rec", "name", lookupRecName, nameCap},
	{"lookup_rec", "fam", lookupRecFam, maxAddrs},
	{"lookup_rec", "addrs", lookupRecAddrs, maxAddrs * addrLen},
	{"lookup_rec", "netns", lookupRecNetns, 8},
}

// recordSizes are what the decoding takes as each struct's sizeof.
var recordSizes = map[string]int{
	"flow_rec":   flowRecSize,
	"dns_rec":    dnsRecData + dnsCap,
	"lookup_rec": lookupRecSize,
}

// recordMacros are the constants the records' readers and writers share.
var recordMacros = map[string]int{
	"REC_OPEN": recOpen, "REC_CLOSE": recClose, "REC_DNS": recDNS, "REC_LOOKUP": recLookup,
	"F_OUT": flagOut, "F_IN": flagIn, "F_ESTAB": flagEstab, "F_FIN_OUT": flagFinOut, "F_FIN_IN": flagFinIn, "F_FIN_ACKED": flagFinAcked,
	"DNS_CAP": dnsCap, "MAX_ADDRS": maxAddrs, "NAME_CAP": nameCap,
}

// The offsets records.go decodes at are the ones the C compiler gives
// bpf/records.h. The host's gcc stands in for clang's BPF target (there is
// no clang on most machines): both align u8..u64 naturally, and -Wpadded
// refuses any implicit padding, where the two could differ. The committed
// object cannot be asked instead: its BTF holds only the maps' types, not
// the records, which no map or function signature names.
func TestRecordLayoutMatchesC(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Fatal("gcc is needed to check the records against bpf/records.h (README: every machine has it):", err)
	}
	hdr, err := filepath.Abs("bpf")
	if err != nil {
		t.Fatal(err)
	}
	var src strings.Builder
	src.WriteString(`#include <stdio.h>
#include <stddef.h>
#include <linux/types.h>
typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s32 s32;
#include "records.h"
int main(void)
{
`)
	for _, f := range recordFields {
		fmt.Fprintf(&src, "\tprintf(\"%[1]s.%[2]s %%zu %%zu\\n\", offsetof(struct %[1]s, %[2]s), sizeof(((struct %[1]s *)0)->%[2]s));\n", f.rec, f.member)
	}
	for rec := range recordSizes {
		fmt.Fprintf(&src, "\tprintf(\"sizeof(%[1]s) %%zu\\n\", sizeof(struct %[1]s));\n", rec)
	}
	for m := range recordMacros {
		fmt.Fprintf(&src, "\tprintf(\"%[1]s %%lld\\n\", (long long)(%[1]s));\n", m)
	}
	src.WriteString("\treturn 0;\n}\n")

	dir := t.TempDir()
	c, bin := filepath.Join(dir, "layout.c"), filepath.Join(dir, "layout")
	if err := os.WriteFile(c, []byte(src.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(gcc, "-Wall", "-Werror", "-Wpadded", "-I", hdr, "-o", bin, c).CombinedOutput(); err != nil {
		t.Fatalf("compiling bpf/records.h with what records.go reads: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{} // each line: a name, a space, its numbers
	for line := range strings.Lines(string(out)) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), " ")
		got[k] = v
	}

	for _, f := range recordFields {
		var off, size int
		if _, err := fmt.Sscan(got[f.rec+"."+f.member], &off, &size); err != nil {
			t.Fatalf("%s.%s: no layout in the program's output %q", f.rec, f.member, out)
		}
		if off != f.off || size != f.size {
			t.Errorf("struct %s member %s: C has offset %d, %d bytes; records.go reads offset %d, %d bytes", f.rec, f.member, off, size, f.off, f.size)
		}
	}
	for rec, want := range recordSizes {
		if g := got["sizeof("+rec+")"]; g != fmt.Sprint(want) {
			t.Errorf("sizeof(struct %s) is %s in C; records.go takes %d", rec, g, want)
		}
	}
	for m, want := range recordMacros {
		if g := got[m]; g != fmt.Sprint(want) {
			t.Errorf("%s is %s in bpf/records.h; records.go has %d", m, g, want)
		}
	}
}
