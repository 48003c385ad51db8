package deploy

// Parsers and loaders for the deployment files: YAML (through node and the
// npm package yaml, since go.mod takes no YAML library), nginx
// configuration, systemd units, ClickHouse XML, and the programs' own flag
// sets and HTTP handlers as the oracle of what is real.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/valyala/fasthttp"

	"github.com/netview/netview/ingest"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/internal/tlsconf"
	"github.com/netview/netview/query"
	"github.com/netview/netview/sensor"
)

// ---------------------------------------------------------------------------
// YAML

// yamlScript turns every document of the YAML on stdin into JSON, refusing
// documents with errors or warnings (duplicate keys, bad indentation...).
// Kubernetes reads YAML 1.1 (so 0440 is octal and merge keys work), Compose
// YAML 1.2 with merge keys; argv[1] says which.
const yamlScript = `
const YAML = require(process.env.NETVIEW_NODE_MODULES + '/yaml');
let src = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (c) => { src += c; });
process.stdin.on('end', () => {
  const version = process.argv[1];
  const docs = YAML.parseAllDocuments(src, { version, merge: true, uniqueKeys: true, prettyErrors: true });
  const out = [];
  for (const d of [].concat(docs)) {
    const bad = [].concat(d.errors || [], d.warnings || []);
    if (bad.length) {
      process.stderr.write(bad.map((e) => e.message).join('\n') + '\n');
      process.exit(2);
    }
    const v = d.toJS({ maxAliasCount: 1000 });
    if (v !== null && v !== undefined) out.push(v);
  }
  process.stdout.write(JSON.stringify(out));
});
`

// nodeModules returns $NETVIEW_NODE_MODULES, or skips the test without it.
func nodeModules(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("NETVIEW_NODE_MODULES")
	if dir == "" {
		t.Skip("NETVIEW_NODE_MODULES is not set: the YAML checks need node and the npm package yaml " +
			"(make installs yaml@2.9.1 into .cache/node/node_modules and sets NETVIEW_NODE_MODULES; " +
			"by hand: npm install --prefix .cache/node yaml@2.9.1 && export NETVIEW_NODE_MODULES=$PWD/.cache/node/node_modules)")
	}
	return dir
}

var (
	yamlMu    sync.Mutex
	yamlCache = map[[32]byte][]json.RawMessage{}
	yamlOnce  sync.Once
	yamlSetup error
)

// checkYAMLTool fails the test when NETVIEW_NODE_MODULES is set but node or
// the package cannot be used: a broken setup must not pass as a skip.
func checkYAMLTool(t testing.TB) {
	t.Helper()
	nodeModules(t)
	yamlOnce.Do(func() {
		if _, err := exec.LookPath("node"); err != nil {
			yamlSetup = fmt.Errorf("NETVIEW_NODE_MODULES is set but node is not on PATH: %w", err)
			return
		}
		docs, err := parseYAML("1.2", []byte("a: [1, {b: c}]\n---\nd: e\n"))
		if err != nil {
			yamlSetup = fmt.Errorf("NETVIEW_NODE_MODULES=%s: cannot parse YAML with it: %w", os.Getenv("NETVIEW_NODE_MODULES"), err)
			return
		}
		if len(docs) != 2 || string(docs[0]) != `{"a":[1,{"b":"c"}]}` {
			yamlSetup = fmt.Errorf("NETVIEW_NODE_MODULES=%s: yaml parsed a test document wrongly: %s", os.Getenv("NETVIEW_NODE_MODULES"), docs)
		}
	})
	if yamlSetup != nil {
		t.Fatal(yamlSetup)
	}
}

