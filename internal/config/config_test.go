package config

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type vals struct {
	addr, dsn, token string
	age              time.Duration
	rows             int
	debug            bool
}

func newSet(v *vals) *flag.FlagSet {
	fs := flag.NewFlagSet("prog", flag.ContinueOnError)
	fs.SetOutput(new(bytes.Buffer))
	fs.StringVar(&v.addr, "ingest.addr", "127.0.0.1:8090", "")
	fs.StringVar(&v.dsn, "store.dsn", "embedded:data", "")
	fs.StringVar(&v.token, "ingest.token", "", "")
	fs.DurationVar(&v.age, "ingest.batch-age", 200*time.Millisecond, "")
	fs.IntVar(&v.rows, "ingest.batch-rows", 100, "")
	fs.BoolVar(&v.debug, "debug", false, "")
	return fs
}

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func writeFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "netview.conf")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEnvName(t *testing.T) {
	for name, want := range map[string]string{
		"store.dsn":             "NETVIEW_STORE_DSN",
		"ingest.addr":           "NETVIEW_INGEST_ADDR",
		"query.analyst.token":   "NETVIEW_QUERY_ANALYST_TOKEN",
		"store.events-ttl-days": "NETVIEW_STORE_EVENTS_TTL_DAYS",
		"token-file":            "NETVIEW_TOKEN_FILE",
	} {
		if got := EnvName(name); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", name, got, want)
		}
	}
}

// Each source wins over the ones below it: flag > env > file > default.
func TestPrecedence(t *testing.T) {
	file := writeFile(t, `
# every flag but ingest.addr
store.dsn = embedded:/from/file
ingest.batch-age = 1s
ingest.batch-rows = 5
debug = true
`)
	var v vals
	fs := newSet(&v)
	err := parse(fs, []string{"--config", file, "--ingest.batch-rows=7"}, "", env(map[string]string{
		"NETVIEW_INGEST_BATCH_AGE":  "2s",
		"NETVIEW_INGEST_BATCH_ROWS": "6",
		"NETVIEW_DEBUG":             "", // empty: unset, the file's true stays
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := vals{addr: "127.0.0.1:8090", dsn: "embedded:/from/file", age: 2 * time.Second, rows: 7, debug: true}
	if v != want {
		t.Fatalf("got %+v\nwant %+v", v, want)
	}
}

func TestConfigFileFromEnvAndFlag(t *testing.T) {
	a := writeFile(t, "ingest.addr = a:1\n")
	b := writeFile(t, "ingest.addr = b:2\n")
	var v vals
	if err := parse(newSet(&v), nil, "", env(map[string]string{"NETVIEW_CONFIG": a})); err != nil || v.addr != "a:1" {
		t.Fatalf("$NETVIEW_CONFIG: %v, addr %q", err, v.addr)
	}
	v = vals{}
	if err := parse(newSet(&v), []string{"-config=" + b}, "", env(map[string]string{"NETVIEW_CONFIG": a})); err != nil || v.addr != "b:2" {
		t.Fatalf("--config over $NETVIEW_CONFIG: %v, addr %q", err, v.addr)
	}
}

func TestValues(t *testing.T) {
	file := writeFile(t, "store.dsn = embedded:x#y   # comment\n--ingest.addr=  h:1 \ningest.token = \"a # b \"  # quoted\n\n   # indented comment\n")
	var v vals
	if err := parse(newSet(&v), nil, "", env(map[string]string{"NETVIEW_CONFIG": file})); err != nil {
		t.Fatal(err)
	}
	if v.dsn != "embedded:x#y" || v.addr != "h:1" || v.token != "a # b " {
		t.Fatalf("got %+v", v)
	}
}

// Errors name where the value came from: the file and line, or the variable.
func TestErrorsNameTheSource(t *testing.T) {
	for _, c := range []struct {
		name, file string
		env        map[string]string
		args       []string
		want       string
	}{
		{"no equals", "store.dsn = x\nstore.dsn embedded\n", nil, nil, ":2: want name = value"},
		{"unknown name", "# x\nstore.dns = x\n", nil, nil, `:2: unknown name "store.dns"`},
		{"bad duration", "\ningest.batch-age = soon\n", nil, nil, `:2: invalid value "soon" for ingest.batch-age`},
		{"bad int", "ingest.batch-rows = 1e3\n", nil, nil, `:1: invalid value "1e3" for ingest.batch-rows`},
		{"bad bool", "debug = yes please\n", nil, nil, `:1: invalid value "yes please" for debug`},
		{"twice", "debug = true\ningest.addr = a\ndebug = false\n", nil, nil, ":3: debug set again (first on line 1)"},
		{"no name", " = x\n", nil, nil, ":1: no name before ="},
		{"config in file", "config = other\n", nil, nil, ":1: config cannot be set in a config file"},
		{"bad quote", "store.dsn = \"abc\n", nil, nil, ":1: store.dsn: unterminated"},
		{"text after quote", "store.dsn = \"abc\" def\n", nil, nil, ":1: store.dsn: text after the quoted value"},
		{"bad env", "", map[string]string{"NETVIEW_INGEST_BATCH_ROWS": "many"}, nil, `$NETVIEW_INGEST_BATCH_ROWS: invalid value "many" for ingest.batch-rows`},
		{"stray argument", "", nil, []string{"run"}, `unexpected argument "run"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := map[string]string{}
			for k, v := range c.env {
				e[k] = v
			}
			if c.file != "" {
				e["NETVIEW_CONFIG"] = writeFile(t, c.file)
			}
			var v vals
			err := parse(newSet(&v), c.args, "", env(e))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
			if c.file != "" && !strings.Contains(err.Error(), e["NETVIEW_CONFIG"]) {
				t.Fatalf("err = %v, want it to name the file", err)
			}
		})
	}
}

func TestMissingFile(t *testing.T) {
	var v vals
	err := parse(newSet(&v), []string{"--config", filepath.Join(t.TempDir(), "none.conf")}, "", env(nil))
	if err == nil || !strings.Contains(err.Error(), "none.conf") {
		t.Fatalf("err = %v", err)
	}
}

// $NETVIEW_INGEST_TOKEN stays auth's list of extra tokens: it must not
// replace --ingest.token from the file.
func TestOwnEnvLeftToItsPackage(t *testing.T) {
	file := writeFile(t, "ingest.token = from-file\n")
	var v vals
	if err := parse(newSet(&v), nil, "", env(map[string]string{"NETVIEW_CONFIG": file, "NETVIEW_INGEST_TOKEN": "extra"})); err != nil {
		t.Fatal(err)
	}
	if v.token != "from-file" {
		t.Fatalf("ingest.token = %q, want from-file", v.token)
	}
}

func TestHelpNamesTheSources(t *testing.T) {
	var v vals
	fs := newSet(&v)
	var out bytes.Buffer
	fs.SetOutput(&out)
	err := parse(fs, []string{"-h"}, "Prog does things.", env(nil))
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"Prog does things.", "-config", "NETVIEW_", "$NETVIEW_CONFIG", "name = value", "-ingest.batch-age"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, out.String())
		}
	}
}
