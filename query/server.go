// Package query is Netview's stateless query service: the JSON API behind
// the Console's Network views and Investigate, read from ClickHouse with
// argMax-latest SQL and keyset cursors. Replicas share nothing but the
// store and the cursor secret, so any number can run behind a balancer.
package query

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/netview/netview/console"
	"github.com/netview/netview/internal/audit"
	"github.com/netview/netview/internal/auth"
	"github.com/netview/netview/internal/creds"
	"github.com/netview/netview/internal/prom"
	"github.com/netview/netview/internal/ratelimit"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/internal/tlsconf"
)

// Config configures the query service.
type Config struct {
	Addr string
	TLS  tlsconf.Server
	// Static tokens from flags, files and the environment: the bootstrap
	// credentials of each role. Tokens issued at run time live in the
	// credentials table (see internal/creds) and carry their own role.
	Tokens        auth.TokenFlags // viewers: every view
	AnalystTokens auth.TokenFlags // analysts: views and direct SQL
	AdminTokens   auth.TokenFlags // admins: all of it, and the admin API
	CursorSecret  string
	// MaxListRows caps the v1 lists that return everything (listening,
	// udp, flows): larger results are cut and marked truncated.
	MaxListRows int
	Timeout     time.Duration
	// CredsTTL is how old the in-memory copy of the credentials table may
	// be: a token revoked on one replica is refused by all within it.
	// Zero takes DefaultCredsTTL.
	CredsTTL time.Duration
	// AuthFailRate is how many failed sign-ins a second, in bursts of up to
	// AuthFailBurst, a client address may make before it gets 429s; 0: no
	// limit. TrustedProxies are addresses or prefixes, comma-separated,
	// whose X-Forwarded-For names the client (as --ingest.trusted-proxies).
	AuthFailRate   float64
	AuthFailBurst  int
	TrustedProxies string
	// SQL bounds analysts' statements running at once (see AnalystSQL).
	SQL SQLConfig
	// HistoryDays is how far back at= reaches: the store's
	// --store.history-ttl-days (0: DefaultHistoryDays).
	HistoryDays int
}

// DefaultCredsTTL bounds how long a revoked token keeps working on other
// replicas; each replica rereads the (small) credentials table this often.
const DefaultCredsTTL = 10 * time.Second

// RegisterFlags registers the query flags with a "query." prefix.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "query.addr", "127.0.0.1:8080", "address the API (and Console) listens on")
	c.TLS.Register(fs, "query")
	c.Tokens.Register(fs, "query", "NETVIEW_API_TOKEN", "API token (viewer)")
	c.AnalystTokens.Register(fs, "query.analyst", "NETVIEW_ANALYST_TOKEN", "analyst API token (adds direct SQL)")
	c.AdminTokens.Register(fs, "query.admin", "NETVIEW_ADMIN_TOKEN", "admin API token (adds the admin API)")
	fs.StringVar(&c.CursorSecret, "query.cursor-secret", "", "secret that authenticates cursors; replicas must share it (also $NETVIEW_CURSOR_SECRET; default: derived from the API tokens)")
	fs.IntVar(&c.MaxListRows, "query.max-list-rows", 10_000, "safety cap of the v1 lists that return all rows")
	fs.DurationVar(&c.Timeout, "query.timeout", 30*time.Second, "longest time one request may take")
	c.SQL.RegisterFlags(fs)
	fs.DurationVar(&c.CredsTTL, "query.creds-ttl", DefaultCredsTTL, "how long a token revoked on another replica may still be accepted here (the credentials table is reread this often)")
	fs.Float64Var(&c.AuthFailRate, "query.auth-fail-rate", 1, "failed sign-ins a second per client address (an IPv6 /64), beyond a burst of --query.auth-fail-burst: "+
		"above it the address gets 429, even with a right token, until it slows down; 0: no limit")
	fs.IntVar(&c.AuthFailBurst, "query.auth-fail-burst", 20, "failed sign-ins a client address may make at once before --query.auth-fail-rate applies")
	fs.StringVar(&c.TrustedProxies, "query.trusted-proxies", "", "addresses or CIDR prefixes of proxies whose X-Forwarded-For names the client for the failed sign-in limit, comma-separated")
}

// Server answers the API.
type Server struct {
	cfg      Config
	store    store.Store
	viewers  *auth.Tokens
	analysts *auth.Tokens
	admins   *auth.Tokens
	creds    *creds.Store
	audit    *audit.Log
	proxies  ratelimit.Proxies
	// authFails holds the failed sign-ins of each client (ratelimit.Key).
	authFails *ratelimit.Limiter[netip.Prefix]
	cursors   cursors
	sql       SQLRunner
	exports   *exportLimits
	metrics   serverMetrics
	log       *slog.Logger
}

