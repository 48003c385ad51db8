package heartbeat_test

// These tests keep the documentation of the heartbeat wire format
// (docs/heartbeat.md, docs/heartbeat.schema.json, docs/examples/heartbeat.json)
// in step with the Go types of this package and with what its Decoder
// enforces. When one of them fails, fix whichever side is wrong: the docs are
// a contract with sensor authors.

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"net/netip"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/netview/netview/heartbeat"
)

const (
	wireSchemaPath  = "../docs/heartbeat.schema.json"
	wireExamplePath = "../docs/examples/heartbeat.json"
)

// wireReadJSON reads a JSON file into generic values; numbers stay
// json.Number so that 64-bit limits survive exactly.
func wireReadJSON(t *testing.T, path string) ([]byte, map[string]any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return raw, wireParse(t, raw)
}

func wireParse(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("parse JSON: %v", err)
	}
	return m
}

// wireSchema is docs/heartbeat.schema.json with local $ref resolution.
type wireSchema struct {
	t    *testing.T
	root map[string]any
}

func wireLoadSchema(t *testing.T) *wireSchema {
	t.Helper()
	_, m := wireReadJSON(t, wireSchemaPath)
	return &wireSchema{t: t, root: m}
}

// resolve follows a node's $ref chain ("#/$defs/name" only) and merges the
// keywords met on the way; the nearest one wins.
func (s *wireSchema) resolve(node any) map[string]any {
	s.t.Helper()
	n, ok := node.(map[string]any)
	if !ok {
		return nil
	}
	out := map[string]any{}
	for hops := 0; n != nil; hops++ {
		if hops > 16 {
			s.t.Fatalf("schema: $ref cycle")
		}
		for k, v := range n {
			if _, set := out[k]; !set && k != "$ref" {
				out[k] = v
			}
		}
		ref, _ := n["$ref"].(string)
		if ref == "" {
			break
		}
		name, ok := strings.CutPrefix(ref, "#/$defs/")
		if !ok {
			s.t.Fatalf("schema: unsupported $ref %q", ref)
		}
		defs, _ := s.root["$defs"].(map[string]any)
		if n, _ = defs[name].(map[string]any); n == nil {
			s.t.Fatalf("schema: $ref %q names no definition", ref)
		}
	}
	return out
}

// at returns the resolved schema at a path such as "sensor.flavor" or
// "events[].kind" ("[]" steps into an array's items).
func (s *wireSchema) at(path string) map[string]any {
	s.t.Helper()
	n := s.resolve(s.root)
	for _, step := range strings.Split(path, ".") {
		name, items := strings.CutSuffix(step, "[]")
		props, _ := n["properties"].(map[string]any)
		if n = s.resolve(props[name]); n == nil {
			s.t.Fatalf("schema: no property %q on the way to %s", name, path)
		}
		if items {
			if n = s.resolve(n["items"]); n == nil {
				s.t.Fatalf("schema: %s has no items", name)
			}
		}
	}
	return n
}

// types returns the JSON types a resolved schema node allows.
func wireTypes(n map[string]any) []string {
	switch v := n["type"].(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, x := range v {
			s, _ := x.(string)
			out = append(out, s)
		}
		return out
	}
	return nil
}

