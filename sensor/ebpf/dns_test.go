package ebpf

import (
	"strings"
	"testing"
)

func query(name string, qtype uint16) []byte {
	b := []byte{0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0}
	if name != "" {
		for _, l := range strings.Split(name, ".") {
			b = append(b, byte(len(l)))
			b = append(b, l...)
		}
	}
	return append(b, 0, byte(qtype>>8), byte(qtype), 0, 1)
}

func TestParseQuery(t *testing.T) {
	f := func(msg []byte, tcp bool, name, qtype string, wantErr error) {
		t.Helper()
		n, ty, err := ParseQuery(msg, tcp)
		if err != wantErr || n != name || ty != qtype {
			t.Errorf("ParseQuery(%x, %v) = %q %q %v; want %q %q %v", msg, tcp, n, ty, err, name, qtype, wantErr)
		}
	}
	f(query("example.com", 1), false, "example.com", "A", nil)
	f(query("_sip._udp.example.org", 33), false, "_sip._udp.example.org", "SRV", nil)
	f(query("", 2), false, ".", "NS", nil)
	f(query("x.test", 65280), false, "x.test", "TYPE65280", nil)
	f(append([]byte{0, 29}, query("example.com", 28)...), true, "example.com", "AAAA", nil)
	// Hostile or other input.
	resp := query("example.com", 1)
	resp[2] |= 0x80
	f(resp, false, "", "", ErrNotQuery)
	noQ := query("example.com", 1)
	noQ[5] = 0
	f(noQ, false, "", "", ErrNotQuery)
	f([]byte{1, 2, 3}, false, "", "", ErrNotQuery)
	f(nil, true, "", "", ErrNotQuery)
	truncated := query("example.com", 1)
	f(truncated[:len(truncated)-5], false, "", "", ErrBadName) // no type
	f(truncated[:16], false, "", "", ErrBadName)               // inside a label
	pointer := append(query("", 1)[:12], 0xc0, 0x0c, 0, 1, 0, 1)
	f(pointer, false, "", "", ErrBadName)
	f(query("bad name.test", 1), false, "", "", ErrBadName)
	f(query("caf\xc3\xa9.test", 1), false, "", "", ErrBadName)
	f(query(strings.Repeat("a", 64)+".test", 1), false, "", "", ErrBadName)
	long := strings.Repeat(strings.Repeat("b", 63)+".", 4) + "c" // 257 bytes
	f(query(long, 1), false, "", "", ErrBadName)
	ok := strings.Repeat(strings.Repeat("b", 63)+".", 3) + strings.Repeat("d", 62) // 254 bytes, the longest name
	f(query(ok, 1), false, ok, "A", nil)
}

// FuzzParseQuery: any bytes give a name that fits the heartbeat (at most
// 255 printable bytes) or an error, and never a panic.
func FuzzParseQuery(f *testing.F) {
	f.Add(query("example.com", 1), false)
	f.Add(append([]byte{0, 29}, query("example.com", 28)...), true)
	f.Add([]byte{0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c}, false)
	f.Fuzz(func(t *testing.T, msg []byte, tcp bool) {
		name, qtype, err := ParseQuery(msg, tcp)
		if err != nil {
			if name != "" || qtype != "" {
				t.Fatalf("error %v with name %q type %q", err, name, qtype)
			}
			return
		}
		if len(name) == 0 || len(name) > 255 || len(qtype) == 0 || len(qtype) > 16 {
			t.Fatalf("name %q type %q out of bounds", name, qtype)
		}
		for i := 0; i < len(name); i++ {
			if name[i] <= ' ' || name[i] > '~' {
				t.Fatalf("name %q has byte %#x", name, name[i])
			}
		}
	})
}
