package analyst

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/netview/netview/internal/store"
)

// Refusal says why a statement was not run. Its Reason is meant for the
// analyst who wrote the statement.
type Refusal struct {
	Reason string
	// Forbidden: the statement names what analysts may not read at all
	// (the credentials, the audit log), rather than being malformed.
	Forbidden bool
}

func (r *Refusal) Error() string { return "statement refused: " + r.Reason }

func refuse(format string, args ...any) *Refusal {
	return &Refusal{Reason: fmt.Sprintf(format, args...)}
}

// MaxStatementBytes is the longest statement text the guard hands to the
// engine at all; the analyst store's max_query_size (Limits.MaxQueryBytes)
// is the limit analysts see, enforced by the engine's parser.
const MaxStatementBytes = 1 << 20

// allowedVerbs are the statements analysts may run: they read, or describe.
var allowedVerbs = map[string]bool{"SELECT": true, "WITH": true, "SHOW": true, "DESCRIBE": true, "DESC": true, "EXPLAIN": true, "EXISTS": true}

const allowedList = "SELECT, WITH ... SELECT, SHOW, DESCRIBE, EXPLAIN and EXISTS"

// harmlessTableFunctions may be used in FROM: they generate data or read
// only tables of this ClickHouse that the analyst can name directly anyway
// (merge() is a union of local tables chosen by a regular expression, loop()
// repeats a local table or another allowed table function, view() is a
// subquery). Every other table function the engine knows is refused, so one
// added in a newer engine is refused until it is listed here.
var harmlessTableFunctions = map[string]bool{
	"numbers": true, "numbers_mt": true, "zeros": true, "zeros_mt": true, "primes": true,
	"generaterandom": true, "generateseries": true, "generate_series": true,
	"values": true, "sqlstandardvalues": true, "null": true, "format": true,
	"merge": true, "view": true, "viewifpermitted": true, "viewexplain": true, "loop": true,
	"fuzzjson": true, "fuzzquery": true,
	"mergetreeindex": true, "mergetreeprojection": true, "mergetreeanalyzeindexes": true,
	"mergetreeanalyzeindexesuuid": true, "mergetreetextindex": true,
}

// ProtectedTables are Netview's tables analysts may not read, in any
// database: the credentials (hashes, who holds which role) and the audit
// log (other people's statements and admin actions), and the sensor blocks
// (which admin blocked what, and why).
var ProtectedTables = []string{"credentials", "audit_log", "sensor_blocks"}

// protectedNames are ProtectedTables and, on a cluster, the local tables
// behind their Distributed ones (sql.ClusterForm names them NAME_local).
var protectedNames = func() []string {
	var out []string
	for _, t := range ProtectedTables {
		out = append(out, t, t+"_local")
	}
	return out
}()

// ProtectedSystemTables are the engine's tables that show statements' text
// (other analysts' SQL, the service's own reads of the credentials and
// audit_log) or its log lines; analysts may not read them either.
var ProtectedSystemTables = []string{
	"processes", "query_log", "query_thread_log", "query_views_log", "query_metric_log", "query_cache",
	"text_log", "session_log", "asynchronous_insert_log", "asynchronous_inserts", "opentelemetry_span_log",
	"distributed_ddl_queue", "crash_log", "error_log", "zookeeper_log", "processors_profile_log", "trace_log",
}

// SystemTables are the engine's tables analysts may read: what describes
// the schema (databases, tables, columns, indices), what the engine offers
// (functions, formats, types, engines) and the generators. Every other
// system table is refused, so one added in a newer engine is refused until
// it is listed here: system.errors and system.query_log show other users'
// statements, system.settings and system.server_settings the configuration,
// system.users and system.grants who may do what.
var SystemTables = []string{
	"one", "numbers", "numbers_mt", "zeros", "zeros_mt", "primes",
	"databases", "tables", "columns", "data_skipping_indices", "projections",
	"functions", "table_functions", "aggregate_function_combinators", "data_type_families",
	"formats", "table_engines", "database_engines", "collations", "time_zones", "keywords",
}

// systemTable reports whether analysts may read system.name.
func systemTable(name string) bool {
	return slices.Contains(SystemTables, strings.ToLower(strings.TrimSpace(name)))
}

