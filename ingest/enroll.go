package ingest

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/valyala/fasthttp"

	"github.com/netview/netview/internal/creds"
)

// EnrollRequest is the body of POST /v1/enroll. A sensor proposes a key it
// made (KeyID and KeySHA256, as in RotateRequest), so that retrying a lost
// answer is safe; without one, ingest makes the key and answers it once.
type EnrollRequest struct {
	SensorID  string `json:"sensor_id"`
	Hostname  string `json:"hostname"`
	KeyID     string `json:"key_id,omitempty"`
	KeySHA256 string `json:"key_sha256,omitempty"`
}

// EnrollAnswer is the answer to POST /v1/enroll: the key's id, and the key
// itself when ingest made it (shown this once).
type EnrollAnswer struct {
	SensorID string `json:"sensor_id"`
	KeyID    string `json:"key_id"`
	Key      string `json:"key,omitempty"`
}

// RotateRequest is the body of POST /v1/rotate: a key the sensor made
// (creds.New), of which only the id and the SHA-256 travel.
type RotateRequest struct {
	KeyID     string `json:"key_id"`
	KeySHA256 string `json:"key_sha256"`
}

// RotateAnswer is the answer to POST /v1/rotate.
type RotateAnswer struct {
	SensorID string `json:"sensor_id"`
	KeyID    string `json:"key_id"`
}

// enroll issues a sensor key to a holder of an enrollment secret.
func (s *Server) enroll(ctx *fasthttp.RequestCtx) {
	c, ok := s.admit(ctx, routeEnroll)
	if !ok {
		return
	}
	var req EnrollRequest
	if !s.readJSON(ctx, &req) {
		return
	}
	id, err := parseSensorID(req.SensorID)
	if err == nil {
		err = checkHostname(req.Hostname)
	}
	if err != nil {
		s.fail(ctx, fasthttp.StatusBadRequest, ReasonInvalid, err.Error())
		return
	}
	by := "enroll:static"
	if c.who == enroller {
		by = "enroll:" + c.cred.ID
	}
	cctx, cancel := credsCtx()
	defer cancel()
	var key creds.Credential
	var secret string
	if req.KeyID != "" || req.KeySHA256 != "" {
		kid, hash, perr := parseProposedKey(req.KeyID, req.KeySHA256)
		if perr != nil {
			s.fail(ctx, fasthttp.StatusBadRequest, ReasonInvalid, perr.Error())
			return
		}
		key, err = s.creds.EnrollKey(cctx, id, req.Hostname, by, kid, hash)
	} else {
		key, secret, err = s.creds.Enroll(cctx, id, req.Hostname, by)
	}
	switch {
	case errors.Is(err, creds.ErrTaken):
		s.fail(ctx, fasthttp.StatusConflict, ReasonTaken, "key_id names another credential: make a new key and try again")
		return
	case errors.Is(err, creds.ErrEnrolled):
		s.fail(ctx, fasthttp.StatusConflict, ReasonEnrolled, fmt.Sprintf("%v (sensor %s): its key must be revoked with reenroll before it enrolls again", err, id))
		return
	case errors.Is(err, creds.ErrBlocked):
		s.fail(ctx, fasthttp.StatusForbidden, ReasonBlocked, fmt.Sprintf("%v (sensor %s)", err, id))
		return
	case err != nil:
		s.unavailable(ctx, "enroll", err)
		return
	}
	s.log.Info("sensor enrolled", "sensor_id", id, "key_id", key.ID, "hostname", req.Hostname, "by", by)
	s.answer(ctx, EnrollAnswer{SensorID: id.String(), KeyID: key.ID, Key: secret})
}

