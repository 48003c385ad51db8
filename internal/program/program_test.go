package program

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// main hands run the flags' values and says how it ended in the exit code
// and on stderr, named by the program.
func TestMainExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		runErr error
		code   int
		stderr string
	}{
		{"ran", []string{"--x.word=hi"}, nil, 0, ""},
		{"run failed", []string{"--x.word=hi"}, errors.New("no storage"), 1, "prog: no storage\n"},
		{"argument", []string{"stray"}, nil, 2, `prog: unexpected argument "stray"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			var word string
			ran := false
			code := main("prog", "about", tc.args, &stderr, func(fs *flag.FlagSet) {
				fs.StringVar(&word, "x.word", "", "a word")
			}, func(ctx context.Context, log *slog.Logger) error {
				ran = true
				if word != "hi" {
					t.Errorf("run saw --x.word=%q, want hi", word)
				}
				if ctx.Err() != nil {
					t.Errorf("run's context ended already: %v", ctx.Err())
				}
				return tc.runErr
			})
			if code != tc.code {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tc.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.stderr) || (tc.stderr == "" && stderr.Len() != 0) {
				t.Errorf("stderr %q, want %q", stderr.String(), tc.stderr)
			}
			if ran != (tc.code != 2) {
				t.Errorf("run ran: %v, with exit code %d", ran, tc.code)
			}
		})
	}
}

// Serve answers requests until its context ends, then returns nil and
// leaves the server for the caller to shut down; a server that stops on
// its own is an error.
func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &fasthttp.Server{Handler: func(c *fasthttp.RequestCtx) { c.WriteString("up") }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, hs, ln) }()
	code, body, err := fasthttp.GetTimeout(nil, "http://"+ln.Addr().String()+"/", 10*time.Second)
	if err != nil || code != 200 || string(body) != "up" {
		t.Fatalf("GET: %d %q %v", code, body, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve after its context ended: %v, want nil", err)
	}
	// Still serving: shutting down is the caller's.
	if code, _, err := fasthttp.GetTimeout(nil, "http://"+ln.Addr().String()+"/", 10*time.Second); err != nil || code != 200 {
		t.Errorf("after Serve returned, the server no longer answers (%d, %v): it is the caller's to shut down", code, err)
	}
	hs.Shutdown()

	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln2.Close() // the server cannot accept: it stops on its own
	if err := Serve(context.Background(), &fasthttp.Server{Handler: hs.Handler}, ln2); err == nil {
		t.Error("Serve on a closed listener returned nil, want its error")
	}
}

// Flags registers every part's flags on the one set Main parses.
func TestFlags(t *testing.T) {
	var a, b string
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	Flags(func(fs *flag.FlagSet) { fs.StringVar(&a, "a", "", "") }, func(fs *flag.FlagSet) { fs.StringVar(&b, "b", "", "") })(fs)
	if err := fs.Parse([]string{"-a=1", "-b=2"}); err != nil || a != "1" || b != "2" {
		t.Errorf("a %q b %q err %v, want 1 and 2", a, b, err)
	}
}
