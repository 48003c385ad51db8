package ebpf

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// Drain is how often the reader empties the ring buffer: records are
// submitted without a wakeup (see submit in bpf/netview.c).
const Drain = 100 * time.Millisecond

// Options tune Load.
type Options struct {
	// Libc is the C library whose getaddrinfo is probed; empty finds it.
	Libc string
}

// Probes are the loaded and attached programs and their ring buffer.
type Probes struct {
	objs     netviewObjects
	links    []link.Link
	rd       *ringbuf.Reader
	attached []string
	// DNSStatus says which DNS probes run, for the sensor's capabilities.
	DNSStatus string
	flushed   chan struct{}
	bad       atomic.Uint64
	clock     clock
	rec       ringbuf.Record
	flow      Flow
	dns       DNS
	lookup    Lookup
}

// Load raises RLIMIT_MEMLOCK, mounts tracefs if it is missing, loads the
// programs against the running kernel's BTF and attaches them: tracepoints
// and uprobes only, since kernels without CONFIG_KPROBES have no kprobes.
// The TCP probes are required; DNS and getaddrinfo probes that cannot
// attach are left out and named in DNSStatus.
func Load(opts Options) (_ *Probes, err error) {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return nil, fmt.Errorf("no kernel BTF: %w", err)
	}
	memlockErr := rlimit.RemoveMemlock() // kernels since 5.11 account BPF memory to the cgroup instead
	if err := mountTracefs(); err != nil {
		return nil, err
	}
	p := &Probes{flushed: make(chan struct{}, 1)}
	if err := loadNetviewObjects(&p.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) && len(ve.Log) > 0 {
			err = fmt.Errorf("%w (verifier: %s)", err, ve.Log[len(ve.Log)-1])
		}
		if memlockErr != nil {
			err = fmt.Errorf("%w (raising RLIMIT_MEMLOCK failed: %v)", err, memlockErr)
		}
		return nil, fmt.Errorf("load: %w", err)
	}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	attach := func(name string, l link.Link, err error) error {
		if err != nil {
			return fmt.Errorf("attach %s: %w", name, err)
		}
		p.links = append(p.links, l)
		p.attached = append(p.attached, name)
		return nil
	}
	l, err := link.Tracepoint("sock", "inet_sock_set_state", p.objs.InetSockSetState, nil)
	if err := attach("inet_sock_set_state", l, err); err != nil {
		return nil, err
	}
	// The accepting process is current where accept returns.
	for _, tp := range []string{"sys_exit_accept4", "sys_exit_accept"} {
		l, err = link.Tracepoint("syscalls", tp, p.objs.SysExitAccept, nil)
		if err := attach(tp, l, err); err != nil {
			return nil, err
		}
	}
	var dns, missing []string
	for _, tp := range []struct {
		name string
		prog *ebpf.Program
	}{{"sys_enter_sendto", p.objs.SysEnterSendto}, {"sys_enter_sendmsg", p.objs.SysEnterSendmsg},
		{"sys_enter_sendmmsg", p.objs.SysEnterSendmmsg}, {"sys_enter_write", p.objs.SysEnterWrite}, {"sys_enter_writev", p.objs.SysEnterWritev}} {
		l, err := link.Tracepoint("syscalls", tp.name, tp.prog, nil)
		if attach(tp.name, l, err) != nil {
			missing = append(missing, tp.name)
			continue
		}
		dns = append(dns, strings.TrimPrefix(tp.name, "sys_enter_"))
	}
	libc := opts.Libc
	if libc == "" {
		libc, err = FindLibc()
	}
	if err == nil {
		err = p.attachGetaddrinfo(libc)
	}
	if err != nil {
		missing = append(missing, "getaddrinfo ("+err.Error()+")")
	} else {
		dns = append(dns, "getaddrinfo in "+libc)
	}
	p.DNSStatus = "active: " + strings.Join(dns, ", ")
	if len(dns) == 0 {
		p.DNSStatus = "unavailable"
	}
	if len(missing) > 0 {
		p.DNSStatus += "; missing: " + strings.Join(missing, ", ")
	}
	if p.rd, err = ringbuf.NewReader(p.objs.Events); err != nil {
		return nil, fmt.Errorf("ring buffer: %w", err)
	}
	p.clock.sync()
	return p, nil
}

func (p *Probes) attachGetaddrinfo(libc string) error {
	ex, err := link.OpenExecutable(libc)
	if err != nil {
		return err
	}
	l, err := ex.Uprobe("getaddrinfo", p.objs.Getaddrinfo, nil)
	if err != nil {
		return err
	}
	r, err := ex.Uretprobe("getaddrinfo", p.objs.GetaddrinfoRet, nil)
	if err != nil {
		l.Close()
		return err
	}
	p.links = append(p.links, l, r)
	p.attached = append(p.attached, "getaddrinfo")
	return nil
}

// FindLibc finds the C library: the one this process maps (a cgo build),
// else the usual places of glibc and musl. Uprobes attach to a file, so
// programs using another copy (in a container image) are not seen.
func FindLibc() (string, error) {
	if b, err := os.ReadFile("/proc/self/maps"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 6 && isLibc(filepath.Base(f[5])) {
				return f[5], nil
			}
		}
	}
	for _, p := range []string{
		"/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/lib64/libc.so.6",
		"/usr/lib64/libc.so.6", "/lib/libc.so.6", "/usr/lib/libc.so.6", "/lib/ld-musl-x86_64.so.1",
	} {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return real, nil
		}
	}
	return "", errors.New("no C library found")
}