// rotate replaces the caller's sensor key with the one it proposes.
func (s *Server) rotate(ctx *fasthttp.RequestCtx) {
	c, ok := s.admit(ctx, routeRotate)
	if !ok {
		return
	}
	var req RotateRequest
	if !s.readJSON(ctx, &req) {
		return
	}
	kid, hash, err := parseProposedKey(req.KeyID, req.KeySHA256)
	if err != nil {
		s.fail(ctx, fasthttp.StatusBadRequest, ReasonInvalid, err.Error())
		return
	}
	if c.cred.Blocked() {
		s.fail(ctx, fasthttp.StatusForbidden, ReasonBlocked, blockedKey)
		return
	}
	if c.err != nil && c.cred.RevokedBy != "rotate:"+req.KeyID {
		// Revoked, and not by this very rotation.
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="netview-ingest"`)
		s.fail(ctx, fasthttp.StatusUnauthorized, ReasonRevoked, fmt.Sprintf("sensor key %s revoked: enroll again (POST /v1/enroll)", c.cred.ID))
		return
	}
	cctx, cancel := credsCtx()
	defer cancel()
	key, err := s.creds.Rotate(cctx, c.cred, kid, hash)
	switch {
	case errors.Is(err, creds.ErrTaken):
		s.fail(ctx, fasthttp.StatusConflict, ReasonTaken, "key_id names another credential: make a new key and try again")
		return
	case errors.Is(err, creds.ErrBlocked):
		s.log.Warn("rotation of a blocked sensor key refused", "sensor_id", c.cred.SensorID, "key_id", c.cred.ID, "err", err)
		s.fail(ctx, fasthttp.StatusForbidden, ReasonBlocked, blockedKey)
		return
	case err != nil:
		s.unavailable(ctx, "rotate", err)
		return
	}
	s.log.Info("sensor key rotated", "sensor_id", key.SensorID, "old_key_id", c.cred.ID, "key_id", key.ID)
	s.answer(ctx, RotateAnswer{SensorID: key.SensorID.String(), KeyID: key.ID})
}

// blockedKey answers a rotation of a key that is blocked, or whose sensor is.
const blockedKey = "this sensor key is blocked; ask an admin"

// parseProposedKey checks the id and SHA-256 of a key a sensor made. The
// id must be in its one spelling (creds.IsID): a key stored under another
// would escape a revocation by the canonical id.
func parseProposedKey(id, sum string) (string, [32]byte, error) {
	var hash [32]byte
	if !creds.IsID(id) {
		return "", hash, fmt.Errorf("key_id: %q is not 16 lower-case hex digits", id)
	}
	if n, err := hex.Decode(hash[:], []byte(sum)); err != nil || n != 32 || len(sum) != 64 {
		return "", hash, errors.New("key_sha256: want 64 hex digits")
	}
	return id, hash, nil
}

// readJSON reads a small JSON body into v strictly: one object, no unknown
// members, nothing after it.
func (s *Server) readJSON(ctx *fasthttp.RequestCtx, v any) bool {
	body, err := readLimited(ctx.RequestBodyStream(), make([]byte, 0, 512), smallBody)
	if errors.Is(err, errTooLarge) {
		ctx.SetConnectionClose()
		s.fail(ctx, fasthttp.StatusRequestEntityTooLarge, ReasonTooLarge, fmt.Sprintf("body over the limit of %d bytes", smallBody))
		return false
	}
	if err != nil {
		s.fail(ctx, fasthttp.StatusBadRequest, ReasonBody, "reading body: "+err.Error())
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		s.fail(ctx, fasthttp.StatusBadRequest, ReasonInvalid, "body: "+err.Error())
		return false
	}
	if dec.More() {
		s.fail(ctx, fasthttp.StatusBadRequest, ReasonInvalid, "body: more than one JSON value")
		return false
	}
	return true
}

// parseSensorID accepts only the canonical form (36 characters, lower
// case), as heartbeats carry it: a sensor has one spelling in storage, logs
// and the admin API.
func parseSensorID(v string) (uuid.UUID, error) {
	id, err := uuid.Parse(v)
	switch {
	case v == "":
		return id, errors.New("sensor_id: required")
	case err != nil || v != id.String():
		return id, fmt.Errorf("sensor_id: %q is not a UUID in canonical form (8-4-4-4-12 lower-case hex digits)", v)
	case id == uuid.Nil:
		return id, errors.New("sensor_id: the nil UUID names no sensor")
	}
	return id, nil
}

func checkHostname(h string) error {
	switch {
	case h == "":
		return errors.New("hostname: required")
	case len(h) > 255:
		return errors.New("hostname: longer than 255 bytes")
	case !utf8.ValidString(h):
		return errors.New("hostname: not UTF-8")
	}
	for _, r := range h {
		if unicode.IsControl(r) {
			return errors.New("hostname: control character")
		}
	}
	return nil
}

func (s *Server) answer(ctx *fasthttp.RequestCtx, v any) {
	b, _ := json.Marshal(v)
	ctx.SetContentType("application/json")
	ctx.Write(b)
}

// unavailable answers a storage failure. The engine's error goes to the log
// only: it may name tables, hosts or queries, none of the client's business.
func (s *Server) unavailable(ctx *fasthttp.RequestCtx, what string, err error) {
	s.log.Warn(what+" failed", "err", err)
	ctx.Response.Header.Set("Retry-After", "5")
	s.fail(ctx, fasthttp.StatusServiceUnavailable, ReasonUnavailable, what+": storage did not answer; retry in a few seconds")
}

// credsCtx bounds a write of the credentials table made for a request.
func credsCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}
