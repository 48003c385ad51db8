package ingest_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/google/uuid"
	"github.com/klauspost/compress/zstd"

	"github.com/netview/netview/ingest"
	"github.com/netview/netview/internal/heartbeat"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/internal/store/storetest"
)

var unzstd, _ = zstd.NewReader(nil)

// poisonStore is the real embedded store, refusing (as the engine refuses
// a value it cannot parse) any events insert holding one sensor's rows.
type poisonStore struct {
	store.Store
	sensor uuid.UUID
}

func (p *poisonStore) Insert(ctx context.Context, table string, cols proto.Input) error {
	if table == "events" {
		for _, c := range cols {
			if ids, ok := c.Data.(*proto.ColUUID); ok && c.Name == "sensor_id" {
				for _, id := range *ids {
					if id == p.sensor {
						return &store.EngineError{Message: "Code: 27. DB::Exception: Cannot parse input: poisoned value. (CANNOT_PARSE_INPUT_ASSERTION_FAILED)"}
					}
				}
			}
		}
	}
	return p.Store.Insert(ctx, table, cols)
}

// One heartbeat whose rows storage refuses once failed the batch of every
// heartbeat sharing it (51 answers of 503). Now the batch is halved down
// to it: it alone gets 422, the 50 others 200, and each of their rows is
// stored exactly once.
func TestPoisonedHeartbeatAloneRefused(t *testing.T) {
	const good = 50
	shape := heartbeat.Shape{Conns: 3, Events: 2}
	now := time.Now().UTC()
	var gens []*heartbeat.Generator
	var bodies [][]byte
	rows := 0
	for i := range good + 1 {
		g := heartbeat.NewGenerator(uint64(600+i), shape)
		b := encode(t, g.Next(now))
		doc, err := unzstd.DecodeAll(b, nil)
		if err != nil {
			t.Fatal(err)
		}
		sum, err := (&ingest.Decoder{}).Decode(doc, ingest.NewBatch())
		if err != nil {
			t.Fatal(err)
		}
		rows += sum.Rows
		gens, bodies = append(gens, g), append(bodies, b)
	}
	poisoned := gens[good].Sensor.SensorID
	ps := &poisonStore{Store: storetest.Embedded(t).Store, sensor: poisoned}
	cfg := testConfig()
	// The batch is written once all 51 are in it, not before.
	cfg.BatchRows, cfg.BatchAge, cfg.MaxPending = rows, time.Minute, 10*rows
	n := startNode(t, cfg, ps)

	codes, msgs := make([]int, len(bodies)), make([]string, len(bodies))
	var wg sync.WaitGroup
	for i, b := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], msgs[i], _ = n.post(b, nil)
		}()
	}
	wg.Wait()
	for i := range good {
		if codes[i] != 200 {
			t.Errorf("good heartbeat %d: %d %s", i, codes[i], msgs[i])
		}
	}
	if codes[good] != 422 || !strings.Contains(msgs[good], `"reason":"refused"`) || strings.Contains(msgs[good], "poisoned") || strings.Contains(msgs[good], "Code:") {
		t.Errorf("poisoned heartbeat: %d %s, want 422 refused without the engine's text", codes[good], msgs[good])
	}
	for i, g := range gens {
		s := store.P("s", g.Sensor.SensorID.String())
		wantHB, wantEv, wantConn := uint64(1), uint64(shape.Events), uint64(shape.Conns)
		if i == good {
			// Its connections went through before the events were refused;
			// it must not be announced.
			wantHB, wantEv = 0, 0
		}
		for _, c := range []struct {
			q    string
			want uint64
		}{
			{"SELECT count() AS n FROM heartbeats WHERE sensor_id = {s:UUID}", wantHB},
			{"SELECT count() AS n FROM sensors WHERE sensor_id = {s:UUID}", wantHB},
			{"SELECT count() AS n FROM events WHERE sensor_id = {s:UUID}", wantEv},
			{"SELECT count() AS n FROM tcp_connections WHERE sensor_id = {s:UUID}", wantConn},
		} {
			if got := count(t, n.store, c.q, s); got != c.want {
				t.Errorf("sensor %d: %s = %d, want %d", i, c.q, got, c.want)
			}
		}
	}
}
