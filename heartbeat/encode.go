package heartbeat

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/netview/netview/internal/jsonw"
)

var encoders = sync.Pool{New: func() any {
	// A 1 MiB window keeps the receiver's memory small; heartbeats compress
	// about as well with it as with the default.
	e, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20))
	if err != nil {
		panic(err)
	}
	return e
}}

// Encode returns h as zstd-compressed JSON, the body of POST /v1/heartbeat.
func Encode(h *Heartbeat) ([]byte, error) {
	var e Encoder
	return e.Encode(h)
}

// Encoder encodes heartbeats one after another into buffers it keeps. A
// sensor under 1,000 new connections a second spent most of its CPU in
// encoding (a profile of sensor_test's BenchmarkSensorCPUUnderConnections):
// growing json.Marshal's buffer from nothing, clearing and copying it at
// every doubling, and reflecting over tens of thousands of completed flows
// and events with an allocation per address and time. The Encoder keeps
// its buffers between heartbeats and writes every member itself, byte for
// byte as json.Marshal of the types would (TestAppendMatchesJSON holds it
// to that); see BenchmarkEncode.
type Encoder struct {
	doc  []byte
	out  []byte
	keys []string
}

// Encode returns h as zstd-compressed JSON. The result is valid until the
// next call.
func (e *Encoder) Encode(h *Heartbeat) ([]byte, error) {
	e.doc = e.AppendJSON(e.doc[:0], h)
	z := encoders.Get().(*zstd.Encoder)
	defer encoders.Put(z)
	e.out = z.EncodeAll(e.doc, e.out[:0])
	return e.out, nil
}

// AppendJSON appends h as JSON, uncompressed, to b.
func (e *Encoder) AppendJSON(b []byte, h *Heartbeat) []byte {
	b = append(b, `{"format":`...)
	b = strconv.AppendInt(b, int64(h.Format), 10)
	b = append(b, `,"heartbeat_id":`...)
	b = jsonw.AppendUUID(b, h.HeartbeatID)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, h.Seq, 10)
	b = append(b, `,"sent_at":`...)
	b = appendTime(b, h.SentAt)
	b = append(b, `,"sensor":`...)
	b = e.appendSensor(b, &h.Sensor)
	b = appendRows(b, `,"tcp_connections":`, h.TCPConnections, appendConn)
	b = appendRows(b, `,"tcp_listeners":`, h.TCPListeners, appendListener)
	b = appendRows(b, `,"udp_listeners":`, h.UDPListeners, appendUDP)
	b = appendRows(b, `,"active_flows":`, h.ActiveFlows, appendFlow)
	b = appendRows(b, `,"completed_flows":`, h.CompletedFlows, appendFlow)
	b = appendRows(b, `,"events":`, h.Events, appendEvent)
	if len(h.SCTPAssociations) > 0 {
		b = appendRows(b, `,"sctp_associations":`, h.SCTPAssociations, appendAssoc)
	}
	if len(h.SCTPEndpoints) > 0 {
		b = appendRows(b, `,"sctp_endpoints":`, h.SCTPEndpoints, appendEndpoint)
	}
	if len(h.Interfaces) > 0 {
		b = appendRows(b, `,"interfaces":`, h.Interfaces, appendInterface)
	}
	if h.SnapshotsDropped {
		b = append(b, `,"snapshots_dropped":true`...)
	}
	return append(b, '}')
}

