package scaleout

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netview/netview/bench/fleetsim"
	"github.com/netview/netview/ingest/ingesttest"
	"github.com/netview/netview/internal/store"
)

// fleet runs the simulator against c with a deadline well past its own
// bounds and logs its report. What every test of the package sends with
// is the default: through nginx (Targets), the nodes' shared token and
// nginx's TLS, seqs from 1, retries backed off at most 8 s.
func (c *cluster) fleet(t *testing.T, cfg fleetsim.Config) fleetsim.Report {
	t.Helper()
	if cfg.Targets == nil {
		cfg.Targets = []string{c.lb.ingestURL}
	}
	if cfg.Token == "" {
		cfg.Token = ingestToken
	}
	if cfg.TLS == nil {
		cfg.TLS = lbTLS
	}
	if cfg.StartSeq == 0 {
		cfg.StartSeq = 1
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 8 * time.Second
	}
	limit := cfg.Duration + max(cfg.Drain, 0) + 90*time.Second
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	rep, err := fleetsim.Run(ctx, cfg)
	if err != nil {
		t.Fatalf("fleetsim.Run: %v", err)
	}
	var b strings.Builder
	rep.WriteText(&b)
	t.Logf("fleet report:\n%s", b.String())
	return rep
}

// deployWithFleet starts the deployment s asks for and fills it with a
// fleet sent through nginx, every heartbeat of which must be acknowledged:
// the opening of the tests that then read what was stored.
func deployWithFleet(t *testing.T, s setup, cfg fleetsim.Config) (*cluster, fleetsim.Report) {
	t.Helper()
	c := newCluster(t, s)
	rep := c.fleet(t, cfg)
	checkDelivered(t, &rep)
	return c, rep
}

// faultShape is the heartbeat of the fault tests: about half of
// fleetsim's default (a busy server), so that the simulator, two ingest
// nodes and the engine leave the two cores some headroom to absorb a
// fault; the topology test runs the default.
var faultShape = fleetsim.Shape{Conns: 40, Listeners: 10, UDP: 6, ShortLived: 2}

// settle waits until nothing of the fleet is on its way to storage any
// more: its heartbeats in the store stop changing for 3 s. Heartbeats in
// doubt when the simulator stopped (cut by its end while nginx or a node
// still held them) may be written after it returned. (The nodes' queues
// are no guide: probes of other sensors pass through them.)
func settle(t *testing.T, c *cluster, rep *fleetsim.Report) {
	t.Helper()
	ids := store.P("ids", uuidArray(rep.SensorIDs()))
	deadline := time.Now().Add(90 * time.Second)
	var last uint64 = 1<<64 - 1
	same := 0
	for time.Now().Before(deadline) {
		now := ingesttest.Count(t, c.store(), "SELECT count() AS n FROM heartbeats WHERE sensor_id IN {ids:Array(UUID)}", ids)
		if now == last {
			if same++; same == 3 {
				return
			}
		} else {
			same = 0
		}
		last = now
		time.Sleep(time.Second)
	}
	t.Fatalf("the fleet's heartbeats in the store were still changing 90 s after it stopped")
}

// queueRows reads netview_ingest_queue_rows from a node's /metrics (-1 when
// it cannot).
func queueRows(n *node) int64 { return metric(n, "netview_ingest_queue_rows") }

// metric reads one series of an ingest node's /metrics (-1 when it cannot).
func metric(n *node, series string) int64 {
	c := &http.Client{Timeout: 2 * time.Second}
	defer c.CloseIdleConnections()
	resp, err := c.Get(n.url() + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return -1
			}
			return int64(f)
		}
	}
	return -1
}

// checkDelivered fails unless every heartbeat offered ended acknowledged.
func checkDelivered(t *testing.T, rep *fleetsim.Report) {
	t.Helper()
	if rep.Accepted == 0 || rep.Accepted != rep.Offered || rep.Rejected+rep.Dropped+rep.InDoubt+rep.Unsent != 0 {
		t.Errorf("not every heartbeat was delivered: offered %d, accepted %d, rejected %d, dropped %d, in doubt %d, unsent %d (errors %v)",
			rep.Offered, rep.Accepted, rep.Rejected, rep.Dropped, rep.InDoubt, rep.Unsent, rep.Errors)
	}
	if rep.RowMismatches+rep.AckMismatches != 0 {
		t.Errorf("%d acknowledgements with other rows than sent, %d naming another heartbeat", rep.RowMismatches, rep.AckMismatches)
	}
}

