package tlsconf_test

import (
	"flag"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/netview/netview/internal/tlsconf"
	"github.com/netview/netview/internal/tlsconf/tlsconftest"
)

// serve runs an https server on loopback with the given pair and returns
// its URL.
func serve(t *testing.T, s *tlsconf.Server) string {
	t.Helper()
	ln, err := s.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return "https://" + ln.Addr().String() + "/"
}

func get(t *testing.T, url string, c tlsconf.Client) error {
	t.Helper()
	cfg, err := c.Config()
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 5 * time.Second}
	resp, err := hc.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "ok" {
		t.Fatalf("body %q", b)
	}
	return nil
}

func TestClientTrustAndPin(t *testing.T) {
	ca := tlsconftest.CA(t, "ca")
	srv := tlsconftest.Server(t, ca, "ingest")
	other := tlsconftest.Server(t, tlsconftest.CA(t, "other-ca"), "other")
	url := serve(t, &tlsconf.Server{CertFile: srv.CertFile, KeyFile: srv.KeyFile})

	if err := get(t, url, tlsconf.Client{CAFile: ca.CertFile}); err != nil {
		t.Fatalf("trusted CA: %v", err)
	}
	if err := get(t, url, tlsconf.Client{}); err == nil {
		t.Fatal("a server signed by an unknown CA was trusted")
	}
	if err := get(t, url, tlsconf.Client{Pin: tlsconf.PinOf(srv.Cert)}); err != nil {
		t.Fatalf("pinned key alone: %v", err)
	}
	if err := get(t, url, tlsconf.Client{CAFile: ca.CertFile, Pin: tlsconf.PinOf(srv.Cert)}); err != nil {
		t.Fatalf("CA and pin: %v", err)
	}
	err := get(t, url, tlsconf.Client{Pin: tlsconf.PinOf(other.Cert)})
	if err == nil || !strings.Contains(err.Error(), "does not match the pinned") {
		t.Fatalf("wrong pin: %v", err)
	}
	if err := get(t, url, tlsconf.Client{CAFile: other.CertFile, Pin: tlsconf.PinOf(srv.Cert)}); err == nil {
		t.Fatal("right pin but untrusted chain accepted while a CA file was given")
	}
	if _, err := (&tlsconf.Client{Pin: "abc"}).Config(); err == nil {
		t.Fatal("a short pin was accepted")
	}
}

// TestReload: a renewed certificate is served without a restart.
func TestReload(t *testing.T) {
	ca := tlsconftest.CA(t, "ca")
	first := tlsconftest.Server(t, ca, "first")
	second := tlsconftest.Server(t, ca, "second")
	dir := t.TempDir()
	certFile, keyFile := dir+"/tls.crt", dir+"/tls.key"
	copyFile(t, first.CertFile, certFile)
	copyFile(t, first.KeyFile, keyFile)
	url := serve(t, &tlsconf.Server{CertFile: certFile, KeyFile: keyFile})
	if err := get(t, url, tlsconf.Client{Pin: tlsconf.PinOf(first.Cert)}); err != nil {
		t.Fatal(err)
	}
	copyFile(t, second.CertFile, certFile)
	copyFile(t, second.KeyFile, keyFile)
	deadline := time.Now().Add(5 * time.Second)
	for get(t, url, tlsconf.Client{Pin: tlsconf.PinOf(second.Cert)}) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the renewed certificate was not served within 5s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func copyFile(t *testing.T, from, to string) {
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to+".tmp", b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(to+".tmp", to); err != nil {
		t.Fatal(err)
	}
}

func TestServerFlags(t *testing.T) {
	ca := tlsconftest.CA(t, "ca")
	cases := []struct {
		args []string
		want string // "" = valid
	}{
		{nil, "no TLS certificate"},
		{[]string{"-x.plain-http"}, ""},
		{[]string{"-x.tls-cert", ca.CertFile}, "go together"},
		{[]string{"-x.tls-cert", ca.CertFile, "-x.tls-key", ca.KeyFile}, ""},
		{[]string{"-x.tls-cert", ca.CertFile, "-x.tls-key", ca.KeyFile, "-x.plain-http"}, "exclude each other"},
	}
	for _, c := range cases {
		var s tlsconf.Server
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		s.Register(fs, "x")
		if err := fs.Parse(c.args); err != nil {
			t.Fatal(err)
		}
		err := s.Validate()
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%v: Validate() = %v, want %q", c.args, err, c.want)
		}
	}
	// A key that is not the certificate's is refused at start.
	other := tlsconftest.CA(t, "other")
	if _, err := (&tlsconf.Server{CertFile: ca.CertFile, KeyFile: other.KeyFile}).Config(); err == nil {
		t.Fatal("mismatched key pair accepted")
	}
}
