// Package jsonw appends JSON values to byte slices without reflection, for
// the responses that stream rows straight from columns.
package jsonw

import (
	"slices"
	"unicode/utf8"
)

// AppendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD;
// U+2028 and U+2029 are escaped so the output is safe inside JavaScript.
func AppendString[T string | []byte](b []byte, s T) []byte {
	const hex = "0123456789abcdef"
	if len(s) >= 64<<10 {
		// Room for the worst case (every byte \u00XX) at once: growing by
		// append to a megabyte string's 6 MB allocated about 4 times that
		// (query's TestAnalystResultsInBoundedMemory).
		b = slices.Grow(b, 6*len(s)+2)
	}
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
			i++
		case c == '\n':
			b = append(b, '\\', 'n')
			i++
		case c == '\r':
			b = append(b, '\\', 'r')
			i++
		case c == '\t':
			b = append(b, '\\', 't')
			i++
		case c < 0x20 || c == 0x7f:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			i++
		case c < utf8.RuneSelf:
			b = append(b, c)
			i++
		default:
			r, n := decodeRune(s[i:])
			switch {
			case r == utf8.RuneError && n == 1:
				b = append(b, `\ufffd`...)
			case r == '\u2028' || r == '\u2029':
				b = append(b, `\u202`...)
				b = append(b, hex[r&0xf])
			default:
				b = append(b, s[i:i+n]...)
			}
			i += n
		}
	}
	return append(b, '"')
}

func decodeRune[T string | []byte](s T) (rune, int) {
	switch v := any(s).(type) {
	case string:
		return utf8.DecodeRuneInString(v)
	case []byte:
		return utf8.DecodeRune(v)
	}
	return utf8.RuneError, 1
}

// AppendUUID appends u as a JSON string in the canonical lower-case form,
// as uuid.UUID.String writes it.
func AppendUUID(b []byte, u [16]byte) []byte {
	b = append(b, '"')
	b = AppendUUIDText(b, u)
	return append(b, '"')
}

// AppendUUIDText appends u in the canonical form without quotes, for the
// writers that quote (or do not) by their own rules, as CSV cells do.
func AppendUUIDText(b []byte, u [16]byte) []byte {
	const hex = "0123456789abcdef"
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hex[c>>4], hex[c&0xf])
	}
	return b
}
