package ingest_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/netview/netview/ingest"
	"github.com/netview/netview/internal/heartbeat"
)

// Decoding into a warm batch allocates nothing: the hot path reuses the
// scanner, the string arena and every column's capacity.
func TestDecodeAllocatesNothingWhenWarm(t *testing.T) {
	g := heartbeat.NewGenerator(51, heartbeat.Shape{Conns: 100, Listeners: 20, UDP: 4, ActiveFlows: 5, CompletedFlows: 5, Events: 14})
	doc, err := json.Marshal(g.Next(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
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
		t.Fatalf("Decode allocates %.1f times per heartbeat, want 0", allocs)
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
