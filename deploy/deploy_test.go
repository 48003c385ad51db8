package deploy

// The deployment files cannot be run here (no Docker engine, no Kubernetes,
// no systemd as PID 1), so these tests parse every one of them and check it
// against the programs: their real flag sets (RegisterFlags), their real
// HTTP handlers (for probes and health checks), query/analyst's limits, the
// schema's migrations. Each check is shown to fail on a deliberately broken
// copy (TestBrokenCopiesAreRejected).
//
// Compose is loaded by compose-go (as docker compose loads it), the
// Kubernetes manifests by sigs.k8s.io/yaml into k8s.io/api types; nginx,
// systemd units and the Dockerfile by small readers of their own (no kept
// Go parser of them), ClickHouse's XML by encoding/xml.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// deployDir is this package's folder: the real deployment files.
func deployDir(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

// TestDeployFiles runs every check on the real files.
func TestDeployFiles(t *testing.T) {
	b, probs := loadBundle(t, deployDir(t))
	for _, p := range probs {
		t.Errorf("load: %s", p)
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			var p problems
			c.fn(b, &p)
			for _, s := range p {
				t.Error(s)
			}
		})
	}
}

// edit replaces old by new in a file of a copy of deploy/ (the first
// occurrence, or all).
type edit struct {
	file, old, new string
	all            bool
}

// mutation is one way to break the files, and what a check must say then.
type mutation struct {
	name  string
	edits []edit
	want  string
	needs string // a tool that alone catches the fault ("" for none)
}