// parseYAML returns every document of src as JSON.
func parseYAML(version string, src []byte) ([]json.RawMessage, error) {
	key := sha256.Sum256(append([]byte(version+"\x00"), src...))
	yamlMu.Lock()
	docs, ok := yamlCache[key]
	yamlMu.Unlock()
	if ok {
		return docs, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "-e", yamlScript, version)
	cmd.Stdin = bytes.NewReader(src)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	if err := json.Unmarshal(stdout.Bytes(), &docs); err != nil {
		return nil, fmt.Errorf("node's output: %w", err)
	}
	yamlMu.Lock()
	yamlCache[key] = docs
	yamlMu.Unlock()
	return docs, nil
}

// ---------------------------------------------------------------------------
// Kubernetes objects: the fields the checks read.

type k8sMeta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

type k8sObject struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   k8sMeta           `json:"metadata"`
	Data       map[string]string `json:"data"`
	StringData map[string]string `json:"stringData"`
	Type       string            `json:"type"` // of a Secret
	Spec       json.RawMessage   `json:"spec"`
	file       string
}

func (o *k8sObject) String() string {
	return fmt.Sprintf("%s %s/%s (%s)", o.Kind, o.Metadata.Namespace, o.Metadata.Name, o.file)
}

type workloadSpec struct {
	Replicas *int `json:"replicas"`
	Selector struct {
		MatchLabels map[string]string `json:"matchLabels"`
	} `json:"selector"`
	Template struct {
		Metadata k8sMeta `json:"metadata"`
		Spec     podSpec `json:"spec"`
	} `json:"template"`
}

type podSpec struct {
	HostNetwork                   bool                `json:"hostNetwork"`
	HostPID                       bool                `json:"hostPID"`
	HostIPC                       bool                `json:"hostIPC"`
	DNSPolicy                     string              `json:"dnsPolicy"`
	AutomountServiceAccountToken  *bool               `json:"automountServiceAccountToken"`
	TerminationGracePeriodSeconds *int                `json:"terminationGracePeriodSeconds"`
	SecurityContext               *podSecurityContext `json:"securityContext"`
	Tolerations                   []toleration        `json:"tolerations"`
	Containers                    []container         `json:"containers"`
	InitContainers                []container         `json:"initContainers"`
	Volumes                       []volume            `json:"volumes"`
}

type podSecurityContext struct {
	RunAsNonRoot   *bool    `json:"runAsNonRoot"`
	RunAsUser      *int64   `json:"runAsUser"`
	FSGroup        *int64   `json:"fsGroup"`
	SeccompProfile *profile `json:"seccompProfile"`
}

type profile struct {
	Type string `json:"type"`
}

type toleration struct {
	Key      string `json:"key"`
	Operator string `json:"operator"`
	Effect   string `json:"effect"`
}

type container struct {
	Name    string   `json:"name"`
	Image   string   `json:"image"`
	Command []string `json:"command"`
	Args    []string `json:"args"`
	Env     []struct {
		Name      string `json:"name"`
		Value     string `json:"value"`
		ValueFrom *struct {
			SecretKeyRef    *keyRef `json:"secretKeyRef"`
			ConfigMapKeyRef *keyRef `json:"configMapKeyRef"`
		} `json:"valueFrom"`
	} `json:"env"`
	EnvFrom []struct {
		ConfigMapRef *struct {
			Name string `json:"name"`
		} `json:"configMapRef"`
		SecretRef *struct {
			Name string `json:"name"`
		} `json:"secretRef"`
	} `json:"envFrom"`
	Ports []struct {
		Name          string `json:"name"`
		ContainerPort int    `json:"containerPort"`
	} `json:"ports"`
	StartupProbe   *probe `json:"startupProbe"`
	ReadinessProbe *probe `json:"readinessProbe"`
	LivenessProbe  *probe `json:"livenessProbe"`
	Resources      struct {
		Requests map[string]string `json:"requests"`
		Limits   map[string]string `json:"limits"`
	} `json:"resources"`
	SecurityContext *securityContext `json:"securityContext"`
	VolumeMounts    []struct {
		Name      string `json:"name"`
		MountPath string `json:"mountPath"`
		ReadOnly  bool   `json:"readOnly"`
	} `json:"volumeMounts"`
}

