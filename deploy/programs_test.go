package deploy

// The programs as the oracle of what is real: their flag sets (built by
// the same RegisterFlags calls as their mains), their TLS settings, their
// HTTP handlers (which probe paths are routes, which depend on storage),
// and the sensor flags every target checks alike.

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/netview/netview/ingest"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/internal/tlsconf"
	"github.com/netview/netview/query"
	"github.com/netview/netview/sensor"
	"github.com/valyala/fasthttp"
)

type program string

const (
	progIngest program = "netview-ingest"
	progQuery  program = "netview-query"
	progSensor program = "netview-sensor"
)

// flagSet is the program's flag set, built by the same RegisterFlags calls
// as its main.
func flagSet(p program) *flag.FlagSet {
	fs, _ := programFlags(p)
	return fs
}

// programFlags is flagSet with the TLS settings its flags fill: nil for
// the sensor, which serves no HTTP.
func programFlags(p program) (*flag.FlagSet, *tlsconf.Server) {
	fs := flag.NewFlagSet(string(p), flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var sc store.Config
	switch p {
	case progIngest:
		var ic ingest.Config
		sc.RegisterFlags(fs)
		ic.RegisterFlags(fs)
		return fs, &ic.TLS
	case progQuery:
		var qc query.Config
		sc.RegisterFlags(fs)
		qc.RegisterFlags(fs)
		return fs, &qc.TLS
	case progSensor:
		var c sensor.Config
		c.RegisterFlags(fs)
		return fs, nil
	}
	panic("unknown program " + p)
}

// serverTLS parses args as ingest or query would and returns what their
// own TLS settings make of them: Validate is the check the program runs
// before it listens (TLS, or plain HTTP only when asked for).
func serverTLS(p program, args []string) (*tlsconf.Server, error) {
	if p != progIngest && p != progQuery {
		return nil, fmt.Errorf("%s serves no HTTP", p)
	}
	fs, tls := programFlags(p)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return tls, tls.Validate()
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

// val is a parsed flag's value (its default when not given).
func val(fs *flag.FlagSet, name string) string {
	f := fs.Lookup(name)
	if f == nil {
		panic("no flag " + name)
	}
	return f.Value.String()
}

func durFlag(fs *flag.FlagSet, name string) time.Duration {
	d, _ := time.ParseDuration(val(fs, name))
	return d
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

// fakeStore answers every statement with err (nil: storage is up).
type fakeStore struct{ err error }

func (f fakeStore) Exec(context.Context, store.Query) error { return f.err }

func (f fakeStore) Insert(context.Context, string, proto.Input) error { return f.err }

func (f fakeStore) Close() error { return nil }

func (f fakeStore) Select(context.Context, store.Query, proto.Results, func(int) error) error {
	return f.err
}

// parseConfig is a program's Config (C) filled from args by its own
// RegisterFlags.
func parseConfig[C any, PC interface {
	*C
	RegisterFlags(*flag.FlagSet)
}](args ...string) (C, error) {
	var c C
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	PC(&c).RegisterFlags(fs)
	err := fs.Parse(args)
	return c, err
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
		c, err := parseConfig[ingest.Config]("--ingest.token=probe-check")
		if err != nil {
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
		c, err := parseConfig[query.Config]("--query.token=probe-check")
		if err != nil {
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

// storageStatuses is what GET path answers from prog's real handler with
// storage up and with it down; ok is false, and the problem added, when
// prog serves no HTTP.
func storageStatuses(p *problems, where string, prog program, path string) (up, down int, ok bool) {
	up, err := routeStatus(prog, path, true)
	if err != nil {
		p.add("%s: %v", where, err)
		return 0, 0, false
	}
	down, _ = routeStatus(prog, path, false)
	return up, down, true
}

// checkReadinessPath: a readiness (health) path answers 200 while storage
// is up and something else while it is down, on the program's real handler.
func checkReadinessPath(p *problems, where string, prog program, path string) {
	up, down, ok := storageStatuses(p, where, prog, path)
	if !ok {
		return
	}
	if up != 200 {
		p.add("%s: GET %s answers %d from %s, not 200: not a health route of the program", where, path, up, prog)
	} else if down == 200 {
		p.add("%s: GET %s answers 200 from %s while storage is down: it does not tell readiness", where, path, prog)
	}
}

// checkLivenessPath: a liveness path answers 200 even while storage is
// down, or a ClickHouse outage would restart every node.
func checkLivenessPath(p *problems, where string, prog program, path string) {
	up, down, ok := storageStatuses(p, where, prog, path)
	if !ok {
		return
	}
	switch {
	case up != 200:
		p.add("%s: GET %s answers %d from %s, not 200: not a route of the program", where, path, up, prog)
	case down != 200:
		p.add("%s: GET %s answers %d from %s while storage is down: a ClickHouse outage would restart every node", where, path, down, prog)
	}
}

// tokenFileFlags are the flags naming files of static secrets.
var tokenFileFlags = []string{"ingest.token-file", "query.token-file", "query.analyst.token-file", "query.admin.token-file"}

// checkSensorSecrets: a sensor enrolls with an enrollment secret for a key
// of its own; a static token (heartbeats for any sensor id, and only with
// --ingest.shared-tokens) is not used.
func checkSensorSecrets(p *problems, where string, fs *flag.FlagSet) {
	for _, f := range []string{"sensor.token", "sensor.token-file"} {
		if val(fs, f) != "" {
			p.add("%s: --%s: a static token works only with --ingest.shared-tokens, and lets its holder write as any sensor; give --sensor.enroll-secret-file", where, f)
		}
	}
	if val(fs, "sensor.enroll-secret-file") == "" {
		p.add("%s: no --sensor.enroll-secret-file: the sensor cannot enroll for a key of its own", where)
	}
}

// checkEBPF: --sensor.ebpf=on makes the sensor refuse to start without
// the probes, which need BPF and PERFMON; auto falls back to polling.
func checkEBPF(p *problems, where string, fs *flag.FlagSet, caps []string) {
	if val(fs, "sensor.ebpf") == "on" && !(contains(caps, "BPF") && contains(caps, "PERFMON")) {
		p.add("%s: --sensor.ebpf=on, but the sensor has capabilities %v, not BPF and PERFMON: it would refuse to start (auto falls back to polling)", where, caps)
	}
}
