//go:build linux

package supervise

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netview/netview/internal/loopback"
)

// With SUPERVISE_TEST_HELPER set, the test binary is the child under
// supervision: it logs a line and serves 200 at /ready on the address in
// its first argument, for requests with the header X-Ready: yes.
func TestMain(m *testing.M) {
	if os.Getenv("SUPERVISE_TEST_HELPER") != "" {
		fmt.Println("helper up, pid", os.Getpid())
		http.HandleFunc("/ready", func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("X-Ready") != "yes" {
				w.WriteHeader(http.StatusForbidden)
			}
		})
		fmt.Println(http.ListenAndServe(os.Args[1], nil))
		os.Exit(3)
	}
	os.Exit(m.Run())
}

// helper is a Service running the test binary as the helper.
func helper(t *testing.T, name string) *Service {
	t.Helper()
	t.Setenv("SUPERVISE_TEST_HELPER", "1")
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	addr := loopback.FreeAddr(t)
	s := &Service{Name: name, Bin: bin, Dir: t.TempDir(), Args: []string{addr}, ReadyURL: "http://" + addr + "/ready", Header: http.Header{"X-Ready": {"yes"}}}
	t.Cleanup(func() {
		for _, p := range s.Runs() {
			_ = p.Signal(syscall.SIGKILL, 5*time.Second)
		}
	})
	return s
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10 s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestProcSignalLogAndExit(t *testing.T) {
	log := filepath.Join(t.TempDir(), "sh.log")
	p, err := Start("sh", "/bin/sh", []string{"-c", "echo hi; exec sleep 30"}, log, false)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the child writes its log", func() bool { return p.LogTail(3) == "hi\n" })
	if p.Exited() || p.Err() != nil {
		t.Fatalf("running child: Exited %v, Err %v", p.Exited(), p.Err())
	}
	if err := p.Signal(syscall.SIGTERM, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if !p.Exited() || p.Err() == nil || !strings.Contains(p.Err().Error(), "terminated") {
		t.Fatalf("after SIGTERM: Exited %v, Err %v", p.Exited(), p.Err())
	}
	if p.Name() != "sh" || p.LogPath() != log {
		t.Errorf("Name %q, LogPath %q", p.Name(), p.LogPath())
	}
}

func TestSignalEscalatesToKill(t *testing.T) {
	p, err := Start("stubborn", "/bin/sh", []string{"-c", `trap "" TERM; echo ready; exec sleep 30`}, filepath.Join(t.TempDir(), "log"), false)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the child ignores SIGTERM", func() bool { return strings.Contains(p.LogTail(100), "ready") })
	err = p.Signal(syscall.SIGTERM, 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("Signal to a child that ignores it: %v, want killed", err)
	}
	if !p.Exited() || !strings.Contains(p.Err().Error(), "killed") {
		t.Fatalf("after the kill: Exited %v, Err %v", p.Exited(), p.Err())
	}
}

func TestKillGroupTakesChildren(t *testing.T) {
	p, err := Start("group", "/bin/sh", []string{"-c", "sleep 30 & echo $!; wait"}, filepath.Join(t.TempDir(), "log"), true)
	if err != nil {
		t.Fatal(err)
	}
	var child int
	eventually(t, "the child names its own child", func() bool {
		child, err = strconv.Atoi(strings.TrimSpace(p.LogTail(100)))
		return err == nil && child > 0
	})
	if err := p.KillGroup(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the group leader exits", p.Exited)
	// Gone, or a zombie waiting for whoever inherited it.
	eventually(t, fmt.Sprintf("the grandchild %d dies with the group", child), func() bool {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child))
		if err != nil {
			return true
		}
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		return len(f) > 0 && (f[0] == "Z" || f[0] == "X")
	})
}

func TestWaitReadyFailsWhenTheChildExits(t *testing.T) {
	s := &Service{Name: "false", Bin: "/bin/false", Dir: t.TempDir(), ReadyURL: "http://" + loopback.FreeAddr(t) + "/"}
	err := s.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "exited before it was healthy") {
		t.Fatalf("Start of a program that exits: %v", err)
	}
}

