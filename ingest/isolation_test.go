package ingest_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/google/uuid"
	"github.com/klauspost/compress/zstd"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/ingest"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/internal/store/storetest"
)

var unzstd, _ = zstd.NewReader(nil)

// decodedRows is the rows a zstd heartbeat body holds, decoded as a node
// decodes it.
func decodedRows(t *testing.T, body []byte) int {
	t.Helper()
	doc, err := unzstd.DecodeAll(body, nil)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := (&ingest.Decoder{}).Decode(doc, ingest.NewBatch())
	if err != nil {
		t.Fatal(err)
	}
	return sum.Rows
}

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
		rows += decodedRows(t, b)
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
	// The metric counts what was written, not what was refused.
	m := metrics(t, n.url)
	for table, want := range map[string]int{"heartbeats": good, "sensors": good, "events": good * shape.Events, "tcp_connections": (good + 1) * shape.Conns} {
		if line := fmt.Sprintf("netview_ingest_rows_written_total{table=%q} %d\n", table, want); !strings.Contains(m, line) {
			t.Errorf("metrics lack %q:\n%s", line, m)
		}
	}
}

// Heartbeats of many sensors whose events, each within its own window,
// cover 112 days together once made one batch the engine refused (an
// insert touching more than 100 partitions), failing all of them. Now a
// batch is sealed before it touches more than ingest.MaxDays days: every
// heartbeat is acknowledged and stored.
func TestBatchDaysCapped(t *testing.T) {
	const sensors = 110
	base := time.Now().UTC().Truncate(24 * time.Hour).Add(12 * time.Hour) // ahead: no TTL reaches them
	var bodies [][]byte
	rows := 0
	for i := range sensors {
		g := heartbeat.NewGenerator(uint64(700+i), heartbeat.Shape{Conns: 1, Events: 3})
		sent := base.Add(time.Duration(i) * 24 * time.Hour)
		h := g.Next(sent)
		h.Events[0].Time, h.Events[1].Time, h.Events[2].Time = sent.Add(-23*time.Hour), sent, sent.Add(23*time.Hour)
		b := encode(t, h)
		rows += decodedRows(t, b)
		bodies = append(bodies, b)
	}
	cfg := testConfig()
	// Without the cap all 110 would be one batch: it is written once full.
	cfg.BatchRows, cfg.BatchAge, cfg.MaxPending = rows, 3*time.Second, 10*rows
	rs := &refusalCounter{Store: storetest.Embedded(t).Store}
	n := startNode(t, cfg, rs)
	var wg sync.WaitGroup
	codes, msgs := make([]int, sensors), make([]string, sensors)
	for i, b := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				var retry string
				codes[i], msgs[i], retry = n.post(b, nil)
				// The answer of a heartbeat over the cap while the flusher
				// is busy: come back in a second.
				if codes[i] != 503 || retry != "1" {
					return
				}
				time.Sleep(time.Second)
			}
		}()
	}
	wg.Wait()
	for i := range sensors {
		if codes[i] != 200 {
			t.Errorf("heartbeat %d: %d %s", i, codes[i], msgs[i])
		}
	}
	if got := count(t, n.store, "SELECT count() AS n FROM heartbeats"); got != sensors {
		t.Errorf("heartbeats stored: %d, want %d", got, sensors)
	}
	if got := count(t, n.store, "SELECT count() AS n FROM events"); got != 3*sensors {
		t.Errorf("events stored: %d, want %d", got, 3*sensors)
	}
	// The cap, not halving after a refusal, kept each insert under 100 days.
	if r := rs.refused.Load(); r != 0 {
		t.Errorf("%d inserts refused by the engine, want none", r)
	}
	if got := count(t, n.store, "SELECT toUInt64(uniqExact(toDate(time))) AS n FROM events"); got <= 100 {
		t.Errorf("events cover %d days, want more than 100", got)
	}
}

// refusalCounter counts the inserts the engine refused for their rows.
type refusalCounter struct {
	store.Store
	refused atomic.Int64
}

func (r *refusalCounter) Insert(ctx context.Context, table string, cols proto.Input) error {
	err := r.Store.Insert(ctx, table, cols)
	if store.Refused(err) {
		r.refused.Add(1)
	}
	return err
}

// A real poison the engine itself refuses: with no time window, one
// heartbeat's events on 150 days are an insert over 100 partitions. It gets
// 422 alone; the heartbeats sent beside it are stored.
func TestEngineRefusalAnswered422(t *testing.T) {
	cfg := testConfig()
	cfg.TimeWindow, cfg.BatchAge = 0, 300*time.Millisecond
	n := startNode(t, cfg, nil)
	now := time.Now().UTC().Truncate(time.Millisecond)
	bad := heartbeat.NewGenerator(801, heartbeat.Shape{Conns: 1, Events: 1})
	answer := n.postAside(t, overDays(bad, now, 1))
	var wg sync.WaitGroup
	var goods []*heartbeat.Generator
	goodCodes := make([]int, 5)
	for i := range goodCodes {
		g := heartbeat.NewGenerator(uint64(810+i), heartbeat.Shape{Conns: 2, Events: 2})
		goods = append(goods, g)
		body := encode(t, g.Next(now))
		wg.Add(1)
		go func() {
			defer wg.Done()
			goodCodes[i], _, _ = n.post(body, nil)
		}()
	}
	wg.Wait()
	code, msg := answer()
	for i, c := range goodCodes {
		if c != 200 {
			t.Errorf("good heartbeat %d: %d", i, c)
		}
	}
	if code != 422 || !strings.Contains(msg, `"reason":"refused"`) || strings.Contains(msg, "TOO_MANY_PARTS") {
		t.Errorf("150 days of events: %d %s, want 422 refused", code, msg)
	}
	if c := count(t, n.store, "SELECT count() AS n FROM heartbeats WHERE sensor_id = {s:UUID}", store.P("s", bad.Sensor.SensorID.String())); c != 0 {
		t.Errorf("the refused heartbeat was announced (%d heartbeats rows)", c)
	}
	for _, g := range goods {
		if c := count(t, n.store, "SELECT count() AS n FROM events WHERE sensor_id = {s:UUID}", store.P("s", g.Sensor.SensorID.String())); c != 2 {
			t.Errorf("good sensor: %d events, want 2", c)
		}
	}
}
