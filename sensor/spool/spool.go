// Package spool keeps heartbeats on disk until the ingest tier has
// acknowledged them; sensor/uplink's Sender delivers them in order.
//
// A spool is one directory:
//
//	00000000000000000042.hb   one heartbeat (zstd JSON, the POST body), named by its seq
//	.tmp-*                    a write in progress; Open removes leftovers
//	state.json                the Dropped counters and the action in progress
//	lock                      flock(2)ed while a Spool has the directory open
//	rejected/<seq>.hb, .txt   heartbeats ingest refused (400/413/415) or that
//	                          were unreadable on disk, with the reason
package spool

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/klauspost/compress/zstd"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/internal/atomicfile"
)

// Errors returned by a Spool; test with errors.Is.
var (
	ErrClosed = errors.New("spool closed")
	// ErrSeqNotIncreasing refuses a heartbeat whose seq is not above every
	// seq the spool has held since Open: storage would take it for an older
	// heartbeat (docs/heartbeat.md, "seq picks the current snapshot").
	ErrSeqNotIncreasing = errors.New("seq not above the last spooled seq")
	// ErrOverCap means Put stored the heartbeat but could not bring the
	// spool back under its size cap (an I/O error while shrinking it).
	ErrOverCap = errors.New("spool over its size cap")
)

const (
	suffix    = ".hb"
	seqDigits = 20
	tmpPrefix = ".tmp-"
	stateFile = "state.json"
	lockFile  = "lock"
	// RejectedDir holds heartbeats that will never be sent, each with a
	// <seq>.txt saying why.
	RejectedDir = "rejected"
	// KeepRejected is how many heartbeats RejectedDir keeps; older ones are
	// deleted (they were counted when set aside).
	KeepRejected = 100
)

// Dropped counts what the spool gave up on. It is persisted in the spool
// directory, so it counts over the life of the directory, across restarts
// and crashes, not just since Open.
type Dropped struct {
	// Heartbeats deleted whole to respect the size cap, or found unreadable
	// on disk (those are moved to rejected/).
	Heartbeats uint64 `json:"heartbeats"`
	// SnapshotRows stripped from spooled heartbeats (tcp_connections,
	// tcp_listeners, udp_listeners, active_flows): newer heartbeats carry
	// newer snapshots, so these are the cheapest loss.
	SnapshotRows uint64 `json:"snapshot_rows"`
	// EventRows lost with whole heartbeats: events plus completed flows
	// (each completed flow is also a network_flow event).
	EventRows uint64 `json:"event_rows"`
	// Rejected heartbeats: ingest refused them for good (400, 413, 415)
	// and they are in rejected/.
	Rejected uint64 `json:"rejected"`
}

// state is what state.json holds. Each action that changes a count first
// saves the new counts with the action's seq, then acts; Open finishes an
// action a crash interrupted without counting it again. So counts are
// exact across crashes.
type state struct {
	Dropped
	// Doing is the last action begun on entry Seq: doDrop, doStrip or
	// doAside. Seqs are never reused, so a finished action needs no reset.
	Doing string `json:"doing,omitempty"`
	Seq   uint64 `json:"seq,omitempty"`
}

const (
	doDrop  = "drop"  // delete the entry
	doStrip = "strip" // rewrite it without snapshot sections
	doAside = "aside" // move it to rejected/
)

type snapState uint8

const (
	snapUnknown snapState = iota // not decoded since Open
	snapNone
	snapSome
)

type entry struct {
	seq  uint64
	size int64
	snap snapState
}

// Spool is a bounded, crash-safe on-disk queue of heartbeats, ordered by
// seq. It is safe for concurrent use: the sensor loop Puts while the sender
// reads the Oldest and Removes it.
type Spool struct {
	dir    string
	max    int64
	notify chan struct{}
	dec    *zstd.Decoder

	// put serializes Put's encoding into enc, whose buffers are reused
	// (heartbeat.Encoder); taken before mu, never under it.
	put sync.Mutex
	enc heartbeat.Encoder

	mu      sync.Mutex
	lock    *os.File // nil once closed
	entries []entry  // ascending seq
	bytes   int64
	last    uint64 // highest seq held since Open
	hasLast bool
	st      state
}

