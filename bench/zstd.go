package bench

import "github.com/klauspost/compress/zstd"

var dec, _ = zstd.NewReader(nil)

// decompress undoes heartbeat.Encode for the direct-insert reference.
func decompress(body []byte) ([]byte, error) { return dec.DecodeAll(body, nil) }
