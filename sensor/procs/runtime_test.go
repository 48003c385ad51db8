package procs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDockerMeta(t *testing.T) {
	root := t.TempDir()
	d := filepath.Join(root, "var/lib/docker/containers/abc")
	os.MkdirAll(d, 0o755)
	os.WriteFile(filepath.Join(d, "config.v2.json"), []byte(`{"Name":"/web","Config":{"Image":"nginx:1"}}`), 0o644)
	if m := dockerMeta(root, "abc"); m != (Meta{Name: "web", Image: "nginx:1"}) {
		t.Fatalf("got %+v", m)
	}
	os.WriteFile(filepath.Join(d, "config.v2.json"), []byte(`{garbled`), 0o644)
	if m := dockerMeta(root, "abc"); m != (Meta{}) {
		t.Fatalf("garbled: got %+v", m)
	}
	if m := dockerMeta(root, "missing"); m != (Meta{}) {
		t.Fatalf("missing: got %+v", m)
	}
}

func TestContainerdMeta(t *testing.T) {
	root := t.TempDir()
	d := filepath.Join(root, "run/containerd/io.containerd.runtime.v2.task/k8s.io/abc")
	os.MkdirAll(d, 0o755)
	os.WriteFile(filepath.Join(d, "config.json"), []byte(`{"annotations":{"io.kubernetes.cri.container-name":"app","io.kubernetes.cri.image-name":"img:2","io.kubernetes.cri.sandbox-name":"p1","io.kubernetes.cri.sandbox-namespace":"ns1"}}`), 0o644)
	if m := containerdMeta(root, "abc"); m != (Meta{"app", "img:2", "p1", "ns1"}) {
		t.Fatalf("got %+v", m)
	}
	if m := containerdMeta(root, "missing"); m != (Meta{}) {
		t.Fatalf("missing: got %+v", m)
	}
}

// writeFile makes path's directories and writes body there.
func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Podman's names come from containers/storage's containers.json, in the
// form Podman 4.3 wrote it on a test machine: the name given with --name,
// the image's name from the metadata string (empty for a --rootfs
// container), else the image's id. Rootless stores under a home count too.
func TestPodmanMeta(t *testing.T) {
	root := t.TempDir()
	a, b, c := strings.Repeat("a", 64), strings.Repeat("b", 64), strings.Repeat("c", 64)
	img := strings.Repeat("e", 64)
	writeFile(t, filepath.Join(root, "var/lib/containers/storage/overlay-containers/containers.json"), `[
 {"id":"`+a+`","names":["web"],"image":"`+img+`","layer":"f5","metadata":"{\"image-name\":\"docker.io/library/nginx:1\",\"image-id\":\"`+img+`\",\"name\":\"web\",\"created-at\":1796634810}"},
 {"id":"`+b+`","names":["h5probe"],"image":"","metadata":"{\"image-name\":\"\",\"image-id\":\"\",\"name\":\"h5probe\"}"},
 {"id":"`+c+`","names":["noname-meta"],"image":"`+img+`","metadata":"{garbled"}]`)
	for id, want := range map[string]Meta{
		a: {Name: "web", Image: "docker.io/library/nginx:1"},
		b: {Name: "h5probe"},
		c: {Name: "noname-meta", Image: img},
	} {
		if m := ContainerMeta(root, "podman", id); m != want {
			t.Errorf("%.8s: got %+v, want %+v", id, m, want)
		}
	}
	if m := ContainerMeta(root, "podman", strings.Repeat("d", 64)); m != (Meta{}) {
		t.Errorf("unknown id: got %+v", m)
	}
	d := strings.Repeat("d", 64)
	writeFile(t, filepath.Join(root, "home/ann/.local/share/containers/storage/overlay-containers/containers.json"),
		`[{"id":"`+d+`","names":["mine"],"image":"","metadata":""}]`)
	if m := ContainerMeta(root, "podman", d); m != (Meta{Name: "mine"}) {
		t.Errorf("rootless: got %+v", m)
	}
	// Over the cap the file is not read at all.
	big := `[{"id":"` + a + `","names":["web"],"metadata":"` + strings.Repeat(" ", maxStateFile) + `"}]`
	writeFile(t, filepath.Join(root, "var/lib/containers/storage/overlay-containers/containers.json"), big)
	if m := ContainerMeta(root, "podman", a); m != (Meta{}) {
		t.Errorf("oversized containers.json: got %+v", m)
	}
}

