package heartbeat_test

import (
	"bytes"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/netview/netview/heartbeat"
)

// FuzzRoundTrip: whatever the Decoder accepts, the Encoder writes back so
// that it reads the same, and a reusing Decoder hands a Sink the same rows
// as Decode. The same is compared as the encoding: a time written with
// +00:00 reads in time.Local and comes back as Z, the same instant.
func FuzzRoundTrip(f *testing.F) {
	if ex, err := os.ReadFile("../docs/examples/heartbeat.json"); err == nil {
		f.Add(ex)
	}
	var e heartbeat.Encoder
	f.Add(e.AppendJSON(nil, full()))
	g := heartbeat.NewGenerator(3, heartbeat.Shape{Conns: 3, Listeners: 2, UDP: 2, ActiveFlows: 2, CompletedFlows: 2, Events: 4, Telecom: true})
	f.Add(e.AppendJSON(nil, g.Next(time.Now())))
	var d heartbeat.Decoder
	f.Fuzz(func(t *testing.T, doc []byte) {
		h, err := heartbeat.Decode(doc)
		if err != nil {
			return
		}
		var enc heartbeat.Encoder
		first := enc.AppendJSON(nil, h)
		again, err := heartbeat.Decode(first)
		if err != nil {
			t.Fatalf("refuses its own encoding of an accepted document: %v", err)
		}
		if second := enc.AppendJSON(nil, again); !bytes.Equal(second, first) {
			t.Fatalf("the re-encoded document reads otherwise:\n got %s\nwant %s", second, first)
		}
		var c copySink
		hdr, err := d.Decode(doc, &c)
		if err != nil {
			t.Fatalf("the reusing Decoder refuses what Decode accepts: %v", err)
		}
		c.h.Format, c.h.HeartbeatID, c.h.Seq, c.h.SentAt, c.h.Sensor, c.h.SnapshotsDropped =
			hdr.Format, hdr.HeartbeatID, hdr.Seq, hdr.SentAt, hdr.Sensor, hdr.SnapshotsDropped
		if !reflect.DeepEqual(&c.h, h) {
			t.Fatalf("the reusing Decoder's rows differ from Decode's")
		}
	})
}
