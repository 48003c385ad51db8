package loopback

import (
	"net"
	"testing"
)

// Serve accepts connections on ln until ln is closed, each handed to
// handle on a goroutine of its own so that a slow one does not hold back
// the next. It takes no testing.TB: the helper processes tests re-run
// themselves as call it too.
func Serve(ln net.Listener, handle func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go handle(c)
	}
}

// Connect dials ln and accepts: both ends of one TCP connection. Nothing
// else may be dialling ln meanwhile, or server may be that other one.
func Connect(tb testing.TB, ln net.Listener) (client, server net.Conn) {
	tb.Helper()
	client, err := net.Dial(ln.Addr().Network(), ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		client.Close()
		tb.Fatal(err)
	}
	return client, server
}
