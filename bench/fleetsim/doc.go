// Package fleetsim simulates a fleet of Netview sensors against ingest
// nodes: thousands of virtual sensors, each with a host of its own (TCP
// connections that churn between heartbeats, mostly stable listeners, UDP
// sockets, active and completed flows, network and DNS events, and on a
// few telecom sensors GTP-U, PFCP and RADIUS sockets and SCTP
// associations), each sending zstd JSON heartbeats on its own schedule
// (open loop) and retrying like sensor/uplink: the same bytes, in order,
// with backoff and Retry-After.
//
//	rep, err := fleetsim.Run(ctx, fleetsim.Config{Sensors: 2000, Interval: 15 * time.Second,
//		Duration: time.Minute, Targets: []string{"http://127.0.0.1:8090"}, Token: token})
//	rep.WriteText(os.Stdout)
//
// The Report counts offered and accepted heartbeats and rows per second,
// ack latencies, retries and errors by kind, and keeps each sensor's
// acknowledged (seq, heartbeat_id) so that Verify can compare it with what
// a store holds. cmd/fleetsim is the command.
//
// A Day is the same fleet on a simulated clock, driven round by round by
// its caller, with stable hosts and changes injected at chosen rounds: a
// day of heartbeats in minutes, for measuring the baseline job's findings
// (TestDayBaselineFindings, BenchmarkDayBaselineFindings).
package fleetsim
