package analyst

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ClickHouse/ch-go/proto"
)

// The result of an analyst's statement has columns nobody knows before it
// runs. Each result column is an autoCol: the store's Select hands it the
// block's column type (proto.Inferable), and it builds a decoder and a
// renderer for that type. Scalar types are decoded by the column ch-go's
// proto.ColAuto infers; Array, Map, Nullable, LowCardinality and Tuple are
// decoded here, over any element type, because ColAuto as a result column
// does not pass the LowCardinality state prefix on (decoding fails with
// "additional keys bit is missing") and knows only Map(String, String).

// UnsupportedTypeError reports a result column whose type cannot be
// rendered.
type UnsupportedTypeError struct {
	Column string
	Type   string
}

func (e *UnsupportedTypeError) Error() string {
	return fmt.Sprintf("column %q has type %s, which the SQL endpoint cannot render; convert it in the statement (toString(...))", e.Column, e.Type)
}

// autoCol is one result column, typed by the first block.
type autoCol struct {
	res proto.Results // the Results it belongs to: names arrive there
	i   int
	t   proto.ColumnType
	col proto.ColResult
	r   renderer
}

var (
	_ proto.ColResult    = (*autoCol)(nil)
	_ proto.Inferable    = (*autoCol)(nil)
	_ proto.StateDecoder = (*autoCol)(nil)
)

// newResults returns n auto columns and the Results that holds them.
func newResults(n int) (proto.Results, []*autoCol) {
	res := make(proto.Results, n)
	cols := make([]*autoCol, n)
	for i := range res {
		cols[i] = &autoCol{res: res, i: i}
		res[i].Data = cols[i]
	}
	return res, cols
}

func (a *autoCol) name() string { return a.res[a.i].Name }

func (a *autoCol) Infer(t proto.ColumnType) error {
	if a.col != nil && a.t == t {
		return nil
	}
	col, r, err := build(t)
	if err != nil {
		return &UnsupportedTypeError{Column: a.name(), Type: string(t)}
	}
	a.t, a.col, a.r = t, col, r
	return nil
}

func (a *autoCol) Type() proto.ColumnType { return a.t }

func (a *autoCol) Rows() int {
	if a.col == nil {
		return 0
	}
	return a.col.Rows()
}

func (a *autoCol) Reset() {
	if a.col != nil {
		a.col.Reset()
	}
}

func (a *autoCol) DecodeState(r *proto.Reader) error { return decodeState(a.col, r) }

func (a *autoCol) DecodeColumn(r *proto.Reader, rows int) error {
	if a.col == nil {
		return fmt.Errorf("column %q: no type", a.name())
	}
	return a.col.DecodeColumn(r, rows)
}

func decodeState(c proto.ColResult, r *proto.Reader) error {
	if s, ok := c.(proto.StateDecoder); ok {
		return s.DecodeState(r)
	}
	return nil
}

