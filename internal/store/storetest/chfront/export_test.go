package chfront

import (
	"bytes"
	"errors"
	"io"

	"github.com/ClickHouse/ch-go/proto"
)

// RoundTripNative carries the engine's Native output block by block to the
// protocol's framing at revision ver and back, as the front does for a
// result and for an insert. It returns the bytes it ends with, the column
// names of each block, and the number of rows.
func RoundTripNative(native []byte, ver int) (out []byte, names [][]string, rows int, err error) {
	src := bytes.NewReader(native)
	var wire, back proto.Buffer
	for {
		wire.Reset()
		s, err := copyBlock(src, &wire, rawWire, netWire(ver))
		if errors.Is(err, io.EOF) {
			return back.Buf, names, rows, nil
		}
		if err != nil {
			return nil, nil, 0, err
		}
		r := bytes.NewReader(wire.Buf)
		if _, err := copyBlock(r, &back, netWire(ver), rawWire); err != nil {
			return nil, nil, 0, err
		}
		if r.Len() != 0 {
			return nil, nil, 0, errors.New("bytes left over after a block")
		}
		names = append(names, s.names)
		rows += s.rows
	}
}
