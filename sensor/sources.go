package sensor

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/sensor/diag"
	"github.com/netview/netview/sensor/ebpf"
	"github.com/netview/netview/sensor/flows"
	"github.com/netview/netview/sensor/procnet"
	"github.com/netview/netview/sensor/procs"
)

// diagSource polls TCP sockets through netlink, with byte counters.
type diagSource struct {
	conn  *diag.Conn
	socks []diag.Sock
	// netns is the namespace the netlink socket answers for: the one it
	// was opened in, the sensor's, fixed for its life. 0 until read.
	netns uint64
}

func (d *diagSource) Name() string { return "inet_diag" }

func (d *diagSource) Poll(dst []flows.Observation) ([]flows.Observation, error) {
	var err error
	d.socks, err = d.conn.TCP(0, d.socks[:0])
	if err != nil {
		return dst, err
	}
	if d.netns == 0 {
		// The sensor uses netlink only with --sensor.proc at /proc, so
		// this is the namespace its heartbeat names (sensor.netns).
		d.netns, _ = procnet.NewFS("/proc").Netns(0)
	}
	for i := range d.socks {
		so := &d.socks[i]
		dst = append(dst, flows.Observation{Local: so.Local, Remote: so.Remote, State: so.State, UID: so.UID, Inode: so.Inode,
			Cookie: so.Cookie, BytesSent: so.BytesSent, BytesReceived: so.BytesReceived, HasBytes: so.HasBytes, Netns: d.netns})
	}
	return dst, nil
}

// procSource polls TCP sockets from /proc/net: states only, no bytes.
type procSource struct {
	fs    procnet.FS
	socks []procnet.Socket
}

func (p *procSource) Name() string { return "proc" }

func (p *procSource) Poll(dst []flows.Observation) ([]flows.Observation, error) {
	var err error
	p.socks, err = p.fs.Sockets(0, p.socks[:0])
	if errors.Is(err, procnet.ErrParse) {
		err = nil // malformed lines are skipped; the rest is good
	}
	// The sensor's own tables (pid 0): the namespace its heartbeat names,
	// read from the same root as the snapshot reads it.
	netns, _ := p.fs.Netns(0)
	for i := range p.socks {
		so := &p.socks[i]
		if so.Proto != procnet.TCP {
			continue
		}
		dst = append(dst, flows.Observation{Local: so.Local, Remote: so.Remote, State: uint8(so.State), UID: so.UID, Inode: so.Inode, Netns: netns})
	}
	return dst, err
}

// kernelSource hands the eBPF probes' records to the flow tracker and turns
// DNS messages and getaddrinfo calls into events. Its methods run on the
// probes' reader goroutine and take the sensor's lock.
type kernelSource struct {
	s       *Sensor
	probes  *ebpf.Probes
	exes    exeCache
	lineage ebpf.Lineage
	kf      flows.KernelFlow
	// Under s.mu: DNS events since the last heartbeat, and connections the
	// probes saw start without their process.
	events     []heartbeat.Event
	unassigned uint64
	// Only on the ring buffer's reader: the container of each network
	// namespace a record came from after its process had gone, and the
	// sensor's own namespace, which is no container's.
	byNetns  map[uint64]nsContainer
	ownNetns uint64
}

var _ ebpf.Handler = (*kernelSource)(nil)

func unixTime(ns uint64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(ns)).UTC()
}

// process names the process of a record; binary_path is read from /proc
// only while the pid still names the process the kernel saw. When it has
// gone (a short-lived client exits before its records are read), its
// container is that of another process in its network namespace: a
// container's or a pod's namespace is theirs alone.
func (k *kernelSource) process(pid, uid uint32, start uint64, comm *[16]byte, netns uint64) heartbeat.Process {
	if pid == 0 {
		return heartbeat.Process{}
	}
	name := ebpf.CommString(comm)
	e := k.exes.lookup(k.s.cfg.ProcRoot, pid, start, name)
	if !e.alive && netns != 0 {
		c := k.containerOf(netns)
		e.container, e.runtime, e.pod, e.meta = c.container, c.runtime, c.pod, c.meta
	}
	p := heartbeat.Process{PID: pid, Binary: name, BinaryPath: e.exe, UID: uid, Unit: e.unit,
		ContainerID: e.container, ContainerRuntime: e.runtime, PodUID: e.pod,
		ContainerName: e.meta.Name, ContainerImage: e.meta.Image, Pod: e.meta.Pod, PodNamespace: e.meta.PodNamespace}
	p.Fit()
	return p
}