func isLibc(base string) bool {
	return base == "libc.so.6" || strings.HasPrefix(base, "libc-") && strings.HasSuffix(base, ".so") || strings.HasPrefix(base, "ld-musl-")
}

// mountTracefs mounts tracefs where the tracepoint's id is read, when no
// one has: fresh machines may not have it.
func mountTracefs() error {
	for _, dir := range []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"} {
		_, err := os.Stat(filepath.Join(dir, "events"))
		if err == nil {
			return nil
		}
		if errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("no access to %s: the probes need root", dir)
		}
	}
	if err := unix.Mount("nodev", "/sys/kernel/tracing", "tracefs", 0, ""); err != nil {
		return fmt.Errorf("mount tracefs on /sys/kernel/tracing: %w", err)
	}
	return nil
}

// Attached names the attached probes.
func (p *Probes) Attached() []string { return p.attached }

// Run reads records and hands them to h until Close; every Drain it
// empties the ring buffer.
func (p *Probes) Run(h Handler) error {
	for {
		p.rd.SetDeadline(time.Now().Add(Drain))
		err := p.rd.ReadInto(&p.rec)
		switch {
		case err == nil:
			p.dispatch(p.rec.RawSample, h)
		case errors.Is(err, os.ErrDeadlineExceeded):
			p.clock.sync()
		case errors.Is(err, ringbuf.ErrFlushed):
			select {
			case p.flushed <- struct{}{}:
			default:
			}
		case errors.Is(err, ringbuf.ErrClosed):
			return nil
		default:
			return err
		}
	}
}

func (p *Probes) dispatch(b []byte, h Handler) {
	if len(b) == 0 {
		p.bad.Add(1)
		return
	}
	var err error
	switch b[recTypeAt] {
	case recOpen, recClose:
		if err = decodeFlow(b, &p.flow); err == nil {
			p.flow.Time, p.flow.Start = p.clock.unix(p.flow.Time), p.clock.unix(p.flow.Start)
			h.Flow(&p.flow)
		}
	case recDNS:
		if err = decodeDNS(b, &p.dns); err == nil {
			p.dns.Time = p.clock.unix(p.dns.Time)
			h.DNS(&p.dns)
		}
	case recLookup:
		if err = decodeLookup(b, &p.lookup); err == nil {
			p.lookup.Time, p.lookup.Start = p.clock.unix(p.lookup.Time), p.clock.unix(p.lookup.Start)
			h.Lookup(&p.lookup)
		}
	default:
		err = ErrShort
	}
	if err != nil {
		p.bad.Add(1)
	}
}

// Sync returns once every record the kernel wrote before the call has been
// handled (or after timeout): the sensor syncs before it polls the socket
// table, so that a connection gone from the table has had its close handled.
func (p *Probes) Sync(timeout time.Duration) {
	select {
	case <-p.flushed: // a stale signal of an earlier timeout
	default:
	}
	if p.rd.Flush() != nil {
		return
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.flushed:
	case <-t.C:
	}
}

// Counters reads what was lost so far.
func (p *Probes) Counters() Counters {
	c := Counters{Bad: p.bad.Load()}
	var per []uint64
	if p.objs.Stats.Lookup(uint32(0), &per) == nil {
		for _, v := range per {
			c.Lost += v
		}
	}
	if p.objs.Stats.Lookup(uint32(1), &per) == nil {
		for _, v := range per {
			c.Untracked += v
		}
	}
	return c
}

// KernelTime sums the run time of the programs, as the kernel counts it
// when kernel.bpf_stats_enabled is on (see ebpf.EnableStats).
func (p *Probes) KernelTime() (time.Duration, uint64) {
	var d time.Duration
	var n uint64
	for _, prog := range []*ebpf.Program{p.objs.InetSockSetState, p.objs.SysExitAccept, p.objs.SysEnterSendto,
		p.objs.SysEnterSendmsg, p.objs.SysEnterSendmmsg, p.objs.SysEnterWrite, p.objs.SysEnterWritev, p.objs.Getaddrinfo, p.objs.GetaddrinfoRet} {
		if s, err := prog.Stats(); err == nil {
			d += s.Runtime
			n += s.RunCount
		}
	}
	return d, n
}

// Close detaches and unloads everything; Run returns.
func (p *Probes) Close() error {
	for _, l := range p.links {
		l.Close()
	}
	p.links = nil
	if p.rd != nil {
		p.rd.Close()
	}
	return p.objs.Close()
}

// sync measures the offset of the wall clock from CLOCK_MONOTONIC (what
// bpf_ktime_get_ns reads); it is taken again every drain, so wall clock
// steps are followed.
func (c *clock) sync() {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) != nil {
		return
	}
	now := time.Now()
	c.offset = now.UnixNano() - ts.Nano()
}

// unix turns a monotonic time into Unix ns (0 stays 0).
func (c *clock) unix(mono uint64) uint64 {
	if mono == 0 {
		return 0
	}
	return uint64(int64(mono) + c.offset)
}
