package heartbeat

import (
	"encoding/json"
	"sync"

	"github.com/klauspost/compress/zstd"
)

var encoders = sync.Pool{New: func() any {
	// A 1 MiB window keeps the receiver's memory small; heartbeats compress
	// about as well with it as with the default.
	e, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20))
	if err != nil {
		panic(err)
	}
	return e
}}

// Encode returns h as zstd-compressed JSON, the body of POST /v1/heartbeat.
func Encode(h *Heartbeat) ([]byte, error) {
	doc, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	return Compress(doc), nil
}

// Compress zstd-compresses a document.
func Compress(doc []byte) []byte {
	e := encoders.Get().(*zstd.Encoder)
	defer encoders.Put(e)
	return e.EncodeAll(doc, nil)
}