// SQLRunner runs analysts' SQL, writing the result to w, and returns how
// many rows it wrote; nil disables POST /api/v1/sql. An error that is an
// *apiError with a 4xx status is a refusal of the statement.
type SQLRunner func(ctx context.Context, q, format string, w *fasthttp.RequestCtx) (rows int, err error)

// New returns a server reading st, where the credentials and audit_log
// tables are too. At least one static token (of any role) must be set: an
// open API is never the default, and an admin token issues the others.
func New(cfg Config, st store.Store, sqlRunner SQLRunner, log *slog.Logger) (*Server, error) {
	if cfg.MaxListRows <= 0 || cfg.Timeout <= 0 {
		return nil, errors.New("query: max-list-rows and timeout must be positive")
	}
	if cfg.AuthFailRate < 0 || cfg.AuthFailBurst < 0 {
		return nil, errors.New("query: auth-fail-rate and auth-fail-burst must not be negative")
	}
	proxies, err := ratelimit.ParseProxies(cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	if cfg.CredsTTL <= 0 {
		cfg.CredsTTL = DefaultCredsTTL
	}
	viewers, verr := cfg.Tokens.Load()
	analysts, aerr := cfg.AnalystTokens.Load()
	admins, merr := cfg.AdminTokens.Load()
	if verr != nil && aerr != nil && merr != nil {
		return nil, fmt.Errorf("query: no API token: %w", verr)
	}
	if viewers == nil {
		viewers = auth.NewTokens()
	}
	if analysts == nil {
		analysts = auth.NewTokens()
	}
	if admins == nil {
		admins = auth.NewTokens()
	}
	secret := []byte(cfg.CursorSecret)
	if len(secret) == 0 {
		secret = []byte(os.Getenv("NETVIEW_CURSOR_SECRET"))
	}
	if len(secret) == 0 {
		// Replicas with the same tokens read each other's cursors; the
		// tokens themselves (not their file names) make the secret. Admin
		// tokens count only when set, so the secret of a service without
		// them is what it was before they existed.
		h := sha256.New()
		h.Write([]byte("netview-cursor\x00"))
		h.Write(viewers.Fingerprint())
		h.Write(analysts.Fingerprint())
		if admins.Len() > 0 {
			h.Write(admins.Fingerprint())
		}
		secret = h.Sum(nil)
	}
	return &Server{cfg: cfg, store: st, viewers: viewers, analysts: analysts, admins: admins,
		creds: creds.NewStore(st, cfg.CredsTTL), audit: audit.New(st),
		cursors: cursors{secret: secret}, sql: sqlRunner, exports: newExportLimits(cfg.SQL, st), metrics: newServerMetrics(), log: log,
		proxies: proxies, authFails: ratelimit.New[netip.Prefix](cfg.AuthFailRate, float64(cfg.AuthFailBurst))}, nil
}

// Metrics is the set the service's metrics are kept in, for a /metrics
// that serves more than this service (the all-in-one netview).
func (s *Server) Metrics() *metrics.Set { return s.metrics.set }

// HTTPServer returns a fasthttp server for s.
func (s *Server) HTTPServer() *fasthttp.Server {
	return &fasthttp.Server{
		Handler: s.Handle, Name: "netview-query",
		ReadTimeout: 30 * time.Second, WriteTimeout: s.cfg.Timeout + 5*time.Second, IdleTimeout: 2 * time.Minute,
		MaxRequestBodySize: 1 << 20,
	}
}

// apiError is an error answered with its status; Param names the query
// parameter at fault.
type apiError struct {
	Status int
	Msg    string
	Param  string
}

func (e *apiError) Error() string { return e.Msg }

func badParam(name, format string, args ...any) error {
	return &apiError{Status: 400, Msg: name + ": " + fmt.Sprintf(format, args...), Param: name}
}

// handler answers one request made by p.
type handler func(ctx context.Context, r *fasthttp.RequestCtx, p *principal) ([]byte, error)

// Handle routes one request: the API under /api/, health at /healthz,
// metrics at /metrics, and every other path to the Console. The Console's
// files hold no data (the page asks for a token and sends it to the API),
// so they need none.
func (s *Server) Handle(r *fasthttp.RequestCtx) {
	start := time.Now()
	route := s.handle(r)
	s.metrics.observe(route, r.Response.StatusCode(), time.Since(start))
}

// handle answers r and returns its route label (see serverMetrics).
func (s *Server) handle(r *fasthttp.RequestCtx) string {
	path := string(r.Path())
	switch {
	case !isAPI(path) && path != "/healthz" && path != "/metrics":
		console.Serve(r)
		return routeConsole
	case path == "/metrics":
		// No token, as ingest's: counts and latencies by endpoint, no data.
		prom.Handle(r, s.metrics.set)
		return path
	case path == "/healthz":
		r.SetContentType("text/plain")
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := store.Ping(ctx, s.store); err != nil {
			r.SetStatusCode(503)
			r.WriteString("storage unavailable: " + err.Error() + "\n")
			return path
		}
		r.WriteString("ok\n")
		return path
	}
	e := s.route(path)
	if e.h == nil {
		s.fail(r, &apiError{Status: 404, Msg: "no such endpoint: " + path})
		return routeUnknown
	}
	// From here path is one of route's fixed strings.
	if string(r.Method()) != e.method {
		r.Response.Header.Set("Allow", e.method)
		s.fail(r, &apiError{Status: 405, Msg: "use " + e.method})
		return path
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	defer cancel()
	var p principal
	if err := s.authenticate(ctx, r, &p); err != nil {
		if ae, ok := err.(*apiError); ok && ae.Status == 401 {
			r.Response.Header.Set("WWW-Authenticate", `Bearer realm="netview"`)
		}
		s.fail(r, err)
		return path
	}
	if !creds.Allows(p.role, e.role) {
		err := &apiError{Status: 403, Msg: "this token has the " + p.role + " role and may not use " + path + ": it needs the " + e.role + " role"}
		if e.action != "" {
			// A refused attempt at admin power or SQL is audited too; the
			// refusal stands whether or not the row can be written.
			s.record(ctx, r, &p, auditEntry{action: e.action, detail: err.Msg}, err)
		}
		s.fail(r, err)
		return path
	}
	body, err := e.h(ctx, r, &p)
	if err != nil {
		s.fail(r, err)
		return path
	}
	if body != nil {
		r.SetContentType("application/json")
		r.SetBody(body)
	}
	return path
}

// isAPI says whether path belongs to the API: under /api/, or /api itself,
// which a client of the API may try and should get a JSON 404, not a page.
func isAPI(path string) bool {
	rest, ok := strings.CutPrefix(path, "/api")
	return ok && (rest == "" || rest[0] == '/')
}

// endpoint is one routed operation: its handler, method, the least role
// that may use it, and the audit action it is recorded as ("" for the
// views, which are not audited).
type endpoint struct {
	h      handler
	method string
	role   string
	action string
}

// exportViews are the v2 lists' exports (export.go), by path: each has the
// role of its list.
var exportViews = map[string]*view{
	"/api/v2/network/connections/export": connectionsView, "/api/v2/network/listening/export": listeningView,
	"/api/v2/network/udp/export": udpView, "/api/v2/network/flows/export": flowsView,
}

func (s *Server) route(path string) endpoint {
	view := func(h handler) endpoint { return endpoint{h: h, method: "GET", role: creds.Viewer} }
	switch path {
	case "/api/v1/network/connections":
		return view(s.listV1(connectionsView))
	case "/api/v1/network/listening":
		return view(s.listV1(listeningView))
	case "/api/v1/network/udp":
		return view(s.listV1(udpView))
	case "/api/v1/network/flows":
		return view(s.listV1(flowsView))
	case "/api/v1/network/summary":
		return view(s.summary)
	case "/api/v1/network/graph":
		return view(s.graph(false))
	case "/api/v2/network/graph":
		return view(s.graph(true))
	case "/api/v2/network/timeline":
		return view(s.timeline)
	case "/api/v1/events", "/api/v2/events":
		return view(s.events)
	case "/api/v2/network/connections":
		return view(s.listV2(connectionsView))
	case "/api/v2/network/listening":
		return view(s.listV2(listeningView))
	case "/api/v2/network/udp":
		return view(s.listV2(udpView))
	case "/api/v2/network/flows":
		return view(s.listV2(flowsView))
	case "/api/v2/events/export":
		return view(s.exportEvents)
	case "/api/v1/sql":
		if s.sql != nil {
			return endpoint{h: s.analystSQL, method: "POST", role: creds.Analyst, action: actionSQL}
		}
	}
	if v := exportViews[path]; v != nil {
		return view(s.exportView(v))
	}
	if a, ok := adminOps[path]; ok {
		return endpoint{h: s.admin(a), method: a.method, role: creds.Admin, action: a.action}
	}
	return endpoint{}
}

func (s *Server) fail(r *fasthttp.RequestCtx, err error) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
	case errors.Is(err, store.ErrUnavailable):
		r.Response.Header.Set("Retry-After", "5")
		ae = &apiError{Status: 503, Msg: "storage unavailable: " + err.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		ae = &apiError{Status: 504, Msg: "the query took longer than " + s.cfg.Timeout.String()}
	default:
		s.log.Error("query failed", "path", string(r.Path()), "err", err)
		ae = &apiError{Status: 500, Msg: "query failed: " + err.Error()}
	}
	r.SetStatusCode(ae.Status)
	r.SetContentType("application/json")
	body := map[string]string{"error": ae.Msg}
	if ae.Param != "" {
		body["parameter"] = ae.Param
	}
	b, _ := json.Marshal(body)
	r.SetBody(b)
}
