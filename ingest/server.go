// Package ingest is Netview's ingest tier: it takes zstd-compressed
// heartbeats over HTTP, decodes them straight into ClickHouse column
// batches, group-commits them, and acknowledges each heartbeat only once
// its rows are stored. Nodes keep no state, so any number can run behind a
// load balancer against one ClickHouse.
package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/google/uuid"
	"github.com/klauspost/compress/zstd"
	"github.com/valyala/fasthttp"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/internal/auth"
	"github.com/netview/netview/internal/creds"
	"github.com/netview/netview/internal/prom"
	"github.com/netview/netview/internal/ratelimit"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/internal/tlsconf"
)

// Config configures an ingest node.
type Config struct {
	Addr            string
	MaxBodyBytes    int
	MaxDecodedBytes int
	// MaxRatio caps decompressed/compressed size, so a small zstd bomb is
	// refused after a few MiB instead of at MaxDecodedBytes.
	MaxRatio int
	MaxRows  int // rows in one heartbeat; 0: no limit
	// TimeWindow is how far from its heartbeat's sent_at a flow's end or
	// an event may lie (400 beyond); 0: no limit.
	TimeWindow time.Duration
	BatchRows  int
	BatchAge   time.Duration
	MaxPending int
	AckTimeout time.Duration
	// ReadTimeout bounds receiving one request, headers and body; 0 means
	// 30 s.
	ReadTimeout time.Duration
	// Tokens are the static secrets: bootstrap enrollment secrets, and
	// heartbeat tokens for any sensor when SharedTokens is set.
	Tokens       auth.TokenFlags
	SharedTokens bool
	// CredsRefresh is the longest a node uses its copy of the credentials
	// table: a revocation reaches every node within it. 0 means 10 s.
	CredsRefresh time.Duration
	// Request rates a second (0: no limit): per sensor key, per client
	// address, and failed authentications per client address.
	SensorRate, IPRate, AuthFailRate float64
	// SensorRows is the rows a second one sensor key may send, over its
	// heartbeats (0: no limit). Request rates bound requests, not their
	// size: without it one sensor posting maximal heartbeats takes the
	// decode time and queue the whole fleet shares.
	SensorRows float64
	// TrustedProxies are addresses or prefixes whose X-Forwarded-For is
	// believed, comma-separated.
	TrustedProxies string
	TLS            tlsconf.Server
}

// RegisterFlags registers the ingest flags with an "ingest." prefix.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "ingest.addr", "127.0.0.1:8090", "address the heartbeat endpoint listens on")
	fs.IntVar(&c.MaxBodyBytes, "ingest.max-body", 4<<20, "largest compressed heartbeat body, bytes (413 above)")
	fs.IntVar(&c.MaxDecodedBytes, "ingest.max-decoded", 32<<20, "largest decompressed heartbeat, bytes (413 above)")
	fs.IntVar(&c.MaxRatio, "ingest.max-ratio", 40, "largest decompression ratio accepted beyond the first MiB")
	fs.IntVar(&c.MaxRows, "ingest.max-rows", 200_000, "most rows in one heartbeat (413 above: the sensor sends it again without its snapshots)")
	fs.DurationVar(&c.TimeWindow, "ingest.time-window", 24*time.Hour, "how far from its heartbeat's sent_at an event or a flow's end may lie (400 beyond: one heartbeat spanning many days would fail the batch it shares with others)")
	fs.IntVar(&c.BatchRows, "ingest.batch-rows", 100_000, "write a batch once it holds this many rows")
	fs.DurationVar(&c.BatchAge, "ingest.batch-age", 200*time.Millisecond, "write a batch once its first heartbeat is this old")
	fs.IntVar(&c.MaxPending, "ingest.max-pending", 1_000_000, "answer 503 while this many rows wait for storage")
	fs.DurationVar(&c.AckTimeout, "ingest.ack-timeout", 30*time.Second, "longest a sender waits for its rows to be written")
	fs.DurationVar(&c.ReadTimeout, "ingest.read-timeout", 30*time.Second, "longest time to receive one request, headers and body; a slower client is cut off")
	c.Tokens.Register(fs, "ingest", "NETVIEW_INGEST_TOKEN", "static secret")
	fs.Lookup("ingest.token").Usage = "static enrollment secrets, comma-separated (also $NETVIEW_INGEST_TOKEN): a sensor holding one enrolls " +
		"(POST /v1/enroll) for a key of its own, which alone may post its heartbeats; with --ingest.shared-tokens also accepted as heartbeat tokens"
	fs.Lookup("ingest.token-file").Usage = "file with one static enrollment secret a line (see --ingest.token)"
	fs.BoolVar(&c.SharedTokens, "ingest.shared-tokens", false, "also accept the static secrets (--ingest.token) on heartbeats, for any sensor id: "+
		"weaker (whoever holds one can write as every sensor), for old sensors and simple setups")
	fs.DurationVar(&c.CredsRefresh, "ingest.creds-refresh", 10*time.Second, "longest a node checks secrets against its copy of the credentials table (how soon a revocation takes effect)")
	fs.Float64Var(&c.SensorRate, "ingest.sensor-rate", 10, "requests a second per sensor key (429 above; bursts of twice this); 0: no limit")
	fs.Float64Var(&c.SensorRows, "ingest.sensor-rows", 20_000, "rows a second per sensor key, over its heartbeats: a sensor past its share gets 429 until it refills "+
		"(bursts of --ingest.max-rows or twice this, so one maximal heartbeat always passes); 0: no limit")
	fs.Float64Var(&c.IPRate, "ingest.ip-rate", 1000, "requests a second per client address (429 above; bursts of twice this); 0: no limit")
	fs.Float64Var(&c.AuthFailRate, "ingest.auth-fail-rate", 5, "failed authentications a second per client address, beyond which it gets 429 until it slows down; 0: no limit")
	fs.StringVar(&c.TrustedProxies, "ingest.trusted-proxies", "", "addresses or CIDR prefixes of proxies whose X-Forwarded-For names the client for the per-address limits, comma-separated")
	c.TLS.Register(fs, "ingest")
}

