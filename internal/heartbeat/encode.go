package heartbeat

import (
	"bytes"
	"encoding/json"
	"errors"
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

// Encoder encodes heartbeats one after another into buffers it keeps. A
// sensor under 1,000 new connections a second spent most of its CPU in
// Encode (a profile of sensor_test's BenchmarkSensorCPUUnderConnections):
// growing json.Marshal's buffer from nothing, clearing and copying it at
// every doubling, and reflecting over tens of thousands of completed flows
// and events with an allocation per address and time. The Encoder keeps
// its buffers between heartbeats and writes flows and events itself
// (appendjson.go), byte for byte as json.Marshal; see BenchmarkEncode.
type Encoder struct {
	doc []byte
	out []byte
}

// tail is where encoding/json puts a heartbeat's completed flows and events
// when both are nil: the Encoder writes the rest with encoding/json and
// its own arrays in their place.
const tail = `"completed_flows":null,"events":null`

// Encode returns h as zstd-compressed JSON, the same bytes as the function
// Encode. The result is valid until the next call.
func (e *Encoder) Encode(h *Heartbeat) ([]byte, error) {
	rest := *h
	rest.CompletedFlows, rest.Events = nil, nil
	head, err := json.Marshal(&rest)
	if err != nil {
		return nil, err
	}
	i := bytes.Index(head, []byte(tail))
	if i < 0 {
		return nil, errors.New("heartbeat: encoder: completed_flows and events not where expected")
	}
	e.doc = append(e.doc[:0], head[:i]...)
	e.doc = append(e.doc, `"completed_flows":`...)
	e.doc = appendFlows(e.doc, h.CompletedFlows)
	e.doc = append(e.doc, `,"events":`...)
	e.doc = appendEvents(e.doc, h.Events)
	e.doc = append(e.doc, head[i+len(tail):]...)
	z := encoders.Get().(*zstd.Encoder)
	defer encoders.Put(z)
	e.out = z.EncodeAll(e.doc, e.out[:0])
	return e.out, nil
}

// Compress zstd-compresses a document.
func Compress(doc []byte) []byte {
	e := encoders.Get().(*zstd.Encoder)
	defer encoders.Put(e)
	return e.EncodeAll(doc, nil)
}
