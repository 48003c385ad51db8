package deploy

// Kubernetes: the manifests of deploy/k8s, read with sigs.k8s.io/yaml (YAML
// 1.1, as the API server reads it) into the k8s.io/api types, and checked
// against the programs; TestK8sSchemas adds the API's OpenAPI schemas when
// node and the npm package kubernetes-models are there.

import (
	"bufio"
	"bytes"
	"io"

	"flag"
	"fmt"
	"maps"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// k8sTypes are the kinds the manifests hold: their API version and the
// k8s.io/api type a document of the kind decodes into.
var k8sTypes = map[string]struct {
	apiVersion string
	new        func() any
}{
	"Namespace":               {"v1", func() any { return &corev1.Namespace{} }},
	"ConfigMap":               {"v1", func() any { return &corev1.ConfigMap{} }},
	"Secret":                  {"v1", func() any { return &corev1.Secret{} }},
	"Service":                 {"v1", func() any { return &corev1.Service{} }},
	"Deployment":              {"apps/v1", func() any { return &appsv1.Deployment{} }},
	"DaemonSet":               {"apps/v1", func() any { return &appsv1.DaemonSet{} }},
	"StatefulSet":             {"apps/v1", func() any { return &appsv1.StatefulSet{} }},
	"HorizontalPodAutoscaler": {"autoscaling/v2", func() any { return &autoscalingv2.HorizontalPodAutoscaler{} }},
	"PodDisruptionBudget":     {"policy/v1", func() any { return &policyv1.PodDisruptionBudget{} }},
}

// k8sObject is one manifest document: its type and metadata, and the
// object itself (a *corev1.Service, *appsv1.Deployment... of k8sTypes).
type k8sObject struct {
	metav1.TypeMeta
	metav1.ObjectMeta
	obj  any
	file string
}

func (o *k8sObject) String() string {
	return fmt.Sprintf("%s %s/%s (%s)", o.Kind, o.Namespace, o.Name, o.file)
}

// kustomization is the part of k8s/kustomization.yaml the checks read
// (k8s.io/api has no type for it; kustomize's own module is not kept).
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
}

// readK8s reads every document of a manifest file into its k8s.io/api
// type as the API server does: YAML to JSON with sigs.k8s.io/yaml, JSON to
// the type with sigs.k8s.io/json (field names case-sensitive, unlike
// encoding/json). Duplicate keys, fields the type does not have and values
// of the wrong type are problems; an object with unknown fields is still
// decoded (without them), so the other checks still run on it.
func readK8s(rel string, src []byte) (objs []*k8sObject, kust *kustomization, probs []string) {
	bad := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(src)))
	for i := 1; ; i++ {
		doc, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			bad("%s: %v", rel, err)
			break
		}
		js, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			bad("%s document %d: %v", rel, i, err)
			continue
		}
		if s := string(bytes.TrimSpace(js)); s == "null" || s == "" {
			continue
		}
		var top struct {
			metav1.TypeMeta `json:",inline"`
			Metadata        metav1.ObjectMeta `json:"metadata"`
		}
		if err := kjson.UnmarshalCaseSensitivePreserveInts(js, &top); err != nil {
			bad("%s document %d: %v", rel, i, err)
			continue
		}
		var obj any
		if top.Kind == "Kustomization" {
			kust = &kustomization{}
			obj = kust
		} else if t, ok := k8sTypes[top.Kind]; ok {
			obj = t.new()
		} else {
			bad("%s document %d: kind %q (%s) is none the checks know", rel, i, top.Kind, top.APIVersion)
			continue
		}
		strict, err := kjson.UnmarshalStrict(js, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
		if err != nil {
			bad("%s document %d (%s %s): %v", rel, i, top.Kind, top.Metadata.Name, err)
			continue
		}
		for _, e := range strict {
			bad("%s document %d (%s %s): %v", rel, i, top.Kind, top.Metadata.Name, e)
		}
		if top.Kind != "Kustomization" {
			objs = append(objs, &k8sObject{TypeMeta: top.TypeMeta, ObjectMeta: top.Metadata, obj: obj, file: rel})
		}
	}
	return objs, kust, probs
}

