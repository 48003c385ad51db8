package heartbeat

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"github.com/google/uuid"

	"github.com/netview/netview/heartbeat/internal/jsonscan"
)

var (
	// ErrInvalid marks a heartbeat that breaks the wire format; the message
	// names the field.
	ErrInvalid = errors.New("invalid heartbeat")
	// ErrFormat marks a heartbeat of a format version this code cannot read.
	ErrFormat = errors.New("unknown heartbeat format version")
	// ErrSensorMismatch marks a heartbeat whose sensor.sensor_id is not
	// Decoder.SensorID.
	ErrSensorMismatch = errors.New("sensor_id is not the sensor of this key")
	// ErrTimeWindow marks a row whose time lies too far from sent_at.
	ErrTimeWindow = errors.New("time outside the heartbeat's window")
	// ErrTooManyRows marks a heartbeat of more rows than Decoder.MaxRows.
	ErrTooManyRows = errors.New("too many rows in one heartbeat")
)

// FieldError names the field of a heartbeat that broke the wire format,
// as a path: events[3].time.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string   { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() []error { return []error{ErrInvalid, e.Err} }

// Sink receives a heartbeat's rows in document order as a Decoder reads
// them. A row is only valid during the call: its strings and slices point
// into the Decoder's buffers, which the next row or heartbeat reuses, so a
// Sink that keeps anything copies it. Rows of a heartbeat that turns out
// invalid have been handed over before Decode returns its error; the Sink
// takes them back (ingest truncates its columns).
type Sink interface {
	Conn(*Conn)
	Listener(*Listener)
	UDP(*UDPSocket)
	ActiveFlow(*Flow)
	CompletedFlow(*Flow)
	Event(*Event)
	SCTPAssociation(*SCTPAssoc)
	SCTPEndpoint(*SCTPEndpoint)
	Interface(*Interface)
}

// Decoder reads heartbeat JSON, checks it against the format's rules
// (types, vocabularies, limits, required fields) and hands its rows to a
// Sink. Warm, it allocates nothing: strings are views into a buffer it
// keeps, and rows are reused. One Decoder serves one goroutine at a time.
type Decoder struct {
	// SensorID, when not nil, is the only sensor.sensor_id accepted (the
	// sender's key is bound to it).
	SensorID uuid.UUID
	// MaxRows, when positive, bounds the rows of one heartbeat, in all
	// sections together.
	MaxRows int
	// Window, when positive, is how far from the heartbeat's sent_at the
	// times that partition stored rows may lie (see checkTimes).
	Window time.Duration

	s     jsonscan.Scanner
	arena []byte // the bytes of every string of the document
	// keep makes every row own its slices and strings (Decode, the
	// function): nothing is reused.
	keep bool

	hb    Heartbeat
	caps  map[string]string
	seen  uint32 // header fields present
	nrows int    // rows read from the current heartbeat
	// ends and times are the completed flows' ended_at and the events'
	// time, in milliseconds, for checkTimes.
	ends, times []int64
	lastStr     string // the last value enum refused, for a better message

	conn     Conn
	listener Listener
	udp      UDPSocket
	flow     Flow
	event    Event
	assoc    SCTPAssoc
	endpoint SCTPEndpoint
	duration uint32
	answers  []netip.Addr
	// local and remote hold the address lists of the SCTP row being read.
	local, remote []netip.Addr
	iface         Interface
	prefixes      []netip.Prefix
	nifaces       int // interfaces read from the current heartbeat
}

// Rows is how many rows the last Decode read, also when it failed: what
// reading it cost.
func (d *Decoder) Rows() int { return d.nrows }