// Open opens the spool in dir, creating it if needed, and recovers from a
// crash: half-written temp files are removed, an interrupted drop, strip or
// rejection is finished, every complete entry is kept (one that does not
// decompress is moved to rejected/ and counted), and the cap is enforced in
// case maxBytes shrank. Only one Spool may have a directory open at a time.
func Open(dir string, maxBytes int64) (*Spool, error) {
	if maxBytes <= 0 {
		return nil, fmt.Errorf("spool: maxBytes %d must be positive", maxBytes)
	}
	if err := os.MkdirAll(filepath.Join(dir, RejectedDir), 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("spool: %s is in use by another process: %w", dir, err)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(256<<20))
	if err != nil {
		lock.Close()
		return nil, err
	}
	s := &Spool{dir: dir, max: maxBytes, notify: make(chan struct{}, 1), dec: dec, lock: lock}
	s.mu.Lock()
	err = s.recover()
	s.mu.Unlock()
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("spool: recover %s: %w", dir, err)
	}
	return s, nil
}

func (s *Spool) recover() error {
	if b, err := os.ReadFile(filepath.Join(s.dir, stateFile)); err == nil {
		// A damaged state file restarts the counters; it must not keep
		// heartbeats from being sent.
		_ = json.Unmarshal(b, &s.st)
	}
	for _, d := range []string{s.dir, filepath.Join(s.dir, RejectedDir)} {
		if err := removeTemps(d); err != nil {
			return err
		}
	}
	des, err := os.ReadDir(s.dir) // sorted by name, so by seq
	if err != nil {
		return err
	}
	for _, de := range des {
		seq, ok := parseName(de.Name())
		if !ok || !de.Type().IsRegular() {
			continue
		}
		switch {
		case s.interrupted(doDrop, seq): // counted already
			if err := os.Remove(s.path(seq)); err != nil {
				return err
			}
			continue
		case s.interrupted(doAside, seq): // counted already
			if err := s.moveAside(seq, "set aside (the move was interrupted by a crash)"); err != nil {
				return err
			}
			continue
		}
		body, err := os.ReadFile(s.path(seq))
		if err != nil {
			return err
		}
		s.entries = append(s.entries, entry{seq: seq, size: int64(len(body))})
		s.bytes += int64(len(body))
		// Entries are renamed into place only after fsync, so this fails
		// only on a damaged disk or a file put there by hand.
		if _, err := s.dec.DecodeAll(body, nil); err != nil {
			if err := s.dropUnreadable(len(s.entries)-1, err); err != nil {
				return err
			}
			continue
		}
		if s.interrupted(doStrip, seq) { // counted already
			h, err := s.decode(seq)
			if err != nil {
				return err
			}
			if snapshotRows(h) > 0 {
				if err := s.rewriteStripped(len(s.entries)-1, h); err != nil {
					return err
				}
			}
		}
	}
	if n := len(s.entries); n > 0 {
		s.last, s.hasLast = s.entries[n-1].seq, true
	}
	if s.st.Doing != "" && (!s.hasLast || s.st.Seq > s.last) {
		// Keeps a confused sensor from reusing the seq of an action that
		// Open would finish again.
		s.last, s.hasLast = s.st.Seq, true
	}
	if err := s.enforceCap(); err != nil {
		return err
	}
	return atomicfile.SyncDir(s.dir)
}

// Close releases the directory. Other methods then return ErrClosed.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lock == nil {
		return nil
	}
	err := s.lock.Close() // releases the flock
	s.lock = nil
	s.dec.Close()
	return err
}

// Dir is the spool's directory.
func (s *Spool) Dir() string { return s.dir }

