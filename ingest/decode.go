package ingest

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/google/uuid"

	"github.com/netview/netview/heartbeat"
)

// Decoder turns heartbeat JSON into rows of a Batch: heartbeat.Decoder
// reads and checks the document, and its Sink here lays the rows out in
// the batch's columns. It keeps its buffers between heartbeats; one Decoder
// serves one goroutine at a time. SensorID, MaxRows and Window are
// heartbeat.Decoder's.
type Decoder struct {
	heartbeat.Decoder
	// Now stamps received_at; tests may replace it.
	Now  func() time.Time
	sink sink
}

// Summary describes one decoded heartbeat.
type Summary struct {
	HeartbeatID uuid.UUID
	SensorID    uuid.UUID
	Seq         uint64
	Rows        int // on a decoding error, the rows read before it
}

// Decode appends one heartbeat's rows to b. On error b is left as it was.
// doc is not kept.
func (d *Decoder) Decode(doc []byte, b *Batch) (Summary, error) {
	m := b.mark()
	d.sink.b = b
	h, err := d.Decoder.Decode(doc, &d.sink)
	if err != nil {
		b.rollback(m)
		// The rows read before the fault are what decoding it cost:
		// the sender's row budget is charged for them.
		return Summary{Rows: d.Rows()}, err
	}
	d.finish(b, h, m)
	if err := b.check(); err != nil { // a bug, never the sender's fault
		b.rollback(m)
		b.Heartbeats--
		return Summary{}, fmt.Errorf("ingest: %w", err)
	}
	b.starts = append(b.starts, m)
	return Summary{HeartbeatID: h.HeartbeatID, SensorID: h.Sensor.SensorID, Seq: h.Seq, Rows: b.Rows() - sum(m)}, nil
}

func sum(m mark) (n int) {
	for _, v := range m {
		n += v
	}
	return n
}

// ms is t as the tables store it; the zero time is 0.
func ms(t time.Time) proto.DateTime64 { return proto.ToDateTime64(t, proto.PrecisionMilli) }

func ip(a netip.Addr) proto.IPv6 { return a.As16() } // the zero Addr is ::

