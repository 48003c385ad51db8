package chfront

import (
	"errors"
	"strings"
)

// token is a piece of SQL text the front needs to look at: a word (keyword
// or identifier), a quoted identifier, a string literal, or one punctuation
// character. Comments and spaces are dropped.
type token struct {
	text     string
	pos, end int
	ident    bool // a word or a quoted identifier
	str      bool // a string literal
}

// is reports whether the token is the keyword kw (case-insensitive).
func (t token) is(kw string) bool { return t.ident && !t.quoted() && strings.EqualFold(t.text, kw) }

func (t token) quoted() bool { return t.text != "" && (t.text[0] == '`' || t.text[0] == '"') }

// name is the identifier without its quotes.
func (t token) name() string {
	if t.quoted() && len(t.text) >= 2 {
		return unescapeIdent(t.text[1 : len(t.text)-1])
	}
	return t.text
}

var errUnterminated = errors.New("unterminated quote or comment")

// lex splits sql into tokens. Numbers and operators come out as single
// punctuation characters or words; the front never needs them whole.
func lex(sql string) ([]token, error) {
	var out []token
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case strings.HasPrefix(sql[i:], "--") || c == '#':
			n := strings.IndexByte(sql[i:], '\n')
			if n < 0 {
				return out, nil
			}
			i += n + 1
		case strings.HasPrefix(sql[i:], "/*"):
			n := strings.Index(sql[i+2:], "*/")
			if n < 0 {
				return out, errUnterminated
			}
			i += n + 4
		case c == '\'' || c == '`' || c == '"':
			end := skipQuoted(sql, i)
			for end+1 < len(sql) && sql[end+1] == c { // SQL style: a doubled quote stands for one
				end = skipQuoted(sql, end+1)
			}
			if end >= len(sql) {
				return out, errUnterminated
			}
			out = append(out, token{text: sql[i : end+1], pos: i, end: end + 1, ident: c != '\'', str: c == '\''})
			i = end + 1
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80:
			j := i + 1
			for j < len(sql) {
				d := sql[j]
				if d == '_' || d == '$' || d >= 'a' && d <= 'z' || d >= 'A' && d <= 'Z' || d >= '0' && d <= '9' || d >= 0x80 {
					j++
					continue
				}
				break
			}
			out = append(out, token{text: sql[i:j], pos: i, end: j, ident: c < '0' || c > '9'})
			i = j
		default:
			out = append(out, token{text: sql[i : i+1], pos: i, end: i + 1})
			i++
		}
	}
	return out, nil
}

// insertStmt is an INSERT whose rows the client sends as Data blocks.
type insertStmt struct {
	stmt    string   // the statement without its VALUES or FORMAT clause, for the engine
	table   string   // the table as written (db.table, quoted or not)
	columns []string // the listed columns; nil for every insertable one
}

// parseInsert recognises INSERT INTO [TABLE] t [(c, ...)] [SETTINGS ...]
// [VALUES | FORMAT f] with nothing after it: the statements a native-protocol
// client sends before streaming blocks. Any other INSERT (INSERT ... SELECT,
// inline VALUES, INSERT INTO FUNCTION) runs as a plain statement.
func parseInsert(sql string) (insertStmt, bool) {
	toks, err := lex(sql)
	if err != nil || len(toks) < 3 || !toks[0].is("INSERT") || !toks[1].is("INTO") {
		return insertStmt{}, false
	}
	i := 2
	if toks[i].is("TABLE") {
		i++
	}
	if i >= len(toks) || !toks[i].ident || toks[i].is("FUNCTION") {
		return insertStmt{}, false
	}
	tableStart := toks[i].pos
	tableEnd := toks[i].end
	i++
	if i+1 < len(toks) && toks[i].text == "." && toks[i+1].ident {
		tableEnd = toks[i+1].end
		i += 2
	}
	ins := insertStmt{table: sql[tableStart:tableEnd]}
	if i < len(toks) && toks[i].text == "(" {
		i++
		for {
			if i >= len(toks) || !toks[i].ident {
				return insertStmt{}, false
			}
			col := toks[i].name()
			i++
			for i+1 < len(toks) && toks[i].text == "." && toks[i+1].ident { // nested n.a
				col += "." + toks[i+1].name()
				i += 2
			}
			ins.columns = append(ins.columns, col)
			if i >= len(toks) {
				return insertStmt{}, false
			}
			if toks[i].text == ")" {
				i++
				break
			}
			if toks[i].text != "," {
				return insertStmt{}, false
			}
			i++
		}
	}
	dataAt := len(sql)
	if i < len(toks) && toks[i].is("SETTINGS") {
		for i < len(toks) && !toks[i].is("VALUES") && !toks[i].is("FORMAT") && toks[i].text != ";" {
			i++
		}
	}
	switch {
	case i >= len(toks) || toks[i].text == ";":
		if i < len(toks) {
			dataAt = toks[i].pos
		}
	case toks[i].is("VALUES"):
		dataAt = toks[i].pos
		i++
	case toks[i].is("FORMAT") && i+1 < len(toks) && toks[i+1].ident:
		dataAt = toks[i].pos
		i += 2
	default:
		return insertStmt{}, false // SELECT, WITH, (SELECT ...), or something the front does not know
	}
	if i < len(toks) && toks[i].text == ";" {
		i++
	}
	if i != len(toks) {
		return insertStmt{}, false // rows written inline after VALUES or FORMAT
	}
	ins.stmt = strings.TrimSpace(sql[:dataAt])
	return ins, true
}