// objects returns the Kubernetes objects of a kind.
func (b *bundle) objects(kind string) []*k8sObject {
	var out []*k8sObject
	for _, o := range b.k8s {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

func (b *bundle) object(kind, namespace, name string) *k8sObject {
	for _, o := range b.k8s {
		if o.Kind == kind && o.Namespace == namespace && o.Name == name {
			return o
		}
	}
	return nil
}

// secret is a Secret of secret.example.yaml.
func (b *bundle) secret(namespace, name string) *corev1.Secret {
	for _, o := range b.secrets {
		if s, ok := o.obj.(*corev1.Secret); ok && o.Namespace == namespace && o.Name == name {
			return s
		}
	}
	return nil
}

func (b *bundle) configMap(namespace, name string) *corev1.ConfigMap {
	if o := b.object("ConfigMap", namespace, name); o != nil {
		cm, _ := o.obj.(*corev1.ConfigMap)
		return cm
	}
	return nil
}

// podTemplate is the pod template of a Deployment, DaemonSet or
// StatefulSet; nil for other kinds.
func podTemplate(o *k8sObject) *corev1.PodTemplateSpec {
	switch w := o.obj.(type) {
	case *appsv1.Deployment:
		return &w.Spec.Template
	case *appsv1.DaemonSet:
		return &w.Spec.Template
	case *appsv1.StatefulSet:
		return &w.Spec.Template
	}
	return nil
}

// capNames are capabilities as text.
func capNames(cs []corev1.Capability) []string {
	var out []string
	for _, c := range cs {
		out = append(out, string(c))
	}
	return out
}

// hasQuantity reports whether a resource list sets name.
func hasQuantity(rl corev1.ResourceList, name corev1.ResourceName) bool {
	_, ok := rl[name]
	return ok
}

// containerEnv is what a container's $(VAR) references can expand to:
// its env values, keys of the Secrets (secret.example.yaml) and
// ConfigMaps it takes them from.
func (b *bundle) containerEnv(ns string, c *corev1.Container) (map[string]string, []string) {
	env := map[string]string{}
	var probs []string
	for _, ef := range c.EnvFrom {
		kind, name, why := "ConfigMap", "", "does not exist"
		switch {
		case ef.ConfigMapRef != nil:
			name = ef.ConfigMapRef.Name
		case ef.SecretRef != nil:
			kind, name, why = "Secret", ef.SecretRef.Name, "is not in secret.example.yaml"
		default:
			continue
		}
		data, ok := b.envData(kind, ns, name)
		if !ok {
			probs = append(probs, fmt.Sprintf("container %s: envFrom %s %s/%s %s", c.Name, kind, ns, name, why))
			continue
		}
		maps.Copy(env, data)
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			r := e.ValueFrom.SecretKeyRef
			data, _ := b.envData("Secret", ns, r.Name)
			env[e.Name] = keyRef(&probs, c.Name, e.Name, "Secret "+ns+"/"+r.Name, r.Key, data, "which secret.example.yaml does not have")
		case e.ValueFrom.ConfigMapKeyRef != nil:
			r := e.ValueFrom.ConfigMapKeyRef
			data, _ := b.envData("ConfigMap", ns, r.Name)
			env[e.Name] = keyRef(&probs, c.Name, e.Name, "ConfigMap "+ns+"/"+r.Name, r.Key, data, "which does not exist")
		}
	}
	return env, probs
}

// envData is the data of the ConfigMap or Secret (kind) ns/name a
// container takes env from, and whether there is one.
func (b *bundle) envData(kind, ns, name string) (map[string]string, bool) {
	if kind == "Secret" {
		if s := b.secret(ns, name); s != nil {
			return s.StringData, true
		}
	} else if cm := b.configMap(ns, name); cm != nil {
		return cm.Data, true
	}
	return nil, false
}

// keyRef is the value of an env entry that reads key of object (data); a
// key it lacks is a problem, named with why.
func keyRef(probs *[]string, container, name, object, key string, data map[string]string, why string) string {
	v, ok := data[key]
	if !ok {
		*probs = append(*probs, fmt.Sprintf("container %s: env %s reads key %q of %s, %s", container, name, key, object, why))
	}
	return v
}

// expandArgs expands Kubernetes' $(VAR) in args.
func expandArgs(args []string, env map[string]string) ([]string, []string) {
	var missing []string
	out := make([]string, len(args))
	for i, a := range args {
		var s strings.Builder
		for {
			j := strings.Index(a, "$(")
			if j < 0 {
				s.WriteString(a)
				break
			}
			k := strings.Index(a[j:], ")")
			if k < 0 {
				s.WriteString(a)
				break
			}
			name := a[j+2 : j+k]
			v, ok := env[name]
			if !ok {
				missing = append(missing, name)
			}
			s.WriteString(a[:j])
			s.WriteString(v)
			a = a[j+k+1:]
		}
		out[i] = s.String()
	}
	return out, missing
}

func checkK8s(b *bundle, p *problems) {
	namespaces := map[string]*k8sObject{}
	for _, o := range b.objects("Namespace") {
		namespaces[o.Name] = o
	}
	for _, o := range append(append([]*k8sObject{}, b.k8s...), b.secrets...) {
		if o.APIVersion == "" || o.Kind == "" || o.Name == "" {
			p.add("%s: missing apiVersion, kind or metadata.name", o)
		}
		if t, ok := k8sTypes[o.Kind]; ok && o.APIVersion != t.apiVersion {
			p.add("%s: apiVersion %s, want %s", o, o.APIVersion, t.apiVersion)
		}
		if o.Kind != "Namespace" && namespaces[o.Namespace] == nil {
			p.add("%s: namespace %q is not created by the manifests", o, o.Namespace)
		}
	}
	// kustomization.yaml lists every manifest but the secret example.
	files, _ := filepath.Glob(filepath.Join(b.dir, "k8s", "*.yaml"))
	var want []string
	for _, f := range files {
		if base := filepath.Base(f); base != "kustomization.yaml" && base != "secret.example.yaml" {
			want = append(want, base)
		}
	}
	if !sameSet(want, b.kustomize) {
		p.add("k8s/kustomization.yaml resources %v, want %v", b.kustomize, want)
	}

	deployments := map[string]bool{}
	for _, o := range b.objects("Deployment") {
		deployments[o.Namespace+"/"+o.Name] = true
		checkDeployment(b, p, o)
	}
	for _, prog := range []program{progIngest, progQuery} {
		found := false
		for _, o := range b.objects("Deployment") {
			for _, c := range podTemplate(o).Spec.Containers {
				if q, ok := imageProgram(c.Image); ok && q == prog {
					found = true
				}
			}
		}
		if !found {
			p.add("no Deployment runs %s", prog)
		}
	}

	// Services select pods and reach their ports.
	for _, o := range b.objects("Service") {
		s := o.obj.(*corev1.Service).Spec
		pod := b.selectPods(o.Namespace, s.Selector)
		if pod == nil {
			p.add("%s: selector %v matches no pod template", o, s.Selector)
			continue
		}
		for _, sp := range s.Ports {
			if target := servicePortTarget(sp); !podHasPort(pod, target) {
				p.add("%s: port %d targets %q, which no container of its pods has", o, sp.Port, target.String())
			}
		}
	}

	// HPAs scale Deployments that exist and can be measured.
	scaled := map[string]bool{}
	for _, o := range b.objects("HorizontalPodAutoscaler") {
		h := o.obj.(*autoscalingv2.HorizontalPodAutoscaler).Spec
		ref := h.ScaleTargetRef
		target := b.object(ref.Kind, o.Namespace, ref.Name)
		if ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" || target == nil {
			p.add("%s: scaleTargetRef %s %s/%s is not a Deployment of the manifests", o, ref.APIVersion, ref.Kind, ref.Name)
			continue
		}
		scaled[o.Namespace+"/"+ref.Name] = true
		if h.MinReplicas == nil || *h.MinReplicas < 2 || h.MaxReplicas < *h.MinReplicas {
			p.add("%s: want minReplicas at least 2 (no single node) and maxReplicas above it", o)
		}
		d := target.obj.(*appsv1.Deployment)
		if d.Spec.Replicas != nil {
			p.add("%s sets replicas, which fights its HorizontalPodAutoscaler", target)
		}
		if len(h.Metrics) == 0 {
			p.add("%s: no metrics", o)
		}
		for _, m := range h.Metrics {
			if m.Type != "Resource" || m.Resource == nil {
				continue
			}
			for _, c := range d.Spec.Template.Spec.Containers {
				if !hasQuantity(c.Resources.Requests, m.Resource.Name) && m.Resource.Target.Type == autoscalingv2.UtilizationMetricType {
					p.add("%s: scales on %s utilization, but container %s of %s requests no %s", o, m.Resource.Name, c.Name, target, m.Resource.Name)
				}
			}
		}
	}
	for d := range deployments {
		if !scaled[d] {
			p.add("Deployment %s has no HorizontalPodAutoscaler", d)
		}
	}

	// Pod Security: Deployments live in "restricted" namespaces; the
	// privileged namespace holds the sensor alone.
	for _, kind := range []string{"Deployment", "DaemonSet"} {
		for _, o := range b.objects(kind) {
			ns := namespaces[o.Namespace]
			if ns == nil {
				continue
			}
			level := ns.Labels["pod-security.kubernetes.io/enforce"]
			if kind == "Deployment" && level != "restricted" {
				p.add("%s: its namespace %s enforces Pod Security %q, want restricted", o, ns.Name, level)
			}
			if kind == "DaemonSet" && level == "privileged" {
				for _, other := range b.objects("Deployment") {
					if other.Namespace == ns.Name {
						p.add("%s shares the privileged namespace %s with the sensor", other, ns.Name)
					}
				}
			}
		}
	}
}

