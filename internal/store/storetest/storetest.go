// Package storetest gives tests a store on the real ClickHouse engine: one
// embedded engine per test binary, a fresh database per test, reached
// in-process or over the native protocol.
package storetest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/internal/store/storetest/chfront"
)

var (
	dirOnce sync.Once
	dir     string
	seq     atomic.Int64

	frontOnce sync.Once
	front     *chfront.Server
	frontErr  error
)

// Backend is one store a test runs against.
type Backend struct {
	Name  string
	Store store.Store
	DSN   string
	DB    string
}

// Embedded opens a store on the in-process engine in a database of its own,
// dropped when the test ends. It fails the test when libchdb.so is missing:
// `make test` fetches it, and a test that silently skipped would prove nothing.
func Embedded(t testing.TB) Backend {
	t.Helper()
	db := fmt.Sprintf("t%d_%s", seq.Add(1), sanitize(t.Name()))
	s, err := store.OpenEmbedded(context.Background(), store.EmbeddedConfig{Dir: engineDir(), Database: db, Conns: 4})
	if err != nil {
		t.Fatalf("embedded engine: %v", err)
	}
	t.Cleanup(func() {
		_ = s.Exec(context.Background(), store.Query{SQL: "DROP DATABASE IF EXISTS " + db + " SYNC"})
		s.Close()
	})
	return Backend{Name: "embedded", Store: s, DSN: "embedded:" + engineDir(), DB: db}
}

// engineDir is the data folder of the test binary's engine.
func engineDir() string {
	dirOnce.Do(func() {
		var err error
		dir, err = os.MkdirTemp("", "netview-store-")
		if err != nil {
			panic(err)
		}
	})
	return filepath.Join(dir, "ch")
}

// Backends returns every backend a storage test should run on: the embedded
// engine; the server backend (ch-go over TCP) talking to the same engine
// through chfront, unless NETVIEW_TEST_CHFRONT=0; and a ClickHouse server
// when NETVIEW_TEST_CLICKHOUSE names one (clickhouse://user:pass@host:port).
func Backends(t testing.TB) []Backend {
	t.Helper()
	out := []Backend{Embedded(t)}
	if os.Getenv("NETVIEW_TEST_CHFRONT") != "0" {
		out = append(out, Front(t))
	}
	if dsn := os.Getenv("NETVIEW_TEST_CLICKHOUSE"); dsn != "" {
		out = append(out, Server(t, dsn))
	}
	return out
}

// Front opens a server-backend store (ch-go's pool over TCP) on the test
// binary's engine, through the native-protocol front chfront, in a fresh
// database. The front listens on 127.0.0.1 for the life of the binary.
func Front(t testing.TB) Backend {
	t.Helper()
	frontOnce.Do(func() {
		front, frontErr = chfront.Listen("127.0.0.1:0", chfront.Config{Dir: engineDir(), Logf: func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, format+"\n", args...) // a front fault, not a client's: show it beside the failing test
		}})
	})
	if frontErr != nil {
		t.Fatalf("native-protocol front: %v", frontErr)
	}
	b := Server(t, "clickhouse://"+front.Addr())
	b.Name = "chfront"
	return b
}

// Server opens a store on a ClickHouse server in a fresh database.
func Server(t testing.TB, base string) Backend {
	t.Helper()
	ctx := context.Background()
	db := fmt.Sprintf("t%d_%s", seq.Add(1), sanitize(t.Name()))
	admin, err := store.Open(ctx, store.Config{DSN: strings.TrimRight(base, "/") + "/default"})
	if err != nil {
		t.Fatalf("server: %v", err)
	}
	defer admin.Close()
	if err := admin.Exec(ctx, store.Query{SQL: "CREATE DATABASE IF NOT EXISTS " + db}); err != nil {
		t.Fatal(err)
	}
	dsn := strings.TrimRight(base, "/") + "/" + db
	s, err := store.Open(ctx, store.Config{DSN: dsn})
	if err != nil {
		t.Fatalf("server: %v", err)
	}
	t.Cleanup(func() {
		_ = s.Exec(context.Background(), store.Query{SQL: "DROP DATABASE IF EXISTS " + db + " SYNC"})
		s.Close()
	})
	return Backend{Name: "server", Store: s, DSN: dsn, DB: db}
}

func sanitize(name string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(name) {
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
		if b.Len() >= 40 {
			break
		}
	}
	return b.String()
}

// VmRSS returns the process's resident set size in bytes.
func VmRSS(t testing.TB) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("VmRSS missing from /proc/self/status")
	return 0
}
