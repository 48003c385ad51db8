package query

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/netview/netview/internal/audit"
	"github.com/netview/netview/internal/creds"
	"github.com/netview/netview/internal/ratelimit"
	"github.com/netview/netview/internal/store"
)

// principal is who made a request: the role its token carries and, for the
// audit log, which credential it was.
type principal struct {
	role string // creds.Viewer, creds.Analyst or creds.Admin
	id   string // the issued token's id; "" for a static token
	tok  []byte // a static token, only to name it (see actor); never stored
}

// actor names the credential in the audit log without revealing it: an
// issued token by its public id, a static one as static:<role>#<the first
// 8 hex digits of its SHA-256>, enough to tell configured tokens apart.
func (p *principal) actor() string {
	if p.id != "" {
		return p.id
	}
	sum := sha256.Sum256(p.tok)
	return "static:" + p.role + "#" + hex.EncodeToString(sum[:4])
}

// authenticate finds the role of the request's bearer token (see check),
// unless the client's address has failed to too often lately: then it is a
// 429 until its bucket refills (--query.auth-fail-rate). The bucket is
// looked at before the token, so a right token waits too: were it let
// through, the answer to a guess would say whether it was right, and the
// limit would slow a guesser down no more than it waits for that answer.
// Only failures spend tokens, so a client that signs in well is never held.
func (s *Server) authenticate(ctx context.Context, r *fasthttp.RequestCtx, p *principal) error {
	now := time.Now()
	ip := s.proxies.ClientIP(r.RemoteIP(), r.Request.Header.Peek("X-Forwarded-For"))
	key := ratelimit.Key(ip)
	if blocked, wait := s.authFails.Empty(key, now); blocked {
		secs := ratelimit.RetryAfter(wait)
		r.Response.Header.Set("Retry-After", secs)
		return &apiError{Status: 429, Msg: "too many failed sign-ins from " + ip.String() +
			": check the token, and try again in " + secs + " s (every request from this address waits, with a right token too)"}
	}
	err := s.check(ctx, r, p)
	// A request with no Authorization at all guesses nothing: it is not
	// counted, so a page that asks before it has a token locks no one out.
	var ae *apiError
	if errors.As(err, &ae) && ae.Status == 401 && len(r.Request.Header.Peek("Authorization")) > 0 {
		s.authFails.Take(key, now)
	}
	return err
}

// check finds the role of the request's bearer token: a static token of
// the flags (the highest role holding it wins), or a token issued at run
// time, checked against the in-memory copy of the credentials table. An
// unknown, revoked or expired token is a 401; storage that cannot be asked
// about a token the copy lacks is a 503.
func (s *Server) check(ctx context.Context, r *fasthttp.RequestCtx, p *principal) error {
	h := r.Request.Header.Peek("Authorization")
	tok, ok := bytes.CutPrefix(h, []byte("Bearer "))
	if !ok || len(tok) == 0 {
		return &apiError{Status: 401, Msg: "missing bearer token: send Authorization: Bearer <token>"}
	}
	switch {
	case s.admins.Len() > 0 && s.admins.Check(h):
		p.role = creds.Admin
	case s.analysts.Len() > 0 && s.analysts.Check(h):
		p.role = creds.Analyst
	case s.viewers.Len() > 0 && s.viewers.Check(h):
		p.role = creds.Viewer
	}
	if p.role != "" {
		p.tok = tok
		return nil
	}
	if kind, _, ok := creds.Parse(string(tok)); !ok || kind != creds.Token {
		return &apiError{Status: 401, Msg: "wrong bearer token"}
	}
	c, err := s.creds.Check(ctx, string(tok), creds.Token)
	switch {
	case errors.Is(err, creds.ErrRevoked):
		return &apiError{Status: 401, Msg: "this token was revoked or has expired"}
	case errors.Is(err, creds.ErrUnknown):
		return &apiError{Status: 401, Msg: "wrong bearer token"}
	case err != nil:
		return err // storage: 503
	}
	p.role, p.id = c.Role, c.ID
	return nil
}

// auditTimeout bounds one audit write.
const auditTimeout = 5 * time.Second

// auditEntry is what a request adds to its audit row.
type auditEntry struct {
	action, target, detail string
}

// outcome classifies how an audited request ended: a 4xx is a refusal.
func outcome(err error) string {
	var ae *apiError
	switch {
	case err == nil:
		return audit.Allowed
	case errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500:
		return audit.Refused
	}
	return audit.Failed
}

// record writes the audit row of a request made by p that ended with err.
func (s *Server) record(ctx context.Context, r *fasthttp.RequestCtx, p *principal, a auditEntry, err error) error {
	e := audit.Entry{Actor: p.actor(), Role: p.role, RemoteAddr: r.RemoteAddr().String(),
		Action: a.action, Target: a.target, Detail: a.detail, Outcome: outcome(err)}
	if err != nil {
		if e.Detail != "" {
			e.Detail += "\n"
		}
		e.Detail += "-- " + e.Outcome + ": " + err.Error()
	}
	// The row is written even when the request's own time ran out.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
	defer cancel()
	werr := s.audit.Write(wctx, e)
	if werr != nil {
		s.log.Error("audit log not written", "action", a.action, "actor", e.Actor, "outcome", e.Outcome, "err", werr)
	}
	return werr
}

// unaudited is the answer to a request whose audit row cannot be written:
// its work was undone or its result withheld.
func unaudited(werr error) error {
	msg := "not done: the audit log cannot be written, and no admin action or analyst statement is answered unaudited"
	if errors.Is(werr, store.ErrUnavailable) {
		return &apiError{Status: 503, Msg: msg + " (storage unavailable)"}
	}
	return &apiError{Status: 503, Msg: msg + ": " + werr.Error()}
}