// returnsRows reports whether the statement is a query (SELECT or WITH), so
// a result header is due even when no row comes back.
func returnsRows(sql string) bool {
	toks, _ := lex(sql)
	for _, t := range toks {
		if t.text == "(" {
			continue
		}
		return t.is("SELECT") || t.is("WITH")
	}
	return false
}

var errNotQuoted = errors.New("expected a quoted string")

// unquote reads a quoted string literal as ClickHouse's readQuoted does: it
// is how a server takes query parameters off the native protocol. The
// result is still in escaped text form; the engine parses that as the
// placeholder's type.
func unquote(v string) (string, error) {
	if len(v) < 2 || v[0] != '\'' {
		return "", errNotQuoted
	}
	var b strings.Builder
	for i := 1; i < len(v); i++ {
		c := v[i]
		switch c {
		case '\'':
			return b.String(), nil // what follows the closing quote is ignored, as by readQuoted
		case '\\':
			i++
			if i >= len(v) {
				return "", errUnterminated
			}
			n := unescape(&b, v[i:])
			if n == 0 {
				return "", errUnterminated
			}
			i += n - 1
		default:
			b.WriteByte(c)
		}
	}
	return "", errUnterminated
}

// unescape writes what an escape sequence stands for, as ClickHouse's
// parseComplexEscapeSequence does; s starts after the backslash. It returns
// how many bytes of s it used, or 0 for a truncated \x sequence.
func unescape(b *strings.Builder, s string) int {
	var d byte
	switch c := s[0]; c {
	case 'x':
		if len(s) < 3 {
			return 0
		}
		b.WriteByte(unhex(s[1])<<4 | unhex(s[2]))
		return 3
	case 'N': // \N, NULL in text formats, reads as nothing
		return 1
	case 'a':
		d = '\a'
	case 'b':
		d = '\b'
	case 'e':
		d = 0x1b
	case 'f':
		d = '\f'
	case 'n':
		d = '\n'
	case 'r':
		d = '\r'
	case 't':
		d = '\t'
	case 'v':
		d = '\v'
	case '0':
		d = 0
	default:
		d = c
	}
	// An unknown escape keeps its backslash ('100\%' stays 100\%), as LIKE
	// patterns and regular expressions want.
	if d >= 0x20 && !strings.ContainsRune(`\'"`+"`/=", rune(d)) {
		b.WriteByte('\\')
	}
	b.WriteByte(d)
	return 1
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// unescapeIdent undoes the backslash escapes of a quoted identifier.
func unescapeIdent(s string) string {
	if !strings.ContainsRune(s, '\\') {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			if n := unescape(&b, s[i+1:]); n > 0 {
				i += n
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// quoteIdent returns name as a backquoted identifier.
func quoteIdent(name string) string {
	return "`" + strings.NewReplacer(`\`, `\\`, "`", "\\`").Replace(name) + "`"
}