// Put stores h durably (written to a temp file, fsynced, renamed to its
// seq's name, directory fsynced) and then shrinks the spool below maxBytes:
// first by stripping the snapshot sections of the oldest entries that still
// have them, and only when no entry but the newest has any, by deleting the
// oldest entries whole. The newest entry is never touched, so a single
// heartbeat larger than the cap is kept. When Put returns nil or an
// ErrOverCap error, h survives a crash. h.Seq must be above every seq
// spooled since Open.
func (s *Spool) Put(h *heartbeat.Heartbeat) error {
	s.put.Lock()
	defer s.put.Unlock()
	body, err := s.enc.Encode(h) // valid until the next Put: written below
	if err != nil {
		return fmt.Errorf("spool: encode seq %d: %w", h.Seq, err)
	}
	snap := snapNone
	if snapshotRows(h) > 0 {
		snap = snapSome
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lock == nil {
		return ErrClosed
	}
	if s.hasLast && h.Seq <= s.last {
		return fmt.Errorf("spool: put seq %d after %d: %w", h.Seq, s.last, ErrSeqNotIncreasing)
	}
	if err := writeFile(s.dir, name(h.Seq), body); err != nil {
		return fmt.Errorf("spool: put seq %d: %w", h.Seq, err)
	}
	s.entries = append(s.entries, entry{seq: h.Seq, size: int64(len(body)), snap: snap})
	s.bytes += int64(len(body))
	s.last, s.hasLast = h.Seq, true
	capErr := s.enforceCap()
	// One directory fsync makes the new name durable, along with whatever
	// enforceCap renamed or deleted since its last state save.
	if err := atomicfile.SyncDir(s.dir); err != nil {
		return fmt.Errorf("spool: put seq %d: %w", h.Seq, err)
	}
	select {
	case s.notify <- struct{}{}:
	default:
	}
	if capErr != nil {
		return fmt.Errorf("spool: stored seq %d: %w: %w", h.Seq, ErrOverCap, capErr)
	}
	return nil
}

// enforceCap shrinks the spool under s.max; see Put. Called with s.mu held.
func (s *Spool) enforceCap() error {
	for s.bytes > s.max && len(s.entries) > 1 {
		i, err := s.oldestWithSnapshot()
		if err != nil {
			return err
		}
		if i >= 0 {
			if _, err := s.strip(i); err != nil {
				return err
			}
			continue
		}
		// Only events and completed flows are left: lose the oldest.
		e := s.entries[0]
		st := s.st
		st.Heartbeats++
		if h, err := s.decode(e.seq); err == nil {
			st.EventRows += uint64(len(h.Events) + len(h.CompletedFlows))
			st.SnapshotRows += uint64(snapshotRows(h))
		}
		st.Doing, st.Seq = doDrop, e.seq
		if err := s.save(st); err != nil {
			return err
		}
		if err := os.Remove(s.path(e.seq)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		s.removeAt(0)
	}
	return nil
}

// oldestWithSnapshot returns the index of the oldest entry, newest
// excluded, that has snapshot rows, or -1. Entries unreadable on disk are
// set aside on the way.
func (s *Spool) oldestWithSnapshot() (int, error) {
	for i := 0; i < len(s.entries)-1; i++ {
		if s.entries[i].snap == snapUnknown {
			h, err := s.decode(s.entries[i].seq)
			if err != nil {
				if err := s.dropUnreadable(i, err); err != nil {
					return -1, err
				}
				i--
				continue
			}
			s.entries[i].snap = snapNone
			if snapshotRows(h) > 0 {
				s.entries[i].snap = snapSome
			}
		}
		if s.entries[i].snap == snapSome {
			return i, nil
		}
	}
	return -1, nil
}

// strip rewrites entry i without its snapshot sections, counting them, and
// reports whether it had any.
func (s *Spool) strip(i int) (bool, error) {
	e := &s.entries[i]
	h, err := s.decode(e.seq)
	if err != nil {
		return false, s.dropUnreadable(i, err)
	}
	n := snapshotRows(h)
	if n == 0 {
		e.snap = snapNone
		return false, nil
	}
	st := s.st
	st.SnapshotRows += uint64(n)
	st.Doing, st.Seq = doStrip, e.seq
	if err := s.save(st); err != nil {
		return false, err
	}
	return true, s.rewriteStripped(i, h)
}

func (s *Spool) rewriteStripped(i int, h *heartbeat.Heartbeat) error {
	e := &s.entries[i]
	h.DropSnapshots()
	body, err := heartbeat.Encode(h)
	if err != nil {
		return err
	}
	if err := writeFile(s.dir, name(e.seq), body); err != nil {
		return err
	}
	s.bytes += int64(len(body)) - e.size
	e.size, e.snap = int64(len(body)), snapNone
	return nil
}

// dropUnreadable sets entry i aside as lost.
func (s *Spool) dropUnreadable(i int, cause error) error {
	if err := s.setAside(s.entries[i].seq, fmt.Sprintf("unreadable on disk: %v", cause), func(d *Dropped) { d.Heartbeats++ }); err != nil {
		return err
	}
	s.removeAt(i)
	return nil
}

// StripSnapshots rewrites entry seq without its snapshot sections, for a
// heartbeat ingest found too large (413): its events and completed flows
// can still go. It reports false when there was nothing to strip.
func (s *Spool) StripSnapshots(seq uint64) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lock == nil {
		return false, ErrClosed
	}
	i, ok := s.find(seq)
	if !ok {
		return false, nil
	}
	stripped, err := s.strip(i)
	if err != nil {
		return false, fmt.Errorf("spool: strip seq %d: %w", seq, err)
	}
	return stripped, atomicfile.SyncDir(s.dir)
}

// Oldest returns the entry with the lowest seq; body is the zstd JSON
// document, ready to POST. ok is false when the spool is empty.
func (s *Spool) Oldest() (seq uint64, body []byte, ok bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lock == nil {
		return 0, nil, false, ErrClosed
	}
	for len(s.entries) > 0 {
		e := s.entries[0]
		body, err := os.ReadFile(s.path(e.seq))
		if errors.Is(err, fs.ErrNotExist) {
			s.removeAt(0) // deleted behind our back: nothing to send
			continue
		}
		if err != nil {
			return 0, nil, false, fmt.Errorf("spool: read seq %d: %w", e.seq, err)
		}
		return e.seq, body, true, nil
	}
	return 0, nil, false, nil
}

// Remove forgets entry seq once ingest has acknowledged it. Removing a seq
// that is not spooled (the cap dropped it meanwhile) is not an error.
func (s *Spool) Remove(seq uint64) error {
	return s.forget(seq, func() error {
		// No directory fsync: if a crash brings the file back, the heartbeat
		// is sent again, which ingest takes as a harmless retry.
		if err := os.Remove(s.path(seq)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("spool: remove seq %d: %w", seq, err)
		}
		return nil
	})
}

// Reject moves entry seq to rejected/ with the reason beside it (as
// <seq>.txt) and counts it in Dropped.Rejected. It is never sent again.
func (s *Spool) Reject(seq uint64, reason string) error {
	return s.forget(seq, func() error {
		if err := s.setAside(seq, reason, func(d *Dropped) { d.Rejected++ }); err != nil {
			return fmt.Errorf("spool: reject seq %d: %w", seq, err)
		}
		return nil
	})
}

// forget runs drop, under the lock, on entry seq's file and then forgets
// the entry; the entry stays when drop fails. A seq that is not spooled
// (the cap dropped it meanwhile) is not an error and drop is not run.
func (s *Spool) forget(seq uint64, drop func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lock == nil {
		return ErrClosed
	}
	i, ok := s.find(seq)
	if !ok {
		return nil
	}
	if err := drop(); err != nil {
		return err
	}
	s.removeAt(i)
	return nil
}

// setAside writes the reason, saves the counts, then moves entry seq into
// rejected/.
func (s *Spool) setAside(seq uint64, reason string, count func(*Dropped)) error {
	if err := writeFile(filepath.Join(s.dir, RejectedDir), reasonName(seq), []byte(reason+"\n")); err != nil {
		return err
	}
	st := s.st
	count(&st.Dropped)
	st.Doing, st.Seq = doAside, seq
	if err := s.save(st); err != nil {
		return err
	}
	return s.moveAside(seq, "")
}

// moveAside moves entry seq into rejected/ (writing reason unless it is
// empty or a reason is there) and prunes that folder to the newest
// KeepRejected heartbeats.
func (s *Spool) moveAside(seq uint64, reason string) error {
	rdir := filepath.Join(s.dir, RejectedDir)
	if _, err := os.Stat(filepath.Join(rdir, reasonName(seq))); reason != "" && errors.Is(err, fs.ErrNotExist) {
		if err := writeFile(rdir, reasonName(seq), []byte(reason+"\n")); err != nil {
			return err
		}
	}
	if err := os.Rename(s.path(seq), filepath.Join(rdir, name(seq))); err != nil {
		return err
	}
	if err := atomicfile.SyncDir(rdir); err != nil {
		return err
	}
	if err := atomicfile.SyncDir(s.dir); err != nil {
		return err
	}
	des, err := os.ReadDir(rdir) // sorted by name, so by seq
	if err != nil {
		return err
	}
	var kept []uint64
	for _, de := range des {
		if seq, ok := parseName(de.Name()); ok {
			kept = append(kept, seq)
		}
	}
	for _, old := range kept[:max(0, len(kept)-KeepRejected)] {
		os.Remove(filepath.Join(rdir, name(old)))
		os.Remove(filepath.Join(rdir, reasonName(old)))
	}
	return nil
}

func (s *Spool) interrupted(action string, seq uint64) bool {
	return s.st.Doing == action && s.st.Seq == seq
}

// save makes st durable; see state.
func (s *Spool) save(st state) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := writeFile(s.dir, stateFile, b); err != nil {
		return err
	}
	// The new counts must be on disk before the action they describe.
	if err := atomicfile.SyncDir(s.dir); err != nil {
		return err
	}
	s.st = st
	return nil
}