type keyRef struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

type probe struct {
	HTTPGet *struct {
		Path   string      `json:"path"`
		Port   intOrString `json:"port"`
		Scheme string      `json:"scheme"` // HTTP (the default) or HTTPS
	} `json:"httpGet"`
	TCPSocket *struct {
		Port intOrString `json:"port"`
	} `json:"tcpSocket"`
	Exec             *json.RawMessage `json:"exec"`
	GRPC             *json.RawMessage `json:"grpc"`
	PeriodSeconds    int              `json:"periodSeconds"`
	TimeoutSeconds   int              `json:"timeoutSeconds"`
	FailureThreshold int              `json:"failureThreshold"`
}

// intOrString is a port given by number or by name.
type intOrString string

func (p *intOrString) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*p = intOrString(s)
		return nil
	}
	var n int
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*p = intOrString(fmt.Sprint(n))
	return nil
}

type securityContext struct {
	RunAsUser                *int64 `json:"runAsUser"`
	RunAsNonRoot             *bool  `json:"runAsNonRoot"`
	Privileged               *bool  `json:"privileged"`
	AllowPrivilegeEscalation *bool  `json:"allowPrivilegeEscalation"`
	ReadOnlyRootFilesystem   *bool  `json:"readOnlyRootFilesystem"`
	Capabilities             *struct {
		Add  []string `json:"add"`
		Drop []string `json:"drop"`
	} `json:"capabilities"`
	SeccompProfile  *profile `json:"seccompProfile"`
	AppArmorProfile *profile `json:"appArmorProfile"`
}

type volume struct {
	Name     string `json:"name"`
	HostPath *struct {
		Path string `json:"path"`
		Type string `json:"type"`
	} `json:"hostPath"`
	Secret *struct {
		SecretName  string `json:"secretName"`
		DefaultMode *int   `json:"defaultMode"`
		Items       []struct {
			Key  string `json:"key"`
			Path string `json:"path"`
		} `json:"items"`
	} `json:"secret"`
	ConfigMap *struct {
		Name string `json:"name"`
	} `json:"configMap"`
	EmptyDir *json.RawMessage `json:"emptyDir"`
}

type hpaSpec struct {
	ScaleTargetRef struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Name       string `json:"name"`
	} `json:"scaleTargetRef"`
	MinReplicas *int `json:"minReplicas"`
	MaxReplicas int  `json:"maxReplicas"`
	Metrics     []struct {
		Type     string `json:"type"`
		Resource *struct {
			Name   string `json:"name"`
			Target struct {
				Type               string `json:"type"`
				AverageUtilization *int   `json:"averageUtilization"`
			} `json:"target"`
		} `json:"resource"`
	} `json:"metrics"`
}

type serviceSpec struct {
	Type     string            `json:"type"`
	Selector map[string]string `json:"selector"`
	Ports    []struct {
		Name       string      `json:"name"`
		Port       int         `json:"port"`
		TargetPort intOrString `json:"targetPort"`
	} `json:"ports"`
}

type pdbSpec struct {
	MinAvailable *intOrString `json:"minAvailable"`
	Selector     struct {
		MatchLabels map[string]string `json:"matchLabels"`
	} `json:"selector"`
}

// ---------------------------------------------------------------------------
// Compose

type composeFile struct {
	Name     string                    `json:"name"`
	Services map[string]composeService `json:"services"`
	Secrets  map[string]struct {
		File string `json:"file"`
	} `json:"secrets"`
	Volumes  map[string]json.RawMessage `json:"volumes"`
	Networks map[string]struct {
		IPAM *struct {
			Config []struct {
				Subnet string `json:"subnet"`
			} `json:"config"`
		} `json:"ipam"`
	} `json:"networks"`
}