// TestBrokenCopiesAreRejected breaks a copy of the files in one way at a
// time and wants the checks to name the fault: every check can fail.
func TestBrokenCopiesAreRejected(t *testing.T) {
	if b, probs := loadBundle(t, deployDir(t)); len(probs)+len(runChecks(b)) > 0 {
		t.Fatalf("the real files do not pass (see TestDeployFiles): %v %v", probs, runChecks(b))
	}
	const (
		compose = "compose/compose.yaml"
		nginx   = "nginx/nginx.conf"
		sensor  = "k8s/sensor.yaml"
		ingest  = "k8s/ingest.yaml"
		query   = "k8s/query.yaml"
		unitF   = "systemd/netview-sensor.service"
		users   = "clickhouse/users.xml"
		ddl     = "clickhouse/cluster.sql"
		dockerf = "Dockerfile"
	)
	cases := []mutation{
		// Images.
		{"image :latest", []edit{{file: compose, old: "clickhouse/clickhouse-server:25.8.30.16\n    hostname: clickhouse", new: "clickhouse/clickhouse-server:latest\n    hostname: clickhouse"}}, "is not pinned", ""},
		{"image without tag", []edit{{file: ingest, old: "image: netview/netview-ingest:0.1.0", new: "image: netview/netview-ingest"}}, "is not pinned", ""},
		{"two release tags", []edit{{file: query, old: "image: netview/netview-query:0.1.0", new: "image: netview/netview-query:0.2.0"}}, "different tags", ""},
		// Compose.
		{"compose YAML duplicate key", []edit{{file: compose, old: "  query-2:\n    <<: *query\n", new: "  query-1:\n    <<: *query\n"}}, "compose/compose.yaml:", ""},
		{"compose depends on a missing service", []edit{{file: compose, old: "      query-2:\n        condition: service_healthy\n", new: "      query-3:\n        condition: service_healthy\n"}}, "query-3", ""},
		{"compose unknown key", []edit{{file: compose, old: "  stop_grace_period: 45s", new: "  stop_grace_periode: 45s"}}, "stop_grace_periode", ""},
		{"one ingest node", []edit{{file: compose, old: "  ingest-2:\n    <<: *ingest\n", new: ""}}, "want two ingest nodes", ""},
		{"misspelt flag", []edit{{file: compose, old: "--ingest.addr=0.0.0.0:8090", new: "--ingest.adr=0.0.0.0:8090"}}, "flag provided but not defined", ""},
		{"flag value of the wrong type", []edit{{file: compose, old: "--ingest.ack-timeout=30s", new: "--ingest.ack-timeout=thirty"}}, "invalid value", ""},
		{"flag without =", []edit{{file: compose, old: "    - --store.cluster=netview\n    - --store.events-ttl-days=30\n  environment:", new: "    - --store.cluster\n    - netview\n    - --store.events-ttl-days=30\n  environment:"}}, "--name=value", ""},
		{"loopback listener", []edit{{file: compose, old: "--query.addr=0.0.0.0:8080", new: "--query.addr=127.0.0.1:8080"}}, "is loopback", ""},
		{"short grace period", []edit{{file: compose, old: "stop_grace_period: 45s", new: "stop_grace_period: 20s"}}, "stop_grace_period", ""},
		{"health check on no route", []edit{{file: compose, old: "http://127.0.0.1:8090/healthz", new: "http://127.0.0.1:8090/ready"}}, "not a health route", ""},
		{"health check blind to storage", []edit{{file: compose, old: "http://127.0.0.1:8080/healthz", new: "http://127.0.0.1:8080/"}}, "does not tell readiness", ""},
		{"health check on the wrong port", []edit{{file: compose, old: "http://127.0.0.1:8090/healthz", new: "http://127.0.0.1:8091/healthz"}}, "does not request the node's port", ""},
		{"server lacks a password hash", []edit{{file: compose, old: "      NETVIEW_CH_QUERY_PASSWORD_SHA256: ${NETVIEW_CH_QUERY_PASSWORD_SHA256:?run ./init-secrets.sh first}\n", new: ""}}, "lacks NETVIEW_CH_QUERY_PASSWORD_SHA256", ""},
		{"DSN with another user's password", []edit{{file: compose, old: "clickhouse://query:${NETVIEW_CH_QUERY_PASSWORD", new: "clickhouse://query:${NETVIEW_CH_INGEST_PASSWORD"}}, "password in --store.dsn", ""},
		{"DSN to the analyst", []edit{{file: compose, old: "clickhouse://query:${NETVIEW_CH_QUERY_PASSWORD", new: "clickhouse://analyst:${NETVIEW_CH_ANALYST_PASSWORD"}}, "read-only profile", ""},
		{"DSN to another host", []edit{{file: compose, old: "@clickhouse:9000/netview\n    - --store.cluster=netview\n    - --store.events-ttl-days=30\n  secrets: [ingest_tokens]", new: "@clickhouse-2:9000/netview\n    - --store.cluster=netview\n    - --store.events-ttl-days=30\n  secrets: [ingest_tokens]"}}, "is not the ClickHouse service", ""},
		{"TTL disagreement", []edit{{file: compose, old: "--store.events-ttl-days=30", new: "--store.events-ttl-days=7"}}, "disagree", ""},
		{"unknown variable", []edit{{file: compose, old: "${NETVIEW_CURSOR_SECRET:?run ./init-secrets.sh first}", new: "${NETVIEW_CURSOR_KEY:?run ./init-secrets.sh first}"}}, "does not set", ""},
		{"missing secret file", []edit{{file: compose, old: "file: ./secrets/api.tokens", new: "file: ./secrets/viewer.tokens"}}, "not one init-secrets.sh makes", ""},
		{"wrong build target", []edit{{file: compose, old: "target: ingest", new: "target: ingestt"}}, "not a stage", ""},
		{"no wait for the schema", []edit{{file: compose, old: "    schema-init:\n      condition: service_completed_successfully\n", new: ""}}, "to complete", ""},
		{"init on another database", []edit{{file: compose, old: "--database netview --multiquery", new: "--database default --multiquery"}}, "does not apply", ""},
		{"compose sensor with NET_ADMIN", []edit{{file: compose, old: "cap_add: [SYS_PTRACE, DAC_READ_SEARCH, SYS_ADMIN]", new: "cap_add: [SYS_PTRACE, DAC_READ_SEARCH, SYS_ADMIN, NET_ADMIN]"}}, "want drop [ALL] add", ""},
		{"compose sensor without SYS_ADMIN", []edit{{file: compose, old: "cap_add: [SYS_PTRACE, DAC_READ_SEARCH, SYS_ADMIN]", new: "cap_add: [SYS_PTRACE, DAC_READ_SEARCH]"}}, "want drop [ALL] add", ""},
		{"compose Docker state writable", []edit{{file: compose, old: "        target: /var/lib/docker/containers\n        read_only: true\n", new: "        target: /var/lib/docker/containers\n"}}, "/var/lib/docker/containers (docker's state files) is writable", ""},
		{"compose netns writable", []edit{{file: compose, old: "        target: /run/netns\n        read_only: true\n", new: "        target: /run/netns\n        read_only: false\n"}}, "/run/netns (named network namespaces (--sensor.netns-dir)) is writable", ""},
		{"compose netns without propagation", []edit{{file: compose, old: "        target: /run/netns\n        read_only: true\n        bind:\n          propagation: rslave\n", new: "        target: /run/netns\n        read_only: true\n        bind:\n"}}, "/run/netns (named network namespaces (--sensor.netns-dir)) without bind propagation rslave", ""},
		{"compose netns not mounted", []edit{{file: compose, old: "      - type: bind\n        source: /run/netns\n        target: /run/netns\n        read_only: true\n        bind:\n          propagation: rslave\n          # A host with no named namespace yet may have no /run/netns.\n          create_host_path: true\n", new: ""}}, "/run/netns is not mounted", ""},
		{"compose netns elsewhere", []edit{{file: compose, old: "        target: /run/netns\n", new: "        target: /host/run/netns\n"}}, "/run/netns mounted at /host/run/netns", ""},
		{"compose sensor binds the host's /etc", []edit{{file: compose, old: "      - type: bind\n        source: /run/netns\n", new: "      - type: bind\n        source: /etc\n        target: /etc\n        read_only: true\n      - type: bind\n        source: /run/netns\n"}}, "binds /etc, not a folder the sensor reads", ""},
		{"compose sensor in its own network", []edit{{file: compose, old: "    network_mode: host\n", new: ""}}, "network_mode host", ""},
		{"unpublished port", []edit{{file: compose, old: `- "8080:8080"`, new: `- "8080:8081"`}}, "does not publish", ""},
		{"init-secrets hashes the wrong password", []edit{{file: "compose/init-secrets.sh", old: `NETVIEW_CH_QUERY_PASSWORD_SHA256=$(sha256 "$query_pw")`, new: `NETVIEW_CH_QUERY_PASSWORD_SHA256=$(sha256 "$ingest_pw")`}}, "is not the SHA-256 of", ""},
		// nginx.
		{"heartbeats not passed", []edit{{file: nginx, old: "location = /v1/heartbeat {\n            proxy_pass http://netview_ingest;", new: "location = /v1/heartbeat {\n            return 404;"}}, "does not pass /v1/heartbeat", ""},
		{"upstream lacks a node", []edit{{file: nginx, old: "        server ingest-2:8090 max_fails=3 fail_timeout=3s;\n", new: ""}}, "no upstream lists exactly the netview-ingest nodes", ""},
		{"body limit below ingest's", []edit{{file: nginx, old: "client_max_body_size 4m;", new: "client_max_body_size 1m;"}}, "client_max_body_size", ""},
		{"query body limit", []edit{{file: nginx, old: "client_max_body_size 1m;", new: "client_max_body_size 10m;"}}, "reads bodies up to", ""},
		{"LB times out before ingest answers", []edit{{file: nginx, old: "proxy_read_timeout 45s;", new: "proxy_read_timeout 20s;"}}, "proxy_read_timeout", ""},
		{"no passive health check", []edit{{file: nginx, old: "server query-1:8080 max_fails=3 fail_timeout=3s;", new: "server query-1:8080;"}}, "passive health check", ""},
		{"503 not skipped", []edit{{file: nginx, old: "error timeout http_502 http_503 http_504", new: "error timeout http_502 http_504"}}, "lacks http_503", ""},
		{"nginx syntax", []edit{{file: nginx, old: "            proxy_pass http://netview_ingest;\n        }\n\n        # With every node", new: "            proxy_pass http://netview_ingest;\n\n        # With every node"}}, "nginx/nginx.conf", ""},
		{"nginx health location gone", []edit{{file: nginx, old: "location = /nginx-health", new: "location = /status"}}, "requests no location", ""},
		// The sensor DaemonSet.
		{"extra capability", []edit{{file: sensor, old: "add: [SYS_PTRACE, DAC_READ_SEARCH, SYS_ADMIN]", new: "add: [SYS_PTRACE, DAC_READ_SEARCH, SYS_ADMIN, NET_ADMIN]"}}, "want exactly", ""},
		{"missing capability", []edit{{file: sensor, old: "add: [SYS_PTRACE, DAC_READ_SEARCH, SYS_ADMIN]", new: "add: [SYS_PTRACE, SYS_ADMIN]"}}, "want exactly", ""},
		{"no SYS_ADMIN for named namespaces", []edit{{file: sensor, old: "add: [SYS_PTRACE, DAC_READ_SEARCH, SYS_ADMIN]", new: "add: [SYS_PTRACE, DAC_READ_SEARCH]"}}, "want exactly", ""},
		{"runtime folder writable", []edit{{file: sensor, old: "              mountPath: /run/containerd/io.containerd.runtime.v2.task\n              readOnly: true\n", new: "              mountPath: /run/containerd/io.containerd.runtime.v2.task\n"}}, "hostPath /run/containerd/io.containerd.runtime.v2.task (containerd's state files) is writable", ""},
		{"hostPath not in the list", []edit{{file: sensor, old: "      volumes:\n        - name: state", new: "      volumes:\n        - name: kubelet\n          hostPath:\n            path: /var/lib/kubelet\n            type: DirectoryOrCreate\n        - name: state"}, {file: sensor, old: "          volumeMounts:\n", new: "          volumeMounts:\n            - name: kubelet\n              mountPath: /var/lib/kubelet\n              readOnly: true\n              mountPropagation: HostToContainer\n"}}, "hostPath /var/lib/kubelet: not a folder the sensor reads", ""},
		{"netns without propagation", []edit{{file: sensor, old: "              mountPath: /run/netns\n              readOnly: true\n              mountPropagation: HostToContainer\n", new: "              mountPath: /run/netns\n              readOnly: true\n"}}, "hostPath /run/netns (named network namespaces (--sensor.netns-dir)) without mountPropagation HostToContainer", ""},
		{"netns not mounted", []edit{{file: sensor, old: "            - name: netns\n              mountPath: /run/netns\n              readOnly: true\n              mountPropagation: HostToContainer\n", new: ""}}, "/run/netns is not mounted", ""},
		{"CRI-O storage elsewhere", []edit{{file: sensor, old: "mountPath: /var/lib/containers/storage", new: "mountPath: /host/var/lib/containers/storage"}}, "hostPath /var/lib/containers/storage mounted at /host/var/lib/containers/storage", ""},
		{"runtime folder that must exist", []edit{{file: sensor, old: "            path: /var/lib/containers/storage\n            type: DirectoryOrCreate", new: "            path: /var/lib/containers/storage\n            type: Directory"}}, "a node without it would not start the pod", ""},
		{"not dropping ALL", []edit{{file: sensor, old: "drop: [ALL]", new: "drop: [NET_RAW]"}}, "capabilities.drop", ""},
		{"privileged", []edit{{file: sensor, old: "privileged: false", new: "privileged: true"}}, "privileged", ""},
		{"writable root", []edit{{file: sensor, old: "readOnlyRootFilesystem: true", new: "readOnlyRootFilesystem: false"}}, "readOnlyRootFilesystem", ""},
		{"no hostPID", []edit{{file: sensor, old: "hostPID: true", new: "hostPID: false"}}, "hostPID", ""},
		{"no host DNS policy", []edit{{file: sensor, old: "dnsPolicy: ClusterFirstWithHostNet", new: "dnsPolicy: ClusterFirst"}}, "dnsPolicy", ""},
		{"not every node", []edit{{file: sensor, old: "        - operator: Exists\n", new: "        - key: node-role.kubernetes.io/control-plane\n          operator: Exists\n"}}, "toleration", ""},
		{"host /proc mounted", []edit{{file: sensor, old: "      volumes:\n        - name: state", new: "      volumes:\n        - name: proc\n          hostPath:\n            path: /proc\n        - name: state"}}, "hostPath /proc", ""},
		{"state not on the host", []edit{{file: sensor, old: "          hostPath:\n            path: /var/lib/netview-sensor\n            type: DirectoryOrCreate", new: "          emptyDir: {}"}}, "not a writable hostPath", ""},
		{"AppArmor left on", []edit{{file: sensor, old: "            appArmorProfile:\n              type: Unconfined\n", new: ""}}, "AppArmor", ""},
		{"ingest URL to no Service", []edit{{file: "k8s/config.yaml", old: "netview-ingest.netview.svc:8090", new: "netview-ingest.netview.svc:8091"}}, "not the port of a Service", ""},
		{"sensor secret from nowhere", []edit{{file: sensor, old: "--sensor.enroll-secret-file=/etc/netview/sensor/enroll-secret", new: "--sensor.enroll-secret-file=/etc/netview/enroll-secret"}}, "not a file of a Secret", ""},
		// Deployments, Services, HPAs.
		{"readiness on no route", []edit{{file: ingest, old: "          readinessProbe:\n            httpGet:\n              path: /healthz", new: "          readinessProbe:\n            httpGet:\n              path: /ready"}}, "not a health route", ""},
		{"liveness on storage", []edit{{file: ingest, old: "          livenessProbe:\n            httpGet:\n              path: /metrics", new: "          livenessProbe:\n            httpGet:\n              path: /healthz"}}, "while storage is down", ""},
		{"readiness that ignores storage", []edit{{file: ingest, old: "          readinessProbe:\n            httpGet:\n              path: /healthz", new: "          readinessProbe:\n            httpGet:\n              path: /metrics"}}, "does not tell readiness", ""},
		{"no liveness", []edit{{file: query, old: "livenessProbe:", new: "livenessProbeOff:"}}, "no livenessProbe", ""},
		{"query liveness on storage", []edit{{file: query, old: "          livenessProbe:\n            httpGet:\n              path: /", new: "          livenessProbe:\n            httpGet:\n              path: /healthz"}}, "while storage is down", ""},
		{"liveness on no route", []edit{{file: ingest, old: "          livenessProbe:\n            httpGet:\n              path: /metrics", new: "          livenessProbe:\n            httpGet:\n              path: /live"}}, "not a route of the program", ""},
		{"probe on another port", []edit{{file: query, old: "          readinessProbe:\n            httpGet:\n              path: /healthz\n              port: https", new: "          readinessProbe:\n            httpGet:\n              path: /healthz\n              port: 9090"}}, "readinessProbe port", ""},
		{"HPA targets nothing", []edit{{file: ingest, old: "    kind: Deployment\n    name: netview-ingest", new: "    kind: Deployment\n    name: netview-ingset"}}, "scaleTargetRef", ""},
		{"HPA on v1", []edit{{file: query, old: "apiVersion: autoscaling/v2", new: "apiVersion: autoscaling/v1"}}, "want autoscaling/v2", ""},
		{"no CPU request under a CPU HPA", []edit{{file: query, old: "              cpu: 250m\n", new: ""}}, "requests no cpu", ""},
		{"replicas fight the HPA", []edit{{file: query, old: "  selector:\n    matchLabels:\n      app.kubernetes.io/name: netview-query\n  strategy:", new: "  replicas: 3\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: netview-query\n  strategy:"}}, "fights", ""},
		{"k8s loopback listener", []edit{{file: ingest, old: "--ingest.addr=0.0.0.0:8090", new: "--ingest.addr=127.0.0.1:8090"}}, "is loopback", ""},
		{"containerPort mismatch", []edit{{file: ingest, old: "containerPort: 8090", new: "containerPort: 8091"}}, "containerPort", ""},
		{"undefined $(VAR)", []edit{{file: ingest, old: "--store.dsn=$(NETVIEW_STORE_DSN)", new: "--store.dsn=$(NETVIEW_STORE_DSNN)"}}, "does not define", ""},
		{"missing Secret key", []edit{{file: query, old: "key: cursor-secret", new: "key: cursor"}}, "does not have", ""},
		{"short termination grace", []edit{{file: ingest, old: "terminationGracePeriodSeconds: 60", new: "terminationGracePeriodSeconds: 20"}}, "terminationGracePeriodSeconds", ""},
		{"Deployment runs as root", []edit{{file: query, old: "        runAsNonRoot: true\n", new: ""}}, "want runAsNonRoot", ""},
		{"Service to no port", []edit{{file: query, old: "      port: 8080\n      targetPort: https", new: "      port: 8080\n      targetPort: web"}}, "which no container of its pods has", ""},
		{"baseline namespace", []edit{{file: "k8s/namespace.yaml", old: "pod-security.kubernetes.io/enforce: restricted", new: "pod-security.kubernetes.io/enforce: baseline"}}, "want restricted", ""},
		{"k8s misspelt field", []edit{{file: sensor, old: "readOnlyRootFilesystem: true", new: "readOnlyRootFileSystem: true"}}, `unknown field "spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem"`, ""},
		{"k8s value of the wrong type", []edit{{file: ingest, old: "periodSeconds: 5", new: "periodSeconds: five"}}, "periodSeconds", ""},
		{"Deployment on another API version", []edit{{file: query, old: "apiVersion: apps/v1", new: "apiVersion: apps/v1beta2"}}, "want apps/v1", ""},
		{"kustomization misses a file", []edit{{file: "k8s/kustomization.yaml", old: "  - sensor.yaml\n", new: ""}}, "kustomization.yaml resources", ""},
		{"k8s token file from nowhere", []edit{{file: ingest, old: "--ingest.token-file=/etc/netview/ingest/tokens", new: "--ingest.token-file=/etc/netview/tokens"}}, "not a file of a Secret", ""},
		{"no cluster in k8s", []edit{{file: "k8s/config.yaml", old: `NETVIEW_STORE_CLUSTER: "netview"`, new: `NETVIEW_STORE_CLUSTER: "prod"`}}, "is not a cluster of", ""},
		// systemd.
		{"bounding set beyond the DaemonSet", []edit{{file: unitF, old: "CapabilityBoundingSet=CAP_SYS_PTRACE CAP_DAC_READ_SEARCH", new: "CapabilityBoundingSet=CAP_SYS_PTRACE CAP_DAC_READ_SEARCH CAP_NET_ADMIN"}}, "CapabilityBoundingSet", ""},
		{"weaker ProtectSystem", []edit{{file: unitF, old: "ProtectSystem=strict", new: "ProtectSystem=full"}}, "ProtectSystem", ""},
		{"private network", []edit{{file: unitF, old: "ProtectHostname=yes\n", new: "ProtectHostname=yes\nPrivateNetwork=yes\n"}}, "hides", ""},
		{"no netlink", []edit{{file: unitF, old: "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK", new: "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6"}}, "does not allow AF_NETLINK", ""},
		{"secret file install.sh does not write", []edit{{file: unitF, old: "--sensor.enroll-secret-file=/etc/netview/sensor.enroll-secret", new: "--sensor.enroll-secret-file=/etc/netview/secret"}}, "0600 file", ""},
		{"state outside StateDirectory", []edit{{file: unitF, old: "--sensor.state=/var/lib/netview-sensor", new: "--sensor.state=/var/lib/sensor"}}, "StateDirectory", ""},
		{"unit flag typo", []edit{{file: unitF, old: "--sensor.ingest=${NETVIEW_SENSOR_INGEST}", new: "--sensor.url=${NETVIEW_SENSOR_INGEST}"}}, "not defined", ""},
		{"unit key typo", []edit{{file: unitF, old: "ProtectHome=read-only", new: "ProtectHomee=read-only"}}, "ProtectHome=", ""},
		{"unit hides rootless Podman", []edit{{file: unitF, old: "ProtectHome=read-only", new: "ProtectHome=yes"}}, `ProtectHome="yes"`, ""},
		{"unit forbids setns", []edit{{file: unitF, old: "RestrictNamespaces=net", new: "RestrictNamespaces=yes"}}, `RestrictNamespaces="yes"`, ""},
		{"unit without CAP_SYS_ADMIN", []edit{{file: unitF, old: "CapabilityBoundingSet=CAP_SYS_PTRACE CAP_DAC_READ_SEARCH CAP_SYS_ADMIN", new: "CapabilityBoundingSet=CAP_SYS_PTRACE CAP_DAC_READ_SEARCH"}}, "CapabilityBoundingSet", ""},
		{"unit variable install.sh does not set", []edit{{file: unitF, old: "$NETVIEW_SENSOR_ARGS", new: "$NETVIEW_SENSOR_FLAGS"}}, "does not set", ""},
		{"install.sh token mode", []edit{{file: "systemd/install.sh", old: `put 0600 "$work/token" "$token_path"`, new: `put 0644 "$work/token" "$token_path"`}}, "0600 file", ""},
		{"install.sh syntax", []edit{{file: "systemd/install.sh", old: "esac\ndone", new: "esac\n"}}, "install.sh", ""},
		// users.xml.
		{"analyst can write", []edit{{file: users, old: "<readonly>1</readonly>", new: "<readonly>0</readonly>"}}, "readonly", ""},
		{"analyst readonly=2 unconstrained", []edit{{file: users, old: "<readonly>1</readonly>", new: "<readonly>2</readonly>"}, {file: users, old: "<max_result_rows><max>100000</max></max_result_rows>", new: ""}}, "readonly=2 lets the analyst change max_result_rows", ""},
		{"analyst without quota", []edit{{file: users, old: "<quota>netview_analyst</quota>", new: "<quota>none</quota>"}}, `quota "none" does not exist`, ""},
		{"password in the file", []edit{{file: users, old: `<password_sha256_hex from_env="NETVIEW_CH_ANALYST_PASSWORD_SHA256"/>`, new: `<password>secret</password>`}}, "password in the file", ""},
		{"limit differs from the API's", []edit{{file: users, old: "<max_result_rows>100000</max_result_rows>", new: "<max_result_rows>1000000</max_result_rows>"}}, "max_result_rows", ""},
		{"results cut silently", []edit{{file: users, old: "<result_overflow_mode>throw</result_overflow_mode>", new: "<result_overflow_mode>break</result_overflow_mode>"}}, "result_overflow_mode", ""},
		{"analyst may write by grant", []edit{{file: users, old: "<query>GRANT SELECT ON netview.*</query>", new: "<query>GRANT ALL ON netview.*</query>"}}, "SELECT only", ""},
		{"quota without read_rows", []edit{{file: users, old: "<read_rows>100000000000</read_rows>", new: ""}}, "does not limit read_rows", ""},
		{"quota below one statement", []edit{{file: users, old: "<result_rows>10000000</result_rows>", new: "<result_rows>1000</result_rows>"}}, "below what one statement may use", ""},
		{"default user open", []edit{{file: users, old: "                <ip>::1</ip>\n                <ip>127.0.0.1</ip>\n            </networks>\n        </default>", new: "                <ip>::/0</ip>\n            </networks>\n        </default>"}}, "loopback only", ""},
		{"users.xml not XML", []edit{{file: users, old: "</users>", new: "</userz>"}}, "clickhouse/users.xml", ""},
		// ClickHouse configuration.
		{"no internal replication", []edit{{file: "clickhouse/config.d/remote_servers.xml", old: "<internal_replication>true</internal_replication>", new: "<internal_replication>false</internal_replication>"}}, "internal_replication", ""},
		{"cluster renamed", []edit{{file: "clickhouse/config.d/remote_servers.xml", old: "<netview>", new: "<other>"}, {file: "clickhouse/config.d/remote_servers.xml", old: "</netview>", new: "</other>"}}, `no cluster "netview"`, ""},
		{"no cluster secret", []edit{{file: "clickhouse/config.d/remote_servers.xml", old: `<secret from_env="NETVIEW_CLUSTER_SECRET"/>`, new: ""}}, "no <secret>", ""},
		{"keeper port", []edit{{file: "clickhouse/config.d/keeper.xml", old: "<port>9181</port>", new: "<port>2181</port>"}}, "node port", ""},
		{"keeper host", []edit{{file: "clickhouse/config.d/keeper.xml", old: "<host>clickhouse-keeper</host>", new: "<host>zookeeper</host>"}}, "Keeper service", ""},
		{"no replica macro", []edit{{file: "clickhouse/config.d/macros.xml", old: `<replica from_env="NETVIEW_CH_REPLICA"/>`, new: ""}}, "{replica} macro", ""},
		{"raft id", []edit{{file: "clickhouse/keeper/keeper_config.xml", old: "<server_id>1</server_id>", new: "<server_id>2</server_id>"}}, "raft_configuration", ""},
		// Cluster DDL.
		{"table without Distributed form", []edit{{file: ddl, old: "CREATE TABLE IF NOT EXISTS sctp_endpoints ON CLUSTER 'netview' AS sctp_endpoints_local\nENGINE = Distributed('netview', currentDatabase(), sctp_endpoints_local, cityHash64(sensor_id));", new: ""}}, "sctp_endpoints has no Distributed table", ""},
		{"local table not replicated", []edit{{file: ddl, old: "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/events_local', '{replica}')", new: "ENGINE = ReplacingMergeTree"}}, "want ReplicatedReplacingMergeTree", ""},
		{"version column lost", []edit{{file: ddl, old: "tcp_listeners_local', '{replica}', seq)", new: "tcp_listeners_local', '{replica}')"}}, "tcp_listeners_local has ENGINE", ""},
		{"ALTER not on the Distributed table", []edit{{file: ddl, old: "ALTER TABLE sensors ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS capabilities Map(LowCardinality(String), String);", new: ""}}, "is not applied to sensors", ""},
		{"sharded at random", []edit{{file: ddl, old: "sensors_local, cityHash64(sensor_id))", new: "sensors_local, rand())"}}, "not by sensor_id", ""},
		{"column dropped from a local table", []edit{{file: ddl, old: "    kernel          String,\n", new: ""}}, "columns or keys differ", ""},
		// Dockerfile.
		{"old Go", []edit{{file: dockerf, old: "FROM golang:1.26.8-bookworm", new: "FROM golang:1.25-bookworm"}}, "go.mod wants", ""},
		{"sensor not built", []edit{{file: dockerf, old: " ./cmd/netview-sensor", new: ""}}, "does not build ./cmd/netview-sensor", ""},
		{"ingest image as root", []edit{{file: dockerf, old: "COPY --from=build /out/netview-ingest /usr/local/bin/netview-ingest\nUSER 65532:65532\n", new: "COPY --from=build /out/netview-ingest /usr/local/bin/netview-ingest\n"}}, "needs no root", ""},
		{"context carries the engine cache", []edit{{file: "Dockerfile.dockerignore", old: "\n.cache\n", new: "\n"}}, "leave out .cache", ""},
	}
	// TLS, enrollment, trusted proxies, the admin token, the analyst's
	// reach (security_test.go).
	const (
		initS   = "compose/init-secrets.sh"
		secretF = "k8s/secret.example.yaml"
	)
	cases = append(cases, []mutation{
		{"compose node without TLS or plain-http", []edit{{file: compose, old: "    - --ingest.plain-http=true\n", new: ""}}, "would refuse to start", ""},
		{"plain-http without a reason", []edit{{file: compose, old: "    # Plain HTTP on the stack's internal network only: the node publishes no\n    # port, and nginx terminates TLS in front of it.\n", new: ""}}, "without a comment", ""},
		{"plain-http node published", []edit{{file: compose, old: "  secrets: [ingest_tokens]\n", new: "  secrets: [ingest_tokens]\n  ports: [\"8091:8090\"]\n"}}, "yet publishes ports", ""},
		{"health check speaks TLS to a plain node", []edit{{file: compose, old: "http://127.0.0.1:8090/healthz", new: "https://127.0.0.1:8090/healthz"}}, "but the node speaks http", ""},
		{"no trusted proxy behind nginx", []edit{{file: compose, old: "    - --ingest.trusted-proxies=172.30.90.10\n", new: ""}}, "no --ingest.trusted-proxies", ""},
		{"trusting the whole subnet", []edit{{file: compose, old: "--ingest.trusted-proxies=172.30.90.10", new: "--ingest.trusted-proxies=172.30.90.0/24"}}, "the network's gateway", ""},
		{"trusting another address", []edit{{file: compose, old: "--ingest.trusted-proxies=172.30.90.10", new: "--ingest.trusted-proxies=172.30.90.11"}}, "which is not nginx", ""},
		{"no trusted proxy for query behind nginx", []edit{{file: compose, old: "    - --query.trusted-proxies=172.30.90.10\n", new: ""}}, "no --query.trusted-proxies", ""},
		{"query trusting the whole subnet", []edit{{file: compose, old: "--query.trusted-proxies=172.30.90.10", new: "--query.trusted-proxies=172.30.90.0/24"}}, "--query.trusted-proxies=172.30.90.0/24 trusts 172.30.90.1, the network's gateway", ""},
		{"nginx without a fixed address", []edit{{file: compose, old: "    networks:\n      default:\n        ipv4_address: 172.30.90.10\n", new: ""}}, "no fixed ipv4_address", ""},
		{"shared static tokens", []edit{{file: compose, old: "    - --ingest.max-body=4194304\n", new: "    - --ingest.max-body=4194304\n    - --ingest.shared-tokens=true\n"}}, "shared-tokens lets", ""},
		{"compose without admin token", []edit{{file: compose, old: "    - --query.admin.token-file=/run/secrets/admin_tokens\n", new: ""}}, "no --query.admin.token-file", ""},
		{"compose admin token not a secret of the node", []edit{{file: compose, old: "secrets: [api_tokens, analyst_tokens, admin_tokens]", new: "secrets: [api_tokens, analyst_tokens]"}}, "does not take secret admin_tokens", ""},
		{"compose sensor with a static token", []edit{{file: compose, old: "--sensor.enroll-secret-file=/run/secrets/sensor_enroll_secret", new: "--sensor.token-file=/run/secrets/sensor_enroll_secret"}}, "a static token works only", ""},
		{"compose sensor over http", []edit{{file: compose, old: "--sensor.ingest=https://127.0.0.1:8090", new: "--sensor.ingest=http://127.0.0.1:8090"}}, "is not https", ""},
		{"compose sensor trusts no CA", []edit{{file: compose, old: "      - --sensor.ca-file=/run/secrets/tls_ca\n", new: ""}}, "neither --sensor.ca-file", ""},
		{"compose sensor CA file not a certificate", []edit{{file: compose, old: "file: ./secrets/tls/ca.crt", new: "file: ./secrets/tls/server.key"}}, "holds no PEM certificate", ""},
		{"certificate not for the sensor's address", []edit{{file: initS, old: `sans="DNS:localhost,IP:127.0.0.1,IP:::1"`, new: `sans="DNS:localhost,IP:::1"`}}, "does not verify against --sensor.ca-file", ""},
		{"sensor's secret not one ingest accepts", []edit{{file: initS, old: `head -n 1 "$secrets/ingest.tokens" > "$secrets/sensor.enroll-secret"`, new: `rand > "$secrets/sensor.enroll-secret"`}}, "is not a line of the ingest nodes'", ""},
		{"nginx ingest listener in the clear", []edit{{file: nginx, old: "listen 8090 ssl;", new: "listen 8090;"}}, "without ssl", ""},
		{"nginx query listener in the clear", []edit{{file: nginx, old: "listen 8080 ssl;", new: "listen 8080;"}}, "without ssl", ""},
		{"enrollment not passed", []edit{{file: nginx, old: "        location = /v1/enroll {\n            proxy_pass http://netview_ingest;\n        }\n", new: ""}}, "does not pass /v1/enroll", ""},
		{"rotation to the query nodes", []edit{{file: nginx, old: "location = /v1/rotate {\n            proxy_pass http://netview_ingest;", new: "location = /v1/rotate {\n            proxy_pass http://netview_query;"}}, "/v1/rotate is not passed to the ingest upstream", ""},
		{"client address dropped", []edit{{file: nginx, old: "location = /v1/enroll {\n", new: "location = /v1/enroll {\n            proxy_set_header Host $host;\n"}}, "sets X-Forwarded-For", ""},
		{"nginx certificate not from a secret", []edit{{file: nginx, old: "ssl_certificate /run/secrets/tls_cert;", new: "ssl_certificate /etc/nginx/cert.pem;"}}, "is not a Compose secret", ""},
		{"k8s plain HTTP", []edit{{file: ingest, old: "            - --ingest.tls-cert=/etc/netview/tls/tls.crt\n            - --ingest.tls-key=/etc/netview/tls/tls.key\n", new: "            - --ingest.plain-http=true\n"}}, "pod network is shared", ""},
		{"k8s without TLS", []edit{{file: query, old: "            - --query.tls-cert=/etc/netview/tls/tls.crt\n            - --query.tls-key=/etc/netview/tls/tls.key\n", new: ""}}, "would refuse to start", ""},
		{"k8s half a key pair", []edit{{file: ingest, old: "            - --ingest.tls-key=/etc/netview/tls/tls.key\n", new: ""}}, "go together", ""},
		{"k8s probe over http", []edit{{file: ingest, old: "              scheme: HTTPS\n", new: ""}}, "scheme HTTP, but the program speaks HTTPS", ""},
		{"k8s TLS from an Opaque Secret", []edit{{file: secretF, old: "  name: netview-ingest-tls\n  namespace: netview\ntype: kubernetes.io/tls", new: "  name: netview-ingest-tls\n  namespace: netview\ntype: Opaque"}}, "not kubernetes.io/tls", ""},
		{"k8s TLS key not mounted", []edit{{file: query, old: "--query.tls-key=/etc/netview/tls/tls.key", new: "--query.tls-key=/etc/netview/query/tls.key"}}, "TLS file /etc/netview/query/tls.key", ""},
		{"Prometheus scrapes http", []edit{{file: ingest, old: "        prometheus.io/scheme: https\n", new: ""}}, "Prometheus would scrape", ""},
		{"k8s without admin token", []edit{{file: query, old: "            - --query.admin.token-file=/etc/netview/query/admin-tokens\n", new: ""}}, "no --query.admin.token-file", ""},
		{"k8s admin token from nowhere", []edit{{file: query, old: "              - key: admin-tokens\n                path: admin-tokens\n", new: ""}}, "not a file of a Secret", ""},
		{"k8s bad trusted proxy", []edit{{file: "k8s/config.yaml", old: `NETVIEW_INGEST_TRUSTED_PROXIES: ""`, new: `NETVIEW_INGEST_TRUSTED_PROXIES: "ingress-nginx"`}}, "neither an address nor a CIDR", ""},
		{"DaemonSet with a static token", []edit{{file: sensor, old: "--sensor.enroll-secret-file=/etc/netview/sensor/enroll-secret", new: "--sensor.token-file=/etc/netview/sensor/enroll-secret"}}, "a static token works only", ""},
		{"DaemonSet over http", []edit{{file: "k8s/config.yaml", old: `"https://netview-ingest.netview.svc:8090`, new: `"http://netview-ingest.netview.svc:8090`}}, "is not https", ""},
		{"DaemonSet trusts no CA", []edit{{file: sensor, old: "            - --sensor.ca-file=/etc/netview/sensor/ca.crt\n", new: ""}}, "neither --sensor.ca-file", ""},
		{"DaemonSet CA from nowhere", []edit{{file: sensor, old: "              - key: ca.crt\n                path: ca.crt", new: "              - key: ca.crt\n                path: ca.pem"}}, "--sensor.ca-file: /etc/netview/sensor/ca.crt is not a file", ""},
		{"eBPF forced without its capabilities", []edit{{file: sensor, old: "            - --sensor.state=/var/lib/netview-sensor\n", new: "            - --sensor.state=/var/lib/netview-sensor\n            - --sensor.ebpf=on\n"}}, "--sensor.ebpf=on", ""},
		{"unit with a static token", []edit{{file: unitF, old: "--sensor.enroll-secret-file=/etc/netview/sensor.enroll-secret", new: "--sensor.token-file=/etc/netview/sensor.enroll-secret"}}, "a static token works only", ""},
		{"install.sh drops the CA", []edit{{file: "systemd/install.sh", old: `if ((ca)); then args+=" --sensor.ca-file=$ca_path"; fi`, new: ``}}, "0644 CA file", ""},
		{"analyst reads the credentials' local table", []edit{{file: users, old: "                <query>REVOKE SELECT ON netview.credentials_local</query>\n", new: ""}}, "may read netview.credentials_local", ""},
		{"analyst reads query_log", []edit{{file: users, old: "'system.query_log':'0',", new: ""}}, "lacks 'system.query_log':'0'", ""},
		{"analyst may lift the filters", []edit{{file: users, old: "                <additional_table_filters><const/></additional_table_filters>\n", new: ""}}, "could change additional_table_filters", ""},
	}...)
	// Faults only a tool catches, when it is installed.
	cases = append(cases,
		mutation{"nginx directive typo", []edit{{file: nginx, old: "proxy_next_upstream_tries 2;", new: "proxy_next_upstream_triez 2;"}}, "nginx -t refuses", "nginx"},
		mutation{"unit value systemd refuses", []edit{{file: unitF, old: "SystemCallFilter=@system-service", new: "SystemCallFilter=@system-servic"}}, "systemd-analyze verify", "systemd-analyze"},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.needs != "" {
				if _, err := exec.LookPath(c.needs); err != nil {
					t.Skipf("only %s catches this fault, and it is not installed", c.needs)
				}
			}
			t.Parallel()
			dir := t.TempDir()
			copyTree(t, deployDir(t), dir)
			for _, e := range c.edits {
				path := filepath.Join(dir, e.file)
				src, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(src), e.old) {
					t.Fatalf("%s does not contain %q: update this case", e.file, e.old)
				}
				n := 1
				if e.all {
					n = -1
				}
				if err := os.WriteFile(path, []byte(strings.Replace(string(src), e.old, e.new, n)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			b, probs := loadBundle(t, dir)
			probs = append(probs, runChecks(b)...)
			for _, p := range probs {
				if strings.Contains(p, "check panicked") {
					t.Errorf("a check crashed on the broken copy instead of reporting it: %s", p)
				}
			}
			for _, p := range probs {
				if strings.Contains(p, c.want) {
					return
				}
			}
			t.Errorf("the broken copy passed: no finding mentions %q; findings:\n%s", c.want, strings.Join(probs, "\n"))
		})
	}
}
