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
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/valyala/fasthttp"

	"github.com/netview/netview/internal/auth"
	"github.com/netview/netview/internal/store"
)

// Config configures an ingest node.
type Config struct {
	Addr            string
	MaxBodyBytes    int
	MaxDecodedBytes int
	// MaxRatio caps decompressed/compressed size, so a small zstd bomb is
	// refused after a few MiB instead of at MaxDecodedBytes.
	MaxRatio   int
	BatchRows  int
	BatchAge   time.Duration
	MaxPending int
	AckTimeout time.Duration
	Tokens     auth.TokenFlags
}

// RegisterFlags registers the ingest flags with an "ingest." prefix.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "ingest.addr", "127.0.0.1:8090", "address the heartbeat endpoint listens on")
	fs.IntVar(&c.MaxBodyBytes, "ingest.max-body", 4<<20, "largest compressed heartbeat body, bytes (413 above)")
	fs.IntVar(&c.MaxDecodedBytes, "ingest.max-decoded", 32<<20, "largest decompressed heartbeat, bytes (413 above)")
	fs.IntVar(&c.MaxRatio, "ingest.max-ratio", 40, "largest decompression ratio accepted beyond the first MiB")
	fs.IntVar(&c.BatchRows, "ingest.batch-rows", 100_000, "write a batch once it holds this many rows")
	fs.DurationVar(&c.BatchAge, "ingest.batch-age", 200*time.Millisecond, "write a batch once its first heartbeat is this old")
	fs.IntVar(&c.MaxPending, "ingest.max-pending", 1_000_000, "answer 503 while this many rows wait for storage")
	fs.DurationVar(&c.AckTimeout, "ingest.ack-timeout", 30*time.Second, "longest a sender waits for its rows to be written")
	c.Tokens.Register(fs, "ingest", "NETVIEW_INGEST_TOKEN", "sensor bearer token")
}

// Validate reports the first bad setting.
func (c *Config) Validate() error {
	switch {
	case c.MaxBodyBytes <= 0 || c.MaxDecodedBytes <= 0 || c.MaxRatio <= 0:
		return errors.New("ingest: body limits must be positive")
	case c.BatchRows <= 0 || c.BatchAge <= 0 || c.MaxPending < c.BatchRows:
		return errors.New("ingest: batch-rows and batch-age must be positive and max-pending at least batch-rows")
	case c.AckTimeout <= 0:
		return errors.New("ingest: ack-timeout must be positive")
	}
	_, err := c.Tokens.Load()
	return err
}

// Server serves POST /v1/heartbeat, GET /healthz and GET /metrics.
type Server struct {
	cfg     Config
	tokens  *auth.Tokens
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
	m := NewMetrics()
	w := NewWriter(s, WriterConfig{BatchRows: cfg.BatchRows, BatchAge: cfg.BatchAge, MaxPending: cfg.MaxPending}, m)
	m.queue = w.Pending
	return &Server{
		cfg: cfg, tokens: tokens, writer: w, metrics: m, log: log,
		slots: make(chan struct{}, 2*runtime.GOMAXPROCS(0)),
	}, nil
}

