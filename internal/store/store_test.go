package store_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/google/uuid"

	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/internal/store/storetest"
)

func TestRoundTrip(t *testing.T) {
	for _, st := range storetest.Backends(t) {
		t.Run(st.Name, func(t *testing.T) {
			ctx := context.Background()
			s := st.Store
			if err := s.Exec(ctx, store.Query{SQL: `CREATE TABLE rt (
				host LowCardinality(String), at DateTime64(3, 'UTC'), ip IPv6, port UInt16, id UUID, n UInt64, d Nullable(UInt32))
				ENGINE = ReplacingMergeTree(at) ORDER BY (host, ip, port)`}); err != nil {
				t.Fatal(err)
			}
			var (
				host = new(proto.ColStr).LowCardinality()
				at   = new(proto.ColDateTime64).WithPrecision(proto.PrecisionMilli)
				ip   proto.ColIPv6
				port proto.ColUInt16
				id   proto.ColUUID
				n    proto.ColUInt64
				d    = new(proto.ColUInt32).Nullable()
			)
			base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
			const rows = 5000
			for i := range rows {
				host.Append(fmt.Sprintf("h%d", i%7))
				at.Append(base.Add(time.Duration(i) * time.Millisecond))
				ip.Append(proto.ToIPv6(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})))
				port.Append(uint16(i))
				id.Append(uuid.New())
				n.Append(uint64(i) * 3)
				if i%2 == 0 {
					d.Append(proto.NewNullable(uint32(i)))
				} else {
					d.Append(proto.Null[uint32]())
				}
			}
			in := proto.Input{{Name: "host", Data: host}, {Name: "at", Data: at}, {Name: "ip", Data: ip}, {Name: "port", Data: port}, {Name: "id", Data: id}, {Name: "n", Data: n}, {Name: "d", Data: d}}
			if err := s.Insert(ctx, "rt", in); err != nil {
				t.Fatal(err)
			}
			var (
				gotN    proto.ColUInt64
				gotHost = new(proto.ColStr).LowCardinality()
				gotD    = new(proto.ColUInt32).Nullable()
				sum     uint64
				nulls   int
				total   int
			)
			res := proto.Results{{Name: "n", Data: &gotN}, {Name: "host", Data: gotHost}, {Name: "d", Data: gotD}}
			err := s.Select(ctx, store.Query{
				SQL:    "SELECT n, host, d FROM rt WHERE port >= {from:UInt16} AND host != {h:String} ORDER BY port",
				Params: []store.Param{store.P("from", "10"), store.P("h", "it's a 'quoted' \\ value")},
			}, res, func(rows int) error {
				for i := range rows {
					sum += gotN.Row(i)
					if !gotD.Row(i).Set {
						nulls++
					}
				}
				total += rows
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if total != rows-10 {
				t.Fatalf("rows = %d, want %d", total, rows-10)
			}
			var want uint64
			for i := 10; i < rows; i++ {
				want += uint64(i) * 3
			}
			if sum != want || nulls != (rows-10)/2 {
				t.Fatalf("sum = %d (want %d), nulls = %d", sum, want, nulls)
			}
		})
	}
}

func TestEngineErrorIsClear(t *testing.T) {
	for _, st := range storetest.Backends(t) {
		t.Run(st.Name, func(t *testing.T) {
			err := st.Store.Exec(context.Background(), store.Query{SQL: "SELECT * FROM no_such_table"})
			if err == nil || !strings.Contains(err.Error(), "no_such_table") {
				t.Fatalf("err = %v, want it to name the table", err)
			}
		})
	}
}

func TestServerUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := store.Open(ctx, store.Config{DSN: "clickhouse://default@127.0.0.1:1/netview?dial_timeout=500ms"})
	if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("err = %v, want ErrUnavailable naming the address", err)
	}
}

func TestBadDSN(t *testing.T) {
	for _, dsn := range []string{"postgres://x", "clickhouse://", "clickhouse://h:9000/bad-db", "clickhouse://h:9000/db?compression=brotli"} {
		if _, err := store.Open(context.Background(), store.Config{DSN: dsn}); err == nil {
			t.Errorf("Open(%q) succeeded", dsn)
		}
	}
}

// A bound value comes back byte for byte, whatever it holds: it never
// becomes SQL text.
func TestParamsRoundTrip(t *testing.T) {
	for _, st := range storetest.Backends(t) {
		t.Run(st.Name, func(t *testing.T) {
			for _, v := range []string{"plain", "it's", `back\slash`, "new\nline\ttab\r", "'); DROP TABLE x; --", "{x:String}", "nul\x00byte", "ünïcödé"} {
				var got proto.ColStr
				var out string
				err := st.Store.Select(context.Background(), store.Query{SQL: "SELECT {v:String} AS v", Params: []store.Param{store.P("v", v)}},
					proto.Results{{Name: "v", Data: &got}}, func(int) error { out = got.Row(0); return nil })
				if err != nil {
					t.Fatalf("%q: %v", v, err)
				}
				if out != v {
					t.Errorf("param %q came back as %q", v, out)
				}
			}
		})
	}
}

// A store opened with readonly=1 reads and refuses every write, and its
// settings cannot be changed back by a query.
func TestReadonlyStore(t *testing.T) {
	rw := storetest.Embedded(t)
	ctx := context.Background()
	if err := rw.Store.Exec(ctx, store.Query{SQL: "CREATE TABLE ro (x UInt8) ENGINE = MergeTree ORDER BY x"}); err != nil {
		t.Fatal(err)
	}
	ro, err := store.OpenEmbedded(ctx, store.EmbeddedConfig{Dir: strings.TrimPrefix(rw.DSN, "embedded:"), Database: rw.DB, Conns: 1,
		Settings: []store.Setting{{Name: "readonly", Value: "1"}, {Name: "max_result_rows", Value: "5"}, {Name: "result_overflow_mode", Value: "throw"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	var n proto.ColUInt64
	if err := ro.Select(ctx, store.Query{SQL: "SELECT count() AS n FROM ro"}, proto.Results{{Name: "n", Data: &n}}, nil); err != nil {
		t.Fatalf("read on readonly store: %v", err)
	}
	for _, q := range []string{
		"INSERT INTO ro VALUES (1)",
		"DROP TABLE ro",
		"CREATE TABLE ro2 (x UInt8) ENGINE = Memory",
		"SET readonly = 0",
		"SELECT number FROM system.numbers LIMIT 10 SETTINGS result_overflow_mode = 'break'",
		"SELECT number FROM system.numbers LIMIT 10",
	} {
		if err := ro.Exec(ctx, store.Query{SQL: q}); err == nil {
			t.Errorf("readonly store ran %q", q)
		}
	}
}

// Health checks ping storage the same way on every backend: a server
// refuses a statement that returns rows through Exec (the front does too),
// which once made every /healthz answer 503 against ClickHouse servers.
func TestPingOnEveryBackend(t *testing.T) {
	for _, st := range storetest.Backends(t) {
		t.Run(st.Name, func(t *testing.T) {
			if err := store.Ping(context.Background(), st.Store); err != nil {
				t.Fatalf("ping: %v", err)
			}
		})
	}
}