// allowedShow are the SHOW statements analysts may run, as the canonical
// form writes their first words: those that describe the schema. SHOW
// PROCESSLIST, SETTINGS, USERS, GRANTS, CLUSTERS, MERGES, DICTIONARIES and
// the rest are refused.
var allowedShow = [][]string{
	{"TABLES"}, {"DATABASES"}, {"COLUMNS"}, {"FULL", "COLUMNS"}, {"EXTENDED", "COLUMNS"}, {"EXTENDED", "FULL", "COLUMNS"},
	{"CREATE", "TABLE"}, {"CREATE", "VIEW"}, {"INDEXES"}, {"EXTENDED", "INDEXES"}, {"FUNCTIONS"}, {"ENGINES"},
}

const allowedShowList = "SHOW TABLES, SHOW DATABASES, SHOW COLUMNS, SHOW CREATE TABLE, SHOW CREATE VIEW, SHOW INDEXES, SHOW FUNCTIONS and SHOW ENGINES"

// configFunctions read the server's configuration (its settings, macros,
// disks, profiles, the client's headers): refused, with why. getSetting is
// among them because it reads what system.settings would show.
var configFunctions = map[string]string{
	"getserversetting": "it reads the server's settings", "getmergetreesetting": "it reads the server's MergeTree settings",
	"getsetting": "it reads the server's settings", "getsettingordefault": "it reads the server's settings",
	"getmacro": "it reads the server's macros", "getclienthttpheader": "it reads the request's HTTP headers",
	"getoskernelversion": "it reads the server's kernel version", "serveruuid": "it reads the server's identity",
	"getserverport": "it reads the server's ports", "filesystemavailable": "it reads the server's disks",
	"filesystemcapacity": "it reads the server's disks", "filesystemunreserved": "it reads the server's disks",
	"currentprofiles": "it reads the server's settings profiles", "enabledprofiles": "it reads the server's settings profiles",
	"defaultprofiles": "it reads the server's settings profiles",
}

// tableFunctions name a table by their first arguments (database, table):
// those must be written out, as a name or a string (the database may be
// currentDatabase()), so the guard checks the table they name. A computed
// name (concat('cred', 'entials')) could be any table, and is refused.
// merge() is checked by checkMerge.
var tableFunctions = map[string]bool{
	"mergetreeindex": true, "mergetreeprojection": true, "mergetreeanalyzeindexes": true, "mergetreetextindex": true, "loop": true,
}

// patternCalls read tables chosen by a pattern or an internal id, which the
// guard cannot check against ProtectedTables: refused, with why.
var patternCalls = map[string]string{
	"mergetreeanalyzeindexesuuid": "it names a table by its UUID, which can be a protected one",
}

// callArgs splits the top-level arguments of the call whose "(" is toks[i].
func callArgs(toks []token, i int) [][]token {
	var args [][]token
	depth := 0
	for j := i; j < len(toks); j++ {
		t := toks[j]
		switch {
		case t.text == "(":
			depth++
			if depth == 1 {
				args = append(args, nil)
				continue
			}
		case t.text == ")":
			depth--
		case t.text == "," && depth == 1:
			args = append(args, nil)
			continue
		}
		if depth == 0 {
			break
		}
		args[len(args)-1] = append(args[len(args)-1], t)
	}
	if len(args) == 1 && len(args[0]) == 0 {
		return nil
	}
	return args
}

// isName reports whether arg is a name written out: an identifier, a
// string, or db.table.
func isName(arg []token) bool {
	word := func(t token) bool { return t.kind == tWord || t.kind == tQuoted }
	switch len(arg) {
	case 1:
		return word(arg[0]) || arg[0].kind == tString
	case 3:
		return word(arg[0]) && arg[1].text == "." && word(arg[2])
	}
	return false
}

func isCurrentDatabase(arg []token) bool {
	return len(arg) == 3 && strings.EqualFold(arg[0].text, "currentDatabase") && arg[1].text == "(" && arg[2].text == ")"
}

