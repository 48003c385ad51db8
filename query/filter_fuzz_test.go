package query

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/netview/netview/internal/store"
)

var (
	// A placeholder: the only place a value may be named in the SQL.
	fuzzPlaceholder = regexp.MustCompile(`\{(\w+):(UInt16|UInt32|UInt64|String|IPv6|Array\(String\))\}`)
	fuzzWord        = regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?`)
	// The words the filters' SQL is made of, beside the table's columns.
	fuzzKeywords = []string{"AND", "OR", "IN", "BETWEEN", "startsWith", "endsWith", "lower", "has",
		// host= and q=: the sensors of a hostname (sensorsWhoseHost).
		"SELECT", "FROM", "WHERE", "GROUP", "BY", "AS", "argMax", "sensors", "sensor_id", "hostname", "seq", "host"}
	fuzzColumns = []string{"container_id", "container_name", "pod_uid", "pod_namespace", "pod", "netns",
		"local_address", "remote_address", "local_port", "remote_port", "src_address", "dst_address", "src_port", "dst_port",
		"protocol", "state", "direction", "binary", "binary_path", "pid", "uid", "query_name", "kind", "answers", "sensor_id"}
)

// FuzzFilters reads any query string as the filters of every list and of
// the events: the parser never panics, and the SQL it builds holds no
// value: with its placeholders taken out, it is only keywords, the
// table's columns and punctuation, and every value is a parameter that a
// placeholder names.
func FuzzFilters(f *testing.F) {
	for _, s := range []string{
		"addr=203.0.113.7", "addr=10.0.0.0/8&addr=2001:db8::/32", "local_addr=::ffff:1.2.3.4&remote_addr=0.0.0.0/0",
		"src_addr=fe80::1%25eth0", "port=443&port=65535", "port=0", "protocol=sctp", "state=!TIME_WAIT&state=ESTABLISHED",
		"state=refused", "direction=inbound", "binary=post*", "binary_path=/usr/bin/*", "binary='%3B DROP TABLE x", "pid=1&uid=0",
		"dns=*.evil.example", "dns=Example.COM", "answer=203.0.113.7", "container=web-1&pod=prod/db-0&netns=4026531840",
		"binary=}{h0:String}", "binary=a)%20OR%201=1%20--", "dns=*.", "addr=1.2.3.4/",
		"host=web-1", "host=WEB-*&host=db.prod.example", "host=*", "host=a'b", "q=curl", "q=Evil.Example&q=web-1", "q=two%20words",
		"q=post*", "q='%3B DROP TABLE x", "q=}{h0:String}", "host=web-1&q=curl&binary=curl&dns=*.evil.example",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		var args fasthttp.Args
		args.Parse(raw)
		for table, tg := range targets {
			p := &params{args: &args}
			sc := p.scope(tg)
			if p.err != nil {
				if ae, ok := p.err.(*apiError); !ok || ae.Status != 400 || !slices.Contains(scopeParams, ae.Param) {
					t.Fatalf("%s?%s: error %v does not name a filter", tg.name, raw, p.err)
				}
				continue
			}
			_ = sc.key()
			var params []store.Param
			checkFilterSQL(t, table, raw, sc.where(table, &params), params)
			if table == "tcp_connections" {
				// The flows beside a page of connections.
				params = nil
				checkFilterSQL(t, "active_flows", raw, sc.forFlows().where("active_flows", &params), params)
			}
		}
	})
}

func checkFilterSQL(t *testing.T, table, raw, sqlText string, params []store.Param) {
	t.Helper()
	named := map[string]bool{}
	rest := fuzzPlaceholder.ReplaceAllStringFunc(sqlText, func(ph string) string {
		named[fuzzPlaceholder.FindStringSubmatch(ph)[1]] = true
		return " "
	})
	bound := map[string]bool{}
	for _, p := range params {
		if bound[p.Name] {
			t.Fatalf("%s?%s: parameter %s bound twice", table, raw, p.Name)
		}
		bound[p.Name] = true
		if !named[p.Name] {
			t.Fatalf("%s?%s: parameter %s is named by no placeholder of %q", table, raw, p.Name, sqlText)
		}
	}
	for n := range named {
		if !bound[n] {
			t.Fatalf("%s?%s: placeholder %s has no parameter: %q", table, raw, n, sqlText)
		}
	}
	rest = fuzzWord.ReplaceAllStringFunc(rest, func(w string) string {
		col, ok := strings.CutPrefix(w, table+".")
		if !(ok && slices.Contains(fuzzColumns, col)) && !slices.Contains(fuzzKeywords, w) {
			t.Fatalf("%s?%s: %q is neither a keyword nor a column, in %q", table, raw, w, sqlText)
		}
		return " "
	})
	if strings.Trim(rest, " ()[]=!,") != "" {
		t.Fatalf("%s?%s: the SQL has %q beside its words and placeholders: %q", table, raw, strings.Trim(rest, " ()[]=!,"), sqlText)
	}
}
