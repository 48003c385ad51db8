package scaleout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/netview/netview/internal/store"
)

// apiClient asks the query API.
var apiClient = &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}}

// answer is one response.
type answer struct {
	status int
	body   []byte
	t0, t1 time.Time
	err    error
}

func get(ctx context.Context, base, path string) answer {
	a := answer{t0: time.Now()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		a.err = err
		return a
	}
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := apiClient.Do(req)
	if err != nil {
		a.err, a.t1 = err, time.Now()
		return a
	}
	a.status = resp.StatusCode
	a.body, a.err = io.ReadAll(resp.Body)
	resp.Body.Close()
	a.t1 = time.Now()
	return a
}

// staleModel knows, per sensor, the instant after which the views call it
// stale: its newest received_at plus max(3 intervals, 45 s), the rule of
// the query service. A row's stale flag depends on when it was asked, so
// answers are compared with the flag checked against this model instead of
// byte for byte.
type staleModel map[string]time.Time

func loadStaleModel(t *testing.T, st store.Store) staleModel {
	t.Helper()
	var id proto.ColStr
	var recv proto.ColInt64
	var iv proto.ColUInt64
	m := staleModel{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := st.Select(ctx, store.Query{SQL: `SELECT toString(sensor_id) AS id, toUnixTimestamp64Milli(max(received_at)) AS r, toUInt64(argMax(interval_secs, seq)) AS i
		FROM sensors GROUP BY sensor_id`}, proto.Results{{Name: "id", Data: &id}, {Name: "r", Data: &recv}, {Name: "i", Data: &iv}}, func(rows int) error {
		for i := range rows {
			m[id.Row(i)] = time.UnixMilli(recv.Row(i)).Add(max(3*time.Duration(iv.Row(i))*time.Second, 45*time.Second))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

const staleSlack = 50 * time.Millisecond

// normalize decodes an answer to compare it: generated_at (the time of the
// request) is dropped, and every stale or sensor_stale flag is checked
// against the model for the request's time and then dropped. It returns
// canonical JSON (keys sorted, numbers as written).
func normalize(a answer, m staleModel) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(a.body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("trailing data after the JSON value")
	}
	if top, ok := v.(map[string]any); ok {
		delete(top, "generated_at")
	}
	var bad []string
	var walk func(x any)
	walk = func(x any) {
		switch x := x.(type) {
		case map[string]any:
			sid, _ := x["sensor_id"].(string)
			for _, k := range []string{"stale", "sensor_stale"} {
				f, ok := x[k]
				if !ok || sid == "" {
					continue
				}
				got, isBool := f.(bool)
				flip, known := m[sid]
				switch {
				case !isBool:
					bad = append(bad, fmt.Sprintf("%s of %s is %v, not a boolean", k, sid, f))
				case !known:
					bad = append(bad, fmt.Sprintf("sensor %s is not in the store's sensors table", sid))
				case a.t0.After(flip.Add(staleSlack)) && !got:
					bad = append(bad, fmt.Sprintf("%s of %s is false, but it was asked %v after the sensor turned stale", k, sid, a.t0.Sub(flip)))
				case a.t1.Before(flip.Add(-staleSlack)) && got:
					bad = append(bad, fmt.Sprintf("%s of %s is true, but it was asked %v before the sensor turned stale", k, sid, flip.Sub(a.t1)))
				}
				delete(x, k)
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	if len(bad) > 0 {
		if len(bad) > 3 {
			bad = append(bad[:3], fmt.Sprintf("... %d in all", len(bad)))
		}
		return nil, errors.New(strings.Join(bad, "; "))
	}
	return json.Marshal(v)
}

// firstDiff names the first place two canonical JSON documents differ.
func firstDiff(a, b []byte) string {
	var x, y any
	_ = json.Unmarshal(a, &x)
	_ = json.Unmarshal(b, &y)
	return diffAt("$", x, y)
}

func diffAt(path string, x, y any) string {
	switch xv := x.(type) {
	case map[string]any:
		yv, ok := y.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s: object vs %T", path, y)
		}
		keys := make([]string, 0, len(xv)+len(yv))
		for k := range xv {
			keys = append(keys, k)
		}
		for k := range yv {
			if _, ok := xv[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			if d := diffAt(path+"."+k, xv[k], yv[k]); d != "" {
				return d
			}
		}
		return ""
	case []any:
		yv, ok := y.([]any)
		if !ok {
			return fmt.Sprintf("%s: array vs %T", path, y)
		}
		for i := range min(len(xv), len(yv)) {
			if d := diffAt(fmt.Sprintf("%s[%d]", path, i), xv[i], yv[i]); d != "" {
				return d
			}
		}
		if len(xv) != len(yv) {
			return fmt.Sprintf("%s: %d elements vs %d", path, len(xv), len(yv))
		}
		return ""
	default:
		if fmt.Sprint(x) != fmt.Sprint(y) {
			return fmt.Sprintf("%s: %v vs %v", path, x, y)
		}
		return ""
	}
}

// nextCursor reads next_cursor from a page ("" when null or absent).
func nextCursor(body []byte) (string, error) {
	var p struct {
		Next *string `json:"next_cursor"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return "", err
	}
	if p.Next == nil {
		return "", nil
	}
	return *p.Next, nil
}

// withCursor adds cursor=c to path.
func withCursor(path, c string) string {
	if c == "" {
		return path
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return path + sep + "cursor=" + url.QueryEscape(c)
}

func rfc3339ms(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
