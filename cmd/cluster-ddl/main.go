// Command cluster-ddl prints Netview's schema in its cluster form
// (Replicated engines behind Distributed tables) for operators who create
// it by hand; deploy/clickhouse/cluster.sql is its output for cluster "netview".
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/netview/netview/sql/schema"
)

func main() {
	cluster := flag.String("cluster", "netview", "ClickHouse cluster name")
	flag.Parse()
	ddl, err := schema.ClusterDDL(*cluster)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster-ddl:", err)
		os.Exit(1)
	}
	fmt.Print(ddl)
}
