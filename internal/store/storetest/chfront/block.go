package chfront

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/ClickHouse/ch-go/proto"
)

// wire is how a block is framed: the engine's Native format has neither
// block info nor per-column custom-serialization flags; the native protocol
// has them from the revisions that introduced them.
type wire struct{ info, flags bool }

// rawWire is the engine's Native format (revision 0 layout).
var rawWire = wire{}

func netWire(ver int) wire {
	return wire{info: proto.FeatureBlockInfo.In(ver), flags: proto.FeatureCustomSerialization.In(ver)}
}

// shape is what copyBlock learnt of a block.
type shape struct {
	rows         int
	names, types []string
}

func (s shape) end() bool { return len(s.names) == 0 && s.rows == 0 }

// maxChunk bounds one read, so a corrupt length fails instead of allocating
// gigabytes.
const maxChunk = 1 << 31

// errNotSupported marks a block the front cannot carry (a type whose layout
// it does not know, custom serialization); the stream is no longer in step.
var errNotSupported = errors.New("not supported by the test front")

type byteSource interface {
	io.Reader
	io.ByteReader
}

// copier moves column bytes from src to out unchanged. It never decodes a
// value: it only walks each type's layout to find where the column ends.
type copier struct {
	src byteSource
	out *proto.Buffer
}

// copyBlock reads one block framed as from and appends it to out framed as
// to. It returns io.EOF, with nothing appended, when src ends before a block.
func copyBlock(src byteSource, out *proto.Buffer, from, to wire) (shape, error) {
	c := copier{src: src, out: out}
	var s shape
	if from.info {
		if err := skipBlockInfo(src); err != nil {
			return s, err
		}
	}
	cols, err := binary.ReadUvarint(src)
	if err != nil {
		if errors.Is(err, io.EOF) && !from.info {
			return s, io.EOF
		}
		return s, fmt.Errorf("block columns: %w", noEOF(err))
	}
	rows, err := binary.ReadUvarint(src)
	if err != nil {
		return s, fmt.Errorf("block rows: %w", noEOF(err))
	}
	if cols > 1<<20 || rows > 1<<31 {
		return s, fmt.Errorf("block of %d columns and %d rows: corrupt", cols, rows)
	}
	s.rows = int(rows)
	if to.info {
		proto.BlockInfo{BucketNum: -1}.Encode(out)
	}
	out.PutUVarInt(cols)
	out.PutUVarInt(rows)
	for i := range int(cols) {
		name, err := c.str()
		if err != nil {
			return s, fmt.Errorf("column %d name: %w", i, err)
		}
		typ, err := c.str()
		if err != nil {
			return s, fmt.Errorf("column %s type: %w", name, err)
		}
		s.names, s.types = append(s.names, name), append(s.types, typ)
		if from.flags {
			custom, err := src.ReadByte()
			if err != nil {
				return s, fmt.Errorf("column %s serialization: %w", name, noEOF(err))
			}
			if custom != 0 {
				return s, fmt.Errorf("column %s: custom serialization %w", name, errNotSupported)
			}
		}
		if to.flags {
			out.PutByte(0)
		}
		l, err := parseType(typ)
		if err != nil {
			return s, fmt.Errorf("column %s: %w: %w", name, errNotSupported, err)
		}
		if rows == 0 {
			continue // zero rows are zero bytes, not even the state prefix
		}
		if err := c.prefix(l); err != nil {
			return s, fmt.Errorf("column %s: %w", name, err)
		}
		if err := c.data(l, rows); err != nil {
			return s, fmt.Errorf("column %s: %w", name, err)
		}
	}
	return s, nil
}

// encodeHeader appends a block of no rows that names the columns and their
// types, as a server sends before a result or an insert.
func encodeHeader(out *proto.Buffer, w wire, names, types []string) {
	if w.info {
		proto.BlockInfo{BucketNum: -1}.Encode(out)
	}
	out.PutInt(len(names))
	out.PutInt(0)
	for i := range names {
		out.PutString(names[i])
		out.PutString(types[i])
		if w.flags {
			out.PutByte(0)
		}
	}
}

// skipBlockInfo reads the block info fields (field number, value) up to the
// terminating 0.
func skipBlockInfo(src byteSource) error {
	for {
		f, err := binary.ReadUvarint(src)
		if err != nil {
			return fmt.Errorf("block info: %w", noEOF(err))
		}
		switch f {
		case 0:
			return nil
		case 1: // is_overflows
			_, err = src.ReadByte()
		case 2: // bucket_num
			_, err = io.ReadFull(src, make([]byte, 4))
		default:
			return fmt.Errorf("block info: unknown field %d", f)
		}
		if err != nil {
			return fmt.Errorf("block info: %w", noEOF(err))
		}
	}
}

