package ingest

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/google/uuid"

	"github.com/netview/netview/ingest/jsonscan"
	"github.com/netview/netview/internal/heartbeat"
)

var (
	// ErrInvalid marks a heartbeat that breaks the wire format; the message
	// names the field.
	ErrInvalid = errors.New("invalid heartbeat")
	// ErrFormat marks a heartbeat of a format version this node cannot read.
	ErrFormat = errors.New("unknown heartbeat format version")
	// ErrSensorMismatch marks a heartbeat whose sensor.sensor_id is not the
	// one its sender's key is bound to.
	ErrSensorMismatch = errors.New("sensor_id is not the sensor of this key")
	// ErrTimeWindow marks a row whose time lies too far from sent_at.
	ErrTimeWindow = errors.New("time outside the heartbeat's window")
	// ErrTooManyRows marks a heartbeat of more rows than Decoder.MaxRows.
	ErrTooManyRows = errors.New("too many rows in one heartbeat")
)

// FieldError names the field of a heartbeat that broke the wire format.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string   { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() []error { return []error{ErrInvalid, e.Err} }

// Decoder turns heartbeat JSON into rows of a Batch. It keeps its buffers
// between heartbeats; one Decoder serves one goroutine at a time.
type Decoder struct {
	s       jsonscan.Scanner
	arena   []byte // copies of strings that must outlive the scanner's next call
	answers []proto.IPv6
	// local and remote hold the address lists of the SCTP row being read.
	local, remote []proto.IPv6
	// caps are the heartbeat's sensor.capabilities, in document order; they
	// point into arena.
	caps    []capability
	lastStr string // the last value enum refused, for a better message
	nrows   int    // rows read from the current heartbeat
	// Now stamps received_at; tests may replace it.
	Now func() time.Time
	// SensorID, when not nil, is the only sensor.sensor_id accepted: the
	// sender's key is bound to it.
	SensorID uuid.UUID
	// MaxRows, when positive, bounds the rows of one heartbeat, in all
	// sections together.
	MaxRows int
	// Window, when positive, is how far from the heartbeat's sent_at any
	// time of its rows may lie (see checkTimes).
	Window time.Duration
}

// Summary describes one decoded heartbeat.
type Summary struct {
	HeartbeatID uuid.UUID
	SensorID    uuid.UUID
	Seq         uint64
	Rows        int // on a decoding error, the rows read before it
}

type capability struct{ key, value []byte }

type procRow struct {
	uid, pid           uint32
	binary, binaryPath []byte
}

type hbRow struct {
	format                      int64
	heartbeatID, sensorID, boot uuid.UUID
	seq, netns                  uint64
	sentAt, startedAt           proto.DateTime64
	hostname, version           []byte
	flavor                      string
	kernel                      []byte
	interval                    uint32
	seen                        uint32
	snapshotsDropped            bool
}

type flowRow struct {
	proc                     procRow
	flowID                   uuid.UUID
	protocol, direction      string
	state, source            string
	srcAddr, dstAddr         proto.IPv6
	srcPort, dstPort         uint16
	startedAt, endedAt       proto.DateTime64
	bytesSent, bytesReceived uint64
}

// Header fields that must be present.
const (
	hFormat = 1 << iota
	hID
	hSeq
	hSentAt
	hSensor
	hSensorID
	hHostname
	hFlavor
	hBoot

	hRequired = hFormat | hID | hSeq | hSentAt | hSensor
	sRequired = hSensorID | hHostname | hFlavor | hBoot
)

// Decode appends one heartbeat's rows to b. On error b is left as it was.
// doc is not kept.
func (d *Decoder) Decode(doc []byte, b *Batch) (Summary, error) {
	m := b.mark()
	d.s.Reset(doc)
	d.arena = d.arena[:0]
	d.caps = d.caps[:0]
	d.nrows = 0
	var h hbRow
	err := d.document(b, &h)
	if err == nil {
		if err = d.s.End(); err != nil {
			err = &FieldError{Field: "(document)", Err: err}
		}
	}
	if err == nil {
		err = h.check()
	}
	if err == nil {
		err = d.checkTimes(b, &h, m)
	}
	if err != nil {
		b.rollback(m)
		// The rows read before the fault are what decoding it cost:
		// the sender's row budget is charged for them.
		return Summary{Rows: d.nrows}, err
	}
	d.finish(b, &h, m)
	if err := b.check(); err != nil { // a bug, never the sender's fault
		b.rollback(m)
		b.Heartbeats--
		return Summary{}, fmt.Errorf("ingest: %w", err)
	}
	b.starts = append(b.starts, m)
	return Summary{HeartbeatID: h.heartbeatID, SensorID: h.sensorID, Seq: h.seq, Rows: b.Rows() - sum(m)}, nil
}

