// Package jsonscan walks one in-memory JSON document without allocating.
//
// The ingest service decodes heartbeats straight into column buffers, so it
// never wants a tree of interface values: it pulls one token at a time and
// decides itself what to keep. A typical decoder looks like
//
//	s.Reset(doc)
//	if err := s.EnterObject(); err != nil { ... }
//	for {
//		key, ok, err := s.NextKey()
//		if err != nil { ... }
//		if !ok {
//			break
//		}
//		switch string(key) {
//		case "seq":
//			seq, err = s.Int()
//		default:
//			err = s.Skip()
//		}
//		...
//	}
//	if err := s.End(); err != nil { ... }
//
// The scanner checks the grammar (RFC 8259, strictly) as far as the caller
// walks it; a document is only known to be valid once End returns nil.
package jsonscan

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

var (
	// ErrSyntax is wrapped by every error about malformed input or a value
	// of the wrong kind; the message carries the byte offset.
	ErrSyntax = errors.New("invalid JSON")
	// ErrDepth is wrapped when objects and arrays nest deeper than MaxDepth.
	ErrDepth = errors.New("JSON nested too deeply")
	// ErrNumber is wrapped when a well-formed number does not fit the type
	// asked for.
	ErrNumber = errors.New("number out of range")
)

// Kind is the type of a JSON value.
type Kind uint8

const (
	Invalid Kind = iota
	Object
	Array
	String
	Number
	Bool
	Null
)