// prefix copies the serialization state a column's data starts with: the
// key version of each LowCardinality in the type.
func (c *copier) prefix(l *layout) error {
	switch l.kind {
	case lowCardKind:
		_, err := c.u64()
		return err
	case nullableKind, arrayKind, tupleKind, mapKind:
		for _, e := range l.elems {
			if err := c.prefix(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// data copies rows values of type l.
func (c *copier) data(l *layout, rows uint64) error {
	switch l.kind {
	case fixedKind:
		return c.raw(rows * uint64(l.size))
	case stringKind:
		for range rows {
			n, err := c.uvarint()
			if err != nil {
				return err
			}
			if err := c.raw(n); err != nil {
				return err
			}
		}
		return nil
	case nullableKind:
		if err := c.raw(rows); err != nil {
			return err
		}
		return c.data(l.elems[0], rows)
	case arrayKind, mapKind:
		n, err := c.offsets(rows)
		if err != nil {
			return err
		}
		for _, e := range l.elems {
			if err := c.data(e, n); err != nil {
				return err
			}
		}
		return nil
	case tupleKind:
		for _, e := range l.elems {
			if err := c.data(e, rows); err != nil {
				return err
			}
		}
		return nil
	case lowCardKind:
		return c.lowCardinality(l, rows)
	}
	return fmt.Errorf("layout %d: %w", l.kind, errNotSupported)
}

// offsets copies the end offsets of rows arrays and returns the last one,
// the number of elements that follow.
func (c *copier) offsets(rows uint64) (uint64, error) {
	if rows == 0 {
		return 0, nil
	}
	if err := c.raw(rows * 8); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(c.out.Buf[len(c.out.Buf)-8:]), nil
}

// LowCardinality flags of the index type word (SerializationLowCardinality).
const (
	lcKeyMask            = 0xff
	lcNeedGlobalDict     = 1 << 8
	lcHasAdditionalKeys  = 1 << 9
	lcMaxKeyTypeExponent = 3 // UInt8, UInt16, UInt32, UInt64
)

// lowCardinality copies rows values of a LowCardinality column: groups of an
// index type, the dictionary keys of this group, and the row indexes, until
// rows indexes are read. Nothing is written for zero rows.
func (c *copier) lowCardinality(l *layout, rows uint64) error {
	dict := l.elems[0]
	if dict.kind == nullableKind {
		dict = dict.elems[0] // the dictionary holds the values; index 0 is null
	}
	for read := uint64(0); read < rows; {
		typ, err := c.u64()
		if err != nil {
			return err
		}
		if typ&lcNeedGlobalDict != 0 || typ&lcKeyMask > lcMaxKeyTypeExponent {
			return fmt.Errorf("LowCardinality index type %#x: %w", typ, errNotSupported)
		}
		if typ&lcHasAdditionalKeys != 0 {
			keys, err := c.u64()
			if err != nil {
				return err
			}
			if err := c.data(dict, keys); err != nil {
				return err
			}
		}
		n, err := c.u64()
		if err != nil {
			return err
		}
		if n == 0 || n > rows-read {
			return fmt.Errorf("LowCardinality: %d indexes for %d rows left: corrupt", n, rows-read)
		}
		if err := c.raw(n << (typ & lcKeyMask)); err != nil {
			return err
		}
		read += n
	}
	return nil
}

func (c *copier) raw(n uint64) error {
	if n > maxChunk {
		return fmt.Errorf("%d bytes in one column: corrupt", n)
	}
	start := len(c.out.Buf)
	c.out.Buf = slices.Grow(c.out.Buf, int(n))[:start+int(n)]
	if _, err := io.ReadFull(c.src, c.out.Buf[start:]); err != nil {
		c.out.Buf = c.out.Buf[:start]
		return noEOF(err)
	}
	return nil
}

func (c *copier) u64() (uint64, error) {
	if err := c.raw(8); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(c.out.Buf[len(c.out.Buf)-8:]), nil
}

func (c *copier) uvarint() (uint64, error) {
	v, err := binary.ReadUvarint(c.src)
	if err != nil {
		return 0, noEOF(err)
	}
	c.out.PutUVarInt(v)
	return v, nil
}

// str copies a length-prefixed string and returns it.
func (c *copier) str() (string, error) {
	n, err := c.uvarint()
	if err != nil {
		return "", err
	}
	if err := c.raw(n); err != nil {
		return "", err
	}
	return string(c.out.Buf[len(c.out.Buf)-int(n):]), nil
}

// noEOF turns an end of input inside a block into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
