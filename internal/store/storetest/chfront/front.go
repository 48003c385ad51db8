// Package chfront is a ClickHouse native-protocol server in front of the
// embedded engine, for tests only: it lets the server backend (ch-go over
// TCP) run against the real engine on a machine without a ClickHouse server.
// It is never shipped as a product database: it has no authentication, no
// TLS, and no limits.
package chfront

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/netview/netview/internal/store"
)

// revision is the protocol revision the front speaks, the newest ch-go
// knows: up to it a block on the wire differs from the engine's Native
// format only by its block info and a "no custom serialization" byte per
// column, which the front adds and strips.
const revision = int(proto.FeatureServerQueryTimeInProgress)

// Config says which engine the front serves.
type Config struct {
	// Dir is the data folder of the process-wide embedded engine (the one
	// store.OpenEmbedded runs on; one per process).
	Dir string
	// Library is the path of libchdb.so; see store.LibraryPath.
	Library string
	// Logf, when set, receives the errors that end a connection.
	Logf func(format string, args ...any)
}

// Server accepts native-protocol connections. Each connection has a
// session of its own on the engine, whose current database is the one the
// client's hello names.
type Server struct {
	cfg      Config
	ln       net.Listener
	ctx      context.Context
	cancel   context.CancelFunc
	hello    proto.ServerHello
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	closed   bool
	closeErr error
}

// Listen starts the engine if it is not running yet and serves the native
// protocol on addr ("127.0.0.1:0" picks a free port; see Addr).
func Listen(addr string, cfg Config) (*Server, error) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{cfg: cfg, ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{}}
	if err := s.describeEngine(); err != nil {
		cancel()
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("chfront: %w", err)
	}
	s.ln = ln
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// describeEngine fills the server hello with the engine's version and time
// zone, which also proves the engine opens.
func (s *Server) describeEngine() error {
	sess, err := s.openSession()
	if err != nil {
		return fmt.Errorf("chfront: %w", err)
	}
	defer sess.Close()
	var version, tz proto.ColStr
	err = sess.Select(s.ctx, store.Query{SQL: "SELECT version() AS v, timezone() AS tz"},
		proto.Results{{Name: "v", Data: &version}, {Name: "tz", Data: &tz}}, func(int) error {
			s.hello = proto.ServerHello{Name: "ClickHouse", DisplayName: "netview-chfront", Revision: revision, Timezone: tz.Row(0)}
			parts := strings.Split(version.Row(0), ".")
			for i, p := range []*int{&s.hello.Major, &s.hello.Minor, &s.hello.Patch} {
				if i < len(parts) {
					*p, _ = strconv.Atoi(parts[i])
				}
			}
			return nil
		})
	if err != nil {
		return fmt.Errorf("chfront: engine version: %w", err)
	}
	return nil
}

// openSession opens one engine connection whose current database is default.
func (s *Server) openSession() (*store.Embedded, error) {
	return store.OpenEmbedded(s.ctx, store.EmbeddedConfig{Dir: s.cfg.Dir, Database: "default", Conns: 1, Library: s.cfg.Library})
}

// Addr is the address the front listens on, host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Conns is the number of client connections being served.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Close stops accepting, closes every client connection, and waits for
// their sessions to end. A statement the engine is running finishes first.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return s.closeErr
	}
	s.closed = true
	s.closeErr = s.ln.Close()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return s.closeErr
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.logf("chfront: accept: %v", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = nc.Close()
			return
		}
		s.conns[nc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, nc)
				s.mu.Unlock()
				_ = nc.Close()
			}()
			if err := newConn(s, nc).serve(); err != nil {
				s.logf("chfront: %s: %v", nc.RemoteAddr(), err)
			}
		}()
	}
}

func (s *Server) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf(format, args...)
	}
}
