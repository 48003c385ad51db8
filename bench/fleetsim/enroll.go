package fleetsim

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// enrollConcurrency bounds the enrollments in flight: each one is a
// credentials write, and a fleet of thousands enrolling at once would only
// measure the credentials table, not ingest.
const enrollConcurrency = 8

// sensorKey is the key sensor idx proposes at enrollment, in the format of
// creds.New ("nvs_<16 hex>_<base64url of 32 bytes>"). It is derived from
// the enrollment secret, the seed and the sensor, never random, so that a
// second run with the same seed against the same store proposes the same
// key, which ingest accepts again (EnrollKey is idempotent), instead of
// finding the sensor enrolled with a key no one holds. Without the
// enrollment secret no one can derive it.
func sensorKey(secret string, seed uint64, idx int) (id, key string, sum [32]byte) {
	var in [16]byte
	binary.LittleEndian.PutUint64(in[:8], seed)
	binary.LittleEndian.PutUint64(in[8:], uint64(idx))
	raw := sha256.Sum256(append([]byte("netview-fleetsim-key\x00"+secret+"\x00"), in[:]...))
	tail := sha256.Sum256(raw[:])
	id = hex.EncodeToString(raw[:8])
	key = "nvs_" + id + "_" + base64.RawURLEncoding.EncodeToString(tail[:])
	return id, key, sha256.Sum256([]byte(key))
}

// enrollAll enrolls every sensor with cfg.EnrollSecret at its first target,
// as a real sensor does before its first heartbeat, and keeps the key each
// one then heartbeats with.
func (r *runner) enrollAll(ctx context.Context, runs []*sensorRun) error {
	sem := make(chan struct{}, enrollConcurrency)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for _, sr := range runs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := r.enroll(ctx, sr); err != nil {
				mu.Lock()
				first = cmpErr(first, err)
				mu.Unlock()
			}
		}()
		if ctx.Err() != nil {
			break
		}
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// enroll asks for sr's key, retrying what a real sensor retries (429,
// 503, connection errors) until ctx ends.
func (r *runner) enroll(ctx context.Context, sr *sensorRun) error {
	id, key, sum := sensorKey(r.cfg.EnrollSecret, r.cfg.Seed, sr.s.idx)
	body, err := json.Marshal(map[string]string{
		"sensor_id": sr.s.id.String(), "hostname": sr.s.hostname,
		"key_id": id, "key_sha256": hex.EncodeToString(sum[:]),
	})
	if err != nil {
		return err
	}
	t := &r.targets[sr.targets[0]]
	u, err := url.Parse(t.uri)
	if err != nil {
		return err
	}
	u.Path = "/v1/enroll"
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	wait := r.cfg.MinBackoff
	for {
		req.Reset()
		req.SetRequestURI(u.String())
		req.Header.SetMethod(fasthttp.MethodPost)
		req.Header.Set("Authorization", "Bearer "+r.cfg.EnrollSecret)
		req.Header.SetContentType("application/json")
		req.SetBody(body)
		err := r.client(sr, sr.targets[0]).DoTimeout(req, resp, r.cfg.RequestTimeout)
		code := 0
		if err == nil {
			code = resp.StatusCode()
		}
		switch {
		case code == fasthttp.StatusOK:
			sr.auth = "Bearer " + key
			return nil
		case err == nil && code != fasthttp.StatusTooManyRequests && code != fasthttp.StatusServiceUnavailable:
			return fmt.Errorf("fleetsim: enroll sensor %s: HTTP %d: %s", sr.s.id, code, resp.Body())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, r.cfg.MaxBackoff)
	}
}
