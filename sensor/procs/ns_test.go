package procs

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// The test's own network namespace is the inode of /proc/self/ns/net.
func TestNetnsSelf(t *testing.T) {
	got, err := Netns("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if want := fi.Sys().(*syscall.Stat_t).Ino; got != want {
		t.Errorf("Netns(self) = %d, want %d (stat of /proc/self/ns/net)", got, want)
	}
}

// A child cloned into a new network namespace shows another inode, the one
// its own ns/net link stats to; its cgroups are inherited, so they equal ours.
func TestNetnsChild(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start a process in a new network namespace (needs CAP_SYS_ADMIN): %v", err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	pid := cmd.Process.Pid

	self, err := Netns("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	got, err := Netns("/proc", pid)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid), "ns", "net"))
	if err != nil {
		t.Fatal(err)
	}
	if want := fi.Sys().(*syscall.Stat_t).Ino; got != want {
		t.Errorf("Netns(child) = %d, want %d (stat of its ns/net)", got, want)
	}
	if got == self {
		t.Errorf("child in a new network namespace has our inode %d", got)
	}

	// The Resolver's cached metadata carries the same inode.
	r := NewResolver("/proc")
	var found bool
	for _, p := range r.Processes() {
		if int(p.PID) == pid {
			found = true
			if p.Netns != got {
				t.Errorf("Processes: child's Netns = %d, want %d", p.Netns, got)
			}
		}
	}
	if !found {
		t.Errorf("Processes does not list the child %d", pid)
	}

	mine, err := Cgroups("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	its, err := Cgroups("/proc", pid)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(mine, its, cgroupEqual) {
		t.Errorf("child's cgroups %+v, want ours %+v", its, mine)
	}
}

func TestNetnsGone(t *testing.T) {
	if _, err := Netns(t.TempDir(), 7); err == nil {
		t.Error("Netns of a missing pid: no error")
	}
	if _, err := Cgroups(t.TempDir(), 7); err == nil {
		t.Error("Cgroups of a missing pid: no error")
	}
}

// The test's own cgroups are the lines of /proc/self/cgroup.
func TestCgroupsSelf(t *testing.T) {
	got, err := Cgroups("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(got) != len(lines) || len(got) == 0 {
		t.Fatalf("Cgroups(self) = %+v, want the %d lines %q", got, len(lines), lines)
	}
	for i, line := range lines {
		f := strings.SplitN(line, ":", 3)
		var ctl []string
		if f[1] != "" {
			ctl = strings.Split(f[1], ",")
		}
		if g := got[i]; strconv.Itoa(g.HierarchyID) != f[0] || !slices.Equal(g.Controllers, ctl) || g.Path != f[2] {
			t.Errorf("line %q read as %+v", line, g)
		}
	}
}

// A container's cgroup lines as a runtime writes them, v1 and v2.
func TestCgroupsFixture(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "7"), 0o755)
	text := "12:cpu,cpuacct:/kubepods/besteffort/pod1f2e/0123abcd\n" +
		"1:name=systemd:/docker/0123abcd\n" +
		"0::/system.slice/docker-0123abcd.scope\n"
	os.WriteFile(filepath.Join(root, "7", "cgroup"), []byte(text), 0o644)
	got, err := Cgroups(root, 7)
	if err != nil {
		t.Fatal(err)
	}
	want := []Cgroup{
		{HierarchyID: 12, Controllers: []string{"cpu", "cpuacct"}, Path: "/kubepods/besteffort/pod1f2e/0123abcd"},
		{HierarchyID: 1, Controllers: []string{"name=systemd"}, Path: "/docker/0123abcd"},
		{HierarchyID: 0, Path: "/system.slice/docker-0123abcd.scope"},
	}
	if !slices.EqualFunc(got, want, cgroupEqual) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func cgroupEqual(a, b Cgroup) bool {
	return a.HierarchyID == b.HierarchyID && slices.Equal(a.Controllers, b.Controllers) && a.Path == b.Path
}

// Unit finds the service or scope a cgroup path ends in, in the unified
// hierarchy or, on a v1 host, in systemd's own.
func TestUnit(t *testing.T) {
	v2 := func(path string) []Cgroup { return []Cgroup{{HierarchyID: 0, Path: path}} }
	for _, c := range []struct {
		cgs  []Cgroup
		want string
	}{
		{v2("/system.slice/nginx.service"), "nginx.service"},
		{v2("/user.slice/user-1000.slice/session-3.scope"), "session-3.scope"},
		{v2("/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-firefox-2210.scope"), "app-gnome-firefox-2210.scope"},
		{v2("/system.slice/docker-4f1c2a.scope"), "docker-4f1c2a.scope"},
		{v2("/system.slice/containerd.service/kubepods-burstable-pod1.slice:cri-containerd:ab12"), "containerd.service"},
		{v2("/kubepods/besteffort/pod7d2c/4f1c2a"), ""},
		{v2("/"), ""},
		{v2(""), ""},
		{nil, ""},
		// v1: the name=systemd hierarchy, whatever the unified line says.
		{[]Cgroup{{HierarchyID: 9, Controllers: []string{"name=systemd"}, Path: "/system.slice/sshd.service"},
			{HierarchyID: 4, Controllers: []string{"memory"}, Path: "/other.service"}, {HierarchyID: 0, Path: "/"}}, "sshd.service"},
		{[]Cgroup{{HierarchyID: 4, Controllers: []string{"memory"}, Path: "/other.service"}}, ""},
	} {
		if got := Unit(c.cgs); got != c.want {
			t.Errorf("Unit(%+v) = %q, want %q", c.cgs, got, c.want)
		}
	}
}