// checkTimes refuses a heartbeat whose rows carry times further than
// d.Window from its own sent_at. Every table is partitioned by day, and the
// engine refuses a whole insert touching more than
// max_partitions_per_insert_block (100) days: one heartbeat with events on
// 150 days failed the batch of every sensor sharing it. Only the columns
// that partition a table by a row's own time are checked (flows by
// ended_at, events by time): first_seen and started_at may rightly be days
// old, and the snapshot tables are partitioned by sent_at. Within ±Window
// (24 h by default) a heartbeat spans at most 3 days. It runs after the
// whole document is read, because sent_at may come after the rows; it only
// reads the columns, so a good heartbeat costs no allocation.
//
// sent_at itself is not checked against this node's clock: a sensor whose
// clock is wrong must stay visible; its skew is shown in the Summary.
func (d *Decoder) checkTimes(b *Batch, h *hbRow, m mark) error {
	if d.Window <= 0 {
		return nil
	}
	w := d.Window.Milliseconds()
	lo, hi := int64(h.sentAt)-w, int64(h.sentAt)+w
	cols := [...]struct {
		name string
		c    *proto.ColDateTime64
		from int
	}{
		{"completed_flows[%d].ended_at", b.flows.endedAt, m[4]},
		{"events[%d].time", b.events.time, m[5]},
	}
	for _, k := range cols {
		for i := k.from; i < len(k.c.Data); i++ {
			t := int64(k.c.Data[i])
			if t >= lo && t <= hi {
				continue
			}
			off := time.Duration(t-int64(h.sentAt)) * time.Millisecond
			dir := "after"
			if off < 0 {
				off, dir = -off, "before"
			}
			return &FieldError{Field: fmt.Sprintf(k.name, i-k.from), Err: fmt.Errorf("%w: %s %s sent_at; rows may lie within ±%s of it (check the sensor's clock)",
				ErrTimeWindow, off.Round(time.Second), dir, d.Window)}
		}
	}
	return nil
}

func sum(m mark) (n int) {
	for _, v := range m {
		n += v
	}
	return n
}

func (h *hbRow) check() error {
	if h.seen&hFormat != 0 && h.format != heartbeat.Format {
		return &FieldError{Field: "format", Err: fmt.Errorf("%w %d (this node reads %d)", ErrFormat, h.format, heartbeat.Format)}
	}
	for _, f := range []struct {
		bit  uint32
		name string
	}{{hFormat, "format"}, {hID, "heartbeat_id"}, {hSeq, "seq"}, {hSentAt, "sent_at"}, {hSensor, "sensor"},
		{hSensorID, "sensor.sensor_id"}, {hHostname, "sensor.hostname"}, {hFlavor, "sensor.flavor"}, {hBoot, "sensor.boot_id"}} {
		if h.seen&f.bit == 0 {
			return &FieldError{Field: f.name, Err: errors.New("required")}
		}
	}
	return nil
}

// finish fills the columns that repeat the heartbeat's header in every row.
func (d *Decoder) finish(b *Batch, h *hbRow, m mark) {
	now := time.Now()
	if d.Now != nil {
		now = d.Now()
	}
	recv := proto.ToDateTime64(now, proto.PrecisionMilli)
	n := func(t *table) int { return t.rows() }
	for _, s := range []struct {
		c *snapCols
		t *table
	}{{&b.conns.snapCols, &b.conns.table}, {&b.listeners.snapCols, &b.listeners.table}, {&b.udp.snapCols, &b.udp.table}, {&b.active.snapCols, &b.active.table},
		{&b.sctpAssocs.snapCols, &b.sctpAssocs.table}, {&b.sctpEps.snapCols, &b.sctpEps.table}} {
		s.c.fill(h, n(s.t))
	}
	for _, fs := range []*proto.ColDateTime64{b.conns.firstSeen, b.listeners.firstSeen, b.udp.firstSeen, b.sctpAssocs.firstSeen, b.sctpEps.firstSeen} {
		for i := range fs.Data {
			if fs.Data[i] == 0 {
				fs.Data[i] = h.sentAt
			}
		}
	}
	for range b.flows.flowID.Rows() - b.flows.sensorID.Rows() {
		b.flows.sensorID.Append(h.sensorID)
		b.flows.receivedAt.AppendRaw(recv)
	}
	for range b.events.eventID.Rows() - b.events.sensorID.Rows() {
		b.events.sensorID.Append(h.sensorID)
		b.events.receivedAt.AppendRaw(recv)
	}
	counts := [6]int{b.conns.rows() - m[0], b.listeners.rows() - m[1], b.udp.rows() - m[2], b.active.rows() - m[3], b.flows.rows() - m[4], b.events.rows() - m[5]}
	hb := &b.heartbeats
	hb.sensorID.Append(h.sensorID)
	hb.seq.Append(h.seq)
	hb.heartbeatID.Append(h.heartbeatID)
	hb.bootID.Append(h.boot)
	hb.sentAt.AppendRaw(h.sentAt)
	hb.receivedAt.AppendRaw(recv)
	for i, c := range []*proto.ColUInt32{&hb.conns, &hb.listeners, &hb.udp, &hb.active, &hb.completed, &hb.eventsCount} {
		c.Append(uint32(counts[i]))
	}
	b.Heartbeats++
	if h.snapshotsDropped {
		// Its snapshot sections were dropped by the sensor's spool: the
		// heartbeat counts, but it must not become the sensor's latest state.
		return
	}
	s := &b.sensors
	s.sensorID.Append(h.sensorID)
	s.hostname.AppendBytes(h.hostname)
	s.flavor.Append(h.flavor)
	s.version.AppendBytes(h.version)
	s.bootID.Append(h.boot)
	s.seq.Append(h.seq)
	s.heartbeatID.Append(h.heartbeatID)
	s.sentAt.AppendRaw(h.sentAt)
	s.receivedAt.AppendRaw(recv)
	if h.startedAt == 0 {
		h.startedAt = h.sentAt
	}
	s.startedAt.AppendRaw(h.startedAt)
	s.interval.Append(h.interval)
	s.kernel.AppendBytes(h.kernel)
	s.netns.Append(h.netns)
	for _, c := range d.caps {
		s.capKeys.AppendBytes(c.key)
		s.capValues.AppendBytes(c.value)
	}
	s.capabilities.Offsets.Append(uint64(s.capKeys.Rows()))
}