// build returns a decoder and a renderer for type t.
func build(t proto.ColumnType) (proto.ColResult, renderer, error) {
	t = proto.ColumnType(strings.TrimSpace(string(t)))
	switch t.Base() {
	case "Array":
		elem, er, err := build(t.Elem())
		if err != nil {
			return nil, nil, err
		}
		c := &arrCol{t: t, elem: elem}
		return c, &arrRenderer{off: &c.off, elem: er}, nil
	case "Map":
		kv := splitTypes(string(t.Elem()))
		if len(kv) != 2 {
			return nil, nil, fmt.Errorf("map type %s", t)
		}
		k, kr, err := build(proto.ColumnType(kv[0]))
		if err != nil {
			return nil, nil, err
		}
		v, vr, err := build(proto.ColumnType(kv[1]))
		if err != nil {
			return nil, nil, err
		}
		c := &mapCol{t: t, keys: k, values: v}
		return c, &mapRenderer{off: &c.off, keys: kr, values: vr}, nil
	case "Nullable":
		v, vr, err := build(t.Elem())
		if err != nil {
			return nil, nil, err
		}
		c := &nullCol{t: t, values: v}
		return c, &nullRenderer{nulls: &c.nulls, values: vr}, nil
	case "LowCardinality":
		inner := proto.ColumnType(strings.TrimSpace(string(t.Elem())))
		nullable := inner.Base() == "Nullable"
		if nullable {
			inner = inner.Elem()
		}
		d, dr, err := build(inner)
		if err != nil {
			return nil, nil, err
		}
		c := &lcCol{t: t, dict: d}
		return c, &lcRenderer{idx: &c.idx, dict: dr, nullable: nullable}, nil
	case "Tuple":
		var elems []proto.ColResult
		var rs []renderer
		var names []string
		for _, e := range splitTypes(string(t.Elem())) {
			name, et := tupleElem(e)
			c, r, err := build(proto.ColumnType(et))
			if err != nil {
				return nil, nil, err
			}
			elems, rs, names = append(elems, c), append(rs, r), append(names, name)
		}
		if len(elems) == 0 {
			return nil, nil, fmt.Errorf("empty tuple")
		}
		return &tupleCol{t: t, elems: elems}, &tupleRenderer{elems: rs, names: names}, nil
	case "DateTime":
		c := new(proto.ColDateTime)
		return c, dateTimeRenderer(c), nil
	case "DateTime64":
		p, err := strconv.Atoi(strings.TrimSpace(splitTypes(string(t.Elem()))[0]))
		if err != nil || p < 0 || p > 9 {
			return nil, nil, fmt.Errorf("datetime64 precision in %s", t)
		}
		c := new(proto.ColDateTime64).WithPrecision(proto.Precision(p))
		return c, dateTime64Renderer(c, p), nil
	case "String":
		c := new(strCol)
		return c, leafOf(kString, func(b []byte, i int) []byte { return append(b, c.rows[i]...) }), nil
	case "FixedString":
		n, err := strconv.Atoi(strings.TrimSpace(string(t.Elem())))
		if err != nil || n <= 0 {
			return nil, nil, fmt.Errorf("fixed string size in %s", t)
		}
		c := &proto.ColFixedStr{Size: n}
		return c, fixedStrRenderer(c), nil
	}
	var a proto.ColAuto
	if err := a.Infer(t); err != nil {
		return nil, nil, err
	}
	r, err := leafRenderer(a.Data, t)
	if err != nil {
		return nil, nil, err
	}
	return a.Data, r, nil
}

// strCol decodes a String column without copying what it decoded.
// proto.ColStr keeps a block's strings back to back in one buffer that it
// grows by append for every string over 128 bytes: for large strings that
// reallocates and copies at Go's 1.25× growth, and a block of 33 strings
// of 1 MB cost about 4 times the block in allocations. Eight statements of
// such blocks at once (query's TestAnalystResultsInBoundedMemory) raised
// RSS by 460 to 584 MiB, over its bound of 512; with strCol and
// jsonw.AppendString growing once, by 359 to 444 (Go's share fell from
// about 100 to 50 MiB a statement). A large string gets a slice of its
// own, and small ones share a buffer that, when full, is replaced rather
// than grown: rows already read keep the old one.
type strCol struct {
	rows [][]byte
	buf  []byte
}

// ownSlice is the size from which a string gets an allocation of its own.
const ownSlice = 64 << 10

func (c *strCol) Type() proto.ColumnType { return proto.ColumnTypeString }
func (c *strCol) Rows() int              { return len(c.rows) }
func (c *strCol) Reset() {
	clear(c.rows) // the last block's strings may go before the next is read
	c.rows, c.buf = c.rows[:0], c.buf[:0]
}

func (c *strCol) DecodeColumn(r *proto.Reader, rows int) error {
	c.Reset()
	for i := range rows {
		n, err := r.StrLen()
		if err != nil {
			return fmt.Errorf("row %d: read length: %w", i, err)
		}
		var s []byte
		switch {
		case n >= ownSlice:
			s = make([]byte, n)
		default:
			if len(c.buf)+n > cap(c.buf) {
				c.buf = make([]byte, 0, max(2*cap(c.buf), 4<<10, n))
			}
			s = c.buf[len(c.buf) : len(c.buf)+n : len(c.buf)+n]
			c.buf = c.buf[:len(c.buf)+n]
		}
		if err := r.ReadFull(s); err != nil {
			return fmt.Errorf("row %d: read: %w", i, err)
		}
		c.rows = append(c.rows, s)
	}
	return nil
}

// SplitTopLevel splits a ClickHouse list such as "A, B(C, D), 'x,y'" at its
// top-level commas. deploy's tests read the cluster DDL's engine arguments
// with it.
func SplitTopLevel(s string) []string { return splitTypes(s) }

