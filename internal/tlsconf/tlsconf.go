// Package tlsconf turns the TLS flags of Netview's services and sensor into
// tls.Configs: servers serve TLS from certificate and key files (reloaded
// when the files change, so a renewed certificate needs no restart) and
// speak plain HTTP only when told to; clients trust a CA file and may pin
// the server's public key.
package tlsconf

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// Server holds a server's TLS flags.
type Server struct {
	CertFile string
	KeyFile  string
	Plain    bool // serve plain HTTP; must be asked for
	name     string
}

// Register adds PREFIX.tls-cert, PREFIX.tls-key and PREFIX.plain-http.
func (s *Server) Register(fs *flag.FlagSet, prefix string) {
	s.name = prefix
	fs.StringVar(&s.CertFile, prefix+".tls-cert", "", "PEM certificate (chain) to serve TLS with")
	fs.StringVar(&s.KeyFile, prefix+".tls-key", "", "PEM private key of --"+prefix+".tls-cert")
	fs.BoolVar(&s.Plain, prefix+".plain-http", false, "serve plain HTTP without TLS (only behind a TLS-terminating proxy or on loopback)")
}

// Validate reports a missing half of the key pair, or neither TLS nor
// plain HTTP chosen.
func (s *Server) Validate() error {
	switch {
	case (s.CertFile == "") != (s.KeyFile == ""):
		return fmt.Errorf("%s: --%[1]s.tls-cert and --%[1]s.tls-key go together", s.name)
	case s.CertFile != "" && s.Plain:
		return fmt.Errorf("%s: --%[1]s.plain-http and --%[1]s.tls-cert exclude each other", s.name)
	case s.CertFile == "" && !s.Plain:
		return fmt.Errorf("%s: no TLS certificate: set --%[1]s.tls-cert and --%[1]s.tls-key, or --%[1]s.plain-http to serve without TLS", s.name)
	}
	return nil
}

// Listen listens on addr, with TLS unless plain HTTP was chosen.
func (s *Server) Listen(addr string) (net.Listener, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil || s.Plain {
		return ln, err
	}
	cfg, err := s.Config()
	if err != nil {
		ln.Close()
		return nil, err
	}
	return tls.NewListener(ln, cfg), nil
}

// Config returns the server's TLS config; the key pair is read now (so a
// bad file fails at start) and again whenever either file changes.
func (s *Server) Config() (*tls.Config, error) {
	r := &reloader{cert: s.CertFile, key: s.KeyFile}
	if _, err := r.get(nil); err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.get}, nil
}

type reloader struct {
	cert, key string
	mu        sync.Mutex
	pair      *tls.Certificate
	stamp     string // the files' sizes and times when pair was read
	checked   time.Time
}

// get returns the key pair, reading the files again when they changed
// (checked at most once a second). A pair that fails to read keeps the
// last good one in use.
func (r *reloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pair != nil && time.Since(r.checked) < time.Second {
		return r.pair, nil
	}
	r.checked = time.Now()
	stamp := fileStamp(r.cert) + "|" + fileStamp(r.key)
	if r.pair != nil && stamp == r.stamp {
		return r.pair, nil
	}
	pair, err := tls.LoadX509KeyPair(r.cert, r.key)
	if err != nil {
		if r.pair != nil {
			return r.pair, nil
		}
		return nil, fmt.Errorf("tls key pair: %w", err)
	}
	r.pair, r.stamp = &pair, stamp
	return r.pair, nil
}

func fileStamp(name string) string {
	fi, err := os.Stat(name)
	if err != nil {
		return ""
	}
	return fmt.Sprint(fi.Size(), fi.ModTime().UnixNano())
}

// Client holds a client's TLS flags.
type Client struct {
	CAFile string // PEM certificates to trust instead of the system's
	// Pin is the SHA-256 of the server certificate's public key (SPKI), hex
	// or base64: the server must present that key, whoever signed it.
	Pin string
}

// Register adds PREFIX.ca-file and PREFIX.pin-sha256.
func (c *Client) Register(fs *flag.FlagSet, prefix string) {
	fs.StringVar(&c.CAFile, prefix+".ca-file", "", "PEM CA certificate(s) (or the server's own certificate) to trust for https")
	fs.StringVar(&c.Pin, prefix+".pin-sha256", "", "pin the server's public key: SHA-256 of its SPKI, hex or base64 (openssl x509 -pubkey | openssl pkey -pubin -outform der | sha256sum)")
}

// Config returns the client TLS config for serverName. With a pin and no CA
// file, the pin alone decides (a self-signed server is fine); with both,
// both must hold.
func (c *Client) Config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		b, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls ca file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("tls ca file %s: no PEM certificate in it", c.CAFile)
		}
		cfg.RootCAs = pool
	}
	if c.Pin == "" {
		return cfg, nil
	}
	pin, err := decodePin(c.Pin)
	if err != nil {
		return nil, err
	}
	roots := cfg.RootCAs
	// Go's own verification is replaced, not skipped: VerifyConnection below
	// checks the chain against the CA file when there is one, and the pin
	// always.
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("tls: server sent no certificate")
		}
		leaf := cs.PeerCertificates[0]
		if roots != nil {
			inter := x509.NewCertPool()
			for _, ic := range cs.PeerCertificates[1:] {
				inter.AddCert(ic)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: cs.ServerName}); err != nil {
				return err
			}
		}
		if got := sha256.Sum256(leaf.RawSubjectPublicKeyInfo); got != pin {
			return fmt.Errorf("tls: server key %s does not match the pinned %s", hex.EncodeToString(got[:]), hex.EncodeToString(pin[:]))
		}
		return nil
	}
	return cfg, nil
}

func decodePin(s string) ([32]byte, error) {
	var pin [32]byte
	s = strings.TrimPrefix(strings.TrimSpace(s), "sha256/")
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		b, err = base64.StdEncoding.DecodeString(s)
	}
	if err != nil || len(b) != 32 {
		return pin, fmt.Errorf("tls pin %q: want the 32-byte SHA-256 in hex or base64", s)
	}
	copy(pin[:], b)
	return pin, nil
}

// PinOf returns the hex pin of a certificate's public key, for operators
// and tests.
func PinOf(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:])
}