func TestWaitReadyTimesOutAndKills(t *testing.T) {
	p, err := Start("sleep", "/bin/sleep", []string{"30"}, filepath.Join(t.TempDir(), "log"), false)
	if err != nil {
		t.Fatal(err)
	}
	err = WaitReady(context.Background(), p, "http://"+loopback.FreeAddr(t)+"/", nil, 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "not healthy") {
		t.Fatalf("WaitReady for a program that never answers: %v", err)
	}
	if !p.Exited() {
		t.Fatal("WaitReady left a program that never answered running")
	}
}

func TestServiceKillAndStartAgain(t *testing.T) {
	s := helper(t, "svc")
	ctx := context.Background()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	first := s.Current()
	if !s.Alive() || s.Held() {
		t.Fatalf("started: Alive %v, Held %v", s.Alive(), s.Held())
	}
	if err := s.Start(ctx); err != nil || s.Current() != first {
		t.Fatalf("Start of a running service: %v, new run %v", err, s.Current() != first)
	}
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if s.Alive() || !s.Held() || !first.Exited() {
		t.Fatalf("killed: Alive %v, Held %v, Exited %v", s.Alive(), s.Held(), first.Exited())
	}
	if err := s.Kill(); err == nil || !strings.Contains(err.Error(), "already exited") {
		t.Fatalf("Kill of a killed service: %v", err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if !s.Alive() || s.Held() || len(s.Runs()) != 2 {
		t.Fatalf("started again: Alive %v, Held %v, %d runs", s.Alive(), s.Held(), len(s.Runs()))
	}
	if n := strings.Count(s.Logs(), "helper up"); n != 2 {
		t.Errorf("Logs holds %d runs' lines, want 2:\n%s", n, s.Logs())
	}
	if got := filepath.Base(s.Runs()[1].LogPath()); got != "svc-1.log" {
		t.Errorf("second run logs to %s, want svc-1.log", got)
	}
}

func TestSupervisorRestarts(t *testing.T) {
	stuck, crashing, held := helper(t, "stuck"), helper(t, "crashing"), helper(t, "held")
	ctx := context.Background()
	for _, s := range []*Service{stuck, crashing, held} {
		if err := s.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	sup := Watch([]*Service{stuck, crashing, held}, 50*time.Millisecond, 200*time.Millisecond, func(i int) (bool, string) {
		return i == 0, "said to be stuck"
	})
	defer sup.Halt()
	if err := held.Kill(); err != nil {
		t.Fatal(err)
	}
	// Behind the supervisor's back: the program exits by itself.
	if err := crashing.Current().Signal(syscall.SIGKILL, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the stuck service and the one that exited are restarted", func() bool {
		s, e := sup.Restarted()
		return s >= 1 && e >= 1
	})
	sup.Halt()
	restarts, exits, errs := sup.Record()
	if len(errs) > 0 {
		t.Errorf("restarts failed: %v", errs)
	}
	if !strings.HasPrefix(restarts[0], "stuck restarted at ") || !strings.Contains(restarts[0], "said to be stuck") {
		t.Errorf("record of the stuck restart: %q", restarts[0])
	}
	if !strings.HasPrefix(exits[0], "crashing restarted at ") || !strings.Contains(exits[0], "it had exited") {
		t.Errorf("record of the exit: %q", exits[0])
	}
	if len(stuck.Runs()) < 2 || len(crashing.Runs()) != 2 || !crashing.Alive() {
		t.Errorf("runs: stuck %d, crashing %d (alive %v)", len(stuck.Runs()), len(crashing.Runs()), crashing.Alive())
	}
	if held.Alive() || len(held.Runs()) != 1 {
		t.Errorf("the held service was started again: alive %v, %d runs", held.Alive(), len(held.Runs()))
	}
}