type composeService struct {
	Image string `json:"image"`
	Build *struct {
		Context    string `json:"context"`
		Dockerfile string `json:"dockerfile"`
		Target     string `json:"target"`
	} `json:"build"`
	Command     []string          `json:"command"`
	Entrypoint  []string          `json:"entrypoint"`
	Environment map[string]string `json:"environment"`
	Healthcheck *struct {
		Test        []string `json:"test"`
		Interval    string   `json:"interval"`
		Timeout     string   `json:"timeout"`
		Retries     int      `json:"retries"`
		StartPeriod string   `json:"start_period"`
	} `json:"healthcheck"`
	DependsOn map[string]struct {
		Condition string `json:"condition"`
	} `json:"depends_on"`
	Ports           []string        `json:"ports"`
	Volumes         []string        `json:"volumes"`
	Secrets         []string        `json:"secrets"`
	Profiles        []string        `json:"profiles"`
	CapAdd          []string        `json:"cap_add"`
	CapDrop         []string        `json:"cap_drop"`
	NetworkMode     string          `json:"network_mode"`
	PID             string          `json:"pid"`
	User            string          `json:"user"`
	ReadOnly        bool            `json:"read_only"`
	SecurityOpt     []string        `json:"security_opt"`
	StopGracePeriod string          `json:"stop_grace_period"`
	Restart         string          `json:"restart"`
	Hostname        string          `json:"hostname"`
	Ulimits         json.RawMessage `json:"ulimits"`
	// Networks is a list of names or a map of name to settings; only the
	// map form with ipv4_address is read.
	Networks json.RawMessage `json:"networks"`
}

// ipv4On returns the fixed ipv4_address a service has on network net, or "".
func (s composeService) ipv4On(net string) string {
	var m map[string]struct {
		IPv4 string `json:"ipv4_address"`
	}
	if json.Unmarshal(s.Networks, &m) != nil {
		return ""
	}
	return m[net].IPv4
}

var interpRe = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// interpolate expands Compose's ${VAR}, ${VAR:-default}, ${VAR:?message}
// and $$ with env, and reports the variables it needed and did not find.
func interpolate(s string, env map[string]string) (string, []string) {
	var missing []string
	out := interpRe.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		sm := interpRe.FindStringSubmatch(m)
		name, op, arg := sm[1], sm[2], sm[3]
		if name == "" {
			name = sm[4]
		}
		v, ok := env[name]
		switch {
		case ok && (v != "" || !strings.HasPrefix(op, ":")):
			return v
		case strings.HasSuffix(op, "-"):
			return arg
		default:
			missing = append(missing, name)
			return ""
		}
	})
	return out, missing
}

// ---------------------------------------------------------------------------
// The programs' flags

type program string

const (
	progIngest program = "netview-ingest"
	progQuery  program = "netview-query"
	progSensor program = "netview-sensor"
)