// selectPods returns the pod template a selector picks in ns.
func (b *bundle) selectPods(ns string, sel map[string]string) *corev1.PodSpec {
	if len(sel) == 0 {
		return nil
	}
	for _, kind := range []string{"Deployment", "DaemonSet"} {
		for _, o := range b.objects(kind) {
			if o.Namespace != ns {
				continue
			}
			tpl := podTemplate(o)
			match := true
			for k, v := range sel {
				match = match && tpl.Labels[k] == v
			}
			if match {
				return &tpl.Spec
			}
		}
	}
	return nil
}

// servicePortTarget is the container port a Service port sends to: its
// targetPort, or (unset) its port, as Kubernetes defaults it.
func servicePortTarget(sp corev1.ServicePort) intstr.IntOrString {
	if sp.TargetPort == (intstr.IntOrString{}) {
		return intstr.FromInt32(sp.Port)
	}
	return sp.TargetPort
}

func podHasPort(pod *corev1.PodSpec, port intstr.IntOrString) bool {
	for _, c := range pod.Containers {
		if containerPort(&c, port) != 0 {
			return true
		}
	}
	return false
}

// containerPort resolves a port given by name or number to the number,
// or 0 if the container does not have it.
func containerPort(c *corev1.Container, port intstr.IntOrString) int {
	for _, cp := range c.Ports {
		if port.String() == cp.Name || port.String() == strconv.Itoa(int(cp.ContainerPort)) {
			return int(cp.ContainerPort)
		}
	}
	return 0
}

