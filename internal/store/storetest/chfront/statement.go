package chfront

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/netview/netview/internal/store"
)

// statement runs anything but a streamed INSERT and sends its result, if
// any, as a header block and data blocks, as a server does.
func (c *conn) statement(sql string, params []store.Param, start time.Time) error {
	var (
		header bool
		prof   proto.Profile
	)
	w := netWire(c.ver)
	err := c.sess.QueryNative(c.srv.ctx, sql, params, func(native []byte) error {
		src := bytes.NewReader(native)
		for {
			c.body.Reset()
			s, err := copyBlock(src, &c.body, rawWire, w)
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return errorf(proto.ErrNotImplemented, "result: %v", err)
			}
			if !header {
				if err := c.sendHeader(s.names, s.types); err != nil {
					return err
				}
				header = true
			}
			c.putData(c.body.Buf)
			if err := c.flush(); err != nil {
				return err
			}
			prof.Rows += uint64(s.rows)
			prof.Blocks++
			prof.Bytes += uint64(len(c.body.Buf))
		}
	})
	if err != nil {
		return err
	}
	if !header && returnsRows(sql) {
		// The engine writes nothing for an empty result; a server still
		// sends the header, which clients check their columns against.
		if names, types, _, err := c.describe("DESCRIBE TABLE ("+sql+")", params); err == nil {
			if err := c.sendHeader(names, types); err != nil {
				return err
			}
			header = true
		}
	}
	progress := proto.Progress{Rows: prof.Rows, Bytes: prof.Bytes, TotalRows: prof.Rows, ElapsedNs: uint64(time.Since(start))}
	if header {
		prof.EncodeAware(&c.out, c.ver)
		c.putProgress(progress)
		c.head.Reset()
		encodeHeader(&c.head, w, nil, nil) // the empty block a server ends a result with
		c.putData(c.head.Buf)
	} else {
		c.putProgress(progress)
	}
	proto.ServerCodeEndOfStream.Encode(&c.out)
	return c.flush()
}

// describe runs a DESCRIBE statement and returns the name, type, and
// default kind of each column it lists.
func (c *conn) describe(sql string, params []store.Param) (names, types, kinds []string, err error) {
	err = c.sess.QueryNative(c.srv.ctx, sql, params, func(native []byte) error {
		r := proto.NewReader(bytes.NewReader(native))
		var res proto.Results
		for {
			var b proto.Block
			if err := b.DecodeRawBlock(r, rawRevision, res.Auto()); err != nil {
				if errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					return nil
				}
				return fmt.Errorf("describe: %w", err)
			}
			cols := map[string]*proto.ColStr{}
			for _, rc := range res {
				if s, ok := rc.Data.(*proto.ColStr); ok {
					cols[rc.Name] = s
				}
			}
			name, typ, kind := cols["name"], cols["type"], cols["default_type"]
			if name == nil || typ == nil || kind == nil {
				return errors.New("describe: no name, type, or default_type column")
			}
			for i := range b.Rows {
				names, types, kinds = append(names, name.Row(i)), append(types, typ.Row(i)), append(kinds, kind.Row(i))
			}
		}
	})
	return names, types, kinds, err
}

// rawRevision decodes the engine's Native format with ch-go: the newest
// revision without the custom-serialization byte (as internal/store does).
const rawRevision = int(proto.FeatureCustomSerialization) - 1
