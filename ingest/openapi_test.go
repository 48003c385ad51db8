package ingest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
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
	"github.com/google/uuid"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/ingest"
	"github.com/netview/netview/internal/creds"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/internal/store/storetest"
)

const openAPIFile = "../docs/openapi.yaml"

// documentedResponse is what docs/openapi.yaml promises for one status of
// one operation: the headers it always carries and its media types.
type documentedResponse struct {
	headers []string
	media   []string
}

// openAPIDoc maps path -> method -> status -> response.
type openAPIDoc map[string]map[string]map[int]*documentedResponse

var (
	oaPath    = regexp.MustCompile(`^  (/\S*):$`)
	oaMethod  = regexp.MustCompile(`^    (get|put|post|delete|options|head|patch|trace):$`)
	oaStatus  = regexp.MustCompile(`^        '(\d{3})':$`)
	oaSection = regexp.MustCompile(`^          (\S+):$`)
	oaKey     = regexp.MustCompile(`^            ([^\s:'"][^:]*|'[^']+'|"[^"]+"):$`)
	oaFileRef = regexp.MustCompile(`^\s+\$ref:\s*['"]?([^'"#\s]+)['"]?\s*$`)
)

func indent(line string) int { return len(line) - len(strings.TrimLeft(line, " ")) }

