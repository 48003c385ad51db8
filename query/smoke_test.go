package query_test

import (
	"testing"

	"github.com/netview/netview/heartbeat"
)

func TestEveryEndpointAnswers(t *testing.T) {
	f := start(t)
	f.fleet(3, 2, heartbeat.Shape{Conns: 20, Listeners: 3, UDP: 2, ActiveFlows: 2, CompletedFlows: 2, Events: 7})
	for _, path := range []string{
		"/api/v1/network/connections", "/api/v1/network/listening", "/api/v1/network/udp", "/api/v1/network/flows",
		"/api/v1/network/summary", "/api/v1/events", "/api/v2/network/connections?limit=7", "/api/v2/network/listening",
		"/api/v2/network/udp", "/api/v2/network/flows", "/api/v2/events?limit=5",
	} {
		var out map[string]any
		if code := f.get(path, &out); code != 200 {
			t.Errorf("%s: %d %v", path, code, out)
			continue
		}
		t.Logf("%s: %d keys", path, len(out))
	}
}
