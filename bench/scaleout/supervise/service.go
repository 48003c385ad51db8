//go:build linux

package supervise

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Service is a program that a test starts, kills and starts again with
// the same flags, as a node of a deployment is: one name, one address,
// many runs. Run i logs to Dir/Name-i.log, so no run's log is lost.
type Service struct {
	Name, Bin, Dir string
	Args           []string
	// ReadyURL answers 200, to a request with Header, once the program
	// serves.
	ReadyURL string
	Header   http.Header

	// held is set while a test has stopped the service on purpose and
	// will start it itself; a Supervisor leaves it alone.
	held atomic.Bool

	mu   sync.Mutex
	cur  *Proc
	runs []*Proc
}

// Start runs the program, unless it runs already, and waits up to 60 s
// until ReadyURL answers 200 (see WaitReady). A new run ends the hold of
// Stop.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.cur != nil && !s.cur.Exited() {
		p := s.cur
		s.mu.Unlock()
		return WaitReady(ctx, p, s.ReadyURL, s.Header, 60*time.Second)
	}
	defer s.held.Store(false)
	logPath := filepath.Join(s.Dir, fmt.Sprintf("%s-%d.log", s.Name, len(s.runs)))
	p, err := Start(s.Name, s.Bin, s.Args, logPath, false)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	s.cur = p
	s.runs = append(s.runs, p)
	s.mu.Unlock()
	return WaitReady(ctx, p, s.ReadyURL, s.Header, 60*time.Second)
}

// Stop sends sig to the running program and waits up to wait for it to
// exit (then SIGKILLs it, see Proc.Signal). The service is held until the
// next Start: a Supervisor does not start it again. It fails when nothing
// runs, or when the program had already exited (with its log's tail).
func (s *Service) Stop(sig syscall.Signal, wait time.Duration) error {
	p := s.Current()
	if p == nil {
		return errors.New(s.Name + ": not running")
	}
	if p.Exited() {
		return fmt.Errorf("%s had already exited (%v):\n%s", s.Name, p.Err(), p.LogTail(4<<10))
	}
	s.held.Store(true)
	return p.Signal(sig, wait)
}

// Kill SIGKILLs the running program and waits for it to be gone: Stop
// with SIGKILL.
func (s *Service) Kill() error { return s.Stop(syscall.SIGKILL, 10*time.Second) }

// Alive says the current run is running.
func (s *Service) Alive() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur != nil && !s.cur.Exited()
}

// Held says the service was stopped on purpose and not started since.
func (s *Service) Held() bool { return s.held.Load() }

// Current is the latest run (nil before the first Start).
func (s *Service) Current() *Proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// Runs are every run so far, oldest first.
func (s *Service) Runs() []*Proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.runs)
}

// Logs is everything the runs wrote so far, oldest first.
func (s *Service) Logs() string {
	var b strings.Builder
	for _, p := range s.Runs() {
		data, _ := os.ReadFile(p.log)
		b.Write(data)
	}
	return b.String()
}
