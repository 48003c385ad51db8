// Package loopback hands tests loopback addresses to listen on.
package loopback

import (
	"net"
	"sync"
	"testing"
)

var (
	mu     sync.Mutex
	handed = map[string]bool{}
)

// FreeAddr returns a loopback address whose port was free a moment ago,
// for a process that will listen on it later (a node started as a child).
// The kernel may give a port just closed again; an address handed out
// once in this process is never handed out again, or two nodes of a
// cluster would get the same one (seen in CI: "bind: address already in
// use").
func FreeAddr(t testing.TB) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if !handed[addr] {
			handed[addr] = true
			return addr
		}
	}
	t.Fatal("no loopback port not handed out before")
	return ""
}
