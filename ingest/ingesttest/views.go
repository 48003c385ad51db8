package ingesttest

// Reading back what a node stored, as the product's views show it.

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/google/uuid"

	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/sql/schema"
)

// ConnKey names a TCP connection row the way tests compare them: local
// port, remote address (IPv4 unmapped) and port, inode.
func ConnKey(port uint16, remote netip.Addr, rport uint16, inode uint64) string {
	return fmt.Sprintf("%d>%s:%d#%d", port, remote.Unmap(), rport, inode)
}

// ActiveConns returns the rows of the latest-state view
// (schema.ActiveConnections) for one sensor as sorted ConnKeys, duplicates
// kept, so that a test sees a connection shown twice.
func ActiveConns(ctx context.Context, t testing.TB, st store.Store, sensor uuid.UUID) []string {
	t.Helper()
	var (
		lport, rport proto.ColUInt16
		raddr        proto.ColIPv6
		inode        proto.ColUInt64
		out          []string
	)
	q := "SELECT local_port, remote_address, remote_port, inode FROM (" + schema.ActiveConnections + ") WHERE sensor_id = {s:UUID}"
	err := st.Select(ctx, store.Query{SQL: q, Params: []store.Param{store.P("s", sensor.String())}},
		proto.Results{{Name: "local_port", Data: &lport}, {Name: "remote_address", Data: &raddr}, {Name: "remote_port", Data: &rport}, {Name: "inode", Data: &inode}},
		func(rows int) error {
			for i := range rows {
				out = append(out, ConnKey(lport.Row(i), raddr.Row(i).ToIP(), rport.Row(i), inode.Row(i)))
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}