// flagSet is the program's flag set, built by the same RegisterFlags calls
// as its main.
func flagSet(p program) *flag.FlagSet {
	fs := flag.NewFlagSet(string(p), flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	switch p {
	case progIngest:
		var sc store.Config
		var ic ingest.Config
		sc.RegisterFlags(fs)
		ic.RegisterFlags(fs)
	case progQuery:
		var sc store.Config
		var qc query.Config
		sc.RegisterFlags(fs)
		qc.RegisterFlags(fs)
	case progSensor:
		var c sensor.Config
		c.RegisterFlags(fs)
	default:
		panic("unknown program " + p)
	}
	return fs
}

// serverTLS parses args as ingest or query would and returns what their
// own TLS settings make of them: Validate is the check the program runs
// before it listens (TLS, or plain HTTP only when asked for).
func serverTLS(p program, args []string) (*tlsconf.Server, error) {
	fs := flag.NewFlagSet(string(p), flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var sc store.Config
	sc.RegisterFlags(fs)
	switch p {
	case progIngest:
		var c ingest.Config
		c.RegisterFlags(fs)
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		return &c.TLS, c.TLS.Validate()
	case progQuery:
		var c query.Config
		c.RegisterFlags(fs)
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		return &c.TLS, c.TLS.Validate()
	}
	return nil, fmt.Errorf("%s serves no HTTP", p)
}

// parseFlags parses args as p would. Every argument must be --name=value:
// one form everywhere, and no value can be mistaken for a flag.
func parseFlags(p program, args []string) (*flag.FlagSet, error) {
	for _, a := range args {
		if !strings.HasPrefix(a, "--") || !strings.Contains(a, "=") {
			return nil, fmt.Errorf("%s argument %q: write every flag as --name=value", p, a)
		}
	}
	fs := flagSet(p)
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("%s %s: %w", p, strings.Join(args, " "), err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%s: arguments that are not flags: %q", p, fs.Args())
	}
	return fs, nil
}

// flagDefault is the default value of a flag of p, as text.
func flagDefault(p program, name string) string {
	f := flagSet(p).Lookup(name)
	if f == nil {
		panic(fmt.Sprintf("%s has no flag %s", p, name))
	}
	return f.DefValue
}

// wasSet reports whether args set the flag.
func wasSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

// imageProgram maps an image such as registry/netview/netview-ingest:0.1.0
// to the program it runs.
func imageProgram(image string) (program, bool) {
	repo := image
	if i := strings.Index(repo, "@"); i >= 0 {
		repo = repo[:i]
	}
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	base := repo[strings.LastIndex(repo, "/")+1:]
	for _, p := range []program{progIngest, progQuery, progSensor} {
		if base == string(p) {
			return p, true
		}
	}
	return "", false
}

// imageTag splits an image reference into repository, tag and digest.
func imageTag(image string) (repo, tag, digest string) {
	repo = image
	if i := strings.Index(repo, "@"); i >= 0 {
		repo, digest = repo[:i], repo[i+1:]
	}
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo, tag = repo[:i], repo[i+1:]
	}
	return repo, tag, digest
}

// ---------------------------------------------------------------------------
// The programs' HTTP routes

// fakeStore answers every statement with err (nil: storage is up).
type fakeStore struct{ err error }

func (f fakeStore) Exec(context.Context, store.Query) error           { return f.err }
func (f fakeStore) Insert(context.Context, string, proto.Input) error { return f.err }
func (f fakeStore) Close() error                                      { return nil }
func (f fakeStore) Select(context.Context, store.Query, proto.Results, func(int) error) error {
	return f.err
}

// routeStatus is what p's real handler answers to GET path, with storage up
// or down: the oracle of which probe paths are routes and which depend on
// storage.
func routeStatus(p program, path string, storageUp bool) (int, error) {
	st := fakeStore{}
	if !storageUp {
		st.err = fmt.Errorf("%w: test", store.ErrUnavailable)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var handle func(*fasthttp.RequestCtx)
	switch p {
	case progIngest:
		var c ingest.Config
		fs := flag.NewFlagSet("", flag.ContinueOnError)
		c.RegisterFlags(fs)
		if err := fs.Parse([]string{"--ingest.token=probe-check"}); err != nil {
			return 0, err
		}
		srv, err := ingest.New(c, st, log)
		if err != nil {
			return 0, err
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.Shutdown(ctx, srv.HTTPServer())
		}()
		handle = srv.Handle
	case progQuery:
		var c query.Config
		fs := flag.NewFlagSet("", flag.ContinueOnError)
		c.RegisterFlags(fs)
		if err := fs.Parse([]string{"--query.token=probe-check"}); err != nil {
			return 0, err
		}
		srv, err := query.New(c, st, nil, log)
		if err != nil {
			return 0, err
		}
		handle = srv.Handle
	default:
		return 0, fmt.Errorf("%s serves no HTTP", p)
	}
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("GET")
	ctx.Request.SetRequestURI(path)
	handle(&ctx)
	return ctx.Response.StatusCode(), nil
}

// ---------------------------------------------------------------------------
// nginx

type directive struct {
	name  string
	args  []string
	block []*directive // nil for a simple directive
	line  int
}

// parseNginx reads nginx configuration syntax: directives with arguments
// ending in ";" or a "{ ... }" block, "#" comments, quoted strings.
func parseNginx(src string) ([]*directive, error) {
	type token struct {
		text   string
		quoted bool
		line   int
	}
	var toks []token
	line := 1
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case c == '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '{' || c == '}' || c == ';':
			toks = append(toks, token{text: string(c), line: line})
			i++
		case c == '"' || c == '\'':
			var b strings.Builder
			j := i + 1
			for ; j < len(src) && src[j] != c; j++ {
				if src[j] == '\\' && j+1 < len(src) {
					j++
					switch src[j] {
					case 'n':
						b.WriteByte('\n')
						continue
					case 't':
						b.WriteByte('\t')
						continue
					}
				}
				if src[j] == '\n' {
					line++
				}
				b.WriteByte(src[j])
			}
			if j >= len(src) {
				return nil, fmt.Errorf("line %d: unterminated string", line)
			}
			toks = append(toks, token{text: b.String(), quoted: true, line: line})
			i = j + 1
		default:
			j := i
			for j < len(src) && !strings.ContainsRune(" \t\r\n{};#", rune(src[j])) {
				j++
			}
			toks = append(toks, token{text: src[i:j], line: line})
			i = j
		}
	}
	var parse func(depth int) ([]*directive, error)
	pos := 0
	parse = func(depth int) ([]*directive, error) {
		var out []*directive
		for pos < len(toks) {
			t := toks[pos]
			if !t.quoted && t.text == "}" {
				if depth == 0 {
					return nil, fmt.Errorf("line %d: unexpected }", t.line)
				}
				pos++
				return out, nil
			}
			if !t.quoted && (t.text == "{" || t.text == ";") {
				return nil, fmt.Errorf("line %d: unexpected %s", t.line, t.text)
			}
			d := &directive{name: t.text, line: t.line}
			pos++
			for {
				if pos >= len(toks) {
					return nil, fmt.Errorf("line %d: %s: missing ; or {", d.line, d.name)
				}
				a := toks[pos]
				pos++
				if !a.quoted && a.text == ";" {
					break
				}
				if !a.quoted && a.text == "{" {
					b, err := parse(depth + 1)
					if err != nil {
						return nil, err
					}
					if b == nil {
						b = []*directive{}
					}
					d.block = b
					break
				}
				if !a.quoted && a.text == "}" {
					return nil, fmt.Errorf("line %d: %s: missing ;", d.line, d.name)
				}
				d.args = append(d.args, a.text)
			}
			out = append(out, d)
		}
		if depth > 0 {
			return nil, errors.New("missing }")
		}
		return out, nil
	}
	return parse(0)
}