// Validate reports the first bad setting. TLS is checked where the node
// listens (Config.Listen), so a node served on a listener of its own needs
// no TLS flags.
func (c *Config) Validate() error {
	switch {
	case c.MaxBodyBytes <= 0 || c.MaxDecodedBytes <= 0 || c.MaxRatio <= 0 || c.MaxRows < 0 || c.TimeWindow < 0:
		return errors.New("ingest: body limits must be positive")
	case c.BatchRows <= 0 || c.BatchAge <= 0 || c.MaxPending < c.BatchRows:
		return errors.New("ingest: batch-rows and batch-age must be positive and max-pending at least batch-rows")
	case c.AckTimeout <= 0:
		return errors.New("ingest: ack-timeout must be positive")
	case c.ReadTimeout < 0 || c.CredsRefresh < 0:
		return errors.New("ingest: read-timeout and creds-refresh must not be negative")
	case c.SensorRate < 0 || c.IPRate < 0 || c.AuthFailRate < 0 || c.SensorRows < 0:
		return errors.New("ingest: rates must not be negative")
	}
	if _, err := ratelimit.ParseProxies(c.TrustedProxies); err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	_, err := c.Tokens.Load()
	return err
}

// Listen listens on c.Addr with TLS, or plain HTTP when asked for.
func (c *Config) Listen() (net.Listener, error) {
	return c.TLS.Listen(c.Addr)
}

// Server serves POST /v1/heartbeat, /v1/enroll and /v1/rotate, GET
// /healthz and GET /metrics.
type Server struct {
	cfg     Config
	tokens  *auth.Tokens
	creds   *creds.Store
	proxies ratelimit.Proxies

	ipRate     *ratelimit.Limiter[netip.Prefix] // keyed by ratelimit.Key
	authFails  *ratelimit.Limiter[netip.Prefix]
	sensorRate *ratelimit.Limiter[uuid.UUID]
	sensorRows *ratelimit.Limiter[uuid.UUID] // tokens are rows, spent once decoded

	writer  *Writer
	metrics *Metrics
	slots   chan struct{} // bounds heartbeats being decompressed and decoded
	bufs    sync.Pool     // *[]byte
	zstd    sync.Pool     // *zstd.Decoder
	log     *slog.Logger
}