func checkDeployment(b *bundle, p *problems, o *k8sObject) {
	w := o.obj.(*appsv1.Deployment)
	ns := o.Namespace
	pod := w.Spec.Template.Spec
	if w.Spec.Selector == nil {
		p.add("%s: no selector", o)
		return
	}
	for k, v := range w.Spec.Selector.MatchLabels {
		if w.Spec.Template.Labels[k] != v {
			p.add("%s: selector %s=%s does not match its pod template", o, k, v)
		}
	}
	if pod.HostNetwork || pod.HostPID || pod.HostIPC {
		p.add("%s: host namespaces; ingest and query need none", o)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		p.add("%s: mounts a service account token it never uses", o)
	}
	for _, v := range pod.Volumes {
		if v.HostPath != nil {
			p.add("%s: hostPath volume %s", o, v.Name)
		}
	}
	for i := range pod.Containers {
		c := &pod.Containers[i]
		where := fmt.Sprintf("%s container %s", o, c.Name)
		prog, ok := imageProgram(c.Image)
		if !ok {
			p.add("%s: image %s is not a Netview program", where, c.Image)
			continue
		}
		env, probs := b.containerEnv(ns, c)
		for _, s := range probs {
			p.add("%s: %s", o, s)
		}
		args, missing := expandArgs(c.Args, env)
		if len(missing) > 0 {
			p.add("%s: args use $(%s), which its environment does not define", where, strings.Join(missing, "), $("))
		}
		if len(c.Command) > 0 {
			p.add("%s: command overrides the image's entrypoint", where)
		}
		fs, err := parseFlags(prog, args)
		if err != nil {
			p.add("%s: %v", where, err)
			continue
		}
		scheme := b.checkK8sServing(p, where, ns, &w.Spec.Template, c, prog, args, fs)
		checkProbeScheme(p, where, "readinessProbe", c.ReadinessProbe, scheme)
		checkProbeScheme(p, where, "livenessProbe", c.LivenessProbe, scheme)
		checkProbeScheme(p, where, "startupProbe", c.StartupProbe, scheme)
		addrFlag := strings.TrimPrefix(string(prog), "netview-") + ".addr"
		addr := val(fs, addrFlag)
		port, _ := strconv.Atoi(addrPort(addr))
		if !reachableAddr(addr) {
			p.add("%s: --%s=%s is loopback; the Service could not reach it", where, addrFlag, addr)
		}
		if addrPort(addr) != addrPort(flagDefault(prog, addrFlag)) {
			p.add("%s: listens on %s, not %s's port %s", where, addrPort(addr), prog, addrPort(flagDefault(prog, addrFlag)))
		}
		if len(c.Ports) != 1 || int(c.Ports[0].ContainerPort) != port {
			p.add("%s: containerPort %v, want the one the program listens on, %d", where, c.Ports, port)
		}
		b.checkDSN(p, where, val(fs, "store.dsn"), "")
		if val(fs, "store.cluster") == "" {
			p.add("%s: no --store.cluster, but deploy/clickhouse holds the cluster schema", where)
		} else if b.chConfig["remote_servers.xml"].child("remote_servers", val(fs, "store.cluster")) == nil {
			p.add("%s: --store.cluster=%s is not a cluster of clickhouse/config.d/remote_servers.xml", where, val(fs, "store.cluster"))
		}
		// Probes on the program's real routes.
		rp, lp := c.ReadinessProbe, c.LivenessProbe
		switch {
		case rp == nil:
			p.add("%s: no readinessProbe", where)
		case rp.HTTPGet == nil:
			p.add("%s: readinessProbe is not an HTTP GET of the health route", where)
		default:
			if containerPort(c, rp.HTTPGet.Port) != port {
				p.add("%s: readinessProbe port %q is not the port it listens on", where, rp.HTTPGet.Port.String())
			}
			checkReadinessPath(p, where+" readinessProbe", prog, rp.HTTPGet.Path)
		}
		for _, pr := range []struct {
			name string
			p    *corev1.Probe
		}{{"livenessProbe", lp}, {"startupProbe", c.StartupProbe}} {
			switch {
			case pr.p == nil && pr.name == "livenessProbe":
				p.add("%s: no livenessProbe", where)
			case pr.p == nil:
			case pr.p.HTTPGet != nil:
				if containerPort(c, pr.p.HTTPGet.Port) != port {
					p.add("%s: %s port %q is not the port it listens on", where, pr.name, pr.p.HTTPGet.Port.String())
				}
				checkLivenessPath(p, where+" "+pr.name, prog, pr.p.HTTPGet.Path)
			case pr.p.TCPSocket != nil:
				if containerPort(c, pr.p.TCPSocket.Port) != port {
					p.add("%s: %s port %q is not the port it listens on", where, pr.name, pr.p.TCPSocket.Port.String())
				}
			default:
				p.add("%s: %s is neither an HTTP GET nor a TCP check (the image has nothing else to run)", where, pr.name)
			}
		}
		if !hasQuantity(c.Resources.Requests, corev1.ResourceCPU) || !hasQuantity(c.Resources.Requests, corev1.ResourceMemory) || !hasQuantity(c.Resources.Limits, corev1.ResourceMemory) {
			p.add("%s: want cpu and memory requests and a memory limit", where)
		}
		// Time to finish what was accepted.
		var need time.Duration
		if prog == progIngest {
			need = durFlag(fs, "ingest.ack-timeout") + 10*time.Second
		} else {
			need = durFlag(fs, "query.timeout") + 5*time.Second
		}
		if g := pod.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second < need {
			p.add("%s: terminationGracePeriodSeconds %v is under the %v the program may take to finish on SIGTERM", o, g, need)
		}
		// Restricted pod security.
		sc := c.SecurityContext
		psc := pod.SecurityContext
		nonRoot := (sc != nil && sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
		seccomp := (sc != nil && sc.SeccompProfile != nil && sc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault) || (psc != nil && psc.SeccompProfile != nil && psc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault)
		if !nonRoot || !seccomp || sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.Capabilities == nil ||
			!sameSet(capNames(sc.Capabilities.Drop), []string{"ALL"}) || len(sc.Capabilities.Add) > 0 || (sc.Privileged != nil && *sc.Privileged) {
			p.add("%s: want runAsNonRoot, RuntimeDefault seccomp, no privilege escalation, a read-only root and every capability dropped", where)
		}
		// Token files come from mounted Secrets.
		for _, f := range tokenFileFlags {
			if fs.Lookup(f) == nil || val(fs, f) == "" {
				continue
			}
			if err := b.secretFile(ns, &pod, c, val(fs, f)); err != nil {
				p.add("%s: --%s: %v", where, f, err)
			}
		}
	}
}

// secretFile checks that path is a key of a Secret (in secret.example.yaml)
// mounted into the container.
func (b *bundle) secretFile(ns string, pod *corev1.PodSpec, c *corev1.Container, path string) error {
	_, err := b.secretOf(ns, pod, c, path)
	return err
}

// secretOf returns the Secret whose key path is, mounted into the container.
func (b *bundle) secretOf(ns string, pod *corev1.PodSpec, c *corev1.Container, path string) (*corev1.Secret, error) {
	for _, m := range c.VolumeMounts {
		rel, err := filepath.Rel(m.MountPath, path)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name != m.Name || v.Secret == nil {
				continue
			}
			s := b.secret(ns, v.Secret.SecretName)
			if s == nil {
				return nil, fmt.Errorf("Secret %s/%s is not in secret.example.yaml", ns, v.Secret.SecretName)
			}
			for _, it := range v.Secret.Items {
				if it.Path == rel {
					if _, ok := s.StringData[it.Key]; !ok {
						return nil, fmt.Errorf("Secret %s/%s has no key %q", ns, v.Secret.SecretName, it.Key)
					}
					return s, nil
				}
			}
			if len(v.Secret.Items) == 0 {
				if _, ok := s.StringData[rel]; ok {
					return s, nil
				}
			}
		}
	}
	return nil, fmt.Errorf("%s is not a file of a Secret mounted into the container", path)
}