func (k *kernelSource) Flow(r *ebpf.Flow) {
	p := k.process(r.PID, r.UID, r.ProcStart, &r.Comm, r.Netns)
	k.kf = flows.KernelFlow{Close: r.Close, Local: r.Local, Remote: r.Remote, Outbound: r.Outbound(), Inbound: r.Inbound(),
		Process: p, Start: unixTime(r.Start), Time: unixTime(r.Time), Sock: r.Sock, Netns: r.Netns,
		Established: r.Established(), FinOut: r.FinOut(), FinIn: r.FinIn(), FinAcked: r.FinAcked(),
		BytesAcked: r.BytesAcked, BytesReceived: r.BytesReceived}
	k.s.mu.Lock()
	defer k.s.mu.Unlock()
	if !k.s.tracker.Kernel(&k.kf) {
		return
	}
	if p.PID == 0 && !k.kf.Start.IsZero() {
		k.unassigned++
	}
	if !k.kf.Outbound || p.PID == 0 {
		return
	}
	if res, ok := k.lineage.Connect(p.PID, r.Remote.Addr(), k.kf.Start); ok {
		k.events = append(k.events, heartbeat.Event{EventID: uuid.New(), Kind: "dns_resolution", Time: k.kf.Start, Protocol: "tcp",
			SrcAddress: r.Local.Addr().Unmap(), SrcPort: r.Local.Port(), DstAddress: r.Remote.Addr().Unmap(), DstPort: r.Remote.Port(),
			Netns: r.Netns, Process: p, QueryName: res.Name, Answers: res.Answers, Source: "ebpf"})
	}
}

func (k *kernelSource) DNS(r *ebpf.DNS) {
	proto := "udp"
	if r.Proto == 6 {
		proto = "tcp"
	}
	var name, qtype string
	if r.Remote.Port() != 853 { // DNS over TLS: nothing readable
		var err error
		name, qtype, err = ebpf.ParseQuery(r.Data, proto == "tcp")
		if err != nil && proto == "tcp" {
			// A TCP message whose length went in a write of its own.
			name, qtype, err = ebpf.ParseQuery(r.Data, false)
		}
		if errors.Is(err, ebpf.ErrNotQuery) {
			return // a response (mDNS announces to 5353), or not DNS at all
		}
	}
	e := heartbeat.Event{EventID: uuid.New(), Kind: "dns_query", Time: unixTime(r.Time), Protocol: proto,
		SrcAddress: r.Local.Addr().Unmap(), SrcPort: r.Local.Port(), DstAddress: r.Remote.Addr().Unmap(), DstPort: r.Remote.Port(),
		Netns: r.Netns, Process: k.process(r.PID, r.UID, r.ProcStart, &r.Comm, r.Netns), QueryName: name, QueryType: qtype, Source: "ebpf"}
	k.s.mu.Lock()
	k.events = append(k.events, e)
	k.s.mu.Unlock()
}

func (k *kernelSource) Lookup(r *ebpf.Lookup) {
	name := strings.ToValidUTF8(string(r.Name), "?")
	if len(name) > 255 {
		return // not a name a resolver would take
	}
	// getaddrinfo lists an address once per socket type: keep each once.
	var answers []netip.Addr
	for _, a := range r.Addrs {
		if a = a.Unmap(); !slices.Contains(answers, a) {
			answers = append(answers, a)
		}
	}
	at := unixTime(r.Start)
	p := k.process(r.PID, r.UID, r.ProcStart, &r.Comm, r.Netns)
	e := heartbeat.Event{EventID: uuid.New(), Kind: "dns_lookup", Time: at, Netns: r.Netns, Process: p, QueryName: name, Answers: answers, Source: "ebpf"}
	k.s.mu.Lock()
	k.events = append(k.events, e)
	k.lineage.Lookup(p.PID, name, answers, at)
	k.s.mu.Unlock()
}