// parseOpenAPI reads the few things the test needs from the document with
// line-based parsing (the project has no YAML library): the operations
// under paths, their response statuses, and each response's headers and
// media types. It relies on the file's two-space indentation. It also
// returns the relative files the document points to with $ref.
func parseOpenAPI(t *testing.T, file string) (openAPIDoc, []string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc := openAPIDoc{}
	var refs []string
	var (
		inPaths bool
		path    string
		method  string
		resp    *documentedResponse
		section string
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), " \t\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if strings.Contains(line, "\t") {
			t.Fatalf("%s:%d: tab in indentation; the parser here needs spaces", file, n)
		}
		if m := oaFileRef.FindStringSubmatch(line); m != nil {
			refs = append(refs, m[1])
		}
		ind := indent(line)
		if ind == 0 {
			inPaths = line == "paths:"
			path, method, resp, section = "", "", nil, ""
			continue
		}
		if !inPaths {
			continue
		}
		if ind <= 2 {
			path, method, resp, section = "", "", nil, ""
		}
		if ind <= 4 {
			method, resp, section = "", nil, ""
		}
		if ind <= 8 {
			resp, section = nil, ""
		}
		if ind <= 10 {
			section = ""
		}
		switch {
		case oaPath.MatchString(line):
			path = oaPath.FindStringSubmatch(line)[1]
			if doc[path] != nil {
				t.Fatalf("%s:%d: path %s documented twice", file, n, path)
			}
			doc[path] = map[string]map[int]*documentedResponse{}
		case oaMethod.MatchString(line) && path != "":
			method = oaMethod.FindStringSubmatch(line)[1]
			doc[path][method] = map[int]*documentedResponse{}
		case oaStatus.MatchString(line) && method != "":
			code, _ := strconv.Atoi(oaStatus.FindStringSubmatch(line)[1])
			resp = &documentedResponse{}
			doc[path][method][code] = resp
		case oaSection.MatchString(line) && resp != nil:
			section = oaSection.FindStringSubmatch(line)[1]
		case oaKey.MatchString(line) && resp != nil:
			key := strings.Trim(oaKey.FindStringSubmatch(line)[1], `'"`)
			switch section {
			case "headers":
				resp.headers = append(resp.headers, key)
			case "content":
				resp.media = append(resp.media, key)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return doc, refs
}

// outageStore is the real store with an outage that can be switched on
// after the node has migrated its schema.
type outageStore struct {
	store.Store
	down atomic.Bool
}

func (o *outageStore) Insert(ctx context.Context, table string, cols proto.Input) error {
	if o.down.Load() {
		return fmt.Errorf("%w: outage injected by the OpenAPI test", store.ErrUnavailable)
	}
	return o.Store.Insert(ctx, table, cols)
}

func (o *outageStore) Exec(ctx context.Context, q store.Query) error {
	if o.down.Load() {
		return fmt.Errorf("%w: outage injected by the OpenAPI test", store.ErrUnavailable)
	}
	return o.Store.Exec(ctx, q)
}

// Select fails too, as in a real outage: otherwise the node's recovery
// probe (a read) finds storage up and /healthz says ok.
func (o *outageStore) Select(ctx context.Context, q store.Query, result proto.Results, onBlock func(rows int) error) error {
	if o.down.Load() {
		return fmt.Errorf("%w: outage injected by the OpenAPI test", store.ErrUnavailable)
	}
	return o.Store.Select(ctx, q, result, onBlock)
}

type answer struct {
	status int
	header http.Header
	body   string
}

func call(t *testing.T, method, url string, body []byte, headers map[string]string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// The routes in ingest/server.go and docs/openapi.yaml describe the same
// interface: the same paths and methods, every answer a real node gives is
// a status documented for it (with the headers and media type documented),
// and every documented status is one the node really gives.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc, refs := parseOpenAPI(t, openAPIFile)

	// The document's paths are exactly the node's routes (Server.Handle).
	var paths []string
	for p := range doc {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	if want := []string{"/healthz", "/metrics", "/v1/enroll", "/v1/heartbeat", "/v1/rotate"}; !slices.Equal(paths, want) {
		t.Fatalf("documented paths %v, want the routes of ingest/server.go %v", paths, want)
	}

	// Relative $refs (the heartbeat JSON Schema) point at files that exist.
	if !slices.Contains(refs, "heartbeat.schema.json") {
		t.Errorf("the request body does not refer to heartbeat.schema.json (refs: %v)", refs)
	}
	for _, r := range refs {
		if _, err := os.Stat(filepath.Join(filepath.Dir(openAPIFile), r)); err != nil {
			t.Errorf("$ref %s: %v", r, err)
		}
	}

	n := startNode(t, testConfig(), nil)
	outage := &outageStore{Store: storetest.Embedded(t).Store}
	down := startNode(t, testConfig(), outage)
	// A key on the node whose storage goes down, for a rotation it cannot
	// write.
	_, downKey, _ := down.Enroll(token, uuid.New(), "h")
	outage.down.Store(true)
	// A node that lets one request a second through... once in 1000 s.
	limitedCfg := testConfig()
	limitedCfg.IPRate = 0.001
	limited := startNode(t, limitedCfg, nil)
	limited.post(nil, nil) // spends the bucket
	// A node whose storage refuses one sensor's events (422).
	poisonGen := heartbeat.NewGenerator(99, heartbeat.Shape{Conns: 1, Events: 1})
	poisoned := startNode(t, testConfig(), &poisonStore{Store: storetest.Embedded(t).Store, sensor: poisonGen.Sensor.SensorID})
	poisonBody, err := heartbeat.Encode(poisonGen.Next(time.Now()))
	if err != nil {
		t.Fatal(err)
	}

	// Sensor keys: one in use, one revoked, one blocked.
	sensor, blocked := uuid.New(), uuid.New()
	_, key, _ := n.Enroll(token, sensor, "h")
	_, revokedKey, _ := n.Enroll(token, uuid.New(), "h")
	_, blockedKey, _ := n.Enroll(token, blocked, "h")
	cs := creds.NewStore(n.store, time.Minute)
	for _, k := range []struct {
		key      string
		reenroll bool
	}{{revokedKey, true}, {blockedKey, false}} {
		_, id, _ := creds.Parse(k.key)
		if _, err := cs.Revoke(context.Background(), id, "test", k.reenroll); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(150 * time.Millisecond) // the node's copy is at most 100 ms old
	_, keyID, _ := creds.Parse(key)
	enrollBody := func(id uuid.UUID) []byte {
		b, _ := json.Marshal(ingest.EnrollRequest{SensorID: id.String(), Hostname: "host-1"})
		return b
	}
	rotateBody := func(keyID string) []byte {
		c, _, _ := creds.New(creds.Sensor)
		if keyID == "" {
			keyID = c.ID
		}
		b, _ := json.Marshal(ingest.RotateRequest{KeyID: keyID, KeySHA256: hex.EncodeToString(c.Hash[:])})
		return b
	}
	jsonAuth := func(secret string) map[string]string {
		return map[string]string{"Authorization": "Bearer " + secret, "Content-Type": "application/json"}
	}

	g := heartbeat.NewGenerator(4242, heartbeat.Shape{Conns: 5, Listeners: 2, UDP: 1, ActiveFlows: 1, CompletedFlows: 1, Events: 2})
	zstdBody := func() []byte {
		b, err := heartbeat.Encode(g.Next(time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	plainBody := func() []byte {
		b, err := json.Marshal(g.Next(time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	auth := "Bearer " + token
	hb := func(enc string) map[string]string {
		return map[string]string{"Authorization": auth, "Content-Type": "application/json", "Content-Encoding": enc}
	}
	// 4 MiB of spaces compress to a few hundred bytes: over the ratio cap.
	bomb := heartbeat.Compress(bytes.Repeat([]byte(" "), 4<<20))

	type probe struct {
		name, method, path string
		base               string
		body               []byte
		headers            map[string]string
		want               int
		check              func(a answer) error
	}
	probes := []probe{
		{name: "valid zstd heartbeat", method: "POST", path: "/v1/heartbeat", body: zstdBody(), headers: hb("zstd"), want: 200,
			check: func(a answer) error {
				var ack map[string]any
				if err := json.Unmarshal([]byte(a.body), &ack); err != nil {
					return err
				}
				var keys []string
				for k := range ack {
					keys = append(keys, k)
				}
				slices.Sort(keys)
				if want := []string{"heartbeat_id", "rows", "seq"}; !slices.Equal(keys, want) {
					return fmt.Errorf("acknowledgement has members %v, want %v", keys, want)
				}
				return nil
			}},
		{name: "valid plain heartbeat (identity)", method: "POST", path: "/v1/heartbeat", body: plainBody(), headers: hb("identity"), want: 200},
		{name: "wrong token", method: "POST", path: "/v1/heartbeat", body: zstdBody(),
			headers: map[string]string{"Authorization": "Bearer not-the-token", "Content-Encoding": "zstd"}, want: 401},
		{name: "no token", method: "POST", path: "/v1/heartbeat", body: zstdBody(), headers: map[string]string{"Content-Encoding": "zstd"}, want: 401},
		{name: "GET on the heartbeat endpoint", method: "GET", path: "/v1/heartbeat", headers: map[string]string{"Authorization": auth}, want: 405},
		{name: "garbage zstd", method: "POST", path: "/v1/heartbeat", body: []byte("this is not zstd"), headers: hb("zstd"), want: 400},
		{name: "garbage JSON", method: "POST", path: "/v1/heartbeat", body: []byte(`{"format": 1, "seq": `), headers: hb("identity"), want: 400},
		{name: "gzip encoding", method: "POST", path: "/v1/heartbeat", body: zstdBody(), headers: hb("gzip"), want: 415},
		{name: "decompressed document over the limit", method: "POST", path: "/v1/heartbeat", body: bomb, headers: hb("zstd"), want: 413},
		{name: "heartbeat for another sensor than the key's", method: "POST", path: "/v1/heartbeat", body: zstdBody(),
			headers: map[string]string{"Authorization": "Bearer " + key, "Content-Encoding": "zstd"}, want: 403},
		{name: "heartbeat with a revoked key", method: "POST", path: "/v1/heartbeat", body: zstdBody(),
			headers: map[string]string{"Authorization": "Bearer " + revokedKey, "Content-Encoding": "zstd"}, want: 401},
		{name: "heartbeat over the address's rate", base: limited.url, method: "POST", path: "/v1/heartbeat", body: zstdBody(), headers: hb("zstd"), want: 429},

		{name: "enroll", method: "POST", path: "/v1/enroll", body: enrollBody(uuid.New()), headers: jsonAuth(token), want: 200,
			check: func(a answer) error {
				var e ingest.EnrollAnswer
				if err := json.Unmarshal([]byte(a.body), &e); err != nil || !strings.HasPrefix(e.Key, "nvs_"+e.KeyID+"_") {
					return fmt.Errorf("enroll answer %s: %v", a.body, err)
				}
				return nil
			}},
		{name: "enroll with a bad body", method: "POST", path: "/v1/enroll", body: []byte(`{"sensor_id":"x"}`), headers: jsonAuth(token), want: 400},
		{name: "enroll without a secret", method: "POST", path: "/v1/enroll", body: enrollBody(uuid.New()), want: 401},
		{name: "enroll with a sensor key", method: "POST", path: "/v1/enroll", body: enrollBody(uuid.New()), headers: jsonAuth(key), want: 403},
		{name: "enroll a blocked sensor", method: "POST", path: "/v1/enroll", body: enrollBody(blocked), headers: jsonAuth(token), want: 403},
		{name: "GET on enroll", method: "GET", path: "/v1/enroll", headers: jsonAuth(token), want: 405},
		{name: "enroll an enrolled sensor", method: "POST", path: "/v1/enroll", body: enrollBody(sensor), headers: jsonAuth(token), want: 409},
		{name: "enroll with a large body", method: "POST", path: "/v1/enroll", body: bytes.Repeat([]byte(" "), 5000), headers: jsonAuth(token), want: 413},
		{name: "enroll over the address's rate", base: limited.url, method: "POST", path: "/v1/enroll", body: enrollBody(uuid.New()), headers: jsonAuth(token), want: 429},
		{name: "enroll with storage down", base: down.url, method: "POST", path: "/v1/enroll", body: enrollBody(uuid.New()), headers: jsonAuth(token), want: 503},

		{name: "rotate with a bad body", method: "POST", path: "/v1/rotate", body: []byte(`{"key_id":"x","key_sha256":"y"}`), headers: jsonAuth(key), want: 400},
		{name: "rotate a revoked key", method: "POST", path: "/v1/rotate", body: rotateBody(""), headers: jsonAuth(revokedKey), want: 401},
		{name: "rotate a static secret", method: "POST", path: "/v1/rotate", body: rotateBody(""), headers: jsonAuth(token), want: 403},
		{name: "GET on rotate", method: "GET", path: "/v1/rotate", headers: jsonAuth(key), want: 405},
		{name: "rotate onto a taken id", method: "POST", path: "/v1/rotate", body: rotateBody(keyID), headers: jsonAuth(key), want: 409},
		{name: "rotate with a large body", method: "POST", path: "/v1/rotate", body: bytes.Repeat([]byte(" "), 5000), headers: jsonAuth(key), want: 413},
		{name: "rotate over the address's rate", base: limited.url, method: "POST", path: "/v1/rotate", body: rotateBody(""), headers: jsonAuth(key), want: 429},
		{name: "rotate with storage down", base: down.url, method: "POST", path: "/v1/rotate", body: rotateBody(""), headers: jsonAuth(downKey), want: 503},
		{name: "rotate", method: "POST", path: "/v1/rotate", body: rotateBody(""), headers: jsonAuth(key), want: 200},
		{name: "storage down", base: down.url, method: "POST", path: "/v1/heartbeat", body: zstdBody(), headers: hb("zstd"), want: 503},
		{name: "rows refused by storage", base: poisoned.url, method: "POST", path: "/v1/heartbeat", body: poisonBody, headers: hb("zstd"), want: 422},
		{name: "health", method: "GET", path: "/healthz", want: 200,
			check: func(a answer) error {
				if a.body != "ok\n" {
					return fmt.Errorf("body %q, want %q", a.body, "ok\n")
				}
				return nil
			}},
		// After the write above found storage down.
		{name: "health while storage is down", base: down.url, method: "GET", path: "/healthz", want: 503},
		{name: "metrics", method: "GET", path: "/metrics", want: 200,
			check: func(a answer) error {
				if !strings.Contains(a.body, "# TYPE netview_ingest_heartbeats_accepted_total counter\n") {
					return fmt.Errorf("no Prometheus text:\n%s", a.body)
				}
				return nil
			}},
	}

	// Statuses documented but not reproducible from outside.
	unreachable := map[string]bool{"POST /v1/heartbeat 500": true}
	seen := map[string]bool{}
	for _, p := range probes {
		base := p.base
		if base == "" {
			base = n.url
		}
		a := call(t, p.method, base+p.path, p.body, p.headers)
		if a.status != p.want {
			t.Errorf("%s: %s %s answered %d %q, want %d", p.name, p.method, p.path, a.status, a.body, p.want)
			continue
		}
		if p.check != nil {
			if err := p.check(a); err != nil {
				t.Errorf("%s: %v", p.name, err)
			}
		}
		// The status must be documented. A method the path does not take
		// is documented as 405 under the method it does take.
		ops := doc[p.path]
		op, method := ops[strings.ToLower(p.method)], p.method
		if op == nil && a.status == http.StatusMethodNotAllowed && len(ops) == 1 {
			for m, o := range ops {
				op, method = o, strings.ToUpper(m)
			}
		}
		if op == nil {
			t.Errorf("%s: %s %s is not documented", p.name, p.method, p.path)
			continue
		}
		r := op[a.status]
		if r == nil {
			t.Errorf("%s: %s %s answered %d, which docs/openapi.yaml does not list for %s %s", p.name, p.method, p.path, a.status, method, p.path)
			continue
		}
		seen[fmt.Sprintf("%s %s %d", method, p.path, a.status)] = true
		for _, h := range r.headers {
			if a.header.Get(h) == "" {
				t.Errorf("%s: %d answer lacks the documented header %s", p.name, a.status, h)
			}
		}
		if len(r.media) > 0 {
			mt, _, err := mime.ParseMediaType(a.header.Get("Content-Type"))
			if err != nil || !slices.Contains(r.media, mt) {
				t.Errorf("%s: Content-Type %q, documented %v", p.name, a.header.Get("Content-Type"), r.media)
			}
		}
	}

	// Every documented operation and status is exercised above.
	for path, ops := range doc {
		for m, codes := range ops {
			for code := range codes {
				k := fmt.Sprintf("%s %s %d", strings.ToUpper(m), path, code)
				if !seen[k] && !unreachable[k] {
					t.Errorf("docs/openapi.yaml documents %s, but no request in this test gets that answer", k)
				}
			}
		}
	}

	// A path that is not documented is not served.
	for _, p := range []string{"/v1/nope", "/", "/v1/heartbeat/extra"} {
		if a := call(t, "GET", n.url+p, nil, nil); a.status != http.StatusNotFound {
			t.Errorf("GET %s answered %d %q, want 404 for an undocumented path", p, a.status, a.body)
		}
	}
}
