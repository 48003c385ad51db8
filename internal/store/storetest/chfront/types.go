package chfront

import (
	"fmt"
	"strconv"
	"strings"
)

// layout is what the front knows of a column type: enough to find where the
// column's bytes end in a Native block. Values are never decoded.
type layout struct {
	kind  kind
	size  int       // bytes per value, for fixedKind
	elems []*layout // Nullable, Array, LowCardinality: one; Tuple: each element; Map: key and value
}

type kind int

const (
	fixedKind    kind = iota // size bytes per row
	stringKind               // UVarInt length and bytes per row
	nullableKind             // a null map byte per row, then the values
	arrayKind                // UInt64 end offset per row, then every element
	lowCardKind              // key-version prefix; dictionary and indexes
	tupleKind                // each element's column in turn
	mapKind                  // offsets like Array, then the keys, then the values
)

// fixedSizes are the types whose values take a fixed number of bytes,
// whatever their arguments (DateTime('UTC'), Enum8('a' = 1), ...).
var fixedSizes = map[string]int{
	"UInt8": 1, "UInt16": 2, "UInt32": 4, "UInt64": 8, "UInt128": 16, "UInt256": 32,
	"Int8": 1, "Int16": 2, "Int32": 4, "Int64": 8, "Int128": 16, "Int256": 32,
	"Float32": 4, "Float64": 8, "BFloat16": 2, "Bool": 1,
	"Date": 2, "Date32": 4, "DateTime": 4, "DateTime32": 4, "DateTime64": 8, "Time": 4, "Time64": 8,
	"Enum8": 1, "Enum16": 2, "UUID": 16, "IPv4": 4, "IPv6": 16,
	"Decimal32": 4, "Decimal64": 8, "Decimal128": 16, "Decimal256": 32,
	"Nothing": 1, // the engine writes one placeholder byte per row
}

// parseType reads a ClickHouse type name. Types whose Native layout the
// front does not know (JSON, Dynamic, Variant, AggregateFunction, ...) are
// an error: the front refuses them rather than corrupt the stream.
func parseType(t string) (*layout, error) {
	t = strings.TrimSpace(t)
	name, args, hasArgs := t, "", false
	if i := strings.IndexByte(t, '('); i >= 0 {
		if !strings.HasSuffix(t, ")") {
			return nil, fmt.Errorf("malformed type %q", t)
		}
		name, args, hasArgs = strings.TrimSpace(t[:i]), t[i+1:len(t)-1], true
	}
	one := func(k kind) (*layout, error) {
		if !hasArgs {
			return nil, fmt.Errorf("type %s needs an argument", name)
		}
		e, err := parseType(args)
		if err != nil {
			return nil, err
		}
		return &layout{kind: k, elems: []*layout{e}}, nil
	}
	switch name {
	case "String":
		return &layout{kind: stringKind}, nil
	case "FixedString":
		n, err := strconv.Atoi(strings.TrimSpace(args))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("malformed type %q", t)
		}
		return &layout{kind: fixedKind, size: n}, nil
	case "Decimal":
		p, _, _ := strings.Cut(args, ",")
		prec, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil {
			return nil, fmt.Errorf("malformed type %q", t)
		}
		switch {
		case prec <= 9:
			return &layout{kind: fixedKind, size: 4}, nil
		case prec <= 18:
			return &layout{kind: fixedKind, size: 8}, nil
		case prec <= 38:
			return &layout{kind: fixedKind, size: 16}, nil
		default:
			return &layout{kind: fixedKind, size: 32}, nil
		}
	case "Nullable":
		return one(nullableKind)
	case "Array":
		return one(arrayKind)
	case "LowCardinality":
		return one(lowCardKind)
	case "Tuple", "Nested":
		parts := splitArgs(args)
		if len(parts) == 0 {
			return nil, fmt.Errorf("malformed type %q", t)
		}
		tuple := &layout{kind: tupleKind}
		for _, p := range parts {
			e, err := parseType(elemType(p))
			if err != nil {
				return nil, err
			}
			tuple.elems = append(tuple.elems, e)
		}
		if name == "Nested" {
			return &layout{kind: arrayKind, elems: []*layout{tuple}}, nil
		}
		return tuple, nil
	case "Map":
		parts := splitArgs(args)
		if len(parts) != 2 {
			return nil, fmt.Errorf("malformed type %q", t)
		}
		k, err := parseType(parts[0])
		if err != nil {
			return nil, err
		}
		v, err := parseType(parts[1])
		if err != nil {
			return nil, err
		}
		return &layout{kind: mapKind, elems: []*layout{k, v}}, nil
	case "SimpleAggregateFunction":
		parts := splitArgs(args)
		if len(parts) < 2 {
			return nil, fmt.Errorf("malformed type %q", t)
		}
		return parseType(parts[len(parts)-1])
	case "Point":
		return parseType("Tuple(Float64, Float64)")
	case "Ring", "LineString":
		return parseType("Array(Point)")
	case "Polygon", "MultiLineString":
		return parseType("Array(Array(Point))")
	case "MultiPolygon":
		return parseType("Array(Array(Array(Point)))")
	}
	if n, ok := fixedSizes[name]; ok {
		return &layout{kind: fixedKind, size: n}, nil
	}
	if strings.HasPrefix(name, "Interval") && !hasArgs {
		return &layout{kind: fixedKind, size: 8}, nil
	}
	return nil, fmt.Errorf("type %q is not supported by the test front", t)
}

// splitArgs splits a type's arguments at the commas outside parentheses and
// quotes.
func splitArgs(s string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'', '"', '`':
			i = skipQuoted(s, i)
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	if rest := strings.TrimSpace(s[start:]); rest != "" || len(out) > 0 {
		out = append(out, rest)
	}
	return out
}

// skipQuoted returns the index of the quote that closes the one at s[i].
func skipQuoted(s string, i int) int {
	q := s[i]
	for i++; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case q:
			return i
		}
	}
	return len(s)
}

// elemType drops the element name of a named tuple element ("a UInt8",
// "`a b` String"): a name is followed by a space outside parentheses.
func elemType(e string) string {
	if strings.HasPrefix(e, "`") || strings.HasPrefix(e, `"`) {
		end := skipQuoted(e, 0)
		if end < len(e) {
			return strings.TrimSpace(e[end+1:])
		}
		return e
	}
	for i := 0; i < len(e); i++ {
		switch e[i] {
		case '(', '\'':
			return e
		case ' ':
			return strings.TrimSpace(e[i+1:])
		}
	}
	return e
}