// Decode reads one heartbeat, handing its rows to sink, and returns its
// header: the Heartbeat without its sections, valid until the next call.
// doc is not kept.
func (d *Decoder) Decode(doc []byte, sink Sink) (*Heartbeat, error) {
	d.s.Reset(doc)
	if !d.keep {
		d.arena = d.arena[:0]
	}
	if d.caps == nil || d.keep {
		d.caps = map[string]string{}
	}
	clear(d.caps)
	d.hb = Heartbeat{}
	d.seen, d.nrows, d.nifaces = 0, 0, 0
	d.ends, d.times = d.ends[:0], d.times[:0]
	err := d.document(sink)
	if err == nil {
		if err = d.s.End(); err != nil {
			err = &FieldError{Field: "(document)", Err: err}
		}
	}
	if err == nil {
		err = d.check()
	}
	if err == nil {
		err = d.checkTimes()
	}
	if err != nil {
		return nil, err
	}
	if len(d.caps) > 0 {
		d.hb.Sensor.Capabilities = d.caps
	}
	return &d.hb, nil
}

// Decode reads one heartbeat into a Heartbeat of its own, for callers that
// want the whole document rather than a stream of rows.
func Decode(doc []byte) (*Heartbeat, error) {
	var c collector
	d := Decoder{keep: true}
	h, err := d.Decode(doc, &c)
	if err != nil {
		return nil, err
	}
	c.h.Format, c.h.HeartbeatID, c.h.Seq, c.h.SentAt, c.h.Sensor, c.h.SnapshotsDropped =
		h.Format, h.HeartbeatID, h.Seq, h.SentAt, h.Sensor, h.SnapshotsDropped
	return &c.h, nil
}

// collector is the Sink of Decode: it keeps every row (the Decoder gave
// each its own strings and slices).
type collector struct{ h Heartbeat }

func (c *collector) Conn(r *Conn)          { c.h.TCPConnections = append(c.h.TCPConnections, *r) }
func (c *collector) Listener(r *Listener)  { c.h.TCPListeners = append(c.h.TCPListeners, *r) }
func (c *collector) UDP(r *UDPSocket)      { c.h.UDPListeners = append(c.h.UDPListeners, *r) }
func (c *collector) ActiveFlow(r *Flow)    { c.h.ActiveFlows = append(c.h.ActiveFlows, *r) }
func (c *collector) CompletedFlow(r *Flow) { c.h.CompletedFlows = append(c.h.CompletedFlows, *r) }
func (c *collector) Event(r *Event)        { c.h.Events = append(c.h.Events, *r) }
func (c *collector) SCTPAssociation(r *SCTPAssoc) {
	c.h.SCTPAssociations = append(c.h.SCTPAssociations, *r)
}
func (c *collector) SCTPEndpoint(r *SCTPEndpoint) { c.h.SCTPEndpoints = append(c.h.SCTPEndpoints, *r) }
func (c *collector) Interface(r *Interface)       { c.h.Interfaces = append(c.h.Interfaces, *r) }

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
)

func (d *Decoder) check() error {
	for _, f := range [...]struct {
		bit  uint32
		name string
	}{{hFormat, "format"}, {hID, "heartbeat_id"}, {hSeq, "seq"}, {hSentAt, "sent_at"}, {hSensor, "sensor"},
		{hSensorID, "sensor.sensor_id"}, {hHostname, "sensor.hostname"}, {hFlavor, "sensor.flavor"}, {hBoot, "sensor.boot_id"}} {
		if d.seen&f.bit == 0 {
			return &FieldError{Field: f.name, Err: errors.New("required")}
		}
	}
	return nil
}

// checkTimes refuses a heartbeat whose rows carry times further than
// d.Window from its own sent_at. Ingest partitions every table by day, and
// the engine refuses a whole insert touching more than
// max_partitions_per_insert_block (100) days: one heartbeat with events on
// 150 days failed the batch of every sensor sharing it. Only the times
// that partition a table by a row's own time are checked (completed flows
// by ended_at, events by time): first_seen and started_at may rightly be
// days old, and the snapshot tables are partitioned by sent_at. Within
// ±Window (24 h by default in ingest) a heartbeat spans at most 3 days. It
// runs after the whole document is read, because sent_at may come after
// the rows.
//
// sent_at itself is not checked against any clock: a sensor whose clock is
// wrong must stay visible; ingest shows its skew.
func (d *Decoder) checkTimes() error {
	if d.Window <= 0 {
		return nil
	}
	w := d.Window.Milliseconds()
	sent := d.hb.SentAt.UnixMilli()
	for _, k := range [...]struct {
		name string
		ts   []int64
	}{{"completed_flows[%d].ended_at", d.ends}, {"events[%d].time", d.times}} {
		for i, t := range k.ts {
			if t >= sent-w && t <= sent+w {
				continue
			}
			off := time.Duration(t-sent) * time.Millisecond
			dir := "after"
			if off < 0 {
				off, dir = -off, "before"
			}
			return &FieldError{Field: fmt.Sprintf(k.name, i), Err: fmt.Errorf("%w: %s %s sent_at; rows may lie within ±%s of it (check the sensor's clock)",
				ErrTimeWindow, off.Round(time.Second), dir, d.Window)}
		}
	}
	return nil
}