func wireStrings(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// wireDecode decodes a document with a fresh decoder.
func wireDecode(doc []byte) (*heartbeat.Heartbeat, error) { return heartbeat.Decode(doc) }

// wireRows counts a heartbeat's rows, section by section.
func wireRows(h *heartbeat.Heartbeat) int {
	return len(h.TCPConnections) + len(h.TCPListeners) + len(h.UDPListeners) + len(h.ActiveFlows) +
		len(h.CompletedFlows) + len(h.Events) + len(h.SCTPAssociations) + len(h.SCTPEndpoints)
}

func wireMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wireLen(m map[string]any, section string) int {
	l, _ := m[section].([]any)
	return len(l)
}

func TestExampleHeartbeatDecodes(t *testing.T) {
	raw, m := wireReadJSON(t, wireExamplePath)
	dec, err := heartbeat.Decode(raw)
	if err != nil {
		t.Fatalf("the example heartbeat is refused: %v", err)
	}
	want := wireLen(m, "tcp_connections") + wireLen(m, "tcp_listeners") + wireLen(m, "udp_listeners") +
		wireLen(m, "active_flows") + wireLen(m, "completed_flows") + wireLen(m, "events") +
		wireLen(m, "sctp_associations") + wireLen(m, "sctp_endpoints")
	if got := wireRows(dec); got != want {
		t.Errorf("decoding the example read %d rows, want %d", got, want)
	}
	sensor, _ := m["sensor"].(map[string]any)
	if got := dec.HeartbeatID.String(); got != m["heartbeat_id"] {
		t.Errorf("heartbeat_id %s, example has %v", got, m["heartbeat_id"])
	}
	if got := dec.Sensor.SensorID.String(); got != sensor["sensor_id"] {
		t.Errorf("sensor_id %s, example has %v", got, sensor["sensor_id"])
	}
	if got := fmt.Sprint(dec.Seq); got != m["seq"].(json.Number).String() {
		t.Errorf("seq %s, example has %v", got, m["seq"])
	}

	// encoding/json reads the example into the same values as the Decoder.
	var h heartbeat.Heartbeat
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatalf("the example does not unmarshal into heartbeat.Heartbeat: %v", err)
	}
	if !reflect.DeepEqual(&h, dec) {
		t.Errorf("the Decoder read the example otherwise than encoding/json:\n got %+v\nwant %+v", dec, &h)
	}
	if h.Format != heartbeat.Format {
		t.Errorf("heartbeat.Heartbeat header: format %d seq %d id %s sensor %s", h.Format, h.Seq, h.HeartbeatID, h.Sensor.SensorID)
	}
	if h.Sensor.Flavor != "telecom" || h.Sensor.IntervalSecs != 15 {
		t.Errorf("sensor: flavor %q interval %d, want telecom 15", h.Sensor.Flavor, h.Sensor.IntervalSecs)
	}
	if len(h.TCPConnections) != 3 {
		t.Fatalf("%d tcp_connections, want 3", len(h.TCPConnections))
	}
	var predates, v6, mapped int
	for _, c := range h.TCPConnections {
		if c.DurationSecs == nil {
			predates++
		}
		if c.RemoteAddress.Is6() && !c.RemoteAddress.Is4In6() {
			v6++
		}
		if c.RemoteAddress.Is4In6() {
			mapped++
		}
	}
	if predates != 1 || v6 != 1 || mapped != 1 {
		t.Errorf("connections: %d with duration_secs null, %d IPv6, %d v4-mapped; want one of each", predates, v6, mapped)
	}
	if c := h.TCPConnections[1]; c.PID != 1733 || c.Binary != "fluent-bit" || c.DurationSecs == nil || *c.DurationSecs != 342 {
		t.Errorf("tcp_connections[1] = %+v", c)
	}
	for _, u := range h.UDPListeners {
		if u.Service != heartbeat.ServiceName(u.LocalPort) {
			t.Errorf("udp port %d has service %q, heartbeat.ServiceName says %q", u.LocalPort, u.Service, heartbeat.ServiceName(u.LocalPort))
		}
	}
	kinds := map[string]bool{}
	for _, e := range h.Events {
		kinds[e.Kind] = true
	}
	for _, k := range []string{"network_connect", "network_accept", "network_listen", "dns_query", "dns_lookup", "dns_resolution"} {
		if !kinds[k] {
			t.Errorf("the example has no %s event", k)
		}
	}
	if len(h.CompletedFlows) != 2 || h.CompletedFlows[0].State != "refused" {
		t.Errorf("completed flows: %+v", h.CompletedFlows)
	}
	if a := h.Events[2].Answers; len(a) != 2 || a[0] != netip.MustParseAddr("10.40.9.51") {
		t.Errorf("dns_lookup answers: %v", a)
	}
	// A telecom sensor that sees SCTP: one multi-homed association and its
	// endpoint, and capabilities naming what it can observe.
	if c := h.Sensor.Capabilities; c["sctp"] != "available" || c["flow_source"] == "" || c["lsm"] == "" {
		t.Errorf("sensor.capabilities: %v", c)
	}
	if len(h.SCTPAssociations) != 1 || len(h.SCTPEndpoints) != 1 {
		t.Fatalf("%d sctp_associations and %d sctp_endpoints, want 1 and 1", len(h.SCTPAssociations), len(h.SCTPEndpoints))
	}
	if a := h.SCTPAssociations[0]; len(a.LocalAddresses) != 2 || len(a.RemoteAddresses) != 2 || !slices.Contains(a.RemoteAddresses, a.PrimaryAddress) {
		t.Errorf("sctp_associations[0] is not multi-homed with a primary path among its peers: %+v", a)
	}

	// What the Go types write back is accepted and reads the same.
	again, err := wireDecode(wireMarshal(t, &h))
	if err != nil {
		t.Fatalf("the example re-encoded from heartbeat.Heartbeat is refused: %v", err)
	}
	if !reflect.DeepEqual(again, dec) {
		t.Errorf("the re-encoded example reads otherwise")
	}
}

