// Package faultproxy is a TCP proxy that breaks the network on purpose. The
// scale-out tests put it between the ingest nodes and storage to show what
// the nodes do when storage is slow, flaky, gone or unreachable: it adds
// delay, resets connections, refuses them (nothing listens: connection
// refused, as when the server is stopped) or black-holes them (connections
// stay open, nothing goes through until healed, as in a network partition).
//
// It knows nothing of the protocol it carries; bytes are forwarded in the
// chunks they were read in, in order, in both directions, and a half close
// is passed on as one.
package faultproxy

import (
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy forwards the TCP connections made to Addr to its target.
type Proxy struct {
	target string
	addr   string

	mu       sync.Mutex
	ln       net.Listener
	conns    map[*conn]struct{}
	gate     chan struct{} // non-nil while black-holing; closed to heal
	delayLo  time.Duration
	delayHi  time.Duration
	resetP   float64
	resetMax time.Duration
	flaky    chan struct{} // closed to stop the reset loop
	rng      *rand.Rand
	closed   bool
	wg       sync.WaitGroup

	resets atomic.Int64
}

// conn is one proxied connection.
type conn struct {
	a, b  net.Conn // client side, target side
	once  sync.Once
	done  chan struct{}
	ended atomic.Int32 // directions that reached their end
}

// New listens on a free loopback port and forwards every connection made
// to it to target (host:port), dialled afresh for each. A connection the
// target refuses is reset. The faults are drawn from a fixed seed, so a
// run is as repeatable as the timing of its connections.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{target: target, addr: ln.Addr().String(), ln: ln, conns: map[*conn]struct{}{}, rng: rand.New(rand.NewPCG(1, 2))}
	p.wg.Add(1)
	go p.accept(ln)
	return p, nil
}

// Addr is the proxy's address (host:port); it stays the same across
// Refuse and Accept.
func (p *Proxy) Addr() string { return p.addr }

// Resets counts the connections reset by the faults of SetNetwork.
func (p *Proxy) Resets() int64 { return p.resets.Load() }

func (p *Proxy) accept(ln net.Listener) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		up, err := net.DialTimeout("tcp", p.target, 2*time.Second)
		if err != nil {
			reset(c)
			continue
		}
		pc := &conn{a: c, b: up, done: make(chan struct{})}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			pc.reset()
			return
		}
		p.conns[pc] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(pc, c, up)
		go p.pipe(pc, up, c)
	}
}

type chunk struct {
	b  []byte
	at time.Time
}

// pipe copies src to dst through a queue, each chunk held for the delay
// drawn for it and while the proxy black-holes.
func (p *Proxy) pipe(pc *conn, src, dst net.Conn) {
	defer p.wg.Done()
	q := make(chan chunk, 256)
	go func() {
		defer close(q)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				select {
				case q <- chunk{buf[:n], time.Now()}:
				case <-pc.done:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	for ch := range q {
		p.mu.Lock()
		lo, hi := p.delayLo, p.delayHi
		var d time.Duration
		if hi > 0 {
			d = lo + time.Duration(p.rng.Int64N(int64(hi-lo)+1))
		}
		p.mu.Unlock()
		if wait := time.Until(ch.at.Add(d)); wait > 0 {
			select {
			case <-time.After(wait):
			case <-pc.done:
				return
			}
		}
		for {
			p.mu.Lock()
			g := p.gate
			p.mu.Unlock()
			if g == nil {
				break
			}
			select {
			case <-g:
			case <-pc.done:
				return
			}
		}
		if _, err := dst.Write(ch.b); err != nil {
			pc.reset()
			return
		}
	}
	// src ended: pass the end on, as a half close; the second direction
	// to end closes the connection.
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	if pc.ended.Add(1) == 2 {
		pc.close()
		p.forget(pc)
	}
}

func (p *Proxy) forget(pc *conn) {
	p.mu.Lock()
	delete(p.conns, pc)
	p.mu.Unlock()
}

// reset closes c with a RST instead of a FIN.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

func (pc *conn) reset() {
	pc.once.Do(func() {
		close(pc.done)
		reset(pc.a)
		reset(pc.b)
	})
}

func (pc *conn) close() {
	pc.once.Do(func() {
		close(pc.done)
		pc.a.Close()
		pc.b.Close()
	})
}

// SetNetwork sets a delay drawn uniformly from [lo, hi] for every chunk in
// each direction, and, every period, resets each open connection with
// probability share (at a random moment within the period). Zeros end
// the faults.
func (p *Proxy) SetNetwork(lo, hi time.Duration, share float64, period time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delayLo, p.delayHi, p.resetP, p.resetMax = lo, hi, share, period
	if p.flaky != nil {
		close(p.flaky)
		p.flaky = nil
	}
	if share > 0 && period > 0 {
		stop := make(chan struct{})
		p.flaky = stop
		go p.resetLoop(stop, share, period)
	}
}

func (p *Proxy) resetLoop(stop chan struct{}, share float64, period time.Duration) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		p.mu.Lock()
		for pc := range p.conns {
			if p.rng.Float64() >= share {
				continue
			}
			time.AfterFunc(time.Duration(p.rng.Int64N(int64(period))), func() {
				select {
				case <-pc.done:
				case <-stop:
				default:
					p.resets.Add(1)
					pc.reset()
				}
			})
		}
		p.mu.Unlock()
	}
}

// ResetAll resets every open connection and says how many there were.
func (p *Proxy) ResetAll() int {
	p.mu.Lock()
	cs := make([]*conn, 0, len(p.conns))
	for pc := range p.conns {
		cs = append(cs, pc)
	}
	p.conns = map[*conn]struct{}{}
	p.mu.Unlock()
	for _, pc := range cs {
		pc.reset()
	}
	return len(cs)
}

// Refuse stops listening (new connections are refused) and resets every
// open connection: the server is gone.
func (p *Proxy) Refuse() {
	p.mu.Lock()
	ln := p.ln
	p.ln = nil
	p.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	p.ResetAll()
}

// Accept listens again on the same address after Refuse.
func (p *Proxy) Accept() error {
	var ln net.Listener
	var err error
	for range 50 { // the port may take a moment to be free again
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go p.accept(ln)
	return nil
}

// BlackHole holds every byte in both directions, on open and new
// connections, until Heal.
func (p *Proxy) BlackHole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gate == nil {
		p.gate = make(chan struct{})
	}
}

// Heal lets held bytes through, in order.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gate != nil {
		close(p.gate)
		p.gate = nil
	}
}

// Close ends the faults, stops listening and resets every open connection.
func (p *Proxy) Close() {
	p.SetNetwork(0, 0, 0, 0)
	p.mu.Lock()
	p.closed = true
	ln := p.ln
	p.ln = nil
	p.mu.Unlock()
	p.Heal()
	if ln != nil {
		ln.Close()
	}
	p.ResetAll()
}
