package uplink

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/netview/netview/sensor/spool"
)

// ErrRejected means ingest refused the heartbeat for good (400, 413, 415,
// 422 when storage refused its rows while the rest of its batch was
// stored, and 403 for a heartbeat of another sensor than the key's):
// the same bytes would be refused again. Send wraps it with a *StatusError
// carrying the server's message.
var ErrRejected = errors.New("ingest rejected the heartbeat")

// maxRetryAfter bounds a Retry-After from a misconfigured proxy.
const maxRetryAfter = 10 * time.Minute

// StatusError is an answer of ingest (or a proxy in front of it) other
// than 200.
type StatusError struct {
	Status  int
	Message string // the "error" member of the JSON body, or the body's start
	Reason  string // the "reason" member: "revoked", "blocked", ...
	// RetryAfter is the answer's Retry-After, 0 if none.
	RetryAfter time.Duration
}

// statusError reads a non-200 answer.
func statusError(resp *http.Response) *StatusError {
	msg, reason := readMessage(resp.Body)
	return &StatusError{Status: resp.StatusCode, Message: msg, Reason: reason,
		RetryAfter: ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
}

// retryAfterOf is the Retry-After of the answer behind err, if any.
func retryAfterOf(err error) time.Duration {
	var se *StatusError
	if errors.As(err, &se) {
		return se.RetryAfter
	}
	return 0
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("ingest answered %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// RetryError is a failure worth retrying with the same bytes: a network
// error, 429, 5xx, 401/403 or an unexpected status. After is the least
// wait the server asked for (Retry-After), or the auth backoff; 0 if none.
type RetryError struct {
	After time.Duration
	Err   error
}

func (e *RetryError) Error() string {
	if e.After > 0 {
		return fmt.Sprintf("%v (retry after %v)", e.Err, e.After)
	}
	return e.Err.Error()
}

func (e *RetryError) Unwrap() error { return e.Err }

// Client posts heartbeats to POST /v1/heartbeat (docs/heartbeat.md).
type Client struct {
	URL   string // e.g. http://127.0.0.1:8090/v1/heartbeat
	Token string
	// TokenFunc, if set, is asked for the token on every request instead
	// of Token, so a rotated token (a re-read token file) is picked up.
	TokenFunc func() string
	// HTTP is the client to use; nil means one with a 5 s connect timeout
	// and a 35 s request timeout (ingest answers 503 after its 30 s ack
	// timeout; the request must outlive that).
	HTTP *http.Client
	// MinBackoff and MaxBackoff bound the exponential backoff between
	// retries; defaults 500 ms and 60 s.
	MinBackoff, MaxBackoff time.Duration
	// AuthBackoff is the least wait after a 401 or 403, which only an
	// operator can fix; default 2 minutes.
	AuthBackoff time.Duration
	// Keys, if set, is the sensor's own key, obtained by enrolling; it is
	// sent instead of Token, and a 401 saying it was revoked makes the
	// next request enroll again.
	Keys *Keyring

	once sync.Once
	http *http.Client
}

// Send posts one zstd JSON body with the bearer token. It returns nil on
// 200 (ingest has stored every row), an error wrapping ErrRejected for 400,
// 413, 415 and 422, ctx.Err() when ctx ended, and a *RetryError otherwise.
func (c *Client) Send(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(body))
	if err != nil {
		// A bad URL is a configuration error; retrying keeps the data
		// until it is fixed.
		return &RetryError{Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "zstd")
	tok := c.Token
	if c.TokenFunc != nil {
		tok = c.TokenFunc()
	}
	if c.Keys != nil {
		if tok, err = c.Keys.Key(ctx, c.client()); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var se *StatusError
			if errors.As(err, &se) && se.Status >= 400 && se.Status < 500 && se.Status != http.StatusTooManyRequests {
				// Refused (409, 403 blocked): only time or an operator helps.
				return &RetryError{After: orDefault(c.AuthBackoff, 2*time.Minute), Err: err}
			}
			return &RetryError{After: retryAfterOf(err), Err: err}
		}
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := c.client().Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &RetryError{Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
		return nil
	}
	se := statusError(resp)
	switch resp.StatusCode {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity:
		// 422: storage itself refused the rows; the same bytes fail again.
		return fmt.Errorf("%w: %w", ErrRejected, se)
	case http.StatusUnauthorized, http.StatusForbidden:
		if se.Reason == "sensor_mismatch" {
			// A heartbeat of another sensor id (the identity was replaced
			// while it waited): this key will never deliver it.
			return fmt.Errorf("%w: %w", ErrRejected, se)
		}
		if c.Keys != nil && c.Keys.refused(tok, se) {
			// Enroll again at once: the spool keeps the heartbeat meanwhile.
			return &RetryError{Err: se}
		}
		return &RetryError{After: orDefault(c.AuthBackoff, 2*time.Minute), Err: se}
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		return &RetryError{After: se.RetryAfter, Err: se}
	}
	return &RetryError{Err: se}
}

func (c *Client) client() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	c.once.Do(func() { c.http = NewHTTPClient(nil) })
	return c.http
}

// NewHTTPClient is the client a sensor posts with: a 5 s connect timeout
// and a 35 s request timeout (ingest answers 503 after its 30 s ack
// timeout; the request must outlive that), over tc when not nil.
func NewHTTPClient(tc *tls.Config) *http.Client {
	return &http.Client{
		Timeout: 35 * time.Second,
		Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:     tc,
			TLSHandshakeTimeout: 5 * time.Second,
			ForceAttemptHTTP2:   true,
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     90 * time.Second,
		},
	}
}

// readMessage returns the server's error message and reason: the "error"
// and "reason" members of ingest's JSON answers, or the start of whatever
// else came back.
func readMessage(r io.Reader) (string, string) {
	b, _ := io.ReadAll(io.LimitReader(r, 4<<10))
	io.Copy(io.Discard, io.LimitReader(r, 64<<10))
	var doc struct {
		Error  string `json:"error"`
		Reason string `json:"reason"`
	}
	if json.Unmarshal(b, &doc) == nil && doc.Error != "" {
		return doc.Error, doc.Reason
	}
	msg := strings.TrimSpace(string(b))
	if len(msg) > 512 {
		msg = msg[:512] + "..."
	}
	return msg, ""
}

// ParseRetryAfter reads Retry-After as seconds or an HTTP date.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		d = time.Duration(min(max(n, 0), int64(maxRetryAfter/time.Second))) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}

// Backoff is the wait before retry number attempt (0 for the first):
// uniform in [0, min(hi, lo·2^attempt)] ("full jitter"), so sensors that
// lost ingest together do not come back together. r nil uses the global
// source.
func Backoff(attempt int, lo, hi time.Duration, r *rand.Rand) time.Duration {
	ceil := lo
	for i := 0; i < attempt && ceil < hi; i++ {
		ceil *= 2
	}
	ceil = min(ceil, hi)
	if ceil <= 0 {
		return 0
	}
	if r == nil {
		return time.Duration(rand.Int64N(int64(ceil) + 1))
	}
	return time.Duration(r.Int64N(int64(ceil) + 1))
}

// DeliveryStats describes a Sender's work since it started.
type DeliveryStats struct {
	Sent     uint64 // heartbeats acknowledged (200)
	Retries  uint64 // failed attempts that will be retried
	Rejected uint64 // heartbeats ingest refused, moved to rejected/
	// Stripped counts heartbeats sent again without snapshots after a 413.
	Stripped    uint64
	LastError   string
	LastSuccess time.Time
}

// Sender delivers a spool's heartbeats; Stats may be read while Run runs.
//
// It lives here, not in spool, because what it does is delivery: it acts
// on ingest's answers (retry, back off, strip a 413, set aside a refusal),
// while the spool stays a disk queue that knows nothing of the network.
// So this package imports spool and never the other way; Sender takes the
// *spool.Spool itself rather than an interface, there being one queue.
type Sender struct {
	Spool  *spool.Spool
	Client *Client
	Log    *slog.Logger // nil: no logging

	mu    sync.Mutex
	stats DeliveryStats
}

// Run sends spooled heartbeats oldest first until ctx ends and returns
// ctx.Err(). See Sender.Run.
func Run(ctx context.Context, s *spool.Spool, c *Client, log *slog.Logger) error {
	return (&Sender{Spool: s, Client: c, Log: log}).Run(ctx)
}

// Stats returns a copy of the delivery counters.
func (d *Sender) Stats() DeliveryStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// Run sends spooled heartbeats oldest first until ctx ends, strictly in
// order: seq N+1 goes only after N was acknowledged or rejected. An
// acknowledged heartbeat is removed and the next one sent at once. A
// failure is retried with the same entry after max(Retry-After, backoff),
// the backoff doubling up to MaxBackoff and resetting after a success. A
// rejected heartbeat is moved to rejected/, except that a 413 is first
// retried without the snapshot sections. Run returns ctx.Err().
func (d *Sender) Run(ctx context.Context) error {
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lo := orDefault(d.Client.MinBackoff, 500*time.Millisecond)
	hi := max(orDefault(d.Client.MaxBackoff, 60*time.Second), lo)
	attempt := 0
	retry := func(seq uint64, after time.Duration, err error) bool {
		wait := max(Backoff(attempt, lo, hi, nil), after)
		attempt++
		d.update(func(st *DeliveryStats) { st.Retries++; st.LastError = err.Error() })
		log.Warn("heartbeat not delivered, will retry", "seq", seq, "attempt", attempt, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	for ctx.Err() == nil {
		seq, body, ok, err := d.Spool.Oldest()
		if err != nil {
			if !retry(seq, 0, err) {
				return ctx.Err()
			}
			continue
		}
		if !ok {
			select {
			case <-ctx.Done():
			case <-d.Spool.Notify():
			}
			continue
		}
		err = d.Client.Send(ctx, body)
		var se *StatusError
		switch {
		case err == nil:
			if err := d.Spool.Remove(seq); err != nil {
				// Sending it again is harmless: ingest takes it as a retry.
				if !retry(seq, 0, err) {
					return ctx.Err()
				}
				continue
			}
			if attempt > 0 {
				log.Info("ingest took the heartbeat after retries", "seq", seq, "retries", attempt)
			}
			attempt = 0
			d.update(func(st *DeliveryStats) { st.Sent++; st.LastSuccess = time.Now() })
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, ErrRejected):
			if errors.As(err, &se) && se.Status == http.StatusRequestEntityTooLarge {
				if stripped, serr := d.Spool.StripSnapshots(seq); serr == nil && stripped {
					log.Warn("heartbeat too large for ingest, sending it without its snapshot sections", "seq", seq, "err", err)
					d.update(func(st *DeliveryStats) { st.Stripped++; st.LastError = err.Error() })
					continue
				}
			}
			if rerr := d.Spool.Reject(seq, err.Error()); rerr != nil {
				if !retry(seq, 0, rerr) {
					return ctx.Err()
				}
				continue
			}
			log.Error("ingest rejected the heartbeat; moved it to "+spool.RejectedDir+"/", "seq", seq, "dir", d.Spool.Dir(), "err", err)
			attempt = 0
			d.update(func(st *DeliveryStats) { st.Rejected++; st.LastError = err.Error() })
		default:
			var re *RetryError
			var after time.Duration
			if errors.As(err, &re) {
				after = re.After
			}
			if !retry(seq, after, err) {
				return ctx.Err()
			}
		}
	}
	return ctx.Err()
}

func (d *Sender) update(f func(*DeliveryStats)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(&d.stats)
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
