// Package heartbeat is the heartbeat wire format (version 1): the contract
// between sensors and ingest, and the one place it is defined. It holds the
// types with their vocabularies and limits, an Encoder that writes them and
// a Decoder that reads and checks them, handing rows to a Sink (ingest's
// fills its ch-go columns). A sensor of your own imports this package;
// docs/heartbeat.md describes the format for people and
// docs/heartbeat.schema.json for machines (a test holds both to this
// package).
//
// Adding a field: add it to its type here, with its limit; read it in the
// Decoder and write it in the Encoder (TestRoundTripEveryField fails until
// both do); store it in ingest's sink and a migration. A string member of
// Process is only its field here: the Encoder, the Decoder and ingest's
// columns walk ProcessStrings; it still needs a migration and its docs.
package heartbeat

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/google/uuid"

	"github.com/netview/netview/internal/tcpstate"
)

// Format is the wire format version this code speaks.
const Format = 1

// Heartbeat is one report of one sensor. Sensors send it as JSON with
// Content-Encoding: zstd to POST /v1/heartbeat.
type Heartbeat struct {
	Format         int         `json:"format"`
	HeartbeatID    uuid.UUID   `json:"heartbeat_id"`
	Seq            uint64      `json:"seq"`
	SentAt         time.Time   `json:"sent_at"`
	Sensor         Sensor      `json:"sensor"`
	TCPConnections []Conn      `json:"tcp_connections"`
	TCPListeners   []Listener  `json:"tcp_listeners"`
	UDPListeners   []UDPSocket `json:"udp_listeners"`
	ActiveFlows    []Flow      `json:"active_flows"`
	CompletedFlows []Flow      `json:"completed_flows"`
	Events         []Event     `json:"events"`
	// SCTP sections come from telecom sensors on kernels that expose
	// /proc/net/sctp; Sensor.Capabilities["sctp"] says when they cannot.
	SCTPAssociations []SCTPAssoc    `json:"sctp_associations,omitempty"`
	SCTPEndpoints    []SCTPEndpoint `json:"sctp_endpoints,omitempty"`
	// Interfaces are the network interfaces of every network namespace the
	// sensor reads, with their addresses: what lets ingest resolve another
	// sensor's remote address to this host. Sent whole in every heartbeat
	// (a snapshot section like the sockets), at most MaxInterfaces.
	Interfaces []Interface `json:"interfaces,omitempty"`
	// SnapshotsDropped marks a heartbeat whose snapshot sections were
	// removed (a full spool, a 413): its events and completed flows count,
	// but it is not the sensor's latest state.
	SnapshotsDropped bool `json:"snapshots_dropped,omitempty"`
}

// SnapshotRows counts the rows of the snapshot sections.
func (h *Heartbeat) SnapshotRows() int {
	return len(h.TCPConnections) + len(h.TCPListeners) + len(h.UDPListeners) + len(h.ActiveFlows) +
		len(h.SCTPAssociations) + len(h.SCTPEndpoints) + len(h.Interfaces)
}

// DropSnapshots removes the snapshot sections (superseded by any newer
// heartbeat) and marks the heartbeat so it does not pass for the latest
// state; events and completed flows stay.
func (h *Heartbeat) DropSnapshots() {
	h.TCPConnections, h.TCPListeners, h.UDPListeners, h.ActiveFlows = nil, nil, nil, nil
	h.SCTPAssociations, h.SCTPEndpoints, h.Interfaces = nil, nil, nil
	h.SnapshotsDropped = true
}

// Sensor is the sending sensor's identity.
type Sensor struct {
	SensorID     uuid.UUID `json:"sensor_id"`
	Hostname     string    `json:"hostname"`
	Flavor       string    `json:"flavor"` // standard | telecom
	Version      string    `json:"version"`
	BootID       uuid.UUID `json:"boot_id"`
	StartedAt    time.Time `json:"started_at,omitzero"`
	IntervalSecs uint32    `json:"interval_secs"`
	Kernel       string    `json:"kernel,omitempty"`
	Netns        uint64    `json:"netns,omitempty"`
	// Site names the network the sensor's host is in (a data centre, a
	// VPC, an office: --sensor.site), so that an address is resolved to a
	// host only among the sensors of the same site; private addresses
	// repeat across sites. Empty is the default site. See ValidSite.
	Site string `json:"site,omitempty"`
	// Capabilities say what the sensor can observe on this host, so an
	// empty list reads as "nothing happened" only when it is true. Keys:
	// flow_source (inet_diag, proc, ebpf+inet_diag, ...), sctp, lsm, ebpf,
	// ebpf_probes, ebpf_lost_events, attribution_failures, dns (see
	// docs/heartbeat.md).
	Capabilities map[string]string `json:"capabilities,omitempty"`
}

