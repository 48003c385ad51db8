package chfront

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/ClickHouse/ch-go/compress"
	"github.com/ClickHouse/ch-go/proto"

	"github.com/netview/netview/internal/store"
)

// conn serves one client connection: one packet at a time, on a session of
// its own.
type conn struct {
	srv   *Server
	nc    net.Conn
	r     *proto.Reader
	ver   int // negotiated protocol revision
	hello proto.ClientHello
	sess  *store.Embedded
	// applied holds the settings set on the session, as last sent by the
	// client; see applySettings.
	applied map[string]string

	writers map[compress.Method]*compress.Writer

	// Of the current query.
	compress bool            // its blocks are compressed both ways
	method   compress.Method // the codec of the blocks the front sends

	out  proto.Buffer // packets not yet written
	body proto.Buffer // one block before compression
	head proto.Buffer // a header block before compression
	raw  proto.Buffer // insert rows in the engine's Native format
}

func newConn(s *Server, nc net.Conn) *conn {
	return &conn{srv: s, nc: nc, r: proto.NewReader(nc), applied: map[string]string{}, writers: map[compress.Method]*compress.Writer{}}
}

// broken is an error after which the connection cannot go on: the client is
// gone or the stream is out of step. report says the client may still read
// an exception about it.
type broken struct {
	err    error
	report bool
}

func (b *broken) Error() string { return b.err.Error() }
func (b *broken) Unwrap() error { return b.err }

func fatal(err error, report bool) error { return &broken{err: err, report: report} }

func (c *conn) serve() error {
	defer func() {
		if c.sess != nil {
			c.sess.Close()
		}
	}()
	if err := c.handshake(); err != nil {
		return c.end(err)
	}
	for {
		code, err := c.r.UVarInt()
		if err != nil {
			return c.end(err)
		}
		switch proto.ClientCode(code) {
		case proto.ClientCodePing:
			proto.ServerCodePong.Encode(&c.out)
			err = c.flush()
		case proto.ClientCodeQuery:
			err = c.query()
		case proto.ClientCodeCancel:
			// The query it cancels has already ended.
		case proto.ClientCodeHello, proto.ClientCodeData:
			err = fatal(errorf(proto.ErrUnexpectedPacketFromClient, "Unexpected packet %s received from client", proto.ClientCode(code)), true)
		default:
			err = fatal(errorf(proto.ErrUnknownPacketFromClient, "Unknown packet %d from client", code), true)
		}
		if err != nil {
			return c.end(err)
		}
	}
}

// end reports a connection-ending error to the client if it can and says
// whether it is worth logging: neither a client that hangs up nor one told
// of its mistake is.
func (c *conn) end(err error) error {
	var b *broken
	if errors.As(err, &b) && b.report {
		c.out.Reset()
		c.putException(b.err)
		_ = c.flush()
		return nil
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return nil
	}
	return err
}

func (c *conn) handshake() error {
	code, err := c.r.UVarInt()
	if err != nil {
		return err
	}
	if proto.ClientCode(code) != proto.ClientCodeHello {
		return fmt.Errorf("first packet %d is not a hello", code)
	}
	if err := c.hello.Decode(c.r); err != nil {
		return fmt.Errorf("hello: %w", err)
	}
	if c.hello.ProtocolVersion < int(proto.FeatureSettingsSerializedAsStrings) {
		c.ver = c.hello.ProtocolVersion
		return fatal(errorf(proto.ErrUnknownProtocol, "client revision %d is too old for the test front", c.hello.ProtocolVersion), true)
	}
	c.ver = min(c.hello.ProtocolVersion, revision)
	h := c.srv.hello
	h.EncodeAware(&c.out, c.ver)
	if err := c.flush(); err != nil {
		return err
	}
	if proto.FeatureAddendum.In(c.ver) {
		if _, err := c.r.Str(); err != nil { // quota key
			return fmt.Errorf("addendum: %w", err)
		}
	}
	c.sess, err = c.srv.openSession()
	if err != nil {
		return fatal(errorf(proto.ErrUnknownException, "%v", err), true)
	}
	if db := c.hello.Database; db != "" && db != "default" {
		if err := c.exec("USE "+quoteIdent(db), nil); err != nil {
			return fatal(err, true) // UNKNOWN_DATABASE, as a server answers
		}
	}
	return nil
}

