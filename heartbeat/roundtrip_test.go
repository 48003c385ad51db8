package heartbeat_test

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/klauspost/compress/zstd"

	"github.com/netview/netview/heartbeat"
)

// full is a heartbeat with every field of every type set, so that a field
// the Encoder or the Decoder does not know comes back different.
func full() *heartbeat.Heartbeat {
	t0 := time.Date(2026, 12, 7, 1, 2, 3, 456789000, time.UTC)
	a4, a6 := netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("2001:db8::7")
	proc := heartbeat.Process{PID: 4242, Binary: "envoy", BinaryPath: "/usr/local/bin/envoy", UID: 1000, Unit: "envoy.service",
		ContainerID: "4f1c2a9b8e7d6c5b4a3928170615f4e3d2c1b0a99887766554433221100ffeed", ContainerRuntime: "containerd", PodUID: "7d2c1e0a-3b4f-4c5d-8e9f-0a1b2c3d4e5f",
		ContainerName: "envoy", ContainerImage: "registry.example/envoy:1.31", Pod: "gateway-5d8f", PodNamespace: "edge"}
	dur := uint32(77)
	return &heartbeat.Heartbeat{
		Format: heartbeat.Format, HeartbeatID: uuid.MustParse("7c1f0e5a-8b2d-4c3e-9f10-111213141516"), Seq: 99, SentAt: t0,
		Sensor: heartbeat.Sensor{
			SensorID: uuid.MustParse("0a0b0c0d-0e0f-4011-8213-141516171819"), Hostname: "core-a", Flavor: "telecom", Version: "1.2.3",
			BootID: uuid.MustParse("1a1b1c1d-1e1f-4021-8223-242526272829"), StartedAt: t0.Add(-time.Hour), IntervalSecs: 15,
			Kernel: "6.1.0-13-amd64", Netns: 4026531840, Site: "eu-west.dc2", Capabilities: map[string]string{"flow_source": "ebpf+inet_diag", "sctp": "available"},
		},
		TCPConnections: []heartbeat.Conn{{Family: "inet6", LocalAddress: a6, LocalPort: 443, RemoteAddress: a4, RemotePort: 51000,
			State: "ESTABLISHED", Inode: 1001, Netns: 4026532000, Process: proc, FirstSeen: t0.Add(-time.Minute), DurationSecs: &dur}},
		TCPListeners: []heartbeat.Listener{{Family: "inet", LocalAddress: a4, LocalPort: 8805, Inode: 1002, Netns: 4026532000,
			Process: proc, FirstSeen: t0.Add(-2 * time.Minute)}},
		UDPListeners: []heartbeat.UDPSocket{{Family: "inet", LocalAddress: a4, LocalPort: 2152, RemoteAddress: a4, RemotePort: 2153,
			Inode: 1003, Netns: 4026532000, Service: "gtp-u", Process: proc, FirstSeen: t0.Add(-3 * time.Minute)}},
		ActiveFlows: []heartbeat.Flow{{FlowID: uuid.MustParse("2a2b2c2d-2e2f-4031-8233-343536373839"), Protocol: "tcp", Direction: "inbound",
			SrcAddress: a4, SrcPort: 51000, DstAddress: a6, DstPort: 443, Netns: 4026532001, Process: proc, StartedAt: t0.Add(-time.Minute),
			EndedAt: t0.Add(-time.Second), BytesSent: 1 << 33, BytesReceived: 12345, State: "ESTABLISHED", Source: "ebpf"}},
		CompletedFlows: []heartbeat.Flow{{FlowID: uuid.MustParse("3a3b3c3d-3e3f-4041-8243-444546474849"), Protocol: "tcp", Direction: "outbound",
			SrcAddress: a6, SrcPort: 40000, DstAddress: a6, DstPort: 5432, Netns: 4026532002, Process: proc, StartedAt: t0.Add(-time.Minute),
			EndedAt: t0.Add(-time.Second), BytesSent: 99, BytesReceived: 100, State: "half-closed", Source: "ebpf+inet_diag"}},
		Events: []heartbeat.Event{{EventID: uuid.MustParse("4a4b4c4d-4e4f-4051-8253-545556575859"), Kind: "dns_lookup", Time: t0.Add(-time.Second),
			Protocol: "udp", SrcAddress: a4, SrcPort: 53000, DstAddress: a4, DstPort: 53, Netns: 4026532003, Process: proc, QueryName: "db.example",
			QueryType: "AAAA", Answers: []netip.Addr{a6, a4}, State: "refused", Source: "ebpf"}},
		SCTPAssociations: []heartbeat.SCTPAssoc{{AssocID: 7, State: "ESTABLISHED", LocalPort: 38412, RemotePort: 36412,
			LocalAddresses: []netip.Addr{a4, a6}, RemoteAddresses: []netip.Addr{a6}, PrimaryAddress: a6, Inode: 1004, Netns: 4026532000,
			TxQueue: 3, RxQueue: 4, Process: proc, FirstSeen: t0.Add(-4 * time.Minute)}},
		SCTPEndpoints: []heartbeat.SCTPEndpoint{{LocalPort: 38412, LocalAddresses: []netip.Addr{a4}, Inode: 1005, Netns: 4026532000,
			Process: proc, FirstSeen: t0.Add(-5 * time.Minute)}},
		Interfaces: []heartbeat.Interface{{Netns: 4026531840, Name: "eth0", Index: 2, Up: true, MAC: "02:42:ac:11:00:02",
			Addresses: []netip.Prefix{netip.MustParsePrefix("10.1.2.3/24"), netip.MustParsePrefix("2001:db8::7/64")}}},
		SnapshotsDropped: true,
	}
}