// Len is the number of spooled heartbeats.
func (s *Spool) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

// Bytes is the size of the spooled heartbeats, the figure held under
// maxBytes (rejected/ and state.json are not counted).
func (s *Spool) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes
}

// LastSeq is the highest seq spooled since Open, including entries found
// on disk; ok is false if there has been none. A sensor that lost its own
// record of seq must continue above it.
func (s *Spool) LastSeq() (seq uint64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, s.hasLast
}

// Dropped returns the counters of what was given up.
func (s *Spool) Dropped() Dropped {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.Dropped
}

// Notify is signalled (buffered, capacity 1) after each Put, so a sender
// waiting on an empty spool wakes up.
func (s *Spool) Notify() <-chan struct{} { return s.notify }

func (s *Spool) decode(seq uint64) (*heartbeat.Heartbeat, error) {
	body, err := os.ReadFile(s.path(seq))
	if err != nil {
		return nil, err
	}
	doc, err := s.dec.DecodeAll(body, nil)
	if err != nil {
		return nil, err
	}
	h := new(heartbeat.Heartbeat)
	if err := json.Unmarshal(doc, h); err != nil {
		return nil, err
	}
	return h, nil
}

func (s *Spool) find(seq uint64) (int, bool) {
	return slices.BinarySearchFunc(s.entries, seq, func(e entry, seq uint64) int { return cmpSeq(e.seq, seq) })
}