// finish fills the columns that repeat the heartbeat's header in every row
// (JSON members come in any order, so the header is known only now), and
// writes its heartbeats and sensors rows.
func (d *Decoder) finish(b *Batch, h *heartbeat.Heartbeat, m mark) {
	now := time.Now()
	if d.Now != nil {
		now = d.Now()
	}
	recv := ms(now)
	sent := ms(h.SentAt)
	for _, s := range []struct {
		c *snapCols
		t *table
	}{{&b.conns.snapCols, &b.conns.table}, {&b.listeners.snapCols, &b.listeners.table}, {&b.udp.snapCols, &b.udp.table}, {&b.active.snapCols, &b.active.table},
		{&b.sctpAssocs.snapCols, &b.sctpAssocs.table}, {&b.sctpEps.snapCols, &b.sctpEps.table}} {
		s.c.fill(h.Sensor.SensorID, h.Seq, sent, s.t.rows())
	}
	// A socket without first_seen was first seen now.
	for _, fs := range []*proto.ColDateTime64{b.conns.firstSeen, b.listeners.firstSeen, b.udp.firstSeen, b.sctpAssocs.firstSeen, b.sctpEps.firstSeen} {
		for i := range fs.Data {
			if fs.Data[i] == 0 {
				fs.Data[i] = sent
			}
		}
	}
	b.addrs.fill(h.Sensor.SensorID, h.Sensor.Site, sent)
	for range b.flows.flowID.Rows() - b.flows.sensorID.Rows() {
		b.flows.sensorID.Append(h.Sensor.SensorID)
		b.flows.receivedAt.AppendRaw(recv)
	}
	for range b.events.eventID.Rows() - b.events.sensorID.Rows() {
		b.events.sensorID.Append(h.Sensor.SensorID)
		b.events.receivedAt.AppendRaw(recv)
	}
	hb := &b.heartbeats
	hb.sensorID.Append(h.Sensor.SensorID)
	hb.seq.Append(h.Seq)
	hb.heartbeatID.Append(h.HeartbeatID)
	hb.bootID.Append(h.Sensor.BootID)
	hb.sentAt.AppendRaw(sent)
	hb.receivedAt.AppendRaw(recv)
	for _, c := range []struct {
		count *proto.ColUInt32
		of    *table
	}{{&hb.conns, &b.conns.table}, {&hb.listeners, &b.listeners.table}, {&hb.udp, &b.udp.table},
		{&hb.active, &b.active.table}, {&hb.completed, &b.flows.table}, {&hb.eventsCount, &b.events.table}} {
		c.count.Append(uint32(c.of.rows() - m.of(c.of)))
	}
	b.Heartbeats++
	if h.SnapshotsDropped {
		// Its snapshot sections were dropped by the sensor's spool: the
		// heartbeat counts, but it must not become the sensor's latest state.
		return
	}
	s := &b.sensors
	s.sensorID.Append(h.Sensor.SensorID)
	s.hostname.Append(h.Sensor.Hostname)
	s.flavor.Append(h.Sensor.Flavor)
	s.version.Append(h.Sensor.Version)
	s.bootID.Append(h.Sensor.BootID)
	s.seq.Append(h.Seq)
	s.heartbeatID.Append(h.HeartbeatID)
	s.sentAt.AppendRaw(sent)
	s.receivedAt.AppendRaw(recv)
	started := ms(h.Sensor.StartedAt)
	if started == 0 {
		started = sent
	}
	s.startedAt.AppendRaw(started)
	s.interval.Append(h.Sensor.IntervalSecs)
	s.kernel.Append(h.Sensor.Kernel)
	s.netns.Append(h.Sensor.Netns)
	s.site.Append(h.Sensor.Site)
	// Sorted, as the sensor wrote them: rows of one sensor compare alike.
	d.sink.keys = d.sink.keys[:0]
	for k := range h.Sensor.Capabilities {
		d.sink.keys = append(d.sink.keys, k)
	}
	slices.Sort(d.sink.keys)
	for _, k := range d.sink.keys {
		s.capKeys.Append(k)
		s.capValues.Append(h.Sensor.Capabilities[k])
	}
	s.capabilities.Offsets.Append(uint64(s.capKeys.Rows()))
}

// sink is heartbeat.Sink into a Batch's columns.
type sink struct {
	b    *Batch
	keys []string // capability keys, sorted
}

func (s *sink) Conn(r *heartbeat.Conn) {
	c := &s.b.conns
	c.sockCols.append(r.Family, r.LocalAddress, r.LocalPort, r.Inode, r.Netns, &r.Process, r.FirstSeen)
	c.remoteCols.append(r.RemoteAddress, r.RemotePort)
	c.state.Append(r.State)
	if r.DurationSecs != nil {
		c.duration.Append(proto.NewNullable(*r.DurationSecs))
	} else {
		c.duration.Append(proto.Null[uint32]())
	}
}

func (s *sink) Listener(r *heartbeat.Listener) {
	s.b.listeners.sockCols.append(r.Family, r.LocalAddress, r.LocalPort, r.Inode, r.Netns, &r.Process, r.FirstSeen)
}

func (s *sink) UDP(r *heartbeat.UDPSocket) {
	c := &s.b.udp
	c.sockCols.append(r.Family, r.LocalAddress, r.LocalPort, r.Inode, r.Netns, &r.Process, r.FirstSeen)
	c.remoteCols.append(r.RemoteAddress, r.RemotePort)
	c.service.Append(r.Service)
}

func (s *sink) ActiveFlow(r *heartbeat.Flow) { s.b.active.flowBody.append(r) }

