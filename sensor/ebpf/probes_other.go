//go:build !amd64

package ebpf

import "time"

// Options tune Load.
type Options struct{ Libc string }

// Probes are not built for this architecture (bpf/netview.c reads amd64's
// pt_regs); Load says so and the sensor polls.
type Probes struct{ DNSStatus string }

func Load(Options) (*Probes, error)                   { return nil, ErrUnsupported }
func FindLibc() (string, error)                       { return "", ErrUnsupported }
func (p *Probes) Attached() []string                  { return nil }
func (p *Probes) Run(Handler) error                   { return ErrUnsupported }
func (p *Probes) Sync(time.Duration)                  {}
func (p *Probes) Counters() Counters                  { return Counters{} }
func (p *Probes) KernelTime() (time.Duration, uint64) { return 0, 0 }
func (p *Probes) Close() error                        { return nil }