// Process attributes a socket to the process that holds it. PID 0 (or
// absent) means not attributed: the owner could not be found or exited
// before it was identified.
type Process struct {
	PID uint32 `json:"pid,omitempty"`
	UID uint32 `json:"uid"`
	// The string members are all optional, each bounded by its max tag (in
	// bytes). The Encoder, the Decoder and ingest's columns walk them
	// through ProcessStrings, so a new one is a field here, a column of
	// the same name in a migration, and its lines in the docs.
	Binary     string `json:"binary,omitempty" max:"255"`
	BinaryPath string `json:"binary_path,omitempty" max:"4096"`
	// Unit is the systemd unit the process runs in (nginx.service,
	// session-3.scope), from its cgroup; empty outside systemd's tree.
	// 255 is systemd's own limit on a unit name.
	Unit string `json:"unit,omitempty" max:"255"`
	// The container the process runs in, read from its cgroup path for
	// the common runtimes: its id, the runtime (docker, containerd,
	// cri-o, podman) and, under Kubernetes, its pod's UID. Empty for a
	// host process.
	ContainerID      string `json:"container_id,omitempty" max:"128"`
	ContainerRuntime string `json:"container_runtime,omitempty" max:"32"`
	PodUID           string `json:"pod_uid,omitempty" max:"64"`
	// The container's name and image and its pod's name and namespace,
	// from the runtime's state files where it keeps them. Kubernetes
	// bounds names at 253 and namespaces at 63.
	ContainerName  string `json:"container_name,omitempty" max:"255"`
	ContainerImage string `json:"container_image,omitempty" max:"1024"`
	Pod            string `json:"pod,omitempty" max:"253"`
	PodNamespace   string `json:"pod_namespace,omitempty" max:"63"`
}

// StringMember is one string member of Process.
type StringMember struct {
	Name   string // the JSON member, and the column of stored rows
	Max    int    // the longest value, in bytes
	prefix string // ,"name":
	off    uintptr
}

// Of returns the member's value in p.
func (m *StringMember) Of(p *Process) string { return *m.at(p) }

func (m *StringMember) at(p *Process) *string {
	return (*string)(unsafe.Add(unsafe.Pointer(p), m.off))
}

// ProcessStrings returns Process's string members in their order. The
// slice is shared: do not change it.
func ProcessStrings() []StringMember { return processStrings }

// Fit clears every string member of p longer than the format allows, so
// that one odd name a sensor read (a runtime's state file, a long image
// reference) costs that name, not the whole heartbeat the Decoder would
// refuse. A cut name would be a wrong one; empty is unknown.
func (p *Process) Fit() {
	for i := range processStrings {
		if m := &processStrings[i]; len(*m.at(p)) > m.Max {
			*m.at(p) = ""
		}
	}
}

// processStrings is read from Process's tags once, so that no second list
// of its members has to be kept in step with the type.
var processStrings = func() []StringMember {
	var ms []StringMember
	t := reflect.TypeFor[Process]()
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Type.Kind() != reflect.String {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		max, err := strconv.Atoi(f.Tag.Get("max"))
		if name == "" || err != nil || max <= 0 {
			panic("heartbeat: Process." + f.Name + " needs a json name and a max tag")
		}
		ms = append(ms, StringMember{Name: name, Max: max, prefix: `,"` + name + `":`, off: f.Offset})
	}
	return ms
}()

// Conn is one TCP socket in any state but LISTEN.
type Conn struct {
	Family        string     `json:"family"` // inet | inet6
	LocalAddress  netip.Addr `json:"local_address"`
	LocalPort     uint16     `json:"local_port"`
	RemoteAddress netip.Addr `json:"remote_address"`
	RemotePort    uint16     `json:"remote_port"`
	State         string     `json:"state"` // ESTABLISHED, SYN_SENT, ... (see States)
	Inode         uint64     `json:"inode"`
	Netns         uint64     `json:"netns,omitempty"`
	Process
	// FirstSeen is when the sensor first saw the socket.
	FirstSeen time.Time `json:"first_seen,omitzero"`
	// DurationSecs is the connection's age; nil when it predates the sensor.
	DurationSecs *uint32 `json:"duration_secs"`
}

// Listener is one TCP socket in LISTEN state.
type Listener struct {
	Family       string     `json:"family"`
	LocalAddress netip.Addr `json:"local_address"`
	LocalPort    uint16     `json:"local_port"`
	Inode        uint64     `json:"inode"`
	Netns        uint64     `json:"netns,omitempty"`
	Process
	FirstSeen time.Time `json:"first_seen,omitzero"`
}

