//go:build linux

package supervise

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Supervisor does for a set of services what an orchestrator does: a
// service that exited by itself is started again, and one that its check
// calls stuck for stuckAfter is killed and started again. A held service
// (stopped by the test, see Service.Stop) is left alone. Every restart is
// recorded, so that a test can tell whether the programs recovered by
// themselves or needed the supervisor.
type Supervisor struct {
	svcs       []*Service
	every      time.Duration
	stuckAfter time.Duration
	stuck      func(i int) (bool, string)

	mu       sync.Mutex
	restarts []string // stuck services restarted
	exits    []string // services that exited by themselves, restarted
	errs     []error
	stop     chan struct{}
	done     chan struct{}
}

// Watch supervises svcs until Halt, looking at each every period. stuck is
// asked about svcs[i] each time it runs and is not held; it says whether
// the service is stuck now and, if so, how (for the record).
func Watch(svcs []*Service, every, stuckAfter time.Duration, stuck func(i int) (bool, string)) *Supervisor {
	s := &Supervisor{svcs: svcs, every: every, stuckAfter: stuckAfter, stuck: stuck, stop: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s
}

func (s *Supervisor) run() {
	defer close(s.done)
	since := make([]time.Time, len(s.svcs))
	tick := time.NewTicker(s.every)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		for i, n := range s.svcs {
			if n.Held() {
				since[i] = time.Time{}
				continue
			}
			if !n.Alive() {
				last := n.Current()
				s.restart(n, false, fmt.Sprintf("it had exited (%v): %s", last.Err(), strings.TrimSpace(last.LogTail(300))))
				since[i] = time.Time{}
				continue
			}
			stuck, how := s.stuck(i)
			if !stuck {
				since[i] = time.Time{}
				continue
			}
			if since[i].IsZero() {
				since[i] = time.Now()
				continue
			}
			if d := time.Since(since[i]); d >= s.stuckAfter {
				s.restart(n, true, fmt.Sprintf("%s for %v", how, d.Round(time.Millisecond)))
				since[i] = time.Time{}
			}
		}
	}
}

// restart starts n again, SIGKILLing it first when it is stuck, and
// records why among the restarts of stuck services or the exits. A failed
// start of a service that had exited is an error of the supervisor; a
// stuck one that did not start again is recorded as an exit and left for
// the next round, which finds it not alive and starts it.
func (s *Supervisor) restart(n *Service, stuck bool, why string) {
	msg := fmt.Sprintf("%s restarted at %s: %s", n.Name, time.Now().Format("15:04:05.000"), why)
	var err error
	if stuck {
		err = n.Kill()
	}
	if err == nil {
		err = n.Start(context.Background())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !stuck {
		s.exits = append(s.exits, msg)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("restarting %s: %w", n.Name, err))
		}
		return
	}
	s.restarts = append(s.restarts, msg)
	if err != nil {
		s.exits = append(s.exits, fmt.Sprintf("%s did not start again: %v", n.Name, err))
	}
}

// Halt stops supervising and waits for a restart under way to end.
func (s *Supervisor) Halt() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

// Restarted counts restarts of stuck services and of services that had
// exited.
func (s *Supervisor) Restarted() (stuck, exited int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.restarts), len(s.exits)
}

// Record is what happened so far: a line for each stuck service restarted,
// a line for each that had exited, and the restarts that failed.
func (s *Supervisor) Record() (restarts, exits []string, errs []error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restarts, s.exits, s.errs
}
