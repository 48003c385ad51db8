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
	"os"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/netview/netview/console"
	"github.com/netview/netview/internal/auth"
	"github.com/netview/netview/internal/store"
)

// Config configures the query service.
type Config struct {
	Addr          string
	Tokens        auth.TokenFlags // viewers: every view
	AnalystTokens auth.TokenFlags // analysts: views and direct SQL
	CursorSecret  string
	// MaxListRows caps the v1 lists that return everything (listening,
	// udp, flows): larger results are cut and marked truncated.
	MaxListRows int
	Timeout     time.Duration
}

// RegisterFlags registers the query flags with a "query." prefix.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "query.addr", "127.0.0.1:8080", "address the API (and Console) listens on")
	c.Tokens.Register(fs, "query", "NETVIEW_API_TOKEN", "API token (viewer)")
	c.AnalystTokens.Register(fs, "query.analyst", "NETVIEW_ANALYST_TOKEN", "analyst API token (adds direct SQL)")
	fs.StringVar(&c.CursorSecret, "query.cursor-secret", "", "secret that authenticates cursors; replicas must share it (also $NETVIEW_CURSOR_SECRET; default: derived from the API tokens)")
	fs.IntVar(&c.MaxListRows, "query.max-list-rows", 10_000, "safety cap of the v1 lists that return all rows")
	fs.DurationVar(&c.Timeout, "query.timeout", 30*time.Second, "longest time one request may take")
}

// Server answers the API.
type Server struct {
	cfg      Config
	store    store.Store
	viewers  *auth.Tokens
	analysts *auth.Tokens
	cursors  cursors
	sql      SQLRunner
	log      *slog.Logger
}

// SQLRunner runs analysts' SQL; nil disables POST /api/v1/sql.
type SQLRunner func(ctx context.Context, q, format string, w *fasthttp.RequestCtx) error

// New returns a server reading st. Either token set may be empty, not both.
func New(cfg Config, st store.Store, sqlRunner SQLRunner, log *slog.Logger) (*Server, error) {
	if cfg.MaxListRows <= 0 || cfg.Timeout <= 0 {
		return nil, errors.New("query: max-list-rows and timeout must be positive")
	}
	viewers, verr := cfg.Tokens.Load()
	analysts, aerr := cfg.AnalystTokens.Load()
	if verr != nil && aerr != nil {
		return nil, fmt.Errorf("query: no API token: %w", verr)
	}
	if viewers == nil {
		viewers = auth.NewTokens()
	}
	if analysts == nil {
		analysts = auth.NewTokens()
	}
	secret := []byte(cfg.CursorSecret)
	if len(secret) == 0 {
		secret = []byte(os.Getenv("NETVIEW_CURSOR_SECRET"))
	}
	if len(secret) == 0 {
		// Replicas with the same tokens read each other's cursors; the
		// tokens themselves (not their file names) make the secret.
		h := sha256.New()
		h.Write([]byte("netview-cursor\x00"))
		h.Write(viewers.Fingerprint())
		h.Write(analysts.Fingerprint())
		secret = h.Sum(nil)
	}
	return &Server{cfg: cfg, store: st, viewers: viewers, analysts: analysts, cursors: cursors{secret: secret}, sql: sqlRunner, log: log}, nil
}

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

type role int

const (
	roleViewer role = iota + 1
	roleAnalyst
)

func (s *Server) role(ctx *fasthttp.RequestCtx) role {
	h := ctx.Request.Header.Peek("Authorization")
	switch {
	case s.analysts.Len() > 0 && s.analysts.Check(h):
		return roleAnalyst
	case s.viewers.Len() > 0 && s.viewers.Check(h):
		return roleViewer
	}
	return 0
}

type handler func(ctx context.Context, r *fasthttp.RequestCtx) ([]byte, error)

// Handle routes one request: the API under /api/, health at /healthz, and
// every other path to the Console. The Console's files hold no data (the
// page asks for a token and sends it to the API), so they need none.
func (s *Server) Handle(r *fasthttp.RequestCtx) {
	path := string(r.Path())
	switch {
	case !isAPI(path) && path != "/healthz":
		console.Serve(r)
		return
	case path == "/healthz":
		r.SetContentType("text/plain")
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := store.Ping(ctx, s.store); err != nil {
			r.SetStatusCode(503)
			r.WriteString("storage unavailable: " + err.Error() + "\n")
			return
		}
		r.WriteString("ok\n")
		return
	}
	h, method, need := s.route(path)
	if h == nil {
		s.fail(r, &apiError{Status: 404, Msg: "no such endpoint: " + path})
		return
	}
	if string(r.Method()) != method {
		r.Response.Header.Set("Allow", method)
		s.fail(r, &apiError{Status: 405, Msg: "use " + method})
		return
	}
	got := s.role(r)
	if got == 0 {
		r.Response.Header.Set("WWW-Authenticate", `Bearer realm="netview"`)
		s.fail(r, &apiError{Status: 401, Msg: "missing or wrong bearer token"})
		return
	}
	if got < need {
		s.fail(r, &apiError{Status: 403, Msg: "this token may not use " + path + ": it needs the analyst role"})
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	defer cancel()
	body, err := h(ctx, r)
	if err != nil {
		s.fail(r, err)
		return
	}
	if body != nil {
		r.SetContentType("application/json")
		r.SetBody(body)
	}
}

// isAPI says whether path belongs to the API: under /api/, or /api itself,
// which a client of the API may try and should get a JSON 404, not a page.
func isAPI(path string) bool {
	rest, ok := strings.CutPrefix(path, "/api")
	return ok && (rest == "" || rest[0] == '/')
}

func (s *Server) route(path string) (handler, string, role) {
	switch path {
	case "/api/v1/network/connections":
		return s.listV1(connectionsView), "GET", roleViewer
	case "/api/v1/network/listening":
		return s.listV1(listeningView), "GET", roleViewer
	case "/api/v1/network/udp":
		return s.listV1(udpView), "GET", roleViewer
	case "/api/v1/network/flows":
		return s.listV1(flowsView), "GET", roleViewer
	case "/api/v1/network/summary":
		return s.summary, "GET", roleViewer
	case "/api/v1/events", "/api/v2/events":
		return s.events, "GET", roleViewer
	case "/api/v2/network/connections":
		return s.listV2(connectionsView), "GET", roleViewer
	case "/api/v2/network/listening":
		return s.listV2(listeningView), "GET", roleViewer
	case "/api/v2/network/udp":
		return s.listV2(udpView), "GET", roleViewer
	case "/api/v2/network/flows":
		return s.listV2(flowsView), "GET", roleViewer
	case "/api/v1/sql":
		if s.sql != nil {
			return s.analystSQL, "POST", roleAnalyst
		}
	}
	return nil, "", 0
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
