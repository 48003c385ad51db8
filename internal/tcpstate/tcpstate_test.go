package tcpstate

import (
	"slices"
	"testing"
)

func TestNames(t *testing.T) {
	// Spelled out once more on purpose: these strings are the wire format
	// of the heartbeat and must not change with a refactor of the table.
	want := []string{"ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT",
		"CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV"}
	if got := Names(); !slices.Equal(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	for i, w := range want {
		if got, ok := Name(uint8(i + 1)); !ok || got != w {
			t.Errorf("Name(%d) = %q, %v; want %q, true", i+1, got, ok, w)
		}
	}
	for _, s := range []uint8{0, 13, 255} {
		if got, ok := Name(s); ok || got != "" {
			t.Errorf("Name(%d) = %q, %v; want \"\", false", s, got, ok)
		}
	}
	if Listen != 10 || NewSynRecv != 12 || Close != 7 || TimeWait != 6 {
		t.Error("state numbers differ from the kernel's")
	}
}

// TestNamesAreCallersOwn guards the heartbeat's vocabulary, which is built
// by deleting LISTEN from Names(): that must not reach the table.
func TestNamesAreCallersOwn(t *testing.T) {
	states := slices.DeleteFunc(Names(), func(n string) bool { return n == "LISTEN" })
	if want := []string{"ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT",
		"CLOSE", "CLOSE_WAIT", "LAST_ACK", "CLOSING", "NEW_SYN_RECV"}; !slices.Equal(states, want) {
		t.Errorf("Names() without LISTEN = %v, want %v", states, want)
	}
	if n, _ := Name(Listen); n != "LISTEN" || len(Names()) != NewSynRecv {
		t.Errorf("deleting from Names() changed the table: Name(Listen) = %q, %d names", n, len(Names()))
	}
}
