package sensor_test

import (
	"fmt"
	"net"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/netview/netview/internal/cputime"
	"github.com/netview/netview/internal/loopback"
)

// openSockets holds about n TCP sockets on loopback (n/2 connections, both
// ends) until the benchmark ends.
func openSockets(b *testing.B, n int) {
	b.Helper()
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	lim.Cur, lim.Max = max(lim.Cur, uint64(n+1024)), max(lim.Max, uint64(n+1024)) // raise only
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Skipf("cannot raise the open-file limit to %d: %v", n+1024, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var conns []net.Conn
	b.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
		ln.Close()
	})
	for len(conns) < n {
		c, s := loopback.Connect(b, ln)
		conns = append(conns, c, s)
	}
}

// BenchmarkHeartbeat measures the CPU time of everything the sensor does at
// heartbeat time (flow poll, socket tables, owner resolution, assembly)
// beside `ss -tanpu` on the same host in the same run, and reports the
// ratio: the aim is no more CPU than ss.
func BenchmarkHeartbeat(b *testing.B) {
	if _, err := exec.LookPath("ss"); err != nil {
		b.Skip("ss (iproute2) is not installed: no reference to measure against")
	}
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("sockets=%d", n), func(b *testing.B) {
			openSockets(b, n)
			s := newSensor(b, "http://127.0.0.1:1/v1/heartbeat", time.Second)
			start := cputime.Self()
			if _, err := s.Heartbeat(time.Now()); err != nil { // cold: empty caches
				b.Fatal(err)
			}
			cold := cputime.Self() - start
			var warm, ss, poll time.Duration
			for b.Loop() {
				start := cputime.Self()
				s.Poll() // what the tracker does every second between heartbeats
				poll += cputime.Self() - start
				start = cputime.Self()
				if _, err := s.Heartbeat(time.Now()); err != nil {
					b.Fatal(err)
				}
				warm += cputime.Self() - start
				cmd := exec.Command("ss", "-tanpu")
				if err := cmd.Run(); err != nil {
					b.Fatal(err)
				}
				ss += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
			}
			runs := float64(b.N)
			b.ReportMetric(float64(cold.Microseconds())/1000, "cold-cpu-ms")
			b.ReportMetric(float64(warm.Microseconds())/1000/runs, "cpu-ms/heartbeat")
			b.ReportMetric(float64(ss.Microseconds())/1000/runs, "ss-cpu-ms")
			b.ReportMetric(float64(poll.Microseconds())/1000/runs, "poll-cpu-ms")
			b.ReportMetric(float64(warm)/float64(ss), "sensor/ss")
		})
	}
}