var (
	wireTextMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
	wireJSONMarshaler = reflect.TypeFor[json.Marshaler]()
)

// wireLeaf reports whether encoding/json writes t itself as a scalar (UUIDs,
// addresses and times are strings on the wire).
func wireLeaf(t reflect.Type) bool {
	for _, x := range []reflect.Type{t, reflect.PointerTo(t)} {
		if x.Implements(wireTextMarshaler) || x.Implements(wireJSONMarshaler) {
			return true
		}
	}
	return false
}

type wireField struct {
	name string
	typ  reflect.Type
}

// wireFields lists a struct's JSON members as encoding/json names them:
// tag names, "-" skipped, untagged embedded structs flattened.
func wireFields(t *testing.T, typ reflect.Type) []wireField {
	var out []wireField
	for i := range typ.NumField() {
		f := typ.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			out = append(out, wireFields(t, f.Type)...)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, wireField{name, f.Type})
	}
	seen := map[string]bool{}
	for _, f := range out {
		if seen[f.name] {
			t.Errorf("%s: JSON name %q used twice", typ, f.name)
		}
		seen[f.name] = true
	}
	return out
}

// wireJSONType is the JSON type encoding/json writes for t.
func wireJSONType(t reflect.Type) string {
	if wireLeaf(t) {
		return "string"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Struct, reflect.Map:
		return "object"
	case reflect.Pointer:
		return wireJSONType(t.Elem())
	}
	return t.Kind().String()
}