// HTTPServer returns a fasthttp server for s. The body is streamed, and a
// request without a valid token, or announcing a body over the limit, is
// judged on its headers: fasthttp reads at most one byte of its body before
// the handler refuses it (it pre-reads up to 8 KiB of any other body).
func (s *Server) HTTPServer() *fasthttp.Server {
	return &fasthttp.Server{
		Handler: s.Handle,
		HeaderReceived: func(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
			if !s.tokens.Check(h.Peek("Authorization")) || h.ContentLength() > s.cfg.MaxBodyBytes {
				return fasthttp.RequestConfig{MaxRequestBodySize: 1, ReadTimeout: 5 * time.Second}
			}
			return fasthttp.RequestConfig{}
		},
		Name:               "netview-ingest",
		StreamRequestBody:  true,
		MaxRequestBodySize: s.cfg.MaxBodyBytes,
		ReadTimeout:        30 * time.Second,
		WriteTimeout:       s.cfg.AckTimeout + 5*time.Second,
		IdleTimeout:        2 * time.Minute,
		ReadBufferSize:     16 << 10,
	}
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
	switch string(ctx.Path()) {
	case "/v1/heartbeat":
		if !ctx.IsPost() {
			ctx.Response.Header.Set("Allow", "POST")
			s.fail(ctx, fasthttp.StatusMethodNotAllowed, ReasonMethod, "use POST")
			return
		}
		s.heartbeat(ctx)
	case "/healthz":
		ctx.SetContentType("text/plain")
		if err := s.writer.healthy(); err != nil {
			ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
			ctx.WriteString("storage unavailable: " + err.Error() + "\n")
			return
		}
		ctx.WriteString("ok\n")
	case "/metrics":
		ctx.SetContentType("text/plain; version=0.0.4")
		s.metrics.Write(ctx)
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
	b, _ := json.Marshal(map[string]string{"error": msg})
	ctx.Write(b)
}

func (s *Server) heartbeat(ctx *fasthttp.RequestCtx) {
	if !s.tokens.Check(ctx.Request.Header.Peek("Authorization")) {
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="netview-ingest"`)
		ctx.SetConnectionClose() // the body stays unread
		s.fail(ctx, fasthttp.StatusUnauthorized, ReasonUnauthorized, "missing or wrong bearer token")
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

	s.slots <- struct{}{}
	sum, gen, status, reason, err := s.decode(ctx, enc == "zstd")
	<-s.slots
	if err != nil {
		if status == fasthttp.StatusServiceUnavailable {
			ctx.Response.Header.Set("Retry-After", retryAfter(reason))
		}
		s.fail(ctx, status, reason, err.Error())
		return
	}

	wctx, cancel := context.WithTimeout(context.Background(), s.cfg.AckTimeout)
	defer cancel()
	if err := gen.Wait(wctx); err != nil {
		ctx.Response.Header.Set("Retry-After", "5")
		s.log.Warn("heartbeat not written", "heartbeat_id", sum.HeartbeatID, "err", err)
		s.fail(ctx, fasthttp.StatusServiceUnavailable, ReasonUnavailable, "storage did not take the heartbeat; retry: "+err.Error())
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

// decode reads, decompresses and decodes the body into the open batch.
func (s *Server) decode(ctx *fasthttp.RequestCtx, compressed bool) (Summary, *generation, int, string, error) {
	raw := s.buf()
	defer s.bufs.Put(raw)
	body, err := readLimited(ctx.RequestBodyStream(), (*raw)[:0], s.cfg.MaxBodyBytes)
	*raw = body[:0]
	if errors.Is(err, errTooLarge) {
		ctx.SetConnectionClose()
		return Summary{}, nil, fasthttp.StatusRequestEntityTooLarge, ReasonTooLarge, fmt.Errorf("body over the limit of %d bytes", s.cfg.MaxBodyBytes)
	}
	if err != nil {
		return Summary{}, nil, fasthttp.StatusBadRequest, ReasonBody, fmt.Errorf("reading body: %w", err)
	}
	doc := body
	if compressed {
		out := s.buf()
		defer s.bufs.Put(out)
		limit := min(s.cfg.MaxDecodedBytes, 1<<20+s.cfg.MaxRatio*len(body))
		doc, err = s.unzstd(body, (*out)[:0], limit)
		*out = doc[:0]
		if errors.Is(err, errTooLarge) {
			return Summary{}, nil, fasthttp.StatusRequestEntityTooLarge, ReasonTooLarge, fmt.Errorf("decompressed body over the limit of %d bytes", limit)
		}
		if err != nil {
			return Summary{}, nil, fasthttp.StatusBadRequest, ReasonEncoding, fmt.Errorf("invalid zstd body: %w", err)
		}
	} else if len(body) > s.cfg.MaxDecodedBytes {
		return Summary{}, nil, fasthttp.StatusRequestEntityTooLarge, ReasonTooLarge, fmt.Errorf("body over the limit of %d bytes", s.cfg.MaxDecodedBytes)
	}
	sum, gen, err := s.writer.Add(doc)
	switch {
	case err == nil:
		return sum, gen, 0, "", nil
	case errors.Is(err, ErrFormat):
		return sum, nil, fasthttp.StatusBadRequest, ReasonFormat, err
	case errors.Is(err, ErrInvalid):
		return sum, nil, fasthttp.StatusBadRequest, ReasonInvalid, err
	case errors.Is(err, ErrQueueFull):
		return sum, nil, fasthttp.StatusServiceUnavailable, ReasonQueueFull, err
	case errors.Is(err, store.ErrUnavailable):
		return sum, nil, fasthttp.StatusServiceUnavailable, ReasonUnavailable, err
	default:
		return sum, nil, fasthttp.StatusInternalServerError, ReasonInternal, err
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