// checkTableFunction allows a call of one of tableFunctions (toks[i] its
// name) only when the database and table it names are written out; a
// system table it names must be one of SystemTables. The protected tables
// among written-out names are refused by protected, token by token.
func checkTableFunction(toks []token, i int, denied map[string]bool) error {
	name := toks[i].text
	args := callArgs(toks, i+1)
	if strings.EqualFold(name, "loop") && len(args) == 1 {
		// loop(table), loop(db.table) or loop(table_function(...)), whose
		// call is checked as a call of its own (a refused one is refused
		// there, with its own reason).
		a := args[0]
		fn := ""
		if len(a) > 1 && (a[0].kind == tWord || a[0].kind == tQuoted) && a[1].text == "(" {
			fn = strings.ToLower(a[0].text)
		}
		if isName(a) || harmlessTableFunctions[fn] || denied[fn] {
			return nil
		}
		return refuse("%s() is allowed only with a table written out (a name, db.table, or a table function)", name)
	}
	for k := 0; k < len(args) && k < 2; k++ {
		if !isName(args[k]) && !(k == 0 && isCurrentDatabase(args[k])) {
			return refuse("%s() is allowed only with its database and table written out, as names or strings "+
				"(the database may be currentDatabase()): a computed name could be any table", name)
		}
	}
	if len(args) >= 2 && len(args[0]) == 1 && strings.EqualFold(args[0][0].text, "system") && len(args[1]) == 1 && !systemTable(args[1][0].text) {
		return forbidden("system." + strings.ToLower(args[1][0].text))
	}
	return nil
}

// checkMerge allows merge(db, 'pattern') only when the table pattern is a
// string literal that matches no protected table's name and the database
// is a named one other than system, or the current one. The engine's
// patterns are RE2, as Go's regexp, and match anywhere in a name.
func checkMerge(toks []token, i int) error {
	why := refuse("merge() is allowed only with a database written out (not system) or currentDatabase(), and a table pattern written as a string that matches neither credentials nor audit_log")
	// toks[i] is merge, toks[i+1] "(".
	args := callArgs(toks, i+1)
	if len(args) != 2 || len(args[1]) != 1 || args[1][0].kind != tString {
		return why
	}
	// A database that may be system could hold any of the engine's tables.
	db := args[0]
	named := len(db) == 1 && db[0].kind == tString && !strings.EqualFold(db[0].text, "system")
	if !named && !isCurrentDatabase(db) {
		return why
	}
	start := args[1][0]
	re, err := regexp.Compile(start.text)
	if err != nil {
		return why
	}
	for _, n := range protectedNames {
		if re.MatchString(n) {
			return why
		}
	}
	return nil
}

// outsideTableFunctions are refused even when the engine does not list
// them (a server of another version): they read or write files, other
// servers, object stores, other databases, or run programs.
var outsideTableFunctions = []string{
	"file", "filecluster", "filesystem", "url", "urlcluster", "remote", "remotesecure",
	"cluster", "clusterallreplicas", "s3", "s3cluster", "gcs", "oss", "cosn",
	"azureblobstorage", "azureblobstoragecluster", "hdfs", "hdfscluster",
	"mysql", "postgresql", "sqlite", "mongodb", "redis", "jdbc", "odbc", "ytsaurus",
	"executable", "input", "dictionary", "eval", "arrowstream", "arrowflight",
	"iceberg", "icebergs3", "icebergazure", "iceberghdfs", "iceberglocal", "icebergcluster",
	"icebergs3cluster", "icebergazurecluster", "iceberghdfscluster", "iceberglocalcluster",
	"deltalake", "deltalakes3", "deltalakeazure", "deltalakelocal", "deltalakecluster",
	"deltalakes3cluster", "deltalakeazurecluster", "hudi", "hudicluster", "hive",
	"paimon", "paimons3", "paimonazure", "paimonhdfs", "paimonlocal", "paimoncluster",
	"paimons3cluster", "paimonazurecluster", "paimonhdfscluster",
	"prometheusquery", "prometheusqueryrange", "timeseriesdata", "timeseriesmetrics",
	"timeseriessamples", "timeseriesselector", "timeseriestags",
}

// outsideFunctions are ordinary functions refused for what they reach: the
// engine runs them under readonly=1.
var outsideFunctions = []string{
	"file",             // reads any file the engine's process can read
	"catboostevaluate", // loads a model from a path on the engine's host
	"generateserialid", // increments a counter in (Zoo)Keeper: a write
}