var kindNames = [...]string{"invalid", "object", "array", "string", "number", "boolean", "null"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

const defaultMaxDepth = 64

// Scanner reads one JSON document. Reset it to reuse it; it keeps its
// scratch buffer, so a long-lived Scanner stops allocating once the buffer
// has grown to the longest escaped string it has seen.
//
// Errors about the wrong kind of value, and ErrNumber, consume nothing: the
// caller may retry with another method (Int, then Float, say). After any
// other error the position is unspecified and the document should be
// abandoned.
type Scanner struct {
	// MaxDepth bounds the nesting of objects and arrays; 0 means 64.
	// The bound keeps Skip's recursion, and a hostile sensor, in check.
	MaxDepth int

	doc   []byte
	pos   int  // next unread byte
	depth int  // open objects and arrays
	first bool // the innermost open container has no members yet

	// scratch holds strings that had escapes, which cannot alias doc.
	scratch []byte
}

// Reset starts reading doc from the beginning. The Scanner keeps doc (and
// hands out slices of it) until the next Reset.
func (s *Scanner) Reset(doc []byte) {
	*s = Scanner{MaxDepth: s.MaxDepth, doc: doc, scratch: s.scratch[:0]}
}

// Offset returns the byte offset of the next unread byte.
func (s *Scanner) Offset() int { return s.pos }

// Peek returns the kind of the next value without consuming it. It skips
// whitespace, so afterwards Offset points at the value.
func (s *Scanner) Peek() (Kind, error) {
	c, err := s.nextByte()
	if err != nil {
		return Invalid, err
	}
	switch c {
	case '{':
		return Object, nil
	case '[':
		return Array, nil
	case '"':
		return String, nil
	case 't':
		return s.literal(Bool, "true")
	case 'f':
		return s.literal(Bool, "false")
	case 'n':
		return s.literal(Null, "null")
	}
	if c == '-' || isDigit(c) {
		return Number, nil
	}
	return Invalid, s.errAt(s.pos, "expected value, found %q", c)
}

// literal checks the whole keyword up front, so that Peek never promises a
// value that Bool, Null or Skip would then refuse.
func (s *Scanner) literal(k Kind, word string) (Kind, error) {
	rest := s.doc[s.pos:]
	if len(rest) < len(word) || string(rest[:len(word)]) != word {
		return Invalid, s.errAt(s.pos, "invalid literal, expected %q", word)
	}
	return k, nil
}

// EnterObject consumes the '{' that opens an object.
func (s *Scanner) EnterObject() error { return s.enter(Object) }

// EnterArray consumes the '[' that opens an array.
func (s *Scanner) EnterArray() error { return s.enter(Array) }

func (s *Scanner) enter(k Kind) error {
	if err := s.expect(k); err != nil {
		return err
	}
	limit := s.MaxDepth
	if limit <= 0 {
		limit = defaultMaxDepth
	}
	if s.depth >= limit {
		return fmt.Errorf("%w: more than %d levels at offset %d", ErrDepth, limit, s.pos)
	}
	s.pos++
	s.depth++
	s.first = true
	return nil
}

// NextKey reads the key of the next object member and the ':' after it,
// leaving the scanner at the member's value, which the caller must read or
// Skip before calling NextKey again. At the end of the object it consumes
// the '}' and returns ok == false.
//
// The key is unescaped; it is valid only until the next call on the Scanner.
func (s *Scanner) NextKey() (key []byte, ok bool, err error) {
	if s.depth == 0 {
		return nil, false, s.errAt(s.pos, "NextKey called outside an object")
	}
	c, err := s.nextByte()
	if err != nil {
		return nil, false, err
	}
	switch {
	case c == '}':
		s.leave()
		return nil, false, nil
	case !s.first:
		if c != ',' {
			return nil, false, s.errAt(s.pos, "expected ',' or '}', found %q", c)
		}
		s.pos++
		if c, err = s.nextByte(); err != nil {
			return nil, false, err
		}
	}
	// Checked here rather than by str so that a trailing comma reads as
	// such: "expected string key, found '}'".
	if c != '"' {
		return nil, false, s.errAt(s.pos, "expected string key, found %q", c)
	}
	if key, err = s.str(); err != nil {
		return nil, false, err
	}
	if c, err = s.nextByte(); err != nil {
		return nil, false, err
	}
	if c != ':' {
		return nil, false, s.errAt(s.pos, "expected ':' after object key, found %q", c)
	}
	s.pos++
	s.first = false
	return key, true, nil
}

// NextElem reports whether another array element follows, and if so leaves
// the scanner at it. At the end of the array it consumes the ']' and returns
// false.
func (s *Scanner) NextElem() (ok bool, err error) {
	if s.depth == 0 {
		return false, s.errAt(s.pos, "NextElem called outside an array")
	}
	c, err := s.nextByte()
	if err != nil {
		return false, err
	}
	switch {
	case c == ']':
		s.leave()
		return false, nil
	case !s.first:
		if c != ',' {
			return false, s.errAt(s.pos, "expected ',' or ']', found %q", c)
		}
		s.pos++
	}
	s.first = false
	// Make sure a value really follows, so that "[1,]" fails here, where
	// the caller can still tell which element was wrong.
	if _, err := s.Peek(); err != nil {
		return false, err
	}
	return true, nil
}

// leave consumes the closing bracket. The enclosing container has just had
// this one as a member, so it is no longer at its first member.
func (s *Scanner) leave() {
	s.pos++
	s.depth--
	s.first = false
}

// Str reads a string value and returns it unescaped. The result aliases the
// document when the string has no escapes and the scratch buffer otherwise;
// either way it is valid only until the next call on the Scanner.
func (s *Scanner) Str() ([]byte, error) {
	if err := s.expect(String); err != nil {
		return nil, err
	}
	return s.str()
}

// str reads the string that starts at s.pos. Most strings have no escapes
// and are returned as a slice of the document; the first backslash switches
// to copying into scratch.
func (s *Scanner) str() ([]byte, error) {
	start := s.pos + 1
	i, err := s.plain(start)
	if err != nil {
		return nil, err
	}
	if s.doc[i] == '"' {
		s.pos = i + 1
		return s.doc[start:i], nil
	}
	buf := append(s.scratch[:0], s.doc[start:i]...)
	for s.doc[i] == '\\' {
		r, n, err := s.escape(i)
		if err != nil {
			return nil, err
		}
		buf = utf8.AppendRune(buf, r)
		i += n
		j, err := s.plain(i)
		if err != nil {
			return nil, err
		}
		buf = append(buf, s.doc[i:j]...)
		i = j
	}
	s.scratch = buf // keep the grown buffer for the next string
	s.pos = i + 1
	return buf, nil
}

// plain scans string bytes that need no unescaping, starting at i, and
// returns the index of the closing quote or of the next backslash. It is
// where control characters and invalid UTF-8 are rejected.
func (s *Scanner) plain(i int) (int, error) {
	for i < len(s.doc) {
		c := s.doc[i]
		switch {
		case c == '"' || c == '\\':
			return i, nil
		case c < 0x20:
			return i, s.errAt(i, "control character %q in string", c)
		case c < utf8.RuneSelf:
			i++
		default:
			r, n := utf8.DecodeRune(s.doc[i:])
			if r == utf8.RuneError && n == 1 {
				return i, s.errAt(i, "invalid UTF-8 in string")
			}
			i += n
		}
	}
	return i, s.errAt(i, "unexpected end of input in string")
}

// escape decodes the escape sequence whose backslash is at i and returns the
// rune and the sequence's length. A \u escape for half a surrogate pair must
// be followed by the other half: a lone half has no UTF-8 encoding, and the
// heartbeat spec promises UTF-8.
func (s *Scanner) escape(i int) (rune, int, error) {
	if i+1 >= len(s.doc) {
		return 0, 0, s.errAt(i+1, "unexpected end of input in string")
	}
	switch c := s.doc[i+1]; c {
	case '"', '\\', '/':
		return rune(c), 2, nil
	case 'b':
		return '\b', 2, nil
	case 'f':
		return '\f', 2, nil
	case 'n':
		return '\n', 2, nil
	case 'r':
		return '\r', 2, nil
	case 't':
		return '\t', 2, nil
	case 'u':
		r, err := s.hex4(i)
		if err != nil || !utf16.IsSurrogate(r) {
			return r, 6, err
		}
		if r >= 0xDC00 {
			return 0, 0, s.errAt(i, "lone low surrogate \\u%04X in string", r)
		}
		if i+7 < len(s.doc) && s.doc[i+6] == '\\' && s.doc[i+7] == 'u' {
			lo, err := s.hex4(i + 6)
			if err != nil {
				return 0, 0, err
			}
			if 0xDC00 <= lo && lo <= 0xDFFF {
				return utf16.DecodeRune(r, lo), 12, nil
			}
		}
		return 0, 0, s.errAt(i, "lone high surrogate \\u%04X in string", r)
	default:
		return 0, 0, s.errAt(i, "invalid escape %q in string", c)
	}
}

// hex4 decodes the four hex digits of the \u escape whose backslash is at i.
func (s *Scanner) hex4(i int) (rune, error) {
	if i+6 > len(s.doc) {
		return 0, s.errAt(len(s.doc), "unexpected end of input in string")
	}
	var r rune
	for _, c := range s.doc[i+2 : i+6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, s.errAt(i, "invalid \\u escape in string")
		}
		r = r<<4 | rune(c)
	}
	return r, nil
}

