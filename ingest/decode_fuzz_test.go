package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/netview/netview/heartbeat"
)

// batchImage is every column of every table of b in the engine's native
// encoding, so two images are equal only if the batches hold the same rows.
func batchImage(b *Batch) [][]byte {
	out := make([][]byte, 0, 128)
	for _, t := range b.all() {
		for _, c := range t.input {
			var buf proto.Buffer
			c.Data.EncodeColumn(&buf)
			out = append(out, buf.Buf)
		}
	}
	return out
}

func sameImage(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// FuzzDecode feeds the heartbeat decoder arbitrary bytes on top of a batch
// that already holds a heartbeat with rows in every table. It must never
// panic; a refusal must be an ErrInvalid or ErrFormat, with a field name,
// that leaves the batch exactly as it was (the mark/rollback contract,
// checked byte for byte); an accepted document must
// be valid JSON, add one heartbeats row whose counts match the rows it
// added to each table, and report those rows in Summary.Rows. Either way
// the decoder and the batch stay usable.
//
// The seed corpus (testdata/fuzz/FuzzDecode) holds docs/examples/heartbeat.json,
// generated standard and telecom heartbeats and the refusals of the
// bad-input test.
func FuzzDecode(f *testing.F) {
	example, err := os.ReadFile("../docs/examples/heartbeat.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	// The batch starts with the example cut to one row per section: every
	// table then has rows to roll back to, at a fraction of the cost.
	var m map[string]any
	if err := json.Unmarshal(example, &m); err != nil {
		f.Fatal(err)
	}
	for k, v := range m {
		if rows, ok := v.([]any); ok && len(rows) > 1 {
			m[k] = rows[:1]
		}
	}
	base, err := json.Marshal(m)
	if err != nil {
		f.Fatal(err)
	}
	now := time.Date(2026, 3, 14, 9, 26, 46, 0, time.UTC)
	f.Fuzz(func(t *testing.T, doc []byte) {
		d := &Decoder{Now: func() time.Time { return now }}
		b := NewBatch()
		if _, err := d.Decode(base, b); err != nil {
			t.Fatalf("base heartbeat: %v", err)
		}
		before, rows0, m0 := batchImage(b), b.Rows(), b.mark()

		sum, err := d.Decode(doc, b)
		if cerr := b.check(); cerr != nil {
			t.Fatalf("columns out of step after Decode (err %v): %v", err, cerr)
		}
		if err != nil {
			if !errors.Is(err, heartbeat.ErrInvalid) && !errors.Is(err, heartbeat.ErrFormat) {
				t.Fatalf("error is neither ErrInvalid nor ErrFormat: %v", err)
			}
			if fe := (*heartbeat.FieldError)(nil); errors.As(err, &fe) && fe.Field == "" {
				t.Fatalf("FieldError without a field: %v", err)
			}
			if b.Heartbeats != 1 || b.mark() != m0 || !sameImage(batchImage(b), before) {
				t.Fatalf("refused document (%v) changed the batch", err)
			}
			// Only the rows read before the fault, which the sender's
			// row share is charged for: objects, and an interface's
			// addresses beyond its first (each has its '/').
			if sum != (Summary{Rows: sum.Rows}) || sum.Rows < 0 || sum.Rows > bytes.Count(doc, []byte("{"))+bytes.Count(doc, []byte("/")) {
				t.Fatalf("refused document returned a summary %+v", sum)
			}
		} else {
			if !json.Valid(doc) {
				t.Fatalf("accepted a document encoding/json calls invalid")
			}
			m := b.mark()
			if got := b.Rows() - rows0; sum.Rows != got {
				t.Fatalf("Summary.Rows = %d, but the batch grew by %d rows", sum.Rows, got)
			}
			if b.Heartbeats != 2 {
				t.Fatalf("Heartbeats = %d after the second heartbeat", b.Heartbeats)
			}
			hbs, sns := b.heartbeats.at, b.sensors.at
			if m[hbs]-m0[hbs] != 1 || m[sns]-m0[sns] > 1 {
				t.Fatalf("heartbeats grew by %d and sensors by %d rows, want 1 and at most 1", m[hbs]-m0[hbs], m[sns]-m0[sns])
			}
			hb := &b.heartbeats
			for i, c := range []*proto.ColUInt32{&hb.conns, &hb.listeners, &hb.udp, &hb.active, &hb.completed, &hb.eventsCount} {
				if got, want := int(c.Row(c.Rows()-1)), m[i]-m0[i]; got != want {
					t.Fatalf("heartbeats.%s says %d rows, the batch grew by %d", b.every[i].name, got, want)
				}
			}
			if got := hb.sensorID.Row(hb.sensorID.Rows() - 1); got != sum.SensorID {
				t.Fatalf("heartbeats row of sensor %s, summary says %s", got, sum.SensorID)
			}
			// Decoding is a function of the document: a fresh decoder and
			// batch give the same summary and rows.
			b2 := NewBatch()
			sum2, err := (&Decoder{Now: d.Now}).Decode(doc, b2)
			if err != nil || sum2 != sum || b2.Rows() != sum.Rows {
				t.Fatalf("second decode: %+v %v, first %+v", sum2, err, sum)
			}
		}
		// The decoder and the batch take the next heartbeat as usual.
		if _, err := d.Decode(base, b); err != nil {
			t.Fatalf("base heartbeat after the fuzzed document: %v", err)
		}
		if err := b.check(); err != nil {
			t.Fatal(err)
		}
	})
}
