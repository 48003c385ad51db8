package procs

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Meta is what a container runtime's local state files say about one
// container. Every field is "" when the files are missing or garbled: the
// row is still sent, only without these names.
type Meta struct {
	Name, Image, Pod, PodNamespace string
}

// maxStateFile bounds every state file read: the files are small, and a
// huge or endless one must not stall the sensor.
const maxStateFile = 1 << 20

func readJSON(path string, v any) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStateFile+1))
	if err != nil || len(b) > maxStateFile {
		return false
	}
	return json.Unmarshal(b, v) == nil
}

// dockerMeta reads /var/lib/docker/containers/<id>/config.v2.json under
// root; Kubernetes labels, when present, name the pod and the container.
func dockerMeta(root, id string) Meta {
	var c struct {
		Name   string
		Config struct {
			Image  string
			Labels map[string]string
		}
	}
	if !readJSON(filepath.Join(root, "var/lib/docker/containers", id, "config.v2.json"), &c) {
		return Meta{}
	}
	m := Meta{Name: strings.TrimPrefix(c.Name, "/"), Image: c.Config.Image}
	l := c.Config.Labels
	if n := l["io.kubernetes.container.name"]; n != "" {
		m.Name = n
	}
	m.Pod, m.PodNamespace = l["io.kubernetes.pod.name"], l["io.kubernetes.pod.namespace"]
	return m
}

// containerdMeta reads the OCI bundle's config.json that containerd's
// runtime v2 keeps per task, trying each containerd namespace directory
// (k8s.io, moby, default, ...); the CRI plugin's annotations name the
// container, image and pod.
func containerdMeta(root, id string) Meta {
	dirs, _ := filepath.Glob(filepath.Join(root, "run/containerd/io.containerd.runtime.v2.task/*", id, "config.json"))
	for _, p := range dirs {
		var c struct{ Annotations map[string]string }
		if !readJSON(p, &c) {
			continue
		}
		a := c.Annotations
		return Meta{Name: a["io.kubernetes.cri.container-name"], Image: a["io.kubernetes.cri.image-name"],
			Pod: a["io.kubernetes.cri.sandbox-name"], PodNamespace: a["io.kubernetes.cri.sandbox-namespace"]}
	}
	return Meta{}
}

// ContainerMeta reads what runtime's state files under root ("/" on a
// host) say about container id. Only file reads, each bounded: a runtime
// that hangs cannot hold up a heartbeat. CRI-O and Podman keep no file
// read here yet, so their containers have only their id.
func ContainerMeta(root, runtime, id string) Meta {
	switch runtime {
	case "docker":
		return dockerMeta(root, id)
	case "containerd":
		return containerdMeta(root, id)
	}
	return Meta{}
}

// Of returns m's names, or none for a nil m.
func (m *Meta) Of() Meta {
	if m == nil {
		return Meta{}
	}
	return *m
}
