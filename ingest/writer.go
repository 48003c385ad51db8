package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/netview/netview/internal/store"
)

// ErrQueueFull reports that more rows wait for storage than the writer
// holds; the sender should retry later.
var ErrQueueFull = errors.New("ingest queue full")

// ErrRefused reports that storage refused the heartbeat's rows for what
// they hold, while the rest of its batch was written: sending it again as
// it is fails again.
var ErrRefused = errors.New("storage refused the heartbeat's rows")

// Writer group-commits heartbeats: each is decoded into the open batch, the
// batch is written when it is big or old enough, and every heartbeat in it
// learns the outcome together. A heartbeat is acknowledged only after all
// of its rows are in storage.
type Writer struct {
	cfg   WriterConfig
	store store.Store
	m     *Metrics

	mu      sync.Mutex
	dec     Decoder
	cur     *Batch
	gen     *generation
	opened  time.Time // when cur got its first heartbeat
	spare   chan *Batch
	pending atomic.Int64 // rows accepted and not yet written

	flushes  chan flush
	down     atomic.Bool // storage failed; refuse fast until it answers again
	draining bool        // shutting down: write each heartbeat at once (under mu)
	closed   bool        // stopped: refuse everything (under mu)
	stop     chan struct{}
	ticking  sync.WaitGroup
	writing  sync.WaitGroup
}

// flush is a batch on its way to storage with the fate its heartbeats wait on.
type flush struct {
	b *Batch
	g *generation
}

// generation is the fate of one batch, shared by its heartbeats.
type generation struct {
	done    chan struct{}
	err     error     // the whole batch failed
	refused []Refusal // or only these heartbeats' rows
}

// ticket is one heartbeat's place in a generation.
type ticket struct {
	g *generation
	i int // the heartbeat's place in its batch
}

// WriterConfig tunes group commit.
type WriterConfig struct {
	BatchRows  int           // write when a batch holds this many rows
	BatchAge   time.Duration // or when its first heartbeat is this old
	MaxPending int           // refuse heartbeats while this many rows wait
	MaxRows    int           // refuse a heartbeat of more rows; 0: no limit
	TimeWindow time.Duration // refuse rows this far from sent_at; 0: no limit
}

// NewWriter starts the flusher. Close stops it after writing what it holds.
func NewWriter(s store.Store, cfg WriterConfig, m *Metrics) *Writer {
	w := &Writer{
		cfg: cfg, store: s, m: m,
		spare:   make(chan *Batch, 2),
		flushes: make(chan flush, 1),
		stop:    make(chan struct{}),
	}
	w.spare <- NewBatch()
	w.spare <- NewBatch()
	w.cur, w.gen = NewBatch(), newGeneration()
	w.ticking.Add(1)
	w.writing.Add(1)
	go w.flusher()
	go w.ticker()
	return w
}

func newGeneration() *generation { return &generation{done: make(chan struct{})} }

// Add decodes one heartbeat into the open batch and returns a channel that
// yields nil once its rows are written, or the error that stopped them. A
// sensor id other than uuid.Nil is the only one the heartbeat may carry
// (heartbeat.ErrSensorMismatch otherwise, and nothing is added).
func (w *Writer) Add(doc []byte, sensor uuid.UUID) (Summary, ticket, error) {
	if w.down.Load() {
		return Summary{}, ticket{}, fmt.Errorf("%w: last write failed, retry later", store.ErrUnavailable)
	}
	if int(w.pending.Load()) >= w.cfg.MaxPending {
		return Summary{}, ticket{}, ErrQueueFull
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return Summary{}, ticket{}, fmt.Errorf("%w: node is shutting down", store.ErrUnavailable)
	}
	w.dec.SensorID, w.dec.MaxRows, w.dec.Window = sensor, w.cfg.MaxRows, w.cfg.TimeWindow
	m := w.cur.mark()
	sum, err := w.dec.Decode(doc, w.cur)
	if err != nil {
		return sum, ticket{}, err
	}
	if !w.cur.addDays(m) {
		// Its days would take the open batch past MaxDays: seal the batch
		// and open the next with this heartbeat, or, while the flusher is
		// still busy, ask the sender to come back.
		w.cur.drop(m)
		if !w.rotate(false) {
			return Summary{}, ticket{}, fmt.Errorf("%w: the open batch touches %d days and the one before is still being written", ErrQueueFull, MaxDays)
		}
		m = w.cur.mark()
		if sum, err = w.dec.Decode(doc, w.cur); err != nil {
			return sum, ticket{}, err
		}
		w.cur.addDays(m) // alone in the batch: it fits
	}
	w.pending.Add(int64(sum.Rows))
	if w.cur.Heartbeats == 1 {
		w.opened = time.Now()
	}
	tk := ticket{g: w.gen, i: w.cur.Heartbeats - 1}
	if w.draining || w.cur.Rows() >= w.cfg.BatchRows {
		w.rotate(false)
	}
	return sum, tk, nil
}