func (d *Decoder) document(sink Sink) error {
	if err := d.s.EnterObject(); err != nil {
		return &FieldError{Field: "(document)", Err: err}
	}
	h := &d.hb
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
			d.seen |= hFormat
			var v int64
			if v, ferr = d.s.Int(); ferr == nil {
				if v != Format { // refused before anything else is read
					return &FieldError{Field: "format", Err: fmt.Errorf("%w %d (this node reads %d)", ErrFormat, v, Format)}
				}
				h.Format = int(v)
			}
		case "heartbeat_id":
			d.seen |= hID
			h.HeartbeatID, ferr = d.uuid()
		case "seq":
			d.seen |= hSeq
			h.Seq, ferr = d.s.Uint()
		case "sent_at":
			d.seen |= hSentAt
			h.SentAt, ferr = d.time()
		case "snapshots_dropped":
			h.SnapshotsDropped, ferr = d.s.Bool()
		case "sensor":
			d.seen |= hSensor
			if err := d.sensor(); err != nil {
				return err
			}
			continue
		case "tcp_connections":
			if err := d.rows("tcp_connections", func() error { return d.readConn(sink) }); err != nil {
				return err
			}
			continue
		case "tcp_listeners":
			if err := d.rows("tcp_listeners", func() error { return d.readListener(sink) }); err != nil {
				return err
			}
			continue
		case "udp_listeners":
			if err := d.rows("udp_listeners", func() error { return d.readUDP(sink) }); err != nil {
				return err
			}
			continue
		case "active_flows":
			if err := d.rows("active_flows", func() error { return d.readFlow(sink, false) }); err != nil {
				return err
			}
			continue
		case "completed_flows":
			if err := d.rows("completed_flows", func() error { return d.readFlow(sink, true) }); err != nil {
				return err
			}
			continue
		case "events":
			if err := d.rows("events", func() error { return d.readEvent(sink) }); err != nil {
				return err
			}
			continue
		case "sctp_associations":
			if err := d.rows("sctp_associations", func() error { return d.readAssoc(sink) }); err != nil {
				return err
			}
			continue
		case "sctp_endpoints":
			if err := d.rows("sctp_endpoints", func() error { return d.readEndpoint(sink) }); err != nil {
				return err
			}
			continue
		case "interfaces":
			if err := d.rows("interfaces", func() error { return d.readInterface(sink) }); err != nil {
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

func (d *Decoder) sensor() error {
	if err := d.s.EnterObject(); err != nil {
		return &FieldError{Field: "sensor", Err: err}
	}
	s := &d.hb.Sensor
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
			d.seen |= hSensorID
			// Every sensor_id member is checked (a repeated member replaces
			// the one before), so the one kept is the key's.
			if s.SensorID, err = d.uuid(); err == nil && d.SensorID != uuid.Nil && s.SensorID != d.SensorID {
				err = fmt.Errorf("%w: %s, the key is bound to %s", ErrSensorMismatch, s.SensorID, d.SensorID)
			}
		case "hostname":
			d.seen |= hHostname
			s.Hostname, err = d.str(MaxHostname, false)
		case "flavor":
			d.seen |= hFlavor
			s.Flavor, err = d.enum(Flavors)
		case "version":
			s.Version, err = d.str(MaxVersion, true)
		case "boot_id":
			d.seen |= hBoot
			s.BootID, err = d.uuid()
		case "started_at":
			s.StartedAt, err = d.time()
		case "interval_secs":
			var v uint64
			v, err = d.s.Uint()
			if err == nil && v > MaxIntervalSecs {
				err = fmt.Errorf("must be at most %d", MaxIntervalSecs)
			}
			s.IntervalSecs = uint32(v)
		case "kernel":
			s.Kernel, err = d.str(MaxKernel, true)
		case "netns":
			s.Netns, err = d.s.Uint()
		case "site":
			if s.Site, err = d.str(MaxSite, false); err == nil {
				err = ValidSite(s.Site)
			}
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

// capabilities reads sensor.capabilities, an object of short strings under
// lower-case keys. A second capabilities member replaces the first, as
// every repeated member does.
func (d *Decoder) capabilities() error {
	const field = "sensor.capabilities"
	clear(d.caps)
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
			return &FieldError{Field: field, Err: fmt.Errorf("key %q is not 1 to %d bytes of a-z, 0-9 and _", clip(key, MaxCapKey+8), MaxCapKey)}
		}
		if _, dup := d.caps[string(key)]; dup {
			return &FieldError{Field: field + "." + string(key), Err: errors.New("duplicate key")}
		}
		if len(d.caps) == MaxCapabilities {
			return &FieldError{Field: field, Err: fmt.Errorf("more than %d entries", MaxCapabilities)}
		}
		k := d.keepBytes(key)
		v, err := d.str(MaxCapValue, false)
		if err != nil {
			return &FieldError{Field: field + "." + k, Err: err}
		}
		d.caps[k] = v
	}
}

// capKey reports whether k is a valid capabilities key.
func capKey(k []byte) bool {
	if len(k) == 0 || len(k) > MaxCapKey {
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

// rows walks one array of row objects, calling row for each once it has
// entered the row's object.
func (d *Decoder) rows(section string, row func() error) error {
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
		if err := row(); err != nil {
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

// Bits of socket row fields, in the order of socketFields.
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

var socketFields = []string{"family", "local_address", "local_port", "remote_address", "remote_port", "state", "inode", "netns", "first_seen", "duration_secs", "service"}

// sockBit maps a socket field to its bit; 0 for the process fields.
func sockBit(key []byte) uint32 {
	for i, n := range socketFields {
		if string(key) == n {
			return 1 << i
		}
	}
	return 0
}

// sock points at the fields of the socket row being read; the row kinds
// share their names and rules, and each has only some of them (allow).
type sock struct {
	family, state, service *string
	localAddr, remoteAddr  *netip.Addr
	localPort, remotePort  *uint16
	inode, netns           *uint64
	firstSeen              *time.Time
	duration               **uint32
	proc                   *Process
	allow                  uint32
}

// sockField reads one member of a socket row; members that the section
// does not have are skipped like any unknown member.
func (d *Decoder) sockField(key []byte, r *sock) (uint32, error) {
	if b := sockBit(key); b != 0 && r.allow&b == 0 {
		return 0, d.s.Skip()
	}
	var err error
	switch string(key) {
	case "family":
		*r.family, err = d.enum(Families)
		return fFamily, err
	case "local_address":
		*r.localAddr, err = d.addr()
		return fLocalAddr, err
	case "local_port":
		*r.localPort, err = d.port()
		return fLocalPort, err
	case "remote_address":
		*r.remoteAddr, err = d.addr()
		return fRemoteAddr, err
	case "remote_port":
		*r.remotePort, err = d.port()
		return fRemotePort, err
	case "state":
		*r.state, err = d.enum(States)
		if err != nil && d.lastStr == "LISTEN" {
			err = errors.New("LISTEN sockets belong in tcp_listeners")
		}
		return fState, err
	case "inode":
		*r.inode, err = d.s.Uint()
		return fInode, err
	case "netns":
		*r.netns, err = d.s.Uint()
	case "first_seen":
		*r.firstSeen, err = d.time()
	case "duration_secs":
		if d.s.Null() {
			*r.duration = nil
			return 0, nil
		}
		var v uint32
		if v, err = d.u32(); err == nil {
			*r.duration = d.durationOf(v)
		}
	case "service":
		*r.service, err = d.str(MaxService, true)
	default:
		return 0, d.proc(key, r.proc)
	}
	return 0, err
}

// durationOf points at v, in the Decoder's own place unless rows are kept.
func (d *Decoder) durationOf(v uint32) *uint32 {
	if d.keep {
		return &v
	}
	d.duration = v
	return &d.duration
}

// proc reads the process fields every row kind carries, skipping unknown keys.
func (d *Decoder) proc(key []byte, p *Process) error {
	var err error
	switch string(key) {
	case "pid":
		if d.s.Null() {
			p.PID = 0
			return nil
		}
		var v uint64
		v, err = d.s.Uint()
		if err == nil && v > MaxPID {
			err = errors.New("out of range")
		}
		p.PID = uint32(v)
	case "uid":
		p.UID, err = d.u32()
	default:
		for i := range processStrings {
			if m := &processStrings[i]; string(key) == m.Name {
				*m.at(p), err = d.str(m.Max, true)
				return err
			}
		}
		err = d.s.Skip()
	}
	return err
}

func (d *Decoder) readConn(sink Sink) error {
	r := &d.conn
	*r = Conn{}
	s := sock{family: &r.Family, state: &r.State, localAddr: &r.LocalAddress, remoteAddr: &r.RemoteAddress,
		localPort: &r.LocalPort, remotePort: &r.RemotePort, inode: &r.Inode, netns: &r.Netns,
		firstSeen: &r.FirstSeen, duration: &r.DurationSecs, proc: &r.Process, allow: connFields}
	err := d.members(fFamily|fLocalAddr|fLocalPort|fRemoteAddr|fRemotePort|fState|fInode, socketFields,
		func(k []byte) (uint32, error) { return d.sockField(k, &s) })
	if err != nil {
		return err
	}
	sink.Conn(r)
	return nil
}

func (d *Decoder) readListener(sink Sink) error {
	r := &d.listener
	*r = Listener{}
	s := sock{family: &r.Family, localAddr: &r.LocalAddress, localPort: &r.LocalPort, inode: &r.Inode,
		netns: &r.Netns, firstSeen: &r.FirstSeen, proc: &r.Process, allow: sockCommon}
	err := d.members(fFamily|fLocalAddr|fLocalPort|fInode, socketFields,
		func(k []byte) (uint32, error) { return d.sockField(k, &s) })
	if err != nil {
		return err
	}
	sink.Listener(r)
	return nil
}

func (d *Decoder) readUDP(sink Sink) error {
	r := &d.udp
	*r = UDPSocket{}
	s := sock{family: &r.Family, service: &r.Service, localAddr: &r.LocalAddress, remoteAddr: &r.RemoteAddress,
		localPort: &r.LocalPort, remotePort: &r.RemotePort, inode: &r.Inode, netns: &r.Netns,
		firstSeen: &r.FirstSeen, proc: &r.Process, allow: udpFields}
	err := d.members(fFamily|fLocalAddr|fLocalPort|fInode, socketFields,
		func(k []byte) (uint32, error) { return d.sockField(k, &s) })
	if err != nil {
		return err
	}
	sink.UDP(r)
	return nil
}

// Bits of SCTP row fields, in the order of sctpFields.
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

// sctpField reads one member of an SCTP row into a (endpoints are read
// into an association, allow says which members they have). Members the
// section does not have are skipped like any unknown member.
func (d *Decoder) sctpField(key []byte, a *SCTPAssoc, allow uint32) (uint32, error) {
	bit := sctpBit(key)
	if bit != 0 && allow&bit == 0 {
		return 0, d.s.Skip()
	}
	var err error
	switch bit {
	case pAssocID:
		a.AssocID, err = d.u32()
	case pState:
		a.State, err = d.enum(SCTPStates)
	case pLocalPort:
		a.LocalPort, err = d.port()
	case pRemotePort:
		a.RemotePort, err = d.port()
	case pLocalAddrs:
		d.local, err = d.addrList(d.reuse(d.local), "addresses")
		a.LocalAddresses = d.local
	case pRemoteAddrs:
		d.remote, err = d.addrList(d.reuse(d.remote), "addresses")
		a.RemoteAddresses = d.remote
	case pInode:
		a.Inode, err = d.s.Uint()
	case pPrimary:
		a.PrimaryAddress, err = d.addr()
	case pNetns:
		a.Netns, err = d.s.Uint()
	case pTxQueue:
		a.TxQueue, err = d.u32()
	case pRxQueue:
		a.RxQueue, err = d.u32()
	case pFirstSeen:
		a.FirstSeen, err = d.time()
	default:
		return 0, d.proc(key, &a.Process)
	}
	return bit, err
}

func (d *Decoder) readAssoc(sink Sink) error {
	r := &d.assoc
	*r = SCTPAssoc{LocalAddresses: d.reuse(d.local), RemoteAddresses: d.reuse(d.remote)}
	err := d.members(pAssocID|pState|pLocalPort|pRemotePort|pLocalAddrs|pRemoteAddrs|pInode, sctpFields,
		func(k []byte) (uint32, error) { return d.sctpField(k, r, ^uint32(0)) })
	if err != nil {
		return err
	}
	sink.SCTPAssociation(r)
	return nil
}

func (d *Decoder) readEndpoint(sink Sink) error {
	a := &d.assoc // an endpoint's members are an association's
	*a = SCTPAssoc{LocalAddresses: d.reuse(d.local)}
	err := d.members(pLocalPort|pLocalAddrs|pInode, sctpFields,
		func(k []byte) (uint32, error) { return d.sctpField(k, a, epFields) })
	if err != nil {
		return err
	}
	r := &d.endpoint
	*r = SCTPEndpoint{LocalPort: a.LocalPort, LocalAddresses: a.LocalAddresses, Inode: a.Inode, Netns: a.Netns,
		Process: a.Process, FirstSeen: a.FirstSeen}
	sink.SCTPEndpoint(r)
	return nil
}

// Bits of the required interface fields, in the order of ifaceFields.
const iName, iIndex, iUp = 1 << 0, 1 << 1, 1 << 2

var ifaceFields = []string{"name", "index", "up"}

// readInterface reads one interface. Each of its addresses is a row of
// storage, so beyond the first they count against MaxRows as rows do.
func (d *Decoder) readInterface(sink Sink) error {
	if d.nifaces++; d.nifaces > MaxInterfaces {
		return fmt.Errorf("more than %d interfaces", MaxInterfaces)
	}
	r := &d.iface
	*r = Interface{}
	if !d.keep {
		d.prefixes = d.prefixes[:0]
	} else {
		d.prefixes = nil
	}
	err := d.members(iName|iIndex|iUp, ifaceFields, func(k []byte) (uint32, error) {
		var err error
		switch string(k) {
		case "name":
			r.Name, err = d.str(MaxIfName, false)
			if err == nil && r.Name == "" {
				err = errors.New("empty")
			}
			return iName, err
		case "index":
			var v uint64
			if v, err = d.s.Uint(); err == nil && (v == 0 || v > 1<<31-1) {
				err = errors.New("out of range 1..2147483647")
			}
			r.Index = uint32(v)
			return iIndex, err
		case "up":
			r.Up, err = d.s.Bool()
			return iUp, err
		case "netns":
			r.Netns, err = d.s.Uint()
		case "mac":
			if d.s.Null() {
				r.MAC = ""
				return 0, nil
			}
			if r.MAC, err = d.str(MaxMAC, false); err == nil && !ValidMAC(r.MAC) {
				err = fmt.Errorf("%q is not a MAC address (1 to 32 lower-case hex bytes separated by colons)", clip([]byte(r.MAC), 40))
			}
		case "addresses":
			d.prefixes = d.prefixes[:0]
			if !d.s.Null() {
				d.prefixes, err = d.prefixList(d.prefixes)
			}
		default:
			err = d.s.Skip()
		}
		return 0, err
	})
	if err != nil {
		return err
	}
	if len(d.prefixes) > 0 {
		r.Addresses = d.prefixes
	}
	if n := len(r.Addresses); n > 1 {
		if d.nrows += n - 1; d.MaxRows > 0 && d.nrows > d.MaxRows {
			return &FieldError{Field: "addresses", Err: fmt.Errorf("%w: more than %d", ErrTooManyRows, d.MaxRows)}
		}
	}
	sink.Interface(r)
	return nil
}

// prefixList reads an array of at most MaxIfaceAddrs addresses with their
// prefix length (10.0.0.5/24) into dst[:0].
func (d *Decoder) prefixList(dst []netip.Prefix) ([]netip.Prefix, error) {
	return list(d, dst, MaxIfaceAddrs, "addresses", (*Decoder).prefix)
}

// prefix reads an address with its prefix length; a zone is refused.
func (d *Decoder) prefix() (netip.Prefix, error) {
	s, err := d.s.Str()
	if err != nil {
		return netip.Prefix{}, err
	}
	p, err := netip.ParsePrefix(view(s))
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address with its prefix length (10.0.0.5/24, 2001:db8::5/64)", clip(s, 60))
	}
	return p, nil
}

// Bits of flow fields, in the order of flowFields.
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

func (d *Decoder) readFlow(sink Sink, completed bool) error {
	r := &d.flow
	*r = Flow{}
	need := uint32(gFlowID | gProtocol | gDirection | gSrcAddr | gSrcPort | gDstAddr | gDstPort | gStartedAt | gState | gSource)
	states := States
	if completed {
		need |= gEndedAt
		states = FinalStates
	}
	err := d.members(need, flowFields, func(k []byte) (uint32, error) {
		var err error
		switch string(k) {
		case "flow_id":
			r.FlowID, err = d.uuid()
			return gFlowID, err
		case "protocol":
			r.Protocol, err = d.enum(Protocols)
			return gProtocol, err
		case "direction":
			r.Direction, err = d.enum(Directions)
			return gDirection, err
		case "src_address":
			r.SrcAddress, err = d.addr()
			return gSrcAddr, err
		case "src_port":
			r.SrcPort, err = d.port()
			return gSrcPort, err
		case "dst_address":
			r.DstAddress, err = d.addr()
			return gDstAddr, err
		case "dst_port":
			r.DstPort, err = d.port()
			return gDstPort, err
		case "started_at":
			r.StartedAt, err = d.time()
			return gStartedAt, err
		case "ended_at":
			r.EndedAt, err = d.time()
			return gEndedAt, err
		case "state":
			r.State, err = d.enum(states)
			return gState, err
		case "source":
			r.Source, err = d.enum(Sources)
			return gSource, err
		case "netns":
			r.Netns, err = d.s.Uint()
		case "bytes_sent":
			r.BytesSent, err = d.s.Uint()
		case "bytes_received":
			r.BytesReceived, err = d.s.Uint()
		default:
			err = d.proc(k, &r.Process)
		}
		return 0, err
	})
	if err != nil {
		return err
	}
	if !completed {
		sink.ActiveFlow(r)
		return nil
	}
	end := r.EndedAt.UnixMilli()
	if end < r.StartedAt.UnixMilli() {
		return &FieldError{Field: "ended_at", Err: errors.New("before started_at")}
	}
	d.ends = append(d.ends, end)
	sink.CompletedFlow(r)
	return nil
}

// Bits of event fields, in the order of eventFields.
const (
	eID = 1 << iota
	eKind
	eTime
)

var eventFields = []string{"event_id", "kind", "time"}

func (d *Decoder) readEvent(sink Sink) error {
	r := &d.event
	*r = Event{}
	d.answers = d.reuse(d.answers)
	err := d.members(eID|eKind|eTime, eventFields, func(k []byte) (uint32, error) {
		var err error
		switch string(k) {
		case "event_id":
			r.EventID, err = d.uuid()
			return eID, err
		case "kind":
			r.Kind, err = d.enum(EventKinds)
			if err != nil && d.lastStr == "network_flow" {
				err = errors.New("network_flow events are derived from completed_flows; send the flow there")
			}
			return eKind, err
		case "time":
			r.Time, err = d.time()
			return eTime, err
		case "protocol":
			r.Protocol, err = d.enum(Protocols)
		case "src_address":
			r.SrcAddress, err = d.addr()
		case "src_port":
			r.SrcPort, err = d.port()
		case "dst_address":
			r.DstAddress, err = d.addr()
		case "dst_port":
			r.DstPort, err = d.port()
		case "netns":
			r.Netns, err = d.s.Uint()
		case "query_name":
			r.QueryName, err = d.str(MaxQueryName, true)
		case "query_type":
			r.QueryType, err = d.str(MaxQueryType, true)
		case "answers":
			d.answers = d.answers[:0]
			if !d.s.Null() {
				d.answers, err = d.addrList(d.answers, "answers")
			}
		case "state":
			r.State, err = d.enum(FinalStates)
		case "source":
			r.Source, err = d.enum(Sources)
		default:
			err = d.proc(k, &r.Process)
		}
		return 0, err
	})
	if err != nil {
		return err
	}
	if len(d.answers) > 0 {
		r.Answers = d.answers
	}
	d.times = append(d.times, r.Time.UnixMilli())
	sink.Event(r)
	return nil
}

// Value readers.

// reuse empties an address list for the next row, or starts a new one when
// rows are kept.
func (d *Decoder) reuse(s []netip.Addr) []netip.Addr {
	if d.keep {
		return nil
	}
	return s[:0]
}

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

func (d *Decoder) addr() (netip.Addr, error) {
	s, err := d.s.Str()
	if err != nil {
		return netip.Addr{}, err
	}
	a, err := netip.ParseAddr(view(s))
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, errors.New("not an IP address")
	}
	return a, nil
}

// addrList reads an array of at most MaxAddrs addresses into dst[:0];
// what names them in the error about too many.
func (d *Decoder) addrList(dst []netip.Addr, what string) ([]netip.Addr, error) {
	return list(d, dst, MaxAddrs, what, (*Decoder).addr)
}

// list reads an array of at most max values, each read by item, into
// dst[:0]; what names them in the error about too many. item is a method
// expression, so no closure is made per list.
func list[T any](d *Decoder, dst []T, max int, what string, item func(*Decoder) (T, error)) ([]T, error) {
	dst = dst[:0]
	if err := d.s.EnterArray(); err != nil {
		return dst, err
	}
	for {
		ok, err := d.s.NextElem()
		if err != nil || !ok {
			return dst, err
		}
		if len(dst) >= max {
			return dst, fmt.Errorf("more than %d %s", max, what)
		}
		v, err := item(d)
		if err != nil {
			return dst, err
		}
		dst = append(dst, v)
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

func (d *Decoder) time() (time.Time, error) {
	s, err := d.s.Str()
	if err != nil {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, view(s))
	if err != nil {
		return time.Time{}, errors.New("not an RFC 3339 time")
	}
	if y := t.Year(); y < MinYear || y > MaxYear {
		return time.Time{}, fmt.Errorf("time out of range %d..%d", MinYear, MaxYear)
	}
	return t, nil
}

// str reads a string of at most max bytes into the arena, so it stays
// valid for the rest of the document.
func (d *Decoder) str(max int, optional bool) (string, error) {
	if optional && d.s.Null() {
		return "", nil
	}
	s, err := d.s.Str()
	if err != nil {
		return "", err
	}
	if len(s) > max {
		return "", fmt.Errorf("longer than %d bytes", max)
	}
	return d.keepBytes(s), nil
}

// keepBytes copies b into the arena and returns it as a string there.
// Strings of earlier documents are not touched when rows are kept: the
// arena only grows then, and a grown arena leaves the old one to them.
func (d *Decoder) keepBytes(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	start := len(d.arena)
	d.arena = append(d.arena, b...)
	return view(d.arena[start:])
}

// enum reads a string that must be one of vocab and returns vocab's own
// copy, so keeping it costs nothing.
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
