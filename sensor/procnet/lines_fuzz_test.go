package procnet

import (
	"bytes"
	"errors"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// tableKinds are the /proc/net tables the parsers read, with a fixture of
// each and a parser returning its rows.
var tableKinds = []struct {
	name, fixture string
	parse         func(data []byte) ([]any, error)
}{
	{"tcp", "testdata/proc/net/tcp", sockets(TCP, false)},
	{"tcp6", "testdata/proc/net/tcp6", sockets(TCP, true)},
	{"udp", "testdata/proc/net/udp", sockets(UDP, false)},
	{"udp6", "testdata/proc/net/udp6", sockets(UDP, true)},
	{"sctp/assocs", "testdata/proc/net/sctp/assocs", func(data []byte) ([]any, error) {
		rows, err := ParseSCTPAssocs(bytes.NewReader(data), nil)
		return anys(rows), err
	}},
	{"sctp/eps", "testdata/proc/net/sctp/eps", func(data []byte) ([]any, error) {
		rows, err := ParseSCTPEndpoints(bytes.NewReader(data), nil)
		return anys(rows), err
	}},
}

func sockets(p Proto, ipv6 bool) func([]byte) ([]any, error) {
	return func(data []byte) ([]any, error) {
		rows, err := Parse(bytes.NewReader(data), p, ipv6, nil)
		return anys(rows), err
	}
}

func anys[T any](rows []T) []any {
	out := make([]any, len(rows))
	for i, r := range rows {
		out[i] = r
	}
	return out
}

// FuzzLines checks that every /proc/net parser (tcp, tcp6, udp, udp6,
// sctp/assocs, sctp/eps; kind picks one) reads a table line by line: a
// whole table parses to exactly the rows of its good lines, each as it
// parses alone under a header, in file order; and the error lists exactly
// the lines that fail alone, by their number in the file, with the field
// and reason they fail with alone. So a bad line never costs a good one,
// and an error always names the line at fault.
//
// The seed corpus (testdata/fuzz/FuzzLines) holds the fixtures of every
// kind and damaged variants of them.
func FuzzLines(f *testing.F) {
	for i, k := range tableKinds {
		data, err := os.ReadFile(k.fixture)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), data)
	}
	f.Fuzz(func(t *testing.T, kind uint8, doc []byte) {
		k := tableKinds[int(kind)%len(tableKinds)]
		got, err := k.parse(doc)
		var want []any
		var wantBad []LineError
		for i, line := range bytes.Split(doc, []byte("\n")) {
			if i == 0 || blank(line) {
				continue
			}
			alone, aerr := k.parse(append([]byte("header\n"), line...))
			if aerr == nil {
				if len(alone) != 1 {
					t.Fatalf("%s: line %d alone gives %d rows", k.name, i+1, len(alone))
				}
				want = append(want, alone[0])
				continue
			}
			var pe *ParseError
			if !errors.As(aerr, &pe) || len(alone) != 0 || pe.Count != 1 || len(pe.Lines) != 1 || pe.Lines[0].Line != 2 {
				t.Fatalf("%s: line %d alone: %d rows, %#v", k.name, i+1, len(alone), aerr)
			}
			wantBad = append(wantBad, LineError{Line: i + 1, Field: pe.Lines[0].Field, Reason: pe.Lines[0].Reason})
		}
		if len(got) != len(want) || (len(got) > 0 && !reflect.DeepEqual(got, want)) {
			t.Fatalf("%s: the table gives\n%+v\nits good lines alone give\n%+v", k.name, got, want)
		}
		if checkReport(t, err) != len(wantBad) {
			t.Fatalf("%s: error %v, want %d bad lines", k.name, err, len(wantBad))
		}
		if len(wantBad) == 0 {
			return
		}
		var pe *ParseError
		errors.As(err, &pe)
		if !reflect.DeepEqual(pe.Lines, wantBad[:len(pe.Lines)]) {
			t.Fatalf("%s: error lists %+v, the lines that fail alone are %+v", k.name, pe.Lines, wantBad)
		}
		if msg := err.Error(); !strings.Contains(msg, "line "+strconv.Itoa(wantBad[0].Line)+": ") {
			t.Fatalf("%s: error %q does not name line %d", k.name, msg, wantBad[0].Line)
		}
	})
}