// Wait blocks until the heartbeat's batch is written or ctx ends; it
// returns an error wrapping ErrRefused when storage refused this
// heartbeat's rows alone.
func (t ticket) Wait(ctx context.Context) error {
	select {
	case <-t.g.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if t.g.err != nil {
		return t.g.err
	}
	for _, r := range t.g.refused {
		if r.Heartbeat == t.i {
			return fmt.Errorf("%w: table %s: %w", ErrRefused, r.Table, r.Err)
		}
	}
	return nil
}

// rotate hands the open batch to the flusher and opens the next one. It
// runs with w.mu held. When the flusher already has a batch waiting, only
// Close waits for it: everyone else leaves the open batch to grow (a bigger
// write is what slow storage needs) and MaxPending bounds memory. Waiting
// here under w.mu once stalled every sender behind a hung write, past their
// ack timeout (found by bench/scaleout's black-hole test).
func (w *Writer) rotate(wait bool) bool {
	if w.cur.Heartbeats == 0 {
		return false
	}
	f := flush{w.cur, w.gen}
	if wait {
		w.flushes <- f
	} else {
		select {
		case w.flushes <- f:
		default:
			return false
		}
	}
	// Three batches circulate: with one sent and at most one being
	// written, a spare is always there.
	w.cur = <-w.spare
	w.gen = newGeneration()
	w.opened = time.Now()
	return true
}

func (w *Writer) ticker() {
	defer w.ticking.Done()
	t := time.NewTicker(w.cfg.BatchAge / 4)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			w.mu.Lock()
			if w.cur.Heartbeats > 0 && time.Since(w.opened) >= w.cfg.BatchAge {
				w.rotate(false)
			}
			w.mu.Unlock()
			if w.down.Load() {
				w.probe()
			}
		}
	}
}

// healthy reports whether storage answers now (a load balancer's question).
func (w *Writer) healthy() error {
	if w.down.Load() {
		return errors.New("last write failed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return store.Ping(ctx, w.store)
}

// probe clears the down flag once storage answers again.
func (w *Writer) probe() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := store.Ping(ctx, w.store); err == nil {
		w.down.Store(false)
	}
}

func (w *Writer) flusher() {
	defer w.writing.Done()
	for f := range w.flushes {
		b, g := f.b, f.g
		rows := b.Rows()
		start := time.Now()
		refused, err := w.write(b)
		w.m.observeFlush(b, rows, time.Since(start), refused, err)
		if errors.Is(err, store.ErrUnavailable) {
			w.down.Store(true)
		}
		g.err, g.refused = err, refused
		close(g.done)
		w.pending.Add(-int64(rows))
		b.Reset()
		w.spare <- b
	}
}

func (w *Writer) write(b *Batch) ([]Refusal, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return b.Insert(ctx, w.store)
}

// Pending reports rows accepted but not yet written.
func (w *Writer) Pending() int { return int(w.pending.Load()) }

// Drain writes the open batch now and every later heartbeat as it comes,
// so senders still in flight during shutdown get their answer at once.
func (w *Writer) Drain() {
	w.mu.Lock()
	w.draining = true
	w.rotate(false)
	w.mu.Unlock()
}

// Close writes the open batch, waits for every write, and stops.
func (w *Writer) Close() {
	close(w.stop)
	w.ticking.Wait()
	w.mu.Lock()
	w.rotate(true)
	w.closed = true
	w.mu.Unlock()
	close(w.flushes)
	w.writing.Wait()
}