// find returns the directives named name among ds.
func find(ds []*directive, name string) []*directive {
	var out []*directive
	for _, d := range ds {
		if d.name == name {
			out = append(out, d)
		}
	}
	return out
}

// nginxSize converts an nginx size (4m, 512k, 100) to bytes.
func nginxSize(s string) (int64, error) {
	mult := int64(1)
	switch strings.ToLower(s[len(s)-1:]) {
	case "k":
		mult, s = 1<<10, s[:len(s)-1]
	case "m":
		mult, s = 1<<20, s[:len(s)-1]
	case "g":
		mult, s = 1<<30, s[:len(s)-1]
	}
	var n int64
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	return n * mult, nil
}

// nginxDuration converts an nginx time (45s, 2m, 1h, 500ms, 30) to a duration.
func nginxDuration(s string) (time.Duration, error) {
	if strings.TrimLeft(s, "0123456789") == "" {
		s += "s"
	}
	return time.ParseDuration(s)
}

// ---------------------------------------------------------------------------
// systemd units

// unit is a unit file: section -> key -> values in order (a key may repeat).
type unit map[string]map[string][]string

func parseUnit(src string) (unit, error) {
	u := unit{}
	section := ""
	lines := strings.Split(src, "\n")
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		for strings.HasSuffix(l, "\\") && i+1 < len(lines) {
			i++
			l = strings.TrimSuffix(l, "\\") + " " + strings.TrimSpace(lines[i])
		}
		switch {
		case l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";"):
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			section = l[1 : len(l)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok || section == "" {
				return nil, fmt.Errorf("line %d: %q is not key=value in a section", i+1, l)
			}
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			u[section][k] = append(u[section][k], v)
		}
	}
	return u, nil
}