// names is what the guard refuses as a call: the static lists above, every
// table function the engine reports except the harmless ones, and the
// engine's executable user-defined functions (programs on its host).
var names struct {
	sync.Mutex
	denied  map[string]bool
	fetched time.Time
}

const namesRefresh = time.Minute

func init() {
	names.denied = map[string]bool{}
	for _, n := range outsideTableFunctions {
		names.denied[n] = true
	}
	for _, n := range outsideFunctions {
		names.denied[n] = true
	}
	for n := range configFunctions {
		names.denied[n] = true
	}
}

// deniedNames returns the set of refused call names (lower case), adding
// what the engine of s reports. The set only grows: a name seen once on any
// store stays refused.
func deniedNames(ctx context.Context, s store.Store) map[string]bool {
	names.Lock()
	defer names.Unlock()
	if time.Since(names.fetched) < namesRefresh {
		return names.denied
	}
	var name, kind proto.ColStr
	var found []string
	err := s.Select(ctx, store.Query{SQL: "SELECT name, 'table function' AS kind FROM system.table_functions " +
		"UNION ALL SELECT name, 'function' AS kind FROM system.functions WHERE origin = 'ExecutableUserDefined'"},
		proto.Results{{Name: "name", Data: &name}, {Name: "kind", Data: &kind}}, func(rows int) error {
			for i := range rows {
				n := strings.ToLower(name.Row(i))
				if kind.Row(i) == "function" || !harmlessTableFunctions[n] {
					found = append(found, n)
				}
			}
			return nil
		})
	if err != nil {
		// The static lists still apply; ask again after a while.
		names.fetched = time.Now().Add(-namesRefresh + 5*time.Second)
		return names.denied
	}
	denied := make(map[string]bool, len(names.denied)+len(found))
	for n := range names.denied {
		denied[n] = true
	}
	for _, n := range found {
		denied[n] = true
	}
	names.denied, names.fetched = denied, time.Now()
	return denied
}

// Guard checks a statement before it runs and returns a *Refusal saying why
// it may not run, nil when it may. It asks the engine's own parser for the
// statement's canonical form (formatQuery: comments dropped, identifiers
// unquoted, one statement only) and checks that form, so quoting, case and
// comments cannot hide a verb or a function. Errors other than a *Refusal
// come from the store (unavailable).
func Guard(ctx context.Context, s store.Store, q string) error {
	_, err := guard(ctx, s, q)
	return err
}

// statement is a guarded statement: its canonical text and first verb.
type statement struct {
	canonical string
	verb      string // upper case: SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, EXISTS
}

func guard(ctx context.Context, s store.Store, q string) (statement, error) {
	if strings.TrimSpace(q) == "" {
		return statement{}, refuse("the statement is empty")
	}
	if len(q) > MaxStatementBytes {
		return statement{}, refuse("the statement is %d bytes, more than %d", len(q), MaxStatementBytes)
	}
	canonical, err := canonicalForm(ctx, s, q)
	if err != nil {
		return statement{}, err
	}
	verb, err := check(canonical, deniedNames(ctx, s))
	if err != nil {
		return statement{}, err
	}
	return statement{canonical: canonical, verb: verb}, nil
}

// canonicalForm runs formatQuery on the engine. A statement the parser
// rejects (syntax, several statements, too long) is refused with the
// engine's own message.
func canonicalForm(ctx context.Context, s store.Store, q string) (string, error) {
	var col proto.ColStr
	var out string
	got := false
	err := s.Select(ctx, store.Query{SQL: "SELECT formatQuery({q:String}) AS canonical", Params: []store.Param{store.P("q", q)}},
		proto.Results{{Name: "canonical", Data: &col}}, func(rows int) error {
			out, got = col.Row(0), true
			return nil
		})
	var ee *store.EngineError
	if errors.As(err, &ee) {
		return "", &Refusal{Reason: parserMessage(ee.Message)}
	}
	if err != nil {
		return "", err
	}
	if !got || strings.TrimSpace(out) == "" {
		return "", refuse("the statement is empty")
	}
	return out, nil
}