// New returns a server writing to s. Close it to write what it holds.
func New(cfg Config, s store.Store, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tokens, err := cfg.Tokens.Load()
	if err != nil {
		return nil, err
	}
	proxies, _ := ratelimit.ParseProxies(cfg.TrustedProxies) // checked by Validate
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = 30 * time.Second
	}
	if cfg.CredsRefresh == 0 {
		cfg.CredsRefresh = 10 * time.Second
	}
	m := NewMetrics()
	w := NewWriter(s, WriterConfig{BatchRows: cfg.BatchRows, BatchAge: cfg.BatchAge, MaxPending: cfg.MaxPending, MaxRows: cfg.MaxRows, TimeWindow: cfg.TimeWindow}, m)
	m.queue = w.Pending
	return &Server{
		cfg: cfg, tokens: tokens, writer: w, metrics: m, log: log,
		creds: creds.NewStore(s, cfg.CredsRefresh), proxies: proxies,
		ipRate: newLimiter[netip.Prefix](cfg.IPRate), authFails: newLimiter[netip.Prefix](cfg.AuthFailRate),
		sensorRate: newLimiter[uuid.UUID](cfg.SensorRate),
		sensorRows: ratelimit.New[uuid.UUID](cfg.SensorRows, max(float64(cfg.MaxRows), 2*cfg.SensorRows)),
		slots:      make(chan struct{}, 2*runtime.GOMAXPROCS(0)),
	}, nil
}

// Metrics is the set the node's metrics are kept in, for a /metrics that
// serves more than this node (the all-in-one netview adds its parts').
func (s *Server) Metrics() *metrics.Set { return s.metrics.set }

// Slots is how many heartbeats may be decompressed and decoded at once.
func (s *Server) Slots() int { return cap(s.slots) }

// Busy is how many decode slots are taken now.
func (s *Server) Busy() int { return len(s.slots) }

// HTTPServer returns a fasthttp server for s. The body is streamed, and a
// request without a secret that allows it a body, or announcing a body over
// its limit, is judged on its headers: fasthttp reads at most one byte of
// its body before the handler refuses it (it pre-reads up to 8 KiB of any
// other body). Headers and body must arrive within --ingest.read-timeout.
func (s *Server) HTTPServer() *fasthttp.Server {
	return &fasthttp.Server{
		Handler: s.Handle,
		HeaderReceived: func(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
			if n := s.bodyAllowance(h); n > 0 {
				return fasthttp.RequestConfig{MaxRequestBodySize: n}
			}
			return fasthttp.RequestConfig{MaxRequestBodySize: 1, ReadTimeout: min(5*time.Second, s.cfg.ReadTimeout)}
		},
		Name:               "netview-ingest",
		Logger:             httpLog{s.log},
		StreamRequestBody:  true,
		MaxRequestBodySize: s.cfg.MaxBodyBytes,
		ReadTimeout:        s.cfg.ReadTimeout,
		WriteTimeout:       s.cfg.AckTimeout + 5*time.Second,
		IdleTimeout:        2 * time.Minute,
		ReadBufferSize:     16 << 10,
	}
}

// httpLog takes fasthttp's connection errors (TLS handshakes that failed,
// clients cut off) as debug lines: they are the clients' doing.
type httpLog struct{ l *slog.Logger }

func (h httpLog) Printf(format string, args ...any) {
	h.l.Debug("http: " + fmt.Sprintf(format, args...))
}

// Shutdown stops hs from taking requests, answers the ones in flight once
// their rows are written, and stops the writer: nothing acknowledged is
// lost and nothing accepted is left unanswered.
func (s *Server) Shutdown(ctx context.Context, hs *fasthttp.Server) error {
	s.writer.Drain()
	err := hs.ShutdownWithContext(ctx)
	s.writer.Close()
	return err
}

// Handle routes one request.
func (s *Server) Handle(ctx *fasthttp.RequestCtx) {
	switch path := string(ctx.Path()); path {
	case routeHeartbeat, routeEnroll, routeRotate:
		if !ctx.IsPost() {
			ctx.Response.Header.Set("Allow", "POST")
			s.fail(ctx, fasthttp.StatusMethodNotAllowed, ReasonMethod, "use POST")
			return
		}
		switch path {
		case routeHeartbeat:
			s.heartbeat(ctx)
		case routeEnroll:
			s.enroll(ctx)
		default:
			s.rotate(ctx)
		}
	case "/healthz":
		ctx.SetContentType("text/plain")
		if err := s.writer.healthy(); err != nil {
			ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
			// The cause is in the node's log and metrics: this endpoint
			// needs no token, and the engine's text is not for everyone.
			ctx.WriteString("storage unavailable\n")
			return
		}
		ctx.WriteString("ok\n")
	case "/metrics":
		prom.Handle(ctx, s.metrics.set)
	default:
		ctx.SetStatusCode(fasthttp.StatusNotFound)
		ctx.SetContentType("application/json")
		ctx.WriteString(`{"error":"not found"}`)
	}
}

