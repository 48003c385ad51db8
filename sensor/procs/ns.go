package procs

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/prometheus/procfs"
)

// Cgroup is one line of /proc/<pid>/cgroup: the process's place in one
// hierarchy. On a cgroup v2 host there is one line, hierarchy 0 with no
// controllers; a container's runtime shows in Path (".../docker-<id>.scope",
// "/kubepods/.../<id>").
type Cgroup = procfs.Cgroup

// Netns returns the inode that identifies the network namespace of pid
// under procRoot ("/proc" in production), from the link
// <procRoot>/<pid>/ns/net. Two processes share a network namespace exactly
// when their inodes match (on the same host: namespace inodes live on the
// kernel's nsfs and are unique within it).
func Netns(procRoot string, pid int) (uint64, error) {
	p, err := open(procRoot, pid)
	if err != nil {
		return 0, err
	}
	return netns(p)
}

// Cgroups returns the cgroups of pid under procRoot, from
// <procRoot>/<pid>/cgroup.
func Cgroups(procRoot string, pid int) ([]Cgroup, error) {
	p, err := open(procRoot, pid)
	if err != nil {
		return nil, err
	}
	return p.Cgroups()
}

// systemdPath is the cgroup path systemd keeps a process under: its own
// name=systemd hierarchy on a v1 (or hybrid) host, else the unified one.
func systemdPath(cgs []Cgroup) string {
	path := ""
	for _, c := range cgs {
		if slices.Contains(c.Controllers, "name=systemd") {
			return c.Path
		}
		if c.HierarchyID == 0 {
			path = c.Path
		}
	}
	return path
}

// Unit is the systemd unit a process runs in, from its cgroups: the last
// element of its path that names a service or a scope (nginx.service,
// session-3.scope, user@1000.service, docker-<id>.scope), or "" outside
// systemd's tree. systemd keeps the path in the unified hierarchy (the v2
// line, hierarchy 0) or, on a v1 host, in its own name=systemd one.
func Unit(cgs []Cgroup) string {
	path := systemdPath(cgs)
	for path != "" && path != "/" {
		dir, name := filepath.Split(path)
		if strings.HasSuffix(name, ".service") || strings.HasSuffix(name, ".scope") {
			return name
		}
		path = strings.TrimSuffix(dir, "/")
	}
	return ""
}

// Container is the container a process runs in, from its cgroup path, for
// the common runtimes: its id, the runtime ("docker", "containerd",
// "cri-o", "podman") and, under Kubernetes, its pod's UID. All are "" for a
// process of the host. Only the path is read: no runtime is asked.
//
//	docker:     .../docker-<id>.scope, /docker/<id>
//	containerd: .../cri-containerd-<id>.scope, /kubepods/<qos>/pod<uid>/<id>
//	CRI-O:      .../crio-<id>.scope
//	Podman:     .../libpod-<id>.scope, /libpod_parent/libpod-<id>
//
// A runtime's monitor of a container (crio-conmon-<id>, libpod-conmon-<id>)
// is not the container.
func Container(cgs []Cgroup) (id, runtime, podUID string) {
	elems := strings.Split(strings.Trim(systemdPath(cgs), "/"), "/")
	for i, e := range elems {
		if uid, ok := podOf(e); ok {
			podUID = uid
			continue
		}
		name := strings.TrimSuffix(e, ".scope")
		for _, r := range [...]struct{ prefix, runtime string }{
			{"docker-", "docker"}, {"cri-containerd-", "containerd"}, {"crio-", "cri-o"}, {"libpod-", "podman"},
		} {
			if rest, ok := strings.CutPrefix(name, r.prefix); ok && containerID(rest) {
				id, runtime = rest, r.runtime
			}
		}
		if id == "" && i > 0 && containerID(e) {
			switch elems[i-1] {
			case "docker":
				id, runtime = e, "docker"
			default:
				if _, ok := podOf(elems[i-1]); ok {
					id, runtime = e, "containerd" // cgroupfs driver: the CRI's runtime is not in the path
				}
			}
		}
	}
	return id, runtime, podUID
}

// containerID reports whether s looks like a runtime's container id: 64
// lower-case hex digits (docker, containerd, CRI-O and Podman all use them).
func containerID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// podOf reads a pod's UID from a cgroup path element: pod<uid> (cgroupfs)
// or kubepods-<qos>-pod<uid with _ for ->.slice (systemd).
func podOf(e string) (string, bool) {
	name := strings.TrimSuffix(e, ".slice")
	i := strings.LastIndex(name, "pod")
	if i < 0 || (i > 0 && name[i-1] != '-') {
		return "", false
	}
	uid := strings.ReplaceAll(name[i+3:], "_", "-")
	if len(uid) != 36 || strings.Count(uid, "-") != 4 {
		return "", false
	}
	return uid, true
}

func open(procRoot string, pid int) (procfs.Proc, error) {
	fsys, err := procfs.NewFS(procRoot)
	if err != nil {
		return procfs.Proc{}, err
	}
	return fsys.Proc(pid)
}

// netns reads p's network namespace inode with procfs's Namespaces, which
// reads every link of <pid>/ns; the net one must be there. procfs parses
// the inode as 32 bits, which is what the kernel allocates for namespaces
// (proc_inum_ida); a larger one would fail here, leaving Netns 0.
func netns(p procfs.Proc) (uint64, error) {
	nss, err := p.Namespaces()
	if err != nil {
		return 0, err
	}
	ns, ok := nss["net"]
	if !ok || ns.Type != "net" || ns.Inode == 0 {
		return 0, fmt.Errorf("procs: pid %d: no network namespace in %v", p.PID, nss)
	}
	return uint64(ns.Inode), nil
}