// checkK8sServing: ingest and query serve TLS in Kubernetes, from a
// kubernetes.io/tls Secret mounted into the container, and the kubelet and
// Prometheus speak it. It returns the probes' scheme.
func (b *bundle) checkK8sServing(p *problems, where, ns string, tpl *corev1.PodTemplateSpec, c *corev1.Container, prog program, args []string, fs *flag.FlagSet) string {
	tls, err := serverTLS(prog, args)
	if err != nil {
		p.add("%s: %s would refuse to start: %v", where, prog, err)
		return "HTTPS"
	}
	scheme := "HTTPS"
	if tls.Plain {
		p.add("%s: --%s.plain-http: the pod network is shared with every workload of the cluster; serve TLS from a kubernetes.io/tls Secret", where, strings.TrimPrefix(string(prog), "netview-"))
		scheme = "HTTP"
	} else {
		for _, f := range []string{tls.CertFile, tls.KeyFile} {
			s, err := b.secretOf(ns, &tpl.Spec, c, f)
			if err != nil {
				p.add("%s: TLS file %s: %v", where, f, err)
			} else if s.Type != corev1.SecretTypeTLS {
				p.add("%s: TLS file %s is from Secret %s of type %q, not kubernetes.io/tls (what cert-manager issues and renews)", where, f, s.Name, s.Type)
			}
		}
		if a := tpl.Annotations; a["prometheus.io/scrape"] == "true" && a["prometheus.io/scheme"] != "https" {
			p.add("%s: Prometheus would scrape it over http (annotation prometheus.io/scheme %q), but it serves TLS", where, a["prometheus.io/scheme"])
		}
	}
	switch prog {
	case progIngest:
		if val(fs, "ingest.shared-tokens") == "true" {
			p.add("%s: --ingest.shared-tokens lets whoever holds a static token write as every sensor; sensors enroll for keys of their own instead", where)
		}
		if _, err := parsePrefixList(val(fs, "ingest.trusted-proxies")); err != nil {
			p.add("%s: --ingest.trusted-proxies: %v", where, err)
		}
	case progQuery:
		if val(fs, "query.admin.token-file") == "" {
			p.add("%s: no --query.admin.token-file: nobody could issue or revoke API tokens, enrollment secrets and sensor keys", where)
		}
	}
	return scheme
}

// checkProbeScheme: the kubelet speaks what the program serves.
func checkProbeScheme(p *problems, where, name string, pr *corev1.Probe, want string) {
	if pr == nil || pr.HTTPGet == nil {
		return
	}
	got := string(pr.HTTPGet.Scheme)
	if got == "" {
		got = "HTTP"
	}
	if got != want {
		p.add("%s: %s scheme %s, but the program speaks %s", where, name, got, want)
	}
}

