// Package scaleout tests Netview as it is deployed for a fleet: the real
// netview-ingest and netview-query binaries as separate processes, two of
// each, behind nginx configured from deploy/nginx/nginx.conf, all against
// one ClickHouse reached over the native protocol (in tests the engine
// behind internal/store/storetest/chfront), fed by the fleet simulator bench/fleetsim.
//
// The tests kill nodes with SIGKILL, take storage away, slow and cut the
// network between ingest and storage, and check the guarantees of
// docs/reliability.md: every acknowledged heartbeat is stored, nothing a
// sensor sent twice shows twice, every query replica gives the same
// answers and a client reading through the load balancer never gets a
// wrong one. The package holds only tests; they need nginx (skipped
// without it unless NETVIEW_REQUIRE_NGINX=1) and libchdb.so
// (NETVIEW_LIBCHDB). Two tools they use are packages of their own, each
// with a unit test that needs neither: faultproxy, the TCP proxy that
// breaks the network between ingest and storage, and supervise, which runs
// the nodes and nginx as child processes and restarts them.
//
//	go test -count=1 -v ./bench/scaleout/
package scaleout
