package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"
	"unsafe"

	"github.com/google/uuid"
	"github.com/valyala/fasthttp"

	"github.com/netview/netview/internal/creds"
	"github.com/netview/netview/internal/ratelimit"
)

// Who a request's bearer secret names.
type who uint8

const (
	nobody    who = iota
	static        // a --ingest.token: a bootstrap enrollment secret
	enroller      // an enrollment secret issued in the credentials table
	sensorKey     // a sensor's own key, bound to its sensor id
)

// caller is the outcome of checking a request's Authorization header.
type caller struct {
	who  who
	cred creds.Credential // enroller and sensorKey; also a revoked key
	err  error            // creds.ErrUnknown, creds.ErrRevoked or a storage error
}

// Routes that take a bearer secret.
const (
	routeHeartbeat = "/v1/heartbeat"
	routeEnroll    = "/v1/enroll"
	routeRotate    = "/v1/rotate"
)

// smallBody bounds the JSON bodies of /v1/enroll and /v1/rotate.
const smallBody = 4 << 10

// identify checks an Authorization header value against the static tokens
// and the credentials copy. It allocates nothing for a known secret: the
// secret is looked at in place.
func (s *Server) identify(authz []byte) caller {
	if s.tokens.Check(authz) {
		return caller{who: static}
	}
	tok, ok := bytes.CutPrefix(authz, []byte("Bearer "))
	if !ok || len(tok) == 0 || s.creds == nil {
		return caller{err: creds.ErrUnknown}
	}
	c, err := s.creds.Check(context.Background(), view(tok), creds.Enroll, creds.Sensor)
	switch {
	case err != nil:
		return caller{cred: c, err: err}
	case c.Kind == creds.Sensor:
		return caller{who: sensorKey, cred: c}
	default:
		return caller{who: enroller, cred: c}
	}
}

// mayHeartbeat: a sensor's key, or a static token when shared tokens are on.
func (s *Server) mayHeartbeat(c caller) bool {
	return c.who == sensorKey || (c.who == static && s.cfg.SharedTokens)
}

// bodyAllowance is how much body the request may send, judged on its
// headers alone; 0 refuses it unread.
func (s *Server) bodyAllowance(h *fasthttp.RequestHeader) int {
	c := s.identify(h.Peek("Authorization"))
	limit := 0
	switch {
	case s.mayHeartbeat(c):
		limit = s.cfg.MaxBodyBytes
	case c.who == static || c.who == enroller || c.who == sensorKey:
		limit = smallBody
	case errors.Is(c.err, creds.ErrRevoked) && c.cred.Kind == creds.Sensor:
		limit = smallBody // may be the retry of a rotation that revoked it
	}
	if path, _, _ := bytes.Cut(h.RequestURI(), []byte("?")); string(path) == routeEnroll || string(path) == routeRotate {
		limit = min(limit, smallBody)
	}
	if h.ContentLength() > limit {
		return 0
	}
	return limit
}

// admit decides whether a request on route may go on: the client address's
// request rate and failed authentications, the secret, and the sensor's
// request rate. It answers the refusals itself. A refused body is never
// read, so the connection is closed after the answer.
func (s *Server) admit(ctx *fasthttp.RequestCtx, route string) (caller, bool) {
	now := time.Now()
	ip := s.proxies.ClientIP(ctx.RemoteIP(), ctx.Request.Header.Peek("X-Forwarded-For"))
	key := ratelimit.Key(ip)
	if ok, wait := s.ipRate.Take(key, now); !ok {
		s.tooMany(ctx, ReasonRateLimited, wait, "too many requests from "+ip.String())
		return caller{}, false
	}
	if blocked, wait := s.authFails.Empty(key, now); blocked {
		s.tooMany(ctx, ReasonAuthLimited, wait, "too many failed authentications from "+ip.String())
		return caller{}, false
	}
	c := s.identify(ctx.Request.Header.Peek("Authorization"))
	refuse := func(status int, reason, msg string) (caller, bool) {
		s.authFails.Take(key, now)
		ctx.SetConnectionClose()
		if status == fasthttp.StatusUnauthorized {
			ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="netview-ingest"`)
		}
		s.fail(ctx, status, reason, msg)
		return c, false
	}
	switch {
	case c.err != nil && !errors.Is(c.err, creds.ErrUnknown) && !errors.Is(c.err, creds.ErrRevoked):
		ctx.SetConnectionClose()
		ctx.Response.Header.Set("Retry-After", "5")
		s.log.Warn("credential check failed", "err", c.err)
		s.fail(ctx, fasthttp.StatusServiceUnavailable, ReasonUnavailable, "credentials cannot be checked for a moment; retry after Retry-After")
		return c, false
	case errors.Is(c.err, creds.ErrRevoked) && c.cred.Kind == creds.Sensor && route == routeRotate:
		// rotate decides: a retried rotation presents the key it revoked.
	case errors.Is(c.err, creds.ErrRevoked):
		return refuse(fasthttp.StatusUnauthorized, ReasonRevoked, fmt.Sprintf("%s %s revoked: enroll again (POST /v1/enroll)", c.cred.Kind, c.cred.ID))
	case c.who == nobody:
		return refuse(fasthttp.StatusUnauthorized, ReasonUnauthorized, "missing or wrong bearer token")
	case route == routeHeartbeat && !s.mayHeartbeat(c):
		return refuse(fasthttp.StatusForbidden, ReasonWrongCredential,
			"an enrollment secret may only enroll (POST /v1/enroll): send heartbeats with the sensor key it gives")
	case route == routeEnroll && c.who == sensorKey:
		return refuse(fasthttp.StatusForbidden, ReasonWrongCredential, "a sensor key cannot enroll: use an enrollment secret")
	case route == routeRotate && c.who != sensorKey:
		return refuse(fasthttp.StatusForbidden, ReasonWrongCredential, "only a sensor key can be rotated")
	}
	if c.cred.Kind == creds.Sensor {
		if ok, wait := s.sensorRate.Take(c.cred.SensorID, now); !ok {
			s.tooMany(ctx, ReasonRateLimited, wait, "too many requests from sensor "+c.cred.SensorID.String())
			return c, false
		}
	}
	return c, true
}

// newLimiter's buckets hold two seconds' worth: a sensor that sends a
// burst after an outage, or a retry just after its heartbeat, is not
// refused.
func newLimiter[K comparable](rate float64) *ratelimit.Limiter[K] {
	return ratelimit.New[K](rate, 2*rate)
}

func (s *Server) tooMany(ctx *fasthttp.RequestCtx, reason string, wait time.Duration, msg string) {
	ctx.SetConnectionClose()
	ctx.Response.Header.Set("Retry-After", ratelimit.RetryAfter(wait))
	s.fail(ctx, fasthttp.StatusTooManyRequests, reason, msg)
}

// sensorOf is the sensor id a caller may write heartbeats for; uuid.Nil
// (any) for a shared static token.
func sensorOf(c caller) uuid.UUID {
	if c.who == sensorKey {
		return c.cred.SensorID
	}
	return uuid.Nil
}

// view returns b as a string without copying, for lookups that do not keep it.
func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
