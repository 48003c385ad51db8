package query

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ErrCursor reports a cursor that was not made by this service for this
// view and filter (tampered, truncated, or from another query).
var ErrCursor = errors.New("invalid cursor")

// cursors seal keyset positions: the sort key of the last row returned,
// bound to the view and filter it belongs to, authenticated with HMAC so a
// client can neither forge a position nor move it to another query. Any
// replica with the same secret reads any other's cursors.
type cursors struct{ secret []byte }

type cursorBody struct {
	View   string   `json:"v"`
	Filter string   `json:"f"`
	Key    []string `json:"k"`
}

func (c cursors) mac(payload []byte) []byte {
	m := hmac.New(sha256.New, c.secret)
	m.Write(payload)
	return m.Sum(nil)[:16]
}

// seal returns the opaque cursor for key in view under filter.
func (c cursors) seal(view, filter string, key []string) string {
	payload, _ := json.Marshal(cursorBody{View: view, Filter: filter, Key: key})
	enc := base64.RawURLEncoding
	return enc.EncodeToString(payload) + "." + enc.EncodeToString(c.mac(payload))
}

// open checks a cursor and returns its key, which has n parts.
func (c cursors) open(token, view, filter string, n int) ([]string, error) {
	body, err := c.read(token, view, n)
	if err != nil || body.Filter != filter {
		return nil, ErrCursor
	}
	return body.Key, nil
}

// read checks that a cursor is authentic and of view with a key of n
// parts, and returns it; the caller checks its filter.
func (c cursors) read(token, view string, n int) (cursorBody, error) {
	// The token must be exactly what seal makes: base64 decoding is lenient
	// (line breaks, unused low bits), so comparing decoded bytes would let
	// other spellings of one cursor open.
	p, _, _ := strings.Cut(token, ".")
	enc := base64.RawURLEncoding
	payload, err := enc.DecodeString(p)
	if err != nil || !hmac.Equal([]byte(token), []byte(enc.EncodeToString(payload)+"."+enc.EncodeToString(c.mac(payload)))) {
		return cursorBody{}, ErrCursor
	}
	var body cursorBody
	if err := json.Unmarshal(payload, &body); err != nil || body.View != view || len(body.Key) != n {
		return cursorBody{}, ErrCursor
	}
	return body, nil
}

// cursorWindow is the window as the filter of a windowed cursor (the
// events', the graph's) ends in.
func cursorWindow(since, until int64) string { return fmt.Sprintf(" since=%d until=%d", since, until) }

// openWindow opens a cursor of view sealed under base and a window (as
// cursorWindow writes it) whose key has n parts, and returns the window,
// in Unix milliseconds, and the key. The window is the first page's, so a walk with
// the default until (now) reads one window; a bound sent again (given,
// 0 when not) must be the cursor's.
func (c cursors) openWindow(token, view string, n int, base string, given [2]int64) (since, until int64, key []string, ok bool) {
	body, err := c.read(token, view, n)
	if err != nil {
		return 0, 0, nil, false
	}
	rest, found := strings.CutPrefix(body.Filter, base)
	if _, err := fmt.Sscanf(rest, " since=%d until=%d", &since, &until); !found || err != nil || rest != cursorWindow(since, until) {
		return 0, 0, nil, false
	}
	for i, w := range [2]int64{since, until} {
		if given[i] != 0 && given[i] != w {
			return 0, 0, nil, false
		}
	}
	return since, until, body.Key, true
}