// zeroFields lists the fields of v that hold their zero value, looking
// into structs, pointers and the first element of slices.
func zeroFields(v reflect.Value, path string) []string {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return []string{path}
		}
		return zeroFields(v.Elem(), path)
	case reflect.Slice, reflect.Map:
		if v.Len() == 0 {
			return []string{path}
		}
		if v.Kind() == reflect.Slice {
			return zeroFields(v.Index(0), path+"[0]")
		}
		return nil
	case reflect.Struct:
		if v.Type().PkgPath() != reflect.TypeFor[heartbeat.Heartbeat]().PkgPath() {
			if v.IsZero() { // time.Time, netip.Addr, uuid.UUID
				return []string{path}
			}
			return nil
		}
		var out []string
		for i := range v.NumField() {
			out = append(out, zeroFields(v.Field(i), path+"."+v.Type().Field(i).Name)...)
		}
		return out
	default:
		if v.IsZero() {
			return []string{path}
		}
		return nil
	}
}

func TestFullSetsEveryField(t *testing.T) {
	if z := zeroFields(reflect.ValueOf(full()), "Heartbeat"); len(z) > 0 {
		t.Fatalf("full() leaves %v zero: set them, so the round trip covers every field", z)
	}
}

func unzstd(t *testing.T, z []byte) []byte {
	t.Helper()
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	doc, err := dec.DecodeAll(z, nil)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// Every field survives the Encoder and the Decoder, and the Encoder writes
// what encoding/json writes of the types: one set of names and tags.
func TestRoundTripEveryField(t *testing.T) {
	h := full()
	z, err := heartbeat.Encode(h)
	if err != nil {
		t.Fatal(err)
	}
	doc := unzstd(t, z)
	if want, _ := json.Marshal(h); !bytes.Equal(doc, want) {
		t.Errorf("Encode differs from json.Marshal:\n got %s\nwant %s", doc, want)
	}
	got, err := heartbeat.Decode(doc)
	if err != nil {
		t.Fatalf("Decode refuses what Encode wrote: %v\n%s", err, doc)
	}
	if !reflect.DeepEqual(got, h) {
		t.Errorf("round trip differs:\n got %+v\nwant %+v", got, h)
	}
	var viaJSON heartbeat.Heartbeat
	if err := json.Unmarshal(doc, &viaJSON); err != nil || !reflect.DeepEqual(&viaJSON, h) {
		t.Errorf("encoding/json reads the document otherwise (%v)", err)
	}
}

// copySink keeps deep copies of the rows a reusing Decoder hands over.
type copySink struct{ h heartbeat.Heartbeat }

func addrs(a []netip.Addr) []netip.Addr { return slices.Clone(a) }

func (c *copySink) Conn(r *heartbeat.Conn) {
	v := *r
	v.Binary, v.BinaryPath = strings.Clone(v.Binary), strings.Clone(v.BinaryPath)
	if v.DurationSecs != nil {
		d := *v.DurationSecs
		v.DurationSecs = &d
	}
	c.h.TCPConnections = append(c.h.TCPConnections, v)
}
func (c *copySink) Listener(r *heartbeat.Listener) {
	v := *r
	v.Binary, v.BinaryPath = strings.Clone(v.Binary), strings.Clone(v.BinaryPath)
	c.h.TCPListeners = append(c.h.TCPListeners, v)
}
func (c *copySink) UDP(r *heartbeat.UDPSocket) {
	v := *r
	v.Binary, v.BinaryPath, v.Service = strings.Clone(v.Binary), strings.Clone(v.BinaryPath), strings.Clone(v.Service)
	c.h.UDPListeners = append(c.h.UDPListeners, v)
}
func (c *copySink) flow(r *heartbeat.Flow) heartbeat.Flow {
	v := *r
	v.Binary, v.BinaryPath = strings.Clone(v.Binary), strings.Clone(v.BinaryPath)
	return v
}
func (c *copySink) ActiveFlow(r *heartbeat.Flow) {
	c.h.ActiveFlows = append(c.h.ActiveFlows, c.flow(r))
}
func (c *copySink) CompletedFlow(r *heartbeat.Flow) {
	c.h.CompletedFlows = append(c.h.CompletedFlows, c.flow(r))
}
func (c *copySink) Event(r *heartbeat.Event) {
	v := *r
	v.Binary, v.BinaryPath = strings.Clone(v.Binary), strings.Clone(v.BinaryPath)
	v.QueryName, v.QueryType, v.Answers = strings.Clone(v.QueryName), strings.Clone(v.QueryType), addrs(v.Answers)
	c.h.Events = append(c.h.Events, v)
}
func (c *copySink) SCTPAssociation(r *heartbeat.SCTPAssoc) {
	v := *r
	v.Binary, v.BinaryPath = strings.Clone(v.Binary), strings.Clone(v.BinaryPath)
	v.LocalAddresses, v.RemoteAddresses = addrs(v.LocalAddresses), addrs(v.RemoteAddresses)
	c.h.SCTPAssociations = append(c.h.SCTPAssociations, v)
}
func (c *copySink) SCTPEndpoint(r *heartbeat.SCTPEndpoint) {
	v := *r
	v.Binary, v.BinaryPath, v.LocalAddresses = strings.Clone(v.Binary), strings.Clone(v.BinaryPath), addrs(v.LocalAddresses)
	c.h.SCTPEndpoints = append(c.h.SCTPEndpoints, v)
}

func (c *copySink) Interface(r *heartbeat.Interface) {
	v := *r
	v.Name, v.MAC, v.Addresses = strings.Clone(v.Name), strings.Clone(v.MAC), slices.Clone(v.Addresses)
	c.h.Interfaces = append(c.h.Interfaces, v)
}

// A Decoder that reuses its buffers hands each row over whole, heartbeat
// after heartbeat: a Sink copying at the call sees what Decode sees.
func TestReusingDecoderRows(t *testing.T) {
	g := heartbeat.NewGenerator(9, heartbeat.Shape{Conns: 40, Listeners: 5, UDP: 3, ActiveFlows: 4, CompletedFlows: 30, Events: 60, Telecom: true})
	var d heartbeat.Decoder
	var e heartbeat.Encoder
	for i, h := range []*heartbeat.Heartbeat{full(), g.Next(time.Now()), full(), g.Next(time.Now())} {
		doc := e.AppendJSON(nil, h)
		var c copySink
		hdr, err := d.Decode(doc, &c)
		if err != nil {
			t.Fatalf("heartbeat %d: %v", i, err)
		}
		want, err := heartbeat.Decode(doc)
		if err != nil {
			t.Fatal(err)
		}
		c.h.Format, c.h.HeartbeatID, c.h.Seq, c.h.SentAt, c.h.Sensor, c.h.SnapshotsDropped =
			hdr.Format, hdr.HeartbeatID, hdr.Seq, hdr.SentAt, hdr.Sensor, hdr.SnapshotsDropped
		if !reflect.DeepEqual(&c.h, want) {
			t.Errorf("heartbeat %d: the reusing Decoder's rows differ from Decode's", i)
		}
	}
}

// Fit empties the members over their limit, keeps the others, and leaves a
// heartbeat the Decoder takes.
func TestProcessFit(t *testing.T) {
	h := full()
	p := &h.TCPConnections[0].Process
	long := strings.Repeat("x", 5000) // over every member's limit
	p.ContainerImage, p.Pod = long, long
	keep := *p
	keep.ContainerImage, keep.Pod = "", ""
	if _, err := heartbeat.Decode(wireMarshal(t, h)); err == nil {
		t.Fatal("the decoder took members over their limits")
	}
	p.Fit()
	if *p != keep {
		t.Errorf("after Fit: %+v\nwant %+v", *p, keep)
	}
	if _, err := heartbeat.Decode(wireMarshal(t, h)); err != nil {
		t.Errorf("after Fit: %v", err)
	}
}
