package uplink

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/netview/netview/internal/atomicfile"
)

// KeyFile is where a sensor keeps its key, in its state folder.
const KeyFile = "key.json"

// ErrNoKey wraps why the sensor holds no key yet: enrollment was refused or
// did not get through. Send returns it inside a *RetryError, so the spool
// keeps every heartbeat until a key comes.
var ErrNoKey = errors.New("no sensor key")

// Keyring holds a sensor's own key: it enrolls with an enrollment secret
// for one, keeps it in a file (mode 0600, replaced atomically), rotates it
// when it is old, and forgets it when ingest says it was revoked, so the
// next request enrolls again.
type Keyring struct {
	EnrollURL, RotateURL string
	Secret               string // enrollment secret
	SensorID             uuid.UUID
	Hostname             string
	File                 string
	// RotateEvery replaces the key once it is this old; 0: never.
	RotateEvery time.Duration
	Log         *slog.Logger

	mu  sync.Mutex
	cur *storedKey // nil: none (not read yet, or forgotten)
}

// storedKey is KeyFile's content.
type storedKey struct {
	SensorID uuid.UUID `json:"sensor_id"`
	KeyID    string    `json:"key_id"`
	Key      string    `json:"key"`
	Since    time.Time `json:"since"`
	// Next is a key proposed in an enrollment (Key is empty then) or a
	// rotation whose answer has not come: it is retried with the same key,
	// so a lost answer loses no key.
	Next string `json:"next,omitempty"`
}

// Key returns the key to send, enrolling first when there is none, and
// rotating when it is due (a failed rotation keeps the current key).
func (k *Keyring) Key(ctx context.Context, hc *http.Client) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cur == nil {
		k.cur = k.read()
	}
	if k.cur == nil || k.cur.Key == "" {
		if err := k.enroll(ctx, hc); err != nil {
			return "", err
		}
	}
	if k.cur.Next != "" || (k.RotateEvery > 0 && time.Since(k.cur.Since) > k.RotateEvery) {
		if err := k.rotate(ctx, hc); err != nil {
			k.log().Warn("sensor key rotation failed; going on with the current key", "key_id", k.cur.KeyID, "err", err)
		}
	}
	return k.cur.Key, nil
}

// Rotate replaces the key now.
func (k *Keyring) Rotate(ctx context.Context, hc *http.Client) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cur == nil {
		k.cur = k.read()
	}
	if k.cur == nil || k.cur.Key == "" {
		return fmt.Errorf("rotate: %w", ErrNoKey)
	}
	return k.rotate(ctx, hc)
}

// Forget drops key, if it is still the one held, so the next request
// enrolls again. why is logged.
func (k *Keyring) Forget(key, why string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cur == nil || k.cur.Key != key {
		return
	}
	k.log().Warn("sensor key refused by ingest; enrolling again", "key_id", k.cur.KeyID, "why", why)
	k.cur = nil
	if err := os.Remove(k.File); err != nil && !errors.Is(err, fs.ErrNotExist) {
		k.log().Warn("removing the sensor key file", "err", err)
	}
}

// refused decides what a 401 to a heartbeat sent with key means: revoked
// (or unknown long after it was issued, as when storage lost it), the key
// is forgotten and true says to enroll again at once.
func (k *Keyring) refused(key string, se *StatusError) bool {
	switch {
	case se.Status != http.StatusUnauthorized:
	case se.Reason == "revoked", se.Reason == "unauthorized" && k.Age() > time.Minute:
		k.Forget(key, se.Message)
		return true
	}
	return false
}

// Age is how long the held key has been in use; 0 with none.
func (k *Keyring) Age() time.Duration {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cur == nil {
		return 0
	}
	return time.Since(k.cur.Since)
}

func (k *Keyring) log() *slog.Logger {
	if k.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return k.Log
}

// read loads the key file; a key of another sensor id (the sensor's
// identity was reset) is not used.
func (k *Keyring) read() *storedKey {
	b, err := os.ReadFile(k.File)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			k.log().Warn("sensor key file unreadable; enrolling again", "file", k.File, "err", err)
		}
		return nil
	}
	var s storedKey
	if err := json.Unmarshal(b, &s); err != nil || (s.Key == "" && s.Next == "") {
		k.log().Warn("sensor key file damaged; enrolling again", "file", k.File, "err", err)
		return nil
	}
	if s.SensorID != k.SensorID {
		k.log().Warn("sensor key file is another sensor's; enrolling again", "file", k.File, "key_sensor_id", s.SensorID)
		return nil
	}
	return &s
}

// save writes s to the key file (mode 0600) so that a crash leaves the old
// key or the new one.
func (k *Keyring) save(s *storedKey) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(k.File, b, 0o600); err != nil {
		return fmt.Errorf("sensor key file: %w", err)
	}
	return nil
}

