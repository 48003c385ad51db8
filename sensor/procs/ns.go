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

// Unit is the systemd unit a process runs in, from its cgroups: the last
// element of its path that names a service or a scope (nginx.service,
// session-3.scope, user@1000.service, docker-<id>.scope), or "" outside
// systemd's tree. systemd keeps the path in the unified hierarchy (the v2
// line, hierarchy 0) or, on a v1 host, in its own name=systemd one.
func Unit(cgs []Cgroup) string {
	path := ""
	for _, c := range cgs {
		if c.HierarchyID == 0 || slices.Contains(c.Controllers, "name=systemd") {
			path = c.Path
			if c.HierarchyID != 0 {
				break // v1: systemd's own hierarchy says it
			}
		}
	}
	for path != "" && path != "/" {
		dir, name := filepath.Split(path)
		if strings.HasSuffix(name, ".service") || strings.HasSuffix(name, ".scope") {
			return name
		}
		path = strings.TrimSuffix(dir, "/")
	}
	return ""
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