func (s *Server) fail(ctx *fasthttp.RequestCtx, status int, reason, msg string) {
	s.metrics.Reject(reason)
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	b, _ := json.Marshal(ErrorAnswer{Error: msg, Reason: reason})
	ctx.Write(b)
}

// ErrorAnswer is the body of every answer but 200: what was wrong, and the
// reason as a word a program can act on (a sensor re-enrolls on "revoked").
type ErrorAnswer struct {
	Error  string `json:"error"`
	Reason string `json:"reason,omitempty"`
}

func (s *Server) heartbeat(ctx *fasthttp.RequestCtx) {
	c, ok := s.admit(ctx, routeHeartbeat)
	if !ok {
		return
	}
	// A sensor past its row share is refused before its body is read: the
	// rows of what it sent before are paid for first. A shared token is
	// not one sensor, and has no share.
	sensor := sensorOf(c)
	if empty, wait := s.sensorRows.Empty(sensor, time.Now()); empty && sensor != uuid.Nil {
		s.tooMany(ctx, ReasonRateLimited, wait, fmt.Sprintf("sensor %s sent more rows than its share (--ingest.sensor-rows); retry after Retry-After", sensor))
		return
	}
	enc := string(ctx.Request.Header.Peek("Content-Encoding"))
	if enc != "zstd" && enc != "" && enc != "identity" {
		ctx.SetConnectionClose()
		s.fail(ctx, fasthttp.StatusUnsupportedMediaType, ReasonEncoding, fmt.Sprintf("Content-Encoding %q not supported: send zstd", enc))
		return
	}
	if n := ctx.Request.Header.ContentLength(); n > s.cfg.MaxBodyBytes {
		ctx.SetConnectionClose()
		s.fail(ctx, fasthttp.StatusRequestEntityTooLarge, ReasonTooLarge, fmt.Sprintf("body of %d bytes is over the limit of %d", n, s.cfg.MaxBodyBytes))
		return
	}

	// The body is read before a decode slot is taken: a slow client holds
	// only its own connection, until --ingest.read-timeout cuts it off.
	raw := s.buf()
	defer s.bufs.Put(raw)
	body, err := readLimited(ctx.RequestBodyStream(), (*raw)[:0], s.cfg.MaxBodyBytes)
	*raw = body[:0]
	if errors.Is(err, errTooLarge) {
		ctx.SetConnectionClose()
		s.fail(ctx, fasthttp.StatusRequestEntityTooLarge, ReasonTooLarge, fmt.Sprintf("body over the limit of %d bytes", s.cfg.MaxBodyBytes))
		return
	}
	if err != nil {
		ctx.SetConnectionClose()
		s.fail(ctx, fasthttp.StatusBadRequest, ReasonBody, "reading body: "+err.Error())
		return
	}

	s.slots <- struct{}{}
	sum, gen, status, reason, err := s.decode(body, enc == "zstd", sensor)
	<-s.slots
	if sensor != uuid.Nil {
		s.sensorRows.Spend(sensor, float64(sum.Rows), time.Now())
	}
	if err != nil {
		if status == fasthttp.StatusServiceUnavailable {
			ctx.Response.Header.Set("Retry-After", retryAfter(reason))
		}
		s.fail(ctx, status, reason, err.Error())
		return
	}

	wctx, cancel := context.WithTimeout(context.Background(), s.cfg.AckTimeout)
	defer cancel()
	if err := gen.Wait(wctx); errors.Is(err, ErrRefused) {
		// The engine's text is for the node's log: the sender learns what
		// to do.
		s.log.Warn("heartbeat refused by storage", "heartbeat_id", sum.HeartbeatID, "sensor_id", sum.SensorID, "err", err)
		s.fail(ctx, fasthttp.StatusUnprocessableEntity, ReasonRefused, "storage refused this heartbeat's rows; the other heartbeats of its batch were stored. "+
			"Sending it again as it is fails again: set it aside and check the sensor's data and clock (the node's log has the cause)")
		return
	} else if err != nil {
		ctx.Response.Header.Set("Retry-After", "5")
		s.log.Warn("heartbeat not written", "heartbeat_id", sum.HeartbeatID, "err", err)
		s.fail(ctx, fasthttp.StatusServiceUnavailable, ReasonUnavailable, "storage did not take the heartbeat; retry after Retry-After (it is not stored twice)")
		return
	}
	s.metrics.Accept()
	ctx.SetContentType("application/json")
	fmt.Fprintf(ctx, `{"heartbeat_id":"%s","seq":%d,"rows":%d}`, sum.HeartbeatID, sum.Seq, sum.Rows)
}