// parserMessage trims the engine's message about formatQuery's argument to
// what it says about the analyst's statement.
func parserMessage(msg string) string {
	const scope = ": In scope SELECT formatQuery("
	if i := strings.Index(msg, scope); i >= 0 {
		tail := ""
		if j := strings.LastIndex(msg, ". ("); j > i {
			tail = msg[j+1:]
		}
		msg = strings.TrimRight(msg[:i], " .:") + "." + tail
	}
	return msg
}

// check checks a canonical statement and returns its verb. It is pure Go:
// the fuzz target drives it directly.
func check(canonical string, denied map[string]bool) (string, error) {
	toks := lex(canonical)
	if len(toks) == 0 {
		return "", refuse("the statement is empty")
	}
	first := toks[0]
	if first.kind != tWord {
		return "", refuse("only %s statements are allowed; this statement starts with %q", allowedList, first.text)
	}
	verb := strings.ToUpper(first.text)
	if !allowedVerbs[verb] {
		return "", refuse("%s statements are not allowed: analysts' SQL is read-only (allowed: %s)", describeVerb(toks), allowedList)
	}
	if verb == "DESC" {
		verb = "DESCRIBE"
	}
	if verb == "EXPLAIN" {
		if err := checkExplain(toks); err != nil {
			return "", err
		}
	}
	if verb == "SHOW" {
		if err := checkShow(toks); err != nil {
			return "", err
		}
	}
	for i, t := range toks {
		if t.kind == tWord {
			w := strings.ToUpper(t.text)
			next := ""
			if i+1 < len(toks) && toks[i+1].kind == tWord {
				next = strings.ToUpper(toks[i+1].text)
			}
			switch {
			case w == "INTO" && next == "OUTFILE":
				return "", refuse("INTO OUTFILE is not allowed: it writes a file on the database host; the result comes back in the response")
			case w == "FROM" && next == "INFILE":
				return "", refuse("FROM INFILE is not allowed: it reads a file on the database host")
			case w == "PARALLEL" && next == "WITH":
				return "", refuse("PARALLEL WITH is not allowed: it runs several statements; send one statement")
			case w == "FORMAT" && t.col == 0 && i+1 < len(toks) && toks[i+1].line == t.line && (toks[i+1].kind == tWord || toks[i+1].kind == tQuoted):
				return "", refuse("a FORMAT clause is not allowed: choose the output format with the format parameter (%s)", strings.Join(Formats, ", "))
			case w == "APPLY":
				// SELECT * APPLY f calls f on every column without "f(".
				for j := i + 1; j < len(toks) && j <= i+2; j++ {
					if toks[j].kind == tWord || toks[j].kind == tQuoted {
						if n, bad := deniedName(toks[j].text, denied); bad {
							return "", refusedCall(n)
						}
						break
					}
					if toks[j].text != "(" {
						break
					}
				}
			}
		}
		if err := protected(toks, i); err != nil {
			return "", err
		}
		if (t.kind == tWord || t.kind == tQuoted) && i+1 < len(toks) && toks[i+1].text == "(" {
			if strings.EqualFold(t.text, "merge") {
				if err := checkMerge(toks, i); err != nil {
					return "", err
				}
			}
			if tableFunctions[strings.ToLower(t.text)] {
				if err := checkTableFunction(toks, i, denied); err != nil {
					return "", err
				}
			}
			if why, ok := patternCalls[strings.ToLower(t.text)]; ok {
				return "", refuse("%s() is not allowed: %s", t.text, why)
			}
			if n, bad := deniedName(t.text, denied); bad {
				return "", refusedCall(n)
			}
		}
	}
	return verb, nil
}

// protected refuses token i when it names a protected table: as an
// identifier (alone or a dotted part: db.credentials), a system table
// after "system." that is not one of SystemTables, or a string literal
// naming one of Netview's protected tables or the engine's statement logs
// (the table arguments of mergeTreeIndex('db', 'credentials') and the
// like). A column or alias of that name is refused too: clearer than
// guessing what it names.
func protected(toks []token, i int) error {
	t := toks[i]
	var parts []string
	switch t.kind {
	case tWord:
		parts = []string{t.text}
	case tQuoted, tString:
		parts = strings.Split(t.text, ".")
	default:
		return nil
	}
	for k, p := range parts {
		p = strings.ToLower(strings.TrimSpace(p))
		if slices.Contains(protectedNames, p) {
			return forbidden(p)
		}
		system := k > 0 && strings.EqualFold(strings.TrimSpace(parts[k-1]), "system")
		if k == 0 && t.kind == tWord && i >= 2 && toks[i-1].text == "." && strings.EqualFold(toks[i-2].text, "system") {
			system = true
		}
		if system && !systemTable(p) {
			return forbidden("system." + p)
		}
		if t.kind == tString && slices.Contains(ProtectedSystemTables, p) {
			return forbidden("system." + p)
		}
	}
	return nil
}

