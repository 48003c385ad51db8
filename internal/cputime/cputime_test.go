package cputime

import (
	"testing"
	"time"
)

// Spinning for 50 ms of wall time uses CPU time this process counts, and
// sleeping uses almost none.
func TestSelf(t *testing.T) {
	t0 := Self()
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); {
	}
	spun := Self() - t0
	t1 := Self()
	time.Sleep(50 * time.Millisecond)
	slept := Self() - t1
	if spun < 10*time.Millisecond {
		t.Errorf("spinning 50 ms counted %v of CPU", spun)
	}
	if slept > spun {
		t.Errorf("sleeping counted %v, more than spinning's %v", slept, spun)
	}
}
