package chfront_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/chpool"
	"github.com/ClickHouse/ch-go/compress"
	"github.com/ClickHouse/ch-go/proto"
	"github.com/google/uuid"

	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/internal/store/storetest"
	"github.com/netview/netview/internal/store/storetest/chfront"
)

// env is a front over a fresh database of the test binary's engine, and an
// in-process store on the same database to check what the front did.
type env struct {
	srv *chfront.Server
	db  string
	emb store.Store
}

// start opens a front of its own for the test; the test fails if the front
// logged a connection error.
func start(t *testing.T) env {
	t.Helper()
	b := storetest.Embedded(t)
	var (
		mu   sync.Mutex
		errs []string
	)
	srv, err := chfront.Listen("127.0.0.1:0", chfront.Config{Dir: strings.TrimPrefix(b.DSN, "embedded:"), Logf: func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		errs = append(errs, fmt.Sprintf(format, args...))
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if srv.Conns() != 0 {
			t.Errorf("%d connections still served after Close", srv.Conns())
		}
		mu.Lock()
		defer mu.Unlock()
		for _, e := range errs {
			t.Errorf("front logged: %s", e)
		}
	})
	return env{srv: srv, db: b.DB, emb: b.Store}
}

func (e env) dial(t *testing.T, c ch.Compression) *ch.Client {
	t.Helper()
	client, err := ch.Dial(context.Background(), ch.Options{Address: e.srv.Addr(), Database: e.db, Compression: c, ReadTimeout: 30 * time.Second})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return client
}

func TestHandshakeAndPing(t *testing.T) {
	e := start(t)
	c := e.dial(t, ch.CompressionDisabled)
	info := c.ServerInfo()
	if info.Revision != int(proto.FeatureServerQueryTimeInProgress) || info.Name != "ClickHouse" || info.Major < 20 || info.Timezone == "" {
		t.Fatalf("server hello = %+v", info)
	}
	for range 3 {
		if err := c.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	var db proto.ColStr
	if err := c.Do(context.Background(), ch.Query{Body: "SELECT currentDatabase() AS db", Result: proto.Results{{Name: "db", Data: &db}}}); err != nil {
		t.Fatal(err)
	}
	if db.Row(0) != e.db {
		t.Fatalf("current database = %q, want the hello's %q", db.Row(0), e.db)
	}
}

// A server refuses a database that does not exist with UNKNOWN_DATABASE.
func TestUnknownDatabase(t *testing.T) {
	e := start(t)
	c, err := ch.Dial(context.Background(), ch.Options{Address: e.srv.Addr(), Database: "no_such_db"})
	if err == nil {
		defer c.Close()
		err = c.Do(context.Background(), ch.Query{Body: "SELECT 1"})
	}
	if exc, ok := ch.AsException(err); !ok || exc.Code != proto.ErrUnknownDatabase {
		t.Fatalf("err = %v, want UNKNOWN_DATABASE", err)
	}
}

// sample holds the column types Netview stores, decoded by ch-go.
type sample struct {
	n     proto.ColUInt64
	lc    *proto.ColLowCardinality[string]
	ns    *proto.ColNullable[string]
	arr   *proto.ColArr[string]
	arrlc *proto.ColArr[string]
	m     *proto.ColMap[string, uint64]
	id    proto.ColUUID
	ip    proto.ColIPv6
	at    *proto.ColDateTime64
	d     *proto.ColNullable[uint32]
}

func newSample() *sample {
	return &sample{
		lc:    new(proto.ColStr).LowCardinality(),
		ns:    new(proto.ColStr).Nullable(),
		arr:   new(proto.ColStr).Array(),
		arrlc: proto.NewArray[string](new(proto.ColStr).LowCardinality()),
		m:     proto.NewMap[string, uint64](new(proto.ColStr), new(proto.ColUInt64)),
		at:    new(proto.ColDateTime64).WithPrecision(proto.PrecisionMilli).WithLocation(time.UTC),
		d:     new(proto.ColUInt32).Nullable(),
	}
}

// sampleSQL makes the rows of sample.add in SQL.
const sampleSQL = `SELECT number AS n,
	toLowCardinality('h' || toString(number % 7)) AS lc,
	if(number % 3 = 0, NULL, toString(number)) AS ns,
	arrayMap(x -> toString(x), range(number % 4)) AS arr,
	CAST(arrayMap(x -> 'k' || toString(x), range(number % 3)) AS Array(LowCardinality(String))) AS arrlc,
	CAST(mapFromArrays(arrayMap(x -> toString(x), range(number % 3)), arrayMap(x -> toUInt64(x), range(number % 3))) AS Map(String, UInt64)) AS m,
	toUUID(concat('00000000-0000-0000-0000-', leftPad(toString(number), 12, '0'))) AS id,
	toIPv6(IPv4NumToString(toUInt32(number))) AS ip,
	fromUnixTimestamp64Milli(toInt64(1700000000000 + number), 'UTC') AS at,
	if(number % 2 = 0, toUInt32(number), NULL) AS d
FROM numbers({rows:UInt64}) ORDER BY n`

const sampleTable = `CREATE TABLE sample (n UInt64, lc LowCardinality(String), ns Nullable(String), arr Array(String),
	arrlc Array(LowCardinality(String)), m Map(String, UInt64), id UUID, ip IPv6, at DateTime64(3, 'UTC'), d Nullable(UInt32))
	ENGINE = MergeTree ORDER BY n`

func (s *sample) input() proto.Input {
	return proto.Input{{Name: "n", Data: &s.n}, {Name: "lc", Data: s.lc}, {Name: "ns", Data: s.ns}, {Name: "arr", Data: s.arr},
		{Name: "arrlc", Data: s.arrlc}, {Name: "m", Data: s.m}, {Name: "id", Data: &s.id}, {Name: "ip", Data: &s.ip},
		{Name: "at", Data: s.at}, {Name: "d", Data: s.d}}
}

func (s *sample) results() proto.Results {
	var r proto.Results
	for _, c := range s.input() {
		r = append(r, proto.ResultColumn{Name: c.Name, Data: c.Data.(proto.ColResult)})
	}
	return r
}

func sampleRow(n uint64) (lc string, ns proto.Nullable[string], arr, arrlc []string, m map[string]uint64, id uuid.UUID, ip proto.IPv6, at time.Time, d proto.Nullable[uint32]) {
	lc = fmt.Sprintf("h%d", n%7)
	if n%3 != 0 {
		ns = proto.NewNullable(fmt.Sprint(n))
	}
	arr = []string{}
	for i := range n % 4 {
		arr = append(arr, fmt.Sprint(i))
	}
	arrlc, m = []string{}, map[string]uint64{}
	for i := range n % 3 {
		arrlc = append(arrlc, fmt.Sprintf("k%d", i))
		m[fmt.Sprint(i)] = i
	}
	id = uuid.MustParse(fmt.Sprintf("00000000-0000-0000-0000-%012d", n))
	ip = proto.ToIPv6(netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}))
	at = time.UnixMilli(1700000000000 + int64(n)).UTC()
	if n%2 == 0 {
		d = proto.NewNullable(uint32(n))
	}
	return
}