// checkShow allows only the SHOW statements of allowedShow; toks start
// with SHOW. SHOW COLUMNS and SHOW INDEXES of a table of system (FROM t
// FROM system) are allowed for SystemTables only.
func checkShow(toks []token) error {
	var words []string
	for _, t := range toks[1:] {
		if t.kind != tWord || t.line != toks[0].line {
			break
		}
		words = append(words, strings.ToUpper(t.text))
	}
	ok := false
	for _, a := range allowedShow {
		if len(words) >= len(a) && slices.Equal(words[:len(a)], a) {
			ok = true
			break
		}
	}
	if !ok {
		kind := "SHOW"
		if len(words) > 0 {
			kind += " " + words[0]
		}
		return refuse("%s statements are not allowed: analysts may run %s", kind, allowedShowList)
	}
	var from []string
	for j := 1; j+1 < len(toks); j++ {
		if w := strings.ToUpper(toks[j].text); toks[j].kind == tWord && (w == "FROM" || w == "IN") && (toks[j+1].kind == tWord || toks[j+1].kind == tQuoted) {
			from = append(from, toks[j+1].text)
		}
	}
	if (slices.Contains(words, "COLUMNS") || slices.Contains(words, "INDEXES")) && len(from) == 2 && strings.EqualFold(from[1], "system") && !systemTable(from[0]) {
		return forbidden("system." + strings.ToLower(from[0]))
	}
	return nil
}

func forbidden(table string) *Refusal {
	return &Refusal{Forbidden: true, Reason: table + " may not be read: analysts' SQL cannot reach the credentials, the audit log, " +
		"the sensor blocks, or the engine's tables other than those that describe the schema (" + strings.Join(SystemTables, ", ") + ")"}
}

func refusedCall(name string) *Refusal {
	if why, ok := configFunctions[strings.ToLower(name)]; ok {
		return refuse("%s() is not allowed: %s, which analysts may not see", name, why)
	}
	return refuse("%s() is not allowed: it reaches outside the database (files, other servers, programs); analysts' SQL reads Netview's tables only", name)
}

// deniedName reports whether a called name (or any dotted part of it) is
// refused.
func deniedName(name string, denied map[string]bool) (string, bool) {
	n := strings.ToLower(name)
	if denied[n] {
		return name, true
	}
	if strings.Contains(n, ".") {
		for _, p := range strings.Split(n, ".") {
			if denied[strings.TrimSpace(p)] {
				return p, true
			}
		}
	}
	return "", false
}

// checkExplain allows EXPLAIN only of a statement that is allowed itself.
// The canonical form puts EXPLAIN, its kind and its options (name = value)
// on the first line and the explained statement on the next.
func checkExplain(toks []token) error {
	for k, t := range toks[1:] {
		if t.line == toks[0].line {
			switch {
			case t.kind == tWord, t.kind == tNumber, t.kind == tString, t.text == "=", t.text == ",":
				continue
			default:
				return refuse("EXPLAIN options must be name = value pairs")
			}
		}
		if t.kind != tWord {
			break
		}
		v := strings.ToUpper(t.text)
		if v == "EXPLAIN" || !allowedVerbs[v] {
			return refuse("EXPLAIN is allowed only for SELECT, WITH ... SELECT, SHOW, DESCRIBE and EXISTS statements, not %s", v)
		}
		if v == "SHOW" {
			return checkShow(toks[k+1:])
		}
		return nil
	}
	return refuse("EXPLAIN is allowed only for a SELECT, SHOW, DESCRIBE or EXISTS statement")
}

