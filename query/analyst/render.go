package analyst

import (
	"fmt"
	"math"
	"math/big"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/netview/netview/internal/jsonw"

	"github.com/ClickHouse/ch-go/proto"
)

// renderer writes the value in row i of a decoded column.
type renderer interface {
	// json appends the value as JSON.
	json(b []byte, i int) []byte
	// text appends the value as a CSV or TSV cell (nested false: strings
	// bare, NULL empty) or as an element of an array, map or tuple in the
	// engine's text style (nested true: strings in single quotes, NULL).
	text(b []byte, i int, nested bool) []byte
}

type leafKind uint8

const (
	kString leafKind = iota // JSON string; quoted when nested in text
	kNumber                 // bare everywhere
	kBig                    // 64-bit and wider integers: bare in text, a JSON string (as the engine's JSON does)
	kFloat                  // bare; NaN and infinities are null in JSON
	kBool                   // true / false
	kNull                   // Nothing: always NULL
)

// leaf renders a scalar column through raw, which appends the plain text
// of row i.
type leaf struct {
	kind    leafKind
	raw     func(b []byte, i int) []byte
	scratch []byte
}

func (l *leaf) json(b []byte, i int) []byte {
	switch l.kind {
	case kNumber, kBool:
		return l.raw(b, i)
	case kNull:
		return append(b, "null"...)
	case kFloat:
		start := len(b)
		b = l.raw(b, i)
		if v := b[start:]; len(v) > 0 && (v[0] == 'n' || v[0] == 'i' || (v[0] == '-' && len(v) > 1 && v[1] == 'i')) {
			b = append(b[:start], "null"...)
		}
		return b
	default:
		l.scratch = l.raw(l.scratch[:0], i)
		return jsonw.AppendString(b, l.scratch)
	}
}

func (l *leaf) text(b []byte, i int, nested bool) []byte {
	switch {
	case l.kind == kNull && nested:
		return append(b, "NULL"...)
	case l.kind == kNull:
		return b
	case nested && l.kind == kString:
		l.scratch = l.raw(l.scratch[:0], i)
		return appendQuoted(b, l.scratch)
	}
	return l.raw(b, i)
}

func leafOf(kind leafKind, raw func(b []byte, i int) []byte) renderer {
	return &leaf{kind: kind, raw: raw}
}

