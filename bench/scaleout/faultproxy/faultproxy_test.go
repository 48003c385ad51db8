package faultproxy

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// echo serves on loopback, writing back what it reads until EOF, then
// closing.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func start(t *testing.T) *Proxy {
	t.Helper()
	p, err := New(echo(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func dial(t *testing.T, p *Proxy) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// roundTrip writes msg and reads it back within limit.
func roundTrip(c net.Conn, msg string, limit time.Duration) (time.Duration, error) {
	t0 := time.Now()
	if _, err := c.Write([]byte(msg)); err != nil {
		return 0, err
	}
	_ = c.SetReadDeadline(t0.Add(limit))
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return time.Since(t0), err
	}
	if string(buf) != msg {
		return time.Since(t0), errors.New("echoed " + string(buf) + ", want " + msg)
	}
	return time.Since(t0), nil
}

// connected starts a proxy and dials through it, with one round trip
// done: the proxy then holds the connection both ways, as the faults
// under test find it.
func connected(t *testing.T) (*Proxy, *net.TCPConn) {
	t.Helper()
	p := start(t)
	c := dial(t, p)
	if _, err := roundTrip(c, "x", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	return p, c
}

// wantReset fails unless reading c ends in a connection reset.
func wantReset(t *testing.T, c net.Conn, within time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(within))
	_, err := c.Read(make([]byte, 16))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read after reset: %v, want connection reset", err)
	}
}

func TestForwardsAndPassesHalfClose(t *testing.T) {
	_, c := connected(t)
	// Our half close reaches the server, whose close reaches us.
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := c.Read(make([]byte, 16)); n != 0 || err != io.EOF {
		t.Fatalf("after half close: read %d bytes, %v; want EOF", n, err)
	}
}

func TestDelay(t *testing.T) {
	p := start(t)
	c := dial(t, p)
	p.SetNetwork(150*time.Millisecond, 150*time.Millisecond, 0, 0)
	took, err := roundTrip(c, "slow", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if took < 300*time.Millisecond {
		t.Errorf("round trip with 150 ms each way took %v", took)
	}
	p.SetNetwork(0, 0, 0, 0)
	if took, err = roundTrip(c, "fast", 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if took >= 150*time.Millisecond {
		t.Errorf("round trip without delay took %v", took)
	}
}

func TestResetAll(t *testing.T) {
	p, c := connected(t)
	if n := p.ResetAll(); n != 1 {
		t.Errorf("ResetAll reset %d connections, want 1", n)
	}
	wantReset(t, c, 2*time.Second)
}

func TestFlakyResets(t *testing.T) {
	p, c := connected(t)
	p.SetNetwork(0, 0, 1, 50*time.Millisecond)
	wantReset(t, c, 2*time.Second)
	if p.Resets() < 1 {
		t.Errorf("Resets() = %d after a reset", p.Resets())
	}
}

func TestRefuseAndAccept(t *testing.T) {
	p, open := connected(t)
	p.Refuse()
	wantReset(t, open, 2*time.Second)
	if c, err := net.Dial("tcp", p.Addr()); !errors.Is(err, syscall.ECONNREFUSED) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("dial while refusing: %v, want connection refused", err)
	}
	if err := p.Accept(); err != nil {
		t.Fatal(err)
	}
	if _, err := roundTrip(dial(t, p), "back", 2*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestBlackHoleAndHeal(t *testing.T) {
	p := start(t)
	c := dial(t, p)
	p.BlackHole()
	if _, err := roundTrip(c, "held", 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read through the black hole: %v, want a timeout", err)
	}
	p.Heal()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "held" {
		t.Fatalf("after Heal: %q, %v; want the held bytes", buf, err)
	}
}
