package deploy

// The checks: each reads a bundle and reports what is wrong with it. They
// take the truth from the programs themselves (flag sets, HTTP handlers,
// limits, the schema's migrations), so a deployment file that drifts from
// the code fails here. Each target has a file of its own: compose_test.go,
// k8s_test.go, nginx_test.go, systemd_test.go, clickhouse_test.go,
// dockerfile_test.go; programs_test.go holds the programs as the oracle.

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"

	"github.com/netview/netview/sensor/procs"
)

// sensorCaps is the sensor's capability set, everywhere it runs: the
// DaemonSet, the Compose sensor and the systemd unit's bounding set.
// DAC_READ_SEARCH lists other users' /proc/<pid>/fd (mode 0500); SYS_PTRACE
// reads the links in it and /proc/<pid>/exe, ns/net; SYS_ADMIN lets it
// setns(CLONE_NEWNET) into a named namespace no process is in
// (--sensor.netns-dir), and nothing else of it is used.
// TestSensorCapabilitiesOnThisKernel shows each is needed and all three enough.
var sensorCaps = []string{"DAC_READ_SEARCH", "SYS_ADMIN", "SYS_PTRACE"}

// runtimeStateDirs are the host folders in which sensor/procs/runtime.go
// (ContainerMeta) reads container runtimes' state files, by runtime: only
// these, read-only, at their own path, may a sensor deployment mount
// besides its state and --sensor.netns-dir. inK8s: a Kubernetes node's
// runtime, which the DaemonSet must mount (no node runs Docker since
// dockershim went). TestRuntimeStateDirs holds the list to the code.
var runtimeStateDirs = []struct {
	path, runtime string
	inK8s         bool
}{
	{"/var/lib/docker/containers", "docker", false},                       // <id>/config.v2.json
	{"/run/containerd/io.containerd.runtime.v2.task", "containerd", true}, // <ns>/<id>/config.json
	{"/var/lib/containers/storage", "cri-o", true},                        // *-containers/<id>/userdata/config.json; Podman's *-containers/containers.json
}

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

// TestRuntimeStateDirs holds runtimeStateDirs to sensor/procs: a state file
// laid out as each runtime lays it out, under the folder listed for it and
// nowhere else, is what procs.ContainerMeta reads the container's name
// from. A runtime.go that reads elsewhere fails here, so the deployments
// cannot go on mounting a folder the sensor no longer reads.
func TestRuntimeStateDirs(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	dirs := map[string]string{}
	for _, d := range runtimeStateDirs {
		dirs[d.runtime] = d.path
	}
	for _, c := range []struct {
		runtime, dir, rel, body string
	}{
		{"docker", dirs["docker"], id + "/config.v2.json", `{"Name": "/web"}`},
		{"containerd", dirs["containerd"], "k8s.io/" + id + "/config.json", `{"annotations": {"io.kubernetes.cri.container-name": "web"}}`},
		{"cri-o", dirs["cri-o"], "overlay-containers/" + id + "/userdata/config.json", `{"annotations": {"io.kubernetes.container.name": "web"}}`},
		{"podman", dirs["cri-o"], "overlay-containers/containers.json", `[{"id": "` + id + `", "names": ["web"]}]`},
	} {
		if c.dir == "" {
			t.Errorf("%s: no folder in runtimeStateDirs", c.runtime)
			continue
		}
		root := t.TempDir()
		path := filepath.Join(root, c.dir, c.rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(c.body), 0o644); err != nil {
			t.Fatal(err)
		}
		if m := procs.ContainerMeta(root, c.runtime, id); m.Name != "web" {
			t.Errorf("%s: ContainerMeta does not read %s (under %s): %+v", c.runtime, c.rel, c.dir, m)
		}
	}
}