// last is the effective value of a key that is set once or overridden.
func (u unit) last(section, key string) string {
	vs := u[section][key]
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// expandUnitEnv expands ${VAR} (one word) and $VAR (split on white space)
// in an ExecStart= line as systemd does, with the EnvironmentFile's values.
func expandUnitEnv(words []string, env map[string]string) ([]string, []string) {
	var out, missing []string
	for _, w := range words {
		if strings.HasPrefix(w, "$") && !strings.HasPrefix(w, "${") {
			v, ok := env[w[1:]]
			if !ok {
				missing = append(missing, w[1:])
			}
			out = append(out, strings.Fields(v)...)
			continue
		}
		w = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`).ReplaceAllStringFunc(w, func(m string) string {
			name := m[2 : len(m)-1]
			v, ok := env[name]
			if !ok {
				missing = append(missing, name)
			}
			return v
		})
		out = append(out, w)
	}
	return out, missing
}

// readEnvFile reads KEY=VALUE lines (systemd's EnvironmentFile, Compose's .env).
func readEnvFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			return nil, fmt.Errorf("%s: %q is not KEY=VALUE", path, l)
		}
		env[k] = strings.Trim(v, `"'`)
	}
	return env, nil
}

// ---------------------------------------------------------------------------
// XML

type xmlNode struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Text     string     `xml:",chardata"`
	Children []*xmlNode `xml:",any"`
}

func parseXML(b []byte) (*xmlNode, error) {
	var n xmlNode
	if err := xml.Unmarshal(b, &n); err != nil {
		return nil, err
	}
	return &n, nil
}

// child follows a path of element names; nil if any is missing.
func (n *xmlNode) child(path ...string) *xmlNode {
	for _, name := range path {
		if n == nil {
			return nil
		}
		var next *xmlNode
		for _, c := range n.Children {
			if c.XMLName.Local == name {
				next = c
				break
			}
		}
		n = next
	}
	return n
}

// all returns the children named name.
func (n *xmlNode) all(name string) []*xmlNode {
	if n == nil {
		return nil
	}
	var out []*xmlNode
	for _, c := range n.Children {
		if c.XMLName.Local == name {
			out = append(out, c)
		}
	}
	return out
}

func (n *xmlNode) text() string {
	if n == nil {
		return ""
	}
	return strings.TrimSpace(n.Text)
}

func (n *xmlNode) attr(name string) string {
	if n == nil {
		return ""
	}
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// fromEnv collects the from_env variables named anywhere under n.
func (n *xmlNode) fromEnv(into map[string]bool) {
	if n == nil {
		return
	}
	if v := n.attr("from_env"); v != "" {
		into[v] = true
	}
	for _, c := range n.Children {
		c.fromEnv(into)
	}
}

// ---------------------------------------------------------------------------
// small things

// repoRoot is the repository root (the parent of deploy/).
func repoRoot(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(wd)
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod above %s: %v", wd, err)
	}
	return root
}

// copyTree copies the deployment files under src (the regular files and
// folders, without Go code) to dst.
func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() || strings.HasSuffix(p, ".go") {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sameSet(a, b []string) bool {
	x := append([]string(nil), a...)
	y := append([]string(nil), b...)
	sort.Strings(x)
	sort.Strings(y)
	return strings.Join(x, "\x00") == strings.Join(y, "\x00")
}
