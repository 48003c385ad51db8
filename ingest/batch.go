package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/google/uuid"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/internal/store"
)

// Batch holds the rows of many heartbeats as ch-go columns, one set per
// table. It is reused: Reset keeps every column's capacity, so a warm batch
// decodes without allocating.
type Batch struct {
	sensors    sensorCols
	heartbeats heartbeatCols
	conns      connCols
	listeners  listenerCols
	udp        udpCols
	active     activeFlowCols
	flows      flowCols
	events     eventCols
	sctpAssocs sctpAssocCols
	sctpEps    sctpEndpointCols
	addrs      hostAddrCols

	tables     []*table // data tables, inserted first (in parallel)
	last       []*table // heartbeats then sensors: written only once the rows they announce are
	every      []*table // tables then last
	Heartbeats int      // heartbeats decoded into the batch

	// starts holds, for each heartbeat, where its rows begin in every
	// table: a heartbeat's rows are one contiguous span of each table.
	starts []mark
	// scratch holds the rows of some heartbeats only, copied out once a
	// table's insert was refused; made on first need, then reused.
	scratch     *Batch
	scratchOnce sync.Once
}

// Refusal is a heartbeat whose rows storage refused in one table.
type Refusal struct {
	Heartbeat int // its place in the batch
	Table     string
	Err       error
}

// table is one table's columns in insert order.
type table struct {
	name  string
	input proto.Input
	at    int // its place in Batch.every, and in a mark
	// day is the column the table is partitioned by (toDate), nil if
	// none; days are the distinct days of its rows in the batch.
	day  *proto.ColDateTime64
	days []int32
}

// rows counts the table's rows. While a heartbeat is being decoded the
// columns that repeat its header lag behind, so it takes the longest.
func (t *table) rows() int {
	n := 0
	for _, c := range t.input {
		n = max(n, c.Data.Rows())
	}
	return n
}

// NewBatch returns an empty batch.
func NewBatch() *Batch {
	b := &Batch{}
	b.sensors.init()
	b.heartbeats.init()
	b.conns.init()
	b.listeners.init()
	b.udp.init()
	b.active.init()
	b.flows.init()
	b.events.init()
	b.sctpAssocs.init()
	b.sctpEps.init()
	b.addrs.init()
	b.tables = []*table{&b.conns.table, &b.listeners.table, &b.udp.table, &b.active.table, &b.flows.table, &b.events.table,
		&b.sctpAssocs.table, &b.sctpEps.table, &b.addrs.table}
	b.last = []*table{&b.heartbeats.table, &b.sensors.table}
	b.every = append(append([]*table{}, b.tables...), b.last...)
	if len(b.every) != len(mark{}) {
		panic(fmt.Sprintf("ingest: a mark has %d entries for %d tables", len(mark{}), len(b.every)))
	}
	for i, t := range b.every {
		t.at = i
	}
	return b
}

// Rows counts the rows of every table.
func (b *Batch) Rows() int {
	n := 0
	for _, t := range b.all() {
		n += t.rows()
	}
	return n
}

func (b *Batch) all() []*table { return b.every }

