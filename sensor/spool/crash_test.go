package spool

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netview/netview/heartbeat"
)

const (
	crashDirEnv = "NETVIEW_SPOOL_CRASH_DIR"
	// crashCap holds two full heartbeats and some stripped ones, so the
	// child is killed while stripping and dropping, not only while writing.
	crashCap = 16 << 10
)

// TestCrashChild is the process TestKill9WhilePutting kills: it Puts
// heartbeats in a loop and prints "put <seq>" after each Put returns.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("helper process of TestKill9WhilePutting")
	}
	s, err := Open(dir, crashCap)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	seq, _ := s.LastSeq()
	g := heartbeat.NewGenerator(seq, shape)
	fmt.Println("ready")
	for {
		seq++
		h := g.Next(time.Now())
		h.Seq = seq
		if err := s.Put(h); err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
		fmt.Printf("put %d\n", seq) // one write(2): a line is whole or absent
	}
}

// A child process Puts heartbeats and is SIGKILLed at a random moment,
// several times over the same directory. After each kill Open recovers,
// every entry is a whole heartbeat, and nothing the child reported as Put
// is missing except what the cap dropped, which the counters account for
// exactly.
func TestKill9WhilePutting(t *testing.T) {
	dir := t.TempDir()
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, seed))
	t.Logf("seed %d", seed)
	reported := map[uint64]bool{}
	temps := 0
	for round := range 8 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		select {
		case l := <-lines:
			if l != "ready" {
				cmd.Process.Kill()
				t.Fatalf("round %d: child said %q", round, l)
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("round %d: child not ready", round)
		}
		// A Put takes several fsyncs (about 20 ms here once the cap
		// bites), so the window reaches well past the first few.
		time.Sleep(time.Duration(20+rng.IntN(281)) * time.Millisecond)
		if err := cmd.Process.Kill(); err != nil { // SIGKILL
			t.Fatal(err)
		}
		n := 0
		for l := range lines {
			if strings.HasPrefix(l, "error") {
				t.Fatalf("round %d: child: %s", round, l)
			}
			if seq, ok := strings.CutPrefix(l, "put "); ok {
				v, err := strconv.ParseUint(seq, 10, 64)
				if err != nil {
					t.Fatalf("round %d: child said %q", round, l)
				}
				reported[v] = true
				n++
			}
		}
		cmd.Wait()

		des, _ := os.ReadDir(dir)
		for _, de := range des {
			if strings.HasPrefix(de.Name(), tmpPrefix) {
				temps++
			}
		}
		s, err := Open(dir, crashCap)
		if err != nil {
			t.Fatalf("round %d: Open after kill: %v", round, err)
		}
		d := s.Dropped()
		s.Close()
		hs := stored(t, dir) // every entry decodes, named by its seq
		if len(hs) == 0 {
			t.Fatalf("round %d: spool empty after %d reported puts", round, len(reported))
		}
		oldest, newest := hs[0].Seq, hs[len(hs)-1].Seq
		stripped := uint64(0)
		for i, h := range hs {
			if i > 0 && h.Seq != hs[i-1].Seq+1 {
				t.Fatalf("round %d: seq %d follows %d", round, h.Seq, hs[i-1].Seq)
			}
			if snapshotRows(h) == 0 {
				stripped++
			}
		}
		for seq := range reported {
			// Below oldest: dropped by the cap, checked by the counts.
			if seq > newest {
				t.Fatalf("round %d: reported seq %d missing (spool holds %d..%d)", round, seq, oldest, newest)
			}
		}
		// Seqs 1..newest were all stored once; the ones below oldest were
		// dropped, oldest first, each after losing its snapshot.
		perBeat := uint64(shape.Events + shape.CompletedFlows)
		want := Dropped{Heartbeats: oldest - 1, EventRows: (oldest - 1) * perBeat, SnapshotRows: (oldest - 1 + stripped) * uint64(shape.Conns)}
		if d != want {
			t.Fatalf("round %d: Dropped %+v, want %+v", round, d, want)
		}
		t.Logf("round %d: %d puts reported; spool holds %d..%d; dropped %+v", round, n, oldest, newest, d)
	}
	if len(reported) < 10 {
		t.Errorf("only %d puts in all rounds: the kills came too early to test much", len(reported))
	}
	t.Logf("%d puts reported, %d temp files left by kills", len(reported), temps)
}