// splitTypes splits "A, B(C, D), 'x,y'" at its top-level commas.
func splitTypes(s string) []string {
	var out []string
	depth, start := 0, 0
	quote := byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '`' || c == '"':
			quote = c
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == ',' && depth == 0:
			out = append(out, strings.TrimSpace(s[start:i]))
			start = i + 1
		}
	}
	if rest := strings.TrimSpace(s[start:]); rest != "" {
		out = append(out, rest)
	}
	return out
}

// tupleElem splits a tuple element "name Type" (or just "Type").
func tupleElem(e string) (name, typ string) {
	if strings.HasPrefix(e, "`") {
		if end := strings.Index(e[1:], "`"); end >= 0 {
			return e[1 : end+1], strings.TrimSpace(e[end+2:])
		}
	}
	sp := strings.IndexByte(e, ' ')
	par := strings.IndexByte(e, '(')
	if sp > 0 && (par < 0 || sp < par) {
		return e[:sp], strings.TrimSpace(e[sp+1:])
	}
	return "", e
}

// checkOffsets checks that array offsets grow and end at the element count,
// so rendering cannot index outside the elements.
func checkOffsets(off proto.ColUInt64, elems int) error {
	prev := uint64(0)
	for _, o := range off {
		if o < prev {
			return fmt.Errorf("array offsets decrease")
		}
		prev = o
	}
	if int(prev) != elems {
		return fmt.Errorf("array offsets end at %d, not at the %d elements", prev, elems)
	}
	return nil
}

func lastOffset(off proto.ColUInt64) int {
	if len(off) == 0 {
		return 0
	}
	return int(off[len(off)-1])
}

// arrCol is Array(T): offsets, then the elements.
type arrCol struct {
	t    proto.ColumnType
	off  proto.ColUInt64
	elem proto.ColResult
}

func (c *arrCol) Type() proto.ColumnType            { return c.t }
func (c *arrCol) Rows() int                         { return len(c.off) }
func (c *arrCol) Reset()                            { c.off.Reset(); c.elem.Reset() }
func (c *arrCol) DecodeState(r *proto.Reader) error { return decodeState(c.elem, r) }
func (c *arrCol) DecodeColumn(r *proto.Reader, rows int) error {
	if err := c.off.DecodeColumn(r, rows); err != nil {
		return fmt.Errorf("array offsets: %w", err)
	}
	if err := c.elem.DecodeColumn(r, lastOffset(c.off)-c.elem.Rows()); err != nil {
		return fmt.Errorf("array elements: %w", err)
	}
	return checkOffsets(c.off, c.elem.Rows())
}

// mapCol is Map(K, V): offsets, then the keys, then the values.
type mapCol struct {
	t            proto.ColumnType
	off          proto.ColUInt64
	keys, values proto.ColResult
}

func (c *mapCol) Type() proto.ColumnType { return c.t }
func (c *mapCol) Rows() int              { return len(c.off) }
func (c *mapCol) Reset()                 { c.off.Reset(); c.keys.Reset(); c.values.Reset() }
func (c *mapCol) DecodeState(r *proto.Reader) error {
	if err := decodeState(c.keys, r); err != nil {
		return err
	}
	return decodeState(c.values, r)
}
func (c *mapCol) DecodeColumn(r *proto.Reader, rows int) error {
	if err := c.off.DecodeColumn(r, rows); err != nil {
		return fmt.Errorf("map offsets: %w", err)
	}
	n := lastOffset(c.off)
	if err := c.keys.DecodeColumn(r, n-c.keys.Rows()); err != nil {
		return fmt.Errorf("map keys: %w", err)
	}
	if err := c.values.DecodeColumn(r, n-c.values.Rows()); err != nil {
		return fmt.Errorf("map values: %w", err)
	}
	if c.keys.Rows() != c.values.Rows() {
		return fmt.Errorf("map has %d keys and %d values", c.keys.Rows(), c.values.Rows())
	}
	return checkOffsets(c.off, c.keys.Rows())
}

// nullCol is Nullable(T): the null map, then the values.
type nullCol struct {
	t      proto.ColumnType
	nulls  proto.ColUInt8
	values proto.ColResult
}

