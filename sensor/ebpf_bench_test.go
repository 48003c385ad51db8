package sensor_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// procCPU reads a process's user+system CPU time from /proc/<pid>/stat.
func procCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ = 100
}

// probeRuntime sums the kernel's run time of the sensor's BPF programs
// (kernel.bpf_stats_enabled must be on).
func probeRuntime() (time.Duration, uint64) {
	names := map[string]bool{}
	for _, n := range []string{"inet_sock_set_state", "sys_exit_accept", "sys_enter_sendto", "sys_enter_sendmsg", "sys_enter_sendmmsg",
		"sys_enter_write", "sys_enter_writev", "getaddrinfo", "getaddrinfo_ret"} {
		names[n[:min(len(n), 15)]] = true // the kernel keeps 15 bytes of a name
	}
	var d time.Duration
	var runs uint64
	for id := ebpf.ProgramID(0); ; {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			break
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		if info, err := p.Info(); err == nil && names[info.Name] {
			if s, err := p.Stats(); err == nil {
				d += s.Runtime
				runs += s.RunCount
			}
		}
		p.Close()
	}
	return d, runs
}

// BenchmarkSensorCPUUnderConnections measures the sensor's own CPU while a
// separate process opens 1,000 new loopback connections a second for 30
// seconds, with the eBPF probes on and off. The sensor runs as a child
// process (polling every second, heartbeats every 15 s to an unreachable
// ingest, so into its spool) and its CPU is read from /proc/<pid>/stat;
// the load generator's CPU is not counted. With the probes on it also
// reports the probes' kernel run time (kernel.bpf_stats_enabled). Run it
// with -benchtime=1x.
func BenchmarkSensorCPUUnderConnections(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root for the eBPF probes and to read their run time")
	}
	const rate, secs = 1000, 30 // two heartbeats (every 15 s) in every window, not zero or one
	for _, mode := range []string{"on", "off"} {
		b.Run("ebpf="+mode, func(b *testing.B) {
			var stats interface{ Close() error }
			if mode == "on" {
				s, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
				if err != nil {
					b.Skipf("cannot enable BPF run time statistics: %v", err)
				}
				stats = s
				defer stats.Close()
			}
			for range b.N {
				sensorCmd := exec.Command(os.Args[0], "-test.run=^TestEBPFHelper$")
				sensorCmd.Env = append(os.Environ(), "NETVIEW_EBPF_HELPER=sensor", "NETVIEW_MODE="+mode, "NETVIEW_STATE="+b.TempDir())
				stdin, _ := sensorCmd.StdinPipe()
				out, _ := sensorCmd.StdoutPipe()
				if err := sensorCmd.Start(); err != nil {
					b.Fatal(err)
				}
				line, _ := bufio.NewReader(out).ReadString('\n')
				if line != "ready\n" {
					b.Fatalf("sensor child: %q", line)
				}
				time.Sleep(2 * time.Second) // its first poll and heartbeat are start-up, not load
				load := exec.Command(os.Args[0], "-test.run=^TestEBPFHelper$")
				load.Env = append(os.Environ(), "NETVIEW_EBPF_HELPER=load", "NETVIEW_RATE="+strconv.Itoa(rate), "NETVIEW_SECS="+strconv.Itoa(secs))
				lout, _ := load.StdoutPipe()
				if err := load.Start(); err != nil {
					b.Fatal(err)
				}
				// The window is the load's own: from its "start" line (its
				// process is up and listening) to its count, so neither
				// process's start-up dilutes the figures.
				lr := bufio.NewReader(lout)
				if l, _ := lr.ReadString('\n'); l != "start\n" {
					b.Fatalf("load child: %q", l)
				}
				cpu0 := procCPU(b, sensorCmd.Process.Pid)
				k0, r0 := probeRuntime()
				start := time.Now()
				lo, _ := lr.ReadString('\n')
				wall := time.Since(start)
				cpu := procCPU(b, sensorCmd.Process.Pid) - cpu0
				k1, r1 := probeRuntime()
				if err := load.Wait(); err != nil {
					b.Fatalf("load: %v %s", err, lo)
				}
				stdin.Close()
				sensorCmd.Wait()
				var conns int
				fmt.Sscanf(strings.TrimSpace(string(lo)), "connections %d", &conns)
				b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "%core")
				b.ReportMetric(float64(conns)/wall.Seconds(), "conns/s")
				if mode == "on" {
					b.ReportMetric(100*(k1-k0).Seconds()/wall.Seconds(), "%core-kernel-bpf")
					b.ReportMetric(float64(r1-r0)/wall.Seconds(), "bpf-runs/s")
				}
			}
		})
	}
}
