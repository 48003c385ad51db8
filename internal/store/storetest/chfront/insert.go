package chfront

import (
	"slices"
	"time"

	"github.com/ClickHouse/ch-go/proto"
)

// insert sends the table's header block, reads the client's blocks up to
// the empty one, and streams them into the engine as one insert.
func (c *conn) insert(ins insertStmt, start time.Time) error {
	names, types, err := c.insertHeader(ins)
	if err != nil {
		return err
	}
	if err := c.sendHeader(names, types); err != nil {
		return err
	}
	c.raw.Reset()
	rows := 0
	for {
		code, err := c.r.UVarInt()
		if err != nil {
			return fatal(err, false)
		}
		switch proto.ClientCode(code) {
		case proto.ClientCodeData:
			s, err := c.readBlock(&c.raw)
			if err != nil {
				return err
			}
			if s.end() {
				if rows > 0 {
					if err := c.sess.InsertNative(c.srv.ctx, ins.stmt, c.raw.Buf); err != nil {
						return err
					}
				}
				c.putProgress(proto.Progress{WroteRows: uint64(rows), WroteBytes: uint64(len(c.raw.Buf)), ElapsedNs: uint64(time.Since(start))})
				proto.ServerCodeEndOfStream.Encode(&c.out)
				return c.flush()
			}
			rows += s.rows
		case proto.ClientCodeCancel:
			proto.ServerCodeEndOfStream.Encode(&c.out)
			return c.flush()
		default:
			return fatal(errorf(proto.ErrUnexpectedPacketFromClient, "Unexpected packet %d from client during INSERT", code), true)
		}
	}
}

// insertHeader is the columns an INSERT takes: the listed ones, or every
// column that is neither computed nor ephemeral.
func (c *conn) insertHeader(ins insertStmt) (names, types []string, err error) {
	all, allTypes, kinds, err := c.describe("DESCRIBE TABLE "+ins.table, nil)
	if err != nil {
		return nil, nil, err
	}
	if ins.columns == nil {
		for i := range all {
			switch kinds[i] {
			case "MATERIALIZED", "ALIAS", "EPHEMERAL":
				continue
			}
			names, types = append(names, all[i]), append(types, allTypes[i])
		}
		return names, types, nil
	}
	for _, col := range ins.columns {
		i := slices.Index(all, col)
		if i < 0 {
			return nil, nil, errorf(proto.ErrNoSuchColumnInTable, "No such column %s in table %s", col, ins.table)
		}
		names, types = append(names, all[i]), append(types, allTypes[i])
	}
	return names, types, nil
}