func (d *Decoder) document(b *Batch, h *hbRow) error {
	if err := d.s.EnterObject(); err != nil {
		return &FieldError{Field: "(document)", Err: err}
	}
	for {
		key, ok, err := d.s.NextKey()
		if err != nil {
			return &FieldError{Field: "(document)", Err: err}
		}
		if !ok {
			return nil
		}
		var ferr error
		switch string(key) {
		case "format":
			h.seen |= hFormat
			if h.format, ferr = d.s.Int(); ferr == nil && h.format != heartbeat.Format {
				return h.check() // refuse an unknown format before reading it any further
			}
		case "heartbeat_id":
			h.seen |= hID
			h.heartbeatID, ferr = d.uuid()
		case "seq":
			h.seen |= hSeq
			h.seq, ferr = d.s.Uint()
		case "sent_at":
			h.seen |= hSentAt
			h.sentAt, ferr = d.time()
		case "snapshots_dropped":
			h.snapshotsDropped, ferr = d.s.Bool()
		case "sensor":
			h.seen |= hSensor
			if err := d.sensor(h); err != nil {
				return err
			}
			continue
		case "tcp_connections":
			if err := d.rows("tcp_connections", func(i int) error { return d.conn(b, i) }); err != nil {
				return err
			}
			continue
		case "tcp_listeners":
			if err := d.rows("tcp_listeners", func(i int) error { return d.listener(b, i) }); err != nil {
				return err
			}
			continue
		case "udp_listeners":
			if err := d.rows("udp_listeners", func(i int) error { return d.udp(b, i) }); err != nil {
				return err
			}
			continue
		case "active_flows":
			if err := d.rows("active_flows", func(i int) error { return d.flow(b, i, false) }); err != nil {
				return err
			}
			continue
		case "completed_flows":
			if err := d.rows("completed_flows", func(i int) error { return d.flow(b, i, true) }); err != nil {
				return err
			}
			continue
		case "events":
			if err := d.rows("events", func(i int) error { return d.event(b, i) }); err != nil {
				return err
			}
			continue
		case "sctp_associations":
			if err := d.rows("sctp_associations", func(i int) error { return d.sctpAssoc(b, i) }); err != nil {
				return err
			}
			continue
		case "sctp_endpoints":
			if err := d.rows("sctp_endpoints", func(i int) error { return d.sctpEndpoint(b, i) }); err != nil {
				return err
			}
			continue
		default:
			// Unknown members are skipped, so a newer sensor can add fields
			// without breaking older ingest nodes of the same format.
			ferr = d.s.Skip()
		}
		if ferr != nil {
			if len(key) == 0 {
				key = []byte(`""`) // a member named "" is still named in the message
			}
			return &FieldError{Field: string(key), Err: ferr}
		}
	}
}

