package query

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/valyala/fasthttp"

	"github.com/netview/netview/internal/audit"
	"github.com/netview/netview/internal/creds"
)

// The admin API manages the credentials issued at run time and reads the
// audit log. Every request to it, done or refused, writes one audit row;
// when that row cannot be written the request fails with 503 and its work
// is undone (a new credential is revoked before its secret is shown, a
// revocation is reverted) or its result withheld (a listing).

// adminOp is one admin operation. run does the work and returns the answer
// and, for a change, how to undo it should the audit row not be written.
type adminOp struct {
	method, action string
	run            func(s *Server, ctx context.Context, r *fasthttp.RequestCtx, p *principal, a *auditEntry) ([]byte, func(context.Context) error, error)
}

var adminOps = map[string]adminOp{
	"/api/v1/admin/tokens":                    {"GET", "token.list", (*Server).listTokens},
	"/api/v1/admin/tokens/create":             {"POST", "token.create", (*Server).createToken},
	"/api/v1/admin/tokens/revoke":             {"POST", "token.revoke", (*Server).revokeToken},
	"/api/v1/admin/enrollment-secrets":        {"GET", "enroll.list", (*Server).listEnrollSecrets},
	"/api/v1/admin/enrollment-secrets/create": {"POST", "enroll.create", (*Server).createEnrollSecret},
	"/api/v1/admin/enrollment-secrets/revoke": {"POST", "enroll.revoke", (*Server).revokeEnrollSecret},
	"/api/v1/admin/sensor-keys":               {"GET", "sensor_key.list", (*Server).listSensorKeys},
	"/api/v1/admin/sensor-keys/revoke":        {"POST", "sensor_key.revoke", (*Server).revokeSensorKey},
	"/api/v1/admin/sensors/block":             {"POST", "sensor.block", (*Server).blockSensor},
	"/api/v1/admin/audit":                     {"GET", "audit.list", (*Server).listAudit},
}

// admin runs op and writes its audit row, failing closed.
func (s *Server) admin(op adminOp) handler {
	return func(ctx context.Context, r *fasthttp.RequestCtx, p *principal) ([]byte, error) {
		a := auditEntry{action: op.action}
		body, undo, err := op.run(s, ctx, r, p, &a)
		werr := s.record(ctx, r, p, a, err)
		if werr == nil || err != nil {
			return body, err // a refusal or failure changed nothing: it stands
		}
		if undo != nil {
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
			defer cancel()
			if uerr := undo(uctx); uerr != nil {
				s.log.Error("admin action neither audited nor undone", "action", op.action, "target", a.target, "err", uerr)
			}
		}
		return nil, unaudited(werr)
	}
}

// maxAdminBody bounds an admin request's JSON body.
const maxAdminBody = 16 << 10

// decodeBody decodes the request's JSON body into v strictly: one object, no
// member v does not define.
func decodeBody(r *fasthttp.RequestCtx, v any) error {
	b := r.PostBody()
	switch {
	case len(bytes.TrimSpace(b)) == 0:
		return &apiError{Status: 400, Msg: "body: this operation takes a JSON object"}
	case len(b) > maxAdminBody:
		return &apiError{Status: 400, Msg: fmt.Sprintf("body: %d bytes, more than the %d an admin request may have", len(b), maxAdminBody)}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &apiError{Status: 400, Msg: "body: not the JSON object this operation takes: " + err.Error()}
	}
	if dec.More() {
		return &apiError{Status: 400, Msg: "body: more than one JSON value"}
	}
	return nil
}

// noParams refuses any query parameter: the admin changes take a body.
func noParams(r *fasthttp.RequestCtx) error { return query(r).err }

// maxName bounds a credential's name, a label for people.
const maxName = 200

func checkName(name string) error { return checkLabel("name", name) }

// checkLabel checks a label for people (a name, a reason) in member field.
func checkLabel(field, v string) error {
	switch {
	case len(v) > maxName:
		return &apiError{Status: 400, Msg: fmt.Sprintf("%s: %d bytes, at most %d", field, len(v), maxName)}
	case !utf8.ValidString(v) || strings.ContainsFunc(v, unicode.IsControl):
		return &apiError{Status: 400, Msg: field + ": must be UTF-8 text without control characters"}
	}
	return nil
}