// inCgroup starts a real process in a new cgroup named name, in systemd's
// v1 hierarchy on a hybrid host or else the unified one, and returns its
// pid; the test skips where cgroups cannot be made (not root).
func inCgroup(t *testing.T, name string) int {
	t.Helper()
	root := "/sys/fs/cgroup/systemd" // systemd's v1 hierarchy on a hybrid host
	if _, err := os.Stat(root + "/cgroup.procs"); err != nil {
		root = "/sys/fs/cgroup" // unified
	}
	dir := filepath.Join(root, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot make a cgroup (needs root and a writable cgroup hierarchy): %v", err)
	}
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		os.Remove(dir)
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); os.Remove(dir) })
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		t.Skipf("cannot move a process into %s: %v", dir, err)
	}
	return cmd.Process.Pid
}

// resolved is the resolver's Process of pid, as the heartbeat reads it.
func resolved(t *testing.T, pid int) Process { t.Helper(); return resolvedIn(t, "", pid) }

// resolvedIn is resolved with the runtimes' state files read under state.
func resolvedIn(t *testing.T, state string, pid int) Process {
	t.Helper()
	r := NewResolver("/proc")
	r.StateRoot = state
	for _, p := range r.Processes() {
		if p.PID == uint32(pid) {
			return p
		}
	}
	t.Fatalf("the resolver does not list process %d", pid)
	return Process{}
}

// A real process moved into a cgroup named like a service shows that unit,
// through the resolver as the heartbeat reads it.
func TestUnitLive(t *testing.T) {
	unit := "netview-unit-test-" + strconv.Itoa(os.Getpid()) + ".service"
	pid := inCgroup(t, unit)
	cgs, err := Cgroups("/proc", pid)
	if err != nil {
		t.Fatal(err)
	}
	if got := Unit(cgs); got != unit {
		t.Errorf("Unit of the child = %q (cgroups %+v), want %q", got, cgs, unit)
	}
	if p := resolved(t, pid); p.Unit != unit {
		t.Errorf("the resolver's process %d has unit %q, want %q", pid, p.Unit, unit)
	}
}

// Container reads the id, runtime and pod of the common runtimes' cgroup
// paths, and nothing from a host process's.
func TestContainer(t *testing.T) {
	id := strings.Repeat("4f1c", 16)
	uid := "7d2c1e0a-3b4f-4c5d-8e9f-0a1b2c3d4e5f"
	v2 := func(path string) []Cgroup { return []Cgroup{{HierarchyID: 0, Path: path}} }
	for _, c := range []struct {
		cgs                 []Cgroup
		id, runtime, podUID string
	}{
		{v2("/system.slice/docker-" + id + ".scope"), id, "docker", ""},
		{v2("/docker/" + id), id, "docker", ""},
		{v2("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice/cri-containerd-" + id + ".scope"), id, "containerd", uid},
		{v2("/kubepods/burstable/pod" + uid + "/" + id), id, "containerd", uid},
		{v2("/kubepods.slice/kubepods-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice/crio-" + id + ".scope"), id, "cri-o", uid},
		{v2("/kubepods.slice/kubepods-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice/crio-conmon-" + id + ".scope"), "", "", uid},
		{v2("/machine.slice/libpod-" + id + ".scope"), id, "podman", ""},
		{v2("/machine.slice/libpod-conmon-" + id + ".scope"), "", "", ""},
		{v2("/libpod_parent/libpod-" + id), id, "podman", ""},
		{v2("/system.slice/nginx.service"), "", "", ""},
		{v2("/system.slice/docker-" + id[:12] + ".scope"), "", "", ""}, // not a full id
		{v2("/"), "", "", ""},
		{[]Cgroup{{HierarchyID: 9, Controllers: []string{"name=systemd"}, Path: "/docker/" + id}, {HierarchyID: 0, Path: "/"}}, id, "docker", ""},
	} {
		gotID, gotRT, gotPod := Container(c.cgs)
		if gotID != c.id || gotRT != c.runtime || gotPod != c.podUID {
			t.Errorf("Container(%s) = %q %q %q, want %q %q %q", c.cgs[0].Path, gotID, gotRT, gotPod, c.id, c.runtime, c.podUID)
		}
	}
}

// A real process in a cgroup named as Docker names a container's is
// attributed to that container through the resolver.
func TestContainerLive(t *testing.T) {
	id := strings.Repeat("0"+strconv.Itoa(os.Getpid()%10), 32)
	pid := inCgroup(t, "docker-"+id+".scope")
	// Docker's state file for that id, under a root of the test's own.
	state := t.TempDir()
	dir := filepath.Join(state, "var/lib/docker/containers", id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.v2.json"), []byte(`{"Name":"/web-1","Config":{"Image":"nginx:1.27"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	p := resolvedIn(t, state, pid)
	if p.ContainerID != id || p.Runtime != "docker" {
		t.Errorf("process %d: container %q runtime %q, want %q docker", p.PID, p.ContainerID, p.Runtime, id)
	}
	if p.State.Of() != (Meta{Name: "web-1", Image: "nginx:1.27"}) {
		t.Errorf("process %d: runtime state %+v, want web-1 and nginx:1.27 from config.v2.json", p.PID, p.State.Of())
	}
}
