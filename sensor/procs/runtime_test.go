package procs

import (
	"os"
	"path/filepath"
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