// query serves one Query packet and what follows it. Errors of the
// statement go back to the client as an exception; only a broken stream
// ends the connection.
func (c *conn) query() error {
	start := time.Now()
	var q proto.Query
	if err := q.DecodeAware(c.r, c.ver); err != nil {
		return fmt.Errorf("query packet: %w", err)
	}
	c.compress = q.Compression == proto.CompressionEnabled
	external, err := c.readExternal()
	if err != nil {
		return err
	}
	err = c.run(q, external, start)
	if err == nil {
		return nil
	}
	var b *broken
	if errors.As(err, &b) {
		return err
	}
	c.out.Reset()
	c.putException(err)
	return c.flush()
}

// readExternal reads the external tables sent with a query, up to the empty
// block that ends them, and reports whether there were any.
func (c *conn) readExternal() (bool, error) {
	external := false
	for {
		code, err := c.r.UVarInt()
		if err != nil {
			return false, fatal(err, false)
		}
		if proto.ClientCode(code) != proto.ClientCodeData {
			return false, fatal(errorf(proto.ErrUnexpectedPacketFromClient, "Unexpected packet %d from client, expected Data", code), true)
		}
		c.raw.Reset()
		s, err := c.readBlock(&c.raw)
		if err != nil {
			return false, err
		}
		if s.end() {
			return external, nil
		}
		external = true
	}
}

// readBlock reads the rest of a client Data packet and appends its rows to
// out in the engine's Native format; an empty block appends nothing.
func (c *conn) readBlock(out *proto.Buffer) (shape, error) {
	var d proto.ClientData
	if err := d.DecodeAware(c.r, c.ver); err != nil {
		return shape{}, fatal(err, false)
	}
	if c.compress {
		c.r.EnableCompression()
		defer c.r.DisableCompression()
	}
	start := len(out.Buf)
	s, err := copyBlock(c.r, out, netWire(c.ver), rawWire)
	if err != nil {
		code := proto.ErrCannotReadAllData
		if errors.Is(err, errNotSupported) {
			code = proto.ErrNotImplemented
		}
		return s, fatal(errorf(code, "data block from client: %v", err), true)
	}
	if s.rows == 0 {
		out.Buf = out.Buf[:start]
	}
	return s, nil
}

func (c *conn) run(q proto.Query, external bool, start time.Time) error {
	if external {
		return errorf(proto.ErrNotImplemented, "external tables are not supported by the test front")
	}
	method, err := compressionMethod(q.Settings)
	if err != nil {
		return err
	}
	c.method = method
	if err := c.applySettings(q.Settings); err != nil {
		return err
	}
	params := make([]store.Param, len(q.Parameters))
	for i, p := range q.Parameters {
		v, err := unquote(p.Value)
		if err != nil {
			return errorf(proto.ErrCannotParseQuotedString, "Cannot parse quoted string for query parameter '%s': %v", p.Key, err)
		}
		params[i] = store.Param{Name: p.Key, Value: v}
	}
	if ins, ok := parseInsert(q.Body); ok {
		return c.insert(ins, start)
	}
	return c.statement(q.Body, params, start)
}

func (c *conn) exec(sql string, params []store.Param) error {
	return c.sess.QueryNative(c.srv.ctx, sql, params, nil)
}

func (c *conn) sendHeader(names, types []string) error {
	c.head.Reset()
	encodeHeader(&c.head, netWire(c.ver), names, types)
	c.putData(c.head.Buf)
	return c.flush()
}

// maxFrame is the largest piece of a block compressed as one frame, as a
// server's max_compress_block_size.
const maxFrame = 1 << 20

// putData appends a Data packet holding the block body, compressed when
// the query asked for it.
func (c *conn) putData(body []byte) {
	proto.ServerCodeData.Encode(&c.out)
	if proto.FeatureTempTables.In(c.ver) {
		c.out.PutString("")
	}
	if !c.compress {
		c.out.PutRaw(body)
		return
	}
	w := c.writers[c.method]
	if w == nil {
		w = compress.NewWriter(compress.LevelZero, c.method)
		c.writers[c.method] = w
	}
	for len(body) > 0 {
		n := min(len(body), maxFrame)
		// Compress fails only on a frame over 4 GiB, and frames are 1 MiB.
		_ = w.Compress(body[:n])
		c.out.PutRaw(w.Data)
		body = body[n:]
	}
}

func (c *conn) putProgress(p proto.Progress) {
	proto.ServerCodeProgress.Encode(&c.out)
	p.EncodeAware(&c.out, c.ver)
}

func (c *conn) putException(err error) {
	e := exception(err)
	proto.ServerCodeException.Encode(&c.out)
	e.EncodeAware(&c.out, c.ver)
}

func (c *conn) flush() error {
	if len(c.out.Buf) == 0 {
		return nil
	}
	_, err := c.nc.Write(c.out.Buf)
	c.out.Reset()
	if err != nil {
		return fatal(err, false)
	}
	return nil
}