// checkWireObject compares one object of the schema with one Go struct.
func (s *wireSchema) checkWireObject(t *testing.T, where string, node map[string]any, typ reflect.Type) {
	t.Helper()
	if !slices.Contains(wireTypes(node), "object") {
		t.Errorf("schema %s: type %v, want object (Go %s)", where, node["type"], typ)
	}
	if node["additionalProperties"] != true {
		t.Errorf("schema %s: additionalProperties must be true: ingest skips unknown members", where)
	}
	props, _ := node["properties"].(map[string]any)
	fields := wireFields(t, typ)
	inGo := map[string]bool{}
	for _, f := range fields {
		inGo[f.name] = true
		if _, ok := props[f.name]; !ok {
			t.Errorf("schema %s lacks property %q (field of Go %s)", where, f.name, typ)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(props)) {
		if !inGo[name] {
			t.Errorf("schema %s has property %q, which Go %s has no JSON field for", where, name, typ)
		}
	}
	for _, req := range wireStrings(node["required"]) {
		if !inGo[req] {
			t.Errorf("schema %s requires %q, which Go %s has no JSON field for", where, req, typ)
		}
	}
	for _, f := range fields {
		p := s.resolve(props[f.name])
		if p == nil {
			continue
		}
		path := where + "." + f.name
		if want := wireJSONType(f.typ); !slices.Contains(wireTypes(p), want) {
			t.Errorf("schema %s: type %v, but Go %s (%s) is written as %s", path, p["type"], typ, f.typ, want)
		}
		if f.typ.Kind() == reflect.Pointer && !slices.Contains(wireTypes(p), "null") {
			t.Errorf("schema %s: Go %s is a pointer (written as null when nil) but the schema does not allow null", path, f.typ)
		}
		ft := f.typ
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case wireLeaf(ft):
		case ft.Kind() == reflect.Struct:
			s.checkWireObject(t, path, p, ft)
		case ft.Kind() == reflect.Slice:
			items := s.resolve(p["items"])
			if items == nil {
				t.Errorf("schema %s: array without items", path)
				continue
			}
			et := ft.Elem()
			if !wireLeaf(et) && et.Kind() == reflect.Struct {
				s.checkWireObject(t, path+"[]", items, et)
			} else if want := wireJSONType(et); !slices.Contains(wireTypes(items), want) {
				t.Errorf("schema %s[]: type %v, Go writes %s", path, items["type"], want)
			}
		}
	}
}

// The schema describes exactly the members the Go types have, with the
// JSON types encoding/json gives them.
func TestSchemaMatchesWireTypes(t *testing.T) {
	s := wireLoadSchema(t)
	if got := s.root["$schema"]; got != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema is %v, want draft 2020-12", got)
	}
	s.checkWireObject(t, "(root)", s.resolve(s.root), reflect.TypeFor[heartbeat.Heartbeat]())
	if got := s.at("format")["const"]; fmt.Sprint(got) != fmt.Sprint(heartbeat.Format) {
		t.Errorf("schema format const is %v, heartbeat.Format is %d", got, heartbeat.Format)
	}
}

func TestSchemaEnumsMatchVocabularies(t *testing.T) {
	s := wireLoadSchema(t)
	for _, c := range []struct {
		path  string
		vocab []string
	}{
		{"sensor.flavor", heartbeat.Flavors},
		{"tcp_connections[].family", heartbeat.Families},
		{"tcp_listeners[].family", heartbeat.Families},
		{"udp_listeners[].family", heartbeat.Families},
		{"tcp_connections[].state", heartbeat.States},
		{"active_flows[].state", heartbeat.States},
		{"completed_flows[].state", heartbeat.FinalStates},
		{"events[].state", heartbeat.FinalStates},
		{"active_flows[].direction", heartbeat.Directions},
		{"completed_flows[].direction", heartbeat.Directions},
		{"active_flows[].protocol", heartbeat.Protocols},
		{"completed_flows[].protocol", heartbeat.Protocols},
		{"events[].protocol", heartbeat.Protocols},
		{"active_flows[].source", heartbeat.Sources},
		{"completed_flows[].source", heartbeat.Sources},
		{"events[].source", heartbeat.Sources},
		{"events[].kind", heartbeat.EventKinds},
		{"sctp_associations[].state", heartbeat.SCTPStates},
	} {
		enum := wireStrings(s.at(c.path)["enum"])
		var missing, extra []string
		for _, v := range c.vocab {
			if !slices.Contains(enum, v) {
				missing = append(missing, v)
			}
		}
		for _, v := range enum {
			if !slices.Contains(c.vocab, v) {
				extra = append(extra, v)
			}
		}
		if len(missing)+len(extra) > 0 || len(enum) != len(c.vocab) {
			t.Errorf("schema %s enum %v differs from internal/heartbeat %v: missing %v, extra %v", c.path, enum, c.vocab, missing, extra)
		}
	}
	// network_flow is stored but never sent: ingest derives it.
	want := append(slices.Clone(heartbeat.EventKinds), "network_flow")
	got := slices.Clone(heartbeat.AllEventKinds)
	sort.Strings(want)
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Errorf("AllEventKinds %v should be EventKinds plus network_flow", heartbeat.AllEventKinds)
	}
	if slices.Contains(heartbeat.States, "LISTEN") {
		t.Errorf("States must not contain LISTEN: listeners have their own section")
	}
}