// leafRenderer renders the scalar columns ch-go's ColAuto infers.
func leafRenderer(col proto.ColResult, t proto.ColumnType) (renderer, error) {
	switch c := col.(type) {
	case *proto.ColStr:
		return leafOf(kString, func(b []byte, i int) []byte { return append(b, c.Row(i)...) }), nil
	case *proto.ColEnum:
		return leafOf(kString, func(b []byte, i int) []byte { return append(b, c.Values[i]...) }), nil
	case *proto.ColBool:
		return leafOf(kBool, func(b []byte, i int) []byte { return strconv.AppendBool(b, (*c)[i]) }), nil
	case *proto.ColUInt8:
		return leafOf(kNumber, func(b []byte, i int) []byte { return strconv.AppendUint(b, uint64((*c)[i]), 10) }), nil
	case *proto.ColUInt16:
		return leafOf(kNumber, func(b []byte, i int) []byte { return strconv.AppendUint(b, uint64((*c)[i]), 10) }), nil
	case *proto.ColUInt32:
		return leafOf(kNumber, func(b []byte, i int) []byte { return strconv.AppendUint(b, uint64((*c)[i]), 10) }), nil
	case *proto.ColUInt64:
		return leafOf(kBig, func(b []byte, i int) []byte { return strconv.AppendUint(b, (*c)[i], 10) }), nil
	case *proto.ColInt8:
		return leafOf(kNumber, func(b []byte, i int) []byte { return strconv.AppendInt(b, int64((*c)[i]), 10) }), nil
	case *proto.ColInt16:
		return leafOf(kNumber, func(b []byte, i int) []byte { return strconv.AppendInt(b, int64((*c)[i]), 10) }), nil
	case *proto.ColInt32:
		return leafOf(kNumber, func(b []byte, i int) []byte { return strconv.AppendInt(b, int64((*c)[i]), 10) }), nil
	case *proto.ColInt64:
		return leafOf(kBig, func(b []byte, i int) []byte { return strconv.AppendInt(b, (*c)[i], 10) }), nil
	case *proto.ColUInt128:
		return leafOf(kBig, func(b []byte, i int) []byte { return u128(new(big.Int), (*c)[i]).Append(b, 10) }), nil
	case *proto.ColInt128:
		return leafOf(kBig, func(b []byte, i int) []byte { return i128(proto.Int128((*c)[i])).Append(b, 10) }), nil
	case *proto.ColUInt256:
		return leafOf(kBig, func(b []byte, i int) []byte { return u256((*c)[i]).Append(b, 10) }), nil
	case *proto.ColInt256:
		return leafOf(kBig, func(b []byte, i int) []byte { return i256(proto.Int256((*c)[i])).Append(b, 10) }), nil
	case *proto.ColFloat32:
		return leafOf(kFloat, func(b []byte, i int) []byte { return appendFloat(b, float64((*c)[i]), 32) }), nil
	case *proto.ColFloat64:
		return leafOf(kFloat, func(b []byte, i int) []byte { return appendFloat(b, (*c)[i], 64) }), nil
	case *proto.ColUUID:
		return leafOf(kString, func(b []byte, i int) []byte { return jsonw.AppendUUIDText(b, (*c)[i]) }), nil
	case *proto.ColIPv4:
		return leafOf(kString, func(b []byte, i int) []byte { return (*c)[i].ToIP().AppendTo(b) }), nil
	case *proto.ColIPv6:
		// Netview stores IPv4 addresses v4-mapped; they read as IPv4.
		return leafOf(kString, func(b []byte, i int) []byte { return netip.AddrFrom16((*c)[i]).Unmap().AppendTo(b) }), nil
	case *proto.ColDate:
		return leafOf(kString, func(b []byte, i int) []byte { return (*c)[i].Time().AppendFormat(b, time.DateOnly) }), nil
	case *proto.ColDate32:
		return leafOf(kString, func(b []byte, i int) []byte { return (*c)[i].Time().AppendFormat(b, time.DateOnly) }), nil
	case *proto.ColDecimal32:
		s := decimalScale(t)
		return leafOf(kNumber, func(b []byte, i int) []byte { return appendDecimal(b, big.NewInt(int64((*c)[i])), s) }), nil
	case *proto.ColDecimal64:
		s := decimalScale(t)
		return leafOf(kNumber, func(b []byte, i int) []byte { return appendDecimal(b, big.NewInt(int64((*c)[i])), s) }), nil
	case *proto.ColDecimal128:
		s := decimalScale(t)
		return leafOf(kNumber, func(b []byte, i int) []byte { return appendDecimal(b, i128(proto.Int128((*c)[i])), s) }), nil
	case *proto.ColDecimal256:
		s := decimalScale(t)
		return leafOf(kNumber, func(b []byte, i int) []byte { return appendDecimal(b, i256(proto.Int256((*c)[i])), s) }), nil
	case *proto.ColNothing:
		return leafOf(kNull, nil), nil
	}
	return nil, fmt.Errorf("type %s (%T) is not rendered", t, col)
}

func dateTimeRenderer(c *proto.ColDateTime) renderer {
	return leafOf(kString, func(b []byte, i int) []byte {
		return time.Unix(int64(c.Data[i]), 0).UTC().AppendFormat(b, time.RFC3339)
	})
}