// describeVerb names a refused statement by its first words (ALTER TABLE,
// SYSTEM, KILL QUERY ...).
func describeVerb(toks []token) string {
	words := []string{strings.ToUpper(toks[0].text)}
	if len(toks) > 1 && toks[1].kind == tWord {
		switch words[0] {
		case "KILL", "SYSTEM", "CREATE", "DROP", "ALTER", "ATTACH", "DETACH", "SHOW", "UNDROP":
			words = append(words, strings.ToUpper(toks[1].text))
		}
	}
	return strings.Join(words, " ")
}

type tokenKind int

const (
	tWord   tokenKind = iota // bare identifier or keyword
	tQuoted                  // `identifier` or "identifier", unquoted in text
	tString                  // 'literal' or heredoc
	tNumber
	tPunct
)

type token struct {
	kind      tokenKind
	text      string
	line, col int // col 0: first on its line, not indented
}

// lex splits canonical SQL into tokens, following the engine's lexer for
// what matters here: string literals, quoted identifiers, heredocs and
// comments are single tokens (or none), never words.
func lex(s string) []token {
	var toks []token
	line, lineStart := 0, 0
	i := 0
	add := func(kind tokenKind, text string, start int) {
		toks = append(toks, token{kind: kind, text: text, line: line, col: start - lineStart})
	}
	for i < len(s) {
		c := s[i]
		switch {
		case c == '\n':
			i++
			line, lineStart = line+1, i
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '-' && i+1 < len(s) && s[i+1] == '-', c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			depth := 0
			for i < len(s) {
				if s[i] == '/' && i+1 < len(s) && s[i+1] == '*' {
					depth++
					i += 2
					continue
				}
				if s[i] == '*' && i+1 < len(s) && s[i+1] == '/' {
					depth--
					i += 2
					if depth == 0 {
						break
					}
					continue
				}
				if s[i] == '\n' {
					line, lineStart = line+1, i+1
				}
				i++
			}
		case c == '\'' || c == '`' || c == '"':
			start := i
			var b strings.Builder
			i++
			for i < len(s) {
				if s[i] == '\\' && i+1 < len(s) {
					b.WriteByte(s[i+1])
					i += 2
					continue
				}
				if s[i] == c {
					if i+1 < len(s) && s[i+1] == c {
						b.WriteByte(c)
						i += 2
						continue
					}
					i++
					break
				}
				if s[i] == '\n' {
					line, lineStart = line+1, i+1
				}
				b.WriteByte(s[i])
				i++
			}
			kind := tQuoted
			if c == '\'' {
				kind = tString
			}
			add(kind, b.String(), start)
		case c == '$' && heredocTag(s[i:]) != "":
			start := i
			tag := heredocTag(s[i:])
			end := strings.Index(s[i+len(tag):], tag)
			body := ""
			if end < 0 {
				body = s[i+len(tag):]
				i = len(s)
			} else {
				body = s[i+len(tag) : i+len(tag)+end]
				i += len(tag) + end + len(tag)
			}
			for k := 0; k < len(body); k++ {
				if body[k] == '\n' {
					line++
				}
			}
			if n := strings.LastIndexByte(s[:i], '\n'); n >= start {
				lineStart = n + 1
			}
			add(tString, body, start)
		case isWordStart(c):
			start := i
			for i < len(s) && isWordByte(s[i]) {
				i++
			}
			add(tWord, s[start:i], start)
		case c >= '0' && c <= '9':
			start := i
			for i < len(s) && (isWordByte(s[i]) || s[i] == '.') {
				i++
			}
			add(tNumber, s[start:i], start)
		default:
			add(tPunct, s[i:i+1], i)
			i++
		}
	}
	return toks
}

// heredocTag returns the opening $tag$ of a heredoc at the start of s, or "".
func heredocTag(s string) string {
	for j := 1; j < len(s); j++ {
		if s[j] == '$' {
			return s[:j+1]
		}
		if !isWordByte(s[j]) {
			return ""
		}
	}
	return ""
}

func isWordStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80
}

func isWordByte(c byte) bool {
	return isWordStart(c) || (c >= '0' && c <= '9') || c == '$'
}

// DeniedNames lists the call names the guard refuses right now (lower
// case, sorted), for documentation and tests.
func DeniedNames(ctx context.Context, s store.Store) []string {
	d := deniedNames(ctx, s)
	out := make([]string, 0, len(d))
	for n := range d {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