// UDPSocket is one UDP socket; Service names telecom and well-known ports.
type UDPSocket struct {
	Family        string     `json:"family"`
	LocalAddress  netip.Addr `json:"local_address"`
	LocalPort     uint16     `json:"local_port"`
	RemoteAddress netip.Addr `json:"remote_address,omitzero"`
	RemotePort    uint16     `json:"remote_port,omitempty"`
	Inode         uint64     `json:"inode"`
	Netns         uint64     `json:"netns,omitempty"`
	Service       string     `json:"service,omitempty"`
	Process
	FirstSeen time.Time `json:"first_seen,omitzero"`
}

// Flow is a TCP connection followed from connect or accept. In
// active_flows State is the TCP state now; in completed_flows it is the
// final state (FinalStates) and EndedAt is set.
type Flow struct {
	FlowID     uuid.UUID  `json:"flow_id"`
	Protocol   string     `json:"protocol"`  // tcp
	Direction  string     `json:"direction"` // outbound | inbound
	SrcAddress netip.Addr `json:"src_address"`
	SrcPort    uint16     `json:"src_port"`
	DstAddress netip.Addr `json:"dst_address"`
	DstPort    uint16     `json:"dst_port"`
	// Netns is the inode of the flow's network namespace (0: unknown, as
	// from a sensor before it was sent): the same 5-tuple can be two
	// flows in two containers.
	Netns uint64 `json:"netns,omitempty"`
	Process
	StartedAt     time.Time `json:"started_at"`
	EndedAt       time.Time `json:"ended_at,omitzero"`
	BytesSent     uint64    `json:"bytes_sent"`
	BytesReceived uint64    `json:"bytes_received"`
	State         string    `json:"state"`
	// Source says how the flow was observed: proc, inet_diag, ebpf, or
	// ebpf+inet_diag when both the probes and the netlink poller saw it.
	Source string `json:"source"`
}

// Event is one network event. network_flow events are not sent here: ingest
// derives them from completed_flows.
type Event struct {
	EventID    uuid.UUID  `json:"event_id"`
	Kind       string     `json:"kind"`
	Time       time.Time  `json:"time"`
	Protocol   string     `json:"protocol,omitempty"`
	SrcAddress netip.Addr `json:"src_address,omitzero"`
	SrcPort    uint16     `json:"src_port,omitempty"`
	DstAddress netip.Addr `json:"dst_address,omitzero"`
	DstPort    uint16     `json:"dst_port,omitempty"`
	// Netns is the inode of the network namespace the event happened in;
	// 0 when unknown.
	Netns uint64 `json:"netns,omitempty"`
	Process
	QueryName string       `json:"query_name,omitempty"`
	QueryType string       `json:"query_type,omitempty"`
	Answers   []netip.Addr `json:"answers,omitempty"`
	State     string       `json:"state,omitempty"`
	Source    string       `json:"source,omitempty"`
}

// SCTPAssoc is one SCTP association (/proc/net/sctp/assocs). Addresses keep
// the kernel's order; PrimaryAddress is the remote path it marks primary.
type SCTPAssoc struct {
	AssocID         uint32       `json:"assoc_id"`
	State           string       `json:"state"` // see SCTPStates
	LocalPort       uint16       `json:"local_port"`
	RemotePort      uint16       `json:"remote_port"`
	LocalAddresses  []netip.Addr `json:"local_addresses"`
	RemoteAddresses []netip.Addr `json:"remote_addresses"`
	PrimaryAddress  netip.Addr   `json:"primary_address,omitzero"`
	Inode           uint64       `json:"inode"`
	Netns           uint64       `json:"netns,omitempty"`
	TxQueue         uint32       `json:"tx_queue"`
	RxQueue         uint32       `json:"rx_queue"`
	Process
	FirstSeen time.Time `json:"first_seen,omitzero"`
}

// SCTPEndpoint is one bound SCTP socket (/proc/net/sctp/eps).
type SCTPEndpoint struct {
	LocalPort      uint16       `json:"local_port"`
	LocalAddresses []netip.Addr `json:"local_addresses"`
	Inode          uint64       `json:"inode"`
	Netns          uint64       `json:"netns,omitempty"`
	Process
	FirstSeen time.Time `json:"first_seen,omitzero"`
}

// Interface is one network interface of one network namespace: its name
// and index there, whether it is up (IFF_UP), its link-layer address and
// the addresses it holds, each with its prefix length (10.0.0.5/24: the
// host's address, not the network's).
type Interface struct {
	// Netns is the inode of the interface's network namespace, as on the
	// socket rows; 0 when unknown.
	Netns uint64 `json:"netns,omitempty"`
	Name  string `json:"name"`
	Index uint32 `json:"index"`
	Up    bool   `json:"up"`
	// MAC is lower-case hex bytes separated by colons (aa:bb:cc:00:11:22;
	// up to 32 bytes, as InfiniBand's 20); absent for interfaces without
	// one (tunnels, wireguard).
	MAC       string         `json:"mac,omitempty"`
	Addresses []netip.Prefix `json:"addresses"`
}

