package main

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"

	"github.com/netview/netview/internal/tlsconf"
	"github.com/netview/netview/internal/tlsconf/tlsconftest"
)

// Plain HTTP only on loopback unless asked for; TLS wherever a certificate
// is given.
func TestListenPlainOnlyWhereAllowed(t *testing.T) {
	cases := []struct {
		addr  string
		plain bool
		ok    bool
	}{
		{"127.0.0.1:0", false, true}, {"[::1]:0", false, true}, {"localhost:0", false, true},
		{"0.0.0.0:0", false, false}, {"0.0.0.0:0", true, true},
	}
	for _, c := range cases {
		ln, err := listen(appConfig{PlainHTTP: c.plain}, "--http", c.addr)
		if c.ok != (err == nil) {
			t.Errorf("listen %s plain=%v: %v", c.addr, c.plain, err)
		}
		if err == nil {
			ln.Close()
		} else if !strings.Contains(err.Error(), "--plain-http") && !strings.Contains(err.Error(), "address") {
			t.Errorf("listen %s: unclear error %v", c.addr, err)
		}
	}

	ca := tlsconftest.CA(t, "ca")
	srv := tlsconftest.Server(t, ca, "netview")
	cfg := appConfig{TLSCert: srv.CertFile, TLSKey: srv.KeyFile}
	ln, err := listen(cfg, "--http", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	pin, err := certPin(srv.CertFile)
	if err != nil || pin != tlsconf.PinOf(srv.Cert) {
		t.Fatalf("certPin = %q, %v", pin, err)
	}
	tc, _ := (&tlsconf.Client{Pin: pin}).Config()
	conn, err := tls.Dial("tcp", strings.Replace(ln.Addr().String(), "0.0.0.0", "127.0.0.1", 1), tc)
	if err != nil {
		t.Fatalf("TLS to the all-in-one listener with its pin: %v", err)
	}
	conn.Close()
	if _, err := listen(appConfig{TLSCert: srv.CertFile}, "--http", "127.0.0.1:0"); err == nil {
		t.Fatal("--tls-cert without --tls-key accepted")
	}
}

// The banner's command for other hosts names an address they can reach.
func TestRemoteURL(t *testing.T) {
	f := func(addr, want string) {
		t.Helper()
		a, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := remoteURL("https", a); got != want {
			t.Errorf("remoteURL(%s) = %q, want %q", addr, got, want)
		}
	}
	f("127.0.0.1:8090", "")
	f("[::1]:8090", "")
	f("0.0.0.0:8090", "https://THIS-HOST:8090/v1/heartbeat")
	f("10.1.2.3:8090", "https://10.1.2.3:8090/v1/heartbeat")
	f("[2001:db8::1]:8090", "https://[2001:db8::1]:8090/v1/heartbeat")
}
