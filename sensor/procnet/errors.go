package procnet

import (
	"errors"
	"strconv"
	"strings"
)

// ErrParse is wrapped by every error about malformed table content.
var ErrParse = errors.New("malformed /proc/net line")

// ErrUnavailable is wrapped when the kernel has no /proc/net/sctp (the sctp
// module is not loaded or SCTP is not built).
var ErrUnavailable = errors.New("SCTP not available on this kernel")

// maxLineErrors bounds how many malformed lines a ParseError lists; Count
// still counts them all.
const maxLineErrors = 16

// ParseError reports the malformed lines of one table. The parser skips them
// and still returns every good line.
type ParseError struct {
	File  string      // path of the table, empty for Parse
	Count int         // malformed lines in total
	Lines []LineError // the first maxLineErrors of them, in file order
}

// LineError locates one malformed line. Line is 1-based; the header is line 1.
type LineError struct {
	Line   int
	Field  string // column name as in the header, e.g. "local_address"
	Reason string
}

func (e *ParseError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	b.WriteString(ErrParse.Error())
	b.WriteString(": ")
	b.WriteString(strconv.Itoa(e.Count))
	b.WriteString(" skipped:")
	for i, l := range e.Lines {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(" line ")
		b.WriteString(strconv.Itoa(l.Line))
		b.WriteString(": ")
		if l.Field != "" {
			b.WriteString(l.Field)
			b.WriteString(": ")
		}
		b.WriteString(l.Reason)
	}
	if more := e.Count - len(e.Lines); more > 0 {
		b.WriteString("; and ")
		b.WriteString(strconv.Itoa(more))
		b.WriteString(" more")
	}
	return b.String()
}

func (e *ParseError) Unwrap() error { return ErrParse }

// add records one malformed line, allocating the error on first use so the
// clean path stays allocation-free.
func (e *ParseError) add(file string, line int, bad fieldError) *ParseError {
	if e == nil {
		e = &ParseError{File: file}
	}
	e.Count++
	if len(e.Lines) < maxLineErrors {
		e.Lines = append(e.Lines, LineError{Line: line, Field: bad.field, Reason: bad.reason})
	}
	return e
}

// err returns e as an error, or nil when no line was malformed.
func (e *ParseError) err() error {
	if e == nil {
		return nil
	}
	return e
}

// fieldError says why a line was rejected; the zero value means the line is good.
type fieldError struct{ field, reason string }

func (f fieldError) bad() bool { return f.reason != "" }

// Reasons, as constants so that rejecting a line does not allocate.
const (
	reasonMissing   = "too few fields"
	reasonHex       = "bad hex"
	reasonDecimal   = "bad decimal"
	reasonAddrLen   = "wrong address length"
	reasonPortLen   = "port is not 4 hex digits"
	reasonState     = "unknown state"
	reasonRange     = "out of range"
	reasonAddress   = "bad address"
	reasonSeparator = "missing <-> separator"
)
