package deploy

// The checks: each reads a bundle and reports what is wrong with it. They
// take the truth from the programs themselves (flag sets, HTTP handlers,
// limits, the schema's migrations), so a deployment file that drifts from
// the code fails here. Each target has a file of its own: compose_test.go,
// k8s_test.go, nginx_test.go, systemd_test.go, clickhouse_test.go,
// dockerfile_test.go; programs_test.go holds the programs as the oracle.

import (
	"fmt"
	"runtime/debug"
)

// sensorCaps is the sensor's capability set, everywhere it runs: the
// DaemonSet, the Compose sensor and the systemd unit's bounding set.
// DAC_READ_SEARCH lists other users' /proc/<pid>/fd (mode 0500); SYS_PTRACE
// reads the links in it and /proc/<pid>/exe, ns/net.
// TestSensorCapabilitiesOnThisKernel shows both are needed and enough.
var sensorCaps = []string{"DAC_READ_SEARCH", "SYS_PTRACE"}

type problems []string

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

type check struct {
	name string
	fn   func(*bundle, *problems)
}

var checks = []check{
	{"images", checkImages},
	{"compose", checkCompose},
	{"nginx", checkNginx},
	{"k8s", checkK8s},
	{"sensor", checkSensorDaemonSet},
	{"systemd", checkSystemd},
	{"users", checkUsers},
	{"clickhouse", checkClickHouse},
	{"cluster-ddl", checkClusterDDL},
	{"dockerfile", checkDockerfile},
}

// runChecks runs every check; a check that panics on a broken bundle
// reports the panic as its finding.
func runChecks(b *bundle) []string {
	var all []string
	for _, c := range checks {
		var p problems
		func() {
			defer func() {
				if r := recover(); r != nil {
					p.add("check panicked: %v\n%s", r, debug.Stack())
				}
			}()
			c.fn(b, &p)
		}()
		for _, s := range p {
			all = append(all, c.name+": "+s)
		}
	}
	return all
}
