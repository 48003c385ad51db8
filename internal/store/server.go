package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/ch-go/chpool"
	"github.com/ClickHouse/ch-go/proto"
)

// Server is a Store on a ClickHouse server or cluster over the native
// protocol, through ch-go's connection pool.
type Server struct {
	pool *chpool.Pool
	addr string
}

var _ Store = (*Server)(nil)

// OpenServer dials the server a clickhouse:// DSN names. Query options:
// compression (lz4|zstd|none, default lz4), dial_timeout, read_timeout,
// max_conns; any other key is sent as a ClickHouse setting. TLS to the
// server is not offered yet.
func OpenServer(ctx context.Context, dsn string, conns int, settings ...Setting) (*Server, error) {
	opt, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	for _, st := range settings {
		opt.ClientOptions.Settings = append(opt.ClientOptions.Settings, ch.Setting{Key: st.Name, Value: st.Value, Important: true})
	}
	if conns > 0 && opt.MaxConns == 0 {
		opt.MaxConns = int32(conns)
	}
	pool, err := chpool.Dial(ctx, opt)
	if err != nil {
		return nil, fmt.Errorf("store: %w: cannot reach ClickHouse at %s: %w", ErrUnavailable, opt.ClientOptions.Address, err)
	}
	return &Server{pool: pool, addr: opt.ClientOptions.Address}, nil
}

func parseDSN(dsn string) (chpool.Options, error) {
	var opt chpool.Options
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme != "clickhouse" || u.Host == "" {
		return opt, fmt.Errorf("store: bad DSN %q: want clickhouse://user:pass@host:9000/db", redact(dsn))
	}
	c := &opt.ClientOptions
	c.Address = u.Host
	if u.Port() == "" {
		c.Address = net.JoinHostPort(u.Hostname(), "9000")
	}
	c.Database = strings.Trim(u.Path, "/")
	if c.Database == "" {
		c.Database = "netview"
	}
	if !validIdent(c.Database) {
		return opt, fmt.Errorf("store: invalid database name %q in DSN", c.Database)
	}
	if u.User != nil {
		c.User = u.User.Username()
		c.Password, _ = u.User.Password()
	}
	c.ClientName = "netview"
	c.Compression = ch.CompressionLZ4
	c.DialTimeout = 2 * time.Second
	c.ReadTimeout = 30 * time.Second
	for k, vs := range u.Query() {
		v := vs[len(vs)-1]
		switch k {
		case "compression":
			switch v {
			case "lz4":
				c.Compression = ch.CompressionLZ4
			case "zstd":
				c.Compression = ch.CompressionZSTD
			case "none":
				c.Compression = ch.CompressionDisabled
			default:
				return opt, fmt.Errorf("store: DSN compression %q: want lz4, zstd or none", v)
			}
		case "dial_timeout", "read_timeout":
			d, err := time.ParseDuration(v)
			if err != nil {
				return opt, fmt.Errorf("store: DSN %s: %w", k, err)
			}
			if k == "dial_timeout" {
				c.DialTimeout = d
			} else {
				c.ReadTimeout = d
			}
		case "max_conns":
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return opt, fmt.Errorf("store: DSN max_conns %q: want a positive integer", v)
			}
			opt.MaxConns = int32(n)
		default:
			c.Settings = append(c.Settings, ch.Setting{Key: k, Value: v, Important: true})
		}
	}
	return opt, nil
}

func redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		u.User = url.User(u.User.Username())
		return u.String()
	}
	return dsn
}

// params renders bound parameters for the native protocol, which carries
// each value as a quoted literal: the server unquotes it, then parses the
// result as the placeholder's type in escaped text form, so the value is
// escaped for that second step before it is quoted.
func params(ps []Param) []proto.Parameter {
	out := make([]proto.Parameter, len(ps))
	for i, p := range ps {
		out[i] = proto.Parameter{Key: p.Name, Value: Quote(escapeParam(p.Value))}
	}
	return out
}

func (s *Server) do(ctx context.Context, q ch.Query) error {
	if err := s.pool.Do(ctx, q); err != nil {
		if unavailable(err) {
			return fmt.Errorf("store: %w: ClickHouse at %s: %w", ErrUnavailable, s.addr, err)
		}
		return err
	}
	return nil
}

// Exec implements Store.
func (s *Server) Exec(ctx context.Context, q Query) error {
	return s.do(ctx, ch.Query{Body: q.SQL, Parameters: params(q.Params)})
}

// Insert implements Store.
func (s *Server) Insert(ctx context.Context, table string, cols proto.Input) error {
	if !validIdent(table) {
		return fmt.Errorf("store: invalid table name %q", table)
	}
	if len(cols) == 0 || cols[0].Data.Rows() == 0 {
		return nil
	}
	if err := s.do(ctx, ch.Query{Body: "INSERT INTO " + table + " " + cols.Columns() + " VALUES", Input: cols}); err != nil {
		return fmt.Errorf("store: insert into %s: %w", table, err)
	}
	return nil
}

// Select implements Store.
func (s *Server) Select(ctx context.Context, q Query, result proto.Results, onBlock func(rows int) error) error {
	return s.do(ctx, ch.Query{
		Body:       strings.TrimRight(strings.TrimSpace(q.SQL), ";"),
		Parameters: params(q.Params),
		Result:     result,
		OnResult: func(_ context.Context, b proto.Block) error {
			defer resetResults(result)
			if b.Rows == 0 || onBlock == nil {
				return nil
			}
			return onBlock(b.Rows)
		},
	})
}

// Close implements Store.
func (s *Server) Close() error {
	s.pool.Close()
	return nil
}

// unavailable tells a storage outage (worth a retry later) from an error
// in the statement itself.
func unavailable(err error) bool {
	var exc *ch.Exception
	if errors.As(err, &exc) {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, context.DeadlineExceeded)
}