func (s *Spool) removeAt(i int) {
	s.bytes -= s.entries[i].size
	s.entries = slices.Delete(s.entries, i, i+1)
}

func (s *Spool) path(seq uint64) string { return filepath.Join(s.dir, name(seq)) }

func snapshotRows(h *heartbeat.Heartbeat) int { return h.SnapshotRows() }

func cmpSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func name(seq uint64) string       { return fmt.Sprintf("%0*d%s", seqDigits, seq, suffix) }
func reasonName(seq uint64) string { return fmt.Sprintf("%0*d.txt", seqDigits, seq) }

func parseName(n string) (uint64, bool) {
	digits, ok := strings.CutSuffix(n, suffix)
	if !ok || len(digits) != seqDigits {
		return 0, false
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	return seq, err == nil
}

// writeFile replaces dir/name atomically with data (mode 0600, as every
// spool file). The caller fsyncs dir to make the rename durable.
func writeFile(dir, name string, data []byte) error {
	return atomicfile.Replace(filepath.Join(dir, name), data, 0o600)
}

// removeTemps deletes the temp files of writes a crash interrupted.
func removeTemps(dir string) error {
	des, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, de := range des {
		if strings.HasPrefix(de.Name(), tmpPrefix) {
			if err := os.Remove(filepath.Join(dir, de.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}