// enroll registers a key it made with the enrollment secret; callers hold
// k.mu. The key is on disk before it is proposed, and proposed again until
// an answer comes: ingest takes the same key twice as one enrollment, so a
// lost answer (or a load balancer sending the request to two nodes) costs
// nothing, where a key made by ingest and lost on the way would leave this
// sensor id enrolled with a key no one holds.
func (k *Keyring) enroll(ctx context.Context, hc *http.Client) error {
	if k.cur == nil || k.cur.Next == "" {
		next, err := newSensorKey()
		if err != nil {
			return fmt.Errorf("%w: %w", ErrNoKey, err)
		}
		s := &storedKey{SensorID: k.SensorID, Next: next}
		if err := k.save(s); err != nil {
			return fmt.Errorf("%w: enroll: %w", ErrNoKey, err)
		}
		k.cur = s
	}
	id, _ := keyID(k.cur.Next)
	sum := sha256.Sum256([]byte(k.cur.Next))
	body, _ := json.Marshal(map[string]string{"sensor_id": k.SensorID.String(), "hostname": k.Hostname,
		"key_id": id, "key_sha256": hex.EncodeToString(sum[:])})
	if err := k.post(ctx, hc, k.EnrollURL, k.Secret, body, nil); err != nil {
		var se *StatusError
		if errors.As(err, &se) {
			switch {
			case se.Status == http.StatusConflict && se.Reason == "key_id_taken":
				// Another credential has that id: propose a new key next time.
				k.cur = nil
				os.Remove(k.File)
			case se.Status == http.StatusConflict:
				// The id has a key this sensor does not hold (its key file
				// was lost), or a key another node does not see yet. An
				// operator revoking it (with reenroll) frees the id.
				k.log().Error("ingest says this sensor is already enrolled with a key it does not hold; retrying later (an operator may revoke its key with reenroll)",
					"sensor_id", k.SensorID, "err", se.Message)
			case se.Status == http.StatusForbidden:
				k.log().Error("this sensor may not enroll (its key was revoked without reenroll); heartbeats stay in the spool until an operator allows it",
					"sensor_id", k.SensorID, "err", se.Message)
			}
		}
		return fmt.Errorf("%w: enroll: %w", ErrNoKey, err)
	}
	s := &storedKey{SensorID: k.SensorID, KeyID: id, Key: k.cur.Next, Since: time.Now().UTC()}
	if err := k.save(s); err != nil {
		// The pending key on disk is this same key: a restart enrolls it
		// again, which ingest takes as the same enrollment.
		k.log().Error("sensor key not saved as enrolled; a restart will enroll it again", "err", err)
	}
	k.cur = s
	k.log().Info("sensor enrolled", "sensor_id", k.SensorID, "key_id", id)
	return nil
}

// rotate proposes a key it made and, once ingest took it, uses it; callers
// hold k.mu and k.cur is set.
func (k *Keyring) rotate(ctx context.Context, hc *http.Client) error {
	if k.cur.Next == "" {
		next, err := newSensorKey()
		if err != nil {
			return err
		}
		s := *k.cur
		s.Next = next
		if err := k.save(&s); err != nil {
			return err // not proposed: a key not on disk could be lost
		}
		k.cur = &s
	}
	id, _ := keyID(k.cur.Next)
	sum := sha256.Sum256([]byte(k.cur.Next))
	body, _ := json.Marshal(map[string]string{"key_id": id, "key_sha256": hex.EncodeToString(sum[:])})
	err := k.post(ctx, hc, k.RotateURL, k.cur.Key, body, nil)
	var se *StatusError
	switch {
	case err == nil:
		s := &storedKey{SensorID: k.SensorID, KeyID: id, Key: k.cur.Next, Since: time.Now().UTC()}
		if err := k.save(s); err != nil {
			k.log().Error("rotated sensor key not saved; it is used but a restart will need to enroll again", "err", err)
		}
		k.log().Info("sensor key rotated", "old_key_id", k.cur.KeyID, "key_id", id)
		k.cur = s
		return nil
	case errors.As(err, &se) && se.Status == http.StatusConflict:
		// The proposed id is taken: propose another next time.
		s := *k.cur
		s.Next = ""
		k.cur = &s
		return k.save(&s)
	case errors.As(err, &se) && se.Status == http.StatusUnauthorized:
		// The current key was revoked by someone else: enroll again.
		k.cur = nil
		os.Remove(k.File)
		return err
	}
	return err
}

// post sends a JSON body with a bearer secret and decodes a 200 answer into
// out; any other answer is a *StatusError.
func (k *Keyring) post(ctx context.Context, hc *http.Client, url, secret string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return statusError(resp)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// newSensorKey makes a sensor key in the credentials' format,
// nvs_<16 hex id>_<32 random bytes, base64url> (internal/creds, whose
// package this one does not import: it would bring the storage layer into
// the sensor).
func newSensorKey() (string, error) {
	var raw [8 + 32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	return "nvs_" + hex.EncodeToString(raw[:8]) + "_" + base64.RawURLEncoding.EncodeToString(raw[8:]), nil
}

// keyID is the public id part of a key.
func keyID(key string) (string, bool) {
	if len(key) < 4+16+1 || key[:4] != "nvs_" || key[20] != '_' {
		return "", false
	}
	return key[4:20], true
}