// Int reads an integer that fits in an int64. A fraction or exponent is
// ErrNumber even when the value is whole (1e5, 2.0): a column of integers
// should not silently accept what a sensor meant as a float.
func (s *Scanner) Int() (int64, error) {
	mag, neg, err := s.integer(math.MaxInt64, math.MaxInt64+1, "int64")
	if neg {
		// Wraps to math.MinInt64 for a magnitude of 1<<63, as intended.
		return -int64(mag), err
	}
	return int64(mag), err
}

// Uint reads a non-negative integer that fits in a uint64. "-0" is zero and
// is accepted.
func (s *Scanner) Uint() (uint64, error) {
	mag, _, err := s.integer(math.MaxUint64, 0, "uint64")
	return mag, err
}

// integer reads an integer number as a sign and magnitude, refusing
// magnitudes above posLimit (or negLimit when negative). It consumes the
// number only on success.
func (s *Scanner) integer(posLimit, negLimit uint64, typ string) (mag uint64, neg bool, err error) {
	tok, isInt, err := s.number()
	if err != nil {
		return 0, false, err
	}
	if !isInt {
		return 0, false, fmt.Errorf("%w: %s is not an integer at offset %d", ErrNumber, tok, s.pos)
	}
	digits, limit := tok, posLimit
	if tok[0] == '-' {
		neg, digits, limit = true, tok[1:], negLimit
	}
	for _, c := range digits {
		d := uint64(c - '0')
		if d > limit || mag > (limit-d)/10 { // mag*10+d > limit, without overflowing
			return 0, false, fmt.Errorf("%w: %s does not fit in %s at offset %d", ErrNumber, tok, typ, s.pos)
		}
		mag = mag*10 + d
	}
	s.pos += len(tok)
	return mag, neg, nil
}

// Float reads any number as a float64; a magnitude too large for float64 is
// ErrNumber, one too small rounds to zero.
func (s *Scanner) Float() (float64, error) {
	tok, _, err := s.number()
	if err != nil {
		return 0, err
	}
	// ParseFloat only reads its argument, and its error is dropped here, so
	// viewing the token as a string without copying is safe. A plain
	// string(tok) would allocate for tokens over 32 bytes.
	f, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(tok), len(tok)), 64)
	if err != nil {
		// number has checked the syntax, so this can only be a range error.
		return 0, fmt.Errorf("%w: %s overflows float64 at offset %d", ErrNumber, tok, s.pos)
	}
	s.pos += len(tok)
	return f, nil
}

