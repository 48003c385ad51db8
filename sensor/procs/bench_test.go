package procs

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/netview/netview/internal/cputime"
)

// BenchmarkResolve times Resolve over every socket of the host while this
// process holds N more (half TCP listeners, half bound UDP sockets): cold (a
// fresh Resolver each time, so a complete scan) and warm (the same Resolver,
// so cache checks), against `ss -tanpu`, which maps sockets to processes by
// its own scan of /proc/*/fd, run as a subprocess in the same run.
//
// CPU time is what is compared: for Resolve, getrusage(RUSAGE_SELF) deltas
// around the loop (the whole process: GC and runtime threads included,
// nothing else runs meanwhile); for ss, ProcessState user+system time.
func BenchmarkResolve(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		fds := openSockets(b, n)
		want := hostInodes(b)
		if len(want) < n {
			b.Fatalf("%d sockets in /proc/net, want at least %d", len(want), n)
		}
		var cold, warm, ss time.Duration
		b.Run(fmt.Sprintf("N=%d/cold", n), func(b *testing.B) {
			b.ReportAllocs()
			var st Stats
			cold = cputime.PerOp(b, func() { _, st = NewResolver("/proc").Resolve(want) })
			b.ReportMetric(float64(st.FDsRead), "fds/op")
		})
		b.Run(fmt.Sprintf("N=%d/warm", n), func(b *testing.B) {
			r := NewResolver("/proc")
			if got, _ := r.Resolve(want); len(got) < n {
				b.Fatalf("resolved %d of %d", len(got), len(want))
			}
			b.ReportAllocs()
			var st Stats
			warm = cputime.PerOp(b, func() { _, st = r.Resolve(want) })
			b.ReportMetric(float64(st.CacheHits), "hits/op")
		})
		b.Run(fmt.Sprintf("N=%d/ss", n), func(b *testing.B) {
			if _, err := exec.LookPath("ss"); err != nil {
				b.Skip("ss (iproute2) is not installed: no comparison")
			}
			ss = 0
			for b.Loop() {
				cmd := exec.Command("ss", "-tanpu") // output to /dev/null
				if err := cmd.Run(); err != nil {
					b.Fatal(err)
				}
				ss += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
			}
			ss /= time.Duration(b.N)
			b.ReportMetric(float64(ss.Microseconds())/1e3, "cpu-ms/op")
		})
		fmt.Printf("resolve cold N=%d: %.2f ms, warm: %.2f ms, ss -tanpu: %.2f ms (user+sys CPU per call; %d sockets on the host)\n",
			n, ms(cold), ms(warm), ms(ss), len(want))
		for _, fd := range fds {
			syscall.Close(fd)
		}
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }

// openSockets opens n sockets on the loopback, raising RLIMIT_NOFILE first.
func openSockets(b *testing.B, n int) []int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
	if need := uint64(n + 1000); lim.Cur < need {
		lim.Cur = need
		lim.Max = max(lim.Max, need)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			b.Fatalf("raise RLIMIT_NOFILE to %d: %v", need, err)
		}
	}
	fds := make([]int, 0, n)
	for i := range n {
		typ := syscall.SOCK_DGRAM
		if i%2 == 0 {
			typ = syscall.SOCK_STREAM
		}
		fd, err := syscall.Socket(syscall.AF_INET, typ|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		fds = append(fds, fd)
		if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			b.Fatal(err)
		}
		if typ == syscall.SOCK_STREAM {
			if err := syscall.Listen(fd, 1); err != nil {
				b.Fatal(err)
			}
		}
	}
	return fds
}

// hostInodes lists the inodes of every TCP and UDP socket of the host, as
// the sensor's caller would from /proc/net.
func hostInodes(b *testing.B) []uint64 {
	var out []uint64
	for _, proto := range []string{"tcp", "tcp6", "udp", "udp6"} {
		if _, err := os.Stat("/proc/net/" + proto); err != nil {
			continue
		}
		for _, s := range procNet(b, proto) {
			if s.inode != 0 {
				out = append(out, s.inode)
			}
		}
	}
	return out
}

// BenchmarkProcesses times Processes on a fresh Resolver, so every live
// process of the host has its metadata (exe, uid, network namespace) read
// once: the per-process cost that the cache pays once per process lifetime.
func BenchmarkProcesses(b *testing.B) {
	b.ReportAllocs()
	var n int
	cpu := cputime.PerOp(b, func() { n = len(NewResolver("/proc").Processes()) })
	b.ReportMetric(float64(n), "procs/op")
	b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(max(n, 1)), "cpu-µs/proc")
}
