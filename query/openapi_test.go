package query_test

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/valyala/fasthttp"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/internal/auth"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/query"
	"github.com/netview/netview/query/querytest"
)

const (
	queryOpenAPIFile = "../docs/openapi-query.yaml"
	apiGuideFile     = "../docs/api.md"
)

// The few things the tests read from docs/openapi-query.yaml.
type (
	oaParam struct {
		name               string
		min, max, def      string // "" when not documented
		enum               []string
		examples           []string // example, and the values of examples
		required           bool
		ref                string // #/components/parameters/<ref>, resolved after parsing
		documentedPosition int    // line, for messages
	}
	oaResponse struct {
		ref     string   // #/components/responses/<ref>, resolved after parsing
		headers []string // documented headers
		media   []string // documented media types
		schemas []string // schema of the application/json body, if a $ref; several for a oneOf
	}
	oaOperation struct {
		role      string // security role: viewer, analyst, or "" (no token)
		params    []*oaParam
		responses map[int]*oaResponse
	}
	oaSchema struct {
		props    map[string]string // property -> the schema its items (or value) refer to
		required []string
	}
	oaDoc struct {
		paths     map[string]map[string]*oaOperation // path -> method (upper case)
		responses map[string]*oaResponse             // components.responses
		schemas   map[string]*oaSchema               // components.schemas
		params    map[string]*oaParam                // components.parameters
	}
)

var (
	oqPath      = regexp.MustCompile(`^  (/\S*):$`)
	oqMethod    = regexp.MustCompile(`^    (get|put|post|delete|options|head|patch|trace):$`)
	oqStatus    = regexp.MustCompile(`^        '(\d{3})':$`)
	oqParamName = regexp.MustCompile(`^        - name: (\S+)$`)
	oqParamRef  = regexp.MustCompile(`^        - \$ref: '#/components/parameters/(\w+)'$`)
	oqParamKey  = regexp.MustCompile(`^\s+(name|required|example|value): (.+)$`)
	oqRole      = regexp.MustCompile(`^        - apiToken: \[(\w*)\]$`)
	oqBound     = regexp.MustCompile(`^\s+(minimum|maximum|default): (\S+)$`)
	oqEnum      = regexp.MustCompile(`^\s+enum: \[(.*)\]$`)
	oqKey       = regexp.MustCompile(`^\s*([^\s:'"][^:]*|'[^']+'|"[^"]+"):(\s.*)?$`)
	oqRespRef   = regexp.MustCompile(`\$ref: '#/components/responses/(\w+)'`)
	oqSchemaRef = regexp.MustCompile(`\$ref: '#/components/schemas/(\w+)'`)
	oqRequired  = regexp.MustCompile(`^      required: \[(.*)\]$`)
	oqBlock     = regexp.MustCompile(`:\s*[|>][-+]?$`)
)

func oqIndent(line string) int { return len(line) - len(strings.TrimLeft(line, " ")) }

func oqKeyOf(line string) string {
	m := oqKey.FindStringSubmatch(line)
	if m == nil {
		return ""
	}
	return strings.Trim(strings.TrimSpace(m[1]), `'"`)
}