func retryAfter(reason string) string {
	if reason == ReasonQueueFull {
		return "1"
	}
	return "5"
}

// decode decompresses and decodes body into the open batch; sensor, when
// not nil, is the only sensor id the heartbeat may carry.
func (s *Server) decode(body []byte, compressed bool, sensor uuid.UUID) (Summary, ticket, int, string, error) {
	doc := body
	if compressed {
		out := s.buf()
		defer s.bufs.Put(out)
		limit := min(s.cfg.MaxDecodedBytes, 1<<20+s.cfg.MaxRatio*len(body))
		var err error
		doc, err = s.unzstd(body, (*out)[:0], limit)
		*out = doc[:0]
		if errors.Is(err, errTooLarge) {
			return Summary{}, ticket{}, fasthttp.StatusRequestEntityTooLarge, ReasonTooLarge, fmt.Errorf("decompressed body over the limit of %d bytes", limit)
		}
		if err != nil {
			return Summary{}, ticket{}, fasthttp.StatusBadRequest, ReasonEncoding, fmt.Errorf("invalid zstd body: %w", err)
		}
	} else if len(body) > s.cfg.MaxDecodedBytes {
		return Summary{}, ticket{}, fasthttp.StatusRequestEntityTooLarge, ReasonTooLarge, fmt.Errorf("body over the limit of %d bytes", s.cfg.MaxDecodedBytes)
	}
	sum, gen, err := s.writer.Add(doc, sensor)
	switch {
	case err == nil:
		return sum, gen, 0, "", nil
	case errors.Is(err, heartbeat.ErrSensorMismatch):
		return sum, ticket{}, fasthttp.StatusForbidden, ReasonSensorMismatch, err
	case errors.Is(err, heartbeat.ErrTooManyRows):
		return sum, ticket{}, fasthttp.StatusRequestEntityTooLarge, ReasonTooLarge, err
	case errors.Is(err, heartbeat.ErrFormat):
		return sum, ticket{}, fasthttp.StatusBadRequest, ReasonFormat, err
	case errors.Is(err, heartbeat.ErrInvalid):
		return sum, ticket{}, fasthttp.StatusBadRequest, ReasonInvalid, err
	case errors.Is(err, ErrQueueFull):
		return sum, ticket{}, fasthttp.StatusServiceUnavailable, ReasonQueueFull, err
	case errors.Is(err, store.ErrUnavailable):
		return sum, ticket{}, fasthttp.StatusServiceUnavailable, ReasonUnavailable, err
	default:
		return sum, ticket{}, fasthttp.StatusInternalServerError, ReasonInternal, err
	}
}

func (s *Server) buf() *[]byte {
	if b, ok := s.bufs.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 64<<10)
	return &b
}

var errTooLarge = errors.New("too large")

// readLimited appends r to dst and fails once more than limit bytes came.
func readLimited(r io.Reader, dst []byte, limit int) ([]byte, error) {
	for {
		if len(dst) == cap(dst) {
			// Grow by doubling, but never past what the limit allows.
			dst = slices.Grow(dst, min(max(cap(dst), 4<<10), limit+1-len(dst)))
		}
		room := cap(dst) - len(dst)
		if over := len(dst) + room - (limit + 1); over > 0 {
			room -= over
		}
		n, err := r.Read(dst[len(dst) : len(dst)+room])
		dst = dst[:len(dst)+n]
		if len(dst) > limit {
			return dst, errTooLarge
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

// unzstd decompresses src into dst, streaming so that memory grows with
// the output actually produced and stops at limit.
func (s *Server) unzstd(src, dst []byte, limit int) ([]byte, error) {
	dec, _ := s.zstd.Get().(*zstd.Decoder)
	if dec == nil {
		var err error
		dec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(8<<20), zstd.WithDecoderMaxMemory(uint64(s.cfg.MaxDecodedBytes)))
		if err != nil {
			return dst, err
		}
	}
	defer s.zstd.Put(dec)
	if err := dec.Reset(bytes.NewReader(src)); err != nil {
		return dst, err
	}
	return readLimited(dec, dst, limit)
}