func (d *Decoder) sensor(h *hbRow) error {
	if err := d.s.EnterObject(); err != nil {
		return &FieldError{Field: "sensor", Err: err}
	}
	for {
		key, ok, err := d.s.NextKey()
		if err != nil {
			return &FieldError{Field: "sensor", Err: err}
		}
		if !ok {
			return nil
		}
		switch string(key) {
		case "sensor_id":
			h.seen |= hSensorID
			// Every sensor_id member is checked (a repeated member replaces
			// the one before), so the one kept is the key's.
			if h.sensorID, err = d.uuid(); err == nil && d.SensorID != uuid.Nil && h.sensorID != d.SensorID {
				err = fmt.Errorf("%w: %s, the key is bound to %s", ErrSensorMismatch, h.sensorID, d.SensorID)
			}
		case "hostname":
			h.seen |= hHostname
			h.hostname, err = d.str(255, false)
		case "flavor":
			h.seen |= hFlavor
			h.flavor, err = d.enum(heartbeat.Flavors)
		case "version":
			h.version, err = d.str(64, true)
		case "boot_id":
			h.seen |= hBoot
			h.boot, err = d.uuid()
		case "started_at":
			h.startedAt, err = d.time()
		case "interval_secs":
			var v uint64
			v, err = d.s.Uint()
			if err == nil && v > 86400 {
				err = errors.New("must be at most 86400")
			}
			h.interval = uint32(v)
		case "kernel":
			h.kernel, err = d.str(255, true)
		case "netns":
			h.netns, err = d.s.Uint()
		case "capabilities":
			if err := d.capabilities(); err != nil {
				return err
			}
		default:
			err = d.s.Skip()
		}
		if err != nil {
			return &FieldError{Field: "sensor." + string(key), Err: err}
		}
	}
}

// Limits of sensor.capabilities.
const (
	maxCapabilities = 32
	maxCapKey       = 64
	maxCapValue     = 256
)

// capabilities reads sensor.capabilities, an object of short strings under
// lower-case keys, into d.caps. A second capabilities member replaces the
// first, as every repeated member does.
func (d *Decoder) capabilities() error {
	const field = "sensor.capabilities"
	d.caps = d.caps[:0]
	if d.s.Null() {
		return nil
	}
	if err := d.s.EnterObject(); err != nil {
		return &FieldError{Field: field, Err: err}
	}
	for {
		key, ok, err := d.s.NextKey()
		if err != nil {
			return &FieldError{Field: field, Err: err}
		}
		if !ok {
			return nil
		}
		if !capKey(key) {
			return &FieldError{Field: field, Err: fmt.Errorf("key %q is not 1 to %d bytes of a-z, 0-9 and _", clip(key, maxCapKey+8), maxCapKey)}
		}
		for _, c := range d.caps {
			if string(c.key) == string(key) {
				return &FieldError{Field: field + "." + string(key), Err: errors.New("duplicate key")}
			}
		}
		if len(d.caps) == maxCapabilities {
			return &FieldError{Field: field, Err: fmt.Errorf("more than %d entries", maxCapabilities)}
		}
		start := len(d.arena)
		d.arena = append(d.arena, key...)
		k := d.arena[start:len(d.arena):len(d.arena)]
		v, err := d.str(maxCapValue, false)
		if err != nil {
			return &FieldError{Field: field + "." + string(k), Err: err}
		}
		d.caps = append(d.caps, capability{key: k, value: v})
	}
}