func oaList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.Trim(strings.TrimSpace(v), `'"`); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// parseQueryOpenAPI reads docs/openapi-query.yaml line by line (the project
// has no YAML library): paths and methods, each operation's security role,
// parameters (with bounds, default and enum) and responses (their headers,
// media types and JSON schema), the shared responses, and the properties of
// each schema. It relies on the file's two-space indentation and skips the
// text of block scalars (description: |).
func parseQueryOpenAPI(t *testing.T) *oaDoc {
	t.Helper()
	f, err := os.Open(queryOpenAPIFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc := &oaDoc{paths: map[string]map[string]*oaOperation{}, responses: map[string]*oaResponse{}, schemas: map[string]*oaSchema{},
		params: map[string]*oaParam{}}
	var (
		top, csect, osect string // top-level key; components section; operation section
		path              string
		op                *oaOperation
		param             *oaParam
		resp              *oaResponse
		respBase          int
		rsect, media      string
		schema            *oaSchema
		inProps           bool
		prop              string
		block             = -1 // indent of the key whose block scalar is being skipped
		fail              = func(n int, format string, args ...any) {
			t.Fatalf("%s:%d: %s", queryOpenAPIFile, n, fmt.Sprintf(format, args...))
		}
		// handleParamLine reads a line of a parameter's own: its bounds,
		// enum, examples, whether it is required (and in components, its name).
		handleParamLine = func(line string) {
			if m := oqBound.FindStringSubmatch(line); m != nil {
				switch m[1] {
				case "minimum":
					param.min = m[2]
				case "maximum":
					param.max = m[2]
				case "default":
					param.def = m[2]
				}
			} else if m := oqEnum.FindStringSubmatch(line); m != nil {
				param.enum = oaList(m[1])
			} else if m := oqParamKey.FindStringSubmatch(line); m != nil {
				v := strings.Trim(m[2], `'"`)
				switch m[1] {
				case "name":
					param.name = v
				case "required":
					param.required = v == "true"
				default:
					param.examples = append(param.examples, v)
				}
			}
		}
		handleResponseLine = func(line string, ind int) {
			switch {
			case ind == respBase+2 && oqRespRef.MatchString(line):
				resp.ref = oqRespRef.FindStringSubmatch(line)[1]
			case ind == respBase+2:
				rsect, media = oqKeyOf(line), ""
			case ind == respBase+4 && rsect == "headers":
				resp.headers = append(resp.headers, oqKeyOf(line))
			case ind == respBase+4 && rsect == "content":
				media = oqKeyOf(line)
				resp.media = append(resp.media, media)
			case ind > respBase+4 && rsect == "content" && media == "application/json" && oqSchemaRef.MatchString(line):
				resp.schemas = append(resp.schemas, oqSchemaRef.FindStringSubmatch(line)[1])
			}
		}
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), " \r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if strings.Contains(line, "\t") {
			fail(n, "tab in the line; the parser here needs spaces")
		}
		ind := oqIndent(line)
		if block >= 0 {
			if ind > block {
				continue
			}
			block = -1
		}
		if oqBlock.MatchString(line) {
			block = ind
		}
		if ind == 0 {
			top, csect, path, op, param, resp, schema = oqKeyOf(line), "", "", nil, nil, nil, nil
			continue
		}
		switch top {
		case "paths":
			switch {
			case ind == 2:
				m := oqPath.FindStringSubmatch(line)
				if m == nil {
					fail(n, "expected a path: %q", line)
				}
				path, op = m[1], nil
				if doc.paths[path] != nil {
					fail(n, "path %s documented twice", path)
				}
				doc.paths[path] = map[string]*oaOperation{}
				continue
			case ind == 4:
				op, param, resp, osect = nil, nil, nil, ""
				if m := oqMethod.FindStringSubmatch(line); m != nil && path != "" {
					op = &oaOperation{responses: map[int]*oaResponse{}}
					doc.paths[path][strings.ToUpper(m[1])] = op
				}
				continue
			}
			if op == nil {
				continue
			}
			if ind == 6 {
				osect, param, resp = oqKeyOf(line), nil, nil
				continue
			}
			switch osect {
			case "security":
				if m := oqRole.FindStringSubmatch(line); m != nil {
					op.role = m[1]
				}
			case "parameters":
				if m := oqParamName.FindStringSubmatch(line); m != nil {
					param = &oaParam{name: m[1], documentedPosition: n}
					op.params = append(op.params, param)
				} else if m := oqParamRef.FindStringSubmatch(line); m != nil {
					param = nil
					op.params = append(op.params, &oaParam{ref: m[1], documentedPosition: n})
				} else if param != nil {
					handleParamLine(line)
				}
			case "responses":
				if ind == 8 {
					m := oqStatus.FindStringSubmatch(line)
					if m == nil {
						fail(n, "expected a status: %q", line)
					}
					code, _ := strconv.Atoi(m[1])
					resp, respBase, rsect, media = &oaResponse{}, 8, "", ""
					op.responses[code] = resp
				} else if resp != nil {
					handleResponseLine(line, ind)
				}
			}
		case "components":
			if ind == 2 {
				csect, resp, schema = oqKeyOf(line), nil, nil
				continue
			}
			switch csect {
			case "parameters":
				if ind == 4 {
					param = &oaParam{documentedPosition: n}
					doc.params[oqKeyOf(line)] = param
				} else if param != nil {
					handleParamLine(line)
				}
			case "responses":
				if ind == 4 {
					resp, respBase, rsect, media = &oaResponse{}, 4, "", ""
					doc.responses[oqKeyOf(line)] = resp
				} else if resp != nil {
					handleResponseLine(line, ind)
				}
			case "schemas":
				switch {
				case ind == 4:
					schema, inProps, prop = &oaSchema{props: map[string]string{}}, false, ""
					doc.schemas[oqKeyOf(line)] = schema
				case schema == nil:
				case ind == 6:
					inProps, prop = oqKeyOf(line) == "properties", ""
					if m := oqRequired.FindStringSubmatch(line); m != nil {
						schema.required = oaList(m[1])
					}
				case ind == 8 && inProps:
					prop = oqKeyOf(line)
					schema.props[prop] = ""
				case ind > 8 && inProps && prop != "" && oqSchemaRef.MatchString(line):
					schema.props[prop] = oqSchemaRef.FindStringSubmatch(line)[1]
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	// Resolve the parameters and responses that refer to components.
	for path, ops := range doc.paths {
		for method, op := range ops {
			for i, p := range op.params {
				if p.ref == "" {
					continue
				}
				if op.params[i] = doc.params[p.ref]; op.params[i] == nil || op.params[i].name == "" {
					t.Fatalf("%s %s refers to the undefined parameter %s (line %d)", method, path, p.ref, p.documentedPosition)
				}
			}
			for code, r := range op.responses {
				if r.ref == "" {
					continue
				}
				shared := doc.responses[r.ref]
				if shared == nil {
					t.Fatalf("%s %s %d refers to the undefined response %s", method, path, code, r.ref)
				}
				op.responses[code] = shared
			}
		}
	}
	for name, s := range doc.schemas {
		for _, r := range s.required {
			if _, ok := s.props[r]; !ok {
				t.Errorf("schema %s requires %s, which it does not define", name, r)
			}
		}
		for p, ref := range s.props {
			if ref != "" && doc.schemas[ref] == nil {
				t.Errorf("schema %s.%s refers to the undefined schema %s", name, p, ref)
			}
		}
	}
	return doc
}

// oaFaultStore is the real store with injectable faults, switched on per
// request by the test.
type oaFaultStore struct {
	store.Store
	mode atomic.Int32
}

const (
	oaHealthy int32 = iota
	oaDown          // storage unavailable: 503
	oaBroken        // any other error: 500
	oaSlow          // never answers: 504 at the service's timeout
)

func (s *oaFaultStore) fault(ctx context.Context) error {
	switch s.mode.Load() {
	case oaDown:
		return fmt.Errorf("%w: outage injected by the OpenAPI test", store.ErrUnavailable)
	case oaBroken:
		return errors.New("failure injected by the OpenAPI test")
	case oaSlow:
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (s *oaFaultStore) Select(ctx context.Context, q store.Query, res proto.Results, onBlock func(int) error) error {
	if err := s.fault(ctx); err != nil {
		return err
	}
	return s.Store.Select(ctx, q, res, onBlock)
}

func (s *oaFaultStore) Exec(ctx context.Context, q store.Query) error {
	if err := s.fault(ctx); err != nil {
		return err
	}
	return s.Store.Exec(ctx, q)
}

func (s *oaFaultStore) Insert(ctx context.Context, table string, cols proto.Input) error {
	if err := s.fault(ctx); err != nil {
		return err
	}
	return s.Store.Insert(ctx, table, cols)
}

// adminCreate issues a credential through the admin API and returns its id.
func adminCreate(t *testing.T, base, path, body string) string {
	t.Helper()
	r := oaSend(t, "POST", base+path, adminToken, []byte(body))
	var out struct{ ID string }
	if r.status != 200 || json.Unmarshal(r.body, &out) != nil || out.ID == "" {
		t.Fatalf("POST %s: %d %s", path, r.status, r.body)
	}
	return out.ID
}

// oaSQLFormats are the media types the stand-in analyst SQL runner answers.
var oaSQLFormats = map[string]string{"JSON": "application/json", "JSONEachRow": "application/x-ndjson", "CSV": "text/csv", "TSV": "text/tab-separated-values"}

// oaStartWithSQL serves the query API over st with a stand-in SQL runner (the
// real one lives in query/analyst), so POST /api/v1/sql exists. The runner
// fails as st does.
func oaStartWithSQL(t *testing.T, st *oaFaultStore, timeout time.Duration, tune ...func(*query.Config)) string {
	t.Helper()
	runner := func(ctx context.Context, q, format string, w *fasthttp.RequestCtx) (int, error) {
		if err := st.fault(ctx); err != nil {
			return 0, err
		}
		ct, ok := oaSQLFormats[format]
		if !ok {
			w.SetStatusCode(400)
			w.SetContentType("application/json")
			w.SetBodyString(`{"error":"format: unknown","parameter":"format"}`)
			return 0, nil
		}
		w.SetContentType(ct)
		w.SetBodyString(`{"columns":[],"rows":[],"row_count":0}`)
		return 0, nil
	}
	cfg := query.Config{Tokens: auth.TokenFlags{List: viewerToken}, AnalystTokens: auth.TokenFlags{List: analystToken},
		AdminTokens: auth.TokenFlags{List: adminToken}, MaxListRows: 10_000, Timeout: timeout}
	for _, f := range tune {
		f(&cfg)
	}
	srv, err := query.New(cfg, st, runner, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return querytest.Serve(t, srv)
}

type oaReply struct {
	status int
	header http.Header
	body   []byte
}

func oaSend(t *testing.T, method, u, token string, body []byte) oaReply {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "text/plain")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return oaReply{status: resp.StatusCode, header: resp.Header, body: b}
}

// oaSendHeaders sends only the head of a POST whose Content-Length is n
// and reads the answer. The service refuses an oversized body on its
// headers; sending the body too would race the server's close (a reset can
// discard the answer before the client reads it).
func oaSendHeaders(t *testing.T, base, path, token string, n int) oaReply {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n", path, u.Host, token, n)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("POST %s with Content-Length %d: %v", path, n, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return oaReply{status: resp.StatusCode, header: resp.Header, body: b}
}

// oaCheckBody checks a JSON value against a documented schema: every member
// is a documented property, every required property is there, and the
// items of arrays (or objects) of a property that refers to a schema are
// checked against it. It returns the problems found.
func oaCheckBody(doc *oaDoc, name string, v any, at string) []string {
	s := doc.schemas[name]
	if s == nil {
		return []string{at + ": undefined schema " + name}
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return []string{fmt.Sprintf("%s: %T, want an object (%s)", at, v, name)}
	}
	var bad []string
	for k := range obj {
		if _, ok := s.props[k]; !ok {
			bad = append(bad, fmt.Sprintf("%s: member %q is not a property of %s", at, k, name))
		}
	}
	for _, r := range s.required {
		if _, ok := obj[r]; !ok {
			bad = append(bad, fmt.Sprintf("%s: %s requires %q, missing", at, name, r))
		}
	}
	for p, ref := range s.props {
		if ref == "" {
			continue
		}
		switch x := obj[p].(type) {
		case []any:
			for i, item := range x {
				bad = append(bad, oaCheckBody(doc, ref, item, fmt.Sprintf("%s.%s[%d]", at, p, i))...)
			}
		case map[string]any:
			bad = append(bad, oaCheckBody(doc, ref, x, at+"."+p)...)
		}
	}
	return bad
}

// The routes of query/server.go and docs/openapi-query.yaml describe the
// same API, checked against a running service over the real engine: the
// same paths and methods (anything else is 404), every documented status
// is one the service really gives (and every answer a documented status,
// with the documented headers, media type and JSON members), each operation
// takes exactly its documented parameters, within the documented bounds,
// and refuses any other with 400.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := parseQueryOpenAPI(t)

	// The documented paths are the paths the service routes: the string
	// literals of its source, and the probes below.
	var documented []string
	for p := range doc.paths {
		documented = append(documented, p)
	}
	slices.Sort(documented)
	srcs, _ := filepath.Glob("*.go")
	routeLit := regexp.MustCompile(`"(/api/[^"\s]*|/healthz|/metrics)"`)
	var routed []string
	for _, src := range srcs {
		if strings.HasSuffix(src, "_test.go") {
			continue
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range routeLit.FindAllStringSubmatch(string(b), -1) {
			if !slices.Contains(routed, m[1]) {
				routed = append(routed, m[1])
			}
		}
	}
	slices.Sort(routed)
	if !slices.Equal(documented, routed) {
		t.Errorf("documented paths %v\nthe paths in query/*.go %v", documented, routed)
	}

	f := start(t)
	gens := f.fleet(2, 3, heartbeat.Shape{Conns: 4, Listeners: 2, UDP: 2, ActiveFlows: 2, CompletedFlows: 2, Events: 8})
	sensor := gens[0].Sensor.SensorID.String()
	faults := &oaFaultStore{Store: f.ingest.Store}
	withSQL := oaStartWithSQL(t, faults, 300*time.Millisecond)

	// base is where an operation is served: the harness's service, or the
	// one with analyst SQL.
	// The admin operations need something to act on.
	issuedID := adminCreate(t, f.url, "/api/v1/admin/tokens/create", `{"role":"viewer"}`)
	enrollID := adminCreate(t, f.url, "/api/v1/admin/enrollment-secrets/create", `{"name":"oa"}`)
	keyID := sensorKey(t, f)
	adminBody := map[string]string{
		"/api/v1/admin/tokens/create":             `{"role":"viewer","name":"openapi"}`,
		"/api/v1/admin/tokens/revoke":             `{"id":"` + issuedID + `"}`,
		"/api/v1/admin/enrollment-secrets/create": `{"name":"openapi","expires_in":"1h"}`,
		"/api/v1/admin/enrollment-secrets/revoke": `{"id":"` + enrollID + `"}`,
		"/api/v1/admin/sensor-keys/revoke":        `{"id":"` + keyID + `","reenroll":true}`,
		"/api/v1/admin/sensors/block":             `{"sensor_id":"` + enrolledSensor(t, f) + `","reason":"openapi"}`,
	}
	base := func(op *oaOperation) string {
		if op.role == "analyst" {
			return withSQL
		}
		return f.url
	}
	tokenFor := func(op *oaOperation) string {
		if op.role == "admin" {
			return adminToken
		}
		if op.role == "analyst" {
			return analystToken
		}
		if op.role == "viewer" {
			return viewerToken
		}
		return ""
	}
	var allParams []string
	for _, ops := range doc.paths {
		for _, op := range ops {
			for _, p := range op.params {
				if !slices.Contains(allParams, p.name) {
					allParams = append(allParams, p.name)
				}
			}
		}
	}

	// validValue is a value each parameter takes: its first documented
	// example, else one known here.
	valid := map[string]string{
		"sensor_id": sensor, "page": "2", "page_size": "3", "limit": "2",
		"kind":  "network_connect,dns_query",
		"since": time.Now().Add(-30 * time.Minute).UTC().Format(time.RFC3339),
		"until": time.Now().UTC().Format(time.RFC3339Nano), "format": "JSONEachRow", "sort": "-pid",
		"actor": "static:admin#00000000", "action": "sql",
		"container": "web-1", "pod": "prod/db-0", "netns": "4026531840",
		"addr": "203.0.113.7", "local_addr": "10.9.0.0/16", "remote_addr": "203.0.113.7", "src_addr": "10.9.0.1",
		"dst_addr": "203.0.113.0/24", "port": "443", "protocol": "tcp", "direction": "outbound", "binary": "curl",
		"binary_path": "/usr/*", "pid": "4242", "uid": "0", "dns": "*.evil.example", "answer": "203.0.113.7",
		"host": "web-1.prod.example", "q": "curl",
		"at": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), // within the history kept, which no fixed example stays
	}
	validValue := func(p *oaParam) (string, bool) {
		if len(p.examples) > 0 {
			return p.examples[0], true
		}
		v, ok := valid[p.name]
		return v, ok
	}
	// repeatable are the parameters that may be given more than once (OR):
	// the scope's and the hunting filters.
	repeatable := []string{"container", "pod", "netns", "addr", "local_addr", "remote_addr", "src_addr", "dst_addr", "port",
		"protocol", "state", "direction", "binary", "binary_path", "pid", "uid", "dns", "answer", "host", "q"}
	// withRequired adds to rawQuery the operation's required parameters it
	// does not give (an export's format).
	withRequired := func(op *oaOperation, rawQuery string) string {
		given, _ := url.ParseQuery(rawQuery)
		for _, p := range op.params {
			if v, ok := validValue(p); p.required && ok && !given.Has(p.name) {
				rawQuery = strings.TrimPrefix(rawQuery+"&"+p.name+"="+url.QueryEscape(v), "&")
			}
		}
		return rawQuery
	}

	seen := map[string]bool{}
	reported := map[string]bool{} // body problems, each reported once
	rowIndex := regexp.MustCompile(`\[\d+\]`)
	// check records an answer and checks it is documented for the
	// operation, with its headers, media type and body.
	check := func(what, path, method string, r oaReply, want int, param string) map[string]any {
		t.Helper()
		if r.status != want {
			t.Errorf("%s: %s %s answered %d %.300s, want %d", what, method, path, r.status, r.body, want)
			return nil
		}
		op := doc.paths[path][method]
		if r.status == http.StatusMethodNotAllowed && op == nil {
			for m, o := range doc.paths[path] { // documented under the method it takes
				op, method = o, m
			}
		}
		if op == nil {
			t.Errorf("%s: %s %s is not documented", what, method, path)
			return nil
		}
		d := op.responses[r.status]
		if d == nil {
			t.Errorf("%s: %s %s answered %d, which docs/openapi-query.yaml does not list", what, method, path, r.status)
			return nil
		}
		seen[fmt.Sprintf("%s %s %d", method, path, r.status)] = true
		for _, h := range d.headers {
			if r.header.Get(h) == "" {
				t.Errorf("%s: the %d answer lacks the documented header %s", what, r.status, h)
			}
		}
		mt, _, err := mime.ParseMediaType(r.header.Get("Content-Type"))
		if len(d.media) > 0 && (err != nil || !slices.Contains(d.media, mt)) {
			t.Errorf("%s: Content-Type %q, documented %v", what, r.header.Get("Content-Type"), d.media)
		}
		if len(d.schemas) == 0 || mt != "application/json" {
			return nil
		}
		var body map[string]any
		if err := json.Unmarshal(r.body, &body); err != nil {
			t.Errorf("%s: body is not a JSON object: %v\n%.300s", what, err, r.body)
			return nil
		}
		// The body is one of the documented schemas (a oneOf lists several):
		// the problems are those against the schema it fits best.
		var problems []string
		for i, name := range d.schemas {
			p := oaCheckBody(doc, name, body, method+" "+path)
			if i == 0 || len(p) < len(problems) {
				problems = p
			}
		}
		for _, p := range problems {
			if p = rowIndex.ReplaceAllString(p, "[*]"); !reported[p] {
				reported[p] = true
				t.Errorf("%s: %s", what, p)
			}
		}
		if param != "" && body["parameter"] != param {
			t.Errorf("%s: error names parameter %v, want %q (%s)", what, body["parameter"], param, body["error"])
		}
		return body
	}

	for _, path := range documented {
		for method, op := range doc.paths[path] {
			u, token := base(op)+path, tokenFor(op)
			var body []byte
			if method == "POST" {
				body = []byte("SELECT 1")
				if b, ok := adminBody[path]; ok {
					body = []byte(b)
				}
			}
			get := func(what, rawQuery, token string, want int, param string) map[string]any {
				t.Helper()
				q := ""
				if rawQuery = withRequired(op, rawQuery); rawQuery != "" {
					q = "?" + rawQuery
				}
				return check(what, path, method, oaSend(t, method, u+q, token, body), want, param)
			}

			// A valid request, with every list of the answer holding rows so
			// their members are checked too.
			first := get("valid request", "", token, 200, "")
			for k, v := range first {
				if a, ok := v.([]any); ok && len(a) == 0 {
					t.Errorf("%s %s: %q is empty; the test fleet should fill it", method, path, k)
				}
			}
			if op.role == "" {
				continue // /healthz, /metrics: no token, no parameters
			}

			// Tokens and roles.
			get("no token", "", "", 401, "")
			get("wrong token", "", "not-a-token-of-this-service", 401, "")
			switch op.role {
			case "admin":
				get("analyst token on an admin operation", "", analystToken, 403, "")
			case "analyst":
				get("viewer token on an analyst operation", "", viewerToken, 403, "")
			default:
				get("analyst token on a viewer operation", "", analystToken, 200, "")
			}
			for _, other := range []string{"GET", "POST", "DELETE", "PUT"} {
				if other == method {
					continue
				}
				r := oaSend(t, other, u, token, nil)
				check("method "+other, path, other, r, 405, "")
				if a := r.header.Get("Allow"); a != method {
					t.Errorf("%s %s: Allow %q, want %q", other, path, a, method)
				}
			}

			// Parameters: an unknown one, and those of other operations, are
			// refused by name.
			get("unknown parameter", "bogus=1", token, 400, "bogus")
			for _, name := range allParams {
				if !slices.ContainsFunc(op.params, func(p *oaParam) bool { return p.name == name }) {
					get("parameter "+name+" of another operation", name+"=1", token, 400, name)
				}
			}
			// Each documented one is taken with a valid value, within its
			// documented bounds, and its documented default is the one used.
			for _, p := range op.params {
				if p.name == "cursor" {
					page := get("first page for a cursor", "limit=1", token, 200, "")
					c, _ := page["next_cursor"].(string)
					if c == "" {
						t.Errorf("%s %s?limit=1: no next_cursor", method, path)
						continue
					}
					v := url.Values{"cursor": {c}}
					if s, ok := page["since"].(string); ok {
						v.Set("since", s)
						v.Set("until", page["until"].(string))
					}
					next := get("cursor", v.Encode(), token, 200, "")
					if next != nil && page != nil && fmt.Sprint(next) == fmt.Sprint(page) {
						t.Errorf("%s %s: the page after the cursor is the first page again", method, path)
					}
					altered := []byte(c)
					altered[3] = map[bool]byte{true: 'B', false: 'A'}[altered[3] == 'A']
					get("altered cursor", "cursor="+url.QueryEscape(string(altered)), token, 400, "cursor")
					if _, ok := page["since"]; ok {
						// The cursor carries its window: the same page without
						// since and until, and refused with another window.
						alone := get("cursor without its window", "cursor="+url.QueryEscape(c), token, 200, "")
						if fmt.Sprint(alone) != fmt.Sprint(next) {
							t.Errorf("%s %s: the page after a cursor differs with and without the window:\n%v\n%v", method, path, alone, next)
						}
						v.Set("until", time.Now().UTC().Format(time.RFC3339Nano))
						get("cursor with another window", v.Encode(), token, 400, "cursor")
					}
					if op.role != "admin" {
						get("cursor of another sensor", "cursor="+url.QueryEscape(c)+"&sensor_id="+sensor, token, 400, "cursor")
					} else {
						get("cursor of another filter", "cursor="+url.QueryEscape(c)+"&action=sql", token, 400, "cursor")
					}
					continue
				}
				v, ok := validValue(p)
				if !ok {
					t.Errorf("%s %s: no valid value known for the documented parameter %s (line %d)", method, path, p.name, p.documentedPosition)
					continue
				}
				get("valid "+p.name, p.name+"="+url.QueryEscape(v), token, 200, "")
				for _, e := range p.examples {
					get("documented example of "+p.name, p.name+"="+url.QueryEscape(e), token, 200, "")
				}
				if slices.Contains(repeatable, p.name) {
					// These repeat for OR.
					get(p.name+" given twice", p.name+"="+url.QueryEscape(v)+"&"+p.name+"="+url.QueryEscape(v), token, 200, "")
				} else {
					get(p.name+" given twice", p.name+"="+url.QueryEscape(v)+"&"+p.name+"="+url.QueryEscape(v), token, 400, p.name)
				}
				for _, e := range p.enum {
					get("valid "+p.name+" (enum)", p.name+"="+url.QueryEscape(e), token, 200, "")
				}
				if p.name == "kind" {
					for _, k := range heartbeat.AllEventKinds {
						get("kind "+k, "kind="+k, token, 200, "")
					}
					get("unknown kind", "kind=network_connect,nope", token, 400, "kind")
				}
				if p.name == "sensor_id" {
					get("sensor_id not a UUID", "sensor_id=host-1", token, 400, "sensor_id")
				}
				if p.name == "sort" {
					// The fields the service says are sortable are the
					// documented ones, each both ways.
					e := get("unknown sort field", "sort=bogus", token, 400, "sort")
					msg, _ := e["error"].(string)
					_, fields, _ := strings.Cut(msg, "sortable: ")
					fields, _, _ = strings.Cut(fields, " (")
					var want []string
					for _, v := range p.enum {
						if !strings.HasPrefix(v, "-") {
							want = append(want, v)
							if !slices.Contains(p.enum, "-"+v) {
								t.Errorf("%s %s: sort documents %s but not -%s", method, path, v, v)
							}
						}
					}
					if got := strings.Split(fields, ", "); !slices.Equal(got, want) {
						t.Errorf("%s %s: the service sorts by %v, documented %v", method, path, got, want)
					}
				}
				if p.name == "since" || p.name == "until" {
					get(p.name+" not a time", p.name+"=yesterday", token, 400, p.name)
				}
				if p.min != "" {
					lo, _ := strconv.Atoi(p.min)
					get(p.name+" at its minimum", p.name+"="+p.min, token, 200, "")
					get(p.name+" below its minimum", p.name+"="+strconv.Itoa(lo-1), token, 400, p.name)
					get(p.name+" not a number", p.name+"=ten", token, 400, p.name)
				}
				if p.max != "" {
					hi, _ := strconv.Atoi(p.max)
					get(p.name+" at its maximum", p.name+"="+p.max, token, 200, "")
					get(p.name+" above its maximum", p.name+"="+strconv.Itoa(hi+1), token, 400, p.name)
				}
				echo := map[string]string{"page": "current_page"}[p.name]
				if echo == "" {
					echo = p.name
				}
				if got, ok := first[echo].(float64); ok && p.def != "" && strconv.FormatFloat(got, 'f', -1, 64) != p.def {
					t.Errorf("%s %s: %s defaults to %v, documented %s", method, path, p.name, got, p.def)
				}
			}
			if op.role != "admin" && slices.ContainsFunc(op.params, func(p *oaParam) bool { return p.name == "since" }) {
				get("window of more than 92 days", "since=2026-01-01T00:00:00Z&until=2026-06-01T00:00:00Z", token, 400, "since")
				get("window ending before it starts", "since=2026-06-01T00:00:00Z&until=2026-05-01T00:00:00Z", token, 400, "since")
			}

			// Storage faults, on the service that injects them.
			for _, fc := range []struct {
				mode int32
				want int
			}{{oaDown, 503}, {oaBroken, 500}, {oaSlow, 504}} {
				faults.mode.Store(fc.mode)
				q := withRequired(op, "")
				if q != "" {
					q = "?" + q
				}
				r := oaSend(t, method, withSQL+path+q, tokenFor(op), body)
				faults.mode.Store(oaHealthy)
				check(fmt.Sprintf("storage fault %d", fc.mode), path, method, r, fc.want, "")
			}
		}
	}

	// /healthz while storage is down.
	faults.mode.Store(oaDown)
	check("health while storage is down", "/healthz", "GET", oaSend(t, "GET", withSQL+"/healthz", "", nil), 503, "")
	faults.mode.Store(oaHealthy)

	// Revoking what does not exist.
	for p, b := range map[string]string{"/api/v1/admin/tokens/revoke": `{"id":"ffffffffffffffff"}`,
		"/api/v1/admin/enrollment-secrets/revoke": `{"id":"ffffffffffffffff"}`, "/api/v1/admin/sensor-keys/revoke": `{"id":"ffffffffffffffff","reenroll":true}`} {
		check("revoke an unknown id", p, "POST", oaSend(t, "POST", f.url+p, adminToken, []byte(b)), 404, "")
	}

	// A blocked key cannot be revoked again with reenroll.
	blocked := sensorKey(t, f)
	revoke := f.url + "/api/v1/admin/sensor-keys/revoke"
	check("block a key", "/api/v1/admin/sensor-keys/revoke", "POST", oaSend(t, "POST", revoke, adminToken, []byte(`{"id":"`+blocked+`","reenroll":false}`)), 200, "")
	check("revoke a blocked key with reenroll", "/api/v1/admin/sensor-keys/revoke", "POST", oaSend(t, "POST", revoke, adminToken, []byte(`{"id":"`+blocked+`","reenroll":true}`)), 409, "")

	// POST /api/v1/sql exists only with analyst SQL; its body is limited.
	check("analyst SQL when not enabled", "/api/v1/sql", "POST", oaSend(t, "POST", f.url+"/api/v1/sql", analystToken, []byte("SELECT 1")), 404, "")
	check("SQL body over 1 MiB", "/api/v1/sql", "POST", oaSendHeaders(t, withSQL, "/api/v1/sql", analystToken, 1<<20+1), 400, "")

	// An address that failed to sign in too often waits, on every operation
	// and with a right token too: a service whose bucket holds one failure
	// and does not refill within the test.
	locked := oaStartWithSQL(t, faults, 5*time.Second, func(c *query.Config) { c.AuthFailRate, c.AuthFailBurst = 1e-6, 1 })
	check("one wrong token", "/api/v1/network/summary", "GET", oaSend(t, "GET", locked+"/api/v1/network/summary", "wrong", nil), 401, "")
	for _, path := range documented {
		for method, op := range doc.paths[path] {
			if op.role == "" {
				continue
			}
			var body []byte
			if method == "POST" {
				body = []byte(cmp.Or(adminBody[path], "SELECT 1"))
			}
			check("a right token from a locked-out address", path, method, oaSend(t, method, locked+path, tokenFor(op), body), 429, "")
		}
	}

	// Every documented operation and status is exercised above.
	for path, ops := range doc.paths {
		for m, op := range ops {
			for code := range op.responses {
				if k := fmt.Sprintf("%s %s %d", m, path, code); !seen[k] {
					t.Errorf("docs/openapi-query.yaml documents %s, but no request in this test gets that answer", k)
				}
			}
		}
	}

	// A path under /api/ that is not documented is not served, with or
	// without SQL; every path outside /api/ is the Console's page.
	for _, p := range []string{"/api", "/api/", "/api/v1", "/api/v1/network", "/api/v2/network", "/api/v3/events",
		"/api/v2/network/summary", "/api/v2/sql", "/api/v1/network/connections/",
		"/api/v1/network/sctp", "/api/v2/network/sctp", "/", "/API/v1/events", "/metrics/", "/v1/heartbeat", "/healthz/"} {
		for _, b := range []string{f.url, withSQL} {
			r := oaSend(t, "GET", b+p, viewerToken, nil)
			if !strings.HasPrefix(p, "/api") {
				mt, _, _ := mime.ParseMediaType(r.header.Get("Content-Type"))
				if r.status != http.StatusOK || mt != "text/html" || r.header.Get("Content-Security-Policy") == "" {
					t.Errorf("GET %s answered %d %q, want the Console's page", p, r.status, r.header.Get("Content-Type"))
				}
				continue
			}
			var e map[string]any
			if r.status != http.StatusNotFound || json.Unmarshal(r.body, &e) != nil || e["error"] == nil {
				t.Errorf("GET %s answered %d %q, want 404 with an error body for an undocumented path", p, r.status, r.body)
			}
		}
	}
}

// docs/api.md, the guide, covers every path of the OpenAPI file and every
// event kind.
func TestAPIDocMentionsEveryPath(t *testing.T) {
	doc := parseQueryOpenAPI(t)
	b, err := os.ReadFile(apiGuideFile)
	if err != nil {
		t.Fatal(err)
	}
	guide := string(b)
	if len(doc.paths) == 0 {
		t.Fatal("no paths parsed from docs/openapi-query.yaml")
	}
	for p := range doc.paths {
		if !strings.Contains(guide, p) {
			t.Errorf("docs/api.md does not mention %s", p)
		}
	}
	for _, k := range heartbeat.AllEventKinds {
		if !strings.Contains(guide, "`"+k+"`") {
			t.Errorf("docs/api.md does not mention the event kind %s", k)
		}
	}
}