// wireMember is one member of one object of the example heartbeat.
type wireMember struct {
	where  string // tcp_connections[2].pid, for messages
	path   []any  // keys and indexes from the root to the object holding it
	key    string
	object map[string]any // resolved schema of that object
	prop   map[string]any // resolved schema of the member
}

// wireMembers lists every member of every object of the example with its
// schema, failing for members the schema does not describe.
func (s *wireSchema) wireMembers(t *testing.T, doc map[string]any) []wireMember {
	t.Helper()
	var out []wireMember
	var walk func(obj map[string]any, node map[string]any, where string, path []any)
	walk = func(obj map[string]any, node map[string]any, where string, path []any) {
		props, _ := node["properties"].(map[string]any)
		for _, req := range wireStrings(node["required"]) {
			if _, ok := obj[req]; !ok {
				t.Errorf("example %s lacks %q, which the schema requires", where, req)
			}
		}
		for _, key := range slices.Sorted(maps.Keys(obj)) {
			name := strings.TrimPrefix(where+"."+key, ".")
			p := s.resolve(props[key])
			if p == nil {
				t.Errorf("example member %s is not in the schema", name)
				continue
			}
			out = append(out, wireMember{where: name, path: path, key: key, object: node, prop: p})
			sub := append(slices.Clone(path), key)
			switch v := obj[key].(type) {
			case map[string]any:
				walk(v, p, name, sub)
			case []any:
				items := s.resolve(p["items"])
				for i, e := range v {
					if o, ok := e.(map[string]any); ok && items != nil {
						walk(o, items, fmt.Sprintf("%s[%d]", name, i), append(slices.Clone(sub), i))
					}
				}
			}
		}
	}
	walk(doc, s.resolve(s.root), "", nil)
	return out
}

// wireEdit decodes a copy of the example in which the member m is replaced
// by v (or deleted when del is set).
func wireEdit(t *testing.T, raw []byte, m wireMember, v any, del bool) error {
	t.Helper()
	doc := wireParse(t, raw)
	obj := wireHolder(doc, m.path)
	if del {
		delete(obj, m.key)
	} else {
		obj[m.key] = v
	}
	_, err := wireDecode(wireMarshal(t, doc))
	return err
}

// The decoder requires exactly the members the schema's required arrays
// name, and accepts null exactly where the schema allows it.
func TestSchemaRequiredMatchesDecoder(t *testing.T) {
	s := wireLoadSchema(t)
	raw, doc := wireReadJSON(t, wireExamplePath)
	for _, m := range s.wireMembers(t, doc) {
		required := slices.Contains(wireStrings(m.object["required"]), m.key)
		err := wireEdit(t, raw, m, nil, true)
		switch {
		case required && (err == nil || !errors.Is(err, heartbeat.ErrInvalid) || !strings.Contains(err.Error(), m.key+": required")):
			t.Errorf("without %s: decoder says %v; the schema requires it", m.where, err)
		case !required && err != nil:
			t.Errorf("without %s: decoder refuses (%v); the schema has it optional", m.where, err)
		}

		nullable := slices.Contains(wireTypes(m.prop), "null")
		err = wireEdit(t, raw, m, nil, false)
		switch {
		case nullable && err != nil:
			t.Errorf("%s = null: decoder refuses (%v); the schema allows null", m.where, err)
		case !nullable && err == nil:
			t.Errorf("%s = null: decoder accepts it; the schema does not allow null", m.where)
		}
	}
}