func (e *Encoder) appendSensor(b []byte, s *Sensor) []byte {
	b = append(b, `{"sensor_id":`...)
	b = jsonw.AppendUUID(b, s.SensorID)
	b = append(b, `,"hostname":`...)
	b = appendString(b, s.Hostname)
	b = append(b, `,"flavor":`...)
	b = appendString(b, s.Flavor)
	b = append(b, `,"version":`...)
	b = appendString(b, s.Version)
	b = append(b, `,"boot_id":`...)
	b = jsonw.AppendUUID(b, s.BootID)
	if !s.StartedAt.IsZero() {
		b = append(b, `,"started_at":`...)
		b = appendTime(b, s.StartedAt)
	}
	b = append(b, `,"interval_secs":`...)
	b = strconv.AppendUint(b, uint64(s.IntervalSecs), 10)
	b = appendOptString(b, `,"kernel":`, s.Kernel)
	b = appendNetns(b, s.Netns)
	b = appendOptString(b, `,"site":`, s.Site)
	if len(s.Capabilities) > 0 {
		// encoding/json writes a map's keys sorted.
		e.keys = e.keys[:0]
		for k := range s.Capabilities {
			e.keys = append(e.keys, k)
		}
		slices.Sort(e.keys)
		b = append(b, `,"capabilities":{`...)
		for i, k := range e.keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, s.Capabilities[k])
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendRows writes a section: its member name, then null or the array.
func appendRows[T any](b []byte, name string, rows []T, row func([]byte, *T) []byte) []byte {
	b = append(b, name...)
	if rows == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i := range rows {
		if i > 0 {
			b = append(b, ',')
		}
		b = row(b, &rows[i])
	}
	return append(b, ']')
}

func appendConn(b []byte, c *Conn) []byte {
	b = appendSocket(b, c.Family, c.LocalAddress, c.LocalPort)
	b = append(b, `,"remote_address":`...)
	b = appendAddr(b, c.RemoteAddress)
	b = append(b, `,"remote_port":`...)
	b = strconv.AppendUint(b, uint64(c.RemotePort), 10)
	b = append(b, `,"state":`...)
	b = appendString(b, c.State)
	b = appendInode(b, c.Inode, c.Netns)
	b = appendProcess(b, &c.Process)
	b = appendFirstSeen(b, c.FirstSeen)
	b = append(b, `,"duration_secs":`...)
	if c.DurationSecs == nil {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendUint(b, uint64(*c.DurationSecs), 10)
	}
	return append(b, '}')
}

func appendListener(b []byte, l *Listener) []byte {
	b = appendSocket(b, l.Family, l.LocalAddress, l.LocalPort)
	b = appendInode(b, l.Inode, l.Netns)
	b = appendProcess(b, &l.Process)
	b = appendFirstSeen(b, l.FirstSeen)
	return append(b, '}')
}

func appendUDP(b []byte, u *UDPSocket) []byte {
	b = appendSocket(b, u.Family, u.LocalAddress, u.LocalPort)
	b = appendOptAddr(b, `,"remote_address":`, u.RemoteAddress)
	b = appendPort(b, `,"remote_port":`, u.RemotePort)
	b = appendInode(b, u.Inode, u.Netns)
	b = appendOptString(b, `,"service":`, u.Service)
	b = appendProcess(b, &u.Process)
	b = appendFirstSeen(b, u.FirstSeen)
	return append(b, '}')
}

// appendSocket opens a socket row with the members every kind starts with.
func appendSocket(b []byte, family string, addr netip.Addr, port uint16) []byte {
	b = append(b, `{"family":`...)
	b = appendString(b, family)
	b = append(b, `,"local_address":`...)
	b = appendAddr(b, addr)
	b = append(b, `,"local_port":`...)
	return strconv.AppendUint(b, uint64(port), 10)
}

func appendInode(b []byte, inode, netns uint64) []byte {
	b = append(b, `,"inode":`...)
	b = strconv.AppendUint(b, inode, 10)
	return appendNetns(b, netns)
}

func appendNetns(b []byte, netns uint64) []byte {
	if netns == 0 {
		return b
	}
	b = append(b, `,"netns":`...)
	return strconv.AppendUint(b, netns, 10)
}

func appendFirstSeen(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	b = append(b, `,"first_seen":`...)
	return appendTime(b, t)
}

// appendPort writes an omitempty port member.
func appendPort(b []byte, name string, p uint16) []byte {
	if p == 0 {
		return b
	}
	b = append(b, name...)
	return strconv.AppendUint(b, uint64(p), 10)
}

// appendOptString writes an omitempty string member.
func appendOptString(b []byte, name, s string) []byte {
	if s == "" {
		return b
	}
	b = append(b, name...)
	return appendString(b, s)
}

// appendOptAddr writes an omitzero address member.
func appendOptAddr(b []byte, name string, a netip.Addr) []byte {
	if !a.IsValid() {
		return b
	}
	b = append(b, name...)
	return appendAddr(b, a)
}

func appendAssoc(b []byte, a *SCTPAssoc) []byte {
	b = append(b, `{"assoc_id":`...)
	b = strconv.AppendUint(b, uint64(a.AssocID), 10)
	b = append(b, `,"state":`...)
	b = appendString(b, a.State)
	b = append(b, `,"local_port":`...)
	b = strconv.AppendUint(b, uint64(a.LocalPort), 10)
	b = append(b, `,"remote_port":`...)
	b = strconv.AppendUint(b, uint64(a.RemotePort), 10)
	b = append(b, `,"local_addresses":`...)
	b = appendAddrs(b, a.LocalAddresses)
	b = append(b, `,"remote_addresses":`...)
	b = appendAddrs(b, a.RemoteAddresses)
	b = appendOptAddr(b, `,"primary_address":`, a.PrimaryAddress)
	b = appendInode(b, a.Inode, a.Netns)
	b = append(b, `,"tx_queue":`...)
	b = strconv.AppendUint(b, uint64(a.TxQueue), 10)
	b = append(b, `,"rx_queue":`...)
	b = strconv.AppendUint(b, uint64(a.RxQueue), 10)
	b = appendProcess(b, &a.Process)
	b = appendFirstSeen(b, a.FirstSeen)
	return append(b, '}')
}

func appendEndpoint(b []byte, p *SCTPEndpoint) []byte {
	b = append(b, `{"local_port":`...)
	b = strconv.AppendUint(b, uint64(p.LocalPort), 10)
	b = append(b, `,"local_addresses":`...)
	b = appendAddrs(b, p.LocalAddresses)
	b = appendInode(b, p.Inode, p.Netns)
	b = appendProcess(b, &p.Process)
	b = appendFirstSeen(b, p.FirstSeen)
	return append(b, '}')
}

func appendInterface(b []byte, i *Interface) []byte {
	b = append(b, '{')
	if i.Netns != 0 {
		b = append(b, `"netns":`...)
		b = strconv.AppendUint(b, i.Netns, 10)
		b = append(b, ',')
	}
	b = append(b, `"name":`...)
	b = appendString(b, i.Name)
	b = append(b, `,"index":`...)
	b = strconv.AppendUint(b, uint64(i.Index), 10)
	b = append(b, `,"up":`...)
	b = strconv.AppendBool(b, i.Up)
	b = appendOptString(b, `,"mac":`, i.MAC)
	b = append(b, `,"addresses":`...)
	if i.Addresses == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for j, p := range i.Addresses {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = p.AppendTo(b)
			b = append(b, '"')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

func appendFlow(b []byte, f *Flow) []byte {
	b = append(b, `{"flow_id":`...)
	b = jsonw.AppendUUID(b, f.FlowID)
	b = append(b, `,"protocol":`...)
	b = appendString(b, f.Protocol)
	b = append(b, `,"direction":`...)
	b = appendString(b, f.Direction)
	b = append(b, `,"src_address":`...)
	b = appendAddr(b, f.SrcAddress)
	b = append(b, `,"src_port":`...)
	b = strconv.AppendUint(b, uint64(f.SrcPort), 10)
	b = append(b, `,"dst_address":`...)
	b = appendAddr(b, f.DstAddress)
	b = append(b, `,"dst_port":`...)
	b = strconv.AppendUint(b, uint64(f.DstPort), 10)
	b = appendNetns(b, f.Netns)
	b = appendProcess(b, &f.Process)
	b = append(b, `,"started_at":`...)
	b = appendTime(b, f.StartedAt)
	if !f.EndedAt.IsZero() {
		b = append(b, `,"ended_at":`...)
		b = appendTime(b, f.EndedAt)
	}
	b = append(b, `,"bytes_sent":`...)
	b = strconv.AppendUint(b, f.BytesSent, 10)
	b = append(b, `,"bytes_received":`...)
	b = strconv.AppendUint(b, f.BytesReceived, 10)
	b = append(b, `,"state":`...)
	b = appendString(b, f.State)
	b = append(b, `,"source":`...)
	b = appendString(b, f.Source)
	return append(b, '}')
}

func appendEvent(b []byte, e *Event) []byte {
	b = append(b, `{"event_id":`...)
	b = jsonw.AppendUUID(b, e.EventID)
	b = append(b, `,"kind":`...)
	b = appendString(b, e.Kind)
	b = append(b, `,"time":`...)
	b = appendTime(b, e.Time)
	b = appendOptString(b, `,"protocol":`, e.Protocol)
	b = appendOptAddr(b, `,"src_address":`, e.SrcAddress)
	b = appendPort(b, `,"src_port":`, e.SrcPort)
	b = appendOptAddr(b, `,"dst_address":`, e.DstAddress)
	b = appendPort(b, `,"dst_port":`, e.DstPort)
	b = appendNetns(b, e.Netns)
	b = appendProcess(b, &e.Process)
	b = appendOptString(b, `,"query_name":`, e.QueryName)
	b = appendOptString(b, `,"query_type":`, e.QueryType)
	if len(e.Answers) > 0 {
		b = append(b, `,"answers":`...)
		b = appendAddrs(b, e.Answers)
	}
	b = appendOptString(b, `,"state":`, e.State)
	b = appendOptString(b, `,"source":`, e.Source)
	return append(b, '}')
}

// appendProcess writes the embedded Process's members, each after a comma.
func appendProcess(b []byte, p *Process) []byte {
	if p.PID != 0 {
		b = append(b, `,"pid":`...)
		b = strconv.AppendUint(b, uint64(p.PID), 10)
	}
	b = append(b, `,"uid":`...)
	b = strconv.AppendUint(b, uint64(p.UID), 10)
	for i := range processStrings {
		m := &processStrings[i]
		b = appendOptString(b, m.prefix, *m.at(p))
	}
	return b
}

func appendAddr(b []byte, a netip.Addr) []byte {
	b = append(b, '"')
	b = a.AppendTo(b) // nothing for the zero Addr, as MarshalText
	return append(b, '"')
}

// appendAddrs writes a list of addresses; nil is null, as encoding/json.
func appendAddrs(b []byte, as []netip.Addr) []byte {
	if as == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, a := range as {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendAddr(b, a)
	}
	return append(b, ']')
}

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendString writes s as encoding/json does. Names and paths are plain
// ASCII almost always; anything else (escapes, HTML characters, other
// UTF-8) goes through encoding/json itself. One table lookup a byte, not
// seven comparisons: fleetsim's BenchmarkHeartbeat (make-only) went from
// 66 to 62 µs a heartbeat with it.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !plain[s[i]] {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// plain marks the bytes encoding/json writes as they are.
var plain = func() (t [256]bool) {
	for c := 0x20; c <= 0x7e; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// Compress zstd-compresses a document.
func Compress(doc []byte) []byte {
	e := encoders.Get().(*zstd.Encoder)
	defer encoders.Put(e)
	return e.EncodeAll(doc, nil)
}