// CRI-O's names come from the annotations of the container's config.json
// in containers/storage: the Kubernetes labels it copies there and its own
// image name.
func TestCrioMeta(t *testing.T) {
	root := t.TempDir()
	id := strings.Repeat("9", 64)
	writeFile(t, filepath.Join(root, "var/lib/containers/storage/overlay-containers", id, "userdata/config.json"), `{"ociVersion":"1.0.2","annotations":{
 "io.container.manager":"cri-o","io.kubernetes.container.name":"coredns","io.kubernetes.pod.name":"coredns-5d78c9869d-x7kq2",
 "io.kubernetes.pod.namespace":"kube-system","io.kubernetes.cri-o.ImageName":"registry.k8s.io/coredns/coredns:v1.10.1",
 "io.kubernetes.cri-o.ContainerName":"k8s_coredns_coredns-5d78c9869d-x7kq2_kube-system_0"}}`)
	want := Meta{Name: "coredns", Image: "registry.k8s.io/coredns/coredns:v1.10.1", Pod: "coredns-5d78c9869d-x7kq2", PodNamespace: "kube-system"}
	if m := ContainerMeta(root, "cri-o", id); m != want {
		t.Errorf("got %+v, want %+v", m, want)
	}
	if m := ContainerMeta(root, "cri-o", strings.Repeat("8", 64)); m != (Meta{}) {
		t.Errorf("missing: got %+v", m)
	}
	writeFile(t, filepath.Join(root, "var/lib/containers/storage/overlay-containers", id, "userdata/config.json"), `{"annotations":`)
	if m := ContainerMeta(root, "cri-o", id); m != (Meta{}) {
		t.Errorf("garbled: got %+v", m)
	}
}

// The runtime's state files are read once a container, not once a process
// (here nginx's master and worker in one Docker container), and forgotten
// with the container's last process.
func TestContainerMetaOncePerContainer(t *testing.T) {
	root := fixture(t)
	id := strings.Repeat("ab", 32)
	for _, pid := range []string{"100", "101"} {
		writeFile(t, filepath.Join(root, pid, "cgroup"), "0::/system.slice/docker-"+id+".scope\n")
	}
	state := t.TempDir()
	writeFile(t, filepath.Join(state, "var/lib/docker/containers", id, "config.v2.json"), `{"Name":"/web-1","Config":{"Image":"nginx:1.27"}}`)
	r := NewResolver(root)
	r.StateRoot = state
	got, st := r.Resolve(fixtureWant)
	for _, inode := range []uint64{2001, 2002} {
		if p := got[inode]; p.ContainerID != id || p.State.Of() != (Meta{Name: "web-1", Image: "nginx:1.27"}) {
			t.Errorf("socket %d: process %d in container %q with %+v, want web-1 nginx:1.27", inode, p.PID, p.ContainerID, p.State.Of())
		}
	}
	if got[1001].State != nil {
		t.Errorf("a host process has runtime state %+v", *got[1001].State)
	}
	if st.StateReads != 1 || len(r.metas) != 1 {
		t.Errorf("two processes of one container: %d state reads, %d cached, want 1 and 1", st.StateReads, len(r.metas))
	}
	for _, pid := range []string{"100", "101"} {
		if err := os.RemoveAll(filepath.Join(root, pid)); err != nil {
			t.Fatal(err)
		}
	}
	if _, st = r.Resolve(fixtureWant); st.StateReads != 0 || len(r.metas) != 0 {
		t.Errorf("after the container's processes exited: %d state reads, %d containers cached, want none", st.StateReads, len(r.metas))
	}
}
