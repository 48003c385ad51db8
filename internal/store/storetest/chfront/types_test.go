package chfront

import (
	"fmt"
	"strings"
	"testing"
)

// describe renders a layout compactly: f<size>, s, N(..), A(..), L(..),
// T(..,..), M(..,..).
func describeLayout(l *layout) string {
	var elems []string
	for _, e := range l.elems {
		elems = append(elems, describeLayout(e))
	}
	inner := strings.Join(elems, ",")
	switch l.kind {
	case fixedKind:
		return fmt.Sprintf("f%d", l.size)
	case stringKind:
		return "s"
	case nullableKind:
		return "N(" + inner + ")"
	case arrayKind:
		return "A(" + inner + ")"
	case lowCardKind:
		return "L(" + inner + ")"
	case tupleKind:
		return "T(" + inner + ")"
	case mapKind:
		return "M(" + inner + ")"
	}
	return "?"
}

func TestParseType(t *testing.T) {
	for typ, want := range map[string]string{
		"UInt8":                                         "f1",
		"DateTime64(3, 'UTC')":                          "f8",
		"DateTime('Europe/Paris')":                      "f4",
		"Enum8('a, b' = 1, 'c(\\'' = 2)":                "f1",
		"Decimal(9, 2)":                                 "f4",
		"Decimal(18, 2)":                                "f8",
		"Decimal(38, 2)":                                "f16",
		"Decimal(76, 2)":                                "f32",
		"FixedString(3)":                                "f3",
		"IntervalSecond":                                "f8",
		"Nullable(Nothing)":                             "N(f1)",
		"LowCardinality(Nullable(String))":              "L(N(s))",
		"Array(LowCardinality(String))":                 "A(L(s))",
		"Map(LowCardinality(String), Array(UInt64))":    "M(L(s),A(f8))",
		"Tuple(a UInt64, `b c` LowCardinality(String))": "T(f8,L(s))",
		"Tuple(DateTime64(3, 'UTC'), String)":           "T(f8,s)",
		"Nested(x UInt8, y String)":                     "A(T(f1,s))",
		"Point":                                         "T(f8,f8)",
		"MultiPolygon":                                  "A(A(A(T(f8,f8))))",
		"SimpleAggregateFunction(anyLast, Nullable(String))": "N(s)",
	} {
		l, err := parseType(typ)
		if err != nil {
			t.Errorf("%s: %v", typ, err)
			continue
		}
		if got := describeLayout(l); got != want {
			t.Errorf("%s: layout %s, want %s", typ, got, want)
		}
	}
	for _, typ := range []string{"JSON", "Dynamic", "Variant(UInt8, String)", "AggregateFunction(sum, UInt64)", "Object('json')",
		"Array(JSON)", "Nullable", "Array(", "FixedString(x)", "Map(String)", "Tuple()", "NoSuchType"} {
		if _, err := parseType(typ); err == nil {
			t.Errorf("%s: accepted a type whose layout the front does not know", typ)
		}
	}
}
