package spool

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/netview/netview/heartbeat"
)

var (
	t0    = time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	shape = heartbeat.Shape{Conns: 200, Events: 5, CompletedFlows: 2}
)

func openSpool(t *testing.T, dir string, maxBytes int64) *Spool {
	t.Helper()
	s, err := Open(dir, maxBytes)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// decodeBody reads a stored body the way ingest does: zstd, then JSON.
func decodeBody(t *testing.T, body []byte) *heartbeat.Heartbeat {
	t.Helper()
	d, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	doc, err := d.DecodeAll(body, nil)
	if err != nil {
		t.Fatalf("zstd: %v", err)
	}
	h := new(heartbeat.Heartbeat)
	if err := json.Unmarshal(doc, h); err != nil {
		t.Fatalf("json: %v", err)
	}
	return h
}

// stored decodes every entry on disk, in seq order.
func stored(t *testing.T, dir string) []*heartbeat.Heartbeat {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var hs []*heartbeat.Heartbeat
	for _, de := range des {
		seq, ok := parseName(de.Name())
		if !ok {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		h := decodeBody(t, b)
		if h.Seq != seq {
			t.Fatalf("%s holds seq %d", de.Name(), h.Seq)
		}
		hs = append(hs, h)
	}
	return hs
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func put(t *testing.T, s *Spool, h *heartbeat.Heartbeat) {
	t.Helper()
	if err := s.Put(h); err != nil {
		t.Fatal(err)
	}
}

// filled opens a spool without a cap in a new folder and puts n heartbeats
// of generator seed into it, seqs 1 to n.
func filled(t *testing.T, seed uint64, n int) (string, *Spool) {
	t.Helper()
	dir := t.TempDir()
	s := openSpool(t, dir, 1<<30)
	g := heartbeat.NewGenerator(seed, shape)
	for range n {
		put(t, s, g.Next(t0))
	}
	return dir, s
}

// drain takes every entry oldest first and returns the seqs.
func drain(t *testing.T, s *Spool) []uint64 {
	t.Helper()
	var seqs []uint64
	for {
		seq, body, ok, err := s.Oldest()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return seqs
		}
		if h := decodeBody(t, body); h.Seq != seq {
			t.Fatalf("Oldest seq %d, body seq %d", seq, h.Seq)
		}
		seqs = append(seqs, seq)
		if err := s.Remove(seq); err != nil {
			t.Fatal(err)
		}
	}
}

func seqRange(from, to uint64) []uint64 {
	var r []uint64
	for i := from; i <= to; i++ {
		r = append(r, i)
	}
	return r
}

func TestPutOldestRemoveKeepsOrderAcrossReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	s := openSpool(t, dir, 1<<30)
	g := heartbeat.NewGenerator(1, shape)
	var want []*heartbeat.Heartbeat
	var size int64
	for i := range 10 {
		h := g.Next(t0.Add(time.Duration(i) * 15 * time.Second))
		put(t, s, h)
		want = append(want, h)
		b, _ := heartbeat.Encode(h)
		size += int64(len(b))
	}
	if s.Len() != 10 || s.Bytes() != size {
		t.Fatalf("Len %d Bytes %d, want 10 and %d", s.Len(), s.Bytes(), size)
	}
	select {
	case <-s.Notify():
	default:
		t.Error("Put did not signal Notify")
	}
	for _, seq := range []uint64{1, 2, 3} {
		got, body, ok, err := s.Oldest()
		if err != nil || !ok || got != seq {
			t.Fatalf("Oldest = %d %v %v, want %d", got, ok, err, seq)
		}
		if jsonOf(t, decodeBody(t, body)) != jsonOf(t, want[seq-1]) {
			t.Fatalf("seq %d: stored heartbeat differs from the one put", seq)
		}
		if err := s.Remove(seq); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Remove(3); err != nil {
		t.Errorf("removing a seq twice: %v", err)
	}
	if _, err := Open(dir, 1<<30); err == nil {
		t.Fatal("a second Open of a directory in use succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := s.Oldest(); !errors.Is(err, ErrClosed) {
		t.Errorf("Oldest after Close: %v", err)
	}

	s = openSpool(t, dir, 1<<30)
	if s.Len() != 7 {
		t.Fatalf("after reopen Len %d, want 7", s.Len())
	}
	if last, ok := s.LastSeq(); !ok || last != 10 {
		t.Errorf("LastSeq %d %v, want 10", last, ok)
	}
	if err := s.Put(want[4]); !errors.Is(err, ErrSeqNotIncreasing) {
		t.Errorf("Put of an old seq: %v, want ErrSeqNotIncreasing", err)
	}
	if got := drain(t, s); !slices.Equal(got, seqRange(4, 10)) {
		t.Fatalf("drained %v", got)
	}
	if s.Len() != 0 || s.Bytes() != 0 {
		t.Errorf("empty spool: Len %d Bytes %d", s.Len(), s.Bytes())
	}
	if d := s.Dropped(); d != (Dropped{}) {
		t.Errorf("nothing was dropped, counters say %+v", d)
	}
}

func TestOpenRemovesTempFilesAndSetsAsideUnreadableEntries(t *testing.T) {
	dir := t.TempDir()
	g := heartbeat.NewGenerator(2, shape)
	h1, h2 := g.Next(t0), g.Next(t0.Add(15*time.Second))
	b1, _ := heartbeat.Encode(h1)
	b2, _ := heartbeat.Encode(h2)
	os.MkdirAll(filepath.Join(dir, RejectedDir), 0o700)
	files := map[string][]byte{
		name(1):           b1,
		name(2):           b2[:len(b2)/2], // damaged
		tmpPrefix + "123": b2[:100],       // a write a crash cut short
		filepath.Join(RejectedDir, tmpPrefix+"9"): []byte("x"),
		"notes.txt": []byte("left alone"),
	}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := openSpool(t, dir, 1<<30)
	if s.Len() != 1 {
		t.Fatalf("Len %d, want 1", s.Len())
	}
	if d := s.Dropped(); d != (Dropped{Heartbeats: 1}) {
		t.Errorf("Dropped %+v, want one heartbeat", d)
	}
	for _, n := range []string{tmpPrefix + "123", filepath.Join(RejectedDir, tmpPrefix+"9"), name(2)} {
		if _, err := os.Stat(filepath.Join(dir, n)); !os.IsNotExist(err) {
			t.Errorf("%s still there (%v)", n, err)
		}
	}
	reason, err := os.ReadFile(filepath.Join(dir, RejectedDir, reasonName(2)))
	if err != nil || !strings.Contains(string(reason), "unreadable") {
		t.Errorf("reason for the damaged entry: %q %v", reason, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, RejectedDir, name(2))); !bytes.Equal(b, b2[:len(b2)/2]) {
		t.Error("the damaged entry was not kept in rejected/")
	}
	if _, err := os.Stat(filepath.Join(dir, "notes.txt")); err != nil {
		t.Errorf("a foreign file was touched: %v", err)
	}
}

// Over the cap, old heartbeats lose their snapshot sections oldest first
// and keep their events; the newest is never touched; only when nothing
// but events is left are whole heartbeats dropped, oldest first.
func TestCapStripsSnapshotsBeforeDroppingEvents(t *testing.T) {
	dir := t.TempDir()
	g := heartbeat.NewGenerator(3, shape)
	full, _ := heartbeat.Encode(g.Next(t0))
	maxBytes := int64(4 * len(full)) // room for about 3 full heartbeats
	s := openSpool(t, dir, maxBytes)

	var put1 []*heartbeat.Heartbeat
	for i := range 12 {
		h := g.Next(t0.Add(time.Duration(i+1) * 15 * time.Second))
		put(t, s, h)
		put1 = append(put1, h)
		if s.Bytes() > maxBytes {
			t.Fatalf("after seq %d: %d bytes over the cap of %d", h.Seq, s.Bytes(), maxBytes)
		}
	}
	hs := stored(t, dir)
	if len(hs) != 12 {
		t.Fatalf("%d entries left, want all 12 (stripping is enough)", len(hs))
	}
	var strippedRows uint64
	sawFull := false
	for i, h := range hs {
		orig := put1[i]
		if jsonOf(t, h.Events) != jsonOf(t, orig.Events) || jsonOf(t, h.CompletedFlows) != jsonOf(t, orig.CompletedFlows) {
			t.Errorf("seq %d: events or completed flows changed", h.Seq)
		}
		if h.HeartbeatID != orig.HeartbeatID || !h.SentAt.Equal(orig.SentAt) || jsonOf(t, h.Sensor) != jsonOf(t, orig.Sensor) {
			t.Errorf("seq %d: header changed", h.Seq)
		}
		switch {
		case snapshotRows(h) == 0:
			if sawFull {
				t.Errorf("seq %d stripped after a newer one kept its snapshot: not oldest first", h.Seq)
			}
			strippedRows += uint64(snapshotRows(orig))
		case jsonOf(t, h) == jsonOf(t, orig):
			sawFull = true
		default:
			t.Errorf("seq %d: partly stripped", h.Seq)
		}
	}
	if newest := hs[len(hs)-1]; jsonOf(t, newest) != jsonOf(t, put1[len(put1)-1]) {
		t.Error("the newest heartbeat was changed")
	}
	if !sawFull || strippedRows == 0 {
		t.Fatalf("want some stripped and some whole heartbeats; stripped rows %d", strippedRows)
	}
	if d := s.Dropped(); d != (Dropped{SnapshotRows: strippedRows}) {
		t.Errorf("Dropped %+v, want SnapshotRows %d only", d, strippedRows)
	}

	// Events-only heartbeats until whole ones must go.
	total := len(put1)
	for i := range 40 {
		h := g.Next(t0.Add(time.Duration(100+i) * 15 * time.Second))
		h.TCPConnections = nil
		before := s.Dropped().Heartbeats
		put(t, s, h)
		total++
		if s.Dropped().Heartbeats > before {
			// Whole heartbeats went: no snapshot may be left but in the
			// newest.
			hs := stored(t, dir)
			for _, h := range hs[:len(hs)-1] {
				if snapshotRows(h) > 0 {
					t.Fatalf("put of seq %d dropped events while seq %d still had a snapshot", hs[len(hs)-1].Seq, h.Seq)
				}
			}
		}
		if s.Bytes() > maxBytes {
			t.Fatalf("%d bytes over the cap of %d", s.Bytes(), maxBytes)
		}
	}
	hs = stored(t, dir)
	gone := total - len(hs)
	if gone == 0 {
		t.Fatal("nothing was dropped; the test does not reach the cap")
	}
	seqs := make([]uint64, len(hs))
	for i, h := range hs {
		seqs[i] = h.Seq
	}
	// Seqs 2.. were put (seq 1 only sized the cap); the oldest went first.
	if !slices.Equal(seqs, seqRange(uint64(2+gone), uint64(1+total))) {
		t.Errorf("left %v after dropping %d of %d, want the newest ones", seqs, gone, total)
	}
	// Every heartbeat of the first round lost its snapshot before any was
	// dropped whole.
	var snapRows uint64
	for _, h := range put1 {
		snapRows += uint64(snapshotRows(h))
	}
	want := Dropped{Heartbeats: uint64(gone), SnapshotRows: snapRows, EventRows: uint64(gone * (shape.Events + shape.CompletedFlows))}
	if got := s.Dropped(); got != want {
		t.Errorf("Dropped %+v, want %+v", got, want)
	}

	// The counters survive a restart.
	d := s.Dropped()
	s.Close()
	s = openSpool(t, dir, maxBytes)
	if s.Dropped() != d {
		t.Errorf("after reopen Dropped %+v, want %+v", s.Dropped(), d)
	}
}

func TestNewestIsKeptEvenOverTheCap(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, dir, 100)
	g := heartbeat.NewGenerator(4, shape)
	h1, h2 := g.Next(t0), g.Next(t0.Add(15*time.Second))
	put(t, s, h1)
	if hs := stored(t, dir); len(hs) != 1 || jsonOf(t, hs[0]) != jsonOf(t, h1) {
		t.Fatal("the only heartbeat was changed or dropped")
	}
	put(t, s, h2)
	hs := stored(t, dir)
	if len(hs) != 1 || jsonOf(t, hs[0]) != jsonOf(t, h2) {
		t.Fatal("want exactly the newest heartbeat, untouched")
	}
	want := Dropped{Heartbeats: 1, SnapshotRows: uint64(len(h1.TCPConnections)), EventRows: uint64(len(h1.Events) + len(h1.CompletedFlows))}
	if d := s.Dropped(); d != want {
		t.Errorf("Dropped %+v, want %+v", d, want)
	}
}

func TestRejectMovesAside(t *testing.T) {
	dir, s := filled(t, 5, 3)
	if err := s.Reject(1, "400: tcp_connections[3].remote_address: not an IP address"); err != nil {
		t.Fatal(err)
	}
	if seq, _, _, _ := s.Oldest(); seq != 2 {
		t.Errorf("Oldest after Reject: %d", seq)
	}
	if b, err := os.ReadFile(filepath.Join(dir, RejectedDir, reasonName(1))); err != nil || !strings.Contains(string(b), "not an IP") {
		t.Errorf("reason: %q %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, RejectedDir, name(1))); err != nil || decodeBody(t, b).Seq != 1 {
		t.Errorf("rejected heartbeat not kept: %v", err)
	}
	if d := s.Dropped(); d != (Dropped{Rejected: 1}) {
		t.Errorf("Dropped %+v", d)
	}
}

// An action cut short by a crash (its counts saved, the file not yet
// changed) is finished by Open without counting it twice.
func TestOpenFinishesInterruptedActions(t *testing.T) {
	dir, s := filled(t, 6, 4)
	s.Close()
	for _, st := range []state{
		{Dropped: Dropped{Heartbeats: 1, EventRows: 7}, Doing: doDrop, Seq: 1},
		{Dropped: Dropped{Heartbeats: 1, EventRows: 7, SnapshotRows: 200}, Doing: doStrip, Seq: 2},
		{Dropped: Dropped{Heartbeats: 1, EventRows: 7, SnapshotRows: 200, Rejected: 1}, Doing: doAside, Seq: 3},
	} {
		b, _ := json.Marshal(st)
		if err := os.WriteFile(filepath.Join(dir, stateFile), b, 0o600); err != nil {
			t.Fatal(err)
		}
		s := openSpool(t, dir, 1<<30)
		if s.Dropped() != st.Dropped {
			t.Errorf("%s %d: Dropped %+v, want %+v", st.Doing, st.Seq, s.Dropped(), st.Dropped)
		}
		s.Close()
	}
	hs := stored(t, dir)
	if len(hs) != 2 || hs[0].Seq != 2 || snapshotRows(hs[0]) != 0 || len(hs[0].Events) != 5 || hs[1].Seq != 4 || snapshotRows(hs[1]) == 0 {
		t.Errorf("after recovery: %d entries", len(hs))
	}
	if _, err := os.Stat(filepath.Join(dir, RejectedDir, name(3))); err != nil {
		t.Errorf("seq 3 not set aside: %v", err)
	}
}

// Put from one goroutine, Oldest/Remove from another, with a small cap:
// what the reader gets is in strictly increasing seq order.
func TestConcurrentPutAndRemove(t *testing.T) {
	dir := t.TempDir()
	g := heartbeat.NewGenerator(7, shape)
	full, _ := heartbeat.Encode(g.Next(t0))
	s := openSpool(t, dir, int64(3*len(full)))
	const n = 200
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range n {
			if err := s.Put(g.Next(t0.Add(time.Duration(i) * time.Second))); err != nil {
				t.Error(err)
				return
			}
		}
	})
	var got []uint64
	deadline := time.Now().Add(20 * time.Second)
	for (len(got) == 0 || got[len(got)-1] < n+1) && time.Now().Before(deadline) {
		seq, body, ok, err := s.Oldest()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			select {
			case <-s.Notify():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		if decodeBody(t, body).Seq != seq {
			t.Fatal("body and seq disagree")
		}
		if len(got) > 0 && seq <= got[len(got)-1] {
			t.Fatalf("seq %d after %d", seq, got[len(got)-1])
		}
		got = append(got, seq)
		if err := s.Remove(seq); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	// A heartbeat may be read and then dropped before its Remove, so it
	// can count on both sides.
	if d := s.Dropped(); uint64(len(got))+d.Heartbeats < n {
		t.Errorf("read %d, dropped %d, put %d: some vanished", len(got), d.Heartbeats, n)
	}
}
