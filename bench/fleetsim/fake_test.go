package fleetsim

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/klauspost/compress/zstd"

	"github.com/netview/netview/ingest"
)

// A request as a server in front of (or instead of) ingest saw it.
type seen struct {
	sensor uuid.UUID
	seq    uint64
	id     uuid.UUID
	at     time.Time
	status int
}

// fakeIngest answers heartbeats like ingest would (it decodes them with
// the real decoder and acknowledges with the real rows) without storing
// them, after asking decide what to do with each one: status 0 means
// acknowledge, anything else is answered as is (with Retry-After for 503);
// delay is slept first. It checks what a real sensor promises: one request
// at a time per sensor, and a heartbeat retried until acknowledged before
// the next seq goes.
type fakeIngest struct {
	t      testing.TB
	URL    string
	decide func(s seen) (status int, retryAfter string, delay time.Duration)
	// forward, if set, takes the acknowledged requests instead (a proxy).
	forward func(w http.ResponseWriter, body []byte, h http.Header) int

	mu        sync.Mutex
	log       []seen
	busy      map[uuid.UUID]bool
	pending   map[uuid.UUID]uint64 // seq sent and not acknowledged
	violation []string
}

var fakeDec, _ = zstd.NewReader(nil)

func newFakeIngest(t testing.TB) *fakeIngest {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveFakeIngest(t, ln)
}

func serveFakeIngest(t testing.TB, ln net.Listener) *fakeIngest {
	f := &fakeIngest{t: t, busy: map[uuid.UUID]bool{}, pending: map[uuid.UUID]uint64{}}
	srv := &http.Server{Handler: f}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	f.URL = "http://" + ln.Addr().String()
	return f
}

func (f *fakeIngest) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	doc, err := fakeDec.DecodeAll(body, nil)
	if err != nil {
		http.Error(w, `{"error":"bad zstd"}`, 400)
		return
	}
	var dec ingest.Decoder
	sum, err := dec.Decode(doc, ingest.NewBatch())
	if err != nil {
		f.fail("decode: %v", err)
		http.Error(w, fmt.Sprintf(`{"error":%q}`, err.Error()), 400)
		return
	}
	s := seen{sensor: sum.SensorID, seq: sum.Seq, id: sum.HeartbeatID, at: time.Now()}
	f.mu.Lock()
	if f.busy[s.sensor] {
		f.violation = append(f.violation, fmt.Sprintf("sensor %v: two requests at once", s.sensor))
	}
	if p, ok := f.pending[s.sensor]; ok && p != s.seq {
		f.violation = append(f.violation, fmt.Sprintf("sensor %v: seq %d sent before %d was acknowledged", s.sensor, s.seq, p))
	}
	f.busy[s.sensor] = true
	f.pending[s.sensor] = s.seq
	f.mu.Unlock()

	status, retryAfter, delay := 0, "", time.Duration(0)
	if f.decide != nil {
		status, retryAfter, delay = f.decide(s)
	}
	time.Sleep(delay)
	switch {
	case status != 0:
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":"fake %d"}`, status)
	case f.forward != nil:
		status = f.forward(w, body, r.Header)
	default:
		status = 200
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"heartbeat_id":"%s","seq":%d,"rows":%d}`, sum.HeartbeatID, sum.Seq, sum.Rows)
	}
	s.status = status
	f.mu.Lock()
	f.busy[s.sensor] = false
	if status == 200 || status == 400 || status == 413 || status == 415 {
		delete(f.pending, s.sensor)
	}
	f.log = append(f.log, s)
	f.mu.Unlock()
}

func (f *fakeIngest) fail(format string, a ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.violation = append(f.violation, fmt.Sprintf(format, a...))
}

func (f *fakeIngest) requests() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seen(nil), f.log...)
}

func (f *fakeIngest) checkRules(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, v := range f.violation {
		if i == 10 {
			t.Errorf("... %d violations in all", len(f.violation))
			break
		}
		t.Error(v)
	}
}