// Insert writes the batch: the data tables in parallel, then heartbeats and
// sensors. A sensor's newest seq becomes visible only after the rows it
// announces, so a reader never sees a heartbeat without its snapshot.
//
// When storage refuses a table's rows for what they hold (store.Refused),
// the table's heartbeats are halved and each half tried again, down to the
// heartbeats at fault: the others' rows are written once, the refused
// heartbeats' rows not at all, nor their heartbeats and sensors rows. The
// refusals are returned; err is for the whole batch.
func (b *Batch) Insert(ctx context.Context, s store.Store) ([]Refusal, error) {
	errs := make([]error, len(b.tables))
	refused := make([][]Refusal, len(b.tables))
	var wg sync.WaitGroup
	for i, t := range b.tables {
		if t.rows() == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			refused[i], errs[i] = b.insertTable(ctx, s, i, nil)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var out []Refusal
	for _, r := range refused {
		out = append(out, r...)
	}
	for i := range b.last {
		r, err := b.insertTable(ctx, s, len(b.tables)+i, out)
		if err != nil {
			return nil, err
		}
		out = append(out, r...)
	}
	return out, nil
}

// insertTable writes table ti of b.every but for the heartbeats in skip.
func (b *Batch) insertTable(ctx context.Context, s store.Store, ti int, skip []Refusal) ([]Refusal, error) {
	t := b.every[ti]
	var first error
	if len(skip) == 0 {
		first = s.Insert(ctx, t.name, t.input)
		if first == nil || !store.Refused(first) {
			return nil, first
		}
	}
	var hbs []int
	for h := range b.starts {
		if from, to := b.span(ti, h); from < to && !refusedIn(skip, h) {
			hbs = append(hbs, h)
		}
	}
	if len(hbs) == 0 {
		return nil, nil
	}
	b.scratchOnce.Do(func() { b.scratch = NewBatch() })
	out, err := b.split(ctx, s, ti, hbs, first)
	if err == nil && len(hbs) > 1 && len(out) == len(hbs) {
		// Every heartbeat refused alike: the statement, not the rows.
		return nil, fmt.Errorf("ingest: every heartbeat refused by %s: %w", t.name, out[0].Err)
	}
	return out, err
}

// split writes the rows of heartbeats hbs into table ti, halving them while
// storage refuses them; failed, when not nil, is how the whole set failed.
func (b *Batch) split(ctx context.Context, s store.Store, ti int, hbs []int, failed error) ([]Refusal, error) {
	err := failed
	if err == nil {
		sc := b.scratch.every[ti]
		sc.input.Reset()
		for _, h := range hbs {
			from, to := b.span(ti, h)
			for j, c := range b.every[ti].input {
				appendRows(sc.input[j].Data, c.Data, from, to)
			}
		}
		err = s.Insert(ctx, sc.name, sc.input)
		sc.input.Reset()
		if err == nil || !store.Refused(err) {
			return nil, err
		}
	}
	if len(hbs) == 1 {
		return []Refusal{{Heartbeat: hbs[0], Table: b.every[ti].name, Err: err}}, nil
	}
	left, err := b.split(ctx, s, ti, hbs[:len(hbs)/2], nil)
	if err != nil {
		return nil, err
	}
	right, err := b.split(ctx, s, ti, hbs[len(hbs)/2:], nil)
	if err != nil {
		return nil, err
	}
	return append(left, right...), nil
}

// span is where heartbeat h's rows lie in table ti.
func (b *Batch) span(ti, h int) (from, to int) {
	from = b.starts[h][ti]
	if h+1 < len(b.starts) {
		return from, b.starts[h+1][ti]
	}
	return from, b.every[ti].rows()
}

// written is how many rows of table ti storage took once Insert returned
// refused: all but the refused heartbeats' rows in that table, and in the
// heartbeats and sensors tables, which are not written for a heartbeat
// refused anywhere, all but every refused heartbeat's.
func (b *Batch) written(ti int, refused []Refusal) int {
	n := b.every[ti].rows()
	for i, r := range refused {
		last := ti >= len(b.tables)
		if last && slices.ContainsFunc(refused[:i], func(p Refusal) bool { return p.Heartbeat == r.Heartbeat }) ||
			!last && r.Table != b.every[ti].name {
			continue
		}
		from, to := b.span(ti, r.Heartbeat)
		n -= to - from
	}
	return n
}

func refusedIn(rs []Refusal, h int) bool {
	for _, r := range rs {
		if r.Heartbeat == h {
			return true
		}
	}
	return false
}

// MaxDays is the most distinct days one table's rows in a batch may touch.
// Tables are partitioned by day and the engine refuses an insert block
// touching more than max_partitions_per_insert_block (100) partitions: the
// time window bounds one heartbeat, not many sensors together.
const MaxDays = 90

// addDays records the days the rows added since m touch. It reports false,
// recording nothing, when some table would then touch more than MaxDays
// days; a heartbeat alone in the batch always fits.
func (b *Batch) addDays(m mark) bool {
	var had mark
	for i, t := range b.every {
		had[i] = len(t.days)
		if t.day == nil {
			continue
		}
		last := int32(-1 << 31)
		for _, v := range t.day.Data[m[i]:] {
			d := int32(floorDiv(int64(v), 86_400_000))
			if d == last || slices.Contains(t.days, d) {
				last = d
				continue
			}
			last = d
			t.days = append(t.days, d)
		}
		if len(t.days) > MaxDays && b.Heartbeats > 1 {
			for j := range i + 1 {
				b.every[j].days = b.every[j].days[:had[j]]
			}
			return false
		}
	}
	return true
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// drop takes out the last heartbeat, decoded since m.
func (b *Batch) drop(m mark) {
	b.rollback(m)
	b.Heartbeats--
	b.starts = b.starts[:len(b.starts)-1]
}

// Reset empties the batch and keeps its capacity.
func (b *Batch) Reset() {
	for _, t := range b.all() {
		t.input.Reset()
	}
	b.Heartbeats = 0
	b.starts = b.starts[:0]
	for _, t := range b.all() {
		t.days = t.days[:0]
	}
}

// mark remembers each table's row count, so a heartbeat that fails half way
// can be taken out again. It has one entry per table of Batch.every (NewBatch
// checks the count); of reads a table's.
type mark [11]int

func (m *mark) of(t *table) int { return m[t.at] }

func (b *Batch) mark() (m mark) {
	for i, t := range b.all() {
		m[i] = t.rows()
	}
	return m
}

// rollback truncates every column back to m.
func (b *Batch) rollback(m mark) {
	for i, t := range b.all() {
		for _, c := range t.input {
			truncate(c.Data, m[i])
		}
	}
}

// check verifies that every table's columns have one length.
func (b *Batch) check() error {
	for _, t := range b.all() {
		n := t.rows()
		for _, c := range t.input {
			if c.Data.Rows() != n {
				return fmt.Errorf("%s.%s has %d rows, want %d", t.name, c.Name, c.Data.Rows(), n)
			}
		}
	}
	return nil
}

// truncate cuts a column to n rows; it knows every column type a Batch uses.
func truncate(c proto.ColInput, n int) {
	switch c := c.(type) {
	case *proto.ColUUID:
		*c = (*c)[:n]
	case *proto.ColUInt8:
		*c = (*c)[:n]
	case *proto.ColBool:
		*c = (*c)[:n]
	case *proto.ColUInt16:
		*c = (*c)[:n]
	case *proto.ColUInt32:
		*c = (*c)[:n]
	case *proto.ColUInt64:
		*c = (*c)[:n]
	case *proto.ColIPv6:
		*c = (*c)[:n]
	case *proto.ColDateTime64:
		c.Data = c.Data[:n]
	case *proto.ColStr:
		end := 0
		if n > 0 {
			end = c.Pos[n-1].End
		}
		c.Buf, c.Pos = c.Buf[:end], c.Pos[:n]
	case *proto.ColNullable[uint32]:
		c.Nulls = c.Nulls[:n]
		truncate(c.Values.(*proto.ColUInt32), n)
	case *proto.ColArr[proto.IPv6]:
		end := uint64(0)
		if n > 0 {
			end = c.Offsets[n-1]
		}
		c.Offsets = c.Offsets[:n]
		truncate(c.Data.(*proto.ColIPv6), int(end))
	case *proto.ColMap[string, string]:
		end := uint64(0)
		if n > 0 {
			end = c.Offsets[n-1]
		}
		c.Offsets = c.Offsets[:n]
		truncate(c.Keys.(*proto.ColStr), int(end))
		truncate(c.Values.(*proto.ColStr), int(end))
	default:
		panic(fmt.Sprintf("ingest: truncate: unexpected column type %T", c))
	}
}

// appendRows appends rows from..to of src to dst, a column of the same
// type; it knows every column type a Batch uses.
func appendRows(dst, src proto.ColInput, from, to int) {
	switch d := dst.(type) {
	case *proto.ColUUID:
		*d = append(*d, (*src.(*proto.ColUUID))[from:to]...)
	case *proto.ColUInt8:
		*d = append(*d, (*src.(*proto.ColUInt8))[from:to]...)
	case *proto.ColBool:
		*d = append(*d, (*src.(*proto.ColBool))[from:to]...)
	case *proto.ColUInt16:
		*d = append(*d, (*src.(*proto.ColUInt16))[from:to]...)
	case *proto.ColUInt32:
		*d = append(*d, (*src.(*proto.ColUInt32))[from:to]...)
	case *proto.ColUInt64:
		*d = append(*d, (*src.(*proto.ColUInt64))[from:to]...)
	case *proto.ColIPv6:
		*d = append(*d, (*src.(*proto.ColIPv6))[from:to]...)
	case *proto.ColDateTime64:
		d.Data = append(d.Data, src.(*proto.ColDateTime64).Data[from:to]...)
	case *proto.ColStr:
		s := src.(*proto.ColStr)
		for i := from; i < to; i++ {
			d.AppendBytes(s.Buf[s.Pos[i].Start:s.Pos[i].End])
		}
	case *proto.ColNullable[uint32]:
		s := src.(*proto.ColNullable[uint32])
		d.Nulls = append(d.Nulls, s.Nulls[from:to]...)
		appendRows(d.Values, s.Values, from, to)
	case *proto.ColArr[proto.IPv6]:
		s := src.(*proto.ColArr[proto.IPv6])
		lo, hi := offsets(s.Offsets, from, to)
		base := uint64(d.Data.Rows())
		for i := from; i < to; i++ {
			d.Offsets = append(d.Offsets, base+s.Offsets[i]-lo)
		}
		appendRows(d.Data, s.Data, int(lo), int(hi))
	case *proto.ColMap[string, string]:
		s := src.(*proto.ColMap[string, string])
		lo, hi := offsets(s.Offsets, from, to)
		base := uint64(d.Keys.Rows())
		for i := from; i < to; i++ {
			d.Offsets = append(d.Offsets, base+s.Offsets[i]-lo)
		}
		appendRows(d.Keys, s.Keys, int(lo), int(hi))
		appendRows(d.Values, s.Values, int(lo), int(hi))
	default:
		panic(fmt.Sprintf("ingest: appendRows: unexpected column type %T", dst))
	}
}

// offsets returns where rows from..to of an array column lie in its data.
func offsets(o proto.ColUInt64, from, to int) (lo, hi uint64) {
	if from > 0 {
		lo = o[from-1]
	}
	if to > 0 {
		hi = o[to-1]
	}
	return lo, hi
}

func newTime() *proto.ColDateTime64 {
	return new(proto.ColDateTime64).WithPrecision(proto.PrecisionMilli)
}

// procCols attribute a row to a process. Its string columns are
// heartbeat.ProcessStrings, named as their members, so a new member needs
// only its migration here.
type procCols struct {
	uid, pid proto.ColUInt32
	strs     []proto.ColStr
}

func (p *procCols) cols() proto.Input {
	ms := heartbeat.ProcessStrings()
	p.strs = make([]proto.ColStr, len(ms))
	in := proto.Input{{Name: "uid", Data: &p.uid}, {Name: "pid", Data: &p.pid}}
	for i := range ms {
		in = append(in, proto.InputColumn{Name: ms[i].Name, Data: &p.strs[i]})
	}
	return in
}

func (p *procCols) append(r *heartbeat.Process) {
	p.uid.Append(r.UID)
	p.pid.Append(r.PID)
	ms := heartbeat.ProcessStrings()
	for i := range ms {
		p.strs[i].Append(ms[i].Of(r))
	}
}

// snapCols are the columns every snapshot table starts with; they are
// filled for a heartbeat's rows once its header is known (JSON keys come in
// any order).
type snapCols struct {
	sensorID   proto.ColUUID
	seq        proto.ColUInt64
	observedAt *proto.ColDateTime64
}

func (s *snapCols) cols() proto.Input {
	s.observedAt = newTime()
	return proto.Input{{Name: "sensor_id", Data: &s.sensorID}, {Name: "seq", Data: &s.seq}, {Name: "observed_at", Data: s.observedAt}}
}

func (s *snapCols) fill(sensor uuid.UUID, seq uint64, sent proto.DateTime64, n int) {
	for range n - len(s.sensorID) {
		s.sensorID.Append(sensor)
		s.seq.Append(seq)
		s.observedAt.AppendRaw(sent)
	}
}

type sensorCols struct {
	table
	sensorID, bootID, heartbeatID     proto.ColUUID
	hostname, flavor, version, kernel proto.ColStr
	site                              proto.ColStr
	seq, netns                        proto.ColUInt64
	sentAt, receivedAt, startedAt     *proto.ColDateTime64
	interval                          proto.ColUInt32
	// capabilities is Map(String, String) on the wire; the engine converts
	// it to the column's Map(LowCardinality(String), String). Its keys and
	// values are appended as bytes, without a Go map.
	capabilities       *proto.ColMap[string, string]
	capKeys, capValues proto.ColStr
}

func (c *sensorCols) init() {
	c.sentAt, c.receivedAt, c.startedAt = newTime(), newTime(), newTime()
	c.capabilities = proto.NewMap[string, string](&c.capKeys, &c.capValues)
	c.table = table{name: "sensors", input: proto.Input{
		{Name: "sensor_id", Data: &c.sensorID}, {Name: "hostname", Data: &c.hostname}, {Name: "flavor", Data: &c.flavor},
		{Name: "sensor_version", Data: &c.version}, {Name: "boot_id", Data: &c.bootID}, {Name: "seq", Data: &c.seq},
		{Name: "heartbeat_id", Data: &c.heartbeatID}, {Name: "sent_at", Data: c.sentAt}, {Name: "received_at", Data: c.receivedAt},
		{Name: "started_at", Data: c.startedAt}, {Name: "interval_secs", Data: &c.interval}, {Name: "kernel", Data: &c.kernel},
		{Name: "netns", Data: &c.netns}, {Name: "site", Data: &c.site}, {Name: "capabilities", Data: c.capabilities},
	}}
}

type heartbeatCols struct {
	table
	sensorID, heartbeatID, bootID                         proto.ColUUID
	seq                                                   proto.ColUInt64
	sentAt, receivedAt                                    *proto.ColDateTime64
	conns, listeners, udp, active, completed, eventsCount proto.ColUInt32
}

func (c *heartbeatCols) init() {
	c.sentAt, c.receivedAt = newTime(), newTime()
	c.table = table{name: "heartbeats", input: proto.Input{
		{Name: "sensor_id", Data: &c.sensorID}, {Name: "seq", Data: &c.seq}, {Name: "heartbeat_id", Data: &c.heartbeatID},
		{Name: "boot_id", Data: &c.bootID}, {Name: "sent_at", Data: c.sentAt}, {Name: "received_at", Data: c.receivedAt},
		{Name: "tcp_connections", Data: &c.conns}, {Name: "tcp_listeners", Data: &c.listeners}, {Name: "udp_listeners", Data: &c.udp},
		{Name: "active_flows", Data: &c.active}, {Name: "completed_flows", Data: &c.completed}, {Name: "events", Data: &c.eventsCount},
	}, day: c.sentAt}
}

// sockCols are the columns every socket table has.
type sockCols struct {
	snapCols
	procCols
	netns, inode proto.ColUInt64
	family       proto.ColStr
	localAddr    proto.ColIPv6
	localPort    proto.ColUInt16
	firstSeen    *proto.ColDateTime64
}

func (c *sockCols) cols() proto.Input {
	c.firstSeen = newTime()
	in := c.snapCols.cols()
	in = append(in, proto.Input{
		{Name: "netns", Data: &c.netns}, {Name: "family", Data: &c.family},
		{Name: "local_address", Data: &c.localAddr}, {Name: "local_port", Data: &c.localPort}, {Name: "inode", Data: &c.inode},
	}...)
	in = append(in, c.procCols.cols()...)
	return append(in, proto.InputColumn{Name: "first_seen", Data: c.firstSeen})
}

func (c *sockCols) append(family string, addr netip.Addr, port uint16, inode, netns uint64, p *heartbeat.Process, firstSeen time.Time) {
	c.netns.Append(netns)
	c.family.Append(family)
	c.localAddr.Append(ip(addr))
	c.localPort.Append(port)
	c.inode.Append(inode)
	c.procCols.append(p)
	c.firstSeen.AppendRaw(ms(firstSeen))
}

// remoteCols are the peer of a connected socket.
type remoteCols struct {
	remoteAddr proto.ColIPv6
	remotePort proto.ColUInt16
}

func (c *remoteCols) cols() proto.Input {
	return proto.Input{{Name: "remote_address", Data: &c.remoteAddr}, {Name: "remote_port", Data: &c.remotePort}}
}

func (c *remoteCols) append(addr netip.Addr, port uint16) {
	c.remoteAddr.Append(ip(addr))
	c.remotePort.Append(port)
}

type connCols struct {
	table
	sockCols
	remoteCols
	state    proto.ColStr
	duration *proto.ColNullable[uint32]
}

func (c *connCols) init() {
	c.duration = new(proto.ColUInt32).Nullable()
	in := append(c.sockCols.cols(), c.remoteCols.cols()...)
	in = append(in, proto.InputColumn{Name: "state", Data: &c.state}, proto.InputColumn{Name: "duration_secs", Data: c.duration})
	c.table = table{name: "tcp_connections", input: in, day: c.observedAt}
}

type listenerCols struct {
	table
	sockCols
}

func (c *listenerCols) init() {
	in := c.sockCols.cols()
	c.table = table{name: "tcp_listeners", input: in, day: c.observedAt}
}

type udpCols struct {
	table
	sockCols
	remoteCols
	service proto.ColStr
}

func (c *udpCols) init() {
	in := append(c.sockCols.cols(), c.remoteCols.cols()...)
	c.table = table{name: "udp_listeners", input: append(in, proto.InputColumn{Name: "service", Data: &c.service}), day: c.observedAt}
}

// flowBody are the columns active and completed flows share.
type flowBody struct {
	procCols
	flowID                     proto.ColUUID
	protocol, direction, state proto.ColStr
	source                     proto.ColStr
	srcAddr, dstAddr           proto.ColIPv6
	srcPort, dstPort           proto.ColUInt16
	startedAt                  *proto.ColDateTime64
	netns                      proto.ColUInt64
	bytesSent, bytesReceived   proto.ColUInt64
}

func (f *flowBody) cols() proto.Input {
	f.startedAt = newTime()
	in := proto.Input{
		{Name: "flow_id", Data: &f.flowID}, {Name: "protocol", Data: &f.protocol}, {Name: "direction", Data: &f.direction},
		{Name: "src_address", Data: &f.srcAddr}, {Name: "src_port", Data: &f.srcPort},
		{Name: "dst_address", Data: &f.dstAddr}, {Name: "dst_port", Data: &f.dstPort}, {Name: "netns", Data: &f.netns},
	}
	in = append(in, f.procCols.cols()...)
	return append(in, proto.Input{
		{Name: "started_at", Data: f.startedAt}, {Name: "bytes_sent", Data: &f.bytesSent}, {Name: "bytes_received", Data: &f.bytesReceived},
		{Name: "state", Data: &f.state}, {Name: "source", Data: &f.source},
	}...)
}

func (f *flowBody) append(r *heartbeat.Flow) {
	f.flowID.Append(r.FlowID)
	f.protocol.Append(r.Protocol)
	f.direction.Append(r.Direction)
	f.srcAddr.Append(ip(r.SrcAddress))
	f.srcPort.Append(r.SrcPort)
	f.dstAddr.Append(ip(r.DstAddress))
	f.dstPort.Append(r.DstPort)
	f.netns.Append(r.Netns)
	f.procCols.append(&r.Process)
	f.startedAt.AppendRaw(ms(r.StartedAt))
	f.bytesSent.Append(r.BytesSent)
	f.bytesReceived.Append(r.BytesReceived)
	f.state.Append(r.State)
	f.source.Append(r.Source)
}

type activeFlowCols struct {
	table
	snapCols
	flowBody
}

func (c *activeFlowCols) init() {
	in := append(c.snapCols.cols(), c.flowBody.cols()...)
	c.table = table{name: "active_flows", input: in, day: c.observedAt}
}

type flowCols struct {
	table
	flowBody
	sensorID            proto.ColUUID
	endedAt, receivedAt *proto.ColDateTime64
	durationMs          proto.ColUInt64
}

func (c *flowCols) init() {
	c.endedAt, c.receivedAt = newTime(), newTime()
	in := append(proto.Input{{Name: "sensor_id", Data: &c.sensorID}}, c.flowBody.cols()...)
	in = append(in, proto.Input{{Name: "ended_at", Data: c.endedAt}, {Name: "duration_ms", Data: &c.durationMs}, {Name: "received_at", Data: c.receivedAt}}...)
	c.table = table{name: "flows", input: in, day: c.endedAt}
}

type eventCols struct {
	table
	procCols
	eventID, sensorID                    proto.ColUUID
	kind, protocol, queryName, queryType proto.ColStr
	state, source                        proto.ColStr
	time, receivedAt                     *proto.ColDateTime64
	srcAddr, dstAddr                     proto.ColIPv6
	srcPort, dstPort                     proto.ColUInt16
	answers                              *proto.ColArr[proto.IPv6]
	durationMs, bytesSent, bytesReceived proto.ColUInt64
	netns                                proto.ColUInt64
}

func (c *eventCols) init() {
	c.time, c.receivedAt = newTime(), newTime()
	c.answers = new(proto.ColIPv6).Array()
	in := proto.Input{
		{Name: "event_id", Data: &c.eventID}, {Name: "sensor_id", Data: &c.sensorID}, {Name: "kind", Data: &c.kind},
		{Name: "time", Data: c.time}, {Name: "received_at", Data: c.receivedAt}, {Name: "protocol", Data: &c.protocol},
		{Name: "src_address", Data: &c.srcAddr}, {Name: "src_port", Data: &c.srcPort},
		{Name: "dst_address", Data: &c.dstAddr}, {Name: "dst_port", Data: &c.dstPort}, {Name: "netns", Data: &c.netns},
	}
	in = append(in, c.procCols.cols()...)
	in = append(in, proto.Input{
		{Name: "query_name", Data: &c.queryName}, {Name: "query_type", Data: &c.queryType}, {Name: "answers", Data: c.answers},
		{Name: "duration_ms", Data: &c.durationMs}, {Name: "bytes_sent", Data: &c.bytesSent}, {Name: "bytes_received", Data: &c.bytesReceived},
		{Name: "state", Data: &c.state}, {Name: "source", Data: &c.source},
	}...)
	c.table = table{name: "events", input: in, day: c.time}
}

type sctpAssocCols struct {
	table
	snapCols
	procCols
	netns, inode              proto.ColUInt64
	assocID, txQueue, rxQueue proto.ColUInt32
	state                     proto.ColStr
	localPort, remotePort     proto.ColUInt16
	localAddrs, remoteAddrs   *proto.ColArr[proto.IPv6]
	primaryAddr               proto.ColIPv6
	firstSeen                 *proto.ColDateTime64
}

func (c *sctpAssocCols) init() {
	c.firstSeen = newTime()
	c.localAddrs, c.remoteAddrs = new(proto.ColIPv6).Array(), new(proto.ColIPv6).Array()
	in := c.snapCols.cols()
	in = append(in, proto.Input{
		{Name: "netns", Data: &c.netns}, {Name: "assoc_id", Data: &c.assocID}, {Name: "state", Data: &c.state},
		{Name: "local_port", Data: &c.localPort}, {Name: "remote_port", Data: &c.remotePort},
		{Name: "local_addresses", Data: c.localAddrs}, {Name: "remote_addresses", Data: c.remoteAddrs},
		{Name: "primary_address", Data: &c.primaryAddr}, {Name: "inode", Data: &c.inode},
		{Name: "tx_queue", Data: &c.txQueue}, {Name: "rx_queue", Data: &c.rxQueue},
	}...)
	in = append(in, c.procCols.cols()...)
	in = append(in, proto.InputColumn{Name: "first_seen", Data: c.firstSeen})
	c.table = table{name: "sctp_associations", input: in, day: c.observedAt}
}

type sctpEndpointCols struct {
	table
	snapCols
	procCols
	netns, inode proto.ColUInt64
	localPort    proto.ColUInt16
	localAddrs   *proto.ColArr[proto.IPv6]
	firstSeen    *proto.ColDateTime64
}

func (c *sctpEndpointCols) init() {
	c.firstSeen = newTime()
	c.localAddrs = new(proto.ColIPv6).Array()
	in := c.snapCols.cols()
	in = append(in, proto.Input{
		{Name: "netns", Data: &c.netns}, {Name: "local_port", Data: &c.localPort},
		{Name: "local_addresses", Data: c.localAddrs}, {Name: "inode", Data: &c.inode},
	}...)
	in = append(in, c.procCols.cols()...)
	in = append(in, proto.InputColumn{Name: "first_seen", Data: c.firstSeen})
	c.table = table{name: "sctp_endpoints", input: in, day: c.observedAt}
}

// hostAddrCols are host_addresses: one row per address of an interface.
// The interface's columns are appended as the Decoder reads it; the
// sensor's (sensor_id, site) and the times (sent_at) once its header is
// known, as snapCols are.
type hostAddrCols struct {
	table
	sensorID            proto.ColUUID
	site, iface, mac    proto.ColStr
	address             proto.ColIPv6
	netns               proto.ColUInt64
	ifindex             proto.ColUInt32
	prefixLen           proto.ColUInt8
	up                  proto.ColBool
	firstSeen, lastSeen *proto.ColDateTime64
}

func (c *hostAddrCols) init() {
	c.firstSeen, c.lastSeen = newTime(), newTime()
	c.table = table{name: "host_addresses", input: proto.Input{
		{Name: "site", Data: &c.site}, {Name: "address", Data: &c.address}, {Name: "sensor_id", Data: &c.sensorID},
		{Name: "netns", Data: &c.netns}, {Name: "interface", Data: &c.iface}, {Name: "ifindex", Data: &c.ifindex},
		{Name: "prefix_len", Data: &c.prefixLen}, {Name: "mac", Data: &c.mac}, {Name: "up", Data: &c.up},
		{Name: "first_seen", Data: c.firstSeen}, {Name: "last_seen", Data: c.lastSeen},
	}}
}

// fill gives the rows appended since the last fill their sensor and times.
func (c *hostAddrCols) fill(sensor uuid.UUID, site string, sent proto.DateTime64) {
	for range c.address.Rows() - c.sensorID.Rows() {
		c.sensorID.Append(sensor)
		c.site.Append(site)
		c.firstSeen.AppendRaw(sent)
		c.lastSeen.AppendRaw(sent)
	}
}
