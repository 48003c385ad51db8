package analyst

import (
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
	f("SELECT 1", "SELECT 1")
	f("  SELECT\n\t1 ,\r\n  2  ", "SELECT 1 , 2")
	f("/*"+strings.Repeat("A", 5000)+"*/ DROP TABLE events", "DROP TABLE events")
	f("SELECT/**/1", "SELECT 1")
	f("SELECT 1 -- why\n+ 2", "SELECT 1 + 2")
	f("SELECT 1 # why\n+ 2 #! and\n", "SELECT 1 + 2")
	f("SELECT a#b", "SELECT a#b")
	f("SELECT 1 /* a /* nested */ still */ + 2", "SELECT 1 + 2")
	f("SELECT 1 /* unterminated", "SELECT 1")
	f("SELECT '--  not /* a comment', `a  b`, \"c\"\"  d\"", "SELECT '--  not /* a comment', `a  b`, \"c\"\"  d\"")
	f("SELECT 'it\\'s  --', 'x''  y'", "SELECT 'it\\'s  --', 'x''  y'")
	f("SELECT $$ -- kept\n  $$, $t$ a  b $t$", "SELECT $$ -- kept\n  $$, $t$ a  b $t$")
	f("SELECT a$b$c", "SELECT a$b$c")
	f("SELECT 1-1, x->x", "SELECT 1-1, x->x")
	f("", "")
	f(" -- only a comment", "")
}