func dateTime64Renderer(c *proto.ColDateTime64, precision int) renderer {
	layout := "2006-01-02T15:04:05Z07:00"
	if precision > 0 {
		layout = "2006-01-02T15:04:05." + strings.Repeat("0", precision) + "Z07:00"
	}
	p := proto.Precision(precision)
	return leafOf(kString, func(b []byte, i int) []byte {
		return c.Data[i].Time(p).UTC().AppendFormat(b, layout)
	})
}

func fixedStrRenderer(c *proto.ColFixedStr) renderer {
	return leafOf(kString, func(b []byte, i int) []byte { return append(b, c.Row(i)...) })
}

// arrRenderer renders Array(T): a JSON array, or ['a','b'] as text.
type arrRenderer struct {
	off  *proto.ColUInt64
	elem renderer
}

func bounds(off proto.ColUInt64, i int) (int, int) {
	start := 0
	if i > 0 {
		start = int(off[i-1])
	}
	return start, int(off[i])
}

func (a *arrRenderer) json(b []byte, i int) []byte {
	return each(b, *a.off, i, '[', ']', a.elem.json)
}

func (a *arrRenderer) text(b []byte, i int, _ bool) []byte {
	return each(b, *a.off, i, '[', ']', func(b []byte, j int) []byte { return a.elem.text(b, j, true) })
}

// mapRenderer renders Map(K, V): a JSON object (keys as text), or
// {'k':'v'} as text.
type mapRenderer struct {
	off          *proto.ColUInt64
	keys, values renderer
	scratch      []byte
}

func (m *mapRenderer) json(b []byte, i int) []byte {
	return each(b, *m.off, i, '{', '}', func(b []byte, j int) []byte {
		m.scratch = m.keys.text(m.scratch[:0], j, false)
		b = jsonw.AppendString(b, m.scratch)
		b = append(b, ':')
		return m.values.json(b, j)
	})
}

func (m *mapRenderer) text(b []byte, i int, _ bool) []byte {
	return each(b, *m.off, i, '{', '}', func(b []byte, j int) []byte {
		b = m.keys.text(b, j, true)
		b = append(b, ':')
		return m.values.text(b, j, true)
	})
}

// each appends row i of an array or map column (its elements are those
// off bounds) between open and close, elem appending each element, with
// commas between.
func each(b []byte, off proto.ColUInt64, i int, open, close byte, elem func(b []byte, j int) []byte) []byte {
	start, end := bounds(off, i)
	b = append(b, open)
	for j := start; j < end; j++ {
		if j > start {
			b = append(b, ',')
		}
		b = elem(b, j)
	}
	return append(b, close)
}

// nullRenderer renders Nullable(T): null in JSON, empty in a cell, NULL
// inside an array.
type nullRenderer struct {
	nulls  *proto.ColUInt8
	values renderer
}

func (n *nullRenderer) json(b []byte, i int) []byte {
	if (*n.nulls)[i] != 0 {
		return append(b, "null"...)
	}
	return n.values.json(b, i)
}

func (n *nullRenderer) text(b []byte, i int, nested bool) []byte {
	if (*n.nulls)[i] != 0 {
		if nested {
			return append(b, "NULL"...)
		}
		return b
	}
	return n.values.text(b, i, nested)
}

// lcRenderer renders LowCardinality(T) through its dictionary.
type lcRenderer struct {
	idx      *[]int
	dict     renderer
	nullable bool
}

func (l *lcRenderer) json(b []byte, i int) []byte {
	k := (*l.idx)[i]
	if l.nullable && k == 0 {
		return append(b, "null"...)
	}
	return l.dict.json(b, k)
}

func (l *lcRenderer) text(b []byte, i int, nested bool) []byte {
	k := (*l.idx)[i]
	if l.nullable && k == 0 {
		if nested {
			return append(b, "NULL"...)
		}
		return b
	}
	return l.dict.text(b, k, nested)
}

// tupleRenderer renders Tuple(...): a JSON object when every element is
// named (as the engine's JSON does), else a JSON array; (a,b) as text.
type tupleRenderer struct {
	elems []renderer
	names []string
}