func (s *sample) add(n uint64) {
	lc, ns, arr, arrlc, m, id, ip, at, d := sampleRow(n)
	s.n.Append(n)
	s.lc.Append(lc)
	s.ns.Append(ns)
	s.arr.Append(arr)
	s.arrlc.Append(arrlc)
	s.m.Append(m)
	s.id.Append(id)
	s.ip.Append(ip)
	s.at.Append(at)
	s.d.Append(d)
}

// check compares every row of the block with what sampleRow makes.
func (s *sample) check() error {
	for i := range s.n.Rows() {
		n := s.n.Row(i)
		lc, ns, arr, arrlc, m, id, ip, at, d := sampleRow(n)
		ok := s.lc.Row(i) == lc && norm(s.ns.Row(i)) == norm(ns) && slices.Equal(s.arr.Row(i), arr) && slices.Equal(s.arrlc.Row(i), arrlc) &&
			maps.Equal(s.m.Row(i), m) && s.id.Row(i) == id && s.ip.Row(i) == ip && s.at.Row(i).UnixMilli() == at.UnixMilli() && norm(s.d.Row(i)) == norm(d)
		if !ok {
			return fmt.Errorf("row %d: got %q %v %q %q %v %v %v %v %v", n, s.lc.Row(i), s.ns.Row(i), s.arr.Row(i), s.arrlc.Row(i), s.m.Row(i),
				s.id.Row(i), s.ip.Row(i), s.at.Row(i), s.d.Row(i))
		}
	}
	return nil
}

// norm drops the value a null holds, which means nothing.
func norm[T comparable](v proto.Nullable[T]) proto.Nullable[T] {
	if !v.Set {
		return proto.Nullable[T]{}
	}
	return v
}

var compressions = []ch.Compression{ch.CompressionDisabled, ch.CompressionLZ4, ch.CompressionZSTD, ch.CompressionNone}

