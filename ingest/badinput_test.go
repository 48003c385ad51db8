package ingest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/netview/netview/heartbeat"
)

// mutate returns a heartbeat's JSON after f edits its generic form.
func mutate(t *testing.T, h *heartbeat.Heartbeat, f func(m map[string]any)) []byte {
	t.Helper()
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	b, err = json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func row(m map[string]any, section string, i int) map[string]any {
	return m[section].([]any)[i].(map[string]any)
}

// Every bad input gets its status and a message naming the problem, and
// leaves nothing behind: the store holds only the good heartbeat.
func TestBadInputIsRefusedAndLeavesNothing(t *testing.T) {
	cfg := testConfig()
	cfg.MaxBodyBytes = 256 << 10
	n := startNode(t, cfg, nil)
	g := heartbeat.NewGenerator(11, heartbeat.Shape{Conns: 60, Listeners: 3, UDP: 2, ActiveFlows: 2, CompletedFlows: 2, Events: 3})
	h := g.Next(time.Now())
	h.Interfaces = []heartbeat.Interface{{Netns: 4026531840, Name: "eth0", Index: 2, Up: true, MAC: "02:42:ac:11:00:02",
		Addresses: []netip.Prefix{netip.MustParsePrefix("10.0.0.5/24"), netip.MustParsePrefix("2001:db8::5/64")}}}
	z := heartbeat.Compress

	f := func(name string, body []byte, headers map[string]string, status int, want string) {
		t.Helper()
		code, msg, retry := n.post(body, headers)
		if code != status || !strings.Contains(msg, want) {
			t.Errorf("%s: got %d %s, want %d containing %q", name, code, msg, status, want)
		}
		if status == 503 && retry == "" {
			t.Errorf("%s: 503 without Retry-After", name)
		}
	}
	good, _ := heartbeat.Encode(h)

	f("no token", good, map[string]string{"Authorization": ""}, 401, "bearer token")
	f("wrong token", good, map[string]string{"Authorization": "Bearer nope"}, 401, "bearer token")
	f("basic auth", good, map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, 401, "bearer token")
	f("gzip", good, map[string]string{"Content-Encoding": "gzip"}, 415, "gzip")
	f("not zstd", []byte("this is not zstd at all"), nil, 400, "invalid zstd")
	f("truncated zstd", good[:len(good)/2], nil, 400, "invalid zstd")
	f("not json", z([]byte("{nope")), nil, 400, "invalid JSON")
	f("json array", z([]byte("[1,2]")), nil, 400, "(document)")
	f("trailing data", z(append(mutate(t, h, func(map[string]any) {}), " {}"...)), nil, 400, "trailing")
	f("unknown format", z(mutate(t, h, func(m map[string]any) { m["format"] = 2 })), nil, 400, "unknown heartbeat format version 2")
	f("format missing", z(mutate(t, h, func(m map[string]any) { delete(m, "format") })), nil, 400, "format: required")
	f("bad sensor id", z(mutate(t, h, func(m map[string]any) { m["sensor"].(map[string]any)["sensor_id"] = "host-1" })), nil, 400, "sensor.sensor_id: not a UUID")
	f("bad flavor", z(mutate(t, h, func(m map[string]any) { m["sensor"].(map[string]any)["flavor"] = "deluxe" })), nil, 400, "sensor.flavor")
	f("port range", z(mutate(t, h, func(m map[string]any) { row(m, "tcp_connections", 59)["local_port"] = 70000 })), nil, 400, "tcp_connections[59].local_port: port out of range")
	f("bad address", z(mutate(t, h, func(m map[string]any) { row(m, "tcp_connections", 3)["remote_address"] = "10.0.0.300" })), nil, 400, "tcp_connections[3].remote_address: not an IP address")
	f("missing state", z(mutate(t, h, func(m map[string]any) { delete(row(m, "tcp_connections", 1), "state") })), nil, 400, "tcp_connections[1].state: required")
	f("listen in conns", z(mutate(t, h, func(m map[string]any) { row(m, "tcp_connections", 0)["state"] = "LISTEN" })), nil, 400, "tcp_listeners")
	f("bad time", z(mutate(t, h, func(m map[string]any) { row(m, "events", 0)["time"] = "yesterday" })), nil, 400, "events[0].time: not an RFC 3339 time")
	f("flow event", z(mutate(t, h, func(m map[string]any) { row(m, "events", 2)["kind"] = "network_flow" })), nil, 400, "derived from completed_flows")
	f("final state", z(mutate(t, h, func(m map[string]any) { row(m, "completed_flows", 1)["state"] = "ESTABLISHED" })), nil, 400, "completed_flows[1].state")
	f("wrong type", z(mutate(t, h, func(m map[string]any) { m["seq"] = "7" })), nil, 400, "seq: invalid JSON: expected number")
	f("negative seq", z(mutate(t, h, func(m map[string]any) { m["seq"] = -1 })), nil, 400, "seq")
	// SCTP rows and capabilities. The first association is good, so a
	// refusal must take its row out again.
	assoc := func(state string, locals int) map[string]any {
		local := make([]any, locals)
		for i := range local {
			local[i] = fmt.Sprintf("10.40.%d.%d", i/250, 1+i%250)
		}
		return map[string]any{"assoc_id": 1, "state": state, "local_port": 38412, "remote_port": 36412,
			"local_addresses": local, "remote_addresses": []any{"10.50.1.2", "10.51.1.2"}, "inode": 7001}
	}
	sctp := func(rows ...map[string]any) func(m map[string]any) {
		return func(m map[string]any) {
			l := []any{}
			for _, r := range rows {
				l = append(l, r)
			}
			m["sctp_associations"] = l
			m["sctp_endpoints"] = []any{map[string]any{"local_port": 38412, "local_addresses": []any{"10.40.0.1"}, "inode": 7000}}
		}
	}
	caps := func(c map[string]any) func(m map[string]any) {
		return func(m map[string]any) { m["sensor"].(map[string]any)["capabilities"] = c }
	}
	f("bad sctp state", z(mutate(t, h, sctp(assoc("ESTABLISHED", 2), assoc("UP", 2)))), nil, 400, `sctp_associations[1].state: \"UP\" is not one of`)
	f("sctp listen state", z(mutate(t, h, sctp(assoc("LISTEN", 1)))), nil, 400, "sctp_associations[0].state")
	f("too many sctp addresses", z(mutate(t, h, sctp(assoc("ESTABLISHED", 1), assoc("ESTABLISHED", 65)))), nil, 400, "sctp_associations[1].local_addresses: more than 64 addresses")
	f("bad sctp address", z(mutate(t, h, sctp(func() map[string]any {
		a := assoc("ESTABLISHED", 1)
		a["remote_addresses"] = []any{"10.50.1.2", "fe80::1%eth0"}
		return a
	}()))), nil, 400, "sctp_associations[0].remote_addresses: not an IP address")
	f("sctp addresses missing", z(mutate(t, h, func(m map[string]any) {
		sctp(assoc("ESTABLISHED", 1))(m)
		delete(m["sctp_endpoints"].([]any)[0].(map[string]any), "local_addresses")
	})), nil, 400, "sctp_endpoints[0].local_addresses: required")
	f("capability key", z(mutate(t, h, caps(map[string]any{"sctp": "available", "Flow-Source": "ebpf"}))), nil, 400, `sensor.capabilities: key \"Flow-Source\"`)
	f("capability value", z(mutate(t, h, caps(map[string]any{"sctp": strings.Repeat("x", 257)}))), nil, 400, "sensor.capabilities.sctp: longer than 256 bytes")
	f("capability not a string", z(mutate(t, h, caps(map[string]any{"lsm": true}))), nil, 400, "sensor.capabilities.lsm")
	f("too many capabilities", z(mutate(t, h, func(m map[string]any) {
		c := map[string]any{}
		for i := range 33 {
			c[fmt.Sprintf("k%d", i)] = "x"
		}
		caps(c)(m)
	})), nil, 400, "sensor.capabilities: more than 32 entries")
	// Interfaces: a second one is bad, so the first one's rows must be
	// taken out again.
	ifaces := func(edit func(i map[string]any), n int) func(m map[string]any) {
		return func(m map[string]any) {
			l := m["interfaces"].([]any)
			for range n - 1 {
				l = append(l, l[0])
			}
			bad := map[string]any{}
			for k, v := range l[0].(map[string]any) {
				bad[k] = v
			}
			edit(bad)
			m["interfaces"] = append(l, bad)
		}
	}
	f("bad mac", z(mutate(t, h, ifaces(func(i map[string]any) { i["mac"] = "02:42:AC:11:00:02" }, 1))), nil, 400, `interfaces[1].mac: \"02:42:AC:11:00:02\" is not a MAC address`)
	f("interface address without a length", z(mutate(t, h, ifaces(func(i map[string]any) { i["addresses"] = []any{"10.0.0.6/24", "10.0.0.7"} }, 1))), nil, 400,
		`interfaces[1].addresses: \"10.0.0.7\" is not an address with its prefix length`)
	f("too many interfaces", z(mutate(t, h, ifaces(func(map[string]any) {}, heartbeat.MaxInterfaces))), nil, 400, "interfaces[4096]: more than 4096 interfaces")
	f("bad site", z(mutate(t, h, func(m map[string]any) { m["sensor"].(map[string]any)["site"] = "Site 1" })), nil, 400, `sensor.site: \"Site 1\": want a-z`)
	deep := strings.Repeat("[", 100) + strings.Repeat("]", 100)
	f("too deep", z([]byte(`{"format":1,"x":`+deep+`}`)), nil, 400, "deep")

	// Over the compressed limit: refused from Content-Length, before the body
	// is read (a raw connection that sends only the start of it).
	// A body of 300 KiB announced, only its first KiB sent.
	head := fmt.Sprintf("POST /v1/heartbeat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Encoding: zstd\r\nContent-Length: %d\r\n\r\n", token, 300<<10)
	if code, msg := rawPost(t, n.url, head, make([]byte, 1024), false); code != 413 || !strings.Contains(msg, "over the limit") {
		t.Errorf("body over limit: %d %s, want 413", code, msg)
	}
	f("blank plain body", bytes.Repeat([]byte(" "), 200<<10), map[string]string{"Content-Encoding": ""}, 400, "invalid JSON")

	// Nothing of the refused heartbeats reached the store; the good one does.
	n.send(h)
	for table, want := range map[string]uint64{"heartbeats": 1, "tcp_connections": 60, "events": 5, "flows": 2, "sensors": 1, "sctp_associations": 0, "sctp_endpoints": 0, "host_addresses": 2} {
		if got := count(t, n.store, "SELECT count() AS n FROM "+table); got != want {
			t.Errorf("%s holds %d rows, want %d", table, got, want)
		}
	}
}

// A zstd bomb (32 KiB that would expand to 1 GiB) is refused with 413 while
// memory stays put: decompression stops at a ratio cap, long before the
// absolute limit, and it streams, so nothing is allocated past what it read.
func TestZstdBombIsRefusedCheaply(t *testing.T) {
	bomb := zstdBomb(t, 1<<30)
	if len(bomb) > 33<<10 {
		t.Fatalf("bomb is %d bytes; the test wants a small one", len(bomb))
	}
	cfg := testConfig()
	cfg.MaxDecodedBytes = 64 << 20
	n := startNode(t, cfg, nil)
	// Warm up the pools so the measure sees only what the bombs cost.
	g := heartbeat.NewGenerator(12, heartbeat.Shape{Conns: 10})
	n.send(g.Next(time.Now()))
	for _, c := range []struct{ senders, limitMiB int }{{1, 6}, {8, 32}} {
		before := memory(t, "VmRSS:")
		// Reset the peak, so VmHWM below is the high-water mark of the bombs.
		if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
			t.Fatalf("reset peak RSS: %v", err)
		}
		var wg sync.WaitGroup
		for range c.senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, msg, _ := n.post(bomb, nil)
				if code != 413 {
					t.Errorf("bomb: %d %s, want 413", code, msg)
				}
			}()
		}
		wg.Wait()
		grew := memory(t, "VmHWM:") - before
		t.Logf("%d concurrent %d-byte bombs of 1 GiB: peak RSS grew %d KiB", c.senders, len(bomb), grew>>10)
		if grew > c.limitMiB<<20 {
			t.Errorf("%d bombs: peak RSS grew by %d MiB, want under %d MiB", c.senders, grew>>20, c.limitMiB)
		}
	}
}

// zstdBomb hand-builds a valid zstd frame of RLE blocks: 4 bytes for every
// 128 KiB of output, the densest zstd allows (so 1 GiB takes 32 KiB).
func zstdBomb(t *testing.T, size int) []byte {
	t.Helper()
	const block = 128 << 10
	out := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38} // magic, no content size, 128 KiB window
	for i := 0; i < size/block; i++ {
		last := 0
		if i == size/block-1 {
			last = 1
		}
		hdr := last | 1<<1 | block<<3 // RLE block of 128 KiB
		out = append(out, byte(hdr), byte(hdr>>8), byte(hdr>>16), 'A')
	}
	// The frame is real zstd: the library expands it (a prefix is enough to see).
	d, err := zstd.NewReader(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	got := make([]byte, 3*block)
	if _, err := io.ReadFull(d, got); err != nil || got[3*block-1] != 'A' {
		t.Fatalf("hand-built frame does not decode: %v", err)
	}
	return out
}

// memory reads one size field of /proc/self/status (VmRSS, VmHWM) in bytes.
func memory(t *testing.T, field string) int {
	t.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no " + field)
	return 0
}
