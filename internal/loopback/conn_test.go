package loopback

import (
	"io"
	"net"
	"testing"
	"time"
)

// Connect's two ends are one connection, and Serve hands every connection
// to its handler until the listener closes.
func TestConnectAndServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, s := Connect(t, ln)
	if c.LocalAddr().String() != s.RemoteAddr().String() || c.RemoteAddr().String() != s.LocalAddr().String() {
		t.Fatalf("client %v -> %v, server %v <- %v: not the two ends of one connection", c.LocalAddr(), c.RemoteAddr(), s.LocalAddr(), s.RemoteAddr())
	}
	c.Close()
	s.Close()

	done := make(chan struct{})
	go func() { Serve(ln, func(c net.Conn) { io.Copy(c, c); c.Close() }); close(done) }()
	for i := range 3 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		msg := []byte{'a' + byte(i)}
		got := make([]byte, 1)
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, got); err != nil || got[0] != msg[0] {
			t.Fatalf("connection %d echoed %q, %v; want %q", i, got, err, msg)
		}
		c.Close()
	}
	ln.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return once the listener closed")
	}
}