func parsePrefixList(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(list, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		pr, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return nil, fmt.Errorf("%q is neither an address nor a CIDR", f)
			}
			pr = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, pr)
	}
	return out, nil
}

// sensorDaemonSet returns the DaemonSet running the sensor and its container.
func (b *bundle) sensorDaemonSet() (*k8sObject, *corev1.PodSpec, *corev1.Container) {
	for _, o := range b.objects("DaemonSet") {
		pod := &podTemplate(o).Spec
		for i := range pod.Containers {
			if p, ok := imageProgram(pod.Containers[i].Image); ok && p == progSensor {
				return o, pod, &pod.Containers[i]
			}
		}
	}
	return nil, nil, nil
}

// daemonSetCaps returns the capabilities the sensor's DaemonSet adds.
func (b *bundle) daemonSetCaps() []string {
	_, _, c := b.sensorDaemonSet()
	if c == nil || c.SecurityContext == nil || c.SecurityContext.Capabilities == nil {
		return nil
	}
	return capNames(c.SecurityContext.Capabilities.Add)
}

func checkSensorDaemonSet(b *bundle, p *problems) {
	o, podp, c := b.sensorDaemonSet()
	if o == nil {
		p.add("no DaemonSet runs netview-sensor")
		return
	}
	if n := len(b.objects("DaemonSet")); n != 1 {
		p.add("%d DaemonSets, want the sensor's alone", n)
	}
	pod := *podp
	if !pod.HostNetwork || !pod.HostPID {
		p.add("%s: want hostNetwork and hostPID: the sensor reads the node's sockets and finds their processes", o)
	}
	if pod.HostIPC {
		p.add("%s: hostIPC, which the sensor does not need", o)
	}
	if pod.DNSPolicy != "ClusterFirstWithHostNet" {
		p.add("%s: dnsPolicy %q: with hostNetwork only ClusterFirstWithHostNet resolves the ingest Service", o, pod.DNSPolicy)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		p.add("%s: mounts a service account token it never uses", o)
	}
	everywhere := false
	for _, t := range pod.Tolerations {
		everywhere = everywhere || (t.Key == "" && t.Operator == "Exists" && t.Effect == "")
	}
	if !everywhere {
		p.add("%s: no toleration of every taint ({operator: Exists}): tainted nodes would go unwatched", o)
	}
	if len(pod.Containers) != 1 || len(pod.InitContainers) != 0 {
		p.add("%s: want the sensor container alone", o)
	}

	sc := c.SecurityContext
	switch {
	case sc == nil || sc.Capabilities == nil:
		p.add("%s: no securityContext.capabilities", o)
	default:
		if !sameSet(capNames(sc.Capabilities.Drop), []string{"ALL"}) {
			p.add("%s: capabilities.drop %v, want [ALL]", o, sc.Capabilities.Drop)
		}
		if !sameSet(capNames(sc.Capabilities.Add), sensorCaps) {
			p.add("%s: capabilities.add %v, want exactly %v", o, sc.Capabilities.Add, sensorCaps)
		}
		if sc.Privileged != nil && *sc.Privileged {
			p.add("%s: privileged", o)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			p.add("%s: allowPrivilegeEscalation is not false", o)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			p.add("%s: readOnlyRootFilesystem is not true", o)
		}
		if sc.RunAsUser == nil || *sc.RunAsUser != 0 {
			p.add("%s: runAsUser is not 0: Kubernetes grants added capabilities to uid 0 only", o)
		}
		if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			p.add("%s: seccomp profile is not RuntimeDefault", o)
		}
		if sc.AppArmorProfile == nil || sc.AppArmorProfile.Type != corev1.AppArmorProfileTypeUnconfined {
			p.add("%s: the runtime's default AppArmor profile denies reading other processes' fd links: want appArmorProfile Unconfined", o)
		}
	}

	env, probs := b.containerEnv(o.Namespace, c)
	for _, s := range probs {
		p.add("%s: %s", o, s)
	}
	args, missing := expandArgs(c.Args, env)
	if len(missing) > 0 {
		p.add("%s: args use $(%s), which its environment does not define", o, strings.Join(missing, "), $("))
	}
	fs, err := parseFlags(progSensor, args)
	if err != nil {
		p.add("%s: %v", o, err)
		return
	}
	if val(fs, "sensor.proc") != "/proc" {
		p.add("%s: --sensor.proc=%s: any root but /proc turns netlink flow tracking off", o, val(fs, "sensor.proc"))
	}
	checkSensorHostPaths(p, o, &pod, c, fs)
	stateOnHost := false
	for _, m := range c.VolumeMounts {
		for _, v := range pod.Volumes {
			stateOnHost = stateOnHost || (v.Name == m.Name && v.HostPath != nil && m.MountPath == val(fs, "sensor.state") && !m.ReadOnly)
		}
	}
	if !stateOnHost {
		p.add("%s: --sensor.state=%s is not a writable hostPath: identity and spool would die with the pod", o, val(fs, "sensor.state"))
	}
	var caps []string
	if sc != nil && sc.Capabilities != nil {
		caps = capNames(sc.Capabilities.Add)
	}
	b.checkDaemonSetLink(p, o, &pod, c, fs, caps)
	// The ingest URL is the ingest Service.
	u, err := url.Parse(val(fs, "sensor.ingest"))
	defURL, _ := url.Parse(flagDefault(progSensor, "sensor.ingest"))
	if err != nil || u.Path != defURL.Path {
		p.add("%s: --sensor.ingest=%s does not post to %s", o, val(fs, "sensor.ingest"), defURL.Path)
		return
	}
	parts := strings.Split(u.Hostname(), ".")
	if len(parts) < 2 {
		p.add("%s: --sensor.ingest host %s is not SERVICE.NAMESPACE...", o, u.Hostname())
		return
	}
	svc := b.object("Service", parts[1], parts[0])
	if svc == nil {
		p.add("%s: --sensor.ingest host %s is not a Service of the manifests", o, u.Hostname())
		return
	}
	s := svc.obj.(*corev1.Service).Spec
	found := false
	for _, sp := range s.Ports {
		found = found || strconv.Itoa(int(sp.Port)) == u.Port()
	}
	pod2 := b.selectPods(svc.Namespace, s.Selector)
	runsIngest := false
	if pod2 != nil {
		for _, pc := range pod2.Containers {
			if q, ok := imageProgram(pc.Image); ok && q == progIngest {
				runsIngest = true
			}
		}
	}
	if !found || !runsIngest {
		p.add("%s: --sensor.ingest=%s is not the port of a Service in front of netview-ingest", o, u)
	}
}