// The limits the schema states (maximum, maxLength, maxItems, const, and
// the formats) are the ones the decoder enforces, at the boundary.
func TestSchemaLimitsMatchDecoder(t *testing.T) {
	s := wireLoadSchema(t)
	raw, doc := wireReadJSON(t, wireExamplePath)
	accept := func(m wireMember, v any, what string) {
		t.Helper()
		if err := wireEdit(t, raw, m, v, false); err != nil {
			t.Errorf("%s = %s: decoder refuses (%v); the schema allows it", m.where, what, err)
		}
	}
	refuse := func(m wireMember, v any, what string) {
		t.Helper()
		err := wireEdit(t, raw, m, v, false)
		if err == nil || !errors.Is(err, heartbeat.ErrInvalid) || !strings.Contains(err.Error(), m.key) {
			t.Errorf("%s = %s: decoder says %v; the schema forbids it", m.where, what, err)
		}
	}
	num := func(n *big.Int) json.Number { return json.Number(n.String()) }
	covered := map[string]bool{}
	for _, m := range s.wireMembers(t, doc) {
		p := m.prop
		if v, ok := p["maximum"].(json.Number); ok {
			covered["maximum "+m.key] = true
			hi, ok := new(big.Int).SetString(v.String(), 10)
			if !ok {
				t.Fatalf("schema %s: maximum %s is not an integer", m.where, v)
			}
			accept(m, num(hi), "its maximum "+hi.String())
			refuse(m, num(new(big.Int).Add(hi, big.NewInt(1))), "maximum+1")
		}
		if v, ok := p["minimum"].(json.Number); ok {
			lo, ok := new(big.Int).SetString(v.String(), 10)
			if !ok {
				t.Fatalf("schema %s: minimum %s is not an integer", m.where, v)
			}
			accept(m, num(lo), "its minimum "+lo.String())
			refuse(m, num(new(big.Int).Sub(lo, big.NewInt(1))), "minimum-1")
		}
		if v, ok := p["maxLength"].(json.Number); ok {
			covered["maxLength "+m.key] = true
			n, _ := v.Int64()
			accept(m, strings.Repeat("x", int(n)), fmt.Sprintf("a string of %d bytes", n))
			refuse(m, strings.Repeat("x", int(n)+1), fmt.Sprintf("a string of %d bytes", n+1))
		}
		if v, ok := p["maxItems"].(json.Number); ok {
			covered["maxItems "+m.key] = true
			n, _ := v.Int64()
			items, _ := wireHolder(doc, m.path)[m.key].([]any)
			if len(items) == 0 {
				t.Fatalf("example %s is empty; cannot test maxItems", m.where)
			}
			many := func(n int) []any { return slices.Repeat(items[:1], n) }
			accept(m, many(int(n)), fmt.Sprintf("%d items", n))
			refuse(m, many(int(n)+1), fmt.Sprintf("%d items", n+1))
		}
		if v, ok := p["const"].(json.Number); ok {
			c, _ := new(big.Int).SetString(v.String(), 10)
			err := wireEdit(t, raw, m, num(new(big.Int).Add(c, big.NewInt(1))), false)
			if !errors.Is(err, heartbeat.ErrFormat) {
				t.Errorf("%s = const+1: decoder says %v, want ErrFormat", m.where, err)
			}
		}
		// Maps (sensor.capabilities): how many entries, which keys, and the
		// limits of values under keys the schema does not list.
		entries := func(n int, v any) map[string]any {
			o := map[string]any{}
			for i := range n {
				o[fmt.Sprintf("k%d", i)] = v
			}
			return o
		}
		if v, ok := p["maxProperties"].(json.Number); ok {
			covered["maxProperties "+m.key] = true
			n, _ := v.Int64()
			accept(m, entries(int(n), "x"), fmt.Sprintf("%d entries", n))
			refuse(m, entries(int(n)+1, "x"), fmt.Sprintf("%d entries", n+1))
		}
		if names := s.resolve(p["propertyNames"]); names != nil {
			covered["propertyNames "+m.key] = true
			pattern, _ := names["pattern"].(string)
			re, err := regexp.Compile(pattern)
			if err != nil || pattern == "" {
				t.Fatalf("schema %s: propertyNames pattern %q: %v", m.where, pattern, err)
			}
			for _, k := range []string{"a", "flow_source", "x9_", strings.Repeat("k", 64), strings.Repeat("k", 65), "", "Flow", "flow-source", "flow.source", "é", " k"} {
				if re.MatchString(k) {
					accept(m, map[string]any{k: "x"}, fmt.Sprintf("a key %q", k))
				} else {
					refuse(m, map[string]any{k: "x"}, fmt.Sprintf("a key %q", k))
				}
			}
		}
		if ap, ok := p["additionalProperties"].(map[string]any); ok {
			if v, ok := s.resolve(ap)["maxLength"].(json.Number); ok {
				covered["additionalProperties maxLength "+m.key] = true
				n, _ := v.Int64()
				accept(m, entries(1, strings.Repeat("x", int(n))), fmt.Sprintf("an unlisted key's value of %d bytes", n))
				refuse(m, entries(1, strings.Repeat("x", int(n)+1)), fmt.Sprintf("an unlisted key's value of %d bytes", n+1))
			}
		}
		if enum := wireStrings(p["enum"]); len(enum) > 0 {
			refuse(m, "not-in-the-vocabulary", "a word outside the enum")
		}
		switch format, _ := p["format"].(string); {
		case format == "uuid":
			covered["uuid"] = true
			refuse(m, "host-1", "host-1")
		case format == "date-time":
			covered["date-time"] = true
			refuse(m, "1999-12-31T23:59:59.999Z", "a time in 1999")
			refuse(m, "2201-01-01T00:00:00Z", "a time in 2201")
			refuse(m, "yesterday", "yesterday")
			if m.key == "sent_at" {
				accept(m, "2000-01-01T00:00:00Z", "2000-01-01")
				accept(m, "2200-12-31T23:59:59.999Z", "2200-12-31")
				accept(m, "2026-03-14T10:26:45.120123+01:00", "a time with an offset and microseconds")
			}
		case p["anyOf"] != nil:
			covered["ip"] = true
			accept(m, "::ffff:192.0.2.1", "a v4-mapped address")
			accept(m, "2001:db8::1", "an IPv6 address")
			refuse(m, "fe80::1%eth0", "an address with a zone")
			refuse(m, "192.0.2.300", "192.0.2.300")
		}
	}
	// Every limit the schema states is tried on at least one member.
	for _, name := range []string{"seq", "netns", "inode", "local_port", "pid", "uid", "interval_secs", "duration_secs", "bytes_sent", "assoc_id", "tx_queue", "rx_queue", "index"} {
		if !covered["maximum "+name] {
			t.Errorf("no member %q with a maximum in the example; its limit went untested", name)
		}
	}
	for _, name := range []string{"hostname", "version", "kernel", "binary", "binary_path", "unit", "container_id", "container_runtime", "pod_uid", "service", "query_name", "query_type", "flow_source", "sctp", "lsm", "site", "name"} {
		if !covered["maxLength "+name] {
			t.Errorf("no member %q with a maxLength in the example; its limit went untested", name)
		}
	}
	for _, name := range []string{"maxItems answers", "maxItems local_addresses", "maxItems remote_addresses", "maxItems interfaces", "maxItems addresses",
		"maxProperties capabilities", "propertyNames capabilities", "additionalProperties maxLength capabilities", "uuid", "date-time", "ip"} {
		if !covered[name] {
			t.Errorf("%s went untested", name)
		}
	}
}

// wireHolder returns the object at path (keys and indexes) in doc.
func wireHolder(doc map[string]any, path []any) map[string]any {
	var cur any = doc
	for _, step := range path {
		switch s := step.(type) {
		case string:
			cur = cur.(map[string]any)[s]
		case int:
			cur = cur.([]any)[s]
		}
	}
	return cur.(map[string]any)
}