// CompletedFlow writes the flow and its network_flow event (event_id =
// flow_id): every completed flow is also an event.
func (s *sink) CompletedFlow(r *heartbeat.Flow) {
	end := ms(r.EndedAt)
	dur := uint64(end - ms(r.StartedAt)) // the decoder checked end >= start
	f := &s.b.flows
	f.flowBody.append(r)
	f.endedAt.AppendRaw(end)
	f.durationMs.Append(dur)
	s.event(&heartbeat.Event{EventID: r.FlowID, Kind: "network_flow", Time: r.EndedAt, Protocol: r.Protocol,
		SrcAddress: r.SrcAddress, SrcPort: r.SrcPort, DstAddress: r.DstAddress, DstPort: r.DstPort, Netns: r.Netns, Process: r.Process,
		State: r.State, Source: r.Source}, dur, r.BytesSent, r.BytesReceived)
}

func (s *sink) Event(r *heartbeat.Event) { s.event(r, 0, 0, 0) }

// event writes an events row; only network_flow events have a duration
// and bytes.
func (s *sink) event(r *heartbeat.Event, durMs, sent, received uint64) {
	e := &s.b.events
	e.eventID.Append(r.EventID)
	e.kind.Append(r.Kind)
	e.time.AppendRaw(ms(r.Time))
	e.protocol.Append(r.Protocol)
	e.srcAddr.Append(ip(r.SrcAddress))
	e.srcPort.Append(r.SrcPort)
	e.dstAddr.Append(ip(r.DstAddress))
	e.dstPort.Append(r.DstPort)
	e.netns.Append(r.Netns)
	e.procCols.append(&r.Process)
	e.queryName.Append(r.QueryName)
	e.queryType.Append(r.QueryType)
	appendAddrs(e.answers, r.Answers)
	e.durationMs.Append(durMs)
	e.bytesSent.Append(sent)
	e.bytesReceived.Append(received)
	e.state.Append(r.State)
	e.source.Append(r.Source)
}

func (s *sink) SCTPAssociation(r *heartbeat.SCTPAssoc) {
	c := &s.b.sctpAssocs
	c.netns.Append(r.Netns)
	c.assocID.Append(r.AssocID)
	c.state.Append(r.State)
	c.localPort.Append(r.LocalPort)
	c.remotePort.Append(r.RemotePort)
	appendAddrs(c.localAddrs, r.LocalAddresses)
	appendAddrs(c.remoteAddrs, r.RemoteAddresses)
	c.primaryAddr.Append(ip(r.PrimaryAddress))
	c.inode.Append(r.Inode)
	c.txQueue.Append(r.TxQueue)
	c.rxQueue.Append(r.RxQueue)
	c.procCols.append(&r.Process)
	c.firstSeen.AppendRaw(ms(r.FirstSeen))
}

func (s *sink) SCTPEndpoint(r *heartbeat.SCTPEndpoint) {
	c := &s.b.sctpEps
	c.netns.Append(r.Netns)
	c.localPort.Append(r.LocalPort)
	appendAddrs(c.localAddrs, r.LocalAddresses)
	c.inode.Append(r.Inode)
	c.procCols.append(&r.Process)
	c.firstSeen.AppendRaw(ms(r.FirstSeen))
}

// Interface writes a host_addresses row for each of the interface's
// addresses; one without addresses has nothing to resolve and writes none.
func (s *sink) Interface(r *heartbeat.Interface) {
	c := &s.b.addrs
	for _, p := range r.Addresses {
		c.address.Append(ip(p.Addr()))
		// The length is the written one: 24 for an IPv4 /24, though the
		// address is stored v4-mapped, as the sensor and ip(8) show it.
		c.prefixLen.Append(uint8(p.Bits()))
		c.netns.Append(r.Netns)
		c.iface.Append(r.Name)
		c.ifindex.Append(r.Index)
		c.mac.Append(r.MAC)
		c.up.Append(r.Up)
	}
}

// appendAddrs appends one row of an Array(IPv6) column.
func appendAddrs(c *proto.ColArr[proto.IPv6], as []netip.Addr) {
	data := c.Data.(*proto.ColIPv6)
	for _, a := range as {
		data.Append(ip(a))
	}
	c.Offsets.Append(uint64(data.Rows()))
}
