// Package testenv decides what a test does when a tool it needs is
// missing. `make test` installs every such tool (Chromium, nginx, Podman)
// and sets a NETVIEW_REQUIRE_* variable for each, so that there a missing
// piece fails the test instead of passing it over in silence; anywhere
// else the test skips and says what to install.
package testenv

import (
	"os"
	"testing"
)

// Require fails t when env is set and missing says what is not there, or
// else skips it, naming what the tests need; missing "" lets t go on.
func Require(t testing.TB, env, need, missing string) {
	t.Helper()
	if missing == "" {
		return
	}
	if os.Getenv(env) != "" {
		t.Fatalf("%s, required by %s: %s", need, env, missing)
		return
	}
	t.Skipf("%s: %s; make test installs it", need, missing)
}

// Main runs m's tests, or child when env is set: a test binary that runs
// again as its own helper process (holding sockets for the sensor to find,
// say), started by its tests with env in its environment.
func Main(m *testing.M, env string, child func()) {
	if os.Getenv(env) != "" {
		child()
		return
	}
	os.Exit(m.Run())
}