// checkDaemonSetLink: the DaemonSet's sensor enrolls with a secret from a
// mounted Secret and reaches the ingest Service over TLS, trusting a CA
// from a mounted Secret (or a pinned key).
func (b *bundle) checkDaemonSetLink(p *problems, o *k8sObject, pod *corev1.PodSpec, c *corev1.Container, fs *flag.FlagSet, caps []string) {
	checkSensorSecrets(p, o.String(), fs)
	checkEBPF(p, o.String(), fs, caps)
	for _, f := range []string{"sensor.enroll-secret-file", "sensor.ca-file"} {
		if v := val(fs, f); v != "" {
			if err := b.secretFile(o.Namespace, pod, c, v); err != nil {
				p.add("%s: --%s: %v", o, f, err)
			}
		}
	}
	u, err := url.Parse(val(fs, "sensor.ingest"))
	if err != nil || u.Scheme != "https" {
		p.add("%s: --sensor.ingest=%s is not https: the ingest nodes serve TLS", o, val(fs, "sensor.ingest"))
		return
	}
	if val(fs, "sensor.ca-file") == "" && val(fs, "sensor.pin-sha256") == "" {
		p.add("%s: neither --sensor.ca-file nor --sensor.pin-sha256: no public CA certifies the ingest Service's name %s", o, u.Hostname())
	}
}

// nodeModules returns $NETVIEW_NODE_MODULES, or skips the test without it
// (TestK8sSchemas alone needs node).
func nodeModules(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("NETVIEW_NODE_MODULES")
	if dir == "" {
		t.Skip("NETVIEW_NODE_MODULES is not set: the schema check needs node and the npm packages yaml and kubernetes-models " +
			"(make installs them into .cache/node/node_modules and sets NETVIEW_NODE_MODULES; " +
			"by hand: npm install --prefix .cache/node yaml@2.9.1 kubernetes-models@5.1.0 && export NETVIEW_NODE_MODULES=$PWD/.cache/node/node_modules)")
	}
	return dir
}

// k8sSchemaScript validates every Kubernetes object on stdin against the
// API's OpenAPI schema with the npm package kubernetes-models; exit 3 when
// the package is not installed.
const k8sSchemaScript = `
const mods = process.env.NETVIEW_NODE_MODULES;
try { require.resolve(mods + '/kubernetes-models/package.json'); } catch (e) { process.exit(3); }
const YAML = require(mods + '/yaml');
let src = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (c) => { src += c; });
process.stdin.on('end', () => {
  let bad = 0;
  for (const d of YAML.parseAllDocuments(src, { version: '1.1' })) {
    const o = d.toJS();
    if (!o) continue;
    let Model;
    try { Model = require(mods + '/kubernetes-models/' + o.apiVersion + '/' + o.kind)[o.kind]; } catch (e) {}
    if (!Model) { console.log('no schema for ' + o.apiVersion + ' ' + o.kind); bad++; continue; }
    try { new Model(o).validate(); } catch (e) { console.log(o.kind + ' ' + o.metadata.name + ': ' + e.message); bad++; }
  }
  process.exit(bad ? 1 : 0);
});
`

// TestK8sSchemas validates the manifests against the Kubernetes API schemas
// (types, required fields) when the npm package kubernetes-models is
// installed beside yaml: npm install --prefix .cache/node kubernetes-models@5.1.0
func TestK8sSchemas(t *testing.T) {
	nodeModules(t)
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("NETVIEW_NODE_MODULES is set but node is not on PATH: %v", err)
	}
	validate := func(src []byte) (string, int) {
		out, err := runCmdStdin(src, "node", "-e", k8sSchemaScript)
		if ee, ok := err.(*exec.ExitError); ok {
			return out, ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out, 0
	}
	files, _ := filepath.Glob(filepath.Join(deployDir(t), "k8s", "*.yaml"))
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		src, _ := os.ReadFile(f)
		out, code := validate(src)
		switch code {
		case 3:
			t.Skip("the npm package kubernetes-models is not in NETVIEW_NODE_MODULES (npm install --prefix .cache/node kubernetes-models@5.1.0)")
		case 0:
		default:
			t.Errorf("%s does not match the Kubernetes API schema:\n%s", filepath.Base(f), out)
		}
	}
	// And it can fail.
	src, _ := os.ReadFile(filepath.Join(deployDir(t), "k8s", "ingest.yaml"))
	broken := strings.Replace(string(src), "periodSeconds: 5", "periodSeconds: five", 1)
	if out, code := validate([]byte(broken)); code != 1 || !strings.Contains(out, "must be integer") {
		t.Errorf("a probe period of \"five\" passed the schema (exit %d):\n%s", code, out)
	}
}