// lookup finds the credential id of kind for a revocation.
func (s *Server) lookup(ctx context.Context, id, kind string) (creds.Credential, error) {
	if strings.HasPrefix(id, "static:") {
		return creds.Credential{}, &apiError{Status: 400, Msg: "id: " + id + " is a static token, set by a flag, file or environment variable, not stored in the credentials table: " +
			"it cannot be revoked here; remove it from the query service's configuration and restart"}
	}
	// Ids have one spelling, the one every listing shows (rows old versions
	// stored in upper case are read folded to it): another is refused, not
	// folded, so a typo never names a second credential.
	if !creds.IsID(id) {
		msg := fmt.Sprintf("id: %q is not a credential id (16 lower-case hex digits)", id)
		if low := strings.ToLower(id); creds.IsID(low) {
			msg += fmt.Sprintf(": write it in lower case, %q", low)
		}
		return creds.Credential{}, &apiError{Status: 400, Msg: msg}
	}
	c, err := s.creds.Get(ctx, id)
	if errors.Is(err, creds.ErrUnknown) || (err == nil && c.Kind != kind) {
		return c, &apiError{Status: 404, Msg: "no " + kindName[kind] + " has the id " + id}
	}
	return c, err
}

var kindName = map[string]string{creds.Token: "API token", creds.Enroll: "enrollment secret", creds.Sensor: "sensor key"}

// revoke revokes c and returns the answer and how to undo it.
func (s *Server) revoke(ctx context.Context, c creds.Credential, p *principal, reenroll bool) ([]byte, func(context.Context) error, error) {
	prev := c
	c, err := s.creds.Revoke(ctx, c.ID, p.actor(), reenroll)
	if errors.Is(err, creds.ErrBlocked) {
		return nil, nil, &apiError{Status: 409, Msg: fmt.Sprintf("id: sensor key %s is blocked, which is final: it cannot be revoked with reenroll", c.ID)}
	}
	if err != nil {
		return nil, nil, err
	}
	undo := func(ctx context.Context) error { return s.creds.Put(ctx, prev) }
	if c.Blocked() {
		// A block is final and is not undone when its audit row cannot be
		// written: shutting a sensor out is the safe side to fail on, and
		// the sensor's other keys were blocked with it. The admin gets the
		// 503 and the block stands (the log says so).
		undo = nil
	}
	b, err := json.Marshal(credView(c))
	return b, undo, err
}

// credentialOut is a credential as the admin API shows it: never its secret
// or hash.
type credentialOut struct {
	ID        string     `json:"id"`
	Kind      string     `json:"kind"`
	Role      string     `json:"role,omitempty"`
	SensorID  string     `json:"sensor_id,omitempty"`
	Name      string     `json:"name"`
	CreatedAt time.Time  `json:"created_at"`
	CreatedBy string     `json:"created_by"`
	ExpiresAt *time.Time `json:"expires_at"` // null: never
	RevokedAt *time.Time `json:"revoked_at"` // null: not revoked
	RevokedBy string     `json:"revoked_by,omitempty"`
	Reenroll  *bool      `json:"reenroll,omitempty"` // revoked sensor keys: may the sensor enroll again
	State     string     `json:"state"`              // active, revoked or expired
	Secret    string     `json:"secret,omitempty"`   // only in the answer that creates it
}

func credView(c creds.Credential) credentialOut {
	o := credentialOut{ID: c.ID, Kind: c.Kind, Role: c.Role, Name: c.Name, CreatedAt: c.CreatedAt, CreatedBy: c.CreatedBy, RevokedBy: c.RevokedBy, State: "active"}
	if c.Kind == creds.Sensor {
		o.SensorID = c.SensorID.String()
	}
	if !c.ExpiresAt.IsZero() {
		o.ExpiresAt = &c.ExpiresAt
		if !time.Now().Before(c.ExpiresAt) {
			o.State = "expired"
		}
	}
	if !c.RevokedAt.IsZero() {
		o.RevokedAt, o.State = &c.RevokedAt, "revoked"
		if c.Kind == creds.Sensor {
			o.Reenroll = &c.Reenroll
		}
	}
	return o
}

