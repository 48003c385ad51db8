package procs

import (
	"cmp"
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
	return annotated(filepath.Join(root, "run/containerd/io.containerd.runtime.v2.task/*", id, "config.json"),
		Meta{Name: "io.kubernetes.cri.container-name", Image: "io.kubernetes.cri.image-name",
			Pod: "io.kubernetes.cri.sandbox-name", PodNamespace: "io.kubernetes.cri.sandbox-namespace"})
}

// annotated reads the first readable OCI config.json matching glob and
// returns the values of its annotations that keys names, field by field.
func annotated(glob string, keys Meta) Meta {
	paths, _ := filepath.Glob(glob)
	for _, p := range paths {
		var c struct{ Annotations map[string]string }
		if !readJSON(p, &c) {
			continue
		}
		a := c.Annotations
		return Meta{Name: a[keys.Name], Image: a[keys.Image], Pod: a[keys.Pod], PodNamespace: a[keys.PodNamespace]}
	}
	return Meta{}
}

// storageContainer is one entry of containers/storage's containers.json,
// the store Podman (and CRI-O) keep their containers in. Metadata is a
// JSON document inside a string; Podman puts the image's name there.
type storageContainer struct {
	ID       string   `json:"id"`
	Names    []string `json:"names"`
	Image    string   `json:"image"` // the image's id
	Metadata string   `json:"metadata"`
}

// storageGlobs are where containers/storage keeps containers.json: root's
// store (one directory per storage driver: overlay-containers,
// vfs-containers, ...), then rootless users' stores under their homes.
var storageGlobs = []string{
	"var/lib/containers/storage/*-containers/containers.json",
	"home/*/.local/share/containers/storage/*-containers/containers.json",
}

// podmanMeta finds container id in containers/storage's containers.json,
// which Podman 4 writes for every container, an image's or a --rootfs one
// alike (its own libpod database, bolt_state.db, is a bolt file that would
// need a lock to read). The name is the one given with --name or made up
// by Podman; the image is its name as pulled, else its id.
func podmanMeta(root, id string) Meta {
	for _, g := range storageGlobs {
		paths, _ := filepath.Glob(filepath.Join(root, g))
		for _, p := range paths {
			var cs []storageContainer
			if !readJSON(p, &cs) {
				continue
			}
			for _, c := range cs {
				if c.ID != id {
					continue
				}
				var md struct {
					ImageName string `json:"image-name"`
					Name      string `json:"name"`
				}
				json.Unmarshal([]byte(c.Metadata), &md) // absent or garbled: the names below still hold
				m := Meta{Name: md.Name, Image: cmp.Or(md.ImageName, c.Image)}
				if len(c.Names) > 0 {
					m.Name = c.Names[0]
				}
				return m
			}
		}
	}
	return Meta{}
}

// crioMeta reads the OCI config.json CRI-O writes per container in
// containers/storage (userdata/config.json, under each storage driver's
// directory). CRI-O copies the container's Kubernetes labels into its
// annotations, and names the image in its own io.kubernetes.cri-o.ImageName.
func crioMeta(root, id string) Meta {
	return annotated(filepath.Join(root, "var/lib/containers/storage/*-containers", id, "userdata/config.json"),
		Meta{Name: "io.kubernetes.container.name", Image: "io.kubernetes.cri-o.ImageName",
			Pod: "io.kubernetes.pod.name", PodNamespace: "io.kubernetes.pod.namespace"})
}

// ContainerMeta reads what runtime's state files under root ("/" on a
// host) say about container id. Only file reads, each bounded: a runtime
// that hangs cannot hold up a heartbeat, and no runtime's API is called.
func ContainerMeta(root, runtime, id string) Meta {
	switch runtime {
	case "docker":
		return dockerMeta(root, id)
	case "containerd":
		return containerdMeta(root, id)
	case "podman":
		return podmanMeta(root, id)
	case "cri-o":
		return crioMeta(root, id)
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
