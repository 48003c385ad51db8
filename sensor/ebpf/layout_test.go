package ebpf

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// member is one field of a bpf/records.h struct that records.go reads:
// where the decoding reads it and how many bytes (Uint16 reads 2, an
// address 16).
type member struct {
	name      string
	off, size int
}

// records are the bpf/records.h structs records.go decodes, each with the
// sizeof the decoding takes and every member it reads, one line per C
// type in the order the header declares them.
var records = []struct {
	name    string
	size    int
	members []member
}{
	{"flow_rec", flowRecSize, []member{
		{"type", recTypeAt, 1}, {"family", flowRecFamily, 1}, {"oldstate", flowRecOldState, 1}, {"flags", flowRecFlags, 1},
		{"sport", flowRecSport, 2}, {"dport", flowRecDport, 2},
		{"pid", flowRecPID, 4}, {"uid", flowRecUID, 4},
		{"ts", flowRecTS, 8}, {"start", flowRecStart, 8}, {"sk", flowRecSk, 8}, {"acked", flowRecAcked, 8}, {"received", flowRecReceived, 8}, {"pstart", flowRecPStart, 8},
		{"saddr", flowRecSaddr, addrLen}, {"daddr", flowRecDaddr, addrLen},
		{"comm", flowRecComm, commLen},
		{"netns", flowRecNetns, 8},
	}},
	{"dns_rec", dnsRecData + dnsCap, []member{
		{"type", recTypeAt, 1}, {"family", dnsRecFamily, 1}, {"proto", dnsRecProto, 1},
		{"sport", dnsRecSport, 2}, {"dport", dnsRecDport, 2},
		{"pid", dnsRecPID, 4}, {"uid", dnsRecUID, 4},
		{"ts", dnsRecTS, 8}, {"pstart", dnsRecPStart, 8},
		{"saddr", dnsRecSaddr, addrLen}, {"daddr", dnsRecDaddr, addrLen},
		{"comm", dnsRecComm, commLen},
		{"len", dnsRecLen, 4}, {"size", dnsRecSendSize, 4},
		{"netns", dnsRecNetns, 8},
		{"data", dnsRecData, dnsCap},
	}},
	{"lookup_rec", lookupRecSize, []member{
		{"type", recTypeAt, 1}, {"naddr", lookupRecNaddr, 1},
		{"ret", lookupRecRet, 4},
		{"pid", lookupRecPID, 4}, {"uid", lookupRecUID, 4},
		{"ts", lookupRecTS, 8}, {"start", lookupRecStart, 8}, {"pstart", lookupRecPStart, 8},
		{"comm", lookupRecComm, commLen}, {"name", lookupRecName, nameCap},
		{"fam", lookupRecFam, maxAddrs},
		{"addrs", lookupRecAddrs, maxAddrs * addrLen},
		{"netns", lookupRecNetns, 8},
	}},
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
	for _, rec := range records {
		for _, f := range rec.members {
			fmt.Fprintf(&src, "\tprintf(\"%[1]s.%[2]s %%zu %%zu\\n\", offsetof(struct %[1]s, %[2]s), sizeof(((struct %[1]s *)0)->%[2]s));\n", rec.name, f.name)
		}
		fmt.Fprintf(&src, "\tprintf(\"sizeof(%[1]s) %%zu\\n\", sizeof(struct %[1]s));\n", rec.name)
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

	for _, rec := range records {
		for _, f := range rec.members {
			var off, size int
			if _, err := fmt.Sscan(got[rec.name+"."+f.name], &off, &size); err != nil {
				t.Fatalf("%s.%s: no layout in the program's output %q", rec.name, f.name, out)
			}
			if off != f.off || size != f.size {
				t.Errorf("struct %s member %s: C has offset %d, %d bytes; records.go reads offset %d, %d bytes", rec.name, f.name, off, size, f.off, f.size)
			}
		}
		if g := got["sizeof("+rec.name+")"]; g != fmt.Sprint(rec.size) {
			t.Errorf("sizeof(struct %s) is %s in C; records.go takes %d", rec.name, g, rec.size)
		}
	}
	for m, want := range recordMacros {
		if g := got[m]; g != fmt.Sprint(want) {
			t.Errorf("%s is %s in bpf/records.h; records.go has %d", m, g, want)
		}
	}
}