// TestK8sReader: the manifests' reader refuses what the API server would
// (duplicate keys, fields a type does not have, values of the wrong type,
// kinds the checks do not know) and reads YAML 1.1 as Kubernetes does
// (octal numbers, merge keys).
func TestK8sReader(t *testing.T) {
	for name, src := range map[string]string{
		"duplicate key":         "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\nmetadata: {name: b}\n",
		"unknown field":         "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndatta: {k: v}\n",
		"wrong type":            "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: eighty}]}\n",
		"unknown kind":          "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n",
		"unclosed flow":         "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a\n",
		"probe period":          "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec:\n  template:\n    spec:\n      containers:\n        - name: c\n          readinessProbe: {periodSeconds: five}\n",
		"no kind at all":        "apiVersion: v1\nmetadata: {name: a}\n",
		"field in another case": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\nDATA: {k: v}\n",
	} {
		if _, _, probs := readK8s("x.yaml", []byte(src)); len(probs) == 0 {
			t.Errorf("%s: read without a problem", name)
		}
	}
	src := "# a comment alone\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  namespace: netview\n  labels: &l {a: b}\nspec:\n  selector:\n    <<: *l\n    c: d\n  ports: [{port: 0440}]\n---\n"
	objs, _, probs := readK8s("x.yaml", []byte(src))
	if len(probs) > 0 || len(objs) != 1 {
		t.Fatalf("%d objects, problems %v", len(objs), probs)
	}
	s := objs[0].obj.(*corev1.Service)
	if objs[0].Namespace != "netview" || s.Spec.Ports[0].Port != 288 || s.Spec.Selector["a"] != "b" || s.Spec.Selector["c"] != "d" {
		t.Errorf("YAML 1.1 (octal, merge keys) as Kubernetes reads it: %s %+v", objs[0], s.Spec)
	}
}

// checkSensorHostPaths: the state folder is the only writable hostPath;
// every other one is --sensor.netns-dir or a runtime's state folder
// (runtimeStateDirs), read-only, at its own path (where the sensor reads
// it), with HostToContainer propagation (later namespaces appear; the
// runtime's unmounts reach the pod), of a type that lets the pod start on
// a node without it. The netns folder and the Kubernetes runtimes' folders
// must be there.
func checkSensorHostPaths(p *problems, o *k8sObject, pod *corev1.PodSpec, c *corev1.Container, fs *flag.FlagSet) {
	state, netns := val(fs, "sensor.state"), val(fs, "sensor.netns-dir")
	readOnly := map[string]string{} // host path -> what the sensor reads there
	if netns != "" {
		readOnly[netns] = "named network namespaces (--sensor.netns-dir)"
	}
	for _, d := range runtimeStateDirs {
		readOnly[d.path] = d.runtime + "'s state files"
	}
	seen := map[string]bool{}
	for _, v := range pod.Volumes {
		if v.HostPath == nil {
			continue
		}
		host := v.HostPath.Path
		what, listed := readOnly[host]
		if host != state && !listed {
			p.add("%s: hostPath %s: not a folder the sensor reads (its state %s, --sensor.netns-dir, a runtime's state folder)", o, host, state)
			continue
		}
		if t := v.HostPath.Type; listed && t != nil && *t != corev1.HostPathDirectoryOrCreate && *t != corev1.HostPathUnset {
			p.add("%s: hostPath %s of type %s: a node without it would not start the pod; want DirectoryOrCreate", o, host, *t)
		}
		for _, m := range c.VolumeMounts {
			if m.Name != v.Name {
				continue
			}
			seen[host] = true
			if m.MountPath != host || m.SubPath != "" || m.SubPathExpr != "" {
				p.add("%s: hostPath %s mounted at %s%s: the sensor reads it at its host path", o, host, m.MountPath, m.SubPath+m.SubPathExpr)
			}
			if host == state {
				continue
			}
			if !m.ReadOnly {
				p.add("%s: hostPath %s (%s) is writable: only the state folder may be", o, host, what)
			}
			if m.MountPropagation == nil || *m.MountPropagation != corev1.MountPropagationHostToContainer {
				p.add("%s: hostPath %s (%s) without mountPropagation HostToContainer: mounts made or unmade on the host later would not reach the pod", o, host, what)
			}
		}
	}
	var want []string
	if netns != "" {
		want = append(want, netns)
	}
	for _, d := range runtimeStateDirs {
		if d.inK8s {
			want = append(want, d.path)
		}
	}
	for _, w := range want {
		if !seen[w] {
			p.add("%s: %s is not mounted: the sensor would not see %s", o, w, readOnly[w])
		}
	}
}