// Limits the Decoder enforces, in bytes for strings.
const (
	MaxHostname     = 255
	MaxVersion      = 64
	MaxKernel       = 255
	MaxService      = 32
	MaxQueryName    = 255
	MaxQueryType    = 16
	MaxIntervalSecs = 86400
	MaxPID          = 1 << 22 // the kernel's PID_MAX_LIMIT
	// MaxAddrs bounds every list of addresses in a row.
	MaxAddrs = 64
	// MaxInterfaces bounds the interfaces of one heartbeat, every
	// namespace together: a Kubernetes node of 250 pods has about 750 (a
	// veth per pod on the host, lo and eth0 in each pod).
	MaxInterfaces = 4096
	// MaxIfaceAddrs bounds one interface's addresses: kube-proxy's IPVS
	// mode puts every service address on its kube-ipvs0.
	MaxIfaceAddrs = 1024
	// MaxIfName is the kernel's IFNAMSIZ less its NUL; MaxMAC the longest
	// link-layer address written out (32 bytes, MAX_ADDR_LEN).
	MaxIfName = 15
	MaxMAC    = 32*3 - 1
	// MaxSite bounds sensor.site, a label like a DNS one.
	MaxSite = 63
	// Limits of sensor.capabilities: entries, key and value lengths; keys
	// are of a-z, 0-9 and _.
	MaxCapabilities = 32
	MaxCapKey       = 64
	MaxCapValue     = 256
	// Every time lies within these years.
	MinYear, MaxYear = 2000, 2200
)

// Vocabularies the decoder enforces.
var (
	Flavors  = []string{"standard", "telecom"}
	Families = []string{"inet", "inet6"}
	// States are the kernel's, but LISTEN: listeners have a section.
	States      = slices.DeleteFunc(tcpstate.Names(), func(n string) bool { return n == "LISTEN" })
	FinalStates = []string{"established", "refused", "half-closed", "stale"}
	Directions  = []string{"outbound", "inbound"}
	Protocols   = []string{"tcp", "udp"}
	// Sources: "ebpf+inet_diag" is a flow both the kernel's probes and the
	// netlink poller saw.
	Sources    = []string{"proc", "inet_diag", "ebpf", "ebpf+inet_diag"}
	SCTPStates = []string{"CLOSED", "COOKIE_WAIT", "COOKIE_ECHOED", "ESTABLISHED", "SHUTDOWN_PENDING", "SHUTDOWN_SENT", "SHUTDOWN_RECEIVED", "SHUTDOWN_ACK_SENT"}
	// EventKinds are the kinds a sensor may send; network_flow comes from
	// completed_flows.
	EventKinds = []string{"network_connect", "network_accept", "network_listen", "dns_query", "dns_lookup", "dns_resolution", "lsm_net_connect"}
	// AllEventKinds are every kind stored in the events table.
	AllEventKinds = []string{"network_connect", "network_accept", "network_listen", "network_flow", "dns_query", "dns_lookup", "dns_resolution", "lsm_net_connect"}
	// BaselineEventKinds are the findings the query service's baseline job
	// (query/baseline) writes into the events table: never sent by a
	// sensor, nor derived by ingest, so they are not in AllEventKinds.
	BaselineEventKinds = []string{"baseline_new_listener", "baseline_new_destination", "baseline_new_domain", "baseline_new_peer", "baseline_connection_count"}
)

// ValidSite reports why s cannot be a site label, nil when it can: 1 to
// MaxSite bytes of a-z, 0-9, '.', '_' and '-', starting with a letter or a
// digit. The sensor checks its flag with it and the Decoder every
// heartbeat, so a label is written one way everywhere (no case folding
// needed to compare two sites).
func ValidSite(s string) error {
	if len(s) == 0 || len(s) > MaxSite {
		return fmt.Errorf("%q: want 1 to %d bytes", s, MaxSite)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || i > 0 && (c == '.' || c == '_' || c == '-') {
			continue
		}
		return fmt.Errorf("%q: want a-z, 0-9, '.', '_' and '-', starting with a letter or a digit", s)
	}
	return nil
}

// ValidMAC reports whether s is a link-layer address as the format writes
// it: 1 to 32 lower-case hex bytes separated by colons.
func ValidMAC(s string) bool {
	if len(s) < 2 || len(s) > MaxMAC || len(s)%3 != 2 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i%3 == 2 {
			if c != ':' {
				return false
			}
		} else if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
