package analyst

import (
	"strings"
	"testing"
)

// TestCheckCanonical drives the pure-Go half of the guard with canonical
// forms as the engine's formatQuery writes them.
func TestCheckCanonical(t *testing.T) {
	denied := map[string]bool{"file": true, "url": true, "remote": true, "catboostevaluate": true, "getserversetting": true, "getmacro": true}
	for _, c := range []struct{ canonical, refusal string }{
		{"SELECT 1", ""},
		{"WITH\n    1 AS x\nSELECT x", ""},
		{"SHOW TABLES", ""},
		{"DESCRIBE TABLE events", ""},
		{"EXISTS TABLE events", ""},
		{"EXPLAIN header = 1, actions = 1\nSELECT 1", ""},
		{"EXPLAIN PIPELINE graph = 1\nSELECT *\nFROM numbers(3)", ""},
		{"SELECT 'file(1)', $$url('x')$$", ""},
		{"SELECT `file`\nFROM t", ""},
		{"SELECT format\nFROM t", ""},
		{"SELECT\n    a,\n    format AS f\nFROM t", ""},
		{"SELECT\n    1 AS into,\n    2 AS outfile", ""},
		{"SELECT *\nFROM merge('db', '^t')", ""},
		{"SELECT *\nFROM merge('db', '^(flows|events)$')", ""},
		{"SELECT *\nFROM merge('db', '^cred')", "merge() is allowed only"},
		{"SELECT *\nFROM merge('db', '.*')", "merge() is allowed only"},
		{"SELECT *\nFROM merge('db', 'query')", ""},
		{"SELECT *\nFROM merge('system', 'query')", "merge() is allowed only"},
		{"SELECT *\nFROM merge(currentDatabase(), 'log')", "merge() is allowed only"},
		{"SELECT *\nFROM merge(currentDatabase(), '^flows$')", ""},
		{"SELECT *\nFROM merge(db(), 'query')", "merge() is allowed only"},
		{"SELECT *\nFROM merge('db', concat('cr', 'ed'))", "merge() is allowed only"},
		{"SELECT *\nFROM merge('db', '[')", "merge() is allowed only"},
		{"SELECT *\nFROM merge(REGEXP('.*'))", "merge() is allowed only"},
		{"SELECT *\nFROM db.credentials", "credentials may not be read"},
		{"SELECT *\nFROM `db.audit_log`", "audit_log may not be read"},
		{"SELECT query\nFROM system.processes", "system.processes may not be read"},
		{"SELECT count() AS processes\nFROM t", ""},
		{"SELECT *\nFROM mergeTreeIndex('db', 'credentials')", "credentials may not be read"},
		{"SELECT sum(x) AS `file`\nFROM numbers(3)", ""},
		{"SELECT *\nFROM mergeTreeIndex(currentDatabase(), 'events')", ""},
		{"SELECT *\nFROM mergeTreeIndex('db', events, with_marks = true)", ""},
		{"SELECT *\nFROM mergeTreeIndex(currentDatabase(), concat('cred', 'entials'))", "mergeTreeIndex() is allowed only"},
		{"SELECT *\nFROM mergeTreeIndex(currentDatabase(), 'cred' || 'entials')", "mergeTreeIndex() is allowed only"},
		{"SELECT *\nFROM mergeTreeIndex(db(), 'events')", "mergeTreeIndex() is allowed only"},
		{"SELECT *\nFROM mergeTreeAnalyzeIndexes(currentDatabase(), events, key = 1)", ""},
		{"SELECT *\nFROM loop(numbers(3))", ""},
		{"SELECT *\nFROM loop(db.events)", ""},
		{"SELECT *\nFROM loop(concat('a', 'b'))", "loop() is allowed only"},
		{"SELECT *\nFROM loop('system', 'errors')", "system.errors may not be read"},
		{"SELECT *\nFROM mergeTreeIndex(system, query_metric_log)", "system.query_metric_log may not be read"},
		{"SELECT name\nFROM system.tables", ""},
		{"SELECT *\nFROM system.errors", "system.errors may not be read"},
		{"SELECT *\nFROM `system.settings`", "system.settings may not be read"},
		{"SELECT count() AS errors\nFROM t", ""},
		{"SHOW COLUMNS FROM events", ""},
		{"SHOW EXTENDED FULL COLUMNS FROM events", ""},
		{"SHOW COLUMNS FROM errors FROM system", "system.errors may not be read"},
		{"SHOW COLUMNS FROM tables FROM system", ""},
		{"SHOW PROCESSLIST", "SHOW PROCESSLIST statements are not allowed"},
		{"SHOW CREATE DICTIONARY d", "SHOW CREATE statements are not allowed"},
		{"SHOW", "SHOW statements are not allowed"},
		{"EXPLAIN AST\nSHOW SETTINGS LIKE 'x'", "SHOW SETTINGS statements are not allowed"},
		{"EXPLAIN AST\nSHOW TABLES", ""},
		{"SELECT getServerSetting('x')", "getServerSetting() is not allowed: it reads the server's settings"},
		{"SELECT 1 APPLY getMacro", "getMacro() is not allowed"},
		{"INSERT INTO t SELECT 1", "INSERT statements are not allowed"},
		{"ALTER TABLE t\n    (DELETE WHERE 1)", "ALTER TABLE statements are not allowed"},
		{"KILL QUERY WHERE 1 ASYNC", "KILL QUERY statements are not allowed"},
		{"(SELECT 1)", "starts with \"(\""},
		{"SELECT *\nFROM file('x')", "file() is not allowed"},
		{"SELECT *\nFROM FILE('x')", "FILE() is not allowed"},
		{"SELECT *\nFROM `db.file`(1)", "file() is not allowed"},
		{"SELECT *\nFROM \"url\" ('x')", "url() is not allowed"},
		{"SELECT * APPLY file\nFROM t", "file() is not allowed"},
		{"SELECT * APPLY (file)\nFROM t", "file() is not allowed"},
		{"SELECT COLUMNS('a') APPLY x -> catboostEvaluate(x)\nFROM t", "catboostEvaluate() is not allowed"},
		{"SELECT 1\nIN (\n    SELECT *\n    FROM remote('h', system.one)\n)", "remote() is not allowed"},
		{"SELECT 1\nINTO OUTFILE 'x'", "INTO OUTFILE is not allowed"},
		{"SELECT 1\nFORMAT JSON", "FORMAT clause is not allowed"},
		{"SELECT 1\nFORMAT `JSON`", "FORMAT clause is not allowed"},
		{"SELECT 1\nPARALLEL WITH\nDROP TABLE t", "PARALLEL WITH is not allowed"},
		{"EXPLAIN AST\nDROP TABLE t", "EXPLAIN is allowed only for"},
		{"EXPLAIN AST\nEXPLAIN SELECT 1", "EXPLAIN is allowed only for"},
		{"EXPLAIN AST", "EXPLAIN is allowed only for"},
		{"EXPLAIN TABLE OVERRIDE\nmysql('a')", "EXPLAIN is allowed only for"},
		{"EXPLAIN (x)\nSELECT 1", "EXPLAIN options"},
		{"", "empty"},
	} {
		verb, err := check(c.canonical, denied)
		switch {
		case c.refusal == "" && err != nil:
			t.Errorf("%q refused: %v", c.canonical, err)
		case c.refusal == "" && !allowedVerbs[verb]:
			t.Errorf("%q: verb %q", c.canonical, verb)
		case c.refusal != "" && (err == nil || !strings.Contains(err.Error(), c.refusal)):
			t.Errorf("%q: got %v, want a refusal saying %q", c.canonical, err, c.refusal)
		}
	}
}

func TestLex(t *testing.T) {
	toks := lex("SELECT 'a\\'b''c', `x``y`, \"q\" -- c\n/* d\n */ $t$body\n$t$ 1.5e3 f(")
	var got []string
	for _, k := range toks {
		got = append(got, k.text)
	}
	want := []string{"SELECT", "a'b'c", ",", "x`y", ",", "q", "body\n", "1.5e3", "f", "("}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("lex = %q, want %q", got, want)
	}
	if toks[len(toks)-1].line != 3 {
		t.Errorf("last token on line %d, want 3", toks[len(toks)-1].line)
	}
}

func TestParserMessage(t *testing.T) {
	in := "Code: 62. DB::Exception: Syntax error (Multi-statements are not allowed): failed at position 9 (end of query): ; DROP TABLE ev. : In scope SELECT formatQuery('SELECT 1; DROP TABLE ev') AS canonical. (SYNTAX_ERROR)"
	want := "Code: 62. DB::Exception: Syntax error (Multi-statements are not allowed): failed at position 9 (end of query): ; DROP TABLE ev. (SYNTAX_ERROR)"
	if got := parserMessage(in); got != want {
		t.Errorf("parserMessage = %q", got)
	}
}
