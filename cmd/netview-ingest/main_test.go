package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/netview/netview/ingest"
	"github.com/netview/netview/internal/store"
)

// The node refuses to start without TLS unless plain HTTP is asked for,
// and says how to choose; it does so before opening storage.
func TestRefusesToStartWithoutTLSOrPlainHTTP(t *testing.T) {
	f := func(args []string, want string) {
		t.Helper()
		fs := flag.NewFlagSet("", flag.ContinueOnError)
		var sc store.Config
		var ic ingest.Config
		sc.RegisterFlags(fs)
		ic.RegisterFlags(fs)
		if err := fs.Parse(append([]string{"--ingest.token=t", "--store.dsn=embedded:" + t.TempDir()}, args...)); err != nil {
			t.Fatal(err)
		}
		err := run(context.Background(), sc, ic, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: %v, want an error containing %q", args, err, want)
		}
	}
	f(nil, "no TLS certificate: set --ingest.tls-cert and --ingest.tls-key, or --ingest.plain-http")
	f([]string{"--ingest.tls-cert=/nonexistent.crt"}, "go together")
	f([]string{"--ingest.plain-http", "--ingest.tls-cert=a", "--ingest.tls-key=b"}, "exclude each other")
}