// nsContainer is the container found in a network namespace, through
// process pid (0: none was found, at the time looked).
type nsContainer struct {
	exeEntry
	pid int
	at  time.Time
}

// containerOf returns the container of a process in network namespace
// netns, none for the sensor's own (the host's processes are no one
// container). A namespace is looked up by a walk of /proc and kept while
// the process it was found through is still in it: the kernel reuses a
// freed namespace's inode for the next one. One with no process found is
// walked for again after a few seconds, not at every record.
func (k *kernelSource) containerOf(netns uint64) exeEntry {
	if k.ownNetns == 0 {
		k.ownNetns, _ = k.s.fs.Netns(0)
	}
	if netns == k.ownNetns {
		return exeEntry{}
	}
	now := time.Now()
	if c, ok := k.byNetns[netns]; ok {
		if c.pid == 0 && now.Sub(c.at) < 5*time.Second {
			return exeEntry{}
		}
		if in, err := k.s.fs.Netns(c.pid); c.pid != 0 && err == nil && in == netns {
			return c.exeEntry
		}
	}
	if k.byNetns == nil || len(k.byNetns) > 1024 {
		k.byNetns = map[uint64]nsContainer{}
	}
	c := nsContainer{at: now}
	spaces, _ := k.s.fs.Namespaces(nil)
	for _, ns := range spaces {
		if ns.Inode != netns {
			continue
		}
		c.pid = ns.PID
		if cgs, err := procs.Cgroups(k.s.cfg.ProcRoot, ns.PID); err == nil {
			c.container, c.runtime, c.pod = procs.Container(cgs)
			if c.container != "" {
				c.meta = k.exes.meta(c.runtime, c.container)
			}
		}
	}
	k.byNetns[netns] = c
	return c.exeEntry
}

// exeCache remembers the executable of the processes the probes name, by
// pid and start time, so a reused pid never gets another's path.
type exeCache struct {
	m map[uint32]exeEntry
	// metas holds the runtimes' state of each container, read at its
	// first process: not once a process, as the resolver does too.
	metas map[[2]string]procs.Meta
}

// meta returns what the runtime's state files say of container id.
func (c *exeCache) meta(runtime, id string) procs.Meta {
	k := [2]string{runtime, id}
	if m, ok := c.metas[k]; ok {
		return m
	}
	if c.metas == nil || len(c.metas) > 1024 {
		c.metas = map[[2]string]procs.Meta{}
	}
	m := procs.ContainerMeta("/", runtime, id)
	c.metas[k] = m
	return m
}

type exeEntry struct {
	alive bool // the pid still named the process the kernel saw
	start uint64
	comm  string
	exe   string
	unit  string
	// the container, from the cgroup path (procs.Container)
	container, runtime, pod string
	meta                    procs.Meta
}

func (c *exeCache) lookup(procRoot string, pid uint32, start uint64, comm string) exeEntry {
	if e, ok := c.m[pid]; ok && e.start == start && e.comm == comm {
		return e
	}
	if c.m == nil || len(c.m) > 4096 {
		c.m = map[uint32]exeEntry{}
	}
	// /proc/<pid>/stat counts start in clock ticks (USER_HZ, 100 on Linux);
	// the kernel gave nanoseconds since boot. Reading the start again after
	// the link makes sure the path is the same process's.
	dir := procRoot + "/" + strconv.FormatUint(uint64(pid), 10)
	e := exeEntry{start: start, comm: comm}
	if t, ok := statStart(dir); ok && t == start/10_000_000 {
		e.alive = true
		e.exe, _ = os.Readlink(dir + "/exe")
		if cgs, err := procs.Cgroups(procRoot, int(pid)); err == nil {
			e.unit = procs.Unit(cgs)
			e.container, e.runtime, e.pod = procs.Container(cgs)
			if e.container != "" {
				e.meta = c.meta(e.runtime, e.container)
			}
		}
		if t2, ok := statStart(dir); !ok || t2 != t {
			e = exeEntry{start: start, comm: comm}
		}
	}
	c.m[pid] = e
	return e
}

// statStart reads the start time (field 22) of /proc/<pid>/stat.
func statStart(dir string) (uint64, bool) {
	b, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, false
	}
	v, err := strconv.ParseUint(f[19], 10, 64)
	return v, err == nil
}
