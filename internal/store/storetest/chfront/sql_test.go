package chfront

import (
	"slices"
	"strings"
	"testing"
)

func TestParseInsert(t *testing.T) {
	f := func(sql string, want *insertStmt) {
		t.Helper()
		got, ok := parseInsert(sql)
		if want == nil {
			if ok {
				t.Errorf("%q: parsed as a streamed insert %+v; want a plain statement", sql, got)
			}
			return
		}
		if !ok || got.stmt != want.stmt || got.table != want.table || !slices.Equal(got.columns, want.columns) {
			t.Errorf("%q: %+v, %v; want %+v", sql, got, ok, *want)
		}
	}
	f("INSERT INTO t (a, b) VALUES", &insertStmt{stmt: "INSERT INTO t (a, b)", table: "t", columns: []string{"a", "b"}})
	f("insert into db.t values", &insertStmt{stmt: "insert into db.t", table: "db.t"})
	f("INSERT INTO TABLE `my db`.`t` (`x y`, n.a) FORMAT Native;", &insertStmt{stmt: "INSERT INTO TABLE `my db`.`t` (`x y`, n.a)", table: "`my db`.`t`", columns: []string{"x y", "n.a"}})
	f("  -- lead\nINSERT INTO t /* c */ (a) SETTINGS async_insert = 1, x = 'VALUES' VALUES ", &insertStmt{stmt: "-- lead\nINSERT INTO t /* c */ (a) SETTINGS async_insert = 1, x = 'VALUES'", table: "t", columns: []string{"a"}})
	f("INSERT INTO t", &insertStmt{stmt: "INSERT INTO t", table: "t"})
	f("INSERT INTO t (a) VALUES (1)", nil)
	f("INSERT INTO t (a) FORMAT CSV 1", nil)
	f("INSERT INTO t SELECT 1", nil)
	f("INSERT INTO t (a) WITH 1 AS x SELECT x", nil)
	f("INSERT INTO t (SELECT 1)", nil)
	f("INSERT INTO FUNCTION file('x') VALUES", nil)
	f("INSERT INTO t (a, ) VALUES", nil)
	f("INSERT INTO t VALUES ('unterminated", nil)
	f("SELECT 1", nil)
	f("WITH x AS (SELECT 1) INSERT INTO t VALUES", nil)
}

func TestReturnsRows(t *testing.T) {
	for sql, want := range map[string]bool{
		"SELECT 1": true, "  with x AS (SELECT 1) SELECT * FROM x": true, "((SELECT 1))": true, "/* c */ select 1": true,
		"CREATE TABLE t (x UInt8) ENGINE = Memory": false, "INSERT INTO t SELECT 1": false, "": false, "SHOW TABLES": false,
	} {
		if got := returnsRows(sql); got != want {
			t.Errorf("returnsRows(%q) = %v", sql, got)
		}
	}
}

// unquote follows ClickHouse's readQuoted, which a server applies to every
// query parameter before parsing it as the placeholder's type.
func TestUnquote(t *testing.T) {
	f := func(in, want string, wantErr bool) {
		t.Helper()
		got, err := unquote(in)
		if (err != nil) != wantErr || got != want {
			t.Errorf("unquote(%q) = %q, %v; want %q (error: %v)", in, got, err, want, wantErr)
		}
	}
	f(`'plain'`, "plain", false)
	f(`''`, "", false)
	f(`'it\'s'`, "it's", false)
	f(`'a\\b'`, `a\b`, false)
	f(`'tab\tnl\ncr\rnul\0'`, "tab\tnl\ncr\rnul\x00", false)
	f(`'\x41\x7a'`, "Az", false)
	f(`'100\%'`, `100\%`, false) // an unknown escape keeps its backslash
	f(`'a\Nb'`, "ab", false)
	f(`'q\"\/\='`, `q"/=`, false)
	f(`'end' trailing`, "end", false)
	f(`'ünï'`, "ünï", false)
	f(`42`, "", true)
	f(`'open`, "", true)
	f(`'dangling\`, "", true)
	f(`'\x4'`, "", true)
	f(``, "", true)
}

func TestLexSkipsCommentsAndQuotes(t *testing.T) {
	toks, err := lex("SELECT /* a */ `b c`, 'd''e' -- f\n# g\n, \"h\"")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tk := range toks {
		got = append(got, tk.text)
	}
	if want := "SELECT|`b c`|,|'d''e'|,|\"h\""; strings.Join(got, "|") != want {
		t.Fatalf("tokens %q, want %q", strings.Join(got, "|"), want)
	}
	for _, bad := range []string{"/* open", "'open", "`open", "'a''"} {
		if _, err := lex(bad); err == nil {
			t.Errorf("lex(%q) accepted an unterminated token", bad)
		}
	}
}
