package fleetsim

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/google/uuid"

	"github.com/netview/netview/internal/store"
)

// Verification compares a run's report with what a store holds for the
// fleet's sensors.
type Verification struct {
	// Acked is the number of acknowledged heartbeats in the report; Stored
	// the fleet's distinct (sensor_id, seq) in heartbeats (what FINAL
	// shows), StoredRaw its rows before deduplication.
	Acked, Stored, StoredRaw int
	// Missing were acknowledged but are not stored: lost data.
	Missing []Key
	// Duplicated are stored more than once in the raw heartbeats table (a
	// retry of a heartbeat whose first answer was lost; views deduplicate).
	Duplicated []Key
	// Extra are stored but neither acknowledged nor in doubt.
	Extra []Key
	// InDoubtStored counts in-doubt heartbeats that turned out stored.
	InDoubtStored int
	// IDMismatch are stored with another heartbeat_id than acknowledged,
	// or with several.
	IDMismatch []Key

	// AckedRows is the sum of the acknowledgements' rows. Tables counts,
	// per table, the rows stored for the acknowledged heartbeats: the
	// snapshot tables, heartbeats and sensors by (sensor_id, seq) without
	// FINAL; flows and events (which have no seq) per sensor with FINAL,
	// so they include rows of stored in-doubt heartbeats. The snapshot
	// counts are exact only while no merge has collapsed rows of one
	// socket across heartbeats (SYSTEM STOP MERGES, or before merges ran)
	// and no heartbeat was stored twice. StoredRows is their sum.
	AckedRows  uint64
	Tables     map[string]uint64
	StoredRows uint64
}

// OK says the store holds every acknowledged heartbeat once and nothing
// else but in-doubt ones.
func (v *Verification) OK() bool {
	return len(v.Missing) == 0 && len(v.Duplicated) == 0 && len(v.Extra) == 0 && len(v.IDMismatch) == 0
}

func (v *Verification) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "acked %d, stored %d (raw %d), missing %d, duplicated %d, extra %d, in doubt stored %d, id mismatch %d; rows acked %d, stored %d",
		v.Acked, v.Stored, v.StoredRaw, len(v.Missing), len(v.Duplicated), len(v.Extra), v.InDoubtStored, len(v.IDMismatch), v.AckedRows, v.StoredRows)
	return b.String()
}

// SnapshotTables are the tables with a seq column, written once per
// heartbeat row (heartbeats and sensors included).
var SnapshotTables = []string{"heartbeats", "sensors", "tcp_connections", "tcp_listeners", "udp_listeners", "active_flows", "sctp_associations", "sctp_endpoints"}

func uuidArray(ids []uuid.UUID) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('\'')
		b.WriteString(id.String())
		b.WriteByte('\'')
	}
	b.WriteByte(']')
	return b.String()
}

// Verify reads the store's heartbeats of the report's sensors (which needs
// the report's acknowledged sets: not Config.DiscardAcks) and compares.
func Verify(ctx context.Context, st store.Store, r *Report) (Verification, error) {
	acked, doubt := r.Acked(), r.InDoubtKeys()
	v := Verification{Acked: len(acked), Tables: map[string]uint64{}}
	for _, a := range acked {
		v.AckedRows += uint64(a.Rows)
	}
	ids := store.P("ids", uuidArray(r.SensorIDs()))

	var sid proto.ColUUID
	var seq, n, nids proto.ColUInt64
	var hid proto.ColUUID
	stored := map[Key]bool{}
	err := st.Select(ctx, store.Query{
		SQL: `SELECT sensor_id, seq, any(heartbeat_id) AS hid, uniqExact(heartbeat_id) AS nids, count() AS n
			FROM heartbeats WHERE sensor_id IN {ids:Array(UUID)} GROUP BY sensor_id, seq`,
		Params: []store.Param{ids},
	}, proto.Results{{Name: "sensor_id", Data: &sid}, {Name: "seq", Data: &seq}, {Name: "hid", Data: &hid}, {Name: "nids", Data: &nids}, {Name: "n", Data: &n}},
		func(rows int) error {
			for i := range rows {
				k := Key{sid.Row(i), seq.Row(i)}
				stored[k] = true
				v.Stored++
				v.StoredRaw += int(n.Row(i))
				if n.Row(i) > 1 {
					v.Duplicated = append(v.Duplicated, k)
				}
				a, ok := acked[k]
				switch {
				case ok:
					if nids.Row(i) != 1 || hid.Row(i) != a.HeartbeatID {
						v.IDMismatch = append(v.IDMismatch, k)
					}
				case inDoubt(doubt, k):
					v.InDoubtStored++
				default:
					v.Extra = append(v.Extra, k)
				}
			}
			return nil
		})
	if err != nil {
		return v, fmt.Errorf("fleetsim: reading heartbeats: %w", err)
	}
	for k := range acked {
		if !stored[k] {
			v.Missing = append(v.Missing, k)
		}
	}
	for _, l := range [][]Key{v.Missing, v.Duplicated, v.Extra, v.IDMismatch} {
		sort.Slice(l, func(a, b int) bool {
			if c := strings.Compare(l[a].SensorID.String(), l[b].SensorID.String()); c != 0 {
				return c < 0
			}
			return l[a].Seq < l[b].Seq
		})
	}

	for _, t := range SnapshotTables {
		var total uint64
		err := st.Select(ctx, store.Query{
			SQL:    `SELECT sensor_id, seq, count() AS n FROM ` + t + ` WHERE sensor_id IN {ids:Array(UUID)} GROUP BY sensor_id, seq`,
			Params: []store.Param{ids},
		}, proto.Results{{Name: "sensor_id", Data: &sid}, {Name: "seq", Data: &seq}, {Name: "n", Data: &n}}, func(rows int) error {
			for i := range rows {
				if _, ok := acked[Key{sid.Row(i), seq.Row(i)}]; ok {
					total += n.Row(i)
				}
			}
			return nil
		})
		if err != nil {
			return v, fmt.Errorf("fleetsim: counting %s: %w", t, err)
		}
		v.Tables[t] = total
		v.StoredRows += total
	}
	for _, t := range []string{"flows", "events"} {
		var c proto.ColUInt64
		var total uint64
		err := st.Select(ctx, store.Query{
			SQL:    `SELECT count() AS n FROM ` + t + ` FINAL WHERE sensor_id IN {ids:Array(UUID)}`,
			Params: []store.Param{ids},
		}, proto.Results{{Name: "n", Data: &c}}, func(rows int) error {
			for i := range rows {
				total += c.Row(i)
			}
			return nil
		})
		if err != nil {
			return v, fmt.Errorf("fleetsim: counting %s: %w", t, err)
		}
		v.Tables[t] = total
		v.StoredRows += total
	}
	return v, nil
}

func inDoubt(m map[Key]Ack, k Key) bool { _, ok := m[k]; return ok }
