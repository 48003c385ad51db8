// Package cputime reads the CPU time this process has used. Benchmarks on
// these shared machines compare it rather than wall time, which other
// tenants stretch.
package cputime

import (
	"syscall"
	"testing"
	"time"
)

// Self is the user and system CPU time of this process so far; 0 if the
// kernel does not say.
func Self() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// PerOp runs f b.N times (b.Loop) and returns the CPU time per call, which
// it also reports as the metric cpu-ms/op.
func PerOp(b *testing.B, f func()) time.Duration {
	before := Self()
	for b.Loop() {
		f()
	}
	cpu := (Self() - before) / time.Duration(b.N)
	b.ReportMetric(float64(cpu.Microseconds())/1e3, "cpu-ms/op")
	return cpu
}
