package ingest_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/ingest"
)

// Decoding into a warm batch allocates nothing: the hot path reuses the
// scanner, the string arena and every column's capacity.
func TestDecodeAllocatesNothingWhenWarm(t *testing.T) {
	g := heartbeat.NewGenerator(51, heartbeat.Shape{Conns: 100, Listeners: 20, UDP: 4, ActiveFlows: 5, CompletedFlows: 5, Events: 14})
	h := g.Next(time.Now())
	doc, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	// A telecom sensor's heartbeat: capabilities and multi-homed SCTP rows.
	tel := *h
	tel.Sensor.Capabilities = map[string]string{"flow_source": "inet_diag", "sctp": "available", "lsm": "unavailable"}
	addrs := []netip.Addr{netip.MustParseAddr("10.40.5.15"), netip.MustParseAddr("2001:db8:41::15")}
	for i := range 8 {
		tel.SCTPAssociations = append(tel.SCTPAssociations, heartbeat.SCTPAssoc{AssocID: uint32(i), State: "ESTABLISHED", LocalPort: 38412,
			RemotePort: uint16(36412 + i), LocalAddresses: addrs, RemoteAddresses: addrs, PrimaryAddress: addrs[1], Inode: uint64(7000 + i),
			Process: heartbeat.Process{PID: 1400, Binary: "open5gs-amfd", BinaryPath: "/usr/bin/open5gs-amfd"}})
	}
	tel.SCTPEndpoints = []heartbeat.SCTPEndpoint{{LocalPort: 38412, LocalAddresses: addrs, Inode: 7000}}
	// Its site and interfaces: host_addresses rows cost nothing either.
	tel.Sensor.Site = "fra1.core"
	for i := range 6 {
		tel.Interfaces = append(tel.Interfaces, heartbeat.Interface{Netns: 4026531840 + uint64(i%2), Name: fmt.Sprintf("eth%d", i), Index: uint32(i + 1),
			Up: i%3 != 0, MAC: fmt.Sprintf("02:00:00:00:00:%02x", i), Addresses: []netip.Prefix{netip.PrefixFrom(addrs[0], 24), netip.PrefixFrom(addrs[1], 64)}})
	}
	telDoc, err := json.Marshal(&tel)
	if err != nil {
		t.Fatal(err)
	}
	for name, doc := range map[string][]byte{"standard": doc, "telecom": telDoc} {
		var d ingest.Decoder
		now := time.Now()
		d.Now = func() time.Time { return now }
		b := ingest.NewBatch()
		decode := func() {
			b.Reset()
			if _, err := d.Decode(doc, b); err != nil {
				t.Fatal(err)
			}
		}
		decode() // warm up: columns and arena reach their size
		if allocs := testing.AllocsPerRun(50, decode); allocs != 0 {
			t.Errorf("%s: Decode allocates %.1f times per heartbeat, want 0", name, allocs)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	g := heartbeat.NewGenerator(52, heartbeat.Shape{Conns: 100, Listeners: 20})
	doc, _ := json.Marshal(g.Next(time.Now()))
	var d ingest.Decoder
	batch := ingest.NewBatch()
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		batch.Reset()
		if _, err := d.Decode(doc, batch); err != nil {
			b.Fatal(err)
		}
	}
}

// The example of docs/heartbeat.md makes the rows it describes: one per
// socket, listener, active flow and SCTP association and endpoint, a flows
// row and a network_flow event per completed flow, one per event, and the
// heartbeats and sensors rows.
func TestExampleHeartbeatRows(t *testing.T) {
	raw, err := os.ReadFile("../docs/examples/heartbeat.json")
	if err != nil {
		t.Fatal(err)
	}
	h, err := heartbeat.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := len(h.TCPConnections) + len(h.TCPListeners) + len(h.UDPListeners) + len(h.ActiveFlows) +
		2*len(h.CompletedFlows) + len(h.Events) + len(h.SCTPAssociations) + len(h.SCTPEndpoints) + 2
	for _, i := range h.Interfaces {
		want += len(i.Addresses) // a host_addresses row each
	}
	if want != 29 {
		t.Errorf("the example has %d rows' worth of data; docs/heartbeat.md describes 29", want)
	}
	b := ingest.NewBatch()
	var d ingest.Decoder
	sum, err := d.Decode(raw, b)
	if err != nil {
		t.Fatalf("the example heartbeat is refused: %v", err)
	}
	if sum.Rows != want || b.Rows() != want || b.Heartbeats != 1 {
		t.Errorf("decoding the example made %d rows (batch holds %d, %d heartbeats), want %d and 1", sum.Rows, b.Rows(), b.Heartbeats, want)
	}
	if sum.HeartbeatID != h.HeartbeatID || sum.SensorID != h.Sensor.SensorID || sum.Seq != h.Seq {
		t.Errorf("summary %+v, example has %s %s %d", sum, h.HeartbeatID, h.Sensor.SensorID, h.Seq)
	}
}
