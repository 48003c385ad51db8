// Package ebpf follows TCP connections, DNS packets and getaddrinfo calls
// in the kernel with eBPF probes, so the sensor sees what polling misses.
package ebpf

import (
	"errors"
)

// Handler receives the kernel's records, one at a time, on the reader's
// goroutine. A record and the slices in it are valid only during the call.
type Handler interface {
	Flow(f *Flow)
	DNS(d *DNS)
	Lookup(l *Lookup)
}

// ErrUnsupported is returned by Load where this package has no probes.
var ErrUnsupported = errors.New("ebpf: no probes built for this architecture")

// Counters says what the probes could not deliver.
type Counters struct {
	// Lost counts records dropped because the ring buffer was full.
	Lost uint64
	// Untracked counts sockets the kernel could not follow (its socket map
	// was full): their process and history are unknown at close.
	Untracked uint64
	// Bad counts records user space could not decode.
	Bad uint64
}

// clock turns the probes' CLOCK_MONOTONIC times into Unix time.
type clock struct {
	offset int64 // wall ns minus monotonic ns
}
