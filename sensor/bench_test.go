package sensor_test

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/netview/netview/internal/cputime"
	"github.com/netview/netview/internal/loopback"
	"github.com/netview/netview/sensor"
	"github.com/netview/netview/sensor/procnet"
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

// namedSockets makes n named network namespaces (`ip netns add`), each with
// a listener on loopback and conns connections to it, all held by this
// process from the host's namespace, until the benchmark ends. It returns
// the namespaces' names.
func namedSockets(b *testing.B, n, conns int) []string {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("ip netns add needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		b.Skip("ip (iproute2) is not installed")
	}
	var names []string
	var held []io.Closer
	b.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
		for _, name := range names {
			exec.Command("ip", "netns", "del", name).Run()
		}
	})
	for i := range n {
		name := fmt.Sprintf("nvbench-%d-%d", os.Getpid(), i)
		for _, args := range [][]string{{"netns", "add", name}, {"-n", name, "link", "set", "lo", "up"}} {
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				b.Fatalf("ip %v: %v: %s", args, err, out)
			}
		}
		names = append(names, name)
		var ln net.Listener
		err := procnet.InNetns("/run/netns/"+name, func() (err error) {
			if ln, err = net.Listen("tcp4", "127.0.0.1:8080"); err != nil {
				return err
			}
			held = append(held, ln)
			for range conns {
				c, err := net.Dial("tcp4", "127.0.0.1:8080")
				if err != nil {
					return err
				}
				held = append(held, c)
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		for range conns {
			c, err := ln.Accept()
			if err != nil {
				b.Fatal(err)
			}
			held = append(held, c)
		}
	}
	return names
}

// BenchmarkHeartbeatNamespaces is the container host: 50 namespaces of
// about 200 sockets each (10,000 in all, every one on the same
// 127.0.0.1:8080), against `ss -tanp` run once in each namespace in the
// same loop, the oracle an operator would use. The aim is no more CPU than
// those 50 runs of ss.
func BenchmarkHeartbeatNamespaces(b *testing.B) {
	if _, err := exec.LookPath("ss"); err != nil {
		b.Skip("ss (iproute2) is not installed: no reference to measure against")
	}
	names := namedSockets(b, 50, 100)
	s := newSensorIn(b, b.TempDir(), "http://127.0.0.1:1/v1/heartbeat", time.Second,
		func(c *sensor.Config) { c.AllNetns, c.NetnsDir = true, "/run/netns" })
	h, err := s.Heartbeat(time.Now())
	if err != nil {
		b.Fatal(err)
	}
	spaces := map[uint64]int{}
	for _, c := range h.TCPConnections {
		if c.LocalPort == 8080 || c.RemotePort == 8080 {
			spaces[c.Netns]++
		}
	}
	if len(spaces) != len(names) {
		b.Fatalf("the heartbeat has connections on 8080 in %d namespaces, want %d", len(spaces), len(names))
	}
	var warm, ss, poll time.Duration
	for b.Loop() {
		start := cputime.Self()
		s.Poll()
		poll += cputime.Self() - start
		start = cputime.Self()
		if _, err := s.Heartbeat(time.Now()); err != nil {
			b.Fatal(err)
		}
		warm += cputime.Self() - start
		for _, name := range names {
			cmd := exec.Command("nsenter", "--net=/run/netns/"+name, "ss", "-tanp")
			if err := cmd.Run(); err != nil {
				b.Fatal(err)
			}
			ss += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		}
	}
	runs := float64(b.N)
	b.ReportMetric(float64(warm.Microseconds())/1000/runs, "cpu-ms/heartbeat")
	b.ReportMetric(float64(ss.Microseconds())/1000/runs, "50ss-cpu-ms")
	b.ReportMetric(float64(poll.Microseconds())/1000/runs, "poll-cpu-ms")
	b.ReportMetric(float64(warm)/float64(ss), "sensor/ss")
}