// number returns the number token at the next value, and whether it is
// written as an integer, without consuming it, so that a caller refused by
// Int can still try Float.
func (s *Scanner) number() (tok []byte, isInt bool, err error) {
	if err := s.expect(Number); err != nil {
		return nil, false, err
	}
	d, i := s.doc, s.pos
	if d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
		if i < len(d) && isDigit(d[i]) {
			return nil, false, s.errAt(i-1, "leading zero in number")
		}
	case i < len(d) && isDigit(d[i]):
		i = digitsEnd(d, i)
	default:
		return nil, false, s.digitErr(i)
	}
	isInt = true
	if i < len(d) && d[i] == '.' {
		isInt = false
		i++
		if j := digitsEnd(d, i); j > i {
			i = j
		} else {
			return nil, false, s.digitErr(i)
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		isInt = false
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if j := digitsEnd(d, i); j > i {
			i = j
		} else {
			return nil, false, s.digitErr(i)
		}
	}
	return d[s.pos:i], isInt, nil
}

func (s *Scanner) digitErr(i int) error {
	if i >= len(s.doc) {
		return s.errAt(i, "unexpected end of input in number")
	}
	return s.errAt(i, "expected digit, found %q", s.doc[i])
}

// Bool reads true or false.
func (s *Scanner) Bool() (bool, error) {
	if err := s.expect(Bool); err != nil {
		return false, err
	}
	if s.doc[s.pos] == 't' {
		s.pos += len("true")
		return true, nil
	}
	s.pos += len("false")
	return false, nil
}

// Null consumes a null and reports true if one comes next; otherwise it
// consumes nothing (and reports any syntax error through the next call).
func (s *Scanner) Null() bool {
	if k, err := s.Peek(); err != nil || k != Null {
		return false
	}
	s.pos += len("null")
	return true
}

// Skip consumes one value of any kind, checking it as thoroughly as reading
// it would. Nested values count against MaxDepth, which also bounds the
// recursion.
func (s *Scanner) Skip() error {
	k, err := s.Peek()
	if err != nil {
		return err
	}
	switch k {
	case Object:
		if err := s.EnterObject(); err != nil {
			return err
		}
		for {
			_, ok, err := s.NextKey()
			if err != nil || !ok {
				return err
			}
			if err := s.Skip(); err != nil {
				return err
			}
		}
	case Array:
		if err := s.EnterArray(); err != nil {
			return err
		}
		for {
			ok, err := s.NextElem()
			if err != nil || !ok {
				return err
			}
			if err := s.Skip(); err != nil {
				return err
			}
		}
	case String:
		_, err = s.str()
	case Number:
		var tok []byte
		if tok, _, err = s.number(); err == nil {
			s.pos += len(tok)
		}
	case Bool:
		_, err = s.Bool()
	case Null:
		s.Null()
	}
	return err
}

// End checks that the document is complete: every object and array the
// caller entered has been left, and only whitespace remains.
func (s *Scanner) End() error {
	s.pos = spaceEnd(s.doc, s.pos)
	switch {
	case s.depth > 0:
		return s.errAt(s.pos, "End called with %d objects or arrays still open", s.depth)
	case s.pos < len(s.doc):
		return s.errAt(s.pos, "trailing data")
	case spaceEnd(s.doc, 0) == len(s.doc):
		// Nothing but whitespace was ever there: no value at all.
		return s.errAt(s.pos, "unexpected end of input")
	}
	return nil
}

// expect skips whitespace and checks that the next value is of kind want.
// It consumes nothing, so a mismatch can be retried.
func (s *Scanner) expect(want Kind) error {
	k, err := s.Peek()
	if err == nil && k != want {
		err = s.errAt(s.pos, "expected %v, found %v", want, k)
	}
	return err
}

// nextByte skips whitespace and returns the byte there without consuming it.
func (s *Scanner) nextByte() (byte, error) {
	s.pos = spaceEnd(s.doc, s.pos)
	if s.pos >= len(s.doc) {
		return 0, s.errAt(s.pos, "unexpected end of input")
	}
	return s.doc[s.pos], nil
}

// errAt builds a syntax error. Errors may allocate; only this path does.
func (s *Scanner) errAt(off int, format string, args ...any) error {
	return fmt.Errorf("%w: %s at offset %d", ErrSyntax, fmt.Sprintf(format, args...), off)
}

// spaceEnd returns the index of the first non-whitespace byte at or after i.
func spaceEnd(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// digitsEnd returns the index of the first non-digit at or after i.
func digitsEnd(b []byte, i int) int {
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	return i
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
