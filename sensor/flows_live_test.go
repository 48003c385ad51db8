package sensor

import (
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/internal/loopback"
	"github.com/netview/netview/sensor/diag"
	"github.com/netview/netview/sensor/flows"
	"github.com/netview/netview/sensor/procnet"
)

// liveTracker follows the real loopback sockets of this host through src,
// on a clock the test moves.
type liveTracker struct {
	*flows.Tracker
	now time.Time
}

func sources(t *testing.T) map[string]flows.Source {
	t.Helper()
	out := map[string]flows.Source{"proc": &procSource{fs: procnet.NewFS("/proc")}}
	if c, err := diag.Open(); err == nil {
		t.Cleanup(func() { c.Close() })
		out["inet_diag"] = &diagSource{conn: c}
	} else {
		t.Logf("inet_diag unavailable (%v): testing the /proc source only", err)
	}
	return out
}

func newLive(src flows.Source) *liveTracker {
	lt := &liveTracker{now: time.Now()}
	lt.Tracker = flows.New(flows.Config{StaleAfter: 10 * time.Second}, src, nil, func() time.Time { return lt.now })
	return lt
}

func (lt *liveTracker) poll(t *testing.T, advance time.Duration) {
	t.Helper()
	lt.now = lt.now.Add(advance)
	if err := lt.Poll(); err != nil {
		t.Fatal(err)
	}
}

// ended returns the completed flow with this local port on either end.
func ended(lt *liveTracker, port uint16, dir string) *heartbeat.Flow {
	done, _ := lt.Take()
	for i := range done {
		f := &done[i]
		if f.Direction == dir && (f.SrcPort == port || f.DstPort == port) {
			return f
		}
	}
	return nil
}

func pair(t *testing.T) (ln net.Listener, client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	c, s := loopback.Connect(t, ln)
	return ln, c.(*net.TCPConn), s.(*net.TCPConn)
}

func port(c net.Conn) uint16 { return uint16(c.LocalAddr().(*net.TCPAddr).Port) }

// Final states and byte counts on real loopback connections, for every
// source this kernel offers.
func TestFlowFinalStatesOnLoopback(t *testing.T) {
	for name, src := range sources(t) {
		t.Run(name, func(t *testing.T) {
			t.Run("established", func(t *testing.T) {
				lt := newLive(src)
				lt.poll(t, 0)
				_, c, s := pair(t)
				go c.Write(make([]byte, 12345))
				if _, err := io.ReadFull(s, make([]byte, 12345)); err != nil {
					t.Fatal(err)
				}
				s.Write(make([]byte, 678))
				io.ReadFull(c, make([]byte, 678))
				time.Sleep(20 * time.Millisecond) // let the last ACKs land
				lt.poll(t, time.Second)
				c.Close()
				s.Close()
				time.Sleep(20 * time.Millisecond)
				lt.poll(t, time.Second)
				f := ended(lt, port(c), "outbound")
				if f == nil || f.State != "established" {
					t.Fatalf("client flow = %+v, want ended established", f)
				}
				if name == "inet_diag" && (f.BytesSent != 12345 || f.BytesReceived != 678) {
					t.Errorf("bytes sent %d received %d, want 12345 and 678", f.BytesSent, f.BytesReceived)
				}
			})
			t.Run("refused", func(t *testing.T) {
				// A listener whose accept queue is full drops new SYNs: the
				// connect stays in SYN_SENT until it gives up.
				fd, addr := fullListener(t)
				defer syscall.Close(fd)
				lt := newLive(src)
				lt.poll(t, 0)
				d := net.Dialer{Timeout: 1500 * time.Millisecond}
				dialed := make(chan uint16, 1)
				go func() {
					c, err := d.Dial("tcp", addr)
					if err == nil {
						dialed <- port(c)
						c.Close()
						return
					}
					dialed <- 0
				}()
				time.Sleep(300 * time.Millisecond)
				lt.poll(t, time.Second)
				var synSent uint16
				for _, f := range lt.Active() {
					if f.State == "SYN_SENT" && f.DstPort == portOf(addr) {
						synSent = f.SrcPort
					}
				}
				if synSent == 0 {
					t.Fatalf("no SYN_SENT flow to %s among %+v", addr, lt.Active())
				}
				if p := <-dialed; p != 0 {
					t.Fatalf("connect succeeded from :%d; want it to time out", p)
				}
				lt.poll(t, time.Second)
				if f := ended(lt, synSent, "outbound"); f == nil || f.State != "refused" {
					t.Fatalf("flow = %+v, want ended refused", f)
				}
			})
			t.Run("half-closed", func(t *testing.T) {
				lt := newLive(src)
				lt.poll(t, 0)
				_, c, s := pair(t)
				c.CloseWrite() // client FIN; the server never closes its side
				time.Sleep(20 * time.Millisecond)
				lt.poll(t, time.Second)
				c.SetLinger(0) // then the client resets
				c.Close()
				time.Sleep(20 * time.Millisecond)
				lt.poll(t, time.Second)
				done, _ := lt.Take()
				states := map[string]string{}
				for _, f := range done {
					if f.SrcPort == port(c) || f.DstPort == port(c) {
						states[f.Direction] = f.State
					}
				}
				// Polling sees the client leave FIN_WAIT2 without a TIME_WAIT:
				// half-closed. The server's CLOSE_WAIT then gone looks like an
				// ordinary passive close to polling (kernel events will tell).
				if states["outbound"] != "half-closed" || states["inbound"] != "established" {
					t.Fatalf("final states %v, want outbound half-closed, inbound established", states)
				}
				s.Close()
			})
			t.Run("stale", func(t *testing.T) {
				lt := newLive(src)
				lt.poll(t, 0)
				_, c, s := pair(t)
				lt.poll(t, time.Second)
				c.SetLinger(0)
				c.Close()
				s.Close()
				time.Sleep(20 * time.Millisecond)
				lt.poll(t, time.Minute) // the tracker looked away for a minute
				if f := ended(lt, port(c), "outbound"); f == nil || f.State != "stale" {
					t.Fatalf("flow = %+v, want ended stale", f)
				}
			})
		})
	}
}

// fullListener returns a listener with a backlog of one whose queue is
// already full, so the kernel drops further SYNs.
func fullListener(t *testing.T) (int, string) {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := syscall.Getsockname(fd)
	addr := (&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*syscall.SockaddrInet4).Port}).String()
	for range 3 { // fill the queue (backlog 0 admits one or two)
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
	}
	return fd, addr
}

func portOf(addr string) uint16 {
	a, _ := net.ResolveTCPAddr("tcp", addr)
	return uint16(a.Port)
}
