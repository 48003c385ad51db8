package query

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/netview/netview/internal/jsonw"
)

// The views' rows are written as JSON straight from the result columns:
// no per-row maps or structs between the engine and the response.

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte { return jsonw.AppendString(b, s) }

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	return append(b, '"')
}

func addr(v proto.IPv6) netip.Addr { return netip.AddrFrom16(v).Unmap() }

// appendValue appends row i of column c as JSON. It knows the column types
// the views select; anything else is a programming error reported as such.
func appendValue(b []byte, c proto.ColResult, i int) []byte {
	switch c := c.(type) {
	case *proto.ColAuto:
		return appendValue(b, c.Data, i)
	case *proto.ColStr:
		return appendString(b, c.Row(i))
	case *proto.ColLowCardinality[string]:
		return appendString(b, c.Row(i))
	case *proto.ColUInt8:
		return strconv.AppendUint(b, uint64(c.Row(i)), 10)
	case *proto.ColUInt16:
		return strconv.AppendUint(b, uint64(c.Row(i)), 10)
	case *proto.ColUInt32:
		return strconv.AppendUint(b, uint64(c.Row(i)), 10)
	case *proto.ColUInt64:
		return strconv.AppendUint(b, c.Row(i), 10)
	case *proto.ColInt64:
		return strconv.AppendInt(b, c.Row(i), 10)
	case *proto.ColFloat64:
		return strconv.AppendFloat(b, c.Row(i), 'g', -1, 64)
	case *proto.ColBool:
		return strconv.AppendBool(b, c.Row(i))
	case *proto.ColUUID:
		return appendString(b, c.Row(i).String())
	case *proto.ColIPv6:
		return appendString(b, addr(c.Row(i)).String())
	case *proto.ColDateTime64:
		return appendTime(b, c.Row(i))
	case *proto.ColNullable[uint32]:
		if c.Nulls[i] == 1 {
			return append(b, "null"...)
		}
		return appendValue(b, c.Values, i)
	case *proto.ColArr[proto.IPv6]:
		b = append(b, '[')
		for j, a := range c.Row(i) {
			if j > 0 {
				b = append(b, ',')
			}
			b = appendString(b, addr(a).String())
		}
		return append(b, ']')
	case *proto.ColArr[string]:
		b = append(b, '[')
		for j, s := range c.Row(i) {
			if j > 0 {
				b = append(b, ',')
			}
			b = appendString(b, s)
		}
		return append(b, ']')
	case *proto.ColMap[string, string]:
		b = append(b, '{')
		for j, kv := range c.RowKV(i) {
			if j > 0 {
				b = append(b, ',')
			}
			b = appendString(b, kv.Key)
			b = append(b, ':')
			b = appendString(b, kv.Value)
		}
		return append(b, '}')
	}
	panic(fmt.Sprintf("query: cannot render column of type %T", c))
}

// appendParam renders row i of column c as the text of a bound parameter
// of the column's own type (for cursors).
func appendParam(c proto.ColResult, i int) string {
	switch c := c.(type) {
	case *proto.ColAuto:
		return appendParam(c.Data, i)
	case *proto.ColStr:
		return c.Row(i)
	case *proto.ColLowCardinality[string]:
		return c.Row(i)
	case *proto.ColUInt16:
		return strconv.FormatUint(uint64(c.Row(i)), 10)
	case *proto.ColUInt32:
		return strconv.FormatUint(uint64(c.Row(i)), 10)
	case *proto.ColUInt64:
		return strconv.FormatUint(c.Row(i), 10)
	case *proto.ColUUID:
		return c.Row(i).String()
	case *proto.ColIPv6:
		return netip.AddrFrom16(c.Row(i)).String()
	case *proto.ColDateTime64:
		return c.Row(i).UTC().Format("2006-01-02 15:04:05.000")
	}
	panic(fmt.Sprintf("query: cannot use a column of type %T as a cursor key", c))
}
