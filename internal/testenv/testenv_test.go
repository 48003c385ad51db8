package testenv

import (
	"fmt"
	"strings"
	"testing"
)

// recorder takes what Require tells a test, without ending this one.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper()                        {}
func (r *recorder) Fatalf(format string, a ...any) { r.fatal = fmt.Sprintf(format, a...) }
func (r *recorder) Skipf(format string, a ...any)  { r.skip = fmt.Sprintf(format, a...) }

func TestRequire(t *testing.T) {
	const env = "NETVIEW_REQUIRE_TESTENV_TEST"
	t.Setenv(env, "")
	var r recorder
	Require(&r, env, "the tests need a widget", "")
	if r.fatal != "" || r.skip != "" {
		t.Errorf("nothing missing: fatal %q skip %q", r.fatal, r.skip)
	}
	Require(&r, env, "the tests need a widget", "widget is not installed")
	if r.fatal != "" || !strings.Contains(r.skip, "widget is not installed") || !strings.Contains(r.skip, "make test") {
		t.Errorf("missing, not required: fatal %q skip %q, want a skip naming it", r.fatal, r.skip)
	}
	t.Setenv(env, "1")
	r = recorder{}
	Require(&r, env, "the tests need a widget", "widget is not installed")
	if r.skip != "" || !strings.Contains(r.fatal, env) || !strings.Contains(r.fatal, "widget is not installed") {
		t.Errorf("missing and required: fatal %q skip %q, want a failure naming %s", r.fatal, r.skip, env)
	}
}