// listOf answers {"<name>": [credentials of kind, oldest first]}.
func (s *Server) listOf(ctx context.Context, r *fasthttp.RequestCtx, name, kind string) ([]byte, func(context.Context) error, error) {
	if err := noParams(r); err != nil {
		return nil, nil, err
	}
	all, err := s.creds.List(ctx, kind)
	if err != nil {
		return nil, nil, err
	}
	slices.SortFunc(all, func(a, b creds.Credential) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	out := make([]credentialOut, len(all))
	for i, c := range all {
		out[i] = credView(c)
	}
	b, err := json.Marshal(map[string]any{name: out})
	return b, nil, err
}

func (s *Server) listTokens(ctx context.Context, r *fasthttp.RequestCtx, p *principal, a *auditEntry) ([]byte, func(context.Context) error, error) {
	return s.listOf(ctx, r, "tokens", creds.Token)
}

func (s *Server) listEnrollSecrets(ctx context.Context, r *fasthttp.RequestCtx, p *principal, a *auditEntry) ([]byte, func(context.Context) error, error) {
	return s.listOf(ctx, r, "enrollment_secrets", creds.Enroll)
}

// create issues a credential made ready by fill, and undoes it by revoking:
// its secret is then never shown, so it never worked.
func (s *Server) create(ctx context.Context, p *principal, a *auditEntry, kind string, fill func(c *creds.Credential)) ([]byte, func(context.Context) error, error) {
	c, secret, err := creds.New(kind)
	if err != nil {
		return nil, nil, err
	}
	c.CreatedBy = p.actor()
	fill(&c)
	a.target = c.ID
	if err := s.creds.Put(ctx, c); err != nil {
		return nil, nil, err
	}
	undo := func(ctx context.Context) error {
		_, err := s.creds.Revoke(ctx, c.ID, "netview:audit-unavailable", false)
		return err
	}
	o := credView(c)
	o.Secret = secret
	b, err := json.Marshal(o)
	return b, undo, err
}

func (s *Server) createToken(ctx context.Context, r *fasthttp.RequestCtx, p *principal, a *auditEntry) ([]byte, func(context.Context) error, error) {
	var in struct {
		Role string `json:"role"`
		Name string `json:"name"`
	}
	if err := noParams(r); err != nil {
		return nil, nil, err
	}
	if err := decodeBody(r, &in); err != nil {
		return nil, nil, err
	}
	a.detail = fmt.Sprintf("role=%s name=%q", in.Role, in.Name)
	if !slices.Contains(creds.Roles, in.Role) {
		return nil, nil, &apiError{Status: 400, Msg: fmt.Sprintf("role: %q is not a role: use %s", in.Role, strings.Join(creds.Roles, ", "))}
	}
	if err := checkName(in.Name); err != nil {
		return nil, nil, err
	}
	return s.create(ctx, p, a, creds.Token, func(c *creds.Credential) { c.Role, c.Name = in.Role, in.Name })
}

// maxEnrollLife bounds an enrollment secret's life: a secret that never
// expires may be asked for, by leaving expiry out.
const maxEnrollLife = 366 * 24 * time.Hour

func (s *Server) createEnrollSecret(ctx context.Context, r *fasthttp.RequestCtx, p *principal, a *auditEntry) ([]byte, func(context.Context) error, error) {
	var in struct {
		Name      string `json:"name"`
		ExpiresIn string `json:"expires_in"` // Go duration: 24h, 90m
		ExpiresAt string `json:"expires_at"` // RFC 3339
	}
	if err := noParams(r); err != nil {
		return nil, nil, err
	}
	if err := decodeBody(r, &in); err != nil {
		return nil, nil, err
	}
	a.detail = fmt.Sprintf("name=%q expires_in=%q expires_at=%q", in.Name, in.ExpiresIn, in.ExpiresAt)
	if err := checkName(in.Name); err != nil {
		return nil, nil, err
	}
	var expires time.Time
	now := time.Now()
	switch {
	case in.ExpiresIn != "" && in.ExpiresAt != "":
		return nil, nil, &apiError{Status: 400, Msg: "expires_in and expires_at exclude each other"}
	case in.ExpiresIn != "":
		d, err := time.ParseDuration(in.ExpiresIn)
		if err != nil || d <= 0 || d > maxEnrollLife {
			return nil, nil, &apiError{Status: 400, Msg: fmt.Sprintf("expires_in: %q must be a duration such as 24h, from 1s to %s", in.ExpiresIn, maxEnrollLife)}
		}
		expires = now.Add(d)
	case in.ExpiresAt != "":
		t, err := time.Parse(time.RFC3339Nano, in.ExpiresAt)
		if err != nil || !t.After(now) || t.Sub(now) > maxEnrollLife {
			return nil, nil, &apiError{Status: 400, Msg: fmt.Sprintf("expires_at: %q must be an RFC 3339 time in the next %s", in.ExpiresAt, maxEnrollLife)}
		}
		expires = t
	}
	return s.create(ctx, p, a, creds.Enroll, func(c *creds.Credential) {
		c.Name = in.Name
		if !expires.IsZero() {
			c.ExpiresAt = expires.UTC().Truncate(time.Millisecond)
		}
	})
}

// revokeIn is the body of a revocation.
type revokeIn struct {
	ID       string `json:"id"`
	Reenroll *bool  `json:"reenroll"` // sensor keys only, and there required
}

func (s *Server) revokeOf(ctx context.Context, r *fasthttp.RequestCtx, p *principal, a *auditEntry, kind string) ([]byte, func(context.Context) error, error) {
	var in revokeIn
	if err := noParams(r); err != nil {
		return nil, nil, err
	}
	if err := decodeBody(r, &in); err != nil {
		return nil, nil, err
	}
	a.target = in.ID
	switch {
	case kind == creds.Sensor && in.Reenroll == nil:
		return nil, nil, &apiError{Status: 400, Msg: "reenroll: required: true lets the sensor enroll again (a key rotation), false shuts it out"}
	case kind != creds.Sensor && in.Reenroll != nil:
		return nil, nil, &apiError{Status: 400, Msg: "reenroll: only sensor keys take it"}
	}
	c, err := s.lookup(ctx, in.ID, kind)
	if err != nil {
		return nil, nil, err
	}
	reenroll := in.Reenroll != nil && *in.Reenroll
	if kind == creds.Sensor {
		a.target = c.ID + " sensor " + c.SensorID.String()
		a.detail = fmt.Sprintf("reenroll=%v", reenroll)
	}
	return s.revoke(ctx, c, p, reenroll)
}

func (s *Server) revokeToken(ctx context.Context, r *fasthttp.RequestCtx, p *principal, a *auditEntry) ([]byte, func(context.Context) error, error) {
	return s.revokeOf(ctx, r, p, a, creds.Token)
}

func (s *Server) revokeEnrollSecret(ctx context.Context, r *fasthttp.RequestCtx, p *principal, a *auditEntry) ([]byte, func(context.Context) error, error) {
	return s.revokeOf(ctx, r, p, a, creds.Enroll)
}

func (s *Server) revokeSensorKey(ctx context.Context, r *fasthttp.RequestCtx, p *principal, a *auditEntry) ([]byte, func(context.Context) error, error) {
	return s.revokeOf(ctx, r, p, a, creds.Sensor)
}

// blockSensor blocks a sensor id for good: it may not enroll or rotate
// again, whatever secret it holds, and every key it has is revoked without
// leave to re-enroll (so its heartbeats are refused once each node's copy of
// the credentials is refreshed).
func (s *Server) blockSensor(ctx context.Context, r *fasthttp.RequestCtx, p *principal, a *auditEntry) ([]byte, func(context.Context) error, error) {
	var in struct {
		SensorID string `json:"sensor_id"`
		Reason   string `json:"reason"`
	}
	if err := noParams(r); err != nil {
		return nil, nil, err
	}
	if err := decodeBody(r, &in); err != nil {
		return nil, nil, err
	}
	a.target, a.detail = in.SensorID, fmt.Sprintf("reason=%q", in.Reason)
	id, err := adminSensorID(in.SensorID)
	if err != nil {
		return nil, nil, err
	}
	if err := checkLabel("reason", in.Reason); err != nil {
		return nil, nil, err
	}
	a.target = id.String()
	// Stored before the audit row is written and, unlike other changes,
	// not undone when that fails (the handler then answers 503): a block
	// is final, and leaving a sensor shut out is the safe side to fail on.
	b, keys, err := s.creds.BlockSensor(ctx, id, p.actor(), in.Reason)
	if err != nil {
		return nil, nil, err
	}
	out := struct {
		SensorID  string          `json:"sensor_id"`
		State     string          `json:"state"`
		BlockedAt time.Time       `json:"blocked_at"`
		BlockedBy string          `json:"blocked_by"`
		Reason    string          `json:"reason"`
		Keys      []credentialOut `json:"keys"`
	}{id.String(), "blocked", b.BlockedAt, b.BlockedBy, b.Reason, []credentialOut{}}
	for _, k := range keys {
		out.Keys = append(out.Keys, credView(k))
	}
	body, err := json.Marshal(out)
	return body, nil, err
}

// adminSensorID reads a sensor id an admin typed: any form uuid.Parse
// takes (upper case, braces, urn:uuid:, no hyphens), made canonical.
func adminSensorID(v string) (uuid.UUID, error) {
	id, err := uuid.Parse(v)
	switch {
	case v == "":
		return id, &apiError{Status: 400, Msg: "sensor_id: required"}
	case err != nil:
		return id, &apiError{Status: 400, Msg: fmt.Sprintf("sensor_id: %q is not a UUID", v)}
	case id == uuid.Nil:
		return id, &apiError{Status: 400, Msg: "sensor_id: the nil UUID names no sensor"}
	}
	return id, nil
}

// sensorOut is a sensor and its keys: its state is enrolled (an active
// key), may_reenroll (its last key was revoked for a rotation) or blocked.
type sensorOut struct {
	SensorID string          `json:"sensor_id"`
	State    string          `json:"state"`
	Keys     []credentialOut `json:"keys"`
}

func (s *Server) listSensorKeys(ctx context.Context, r *fasthttp.RequestCtx, p *principal, a *auditEntry) ([]byte, func(context.Context) error, error) {
	q := query(r, "sensor_id")
	only := q.sensor()
	if q.err != nil {
		return nil, nil, q.err
	}
	a.target = only
	all, err := s.creds.List(ctx, creds.Sensor)
	if err != nil {
		return nil, nil, err
	}
	bySensor := map[uuid.UUID]bool{}
	for _, c := range all {
		if only == "" || c.SensorID.String() == only {
			bySensor[c.SensorID] = true
		}
	}
	out := []sensorOut{}
	for id := range bySensor {
		keys, err := s.creds.SensorKeys(ctx, id)
		if err != nil {
			return nil, nil, err
		}
		so := sensorOut{SensorID: id.String(), State: "blocked"}
		for _, k := range keys {
			so.Keys = append(so.Keys, credView(k))
		}
		last := keys[len(keys)-1] // SensorKeys puts active keys last
		switch {
		case last.Active(time.Now()):
			so.State = "enrolled"
		case last.Reenroll:
			so.State = "may_reenroll"
		}
		out = append(out, so)
	}
	slices.SortFunc(out, func(a, b sensorOut) int { return cmp.Compare(a.SensorID, b.SensorID) })
	b, err := json.Marshal(map[string]any{"sensors": out})
	return b, nil, err
}

// entryOut is an audit row as the admin API shows it.
type entryOut struct {
	Time       time.Time `json:"time"`
	EventID    string    `json:"event_id"`
	Actor      string    `json:"actor"`
	Role       string    `json:"role"`
	RemoteAddr string    `json:"remote_addr"`
	Action     string    `json:"action"`
	Target     string    `json:"target"`
	Detail     string    `json:"detail"`
	Outcome    string    `json:"outcome"`
}

func (s *Server) listAudit(ctx context.Context, r *fasthttp.RequestCtx, p *principal, a *auditEntry) ([]byte, func(context.Context) error, error) {
	q := query(r, "limit", "cursor", "actor", "action", "since", "until")
	f := audit.Filter{Limit: q.int("limit", 100, 1, 1000), Actor: q.str("actor"), Action: q.str("action"),
		Since: q.time("since", time.Time{}), Until: q.time("until", time.Time{})}
	if q.err != nil {
		return nil, nil, q.err
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return nil, nil, badParam("since", "must be before until")
	}
	// The cursor is bound to the filter it continues.
	filter := strings.Join([]string{f.Actor, f.Action, q.str("since"), q.str("until")}, "\x00")
	if c := q.str("cursor"); c != "" {
		key, err := s.cursors.open(c, "audit", filter, 2)
		if err != nil {
			return nil, nil, badParam("cursor", "not a cursor of this listing and filter; start again without one")
		}
		t, terr := time.Parse(time.RFC3339Nano, key[0])
		id, ierr := uuid.Parse(key[1])
		if terr != nil || ierr != nil {
			return nil, nil, badParam("cursor", "not a cursor of this listing")
		}
		f.BeforeTime, f.BeforeID = t, id
	}
	a.detail = r.QueryArgs().String()
	entries, err := s.audit.List(ctx, f)
	if err != nil {
		return nil, nil, err
	}
	out := make([]entryOut, len(entries))
	for i, e := range entries {
		out[i] = entryOut{Time: e.Time, EventID: e.EventID.String(), Actor: e.Actor, Role: e.Role, RemoteAddr: e.RemoteAddr,
			Action: e.Action, Target: e.Target, Detail: e.Detail, Outcome: e.Outcome}
	}
	var next *string
	if len(entries) == f.Limit {
		last := entries[len(entries)-1]
		c := s.cursors.seal("audit", filter, []string{last.Time.Format(time.RFC3339Nano), last.EventID.String()})
		next = &c
	}
	b, err := json.Marshal(struct {
		Entries    []entryOut `json:"entries"`
		NextCursor *string    `json:"next_cursor"`
		Limit      int        `json:"limit"`
	}{out, next, f.Limit})
	return b, nil, err
}
