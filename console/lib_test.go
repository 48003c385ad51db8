package console_test

import (
	"os/exec"
	"testing"
)

// TestLib runs the unit tests of the Console's client-side logic
// (test/lib.test.mjs) with Node, which every machine building Netview has.
func TestLib(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is needed for the Console's unit tests: ", err)
	}
	out, err := exec.Command("node", "--test", "test/lib.test.mjs").CombinedOutput()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
}
