package sensor

import (
	"testing"
)

// Sequence numbers only grow, across restarts too, and the file is written
// once per block, not per heartbeat.
func TestSeqNeverGoesBack(t *testing.T) {
	dir := t.TempDir()
	id, err := loadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	var last uint64
	for range 5 {
		s, err := id.nextSeq()
		if err != nil {
			t.Fatal(err)
		}
		if s <= last {
			t.Fatalf("seq %d after %d", s, last)
		}
		last = s
	}
	if id.Seq != seqBlock {
		t.Fatalf("ceiling %d after 5 heartbeats, want one block (%d)", id.Seq, seqBlock)
	}
	again, err := loadIdentity(dir) // a restart, even after a crash
	if err != nil {
		t.Fatal(err)
	}
	if again.SensorID != id.SensorID {
		t.Fatal("sensor id changed across a restart")
	}
	s, err := again.nextSeq()
	if err != nil {
		t.Fatal(err)
	}
	if s <= last || s != seqBlock+1 {
		t.Fatalf("first seq after restart = %d, want %d (above every seq used)", s, seqBlock+1)
	}
}
