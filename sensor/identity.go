package sensor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/uuid"
	"github.com/netview/netview/internal/atomicfile"
)

// identity is what the sensor keeps on disk across restarts: its id, made
// once, and a ceiling on the sequence numbers it has used, so seq never
// goes back. Numbers are reserved in blocks: the file is written (with an
// fsync) once per seqBlock heartbeats, and a restart resumes above the
// ceiling, leaving a harmless gap.
type identity struct {
	SensorID uuid.UUID `json:"sensor_id"`
	Seq      uint64    `json:"seq"` // ceiling: every seq used is at most this
	path     string
	next     uint64
}

const seqBlock = 1000

// loadIdentity reads dir/identity.json, creating it on first start.
func loadIdentity(dir string) (*identity, error) {
	id := &identity{path: filepath.Join(dir, "identity.json")}
	b, err := os.ReadFile(id.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		id.SensorID = uuid.New()
		return id, id.save()
	case err != nil:
		return nil, fmt.Errorf("sensor identity: %w", err)
	}
	if err := json.Unmarshal(b, id); err != nil || id.SensorID == uuid.Nil {
		return nil, fmt.Errorf("sensor identity %s is damaged (%v); move it away to start as a new sensor", id.path, err)
	}
	id.next = id.Seq // resume above everything a previous run may have used
	return id, nil
}

// resumeAbove makes the next seq exceed seq (the newest one still spooled,
// should the identity file have been lost or replaced).
func (id *identity) resumeAbove(seq uint64) {
	id.next = max(id.next, seq)
	id.Seq = max(id.Seq, seq)
}

// nextSeq returns the next sequence number; its block is durably reserved
// before it is used.
func (id *identity) nextSeq() (uint64, error) {
	id.next++
	if id.next > id.Seq {
		ceiling := id.Seq
		id.Seq = id.next + seqBlock - 1
		if err := id.save(); err != nil {
			id.next, id.Seq = id.next-1, ceiling // nothing handed out unsaved
			return 0, err
		}
	}
	return id.next, nil
}

func (id *identity) save() error {
	b, err := json.Marshal(id)
	if err != nil {
		return err
	}
	return atomicfile.Write(id.path, b, 0o600)
}

// bootID reads the kernel's boot id, a UUID new at every boot.
func bootID(procRoot string) uuid.UUID {
	b, err := os.ReadFile(filepath.Join(procRoot, "sys/kernel/random/boot_id"))
	if err != nil {
		return uuid.Nil
	}
	u, err := uuid.Parse(strings.TrimSpace(string(b)))
	if err != nil {
		return uuid.Nil
	}
	return u
}