func (c *nullCol) Type() proto.ColumnType            { return c.t }
func (c *nullCol) Rows() int                         { return len(c.nulls) }
func (c *nullCol) Reset()                            { c.nulls.Reset(); c.values.Reset() }
func (c *nullCol) DecodeState(r *proto.Reader) error { return decodeState(c.values, r) }
func (c *nullCol) DecodeColumn(r *proto.Reader, rows int) error {
	if err := c.nulls.DecodeColumn(r, rows); err != nil {
		return fmt.Errorf("null map: %w", err)
	}
	if err := c.values.DecodeColumn(r, rows); err != nil {
		return err
	}
	if c.values.Rows() != len(c.nulls) {
		return fmt.Errorf("nullable has %d values for %d rows", c.values.Rows(), len(c.nulls))
	}
	return nil
}

// tupleCol is Tuple(T1, T2...): each element column in turn.
type tupleCol struct {
	t     proto.ColumnType
	elems []proto.ColResult
}

func (c *tupleCol) Type() proto.ColumnType { return c.t }
func (c *tupleCol) Rows() int              { return c.elems[0].Rows() }
func (c *tupleCol) Reset() {
	for _, e := range c.elems {
		e.Reset()
	}
}
func (c *tupleCol) DecodeState(r *proto.Reader) error {
	for _, e := range c.elems {
		if err := decodeState(e, r); err != nil {
			return err
		}
	}
	return nil
}
func (c *tupleCol) DecodeColumn(r *proto.Reader, rows int) error {
	for i, e := range c.elems {
		if err := e.DecodeColumn(r, rows); err != nil {
			return fmt.Errorf("tuple element %d: %w", i+1, err)
		}
		if e.Rows() != c.elems[0].Rows() {
			return fmt.Errorf("tuple elements differ in length")
		}
	}
	return nil
}

// LowCardinality serialization flags (the engine's
// SerializationLowCardinality, version SharedDictionariesWithAdditionalKeys).
const (
	lcKeyVersion        = 1
	lcNeedGlobalDict    = 1 << 8
	lcHasAdditionalKeys = 1 << 9
)

// lcCol is LowCardinality(T): per block a dictionary of keys and one index
// into it per row. For LowCardinality(Nullable(T)) the dictionary holds T
// and index 0 stands for NULL.
type lcCol struct {
	t    proto.ColumnType
	dict proto.ColResult
	idx  []int
}

func (c *lcCol) Type() proto.ColumnType { return c.t }
func (c *lcCol) Rows() int              { return len(c.idx) }
func (c *lcCol) Reset()                 { c.idx = c.idx[:0]; c.dict.Reset() }
func (c *lcCol) DecodeState(r *proto.Reader) error {
	v, err := r.Int64()
	if err != nil {
		return fmt.Errorf("low cardinality version: %w", err)
	}
	if v != lcKeyVersion {
		return fmt.Errorf("low cardinality key serialization version %d", v)
	}
	return decodeState(c.dict, r)
}
func (c *lcCol) DecodeColumn(r *proto.Reader, rows int) error {
	if rows == 0 {
		return nil // the engine writes nothing for an empty column
	}
	meta, err := r.Int64()
	if err != nil {
		return fmt.Errorf("low cardinality flags: %w", err)
	}
	if meta&lcNeedGlobalDict != 0 || meta&lcHasAdditionalKeys == 0 {
		return fmt.Errorf("low cardinality with a shared dictionary is not supported (flags %#x)", meta)
	}
	width := 1 << (meta & 0xff) // UInt8, UInt16, UInt32, UInt64 indexes
	if width > 8 {
		return fmt.Errorf("low cardinality index type %d", meta&0xff)
	}
	keys, err := r.Int64()
	if err != nil || keys < 0 {
		return fmt.Errorf("low cardinality key count: %v", err)
	}
	c.dict.Reset()
	if err := c.dict.DecodeColumn(r, int(keys)); err != nil {
		return fmt.Errorf("low cardinality keys: %w", err)
	}
	n, err := r.Int64()
	if err != nil {
		return fmt.Errorf("low cardinality row count: %w", err)
	}
	if n != int64(rows) {
		return fmt.Errorf("low cardinality has %d indexes for %d rows", n, rows)
	}
	raw, err := r.ReadRaw(rows * width)
	if err != nil {
		return fmt.Errorf("low cardinality indexes: %w", err)
	}
	for i := range rows {
		var v uint64
		for b := width - 1; b >= 0; b-- {
			v = v<<8 | uint64(raw[i*width+b])
		}
		if v >= uint64(keys) {
			return fmt.Errorf("low cardinality index %d outside %d keys", v, keys)
		}
		c.idx = append(c.idx, int(v))
	}
	return nil
}
