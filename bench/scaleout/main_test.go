package scaleout

// The scale-out tests' shared helpers, one file a subject: here the
// tokens, the binaries (built once per test binary) and loopback
// addresses; cluster_test.go the deployment (nodes as supervised child
// processes, a store over the native-protocol front, the fault proxy
// between ingest and storage); nginx_test.go the load balancer from the
// production configuration; fleet_test.go the fleet simulator and the
// check of the store against it; answers_test.go the comparison of query
// answers; supervisor_test.go and probes_test.go what watches the ingest
// nodes while a test breaks things.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

const (
	ingestToken  = "scaleout-ingest-token-0123456789"
	apiToken     = "scaleout-api-token-0123456789"
	cursorSecret = "scaleout-cursor-secret-shared-by-replicas"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var (
	buildOnce             sync.Once
	binDir                string
	ingestBin, queryBin   string
	buildErr              error
	buildTook             time.Duration
	buildLoggedOnce       sync.Once
	moduleRootOnce        sync.Once
	moduleRootDir, modErr = "", error(nil)
)

// binaries builds netview-ingest and netview-query once per test binary.
func binaries(t *testing.T) (string, string) {
	t.Helper()
	buildOnce.Do(func() {
		start := time.Now()
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		binDir, err = os.MkdirTemp("", "netview-scaleout-bin-")
		if err != nil {
			buildErr = err
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+string(filepath.Separator), "./cmd/netview-ingest", "./cmd/netview-query")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		ingestBin, queryBin = filepath.Join(binDir, "netview-ingest"), filepath.Join(binDir, "netview-query")
		buildTook = time.Since(start)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	buildLoggedOnce.Do(func() { t.Logf("built netview-ingest and netview-query in %v", buildTook.Round(time.Millisecond)) })
	return ingestBin, queryBin
}

// moduleRoot walks up from the working directory to the folder with go.mod.
func moduleRoot() (string, error) {
	moduleRootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			modErr = err
			return
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				moduleRootDir = dir
				return
			}
			up := filepath.Dir(dir)
			if up == dir {
				modErr = errors.New("no go.mod above the test's working directory")
				return
			}
			dir = up
		}
	})
	return moduleRootDir, modErr
}
