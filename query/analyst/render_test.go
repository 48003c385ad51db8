package analyst_test

import (
	"strings"
	"testing"

	"github.com/netview/netview/query/analyst"
)

// CSV and TSV cells are safe to open in a spreadsheet and to print on a
// terminal (issue #14): a text cell that a spreadsheet would take for a
// formula gets a leading quote, numbers do not, and control characters
// other than tab, newline and carriage return become U+FFFD.
func TestTextCellsEscaped(t *testing.T) {
	ro := storeOnly(t, analyst.Limits{})
	q := `SELECT '=1+1' AS f, '+x' AS p, '-x' AS m, '@SUM(A1)' AS at, '\tx' AS tab, '\rx' AS cr,
		-5 AS n, toInt64(-7) AS big, -1.5 AS fl, toDecimal32(-2.5, 1) AS d, -inf AS ninf,
		CAST('-x' AS Nullable(String)) AS ns, toLowCardinality('=lc') AS lc, CAST('-a' AS Enum8('-a' = 1)) AS e,
		'a\x1B[31mb\0c\x7F\xC2\x9Bd' AS ctl, 'x\ny\tz\r' AS ws, ['=a\x1B'] AS arr, 'ok = 1' AS plain, toDateTime(0, 'UTC') AS dt,
		'+' AS "=HYPERLINK(1)"`
	want := map[string]string{
		"f": "'=1+1", "p": "'+x", "m": "'-x", "at": "'@SUM(A1)", "tab": "'\tx", "cr": "'\rx",
		"n": "-5", "big": "-7", "fl": "-1.5", "d": "-2.5", "ninf": "-inf",
		"ns": "'-x", "lc": "'=lc", "e": "'-a",
		"ctl": "a\uFFFD[31mb\uFFFDc\uFFFD\uFFFDd", "ws": "x\ny\tz\r", "arr": "['=a\uFFFD']", "plain": "ok = 1", "dt": "1970-01-01T00:00:00Z",
		"'=HYPERLINK(1)": "'+",
	}
	tsvEscape := strings.NewReplacer("\t", `\t`, "\n", `\n`, "\r", `\r`)

	csvOut := run(t, ro, q, "CSV")
	recs := parseCSV(t, csvOut)
	tsv := parseTSV(run(t, ro, q, "TSV"))
	if len(recs) != 2 || len(tsv) != 2 || len(recs[0]) != len(want) || len(tsv[0]) != len(want) {
		t.Fatalf("CSV %q\nTSV %q", recs, tsv)
	}
	for i, name := range recs[0] {
		w, ok := want[name]
		if !ok {
			t.Errorf("CSV column %q", name)
			continue
		}
		if got := recs[1][i]; got != w {
			t.Errorf("CSV %s = %q, want %q", name, recs[1][i], w)
		}
		if tsv[0][i] != tsvEscape.Replace(name) || tsv[1][i] != tsvEscape.Replace(want[name]) {
			t.Errorf("TSV %s = %q, want %q", tsv[0][i], tsv[1][i], tsvEscape.Replace(want[name]))
		}
	}
	if !strings.Contains(csvOut, "\"'\rx\"") {
		t.Errorf("CSV: the carriage return cell is not quoted: %q", csvOut)
	}
	for _, c := range []string{"\x1b", "\x00", "\x7f", "\xc2\x9b"} {
		if strings.Contains(csvOut, c) {
			t.Errorf("CSV output holds the control character %q", c)
		}
	}
}
