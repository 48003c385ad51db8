//go:build linux

// Package supervise runs programs as child processes of a test, the way an
// orchestrator runs them in production: started with their output kept in
// a log file, waited for until they answer, killed (SIGKILL or a gentler
// signal), started again, and, under a Supervisor, restarted when they
// exit by themselves or stay stuck.
//
// The scale-out tests use it for the netview-ingest and netview-query
// nodes and for nginx, so that a test can kill a node mid-run and find
// every run's log afterwards. Children die with the test binary
// (Pdeathsig), which is why the package is Linux only.
package supervise

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Proc is one run of a child process.
type Proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // exit status, once done
}

// Start starts bin with args, its output appended to logPath. The child
// dies with the test binary (Pdeathsig) and, with group, leads a process
// group of its own, so that KillGroup takes its children too (nginx's
// workers). It runs with GOTRACEBACK=all: a Go program then prints every
// goroutine on SIGQUIT.
func Start(name, bin string, args []string, logPath string, group bool) (*Proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child holds its own copy
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), "GOTRACEBACK=all")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: group}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &Proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Name is the name the process was started with.
func (p *Proc) Name() string { return p.name }

// LogPath is the file that holds the process's output.
func (p *Proc) LogPath() string { return p.log }

// Exited says the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is the exit status once the process exited (nil while it runs).
func (p *Proc) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}

// Signal sends sig and waits up to wait for the exit; then it SIGKILLs the
// process and says so.
func (p *Proc) Signal(sig syscall.Signal, wait time.Duration) error {
	if p.Exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(wait):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("%s (pid %d) did not exit within %v of %v; killed", p.name, p.cmd.Process.Pid, wait, sig)
}

// KillGroup SIGKILLs the process group a process started with group
// leads: whatever of it is left.
func (p *Proc) KillGroup() error {
	return syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
}

// LogTail is the last n bytes of the process's log.
func (p *Proc) LogTail(n int) string {
	b, _ := os.ReadFile(p.log)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// WaitReady asks url, with header, every 50 ms until it answers 200. It
// fails when p exits first, with the tail of p's log, and when limit
// passes, after SIGKILLing p: a program that does not come up is not left
// running.
func WaitReady(ctx context.Context, p *Proc, url string, header http.Header, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	c := &http.Client{Timeout: 2 * time.Second}
	defer c.CloseIdleConnections()
	for {
		if p.Exited() {
			return fmt.Errorf("%s exited before it was healthy (%v):\n%s", p.name, p.err, p.LogTail(4<<10))
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		for k, vs := range header {
			req.Header[k] = vs
		}
		if resp, err := c.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			_ = p.Signal(syscall.SIGKILL, 5*time.Second)
			return fmt.Errorf("%s not healthy at %s within %v:\n%s", p.name, url, limit, p.LogTail(4<<10))
		case <-time.After(50 * time.Millisecond):
		}
	}
}