// retriedAcks counts acknowledged heartbeats that took more than one attempt.
func retriedAcks(rep *fleetsim.Report) int {
	n := 0
	for _, s := range rep.PerSensor {
		for _, a := range s.Acks {
			if a.Attempts > 1 {
				n++
			}
		}
	}
	return n
}

// verified is what verifyStore found.
type verified struct {
	v       fleetsim.Verification
	final   uint64 // heartbeats FINAL rows of the fleet
	dupRaw  int    // heartbeats stored twice before deduplication
	dupOnce int    // of those, acknowledged at the first attempt of the sensor
}

// verifyStore checks the store against the report: every acknowledged
// heartbeat stored with the id acknowledged, nothing that was never sent,
// and nothing shown twice where the product reads (heartbeats and events
// with FINAL). A heartbeat stored twice in the raw table is allowed only as
// the trace of a retry: at most as many as there were retries, by the
// sensors (retries) or by nginx (lbRetries, -1 when not known).
func verifyStore(t *testing.T, c *cluster, rep *fleetsim.Report, lbRetries int) verified {
	t.Helper()
	settle(t, c, rep)
	st := c.store()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	v, err := fleetsim.Verify(ctx, st, rep)
	if err != nil {
		t.Fatalf("fleetsim.Verify: %v", err)
	}
	out := verified{v: v}
	t.Logf("store: %s", v.String())
	if len(v.Missing) > 0 {
		t.Errorf("LOST: %d acknowledged heartbeats are not stored, first %v", len(v.Missing), v.Missing[0])
	}
	if len(v.IDMismatch) > 0 {
		t.Errorf("%d stored heartbeats have another heartbeat_id than acknowledged, first %v", len(v.IDMismatch), v.IDMismatch[0])
	}
	if len(v.Extra) > 0 {
		t.Errorf("%d heartbeats stored that were neither acknowledged nor in doubt, first %v", len(v.Extra), v.Extra[0])
	}
	if v.Acked != int(rep.Accepted) {
		t.Errorf("report acknowledged %d heartbeats, its per-sensor lists hold %d", rep.Accepted, v.Acked)
	}
	ids := store.P("ids", uuidArray(rep.SensorIDs()))
	out.final = ingesttest.Count(t, st, "SELECT count() AS n FROM heartbeats FINAL WHERE sensor_id IN {ids:Array(UUID)}", ids)
	if out.final != uint64(v.Stored) {
		t.Errorf("SHOWN TWICE: heartbeats FINAL holds %d rows for %d distinct heartbeats of the fleet", out.final, v.Stored)
	}
	if n := ingesttest.Count(t, st, "SELECT count() AS n FROM (SELECT event_id FROM events FINAL WHERE sensor_id IN {ids:Array(UUID)} GROUP BY event_id HAVING count() > 1)", ids); n != 0 {
		t.Errorf("SHOWN TWICE: %d event_ids of the fleet show more than once in events FINAL", n)
	}
	if n := ingesttest.Count(t, st, "SELECT count() AS n FROM (SELECT flow_id FROM flows FINAL WHERE sensor_id IN {ids:Array(UUID)} GROUP BY sensor_id, flow_id HAVING count() > 1)", ids); n != 0 {
		t.Errorf("SHOWN TWICE: %d completed flows of the fleet show more than once in flows FINAL", n)
	}
	acked := rep.Acked()
	out.dupRaw = len(v.Duplicated)
	for _, k := range v.Duplicated {
		if a, ok := acked[k]; ok && a.Attempts <= 1 {
			out.dupOnce++
		}
	}
	if lbRetries >= 0 && uint64(out.dupRaw) > rep.Retries+uint64(lbRetries) {
		t.Errorf("%d heartbeats stored twice in the raw table, more than the %d retries of the sensors and %d of nginx could explain", out.dupRaw, rep.Retries, lbRetries)
	}
	if lbRetries == 0 && out.dupOnce > 0 {
		t.Errorf("%d heartbeats acknowledged at their first attempt, with no retry by nginx, are stored twice", out.dupOnce)
	}
	return out
}

func uuidArray[T fmt.Stringer](ids []T) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("'" + id.String() + "'")
	}
	b.WriteByte(']')
	return b.String()
}

// percentile of ds (p in 0..100); 0 for none.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }
