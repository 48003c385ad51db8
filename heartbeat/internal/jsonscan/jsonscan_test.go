package jsonscan

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// walk reads any value generically (Peek, then the matching method) and
// builds it in the shapes encoding/json produces for an interface{}, so the
// two can be compared.
func walk(s *Scanner) (any, error) {
	k, err := s.Peek()
	if err != nil {
		return nil, err
	}
	switch k {
	case Object:
		if err := s.EnterObject(); err != nil {
			return nil, err
		}
		m := map[string]any{}
		for {
			key, ok, err := s.NextKey()
			if err != nil || !ok {
				return m, err
			}
			name := string(key) // key is only valid until the next call
			if m[name], err = walk(s); err != nil {
				return nil, err
			}
		}
	case Array:
		if err := s.EnterArray(); err != nil {
			return nil, err
		}
		a := []any{}
		for {
			ok, err := s.NextElem()
			if err != nil || !ok {
				return a, err
			}
			v, err := walk(s)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
	case String:
		v, err := s.Str()
		return string(v), err
	case Number:
		// Try the narrow readers first: a refusal with ErrNumber must leave
		// the number in place for the next one. float64(i) rounds exactly
		// as ParseFloat would, so the result still matches encoding/json.
		if i, err := s.Int(); !errors.Is(err, ErrNumber) {
			return float64(i), err
		}
		if u, err := s.Uint(); !errors.Is(err, ErrNumber) {
			return float64(u), err
		}
		if f, err := s.Float(); !errors.Is(err, ErrNumber) {
			return f, err
		}
		return "out of range", s.Skip()
	case Bool:
		return s.Bool()
	case Null:
		if !s.Null() {
			return nil, errors.New("Peek said null but Null refused it")
		}
		return nil, nil
	}
	return nil, fmt.Errorf("Peek returned %v without an error", k)
}

func walkDoc(doc []byte, maxDepth int) (any, error) {
	s := Scanner{MaxDepth: maxDepth}
	s.Reset(doc)
	v, err := walk(&s)
	if err == nil {
		err = s.End()
	}
	return v, err
}

func skipDoc(doc []byte, maxDepth int) error {
	s := Scanner{MaxDepth: maxDepth}
	s.Reset(doc)
	if err := s.Skip(); err != nil {
		return err
	}
	return s.End()
}

func TestWalk(t *testing.T) {
	doc := []byte(`{"name":"edge-7","seq":42,"load":0.75,"up":true,"down":false,"note":null,
		"tags":["a","b\n"],"pos":{"lat":-33.5,"alt":-12,"big":18446744073709551615},"empty":{},"none":[]}`)
	var s Scanner
	s.Reset(doc)
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	key := func(want string) {
		t.Helper()
		k, ok, err := s.NextKey()
		check(err)
		if !ok || string(k) != want {
			t.Fatalf("NextKey = %q, %v; want %q", k, ok, want)
		}
	}
	elem := func(want bool) {
		t.Helper()
		ok, err := s.NextElem()
		check(err)
		if ok != want {
			t.Fatalf("NextElem = %v, want %v", ok, want)
		}
	}
	str := func(want string) {
		t.Helper()
		v, err := s.Str()
		check(err)
		if string(v) != want {
			t.Fatalf("Str = %q, want %q", v, want)
		}
	}
	end := func() { // of an object
		t.Helper()
		if k, ok, err := s.NextKey(); err != nil || ok {
			t.Fatalf("NextKey = %q, %v, %v; want end of object", k, ok, err)
		}
	}

	check(s.EnterObject())
	key("name")
	str("edge-7")
	key("seq")
	if n, err := s.Int(); err != nil || n != 42 {
		t.Fatalf("Int = %d, %v", n, err)
	}
	key("load")
	if v, err := s.Float(); err != nil || v != 0.75 {
		t.Fatalf("Float = %v, %v", v, err)
	}
	key("up")
	if v, err := s.Bool(); err != nil || !v {
		t.Fatalf("Bool = %v, %v", v, err)
	}
	key("down")
	if v, err := s.Bool(); err != nil || v {
		t.Fatalf("Bool = %v, %v", v, err)
	}
	key("note")
	if k, err := s.Peek(); err != nil || k != Null {
		t.Fatalf("Peek = %v, %v", k, err)
	}
	if !s.Null() {
		t.Fatal("Null = false")
	}
	key("tags")
	check(s.EnterArray())
	elem(true)
	str("a")
	elem(true)
	str("b\n")
	elem(false)
	key("pos")
	check(s.EnterObject())
	key("lat")
	if v, err := s.Float(); err != nil || v != -33.5 {
		t.Fatalf("Float = %v, %v", v, err)
	}
	key("alt")
	if v, err := s.Int(); err != nil || v != -12 {
		t.Fatalf("Int = %v, %v", v, err)
	}
	key("big")
	if v, err := s.Uint(); err != nil || v != math.MaxUint64 {
		t.Fatalf("Uint = %v, %v", v, err)
	}
	end()
	key("empty")
	check(s.EnterObject())
	end()
	key("none")
	check(s.EnterArray())
	elem(false)
	end()
	check(s.End())

	// The generic walk must agree with encoding/json on the same document.
	got, err := walkDoc(doc, 0)
	check(err)
	var want any
	check(json.Unmarshal(doc, &want))
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("walk = %#v\nwant %#v", got, want)
	}
}

func TestStr(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		var s Scanner
		s.Reset([]byte(in))
		got, err := s.Str()
		if err != nil {
			t.Fatalf("Str(%s): %v", in, err)
		}
		if string(got) != want {
			t.Fatalf("Str(%s) = %q, want %q", in, got, want)
		}
		if err := s.End(); err != nil {
			t.Fatalf("Str(%s) left data: %v", in, err)
		}
		var std string
		if err := json.Unmarshal([]byte(in), &std); err != nil || std != want {
			t.Fatalf("encoding/json disagrees on %s: %q, %v", in, std, err)
		}
	}
	f(`""`, "")
	f(`"plain"`, "plain")
	f(` "spaced" `, "spaced")
	f(`"héllo ✓ 😀"`, "héllo ✓ 😀")
	f(`"\"\\\/\b\f\n\r\t"`, "\"\\/\b\f\n\r\t")
	f(`"a\"b"`, `a"b`)
	f(`"\u0041\u00e9\u4e2d\uFFFD"`, "Aé中\uFFFD")
	f(`"\u0000"`, "\x00")
	f(`"\ud83d\ude00"`, "😀")
	f(`"x\uD834\uDD1Ey"`, "x𝄞y")
	f(`"\uDBFF\uDFFF"`, "\U0010FFFF")
	f(`"before \n after é 😀 \ud83d\ude00!"`, "before \n after é 😀 😀!")
	f("\"\x7f\"", "\x7f")
}

func TestStrAliasing(t *testing.T) {
	doc := []byte(`["plain","esc\n","next\t"]`)
	var s Scanner
	s.Reset(doc)
	if err := s.EnterArray(); err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	for {
		ok, err := s.NextElem()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		v, err := s.Str()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	// Without escapes the result is the document's own bytes.
	if &got[0][0] != &doc[2] {
		t.Error("unescaped string does not alias the document")
	}
	// With escapes it is the scratch buffer, which the next escaped string
	// reuses: the documented "valid until the next call".
	if &got[1][0] != &got[2][0] {
		t.Error("escaped strings do not share the scratch buffer")
	}
}

func TestStrErrors(t *testing.T) {
	f := func(in, wantMsg string) {
		t.Helper()
		var s Scanner
		s.Reset([]byte(in))
		v, err := s.Str()
		if err == nil {
			t.Fatalf("Str(%q) = %q, want error", in, v)
		}
		if !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), wantMsg) || !strings.Contains(err.Error(), " at offset ") {
			t.Fatalf("Str(%q): %v; want ErrSyntax containing %q", in, err, wantMsg)
		}
	}
	f(``, "unexpected end of input")
	f(`"abc`, "unexpected end of input in string")
	f(`"a\`, "unexpected end of input in string")
	f(`"\x"`, `invalid escape 'x'`)
	f(`"\U0041"`, `invalid escape 'U'`)
	f(`"\'"`, `invalid escape '\''`)
	f(`"\u12`, "unexpected end of input in string")
	f(`"\u12G4"`, `invalid \u escape`)
	f(`"\u-123"`, `invalid \u escape`)
	f(`"\ud800"`, "lone high surrogate \\uD800")
	f(`"\ud800`, "lone high surrogate")
	f(`"\ud800\u0041"`, "lone high surrogate")
	f(`"\ud800\ud800"`, "lone high surrogate")
	f(`"\ud800\n"`, "lone high surrogate")
	f(`"\ud800\uZZZZ"`, `invalid \u escape`)
	f(`"\udc00"`, "lone low surrogate \\uDC00")
	f(`"\ude00\ud83d"`, "lone low surrogate")
	f("\"a\x01b\"", `control character '\x01'`)
	f("\"a\tb\"", `control character '\t'`)
	f("\"a\nb\"", `control character '\n'`)
	f("\"a\x00\"", `control character '\x00'`)
	f("\"\xff\"", "invalid UTF-8")
	f("\"\xc3\"", "invalid UTF-8")             // truncated sequence
	f("\"\xc0\xaf\"", "invalid UTF-8")         // overlong encoding
	f("\"\xed\xa0\x80\"", "invalid UTF-8")     // surrogate encoded as UTF-8
	f("\"\xf4\x90\x80\x80\"", "invalid UTF-8") // beyond U+10FFFF
	f("\"ok\\n\xff\"", "invalid UTF-8")        // after an escape, on the slow path
	f(`17`, "expected string, found number")
}

func TestMalformed(t *testing.T) {
	f := func(in string) {
		t.Helper()
		if json.Valid([]byte(in)) {
			t.Fatalf("bad test: encoding/json accepts %q", in)
		}
		for name, err := range map[string]error{
			"walk": func() error { _, err := walkDoc([]byte(in), 0); return err }(),
			"skip": skipDoc([]byte(in), 0),
		} {
			if !errors.Is(err, ErrSyntax) {
				t.Errorf("%s(%q) = %v, want ErrSyntax", name, in, err)
			}
		}
	}
	for _, in := range []string{
		``, ` `, "\n\t", `{`, `}`, `[`, `]`, `:`, `,`, `"`,
		`{"a"}`, `{"a":}`, `{"a" 1}`, `{"a"::1}`, `{"a":1,}`, `{,"a":1}`, `{"a":1 "b":2}`,
		`{"a":1,,"b":2}`, `{a:1}`, `{'a':1}`, `{1:2}`, `{null:1}`, `{"a":1]`, `{"a":1}}`,
		`[1,]`, `[,1]`, `[,]`, `[1 2]`, `[1,,2]`, `[1}`, `["a":1]`, `[[]`, `[]]`, `[[]]]`,
		`tru`, `truex`, `True`, `nul`, `nulll`, `fals`, `false0`, `[true false]`,
		`NaN`, `Infinity`, `-Infinity`, `+1`, `.5`, `1.`, `1.e5`, `1e`, `1e+`, `1E-`, `01`, `-01`,
		`00`, `-`, `--1`, `-.5`, `0x10`, `1_000`, `12a`, `1.5.5`, `1e5e5`, `[01]`, `{"a":-}`,
		`/* c */ 1`, "// c\n1", `1 // c`, `[1] [2]`, `{} x`, `"a" "b"`, `1 2`,
		"\f1", "\v1", "\u00a01", "\ufeff1", "1\x00", "\"\x01\"",
		`"\u00"`, `"\x"`, `["a\`, `{"a":"b`,
	} {
		f(in)
	}
}

// A valid document cut short anywhere must give an error, never a panic
// or an out-of-bounds read. The document is an object, so that no proper
// prefix of it is itself a valid document.
// Where the scanner is deliberately stricter than encoding/json: the
// heartbeat spec promises UTF-8, and a lone surrogate has no UTF-8 form.
func TestStricterThanStd(t *testing.T) {
	f := func(in, wantMsg string) {
		t.Helper()
		if !json.Valid([]byte(in)) {
			t.Fatalf("bad test: encoding/json refuses %q", in)
		}
		_, err := walkDoc([]byte(in), 0)
		if !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), wantMsg) {
			t.Errorf("walk(%q) = %v, want ErrSyntax containing %q", in, err, wantMsg)
		}
	}
	f(`{"\ud800":1}`, "lone high surrogate")
	f(`["\udfff"]`, "lone low surrogate")
	f("[\"\xff\"]", "invalid UTF-8")
	f("{\"\xed\xa0\x80\":0}", "invalid UTF-8")
}

func TestTruncation(t *testing.T) {
	doc := `{"s":"a\"b\\c\/\u00e9\ud83d\ude00 😀","n":[0,-0,12,-3.25e+10,1E-2,18446744073709551615],` +
		`"t":true,"f":false,"z":null,"o":{"":[],"x":{}},"e":"" }`
	if !json.Valid([]byte(doc)) {
		t.Fatal("bad test document")
	}
	if _, err := walkDoc([]byte(doc), 0); err != nil {
		t.Fatalf("whole document: %v", err)
	}
	for i := range len(doc) {
		// Copy so that capacity beyond the cut cannot hide a stray read.
		prefix := []byte(doc[:i])
		if _, err := walkDoc(prefix, 0); !errors.Is(err, ErrSyntax) {
			t.Errorf("walk(%q) = %v, want ErrSyntax", prefix, err)
		}
		if err := skipDoc(prefix, 0); !errors.Is(err, ErrSyntax) {
			t.Errorf("skip(%q) = %v, want ErrSyntax", prefix, err)
		}
	}
}

func TestDepth(t *testing.T) {
	f := func(open, close string, reps, maxDepth int) {
		t.Helper()
		doc := []byte(strings.Repeat(open, reps) + "1" + strings.Repeat(close, reps))
		if !json.Valid(doc) {
			t.Fatalf("bad test document %s", doc)
		}
		limit := maxDepth
		if limit <= 0 {
			limit = 64
		}
		tooDeep := reps*(strings.Count(open, "[")+strings.Count(open, "{")) > limit
		_, walkErr := walkDoc(doc, maxDepth)
		skipErr := skipDoc(doc, maxDepth)
		for name, err := range map[string]error{"walk": walkErr, "skip": skipErr} {
			switch {
			case !tooDeep && err != nil:
				t.Errorf("%s: %d×%s with MaxDepth %d: %v", name, reps, open, maxDepth, err)
			case tooDeep && (!errors.Is(err, ErrDepth) || errors.Is(err, ErrSyntax)):
				t.Errorf("%s: %d×%s with MaxDepth %d: %v, want ErrDepth", name, reps, open, maxDepth, err)
			}
		}
	}
	for _, c := range [][2]string{{"[", "]"}, {`{"a":`, "}"}, {`[{"a":`, "}]"}} {
		for _, reps := range []int{1, 2, 5, 10, 11, 20, 32, 33, 64, 65, 100, 1000} {
			for _, maxDepth := range []int{-1, 0, 1, 10, 64, 200} {
				f(c[0], c[1], reps, maxDepth)
			}
		}
	}

	// Leaving a container gives its level back: siblings do not add up.
	doc := []byte("[" + strings.Repeat("[],", 100) + "[]]")
	if _, err := walkDoc(doc, 2); err != nil {
		t.Errorf("siblings: %v", err)
	}
	if err := skipDoc(doc, 2); err != nil {
		t.Errorf("siblings: %v", err)
	}
}

// numberCase checks one of the Scanner's number readers: in reads as want
// (a float's -0 with its sign) with nothing after it, or fails with wantErr.
func numberCase[T int64 | uint64 | float64](t *testing.T, name string, read func(*Scanner) (T, error)) func(in string, want T, wantErr error) {
	return func(in string, want T, wantErr error) {
		t.Helper()
		var s Scanner
		s.Reset([]byte(in))
		got, err := read(&s)
		if wantErr != nil {
			if !errors.Is(err, wantErr) {
				t.Errorf("%s(%q) = %v, %v; want %v", name, in, got, err, wantErr)
			}
			return
		}
		if err != nil || got != want || math.Signbit(float64(got)) != math.Signbit(float64(want)) {
			t.Errorf("%s(%q) = %v, %v; want %v", name, in, got, err, want)
		}
		if err := s.End(); err != nil {
			t.Errorf("%s(%q): %v", name, in, err)
		}
	}
}

func TestInt(t *testing.T) {
	f := numberCase(t, "Int", (*Scanner).Int)
	f("0", 0, nil)
	f("-0", 0, nil)
	f("7", 7, nil)
	f(" -42 ", -42, nil)
	f("9223372036854775807", math.MaxInt64, nil)
	f("-9223372036854775808", math.MinInt64, nil)
	f("9223372036854775808", 0, ErrNumber)
	f("-9223372036854775809", 0, ErrNumber)
	f("18446744073709551616", 0, ErrNumber)
	f("99999999999999999999999", 0, ErrNumber)
	f("1e5", 0, ErrNumber)
	f("1E0", 0, ErrNumber)
	f("1.0", 0, ErrNumber)
	f("-0.0", 0, ErrNumber)
	f("01", 0, ErrSyntax)
	f("-01", 0, ErrSyntax)
	f("-", 0, ErrSyntax)
	f("-a", 0, ErrSyntax)
	f("1.", 0, ErrSyntax)
	f("1e", 0, ErrSyntax)
	f("+1", 0, ErrSyntax)
	f(`"1"`, 0, ErrSyntax)
	f("", 0, ErrSyntax)
}

func TestUint(t *testing.T) {
	f := numberCase(t, "Uint", (*Scanner).Uint)
	f("0", 0, nil)
	f("-0", 0, nil)
	f("12345", 12345, nil)
	f("18446744073709551615", math.MaxUint64, nil)
	f("18446744073709551616", 0, ErrNumber)
	f("-1", 0, ErrNumber)
	f("1e3", 0, ErrNumber)
	f("0.5", 0, ErrNumber)
	f("00", 0, ErrSyntax)
	f("-", 0, ErrSyntax)
	f("true", 0, ErrSyntax)
}

func TestFloat(t *testing.T) {
	f := numberCase(t, "Float", (*Scanner).Float)
	f("0", 0, nil)
	f("-0", math.Copysign(0, -1), nil)
	f("-0.0e0", math.Copysign(0, -1), nil)
	f("1e5", 1e5, nil)
	f("1E+2", 100, nil)
	f("1e-2", 0.01, nil)
	f("-1.5e-3", -0.0015, nil)
	f("0.1", 0.1, nil)
	f("123456789012345678901234567890.5", 123456789012345678901234567890.5, nil)
	f("1e-400", 0, nil)
	f("1e400", 0, ErrNumber)
	f("-1e400", 0, ErrNumber)
	f("1.e1", 0, ErrSyntax)
	f(".1", 0, ErrSyntax)
	f("+1", 0, ErrSyntax)
	f("NaN", 0, ErrSyntax)
	f("Infinity", 0, ErrSyntax)
	f("1.5e", 0, ErrSyntax)
	f("1.5e+", 0, ErrSyntax)
	f("-01.5", 0, ErrSyntax)
	f("null", 0, ErrSyntax)
}

// Float("0x1") reads the 0 and leaves "x1" behind for End to refuse; the
// table above only checks the error, so make the split explicit.
func TestNumberStopsAtDelimiter(t *testing.T) {
	var s Scanner
	s.Reset([]byte("0x1"))
	if v, err := s.Float(); err != nil || v != 0 {
		t.Fatalf("Float = %v, %v", v, err)
	}
	if err := s.End(); err == nil || err.Error() != "invalid JSON: trailing data at offset 1" {
		t.Fatalf("End = %v", err)
	}
}

// Errors about the kind of value, and ErrNumber, consume nothing, so the
// caller can retry with the right method.
func TestMismatch(t *testing.T) {
	f := func(in string, wrong func(*Scanner) error, wantMsg string, right func(*Scanner) error) {
		t.Helper()
		var s Scanner
		s.Reset([]byte(in))
		err := wrong(&s)
		if err == nil || err.Error() != wantMsg {
			t.Fatalf("%q: got %v, want %q", in, err, wantMsg)
		}
		if err := right(&s); err != nil {
			t.Fatalf("%q: retry: %v", in, err)
		}
		if err := s.End(); err != nil {
			t.Fatalf("%q: %v", in, err)
		}
	}
	str := func(s *Scanner) error { _, err := s.Str(); return err }
	integer := func(s *Scanner) error { _, err := s.Int(); return err }
	uinteger := func(s *Scanner) error { _, err := s.Uint(); return err }
	float := func(s *Scanner) error { _, err := s.Float(); return err }
	boolean := func(s *Scanner) error { _, err := s.Bool(); return err }
	skip := (*Scanner).Skip

	f(`{"sensor": "x",  "n": 17}`, func(s *Scanner) error {
		if err := s.EnterObject(); err != nil {
			return err
		}
		for range 2 {
			if _, _, err := s.NextKey(); err != nil {
				return err
			}
			if err := str(s); err != nil {
				return err
			}
		}
		return nil
	}, "invalid JSON: expected string, found number at offset 22", func(s *Scanner) error {
		if n, err := s.Int(); err != nil || n != 17 {
			return fmt.Errorf("Int = %d, %v", n, err)
		}
		_, _, err := s.NextKey()
		return err
	})
	f(`  17`, str, "invalid JSON: expected string, found number at offset 2", integer)
	f(`"x"`, integer, "invalid JSON: expected number, found string at offset 0", str)
	f(`[]`, (*Scanner).EnterObject, "invalid JSON: expected object, found array at offset 0", skip)
	f(`{}`, (*Scanner).EnterArray, "invalid JSON: expected array, found object at offset 0", skip)
	f(`null`, boolean, "invalid JSON: expected boolean, found null at offset 0", skip)
	f(`true`, float, "invalid JSON: expected number, found boolean at offset 0", boolean)
	f(`1.5`, integer, "number out of range: 1.5 is not an integer at offset 0", float)
	f(`-1`, uinteger, "number out of range: -1 does not fit in uint64 at offset 0", integer)
	f(` 9223372036854775808`, integer, "number out of range: 9223372036854775808 does not fit in int64 at offset 1", uinteger)
	f(`1e999`, float, "number out of range: 1e999 overflows float64 at offset 0", skip)
}

func TestNull(t *testing.T) {
	f := func(in string, want bool, wantOffset int) {
		t.Helper()
		var s Scanner
		s.Reset([]byte(in))
		if got := s.Null(); got != want || s.Offset() != wantOffset {
			t.Errorf("Null(%q) = %v at offset %d, want %v at %d", in, got, s.Offset(), want, wantOffset)
		}
	}
	f(`null`, true, 4)
	f(` null `, true, 5)
	f(`nul`, false, 0)
	f(`nullx`, true, 4) // the x is End's business
	f(`"null"`, false, 0)
	f(`0`, false, 0)
	f(` []`, false, 1) // whitespace is skipped, the value is not consumed
	f(``, false, 0)
}

func TestSkip(t *testing.T) {
	f := func(value string) {
		t.Helper()
		doc := []byte(`{"skip": ` + value + ` , "keep": [` + value + `, 7]}`)
		var s Scanner
		s.Reset(doc)
		err := func() error {
			if err := s.EnterObject(); err != nil {
				return err
			}
			if k, ok, err := s.NextKey(); err != nil || !ok || string(k) != "skip" {
				return fmt.Errorf("NextKey = %q, %v, %v", k, ok, err)
			}
			if err := s.Skip(); err != nil {
				return err
			}
			if k, ok, err := s.NextKey(); err != nil || !ok || string(k) != "keep" {
				return fmt.Errorf("NextKey = %q, %v, %v", k, ok, err)
			}
			if err := s.EnterArray(); err != nil {
				return err
			}
			if ok, err := s.NextElem(); err != nil || !ok {
				return fmt.Errorf("NextElem = %v, %v", ok, err)
			}
			if err := s.Skip(); err != nil {
				return err
			}
			if ok, err := s.NextElem(); err != nil || !ok {
				return fmt.Errorf("NextElem = %v, %v", ok, err)
			}
			if n, err := s.Int(); err != nil || n != 7 {
				return fmt.Errorf("Int = %d, %v", n, err)
			}
			if ok, err := s.NextElem(); err != nil || ok {
				return fmt.Errorf("NextElem = %v, %v", ok, err)
			}
			if _, ok, err := s.NextKey(); err != nil || ok {
				return fmt.Errorf("NextKey = %v, %v", ok, err)
			}
			return s.End()
		}()
		if err != nil {
			t.Errorf("skipping %s: %v", value, err)
		}
	}
	f(`1`)
	f(`-1.5e-10`)
	f(`"str \" \\ \u00e9 \ud83d\ude00"`)
	f(`true`)
	f(`false`)
	f(`null`)
	f(`{}`)
	f(`[]`)
	f(`{"a":[1,2,{"b":null,"c":[true,false,"x\n"]}],"d":{},"e":[[[[]]]]}`)
	f(`[[],[[]],{},{"":{"":[]}}, "x", 0 , null ]`)
	f(" {\n\t\"a\" :\r [ 1 , 2 ] \n} ")
}

func TestEnd(t *testing.T) {
	f := func(in string, wantErr string) {
		t.Helper()
		var s Scanner
		s.Reset([]byte(in))
		s.Skip() // End must catch whatever Skip leaves behind, error or not
		err := s.End()
		if (err == nil) != (wantErr == "") || err != nil && (err.Error() != wantErr || !errors.Is(err, ErrSyntax)) {
			t.Errorf("End after %q = %v, want %q", in, err, wantErr)
		}
	}
	f(`1`, "")
	f(" \n\t\r{}\r\n", "")
	f(`1 2`, "invalid JSON: trailing data at offset 2")
	f(`{} x`, "invalid JSON: trailing data at offset 3")
	f(`[]]`, "invalid JSON: trailing data at offset 2")
	f("1\x00", "invalid JSON: trailing data at offset 1")
	f(`"a""b"`, "invalid JSON: trailing data at offset 3")
	f(`truefalse`, "invalid JSON: trailing data at offset 4")
	f(``, "invalid JSON: unexpected end of input at offset 0")
	f(`   `, "invalid JSON: unexpected end of input at offset 3")

	var s Scanner
	s.Reset([]byte(`[1]`))
	s.EnterArray()
	if err := s.End(); !errors.Is(err, ErrSyntax) {
		t.Errorf("End inside an array = %v", err)
	}
}

func TestMisuse(t *testing.T) {
	var s Scanner
	s.Reset([]byte(`"a":1}`))
	if _, _, err := s.NextKey(); !errors.Is(err, ErrSyntax) {
		t.Errorf("NextKey at top level = %v", err)
	}
	if _, err := s.NextElem(); !errors.Is(err, ErrSyntax) {
		t.Errorf("NextElem at top level = %v", err)
	}
}

func TestReset(t *testing.T) {
	s := Scanner{MaxDepth: 1}
	s.Reset([]byte(`[[`))
	s.EnterArray()
	s.Reset([]byte(`[1]`))
	if _, err := walk(&s); err != nil {
		t.Fatalf("after Reset: %v", err)
	}
	if err := s.End(); err != nil {
		t.Fatal(err)
	}
	if s.MaxDepth != 1 {
		t.Errorf("Reset lost MaxDepth")
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{
		Invalid: "invalid", Object: "object", Array: "array", String: "string",
		Number: "number", Bool: "boolean", Null: "null", 42: "Kind(42)",
	} {
		if k.String() != want {
			t.Errorf("%d.String() = %q, want %q", k, k.String(), want)
		}
	}
}

// heartbeatDoc builds a document shaped like a sensor heartbeat, with n
// readings. With escapes, every fifth label needs unescaping.
func heartbeatDoc(n int, escapes bool) []byte {
	var b strings.Builder
	b.WriteString(`{"sensor":"edge-7.syd","seq":1234567,"fw":{"version":"2.4.1","flags":[1,2,3]},"readings":[`)
	for i := range n {
		if i > 0 {
			b.WriteString(",\n  ")
		}
		label := `"port ` + strconv.Itoa(i) + ` uplink"`
		if escapes && i%5 == 0 {
			label = `"port \"` + strconv.Itoa(i) + `\"\tcafé \u00e9 \ud83d\ude00 \\ up\/down"`
		}
		note := `null`
		if i%3 == 0 {
			note = `"checked"`
		}
		fmt.Fprintf(&b, `{"id":%d,"iface":"eth%d","rx_bytes":%d,"delta":%d,"load":%g,"note":%s,"up":%t,"label":%s,"tags":["a","b"]}`,
			i, i%4, int64(i)*1_000_003, -i*7, float64(i)/8, note, i%2 == 0, label)
	}
	b.WriteString(`],"ok":true}`)
	return []byte(b.String())
}

// summary is what decodeHeartbeat extracts; fixed-size so that decoding
// itself allocates nothing.
type summary struct {
	seq, readings, idSum uint64
	rxSum, deltaSum      int64
	loadSum              float64
	nulls, ups           int
	textHash             uint64 // over every string read, so unescaping is checked too
}

func (sum *summary) text(b []byte) {
	for _, c := range b {
		sum.textHash = sum.textHash*31 + uint64(c)
	}
	sum.textHash = sum.textHash*31 + 0xff // separator
}

// decodeHeartbeat reads a document the way the ingest service would:
// typed reads for known keys, Skip for the rest.
func decodeHeartbeat(s *Scanner, doc []byte, sum *summary) error {
	s.Reset(doc)
	if err := s.EnterObject(); err != nil {
		return err
	}
	for {
		key, ok, err := s.NextKey()
		if err != nil {
			return err
		}
		if !ok {
			return s.End()
		}
		switch string(key) {
		case "sensor":
			var v []byte
			v, err = s.Str()
			sum.text(v)
		case "seq":
			sum.seq, err = s.Uint()
		case "readings":
			err = decodeReadings(s, sum)
		default:
			err = s.Skip()
		}
		if err != nil {
			return err
		}
	}
}

func decodeReadings(s *Scanner, sum *summary) error {
	if err := s.EnterArray(); err != nil {
		return err
	}
	for {
		ok, err := s.NextElem()
		if err != nil || !ok {
			return err
		}
		sum.readings++
		if err := s.EnterObject(); err != nil {
			return err
		}
		for {
			key, ok, err := s.NextKey()
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			var v []byte
			var n int64
			var u uint64
			var f float64
			var up bool
			switch string(key) {
			case "id":
				u, err = s.Uint()
				sum.idSum += u
			case "iface", "label":
				v, err = s.Str()
				sum.text(v)
			case "rx_bytes":
				n, err = s.Int()
				sum.rxSum += n
			case "delta":
				n, err = s.Int()
				sum.deltaSum += n
			case "load":
				f, err = s.Float()
				sum.loadSum += f
			case "note":
				if s.Null() {
					sum.nulls++
				} else {
					v, err = s.Str()
					sum.text(v)
				}
			case "up":
				up, err = s.Bool()
				if up {
					sum.ups++
				}
			default:
				err = s.Skip()
			}
			if err != nil {
				return err
			}
		}
	}
}

// stdSummary computes the same summary with encoding/json, as the reference.
func stdSummary(t testing.TB, doc []byte) summary {
	var hb struct {
		Sensor   string
		Seq      uint64
		Readings []struct {
			ID      uint64
			Iface   string
			RxBytes int64 `json:"rx_bytes"`
			Delta   int64
			Load    float64
			Note    *string
			Up      bool
			Label   string
		}
	}
	if err := json.Unmarshal(doc, &hb); err != nil {
		t.Fatal(err)
	}
	sum := summary{seq: hb.Seq}
	sum.text([]byte(hb.Sensor))
	for _, r := range hb.Readings {
		sum.readings++
		sum.idSum += r.ID
		sum.text([]byte(r.Iface))
		sum.rxSum += r.RxBytes
		sum.deltaSum += r.Delta
		sum.loadSum += r.Load
		if r.Note == nil {
			sum.nulls++
		} else {
			sum.text([]byte(*r.Note))
		}
		if r.Up {
			sum.ups++
		}
		sum.text([]byte(r.Label))
	}
	return sum
}

func TestAllocs(t *testing.T) {
	for _, escapes := range []bool{false, true} {
		doc := heartbeatDoc(50, escapes)
		var s Scanner
		var sum summary
		// AllocsPerRun runs the function once before measuring: that
		// warm-up is when an escaped string first grows the scratch buffer.
		allocs := testing.AllocsPerRun(100, func() {
			sum = summary{}
			if err := decodeHeartbeat(&s, doc, &sum); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("escapes=%v: %v allocations per walk, want 0", escapes, allocs)
		}
		if want := stdSummary(t, doc); sum != want {
			t.Errorf("escapes=%v: decoded %+v\nencoding/json %+v", escapes, sum, want)
		}
	}

	// Without escapes not even a fresh Scanner allocates.
	doc := heartbeatDoc(50, false)
	var s Scanner
	allocs := testing.AllocsPerRun(100, func() {
		s = Scanner{}
		var sum summary
		if err := decodeHeartbeat(&s, doc, &sum); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("fresh Scanner: %v allocations per walk, want 0", allocs)
	}
}

func BenchmarkWalk(b *testing.B) {
	perReading := len(heartbeatDoc(100, true))/100 + 1
	doc := heartbeatDoc(100<<10/perReading, true) // about 100 KiB
	var s Scanner
	var sum summary
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		if err := decodeHeartbeat(&s, doc, &sum); err != nil {
			b.Fatal(err)
		}
	}
}

// inspect reports, for a document encoding/json accepts, how deeply it
// nests and whether a string holds a \u escape for half a surrogate pair on
// its own. Those two, and invalid UTF-8, are the only reasons the scanner
// may refuse what encoding/json accepts.
func inspect(doc []byte) (depth int, loneSurrogate bool) {
	hex := func(i int) rune {
		r, err := strconv.ParseUint(string(doc[i:i+4]), 16, 32)
		if err != nil {
			panic(err) // cannot happen in a valid document
		}
		return rune(r)
	}
	cur, inString := 0, false
	for i := 0; i < len(doc); i++ {
		c := doc[i]
		if !inString {
			switch c {
			case '"':
				inString = true
			case '{', '[':
				cur++
				depth = max(depth, cur)
			case '}', ']':
				cur--
			}
			continue
		}
		switch {
		case c == '"':
			inString = false
		case c == '\\' && doc[i+1] != 'u':
			i++
		case c == '\\':
			r := hex(i + 2)
			i += 5
			switch {
			case r >= 0xDC00 && r <= 0xDFFF:
				loneSurrogate = true
			case r >= 0xD800 && r <= 0xDBFF:
				if i+6 < len(doc) && doc[i+1] == '\\' && doc[i+2] == 'u' {
					if lo := hex(i + 3); lo >= 0xDC00 && lo <= 0xDFFF {
						i += 6
						continue
					}
				}
				loneSurrogate = true
			}
		}
	}
	return depth, loneSurrogate
}

func FuzzScanner(f *testing.F) {
	for _, seed := range []string{
		`{"a":[1,2.5e-3,-0,true,false,null,"x\n\u00e9\ud83d\ude00"],"b":{}}`,
		`[[[[[]]]]]`,
		`"\ud800"`,
		`18446744073709551616`,
		`-9223372036854775808`,
		`1e400`,
		` {"k" : [ {} , [ ] , "" ] } `,
		`{"a":1,}`,
		"\"\xff\"",
		string(heartbeatDoc(3, true)),
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		got, err := walkDoc(doc, 0)
		if skipErr := skipDoc(doc, 0); (err == nil) != (skipErr == nil) {
			t.Fatalf("walk says %v but Skip says %v", err, skipErr)
		}
		if err != nil {
			if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrDepth) || !strings.Contains(err.Error(), " at offset ") {
				t.Fatalf("error without ErrSyntax, ErrDepth or an offset: %v", err)
			}
		}
		valid := json.Valid(doc)
		if err == nil {
			if !valid {
				t.Fatalf("scanner accepts what encoding/json refuses")
			}
			var want any
			if json.Unmarshal(doc, &want) == nil && !reflect.DeepEqual(got, want) {
				t.Fatalf("walk = %#v\nencoding/json = %#v", got, want)
			}
			return
		}
		if valid {
			depth, lone := inspect(doc)
			if depth <= defaultMaxDepth && !lone && utf8.Valid(doc) {
				t.Fatalf("scanner refuses what encoding/json accepts: %v", err)
			}
		}
	})
}