// capKey reports whether k is a valid capabilities key: 1 to 64 bytes of
// a-z, 0-9 and _.
func capKey(k []byte) bool {
	if len(k) == 0 || len(k) > maxCapKey {
		return false
	}
	for _, c := range k {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// clip shortens b to at most n bytes, for error messages.
func clip(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// rows walks one array of row objects, calling row for each.
func (d *Decoder) rows(section string, row func(i int) error) error {
	if d.s.Null() {
		return nil
	}
	if err := d.s.EnterArray(); err != nil {
		return &FieldError{Field: section, Err: err}
	}
	for i := 0; ; i++ {
		ok, err := d.s.NextElem()
		if err != nil {
			return &FieldError{Field: fmt.Sprintf("%s[%d]", section, i), Err: err}
		}
		if !ok {
			return nil
		}
		if d.nrows++; d.MaxRows > 0 && d.nrows > d.MaxRows {
			return &FieldError{Field: fmt.Sprintf("%s[%d]", section, i), Err: fmt.Errorf("%w: more than %d", ErrTooManyRows, d.MaxRows)}
		}
		if err := d.s.EnterObject(); err != nil {
			return &FieldError{Field: fmt.Sprintf("%s[%d]", section, i), Err: err}
		}
		if err := row(i); err != nil {
			var fe *FieldError
			if errors.As(err, &fe) {
				fe.Field = fmt.Sprintf("%s[%d].%s", section, i, fe.Field)
				return fe
			}
			return &FieldError{Field: fmt.Sprintf("%s[%d]", section, i), Err: err}
		}
	}
}

// members walks the members of an object already entered and checks that
// every required field (bits in need, named by names) was present.
func (d *Decoder) members(need uint32, names []string, field func(key []byte) (uint32, error)) error {
	var seen uint32
	for {
		key, ok, err := d.s.NextKey()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		bit, err := field(key)
		if err != nil {
			return &FieldError{Field: string(key), Err: err}
		}
		seen |= bit
	}
	if missing := need &^ seen; missing != 0 {
		for i, n := range names {
			if missing&(1<<i) != 0 {
				return &FieldError{Field: n, Err: errors.New("required")}
			}
		}
	}
	return nil
}

// Bits of socket row fields.
const (
	fFamily = 1 << iota
	fLocalAddr
	fLocalPort
	fRemoteAddr
	fRemotePort
	fState
	fInode
	fNetns
	fFirstSeen
	fDuration
	fService

	sockCommon = fFamily | fLocalAddr | fLocalPort | fInode | fNetns | fFirstSeen
	connFields = sockCommon | fRemoteAddr | fRemotePort | fState | fDuration
	udpFields  = sockCommon | fRemoteAddr | fRemotePort | fService
)

// sockBit maps a socket field to its bit; 0 for the process fields.
func sockBit(key []byte) uint32 {
	for i, n := range socketFields {
		if string(key) == n {
			return 1 << i
		}
	}
	return 0
}

var socketFields = []string{"family", "local_address", "local_port", "remote_address", "remote_port", "state", "inode", "netns", "first_seen", "duration_secs", "service"}

// sockRow is what TCP and UDP socket rows share.
type sockRow struct {
	proc                  procRow
	family, state         string
	service               []byte
	localAddr, remoteAddr proto.IPv6
	localPort, remotePort uint16
	inode, netns          uint64
	firstSeen             proto.DateTime64
	duration              uint32
	hasDuration           bool
}

// sockField reads one member of a socket row; members that the section
// does not have (allow) are skipped like any unknown member.
func (d *Decoder) sockField(key []byte, r *sockRow, allow uint32) (uint32, error) {
	if b := sockBit(key); b != 0 && allow&b == 0 {
		return 0, d.s.Skip()
	}
	var err error
	switch string(key) {
	case "family":
		r.family, err = d.enum(heartbeat.Families)
		return fFamily, err
	case "local_address":
		r.localAddr, err = d.addr()
		return fLocalAddr, err
	case "local_port":
		r.localPort, err = d.port()
		return fLocalPort, err
	case "remote_address":
		r.remoteAddr, err = d.addr()
		return fRemoteAddr, err
	case "remote_port":
		r.remotePort, err = d.port()
		return fRemotePort, err
	case "state":
		r.state, err = d.enum(heartbeat.States)
		if err != nil && d.lastStr == "LISTEN" {
			err = errors.New("LISTEN sockets belong in tcp_listeners")
		}
		return fState, err
	case "inode":
		r.inode, err = d.s.Uint()
		return fInode, err
	case "netns":
		r.netns, err = d.s.Uint()
	case "first_seen":
		r.firstSeen, err = d.time()
	case "duration_secs":
		if d.s.Null() {
			r.hasDuration = false
			return 0, nil
		}
		var v uint64
		v, err = d.s.Uint()
		if err == nil && v > 1<<32-1 {
			err = errors.New("out of range")
		}
		r.duration, r.hasDuration = uint32(v), true
	case "service":
		r.service, err = d.str(32, true)
	default:
		return 0, d.proc(key, &r.proc)
	}
	return 0, err
}

// proc reads the process fields every row kind carries, skipping unknown keys.
func (d *Decoder) proc(key []byte, p *procRow) error {
	var err error
	switch string(key) {
	case "pid":
		if d.s.Null() {
			p.pid = 0
			return nil
		}
		var v uint64
		v, err = d.s.Uint()
		if err == nil && v > 1<<22 { // PID_MAX_LIMIT
			err = errors.New("out of range")
		}
		p.pid = uint32(v)
	case "uid":
		var v uint64
		v, err = d.s.Uint()
		if err == nil && v > 1<<32-1 {
			err = errors.New("out of range")
		}
		p.uid = uint32(v)
	case "binary":
		p.binary, err = d.str(255, true)
	case "binary_path":
		p.binaryPath, err = d.str(4096, true)
	default:
		err = d.s.Skip()
	}
	return err
}

func (d *Decoder) conn(b *Batch, _ int) error {
	var r sockRow
	err := d.members(fFamily|fLocalAddr|fLocalPort|fRemoteAddr|fRemotePort|fState|fInode, socketFields,
		func(k []byte) (uint32, error) { return d.sockField(k, &r, connFields) })
	if err != nil {
		return err
	}
	c := &b.conns
	c.sockCols.append(&r)
	c.remoteCols.append(&r)
	c.state.Append(r.state)
	if r.hasDuration {
		c.duration.Append(proto.NewNullable(r.duration))
	} else {
		c.duration.Append(proto.Null[uint32]())
	}
	return nil
}

func (d *Decoder) listener(b *Batch, _ int) error {
	var r sockRow
	err := d.members(fFamily|fLocalAddr|fLocalPort|fInode, socketFields,
		func(k []byte) (uint32, error) { return d.sockField(k, &r, sockCommon) })
	if err != nil {
		return err
	}
	b.listeners.sockCols.append(&r)
	return nil
}

func (d *Decoder) udp(b *Batch, _ int) error {
	var r sockRow
	err := d.members(fFamily|fLocalAddr|fLocalPort|fInode, socketFields,
		func(k []byte) (uint32, error) { return d.sockField(k, &r, udpFields) })
	if err != nil {
		return err
	}
	c := &b.udp
	c.sockCols.append(&r)
	c.remoteCols.append(&r)
	c.service.AppendBytes(r.service)
	return nil
}

// Bits of SCTP row fields.
const (
	pAssocID = 1 << iota
	pState
	pLocalPort
	pRemotePort
	pLocalAddrs
	pRemoteAddrs
	pInode
	pPrimary
	pNetns
	pTxQueue
	pRxQueue
	pFirstSeen

	epFields = pLocalPort | pLocalAddrs | pInode | pNetns | pFirstSeen
)

var sctpFields = []string{"assoc_id", "state", "local_port", "remote_port", "local_addresses", "remote_addresses", "inode", "primary_address", "netns", "tx_queue", "rx_queue", "first_seen"}

// sctpBit maps an SCTP row field to its bit; 0 for the process fields.
func sctpBit(key []byte) uint32 {
	for i, n := range sctpFields {
		if string(key) == n {
			return 1 << i
		}
	}
	return 0
}

// sctpRow is what SCTP association and endpoint rows hold; their address
// lists are read into d.local and d.remote.
type sctpRow struct {
	proc                  procRow
	state                 string
	assocID               uint32
	txQueue, rxQueue      uint32
	localPort, remotePort uint16
	primary               proto.IPv6
	inode, netns          uint64
	firstSeen             proto.DateTime64
}

// maxAddrs bounds every list of addresses in a row.
const maxAddrs = 64

// sctpField reads one member of an SCTP row; members the section does not
// have (allow) are skipped like any unknown member.
func (d *Decoder) sctpField(key []byte, r *sctpRow, allow uint32) (uint32, error) {
	bit := sctpBit(key)
	if bit != 0 && allow&bit == 0 {
		return 0, d.s.Skip()
	}
	var err error
	switch bit {
	case pAssocID:
		r.assocID, err = d.u32()
	case pState:
		r.state, err = d.enum(heartbeat.SCTPStates)
	case pLocalPort:
		r.localPort, err = d.port()
	case pRemotePort:
		r.remotePort, err = d.port()
	case pLocalAddrs:
		d.local, err = d.addrList(d.local, "addresses")
	case pRemoteAddrs:
		d.remote, err = d.addrList(d.remote, "addresses")
	case pInode:
		r.inode, err = d.s.Uint()
	case pPrimary:
		r.primary, err = d.addr()
	case pNetns:
		r.netns, err = d.s.Uint()
	case pTxQueue:
		r.txQueue, err = d.u32()
	case pRxQueue:
		r.rxQueue, err = d.u32()
	case pFirstSeen:
		r.firstSeen, err = d.time()
	default:
		return 0, d.proc(key, &r.proc)
	}
	return bit, err
}

func (d *Decoder) sctpAssoc(b *Batch, _ int) error {
	var r sctpRow
	d.local, d.remote = d.local[:0], d.remote[:0]
	err := d.members(pAssocID|pState|pLocalPort|pRemotePort|pLocalAddrs|pRemoteAddrs|pInode, sctpFields,
		func(k []byte) (uint32, error) { return d.sctpField(k, &r, ^uint32(0)) })
	if err != nil {
		return err
	}
	c := &b.sctpAssocs
	c.netns.Append(r.netns)
	c.assocID.Append(r.assocID)
	c.state.Append(r.state)
	c.localPort.Append(r.localPort)
	c.remotePort.Append(r.remotePort)
	c.localAddrs.Append(d.local)
	c.remoteAddrs.Append(d.remote)
	c.primaryAddr.Append(r.primary)
	c.inode.Append(r.inode)
	c.txQueue.Append(r.txQueue)
	c.rxQueue.Append(r.rxQueue)
	c.procCols.append(&r.proc)
	c.firstSeen.AppendRaw(r.firstSeen)
	return nil
}

func (d *Decoder) sctpEndpoint(b *Batch, _ int) error {
	var r sctpRow
	d.local = d.local[:0]
	err := d.members(pLocalPort|pLocalAddrs|pInode, sctpFields,
		func(k []byte) (uint32, error) { return d.sctpField(k, &r, epFields) })
	if err != nil {
		return err
	}
	c := &b.sctpEps
	c.netns.Append(r.netns)
	c.localPort.Append(r.localPort)
	c.localAddrs.Append(d.local)
	c.inode.Append(r.inode)
	c.procCols.append(&r.proc)
	c.firstSeen.AppendRaw(r.firstSeen)
	return nil
}

// Bits of flow fields.
const (
	gFlowID = 1 << iota
	gProtocol
	gDirection
	gSrcAddr
	gSrcPort
	gDstAddr
	gDstPort
	gStartedAt
	gState
	gSource
	gEndedAt
)

var flowFields = []string{"flow_id", "protocol", "direction", "src_address", "src_port", "dst_address", "dst_port", "started_at", "state", "source", "ended_at"}

func (d *Decoder) flow(b *Batch, _ int, completed bool) error {
	var r flowRow
	need := uint32(gFlowID | gProtocol | gDirection | gSrcAddr | gSrcPort | gDstAddr | gDstPort | gStartedAt | gState | gSource)
	states := heartbeat.States
	if completed {
		need |= gEndedAt
		states = heartbeat.FinalStates
	}
	err := d.members(need, flowFields, func(k []byte) (uint32, error) {
		var err error
		switch string(k) {
		case "flow_id":
			r.flowID, err = d.uuid()
			return gFlowID, err
		case "protocol":
			r.protocol, err = d.enum(heartbeat.Protocols)
			return gProtocol, err
		case "direction":
			r.direction, err = d.enum(heartbeat.Directions)
			return gDirection, err
		case "src_address":
			r.srcAddr, err = d.addr()
			return gSrcAddr, err
		case "src_port":
			r.srcPort, err = d.port()
			return gSrcPort, err
		case "dst_address":
			r.dstAddr, err = d.addr()
			return gDstAddr, err
		case "dst_port":
			r.dstPort, err = d.port()
			return gDstPort, err
		case "started_at":
			r.startedAt, err = d.time()
			return gStartedAt, err
		case "ended_at":
			r.endedAt, err = d.time()
			return gEndedAt, err
		case "state":
			r.state, err = d.enum(states)
			return gState, err
		case "source":
			r.source, err = d.enum(heartbeat.Sources)
			return gSource, err
		case "bytes_sent":
			r.bytesSent, err = d.s.Uint()
		case "bytes_received":
			r.bytesReceived, err = d.s.Uint()
		default:
			err = d.proc(k, &r.proc)
		}
		return 0, err
	})
	if err != nil {
		return err
	}
	if !completed {
		b.active.flowBody.append(&r)
		return nil
	}
	if r.endedAt < r.startedAt {
		return &FieldError{Field: "ended_at", Err: errors.New("before started_at")}
	}
	durMs := uint64(r.endedAt - r.startedAt) // both in milliseconds
	f := &b.flows
	f.flowBody.append(&r)
	f.endedAt.AppendRaw(r.endedAt)
	f.durationMs.Append(durMs)
	// Every completed flow is also a network_flow event (event_id = flow_id).
	e := &b.events
	e.eventID.Append(r.flowID)
	e.kind.Append("network_flow")
	e.time.AppendRaw(r.endedAt)
	e.protocol.Append(r.protocol)
	e.srcAddr.Append(r.srcAddr)
	e.srcPort.Append(r.srcPort)
	e.dstAddr.Append(r.dstAddr)
	e.dstPort.Append(r.dstPort)
	e.procCols.append(&r.proc)
	e.queryName.AppendBytes(nil)
	e.queryType.AppendBytes(nil)
	e.answers.Append(nil)
	e.durationMs.Append(durMs)
	e.bytesSent.Append(r.bytesSent)
	e.bytesReceived.Append(r.bytesReceived)
	e.state.Append(r.state)
	e.source.Append(r.source)
	return nil
}

// Bits of event fields.
const (
	eID = 1 << iota
	eKind
	eTime
)

var eventFields = []string{"event_id", "kind", "time"}

func (d *Decoder) event(b *Batch, _ int) error {
	var (
		r                             flowRow
		id                            uuid.UUID
		kind, protocol, state, source string
		at                            proto.DateTime64
		queryName, queryType          []byte
	)
	d.answers = d.answers[:0]
	err := d.members(eID|eKind|eTime, eventFields, func(k []byte) (uint32, error) {
		var err error
		switch string(k) {
		case "event_id":
			id, err = d.uuid()
			return eID, err
		case "kind":
			kind, err = d.enum(heartbeat.EventKinds)
			if err != nil && d.lastStr == "network_flow" {
				err = errors.New("network_flow events are derived from completed_flows; send the flow there")
			}
			return eKind, err
		case "time":
			at, err = d.time()
			return eTime, err
		case "protocol":
			protocol, err = d.enum(heartbeat.Protocols)
		case "src_address":
			r.srcAddr, err = d.addr()
		case "src_port":
			r.srcPort, err = d.port()
		case "dst_address":
			r.dstAddr, err = d.addr()
		case "dst_port":
			r.dstPort, err = d.port()
		case "query_name":
			queryName, err = d.str(255, true)
		case "query_type":
			queryType, err = d.str(16, true)
		case "answers":
			if d.s.Null() {
				d.answers = d.answers[:0]
				break
			}
			d.answers, err = d.addrList(d.answers, "answers")
		case "state":
			state, err = d.enum(heartbeat.FinalStates)
		case "source":
			source, err = d.enum(heartbeat.Sources)
		default:
			err = d.proc(k, &r.proc)
		}
		return 0, err
	})
	if err != nil {
		return err
	}
	e := &b.events
	e.eventID.Append(id)
	e.kind.Append(kind)
	e.time.AppendRaw(at)
	e.protocol.Append(protocol)
	e.srcAddr.Append(r.srcAddr)
	e.srcPort.Append(r.srcPort)
	e.dstAddr.Append(r.dstAddr)
	e.dstPort.Append(r.dstPort)
	e.procCols.append(&r.proc)
	e.queryName.AppendBytes(queryName)
	e.queryType.AppendBytes(queryType)
	e.answers.Append(d.answers)
	e.durationMs.Append(0)
	e.bytesSent.Append(0)
	e.bytesReceived.Append(0)
	e.state.Append(state)
	e.source.Append(source)
	return nil
}

// Value readers.

func (d *Decoder) uuid() (uuid.UUID, error) {
	s, err := d.s.Str()
	if err != nil {
		return uuid.UUID{}, err
	}
	u, err := uuid.ParseBytes(s)
	if err != nil {
		return uuid.UUID{}, errors.New("not a UUID")
	}
	return u, nil
}

func (d *Decoder) port() (uint16, error) {
	v, err := d.s.Uint()
	if err != nil {
		return 0, err
	}
	if v > 65535 {
		return 0, errors.New("port out of range 0..65535")
	}
	return uint16(v), nil
}

// view returns b as a string without copying, for parsers that do not keep it.
func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func (d *Decoder) addr() (proto.IPv6, error) {
	s, err := d.s.Str()
	if err != nil {
		return proto.IPv6{}, err
	}
	a, err := netip.ParseAddr(view(s))
	if err != nil || a.Zone() != "" {
		return proto.IPv6{}, errors.New("not an IP address")
	}
	return a.As16(), nil
}

// addrList reads an array of at most maxAddrs addresses into dst[:0];
// what names them in the error about too many.
func (d *Decoder) addrList(dst []proto.IPv6, what string) ([]proto.IPv6, error) {
	dst = dst[:0]
	if err := d.s.EnterArray(); err != nil {
		return dst, err
	}
	for {
		ok, err := d.s.NextElem()
		if err != nil || !ok {
			return dst, err
		}
		if len(dst) >= maxAddrs {
			return dst, fmt.Errorf("more than %d %s", maxAddrs, what)
		}
		a, err := d.addr()
		if err != nil {
			return dst, err
		}
		dst = append(dst, a)
	}
}

// u32 reads an integer that must fit in 32 bits.
func (d *Decoder) u32() (uint32, error) {
	v, err := d.s.Uint()
	if err == nil && v > 1<<32-1 {
		err = errors.New("out of range")
	}
	return uint32(v), err
}

func (d *Decoder) time() (proto.DateTime64, error) {
	s, err := d.s.Str()
	if err != nil {
		return 0, err
	}
	t, err := time.Parse(time.RFC3339Nano, view(s))
	if err != nil {
		return 0, errors.New("not an RFC 3339 time")
	}
	if y := t.Year(); y < 2000 || y > 2200 {
		return 0, errors.New("time out of range 2000..2200")
	}
	return proto.ToDateTime64(t, proto.PrecisionMilli), nil
}

// str reads a string of at most max bytes and copies it into the arena, so
// it stays valid for the rest of the document.
func (d *Decoder) str(max int, optional bool) ([]byte, error) {
	if optional && d.s.Null() {
		return nil, nil
	}
	s, err := d.s.Str()
	if err != nil {
		return nil, err
	}
	if len(s) > max {
		return nil, fmt.Errorf("longer than %d bytes", max)
	}
	start := len(d.arena)
	d.arena = append(d.arena, s...)
	return d.arena[start:len(d.arena):len(d.arena)], nil
}

// enum reads a string that must be one of vocab and returns vocab's own
// copy, so storing it allocates nothing.
func (d *Decoder) enum(vocab []string) (string, error) {
	d.lastStr = ""
	s, err := d.s.Str()
	if err != nil {
		return "", err
	}
	for _, v := range vocab {
		if string(s) == v {
			return v, nil
		}
	}
	d.lastStr = string(s)
	return "", fmt.Errorf("%q is not one of %v", s, vocab)
}
