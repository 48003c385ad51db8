package heartbeat_test

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/klauspost/compress/zstd"

	"github.com/netview/netview/heartbeat"
)

// The reusing Encoder writes the same document as Encode, heartbeat after
// heartbeat, whatever the previous one left in its buffers.
func TestEncoderMatchesEncode(t *testing.T) {
	g := heartbeat.NewGenerator(5, heartbeat.Shape{Conns: 300, Listeners: 5, CompletedFlows: 200, Events: 300})
	small := heartbeat.NewGenerator(6, heartbeat.Shape{Conns: 2})
	dec, _ := zstd.NewReader(nil)
	defer dec.Close()
	var e heartbeat.Encoder
	for i, h := range []*heartbeat.Heartbeat{g.Next(time.Now()), small.Next(time.Now()), g.Next(time.Now())} {
		want, err := heartbeat.Encode(h)
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.Encode(h)
		if err != nil {
			t.Fatal(err)
		}
		w, _ := dec.DecodeAll(want, nil)
		d, err := dec.DecodeAll(got, nil)
		if err != nil || !bytes.Equal(d, w) {
			t.Fatalf("heartbeat %d: Encoder wrote %d bytes (%v), Encode %d", i, len(d), err, len(w))
		}
	}
}

// BenchmarkEncode: a heartbeat of a host with 1,000 new connections a
// second (15,000 completed flows and 30,000 events an interval), with
// Encode and with a reused Encoder, in the same run.
func BenchmarkEncode(b *testing.B) {
	h := heartbeat.NewGenerator(7, heartbeat.Shape{Conns: 200, Listeners: 20, CompletedFlows: 15000, Events: 30000}).Next(time.Now())
	b.Run("Encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := heartbeat.Encode(h); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Encoder", func(b *testing.B) {
		b.ReportAllocs()
		var e heartbeat.Encoder
		for b.Loop() {
			if _, err := e.Encode(h); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// The hand-written flows and events match encoding/json byte for byte on
// what the generator does not make: zero and v4-mapped addresses, missing
// end times and processes, strings that need escaping, DNS answers, other
// time zones, and nil against empty sections.
func TestAppendMatchesJSON(t *testing.T) {
	zone := time.FixedZone("IST", 5*3600+1800)
	t0 := time.Date(2026, 11, 30, 18, 0, 0, 123456789, time.UTC)
	weird := []string{"", "nginx", `a"b\c`, "<script>&", "caf\u00e9", "\u2028line", "tab\there", "bad\xffutf8", "\x01ctl"}
	var flows []heartbeat.Flow
	var events []heartbeat.Event
	for i, s := range weird {
		flows = append(flows, heartbeat.Flow{
			FlowID: uuid.New(), Protocol: "tcp", Direction: "outbound", SrcAddress: netip.MustParseAddr("::ffff:10.0.0.1"), SrcPort: uint16(i),
			DstAddress: netip.MustParseAddr("2001:db8::1"), DstPort: 443, Process: heartbeat.Process{PID: uint32(i), Binary: s, BinaryPath: "/usr/bin/" + s, UID: uint32(i)},
			StartedAt: t0.In(zone), BytesSent: uint64(i) << 40, State: s, Source: "ebpf+inet_diag",
		})
		events = append(events, heartbeat.Event{
			EventID: uuid.New(), Kind: "dns_lookup", Time: t0.Add(time.Duration(i)), Protocol: s, SrcPort: uint16(i),
			DstAddress: netip.MustParseAddr("127.0.0.53"), Process: heartbeat.Process{Binary: s}, QueryName: s + ".example", QueryType: "AAAA",
			Answers: []netip.Addr{netip.MustParseAddr("::1"), netip.MustParseAddr("10.1.2.3")}, State: s, Source: s,
		})
	}
	flows = append(flows, heartbeat.Flow{}) // zero addresses, times, process
	flows[0].EndedAt = t0.Add(time.Second)
	events = append(events, heartbeat.Event{}) // every optional member absent

	h := heartbeat.NewGenerator(8, heartbeat.Shape{Conns: 3}).Next(t0)
	var e heartbeat.Encoder
	dec, _ := zstd.NewReader(nil)
	defer dec.Close()
	for _, c := range []struct {
		name   string
		flows  []heartbeat.Flow
		events []heartbeat.Event
	}{{"edge cases", flows, events}, {"nil sections", nil, nil}, {"empty sections", []heartbeat.Flow{}, []heartbeat.Event{}}} {
		h.CompletedFlows, h.Events = c.flows, c.events
		want, err := json.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		z, err := e.Encode(h)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := dec.DecodeAll(z, nil)
		if !bytes.Equal(got, want) {
			i := 0
			for i < min(len(got), len(want)) && got[i] == want[i] {
				i++
			}
			t.Fatalf("%s: differs at byte %d:\n got %q\nwant %q", c.name, i, got[max(0, i-40):min(len(got), i+60)], want[max(0, i-40):min(len(want), i+60)])
		}
	}
}
