// Package crashtest runs the ingest node as a real process, kills it with
// SIGKILL while heartbeats are in flight and batches are half written,
// restarts it on the same data, and checks through the store that every
// acknowledged heartbeat was kept and that nothing shows twice in what the
// product reads.
package crashtest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/google/uuid"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/ingest/ingesttest"
	"github.com/netview/netview/internal/store"

	"github.com/netview/netview/internal/loopback"
	"github.com/netview/netview/internal/sleep"
)

const (
	numSensors = 6
	numBeats   = 40 // heartbeats per sensor
	numKills   = 3
	token      = "crash-test-token-0123456789"
	batchAge   = "300ms"

	batchAgeDur = 300 * time.Millisecond
)

var shape = heartbeat.Shape{Conns: 100, Listeners: 20, Events: 10, CompletedFlows: 3}

// Sensors send their heartbeats in order and retry each until it is
// acknowledged, while a killer SIGKILLs the ingest process mid-batch and
// restarts it on the same data. Afterwards every acknowledged heartbeat is
// stored, and heartbeats written twice (the node died after storing them
// but before answering) show once in every view.
func TestKill9MidBatchLosesNothingDoublesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds netview-ingest and SIGKILLs it several times with the real engine (about half a minute)")
	}
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	// The in-process engine runs one data folder per process, for the life
	// of the process: after a first run has opened the node's folder here
	// to check it, a repeat (-count=N) cannot start a node on a new one.
	if !firstRun.CompareAndSwap(false, true) {
		t.Skip("the check of an earlier run holds this process's engine; run with -count=1")
	}
	tmp := t.TempDir()
	bin := buildIngest(ctx, t, tmp)
	t.Logf("built netview-ingest in %v", time.Since(began).Round(time.Millisecond))

	// Not under tmp: once this process opens the folder to check it, its
	// engine keeps merging there until the process exits, and a merge
	// writing into a folder t.TempDir's cleanup is deleting aborts the
	// whole test binary (seen: "Cannot set modification time to file").
	// Like storetest's engine folder, it is left to the system's /tmp.
	dataRoot, err := os.MkdirTemp("", "netview-crashtest-")
	if err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(dataRoot, "ch")
	n := &node{bin: bin, addr: loopback.FreeAddr(t), dsn: "embedded:" + dataDir, logDir: tmp}
	t.Cleanup(n.killAll)
	p, err := n.startHealthy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ingest up on %s after %v", n.addr, time.Since(began).Round(time.Millisecond))

	// runCtx stops the sensors early when the killer cannot bring the
	// node back.
	runCtx, stopRun := context.WithCancelCause(ctx)
	defer stopRun(nil)

	var inFlight atomic.Int64
	url := "http://" + n.addr + "/v1/heartbeat"
	results := make([]*sensorRun, numSensors)
	sensorsDone := make(chan struct{})
	var sensors sync.WaitGroup
	base := time.Now().Add(-15 * time.Minute)
	for s := range numSensors {
		r := newSensorRun(uint64(1000+s), base)
		results[s] = r
		sensors.Add(1)
		go func() {
			defer sensors.Done()
			r.run(runCtx, url, &inFlight)
		}()
	}
	go func() { sensors.Wait(); close(sensorsDone) }()

	// The killer: after 1–1.5 s of traffic, wait until the node holds
	// accepted rows not yet written and requests are waiting, then SIGKILL
	// it and bring it back on the same data folder and port. Each kill aims
	// at a random moment from late in the open batch to the end of its
	// write, which starts batch-age (plus up to a quarter of it, the
	// ticker) after the oldest waiting request was sent and takes tens of
	// milliseconds: a kill before the write loses accepted heartbeats that
	// must come back by retry, a kill during or just after it leaves
	// heartbeats stored in part or in full but never acknowledged, which the
	// retries write again.
	var kills []killRecord
	var killerErr error
	killerDone := make(chan struct{})
	go func() {
		defer close(killerDone)
		for k := range numKills {
			if !sleep.For(runCtx, time.Second+rand.N(500*time.Millisecond)) {
				return
			}
			select {
			case <-sensorsDone:
				return
			default:
			}
			queued := waitMidBatch(runCtx, n.addr, &inFlight, 2*time.Second)
			var aim time.Duration
			if oldest := oldestAttempt(results); !oldest.IsZero() {
				aim = time.Until(oldest.Add(batchAgeDur - 50*time.Millisecond + rand.N(200*time.Millisecond)))
				sleep.For(runCtx, aim)
			}
			flying := inFlight.Load()
			at := time.Since(began)
			if err := p.kill(runCtx, syscall.SIGKILL); err != nil {
				killerErr = fmt.Errorf("kill %d: %w", k+1, err)
				stopRun(killerErr)
				return
			}
			rec := killRecord{at: at, aim: aim, queuedRows: queued, inFlight: flying, exit: fmt.Sprint(p.err)}
			restart := time.Now()
			np, err := n.startHealthy(runCtx)
			if err != nil {
				killerErr = fmt.Errorf("restart after kill %d: %w", k+1, err)
				stopRun(killerErr)
				return
			}
			p = np
			rec.restart = time.Since(restart)
			kills = append(kills, rec)
		}
	}()

	select {
	case <-sensorsDone:
	case <-ctx.Done():
		<-sensorsDone // they stop on ctx too
	}
	<-killerDone
	sendTime := time.Since(began)
	if killerErr != nil {
		t.Fatalf("killer: %v", killerErr)
	}
	if err := ctx.Err(); err != nil {
		t.Fatalf("sensors not done within the overall deadline (%v): %v", time.Since(began).Round(time.Second), err)
	}

	var attempts, retries, connErrs, unavailable, other5xx int
	acked := map[uuid.UUID]bool{}
	for s, r := range results {
		if r.err != nil {
			t.Fatalf("sensor %d: %v", s, r.err)
		}
		attempts += r.attempts
		retries += r.attempts - len(r.sent)
		connErrs += r.connErrs
		unavailable += r.unavailable
		other5xx += r.other5xx
		for id := range r.acked {
			acked[id] = true
		}
	}
	midBatch := 0
	for i, k := range kills {
		t.Logf("kill %d at %v (aimed %v later): %d rows queued in the node, %d requests in flight; exit %q; back up in %v",
			i+1, k.at.Round(time.Millisecond), k.aim.Round(time.Millisecond), k.queuedRows, k.inFlight, k.exit, k.restart.Round(time.Millisecond))
		if k.queuedRows > 0 && k.inFlight > 0 {
			midBatch++
		}
	}
	t.Logf("sent %d heartbeats from %d sensors in %v: %d attempts, %d retried (%d connection errors, %d 503, %d other 5xx); %d kills, %d mid-batch",
		numSensors*numBeats, numSensors, sendTime.Round(time.Millisecond), attempts, retries, connErrs, unavailable, other5xx, len(kills), midBatch)
	if midBatch < 2 {
		t.Fatalf("only %d of %d kills landed while requests were in flight and rows were queued; the test proves nothing", midBatch, len(kills))
	}
	if retries == 0 {
		t.Fatalf("%d kills and not one retry: the kills did not hit any request", len(kills))
	}
	if len(acked) != numSensors*numBeats {
		t.Fatalf("%d heartbeats acknowledged, want %d", len(acked), numSensors*numBeats)
	}

	// Stop the last node gracefully, then read what it left.
	if m := metrics(ctx, http.DefaultClient, n.addr); m != nil {
		t.Logf("last node: %v flushes averaging %.1f ms, %v accepted",
			m["netview_ingest_flush_seconds_count"], 1000*m["netview_ingest_flush_seconds_sum"]/max(1, m["netview_ingest_flush_seconds_count"]),
			m["netview_ingest_heartbeats_accepted_total"])
	}
	if err := p.kill(ctx, syscall.SIGTERM); err != nil {
		t.Fatalf("stopping ingest: %v", err)
	}
	if p.err != nil {
		t.Errorf("ingest exited with %v after SIGTERM:\n%s", p.err, p.logTail())
	}

	st, err := store.OpenEmbedded(ctx, store.EmbeddedConfig{Dir: dataDir, Database: "netview", Conns: 2})
	if err != nil {
		t.Fatalf("opening the store the node left: %v", err)
	}
	defer st.Close()

	// Nothing lost: every acknowledged heartbeat is there.
	total := uint64(numSensors * numBeats)
	if got := ingesttest.Count(t, st, "SELECT count() AS n FROM heartbeats FINAL"); got != total {
		t.Errorf("heartbeats FINAL = %d, want %d", got, total)
	}
	stored := map[uuid.UUID]int{}
	var ids proto.ColUUID
	err = st.Select(ctx, store.Query{SQL: "SELECT heartbeat_id FROM heartbeats FINAL"}, proto.Results{{Name: "heartbeat_id", Data: &ids}},
		func(rows int) error {
			for i := range rows {
				stored[ids.Row(i)]++
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	var missing, extra, twice []string
	for id := range acked {
		if stored[id] == 0 {
			missing = append(missing, id.String())
		}
	}
	for id, c := range stored {
		if !acked[id] {
			extra = append(extra, id.String())
		}
		if c > 1 {
			twice = append(twice, id.String())
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d acknowledged heartbeats lost: %v", len(missing), missing)
	}
	if len(extra) > 0 {
		t.Errorf("%d stored heartbeats were never sent: %v", len(extra), extra)
	}
	if len(twice) > 0 {
		t.Errorf("%d heartbeats show more than once in heartbeats FINAL: %v", len(twice), twice)
	}

	// Nothing doubled: events once each, the latest view exactly the last
	// snapshot.
	wantEvents := total * uint64(shape.Events+shape.CompletedFlows)
	if got := ingesttest.Count(t, st, "SELECT count() AS n FROM events FINAL"); got != wantEvents {
		t.Errorf("events FINAL = %d, want %d", got, wantEvents)
	}
	if got := ingesttest.Count(t, st, "SELECT count() AS n FROM (SELECT event_id FROM events FINAL GROUP BY event_id HAVING count() > 1)"); got != 0 {
		t.Errorf("%d event_ids show more than once in events FINAL", got)
	}
	// How many rows were written twice: every insert makes a part of its
	// own, and parts outlive the merge that replaces them by minutes, so
	// the parts an insert made (one block, level 0, or 1 with
	// optimize_on_insert) still on disk count what was written. Merges have
	// already collapsed plain counts without FINAL.
	inserted := insertedRows(ctx, t, st)
	t.Logf("rows written by inserts: heartbeats %d for %d heartbeats, events %d for %d events: at least %d heartbeat rows and %d event rows were stored twice (stored, then the node died before acknowledging, then retried)",
		inserted["heartbeats"], total, inserted["events"], wantEvents, inserted["heartbeats"]-min(inserted["heartbeats"], total), inserted["events"]-min(inserted["events"], wantEvents))

	for s, r := range results {
		last := r.sent[len(r.sent)-1]
		got := ingesttest.ActiveConns(ctx, t, st, r.gen.Sensor.SensorID)
		want := map[string]bool{}
		for _, c := range last.TCPConnections {
			want[ingesttest.ConnKey(c.LocalPort, c.RemoteAddress, c.RemotePort, c.Inode)] = true
		}
		seen := map[string]int{}
		for _, k := range got {
			seen[k]++
		}
		var dup, notWanted, absent []string
		for k, c := range seen {
			if c > 1 {
				dup = append(dup, k)
			}
			if !want[k] {
				notWanted = append(notWanted, k)
			}
		}
		for k := range want {
			if seen[k] == 0 {
				absent = append(absent, k)
			}
		}
		if len(dup)+len(notWanted)+len(absent) > 0 {
			t.Errorf("sensor %d latest view: %d rows for the %d connections of seq %d; duplicated %v, not in the last heartbeat %v, missing %v",
				s, len(got), len(want), last.Seq, dup, notWanted, absent)
		}
	}
	t.Logf("whole test took %v", time.Since(began).Round(time.Millisecond))
}

// killRecord is what the killer saw at one kill.
type killRecord struct {
	at         time.Duration
	aim        time.Duration // wait after seeing the batch, aiming at its write
	queuedRows int64
	inFlight   int64
	exit       string
	restart    time.Duration
}

// sensorRun is one simulated sensor and what happened to its heartbeats.
type sensorRun struct {
	gen    *heartbeat.Generator
	sent   []*heartbeat.Heartbeat
	bodies [][]byte
	acked  map[uuid.UUID]bool
	// sending is when the attempt in flight started (UnixNano), 0 when none.
	sending atomic.Int64

	attempts, connErrs, unavailable, other5xx int
	err                                       error
}

func newSensorRun(seed uint64, base time.Time) *sensorRun {
	r := &sensorRun{gen: heartbeat.NewGenerator(seed, shape), acked: map[uuid.UUID]bool{}}
	for i := range numBeats {
		h := r.gen.Next(base.Add(time.Duration(i) * 15 * time.Second))
		body, err := heartbeat.Encode(h)
		if err != nil {
			panic(err)
		}
		r.sent = append(r.sent, h)
		r.bodies = append(r.bodies, body)
	}
	return r
}

// run sends the heartbeats in order, each retried until acknowledged.
func (r *sensorRun) run(ctx context.Context, url string, inFlight *atomic.Int64) {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	for i, h := range r.sent {
		for {
			if err := ctx.Err(); err != nil {
				r.err = fmt.Errorf("seq %d not acknowledged after %d attempts in all: %w", h.Seq, r.attempts, context.Cause(ctx))
				return
			}
			r.attempts++
			r.sending.Store(time.Now().UnixNano())
			inFlight.Add(1)
			status, body, err := ingesttest.PostTo(ctx, client, url, token, r.bodies[i])
			inFlight.Add(-1)
			r.sending.Store(0)
			if err == nil && status == http.StatusOK {
				var ack struct {
					HeartbeatID uuid.UUID `json:"heartbeat_id"`
					Seq         uint64    `json:"seq"`
				}
				if err := json.Unmarshal(body, &ack); err != nil || ack.HeartbeatID != h.HeartbeatID || ack.Seq != h.Seq {
					r.err = fmt.Errorf("seq %d: acknowledgement %q does not name it (%v)", h.Seq, body, err)
					return
				}
				r.acked[h.HeartbeatID] = true
				break
			}
			switch {
			case err != nil:
				r.connErrs++
			case status == http.StatusServiceUnavailable:
				r.unavailable++
			case status >= 500:
				r.other5xx++
			default:
				r.err = fmt.Errorf("seq %d: refused with %d %s", h.Seq, status, body)
				return
			}
			sleep.For(ctx, 50*time.Millisecond+rand.N(100*time.Millisecond))
		}
	}
}

// oldestAttempt is when the oldest request now in flight was sent; zero
// when none is.
func oldestAttempt(runs []*sensorRun) time.Time {
	var oldest int64
	for _, r := range runs {
		if v := r.sending.Load(); v != 0 && (oldest == 0 || v < oldest) {
			oldest = v
		}
	}
	if oldest == 0 {
		return time.Time{}
	}
	return time.Unix(0, oldest)
}

// waitMidBatch polls the node's queue gauge until it holds accepted rows not
// yet written while requests are in flight, or until wait passes, and
// returns the last queue size seen.
func waitMidBatch(ctx context.Context, addr string, inFlight *atomic.Int64, wait time.Duration) int64 {
	c := &http.Client{Timeout: time.Second}
	defer c.CloseIdleConnections()
	end := time.Now().Add(wait)
	var q int64
	for time.Now().Before(end) && ctx.Err() == nil {
		q = queueRows(ctx, c, addr)
		if q > 0 && inFlight.Load() > 0 {
			return q
		}
		time.Sleep(5 * time.Millisecond)
	}
	return q
}

// queueRows reads netview_ingest_queue_rows from /metrics (-1 on error).
func queueRows(ctx context.Context, c *http.Client, addr string) int64 {
	v, ok := metrics(ctx, c, addr)["netview_ingest_queue_rows"]
	if !ok {
		return -1
	}
	return int64(v)
}

// metrics reads the node's /metrics into a map from series to value; nil
// on error.
func metrics(ctx context.Context, c *http.Client, addr string) map[string]float64 {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m
}

// node starts netview-ingest processes, one at a time, on one data folder
// and port.
var firstRun atomic.Bool

type node struct {
	bin, addr, dsn, logDir string

	mu    sync.Mutex
	procs []*proc
}

// proc is one run of the ingest binary.
type proc struct {
	cmd  *exec.Cmd
	log  string        // its stderr and stdout
	done chan struct{} // closed when it has exited
	err  error         // its exit status, once done
}

func (n *node) start() (*proc, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	logPath := filepath.Join(n.logDir, fmt.Sprintf("ingest-%d.log", len(n.procs)))
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child holds its own copy
	cmd := exec.Command(n.bin,
		"--store.dsn="+n.dsn,
		"--ingest.addr="+n.addr,
		"--ingest.token="+token,
		"--ingest.batch-age="+batchAge,
		// Loopback without TLS; sensors posting with the static token, as
		// many as the test can, from one address.
		"--ingest.plain-http", "--ingest.shared-tokens", "--ingest.ip-rate=0",
	)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	n.procs = append(n.procs, p)
	return p, nil
}

// startHealthy starts the binary and waits up to 60 s for GET /healthz to
// answer 200.
func (n *node) startHealthy(ctx context.Context) (*proc, error) {
	p, err := n.start()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	c := &http.Client{Timeout: time.Second}
	defer c.CloseIdleConnections()
	for {
		select {
		case <-p.done:
			return nil, fmt.Errorf("netview-ingest exited before it was healthy (%v):\n%s", p.err, p.logTail())
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.addr+"/healthz", nil)
		if resp, err := c.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		if !sleep.For(ctx, 50*time.Millisecond) {
			_ = p.kill(context.Background(), syscall.SIGKILL)
			return nil, fmt.Errorf("netview-ingest not healthy on %s: %w; its log:\n%s", n.addr, ctx.Err(), p.logTail())
		}
	}
}

// kill sends sig and waits for the process to exit (SIGKILL if it has not
// after 60 s).
func (p *proc) kill(ctx context.Context, sig syscall.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(60 * time.Second):
	case <-ctx.Done():
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("pid %d did not exit after %v; killed:\n%s", p.cmd.Process.Pid, sig, p.logTail())
}

// logTail returns the last lines the process wrote.
func (p *proc) logTail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 8<<10 {
		b = b[len(b)-8<<10:]
	}
	return string(b)
}

// killAll kills every process still running; for t.Cleanup.
func (n *node) killAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range n.procs {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
}

// buildIngest builds netview-ingest into dir.
func buildIngest(ctx context.Context, t *testing.T, dir string) string {
	t.Helper()
	root := moduleRoot(t)
	bin := filepath.Join(dir, "netview-ingest")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/netview-ingest")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// moduleRoot walks up from the working directory to the folder with go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		up := filepath.Dir(dir)
		if up == dir {
			t.Fatal("no go.mod above the test's working directory")
		}
		dir = up
	}
}

// insertedRows sums, per table, the rows of the parts that inserts made and
// that are still on disk, merged away or not.
func insertedRows(ctx context.Context, t *testing.T, st store.Store) map[string]uint64 {
	t.Helper()
	var table proto.ColStr
	var rows proto.ColUInt64
	out := map[string]uint64{}
	err := st.Select(ctx, store.Query{SQL: `SELECT table AS t, toUInt64(sum(rows)) AS r FROM system.parts
		WHERE database = currentDatabase() AND table IN ('heartbeats', 'events') AND min_block_number = max_block_number AND level <= 1
		GROUP BY table`},
		proto.Results{{Name: "t", Data: &table}, {Name: "r", Data: &rows}}, func(n int) error {
			for i := range n {
				out[table.Row(i)] = rows.Row(i)
			}
			return nil
		})
	if err != nil {
		t.Fatalf("system.parts: %v", err)
	}
	return out
}
