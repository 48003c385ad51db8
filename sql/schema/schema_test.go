package schema_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/internal/store/storetest"
	"github.com/netview/netview/sql/schema"
)

func TestMigrateIsIdempotentAndRecorded(t *testing.T) {
	for _, b := range storetest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			ms, err := schema.Migrations()
			if err != nil {
				t.Fatal(err)
			}
			latest := ms[len(ms)-1].Version
			for range 2 {
				v, err := schema.Migrate(ctx, b.Store, schema.Options{EventsTTLDays: 30})
				if err != nil {
					t.Fatal(err)
				}
				if v != latest {
					t.Fatalf("version = %d, want %d", v, latest)
				}
			}
			var n proto.ColUInt64
			var rows uint64
			if err := b.Store.Select(ctx, store.Query{SQL: "SELECT count() AS n FROM schema_migrations FINAL"},
				proto.Results{{Name: "n", Data: &n}}, func(int) error { rows = n.Row(0); return nil }); err != nil {
				t.Fatal(err)
			}
			if rows != uint64(len(ms)) {
				t.Fatalf("schema_migrations has %d rows, want %d", rows, len(ms))
			}
			tables, err := schema.Tables()
			if err != nil {
				t.Fatal(err)
			}
			var name proto.ColStr
			have := map[string]bool{}
			if err := b.Store.Select(ctx, store.Query{SQL: "SELECT name FROM system.tables WHERE database = currentDatabase()"},
				proto.Results{{Name: "name", Data: &name}}, func(r int) error {
					for i := range r {
						have[name.Row(i)] = true
					}
					return nil
				}); err != nil {
				t.Fatal(err)
			}
			for _, tb := range tables {
				if !have[tb] {
					t.Errorf("table %s missing after migrate", tb)
				}
			}
		})
	}
}

func TestEventsTTLIsConfigurable(t *testing.T) {
	b := storetest.Embedded(t)
	ctx := context.Background()
	if _, err := schema.Migrate(ctx, b.Store, schema.Options{EventsTTLDays: 9}); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"events", "flows"} {
		var e proto.ColStr
		var full string
		if err := b.Store.Select(ctx, store.Query{SQL: "SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = {t:String}",
			Params: []store.Param{store.P("t", table)}},
			proto.Results{{Name: "engine_full", Data: &e}}, func(int) error { full = e.Row(0); return nil }); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(full, "toIntervalDay(9)") {
			t.Errorf("%s TTL not set to 9 days: %s", table, full)
		}
	}
}

// The cluster form must exist for every table and be valid ClickHouse SQL
// (checked by the engine's own parser).
func TestClusterFormCoversEveryTable(t *testing.T) {
	ddl, err := schema.ClusterDDL("netview")
	if err != nil {
		t.Fatal(err)
	}
	tables, err := schema.Tables()
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		for _, want := range []string{
			"CREATE TABLE IF NOT EXISTS " + tb + "_local ON CLUSTER 'netview'",
			"ENGINE = Replicated",
			"CREATE TABLE IF NOT EXISTS " + tb + " ON CLUSTER 'netview' AS " + tb + "_local\nENGINE = Distributed('netview', currentDatabase(), " + tb + "_local,",
		} {
			if !strings.Contains(ddl, want) {
				t.Errorf("cluster DDL lacks %q", want)
			}
		}
	}
	if !strings.Contains(ddl, "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/tcp_connections_local', '{replica}', seq)") {
		t.Errorf("version column not carried into the replicated engine:\n%s", ddl)
	}
	// A column change goes to the local table and to the Distributed one in
	// front of it, or reads through the Distributed table would not see it.
	ms, err := schema.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	alters := 0
	for _, m := range ms {
		for _, st := range m.Statements {
			rest, ok := strings.CutPrefix(st, "ALTER TABLE ")
			if !ok || !strings.Contains(st, " COLUMN ") {
				continue
			}
			alters++
			table, change, _ := strings.Cut(rest, " ")
			want := []string{
				"ALTER TABLE " + table + "_local ON CLUSTER 'netview' " + change,
				"ALTER TABLE " + table + " ON CLUSTER 'netview' " + change,
			}
			if got := schema.ClusterForm(st, "netview"); strings.Join(got, ";") != strings.Join(want, ";") {
				t.Errorf("cluster form of %q = %q, want %q", st, got, want)
			}
		}
	}
	if alters == 0 {
		t.Errorf("no ALTER ... COLUMN in the migrations; sensors.capabilities is added by one")
	}
	b := storetest.Embedded(t)
	var out proto.ColStr
	for _, st := range schema.Split(ddl) {
		err := b.Store.Select(context.Background(), store.Query{SQL: "SELECT formatQuery({q:String}) AS f", Params: []store.Param{store.P("q", st)}},
			proto.Results{{Name: "f", Data: &out}}, nil)
		if err != nil {
			t.Errorf("engine rejects cluster statement: %v\n%s", err, st)
		}
	}
}

func TestSplit(t *testing.T) {
	got := schema.Split("-- c\nCREATE TABLE a (x UInt8) ENGINE = Memory;\n\nALTER TABLE a ADD COLUMN y UInt8; -- trailing\n")
	if len(got) != 2 || !strings.HasPrefix(got[0], "CREATE TABLE a") || got[1] != "ALTER TABLE a ADD COLUMN y UInt8" {
		t.Fatalf("Split = %q", got)
	}
}

// deploy/clickhouse/cluster.sql is what operators apply by hand; it must be
// the generator's current output (refresh with `make cluster-ddl`).
func TestDeployedClusterDDLIsCurrent(t *testing.T) {
	ddl, err := schema.ClusterDDL("netview")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../deploy/clickhouse/cluster.sql")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != ddl {
		t.Fatal("deploy/clickhouse/cluster.sql is stale: run `make cluster-ddl`")
	}
}