// A result of several blocks of every type Netview stores comes back whole,
// uncompressed and compressed, and the first block is the header.
func TestSelectTypes(t *testing.T) {
	e := start(t)
	const rows = 150_000 // more than two of the engine's blocks
	for _, comp := range compressions {
		t.Run(comp.String(), func(t *testing.T) {
			c := e.dial(t, comp)
			s := newSample()
			var blocks, headers, total int
			next := uint64(0)
			err := c.Do(context.Background(), ch.Query{
				Body:       sampleSQL,
				Parameters: ch.Parameters(map[string]any{"rows": rows}),
				Result:     s.results(),
				OnResult: func(_ context.Context, b proto.Block) error {
					if b.Rows == 0 {
						if blocks > 0 {
							t.Errorf("empty block after data")
						}
						headers++
						return nil
					}
					blocks++
					if s.n.Row(0) != next {
						t.Errorf("block starts at %d, want %d", s.n.Row(0), next)
					}
					next += uint64(b.Rows)
					total += b.Rows
					return s.check()
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			if total != rows || blocks < 3 || headers != 1 {
				t.Fatalf("rows = %d in %d blocks after %d headers, want %d rows in at least 3 blocks after 1 header", total, blocks, headers, rows)
			}
		})
	}
}

// Rows inserted through the front in several blocks are in the table, as
// the in-process store reads them.
func TestInsert(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	if err := e.emb.Exec(ctx, store.Query{SQL: sampleTable}); err != nil {
		t.Fatal(err)
	}
	for i, comp := range compressions {
		c := e.dial(t, comp)
		in := newSample()
		const perBlock, blocks = 1000, 3
		base := uint64(i * perBlock * blocks)
		sent := 0
		fill := func() {
			in.input().Reset()
			for n := range uint64(perBlock) {
				in.add(base + uint64(sent*perBlock) + n)
			}
			sent++
		}
		fill()
		err := c.Do(ctx, ch.Query{Body: "INSERT INTO sample VALUES", Input: in.input(), OnInput: func(context.Context) error {
			if sent == blocks {
				in.input().Reset()
				return io.EOF
			}
			fill()
			return nil
		}})
		if err != nil {
			t.Fatalf("%s: %v", comp, err)
		}
	}
	out := newSample()
	var total int
	err := e.emb.Select(ctx, store.Query{SQL: "SELECT * FROM sample ORDER BY n"}, out.results(), func(rows int) error {
		total += rows
		return out.check()
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := len(compressions) * 3000; total != want {
		t.Fatalf("table holds %d rows, want %d", total, want)
	}
}

// The header of an INSERT lists the columns named, or every insertable
// one, with the table's types; a wrong column or table is an exception.
func TestInsertHeader(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	if err := e.emb.Exec(ctx, store.Query{SQL: `CREATE TABLE h (a UInt32, b LowCardinality(String) DEFAULT 'x', c UInt64 MATERIALIZED a * 2,
		d UInt64 ALIAS a + 1, e DateTime64(6, 'Asia/Tokyo')) ENGINE = MergeTree ORDER BY a`}); err != nil {
		t.Fatal(err)
	}
	raw := dialRaw(t, e)
	for body, want := range map[string]string{
		"INSERT INTO h VALUES":                                   "a UInt32, b LowCardinality(String), e DateTime64(6, 'Asia/Tokyo')",
		"INSERT INTO h (a) VALUES":                               "a UInt32",
		"insert into table `h` (e, `a`) format Native;":          "e DateTime64(6, 'Asia/Tokyo'), a UInt32",
		"INSERT INTO " + e.db + ".h (b) SETTINGS async_insert=0": "b LowCardinality(String)",
		"/* c */ INSERT INTO h (b) -- comment\n":                 "b LowCardinality(String)",
	} {
		got, exc := raw.insertHeader(t, body)
		if exc != nil || got != want {
			t.Errorf("%s: header %q, %v; want %q", body, got, exc, want)
		}
	}
	for body, code := range map[string]proto.Error{
		"INSERT INTO h (zz) VALUES":      proto.ErrNoSuchColumnInTable,
		"INSERT INTO no_such (a) VALUES": proto.ErrUnknownTable,
	} {
		if _, exc := raw.insertHeader(t, body); exc == nil || exc.Code != code {
			t.Errorf("%s: exception %v, want %s", body, exc, code)
		}
	}
	// Inline rows and INSERT ... SELECT run as plain statements.
	c := e.dial(t, ch.CompressionLZ4)
	for _, q := range []string{"INSERT INTO h (a) VALUES (7)", "INSERT INTO h (a) SELECT 8", "INSERT INTO h (a) FORMAT Values (9)"} {
		if err := c.Do(ctx, ch.Query{Body: q}); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
	var n proto.ColUInt64
	if err := c.Do(ctx, ch.Query{Body: "SELECT sum(c) AS n FROM h", Result: proto.Results{{Name: "n", Data: &n}}}); err != nil || n.Row(0) != 2*(7+8+9) {
		t.Errorf("sum = %v, %v; want %d", n, err, 2*(7+8+9))
	}
}

func isCode(err error, code proto.Error) bool {
	exc, ok := ch.AsException(err)
	return ok && exc.Code == code
}

// An engine exception reaches ch-go as a *ch.Exception with the engine's
// code and message, and the connection goes on serving.
func TestException(t *testing.T) {
	e := start(t)
	c := e.dial(t, ch.CompressionLZ4)
	ctx := context.Background()
	for _, tc := range []struct {
		sql  string
		code proto.Error
		text string
	}{
		{"SELECT * FROM no_such_table", proto.ErrUnknownTable, "no_such_table"},
		{"SELEKT 1", proto.ErrSyntaxError, "Syntax error"},
		{"SELECT throwIf(number = 3, 'boom') FROM numbers(10)", proto.ErrFunctionThrowIfValueIsNonZero, "boom"},
		{"SELECT sumState(number) FROM numbers(3)", proto.ErrNotImplemented, "AggregateFunction"},
	} {
		err := c.Do(ctx, ch.Query{Body: tc.sql, Result: (&proto.Results{}).Auto(), OnResult: func(context.Context, proto.Block) error { return nil }})
		exc, ok := ch.AsException(err)
		if !ok || exc.Code != tc.code || exc.Name != "DB::Exception" || !strings.HasPrefix(exc.Message, "DB::Exception: ") || !strings.Contains(exc.Message, tc.text) {
			t.Errorf("%s: err = %#v, want a %s exception about %q", tc.sql, err, tc.code, tc.text)
		}
		if ok && strings.Contains(exc.Message, "("+tc.code.String()+")") {
			t.Errorf("%s: message repeats the code name, which a server leaves to the client: %s", tc.sql, exc.Message)
		}
		if err := c.Ping(ctx); err != nil {
			t.Fatalf("after %s: ping: %v", tc.sql, err)
		}
	}
}

// Parameters travel as a server takes them: quoted, then parsed in the
// escaped text form. The cases are those of ch-go's own test against a
// ClickHouse server (query_params_test.go).
func TestParameters(t *testing.T) {
	e := start(t)
	c := e.dial(t, ch.CompressionDisabled)
	ctx := context.Background()
	for value, want := range map[string]string{
		"foo":                       "foo",
		`line 1\\nline 2\\tend`:     "line 1\nline 2\tend",
		`line 1\\\\nline 2\\\\tend`: `line 1\nline 2\tend`,
		`it\'s`:                     "it's",
		`100\\%`:                    `100\%`,
	} {
		var got proto.ColStr
		err := c.Do(ctx, ch.Query{Body: "SELECT {value:String} AS v", Parameters: ch.Parameters(map[string]any{"value": value}), Result: proto.Results{{Name: "v", Data: &got}}})
		if err != nil {
			t.Errorf("%q: %v", value, err)
			continue
		}
		if got.Row(0) != want {
			t.Errorf("%q came back as %q, want %q", value, got.Row(0), want)
		}
	}
	for _, value := range []string{`line 1\nline 2`, "line 1\nline 2", "column 1\tcolumn 2"} {
		err := c.Do(ctx, ch.Query{Body: "SELECT {value:String} AS v", Parameters: ch.Parameters(map[string]any{"value": value}), Result: (&proto.Results{}).Auto()})
		if !isCode(err, proto.ErrBadQueryParameter) {
			t.Errorf("%q: err = %v, want BAD_QUERY_PARAMETER as from a server", value, err)
		}
	}
	var n proto.ColUInt8
	err := c.Do(ctx, ch.Query{Body: "SELECT {n:UInt8} AS n", Parameters: []proto.Parameter{{Key: "n", Value: "100"}}, Result: proto.Results{{Name: "n", Data: &n}}})
	if !isCode(err, proto.ErrCannotParseQuotedString) {
		t.Errorf("unquoted parameter: err = %v, want CANNOT_PARSE_QUOTED_STRING", err)
	}
}

// Settings of a query apply to it, and not to the next query that does
// not carry them; unknown settings fail only when marked important.
func TestSettings(t *testing.T) {
	e := start(t)
	c := e.dial(t, ch.CompressionDisabled)
	ctx := context.Background()
	count := func(settings ...ch.Setting) (int, error) {
		var n proto.ColUInt64
		rows := 0
		err := c.Do(ctx, ch.Query{Body: "SELECT number AS n FROM numbers(10)", Settings: settings, Result: proto.Results{{Name: "n", Data: &n}},
			OnResult: func(_ context.Context, b proto.Block) error { rows += b.Rows; return nil }})
		return rows, err
	}
	limit := []ch.Setting{ch.SettingInt("max_result_rows", 5), {Key: "result_overflow_mode", Value: "throw", Important: true}}
	if _, err := count(limit...); !isCode(err, proto.ErrTooManyRowsOrBytes) {
		t.Fatalf("max_result_rows=5: err = %v, want TOO_MANY_ROWS_OR_BYTES", err)
	}
	if n, err := count(); err != nil || n != 10 {
		t.Fatalf("without settings: %d rows, %v; the last query's settings stuck", n, err)
	}
	if n, err := count(ch.Setting{Key: "no_such_setting", Value: "1"}); err != nil || n != 10 {
		t.Fatalf("unknown unimportant setting: %d rows, %v", n, err)
	}
	if _, err := count(ch.Setting{Key: "no_such_setting", Value: "1", Important: true}); !isCode(err, proto.ErrUnknownSetting) {
		t.Fatalf("unknown important setting: err = %v", err)
	}
	readonly := func(settings ...ch.Setting) (uint8, error) {
		var ro proto.ColUInt8
		err := c.Do(ctx, ch.Query{Body: "SELECT getSetting('readonly') AS r", Settings: settings, Result: proto.Results{{Name: "r", Data: &ro}}})
		if err != nil {
			return 0, err
		}
		return ro.Row(0), nil
	}
	if ro, err := readonly(ch.SettingInt("readonly", 1), ch.SettingInt("max_threads", 2)); err != nil || ro != 1 {
		t.Fatalf("readonly=1: readonly = %d, %v", ro, err)
	}
	// Other settings beside readonly=1 are the query's own, not changes a
	// readonly session refuses.
	if ro, err := readonly(ch.SettingInt("readonly", 1), ch.SettingInt("max_threads", 3)); err != nil || ro != 1 {
		t.Fatalf("readonly=1 again, other max_threads: readonly = %d, %v", ro, err)
	}
	if err := c.Do(ctx, ch.Query{Body: "CREATE TABLE ro (x UInt8) ENGINE = Memory", Settings: []ch.Setting{ch.SettingInt("readonly", 1)}}); !isCode(err, proto.ErrReadonly) {
		t.Fatalf("DDL with readonly=1: err = %v, want READONLY", err)
	}
	// readonly binds one query, as on a server, though it forbids changing
	// settings: the next query without it may write.
	if ro, err := readonly(); err != nil || ro != 0 {
		t.Fatalf("after readonly=1: readonly = %d, %v", ro, err)
	}
	if err := c.Do(ctx, ch.Query{Body: "CREATE TABLE rw (x UInt8) ENGINE = Memory"}); err != nil {
		t.Fatalf("DDL after a readonly query: %v", err)
	}
	var db proto.ColStr
	if err := c.Do(ctx, ch.Query{Body: "SELECT currentDatabase() AS db", Result: proto.Results{{Name: "db", Data: &db}}}); err != nil || db.Row(0) != e.db {
		t.Fatalf("current database after readonly: %v, %v", db, err)
	}
}

// rawConn speaks the protocol by hand, to see what ch-go hides.
type rawConn struct {
	nc  net.Conn
	r   *proto.Reader
	ver int
}

func dialRaw(t *testing.T, e env) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", e.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	c := &rawConn{nc: nc, r: proto.NewReader(nc), ver: proto.Version}
	var b proto.Buffer
	proto.ClientHello{Name: "raw", Major: 1, ProtocolVersion: c.ver, Database: e.db, User: "default"}.Encode(&b)
	c.write(t, &b)
	if code, err := c.r.UVarInt(); err != nil || proto.ServerCode(code) != proto.ServerCodeHello {
		t.Fatalf("hello answer %d, %v", code, err)
	}
	var h proto.ServerHello
	if err := h.DecodeAware(c.r, c.ver); err != nil {
		t.Fatal(err)
	}
	c.ver = min(c.ver, h.Revision)
	b.PutString("") // addendum: quota key
	c.write(t, &b)
	return c
}

func (c *rawConn) write(t *testing.T, b *proto.Buffer) {
	t.Helper()
	if _, err := c.nc.Write(b.Buf); err != nil {
		t.Fatal(err)
	}
	b.Reset()
}

// query sends a query and the empty block that ends its external data.
func (c *rawConn) query(t *testing.T, body string, compressed bool, settings ...proto.Setting) {
	t.Helper()
	var b proto.Buffer
	q := proto.Query{ID: "raw", Body: body, Stage: proto.StageComplete, Settings: settings,
		Info: proto.ClientInfo{ProtocolVersion: c.ver, Interface: proto.InterfaceTCP, Query: proto.ClientQueryInitial}}
	if compressed {
		q.Compression = proto.CompressionEnabled
	}
	q.EncodeAware(&b, c.ver)
	c.putEmptyBlock(t, &b, compressed)
	c.write(t, &b)
}

// putEmptyBlock appends the Data packet that ends external data or rows.
func (c *rawConn) putEmptyBlock(t *testing.T, b *proto.Buffer, compressed bool) {
	t.Helper()
	proto.ClientCodeData.Encode(b)
	proto.ClientData{}.EncodeAware(b, c.ver)
	var block proto.Buffer
	if err := (proto.Block{}).EncodeBlock(&block, c.ver, nil); err != nil {
		t.Fatal(err)
	}
	if compressed {
		w := compress.NewWriter(compress.LevelZero, compress.LZ4)
		if err := w.Compress(block.Buf); err != nil {
			t.Fatal(err)
		}
		block.Buf = w.Data
	}
	b.PutRaw(block.Buf)
}

// insertHeader sends an INSERT and returns the header the front answers
// with ("name Type, ..."), or its exception; it then ends the insert with no
// rows.
func (c *rawConn) insertHeader(t *testing.T, body string) (string, *proto.Exception) {
	t.Helper()
	c.query(t, body, false)
	code, err := c.r.UVarInt()
	if err != nil {
		t.Fatal(err)
	}
	switch proto.ServerCode(code) {
	case proto.ServerCodeException:
		var exc proto.Exception
		if err := exc.DecodeAware(c.r, c.ver); err != nil {
			t.Fatal(err)
		}
		return "", &exc
	case proto.ServerCodeData:
	default:
		t.Fatalf("%s: answer %d", body, code)
	}
	var info proto.ColInfoInput
	var b proto.Block
	if _, err := c.r.Str(); err != nil {
		t.Fatal(err)
	}
	if err := b.DecodeBlock(c.r, c.ver, &info); err != nil {
		t.Fatal(err)
	}
	var cols []string
	for _, col := range info {
		cols = append(cols, col.Name+" "+string(col.Type))
	}
	var buf proto.Buffer
	c.putEmptyBlock(t, &buf, false)
	c.write(t, &buf)
	for {
		code, err := c.r.UVarInt()
		if err != nil {
			t.Fatal(err)
		}
		switch proto.ServerCode(code) {
		case proto.ServerCodeProgress:
			var p proto.Progress
			if err := p.DecodeAware(c.r, c.ver); err != nil {
				t.Fatal(err)
			}
		case proto.ServerCodeEndOfStream:
			return strings.Join(cols, ", "), nil
		default:
			t.Fatalf("%s: packet %d after the rows", body, code)
		}
	}
}

// The server compresses its blocks with network_compression_method, LZ4 by
// default, whatever the client compresses with.
func TestCompressionMethod(t *testing.T) {
	e := start(t)
	for method, want := range map[string]byte{"": 0x82, "lz4": 0x82, "zstd": 0x90, "none": 0x02} {
		c := dialRaw(t, e)
		var settings []proto.Setting
		if method != "" {
			settings = append(settings, proto.Setting{Key: "network_compression_method", Value: method, Important: true})
		}
		c.query(t, "SELECT 1 AS x", true, settings...)
		code, err := c.r.UVarInt()
		if err != nil || proto.ServerCode(code) != proto.ServerCodeData {
			t.Fatalf("%s: first packet %d, %v; want Data", method, code, err)
		}
		if _, err := c.r.Str(); err != nil {
			t.Fatal(err)
		}
		frame, err := c.r.ReadRaw(17) // checksum, then the method byte
		if err != nil {
			t.Fatal(err)
		}
		if frame[16] != want {
			t.Errorf("%q: frame method %#x, want %#x", method, frame[16], want)
		}
	}
}

// A client that hangs up in the middle of a large result costs the front
// nothing but that connection.
func TestDisconnectMidStream(t *testing.T) {
	e := start(t)
	for range 2 {
		c := dialRaw(t, e)
		// 20 MB in three blocks, more than the sockets buffer.
		c.query(t, "SELECT number, repeat('x', 100) AS pad FROM numbers(200000)", false)
		if code, err := c.r.UVarInt(); err != nil || proto.ServerCode(code) != proto.ServerCodeData {
			t.Fatalf("first packet %d, %v", code, err)
		}
		_ = c.nc.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.srv.Conns() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still served 10 s after their clients left", e.srv.Conns())
		}
		time.Sleep(10 * time.Millisecond)
	}
	var n proto.ColUInt64
	if err := e.dial(t, ch.CompressionLZ4).Do(context.Background(), ch.Query{Body: "SELECT count() AS n FROM numbers(200000)", Result: proto.Results{{Name: "n", Data: &n}}}); err != nil || n.Row(0) != 200000 {
		t.Fatalf("after the hang-ups: %v, %v", n, err)
	}
}

// Packets a server does not expect end the connection with an exception;
// external tables are refused.
func TestUnexpectedPackets(t *testing.T) {
	e := start(t)
	c := dialRaw(t, e)
	var b proto.Buffer
	b.PutUVarInt(77)
	c.write(t, &b)
	if code, err := c.r.UVarInt(); err != nil || proto.ServerCode(code) != proto.ServerCodeException {
		t.Fatalf("answer to packet 77: %d, %v; want an exception", code, err)
	}
	var exc proto.Exception
	if err := exc.DecodeAware(c.r, c.ver); err != nil || exc.Code != proto.ErrUnknownPacketFromClient {
		t.Fatalf("exception %+v, %v", exc, err)
	}
	if _, err := c.r.UVarInt(); !errors.Is(err, io.EOF) {
		t.Fatalf("connection still open after an unknown packet: %v", err)
	}

	client := e.dial(t, ch.CompressionDisabled)
	var x proto.ColUInt8
	err := client.Do(context.Background(), ch.Query{Body: "SELECT count() FROM ext", ExternalTable: "ext",
		ExternalData: proto.Input{{Name: "x", Data: &x}}})
	if !isCode(err, proto.ErrNotImplemented) {
		t.Fatalf("external table: err = %v, want NOT_IMPLEMENTED", err)
	}
}

// An empty result still starts with a header, so ch-go checks the columns
// against it as with a server.
func TestEmptyResultHeader(t *testing.T) {
	e := start(t)
	c := e.dial(t, ch.CompressionLZ4)
	ctx := context.Background()
	var res proto.Results
	if err := c.Do(ctx, ch.Query{Body: "SELECT toUInt32(number) AS a, 'x' AS b FROM numbers(10) WHERE number > {n:UInt64}",
		Parameters: ch.Parameters(map[string]any{"n": 100}), Result: res.Auto()}); err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Name != "a" || res[0].Data.Type() != "UInt32" || res[1].Name != "b" || res[1].Data.Type() != "String" {
		t.Fatalf("header of an empty result: %+v", res)
	}
	var wrong proto.ColUInt64
	err := c.Do(ctx, ch.Query{Body: "SELECT toUInt32(number) AS a FROM numbers(10) WHERE 0", Result: proto.Results{{Name: "a", Data: &wrong}}})
	if err == nil || !strings.Contains(err.Error(), "UInt32") {
		t.Fatalf("UInt64 column for an empty UInt32 result: err = %v, want a type mismatch", err)
	}
}

// Clients on many connections at once: each gets its own session and sees
// its own writes.
func TestConcurrentClients(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	if err := e.emb.Exec(ctx, store.Query{SQL: "CREATE TABLE cc (g UInt8, v UInt64) ENGINE = MergeTree ORDER BY (g, v)"}); err != nil {
		t.Fatal(err)
	}
	pool, err := chpool.Dial(ctx, chpool.Options{MaxConns: 8, ClientOptions: ch.Options{Address: e.srv.Addr(), Database: e.db, Compression: ch.CompressionLZ4}})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	const workers, rounds, rows = 12, 10, 500
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for g := range workers {
		wg.Go(func() {
			for r := range rounds {
				var gc proto.ColUInt8
				var vc proto.ColUInt64
				for i := range rows {
					gc.Append(uint8(g))
					vc.Append(uint64(r*rows + i))
				}
				if err := pool.Do(ctx, ch.Query{Body: "INSERT INTO cc (g, v) VALUES", Input: proto.Input{{Name: "g", Data: &gc}, {Name: "v", Data: &vc}}}); err != nil {
					errs <- fmt.Errorf("worker %d insert: %w", g, err)
					return
				}
				var n proto.ColUInt64
				if err := pool.Do(ctx, ch.Query{Body: "SELECT count() AS n FROM cc WHERE g = {g:UInt8}", Parameters: ch.Parameters(map[string]any{"g": g}),
					Result: proto.Results{{Name: "n", Data: &n}}}); err != nil {
					errs <- fmt.Errorf("worker %d select: %w", g, err)
					return
				}
				if n.Row(0) != uint64((r+1)*rows) {
					errs <- fmt.Errorf("worker %d round %d: count %d, want %d", g, r, n.Row(0), (r+1)*rows)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := e.srv.Conns(); n < 2 || n > 8 {
		t.Errorf("%d connections served, want the pool's several (2..8)", n)
	}
}

// The front carries every type whose layout it knows byte for byte, to the
// protocol's framing and back, whatever ch-go can decode; sentinel columns
// around each value show that no byte went astray.
func TestLayoutMatchesEngine(t *testing.T) {
	e := start(t)
	emb := e.emb.(*store.Embedded)
	exprs := []string{
		"toUInt8(number)", "toInt128(number)", "toUInt256(number)", "toFloat32(number) / 3", "toBool(number % 2)",
		"toString(number)", "toFixedString(toString(number % 10), 3)",
		"toDecimal32(number, 2)", "toDecimal64(number, 4)", "toDecimal128(number, 10)", "toDecimal256(number, 20)", "CAST(number AS Decimal(12, 3))",
		"toDate(number)", "toDate32(number)", "toDateTime(number, 'UTC')", "toDateTime64(number, 6, 'Asia/Tokyo')",
		"CAST(number % 2 AS Enum8('a' = 0, 'b' = 1))", "CAST(number % 2 AS Enum16('x, y' = 0, 'z(\\'' = 1))",
		"generateUUIDv4(number)", "toIPv4(number)", "toIPv6('::1')", "toIntervalSecond(number)",
		"NULL", "if(number % 2 = 0, NULL, number)", "[]", "range(number % 5)", "[[toString(number)], []]",
		"toLowCardinality(toString(number % 3))", "toLowCardinality(if(number % 2 = 0, NULL, toString(number)))",
		"CAST([toString(number % 4)] AS Array(LowCardinality(String)))",
		"CAST(if(number % 3 = 0, [], ['a', NULL]) AS Array(LowCardinality(Nullable(String))))",
		"toLowCardinality(toFixedString(toString(number % 9), 2))", "toLowCardinality(number % 300)",
		"map(toString(number % 3), number)", "CAST(map('k', [toString(number)]) AS Map(LowCardinality(String), Array(Nullable(String))))",
		"(number, toString(number))", "CAST((number, 'x') AS Tuple(a UInt64, `b c` LowCardinality(String)))",
		"CAST((1.5, 2.5) AS Point)", "CAST([(1.0, 2.0)] AS Ring)", "CAST([[(1.0, 2.0)]] AS Polygon)", "CAST([[[(1.0, 2.0)]]] AS MultiPolygon)",
		"CAST(number AS SimpleAggregateFunction(sum, UInt64))",
	}
	for _, expr := range exprs {
		for _, rows := range []int{3, 70000} {
			sql := fmt.Sprintf("SELECT 'before' AS s0, %s AS v, 'after' AS s1 FROM numbers(%d)", expr, rows)
			var native []byte
			if err := emb.QueryNative(context.Background(), sql, nil, func(b []byte) error { native = bytes.Clone(b); return nil }); err != nil {
				t.Fatalf("%s: %v", expr, err)
			}
			for _, ver := range []int{proto.Version, int(proto.FeatureCustomSerialization) - 1, int(proto.FeatureBlockInfo) - 1} {
				back, names, got, err := chfront.RoundTripNative(native, ver)
				if err != nil {
					t.Fatalf("%s, %d rows, revision %d: %v", expr, rows, ver, err)
				}
				if got != rows || !bytes.Equal(back, native) {
					t.Fatalf("%s, %d rows, revision %d: %d rows back, bytes equal: %v", expr, rows, ver, got, bytes.Equal(back, native))
				}
				for _, n := range names {
					if !slices.Equal(n, []string{"s0", "v", "s1"}) {
						t.Fatalf("%s: columns %q", expr, n)
					}
				}
			}
		}
	}
}

// Close ends idle client connections too.
func TestCloseEndsConnections(t *testing.T) {
	e := start(t)
	c := e.dial(t, ch.CompressionDisabled)
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(context.Background()); err == nil {
		t.Fatal("ping answered after Close")
	}
	if _, err := net.DialTimeout("tcp", e.srv.Addr(), time.Second); err == nil {
		t.Fatal("front still accepts after Close")
	}
}
