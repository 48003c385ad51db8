package analyst

import "strings"

// Normalize returns q as the audit log records it: comments dropped (--,
// "# " and "#!" to the end of the line, /* */ nested, as the engine's lexer
// reads them) and every run of whitespace outside quotes made one space.
// String literals, quoted identifiers and heredocs are kept byte for byte.
// It needs no engine, so a statement the guard refuses, or the parser
// rejects, is recorded the same way.
func Normalize(q string) string {
	var b strings.Builder
	b.Grow(len(q))
	space := false // a separator is owed before the next token
	emit := func(s string) {
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteString(s)
	}
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			space = true
			i++
		case c == '-' && i+1 < len(q) && q[i+1] == '-', c == '#' && i+1 < len(q) && (q[i+1] == ' ' || q[i+1] == '!'):
			for i < len(q) && q[i] != '\n' {
				i++
			}
			space = true
		case c == '/' && i+1 < len(q) && q[i+1] == '*':
			depth := 0
			for i < len(q) {
				if q[i] == '/' && i+1 < len(q) && q[i+1] == '*' {
					depth++
					i += 2
					continue
				}
				if q[i] == '*' && i+1 < len(q) && q[i+1] == '/' {
					depth--
					i += 2
					if depth == 0 {
						break
					}
					continue
				}
				i++
			}
			space = true
		case c == '\'' || c == '`' || c == '"':
			start := i
			i++
			for i < len(q) {
				if q[i] == '\\' && i+1 < len(q) {
					i += 2
					continue
				}
				if q[i] == c {
					if i+1 < len(q) && q[i+1] == c {
						i += 2
						continue
					}
					i++
					break
				}
				i++
			}
			emit(q[start:i])
		case c == '$' && heredocTag(q[i:]) != "":
			tag := heredocTag(q[i:])
			end := strings.Index(q[i+len(tag):], tag)
			if end < 0 {
				emit(q[i:])
				i = len(q)
				continue
			}
			n := len(tag) + end + len(tag)
			emit(q[i : i+n])
			i += n
		default:
			start := i
			for i < len(q) && !normalizeBreak(q, i) {
				i++
			}
			if i == start {
				i++
			}
			emit(q[start:i])
		}
	}
	return b.String()
}

// normalizeBreak reports whether q[i] starts whitespace, a comment, a quote
// or a heredoc: where Normalize stops copying plain text.
func normalizeBreak(q string, i int) bool {
	switch c := q[i]; c {
	case ' ', '\t', '\n', '\r', '\f', '\v', '\'', '`', '"':
		return true
	case '-':
		return i+1 < len(q) && q[i+1] == '-'
	case '#':
		return i+1 < len(q) && (q[i+1] == ' ' || q[i+1] == '!')
	case '/':
		return i+1 < len(q) && q[i+1] == '*'
	case '$':
		// A heredoc opens only where a word does not go on ($ is a word byte).
		return (i == 0 || !isWordByte(q[i-1])) && heredocTag(q[i:]) != ""
	}
	return false
}