func (t *tupleRenderer) named() bool {
	for _, n := range t.names {
		if n == "" {
			return false
		}
	}
	return true
}

func (t *tupleRenderer) json(b []byte, i int) []byte {
	named := t.named()
	open, close := byte('['), byte(']')
	if named {
		open, close = '{', '}'
	}
	b = append(b, open)
	for j, e := range t.elems {
		if j > 0 {
			b = append(b, ',')
		}
		if named {
			b = jsonw.AppendString(b, t.names[j])
			b = append(b, ':')
		}
		b = e.json(b, i)
	}
	return append(b, close)
}

func (t *tupleRenderer) text(b []byte, i int, _ bool) []byte {
	b = append(b, '(')
	for j, e := range t.elems {
		if j > 0 {
			b = append(b, ',')
		}
		b = e.text(b, i, true)
	}
	return append(b, ')')
}

// appendQuoted appends s in single quotes, escaped as the engine's text
// formats do inside arrays.
func appendQuoted(b []byte, s []byte) []byte {
	b = append(b, '\'')
	for _, c := range s {
		switch c {
		case '\'', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\t':
			b = append(b, '\\', 't')
		case '\r':
			b = append(b, '\\', 'r')
		case 0:
			b = append(b, '\\', '0')
		default:
			b = append(b, c)
		}
	}
	return append(b, '\'')
}

// appendFloat writes a float the way JSON and the engine both read it:
// plain decimals in the usual range, an exponent outside it, and nan, inf
// and -inf (which the JSON renderer turns into null).
func appendFloat(b []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, "nan"...)
	case math.IsInf(f, 1):
		return append(b, "inf"...)
	case math.IsInf(f, -1):
		return append(b, "-inf"...)
	}
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		return strconv.AppendFloat(b, f, 'e', -1, bits)
	}
	return strconv.AppendFloat(b, f, 'f', -1, bits)
}

func u128(z *big.Int, v proto.UInt128) *big.Int {
	z.SetUint64(v.High)
	z.Lsh(z, 64)
	return z.Or(z, new(big.Int).SetUint64(v.Low))
}

func i128(v proto.Int128) *big.Int {
	z := u128(new(big.Int), proto.UInt128(v))
	if v.High>>63 == 1 {
		z.Sub(z, new(big.Int).Lsh(big.NewInt(1), 128))
	}
	return z
}

func u256(v proto.UInt256) *big.Int {
	z := u128(new(big.Int), v.High)
	z.Lsh(z, 128)
	return z.Or(z, u128(new(big.Int), v.Low))
}

func i256(v proto.Int256) *big.Int {
	z := u256(proto.UInt256(v))
	if v.High.High>>63 == 1 {
		z.Sub(z, new(big.Int).Lsh(big.NewInt(1), 256))
	}
	return z
}

// decimalScale reads S from Decimal(P, S) or DecimalN(S).
func decimalScale(t proto.ColumnType) int {
	parts := splitTypes(string(t.Elem()))
	if len(parts) == 0 {
		return 0
	}
	s, err := strconv.Atoi(strings.TrimSpace(parts[len(parts)-1]))
	if err != nil || s < 0 || (t.Base() == "Decimal" && len(parts) < 2) {
		return 0
	}
	return s
}

// appendDecimal writes the integer v scaled down by 10^scale.
func appendDecimal(b []byte, v *big.Int, scale int) []byte {
	digits := v.String()
	neg := strings.HasPrefix(digits, "-")
	if neg {
		digits = digits[1:]
		b = append(b, '-')
	}
	if scale == 0 {
		return append(b, digits...)
	}
	if len(digits) <= scale {
		digits = strings.Repeat("0", scale-len(digits)+1) + digits
	}
	b = append(b, digits[:len(digits)-scale]...)
	b = append(b, '.')
	return append(b, digits[len(digits)-scale:]...)
}
