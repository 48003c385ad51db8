// Package creds issues, checks and revokes the secrets Netview hands out at
// run time: API tokens with a role, sensor enrollment secrets and
// per-sensor keys. They live in the credentials table, so every stateless
// ingest and query node sees the same ones; each node keeps a copy in
// memory and refreshes it, so a check costs no round trip to storage.
//
// A secret reads nv<k>_<id>_<random>: k names its kind, id is public (it
// finds the row and appears in logs and the audit log), and the random
// part is 32 bytes from crypto/rand. Only its SHA-256 is stored. A slow
// password hash would add nothing: 256 random bits cannot be guessed, and
// a fast hash keeps a check cheap for a node taking thousands of
// heartbeats a second.
package creds

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/google/uuid"

	"github.com/netview/netview/internal/store"
)

// Kinds of credential, and the letter that marks each in a secret.
const (
	Token  = "token"  // API token for the query service; has a Role
	Enroll = "enroll" // lets a sensor obtain its own key
	Sensor = "sensor" // a sensor's key; bound to SensorID
)

var kindLetter = map[string]byte{Token: 't', Enroll: 'e', Sensor: 's'}

// Roles of API tokens, each allowed what the one before it is.
const (
	Viewer  = "viewer"  // Console views
	Analyst = "analyst" // plus direct SQL
	Admin   = "admin"   // plus tokens, enrollment secrets and sensor keys
)

// Roles lists the roles, least power first.
var Roles = []string{Viewer, Analyst, Admin}

// Allows reports whether role has at least the power of need.
func Allows(role, need string) bool {
	rank := func(r string) int {
		for i, x := range Roles {
			if x == r {
				return i
			}
		}
		return -1
	}
	return rank(role) >= 0 && rank(role) >= rank(need)
}

var (
	// ErrUnknown: no such credential, or the secret does not match it.
	ErrUnknown = errors.New("unknown credential")
	// ErrRevoked: the credential was revoked (or has expired).
	ErrRevoked = errors.New("credential revoked")
	// ErrEnrolled: the sensor id already has an active key; enrolling again
	// would let whoever holds an enrollment secret take it over.
	ErrEnrolled = errors.New("sensor already enrolled")
	// ErrBlocked: the sensor (or one of its keys) was blocked: a key
	// revoked without leave to re-enroll, or the sensor id blocked. A block
	// is final.
	ErrBlocked = errors.New("sensor may not enroll")
	// ErrTaken: a rotation proposed a key id that names another credential.
	ErrTaken = errors.New("credential id taken")
)

// Credential is one row of the credentials table, at its latest version.
type Credential struct {
	ID        string
	Kind      string
	Role      string    // tokens only
	SensorID  uuid.UUID // sensor keys only
	Name      string    // a label for people
	Hash      [32]byte  // SHA-256 of the secret
	CreatedAt time.Time
	CreatedBy string
	ExpiresAt time.Time // zero: never
	RevokedAt time.Time // zero: active
	RevokedBy string
	// Reenroll, on a revoked sensor key, lets the sensor enroll again with
	// an enrollment secret (a rotation); without it the sensor is shut out.
	Reenroll bool
	Version  uint64
}

// Blocked reports whether c is a sensor key revoked without leave to
// re-enroll. A block is final: it outranks every later version of the key
// (see supersedes), so a rotation or revocation that raced it cannot undo it.
func (c *Credential) Blocked() bool {
	return c.Kind == Sensor && !c.RevokedAt.IsZero() && !c.Reenroll
}

// supersedes reports whether c replaces old as the state of their id: a
// blocked version beats one that is not, whatever their order; otherwise
// the higher version wins. readSQL ranks rows the same way.
func supersedes(c, old Credential) bool {
	if cb, ob := c.Blocked(), old.Blocked(); cb != ob {
		return cb
	}
	return c.Version > old.Version
}

// Active reports whether the credential is usable at now.
func (c *Credential) Active(now time.Time) bool {
	return c.RevokedAt.IsZero() && (c.ExpiresAt.IsZero() || now.Before(c.ExpiresAt))
}

// New makes a credential of kind with a fresh id and secret. The secret is
// returned once and never stored.
func New(kind string) (Credential, string, error) {
	letter, ok := kindLetter[kind]
	if !ok {
		return Credential{}, "", fmt.Errorf("creds: unknown kind %q", kind)
	}
	var raw [8 + 32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return Credential{}, "", err
	}
	id := hex.EncodeToString(raw[:8])
	secret := "nv" + string(letter) + "_" + id + "_" + base64.RawURLEncoding.EncodeToString(raw[8:])
	return Credential{ID: id, Kind: kind, Hash: sha256.Sum256([]byte(secret)), CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}, secret, nil
}

// Parse splits a secret into its kind and id without checking it.
func Parse(secret string) (kind, id string, ok bool) {
	if len(secret) < 5 || secret[:2] != "nv" || secret[3] != '_' {
		return "", "", false
	}
	for k, l := range kindLetter {
		if secret[2] == l {
			kind = k
		}
	}
	id, rest, found := strings.Cut(secret[4:], "_")
	if kind == "" || !found || rest == "" || !IsID(id) {
		return "", "", false
	}
	return kind, id, true
}

// IsID reports whether s is a credential id in its one spelling: 16
// lower-case hex digits. A second spelling of the same id (upper case)
// would name a row that revocations by the canonical id never find. It
// allocates nothing, as Parse runs on every request.
func IsID(s string) bool {
	if len(s) != 16 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Store reads and writes the credentials table and keeps an in-memory copy.
type Store struct {
	st  store.Store
	ttl time.Duration

	mu      sync.Mutex
	byID    map[string]Credential
	loaded  time.Time // when byID was read
	tried   time.Time // when the last load began, whatever came of it
	loading chan struct{}
	err     error // of the last load

	missTokens float64
	missAt     time.Time
}

// NewStore returns a store whose copy is at most ttl old when a check
// needs it (a revocation reaches every node within ttl).
func NewStore(st store.Store, ttl time.Duration) *Store {
	return &Store{st: st, ttl: ttl}
}

// Put writes c as its next version.
func (s *Store) Put(ctx context.Context, c Credential) error {
	s.mu.Lock()
	prev, ok := s.byID[c.ID]
	s.mu.Unlock()
	v := uint64(time.Now().UnixNano())
	if ok && prev.Version >= v {
		v = prev.Version + 1
	}
	c.Version = max(v, c.Version+1)
	var cols columns
	cols.append(&c)
	if err := s.st.Insert(ctx, "credentials", cols.input()); err != nil {
		return fmt.Errorf("write credential %s: %w", c.ID, err)
	}
	s.mu.Lock()
	if old, ok := s.byID[c.ID]; s.byID != nil && (!ok || supersedes(c, old)) {
		s.byID[c.ID] = c
	}
	s.mu.Unlock()
	return nil
}

// Get returns the credential id at its latest version, read from storage.
func (s *Store) Get(ctx context.Context, id string) (Credential, error) {
	if err := s.Load(ctx); err != nil {
		return Credential{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.byID[id]
	if !ok {
		return Credential{}, ErrUnknown
	}
	return c, nil
}

// Revoke marks id revoked by who. reenroll applies to sensor keys; a
// sensor key revoked without it is blocked, and so then is every other
// active key of its sensor (one a rotation racing the block made). A block is
// final: revoking a blocked key again changes nothing, and asking for
// reenroll on it is ErrBlocked.
func (s *Store) Revoke(ctx context.Context, id, by string, reenroll bool) (Credential, error) {
	c, err := s.Get(ctx, id) // from storage: the copy may miss a block made elsewhere
	if err != nil {
		return c, err
	}
	if c.Blocked() {
		if reenroll {
			return c, fmt.Errorf("%w: key %s was blocked by %s", ErrBlocked, c.ID, c.RevokedBy)
		}
		return c, nil // the first block stands
	}
	if c, err = s.revoke(ctx, c, by, reenroll); err != nil || !c.Blocked() {
		return c, err
	}
	return c, s.blockKeys(ctx, c.SensorID, by)
}

// revoke writes c revoked by who.
func (s *Store) revoke(ctx context.Context, c Credential, by string, reenroll bool) (Credential, error) {
	if c.RevokedAt.IsZero() {
		c.RevokedAt = time.Now().UTC().Truncate(time.Millisecond)
	}
	c.RevokedBy, c.Reenroll = by, reenroll
	return c, s.Put(ctx, c)
}

// blockKeys blocks every key of sensor not revoked yet, read from storage.
// Keys revoked already stay as they are, to say what became of them; one
// blocked key shuts the sensor out (blockedBy).
func (s *Store) blockKeys(ctx context.Context, sensor uuid.UUID, by string) error {
	keys, err := s.SensorKeys(ctx, sensor)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if k.RevokedAt.IsZero() {
			if _, err := s.revoke(ctx, k, by, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// Enroll issues a key for sensor id, made by the enrollment credential by.
// A sensor id enrolls once: again only after its keys were all revoked with
// leave to re-enroll (a rotation). Two nodes enrolling the same new id at
// the same instant can both succeed; both keys are bound to that id, so
// neither can write for another sensor.
func (s *Store) Enroll(ctx context.Context, sensor uuid.UUID, name, by string) (Credential, string, error) {
	c, secret, err := New(Sensor)
	if err != nil {
		return c, "", err
	}
	c, err = s.EnrollKey(ctx, sensor, name, by, c.ID, c.Hash)
	return c, secret, err
}

// EnrollKey enrolls sensor with a key it made itself, of which only the id
// and hash travel. Enrolling again with the same key is a success, so a
// sensor whose answer was lost (or whose request a load balancer sent to
// two nodes) retries safely: with a key made here, a lost answer would
// leave an active key no one holds and the sensor refused for good.
func (s *Store) EnrollKey(ctx context.Context, sensor uuid.UUID, name, by, id string, hash [32]byte) (Credential, error) {
	if sensor == uuid.Nil {
		return Credential{}, errors.New("creds: enroll: sensor id is the nil UUID")
	}
	if !IsID(id) {
		return Credential{}, fmt.Errorf("creds: enroll: key id %q is not 16 lower-case hex digits", id)
	}
	// A block is final: of the sensor id, or of any of its keys.
	_, why, keys, err := s.blockedBy(ctx, sensor)
	if err != nil || why != "" {
		return Credential{}, blockedErr(why, err)
	}
	now := time.Now()
	for _, k := range keys {
		if k.ID == id && k.Hash == hash && k.Active(now) {
			return k, nil // this very enrollment, again
		}
	}
	for _, k := range keys {
		if k.Active(now) {
			return Credential{}, fmt.Errorf("%w: key %s is active", ErrEnrolled, k.ID)
		}
	}
	if _, err := s.Get(ctx, id); err == nil {
		return Credential{}, fmt.Errorf("%w: %s", ErrTaken, id)
	} else if !errors.Is(err, ErrUnknown) {
		return Credential{}, err
	}
	c := Credential{ID: id, Kind: Sensor, SensorID: sensor, Name: name, Hash: hash,
		CreatedAt: now.UTC().Truncate(time.Millisecond), CreatedBy: by}
	if err := s.Put(ctx, c); err != nil {
		return Credential{}, err
	}
	return c, s.settle(ctx, c)
}

// blockedErr is ErrBlocked saying why, or err when the check failed.
func blockedErr(why string, err error) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("%w: %s", ErrBlocked, why)
}

// blockedBy says who blocked sensor and why, both "" when no one did: the
// sensor id itself, or one of its keys, which it returns (SensorKeys). It
// reads storage, not the copy.
func (s *Store) blockedBy(ctx context.Context, sensor uuid.UUID) (by, why string, keys []Credential, err error) {
	b, ok, err := s.SensorBlock(ctx, sensor)
	if err != nil || ok {
		return b.BlockedBy, "sensor " + sensor.String() + " was blocked by " + b.BlockedBy, nil, err
	}
	if keys, err = s.SensorKeys(ctx, sensor); err != nil {
		return "", "", nil, err
	}
	for _, k := range keys {
		if k.Blocked() {
			return k.RevokedBy, "key " + k.ID + " was blocked by " + k.RevokedBy, keys, nil
		}
	}
	return "", "", keys, nil
}

// settle blocks c, a key just made for its sensor, when a block came while
// it was made: the block's own sweep of the sensor's keys may have missed
// it. With the sweep (Revoke, BlockSensor) this leaves no race in which a
// new key outlives a block: each side writes, then reads what the other
// wrote.
func (s *Store) settle(ctx context.Context, c Credential) error {
	by, why, _, err := s.blockedBy(ctx, c.SensorID)
	if err != nil || why == "" {
		return err
	}
	if _, err := s.Revoke(ctx, c.ID, by, false); err != nil {
		return err
	}
	return blockedErr(why, nil)
}

// Rotate replaces the sensor key old with a key the sensor made itself: id
// and hash (SHA-256 of the secret, which never leaves the sensor). old is
// revoked with leave to re-enroll. A retry of the same rotation (the answer
// was lost) finds the new key already in place and succeeds again, so a
// sensor never ends up holding only a revoked key; an id that names any
// other credential is refused with ErrTaken. A blocked key, or a key of a
// blocked sensor, is refused with ErrBlocked, read from storage whatever
// old says; and should a block land while the rotation runs, the new key
// is blocked too (settle).
func (s *Store) Rotate(ctx context.Context, old Credential, id string, hash [32]byte) (Credential, error) {
	if old.Kind != Sensor {
		return Credential{}, fmt.Errorf("creds: rotate: %s is not a sensor key", old.ID)
	}
	if !IsID(id) {
		return Credential{}, fmt.Errorf("creds: rotate: key id %q is not 16 lower-case hex digits", id)
	}
	// old is the caller's copy, which may predate a block made within the
	// copy's age; storage decides, and a block is final.
	if _, why, _, err := s.blockedBy(ctx, old.SensorID); err != nil || why != "" {
		return Credential{}, blockedErr(why, err)
	}
	by := "rotate:" + old.ID
	c, err := s.Get(ctx, id)
	switch {
	case err == nil:
		if c.Kind != Sensor || c.SensorID != old.SensorID || c.Hash != hash || c.CreatedBy != by {
			return Credential{}, fmt.Errorf("%w: %s", ErrTaken, id)
		}
	case errors.Is(err, ErrUnknown):
		c = Credential{ID: id, Kind: Sensor, SensorID: old.SensorID, Name: old.Name, Hash: hash,
			CreatedAt: time.Now().UTC().Truncate(time.Millisecond), CreatedBy: by}
		if err := s.Put(ctx, c); err != nil {
			return Credential{}, err
		}
	default:
		return Credential{}, err
	}
	cur, err := s.Get(ctx, old.ID)
	if err != nil {
		return Credential{}, err
	}
	if cur.RevokedAt.IsZero() {
		// Should a block of old land now, it outranks this row (supersedes).
		if _, err := s.revoke(ctx, cur, "rotate:"+id, true); err != nil {
			return Credential{}, err
		}
	}
	if err := s.settle(ctx, c); err != nil {
		return Credential{}, err
	}
	return c, nil
}

// SensorKeys returns the keys issued to sensor, oldest revocation first
// and active keys last.
func (s *Store) SensorKeys(ctx context.Context, sensor uuid.UUID) ([]Credential, error) {
	all, err := s.List(ctx, Sensor)
	if err != nil {
		return nil, err
	}
	var out []Credential
	for _, c := range all {
		if c.SensorID == sensor {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b Credential) int {
		return cmp.Or(orderTime(a).Compare(orderTime(b)), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// orderTime sorts revoked keys by when they were revoked, active ones after.
func orderTime(c Credential) time.Time {
	if c.RevokedAt.IsZero() {
		return time.Unix(1<<40, 0)
	}
	return c.RevokedAt
}

// List returns every credential of kind ("" for all), fresh from storage.
func (s *Store) List(ctx context.Context, kind string) ([]Credential, error) {
	if err := s.Load(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Credential
	for _, c := range s.byID {
		if kind == "" || c.Kind == kind {
			out = append(out, c)
		}
	}
	return out, nil
}

// Check finds the credential a secret names and confirms it: the secret
// must hash to the stored digest (compared in constant time), be of one of
// kinds, and be active. A secret unknown to the copy reloads it first, at
// most once per second, so a credential made on another node is found.
func (s *Store) Check(ctx context.Context, secret string, kinds ...string) (Credential, error) {
	kind, id, ok := Parse(secret)
	if !ok || !slices.Contains(kinds, kind) {
		return Credential{}, ErrUnknown
	}
	c, found, err := s.cached(ctx, id)
	if err != nil {
		return Credential{}, err
	}
	sum := sha256.Sum256(unsafe.Slice(unsafe.StringData(secret), len(secret))) // read only: no copy on the hot path
	if !found || subtle.ConstantTimeCompare(sum[:], c.Hash[:]) != 1 || c.Kind != kind {
		return Credential{}, ErrUnknown
	}
	if !c.Active(time.Now()) {
		return c, ErrRevoked
	}
	return c, nil
}

// cached looks id up in the copy, reloading the copy when older than ttl.
// An id the copy lacks (made on another node moments ago, or made up) is
// looked up alone, at most missRate times a second, so a flood of made-up
// keys costs storage little.
func (s *Store) cached(ctx context.Context, id string) (Credential, bool, error) {
	s.mu.Lock()
	c, found := s.byID[id]
	age, never := time.Since(s.loaded), s.byID == nil
	// While storage is away, one reload a second tries again, rather than
	// one per check.
	stale := age > s.ttl && time.Since(s.tried) > min(s.ttl, time.Second)
	s.mu.Unlock()
	if never || stale {
		if err := s.Load(ctx); err != nil && !found {
			return c, false, err
		}
		// On an error, storage is away: a known credential keeps working on
		// the copy, so ingest keeps taking heartbeats (they wait in its
		// batch, or are refused with 503 and spooled by the sensor).
		s.mu.Lock()
		c, found = s.byID[id]
		s.mu.Unlock()
	}
	if found || !s.allowMiss() {
		return c, found, nil
	}
	one, err := s.read(ctx, id)
	if err != nil {
		return c, false, err
	}
	c, found = one[id]
	if found {
		s.mu.Lock()
		// Keyed by c.ID, not id: a caller may pass id as a view of a buffer
		// it reuses (ingest checks secrets straight from request headers).
		if old, ok := s.byID[c.ID]; !ok || supersedes(c, old) {
			s.byID[c.ID] = c
		}
		s.mu.Unlock()
	}
	return c, found, nil
}

// missRate bounds the lookups of ids the copy lacks, per second.
const missRate = 100

// allowMiss is a token bucket of missRate a second, holding one second's.
func (s *Store) allowMiss() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.missTokens = min(missRate, s.missTokens+now.Sub(s.missAt).Seconds()*missRate)
	s.missAt = now
	if s.missTokens < 1 {
		return false
	}
	s.missTokens--
	return true
}

// Load reads the whole table into the copy. Concurrent callers share one
// read.
func (s *Store) Load(ctx context.Context) error {
	s.mu.Lock()
	if ch := s.loading; ch != nil {
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.err
	}
	ch := make(chan struct{})
	s.loading, s.tried = ch, time.Now()
	s.mu.Unlock()

	byID, err := s.read(ctx, "")

	s.mu.Lock()
	defer s.mu.Unlock()
	s.loading, s.err = nil, err
	if err == nil {
		// A Put since the read started may be newer than what was read.
		for id, c := range s.byID {
			if n, ok := byID[id]; !ok || supersedes(c, n) {
				byID[id] = c
			}
		}
		s.byID, s.loaded = byID, time.Now()
	}
	close(ch)
	return err
}

// readSQL takes the winning row of each id; GROUP BY rather than FINAL
// because on a cluster the versions of one id may sit on different shards,
// and because the winner is not simply the highest version. Rows rank by
// r: a blocked sensor key first (a block is final, see supersedes), then a
// row written with the id in its one spelling, then the version. Old
// versions took upper-case key ids: such rows are read under lower(id), so
// the admin finds them by the canonical id, and the revocation written
// under it outranks them. version is the highest of all, so the next write
// is above every row.
const readSQL = `SELECT fid AS id, argMax(kind, r) AS kind, argMax(role, r) AS role,
    argMax(sensor_id, r) AS sensor_id, argMax(name, r) AS name, argMax(hash, r) AS hash,
    argMax(created_at, r) AS created_at, argMax(created_by, r) AS created_by,
    argMax(expires_at, r) AS expires_at, argMax(revoked_at, r) AS revoked_at,
    argMax(revoked_by, r) AS revoked_by, argMax(reenroll, r) AS reenroll, max(version) AS version
FROM (SELECT kind, role, sensor_id, name, hash, created_at, created_by, expires_at, revoked_at, revoked_by, reenroll, version,
        lower(id) AS fid,
        (kind = 'sensor' AND toUnixTimestamp64Milli(revoked_at) != 0 AND reenroll = 0, id = fid, version) AS r
    FROM credentials WHERE {id:String} = '' OR lower(id) = {id:String})
GROUP BY fid`

// readTimeout bounds a read made for a check: a check that waits on
// storage holds up a request.
const readTimeout = 5 * time.Second

// read returns every credential, or only id when it is not empty.
func (s *Store) read(ctx context.Context, id string) (map[string]Credential, error) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	var cols columns
	out := map[string]Credential{}
	q := store.Query{SQL: readSQL, Params: []store.Param{store.P("id", id)}}
	err := s.st.Select(ctx, q, cols.results(), func(n int) error {
		for i := range n {
			c := cols.row(i)
			out[c.ID] = c
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read credentials: %w", err)
	}
	return out, nil
}

// columns are the credentials table's columns, for writes and reads.
type columns struct {
	id, kind, role, name, createdBy, revokedBy proto.ColStr
	sensorID                                   proto.ColUUID
	hash                                       proto.ColFixedStr32
	created, expires, revoked                  proto.ColDateTime64
	reenroll                                   proto.ColUInt8
	version                                    proto.ColUInt64
}

func (c *columns) init() {
	for _, t := range []*proto.ColDateTime64{&c.created, &c.expires, &c.revoked} {
		t.WithPrecision(proto.PrecisionMilli).WithLocation(time.UTC)
	}
}

func (c *columns) append(x *Credential) {
	c.init()
	c.id.Append(x.ID)
	c.kind.Append(x.Kind)
	c.role.Append(x.Role)
	c.sensorID.Append(x.SensorID)
	c.name.Append(x.Name)
	c.hash.Append(x.Hash)
	c.created.Append(x.CreatedAt)
	c.createdBy.Append(x.CreatedBy)
	c.expires.Append(zeroEpoch(x.ExpiresAt))
	c.revoked.Append(zeroEpoch(x.RevokedAt))
	c.revokedBy.Append(x.RevokedBy)
	var re uint8
	if x.Reenroll {
		re = 1
	}
	c.reenroll.Append(re)
	c.version.Append(x.Version)
}

// zeroEpoch stores "never" as the epoch, which DateTime64 can hold (Go's
// zero time it cannot).
func zeroEpoch(t time.Time) time.Time {
	if t.IsZero() {
		return time.Unix(0, 0).UTC()
	}
	return t
}

func fromEpoch(t time.Time) time.Time {
	if t.Unix() == 0 {
		return time.Time{}
	}
	return t.UTC()
}

func (c *columns) input() proto.Input {
	return proto.Input{
		{Name: "id", Data: &c.id}, {Name: "kind", Data: &c.kind}, {Name: "role", Data: &c.role},
		{Name: "sensor_id", Data: &c.sensorID}, {Name: "name", Data: &c.name}, {Name: "hash", Data: &c.hash},
		{Name: "created_at", Data: &c.created}, {Name: "created_by", Data: &c.createdBy},
		{Name: "expires_at", Data: &c.expires}, {Name: "revoked_at", Data: &c.revoked},
		{Name: "revoked_by", Data: &c.revokedBy}, {Name: "reenroll", Data: &c.reenroll}, {Name: "version", Data: &c.version},
	}
}

func (c *columns) results() proto.Results {
	c.init()
	in := c.input()
	out := make(proto.Results, len(in))
	for i, col := range in {
		out[i] = proto.ResultColumn{Name: col.Name, Data: col.Data.(proto.ColResult)}
	}
	return out
}

func (c *columns) row(i int) Credential {
	return Credential{
		ID: c.id.Row(i), Kind: c.kind.Row(i), Role: c.role.Row(i), SensorID: c.sensorID.Row(i),
		Name: c.name.Row(i), Hash: c.hash.Row(i), CreatedAt: c.created.Row(i).UTC(), CreatedBy: c.createdBy.Row(i),
		ExpiresAt: fromEpoch(c.expires.Row(i)), RevokedAt: fromEpoch(c.revoked.Row(i)), RevokedBy: c.revokedBy.Row(i),
		Reenroll: c.reenroll.Row(i) == 1, Version: c.version.Row(i),
	}
}

// SensorBlock is a sensor id an admin shut out (table sensor_blocks).
type SensorBlock struct {
	SensorID  uuid.UUID
	BlockedAt time.Time
	BlockedBy string
	Reason    string
}

// BlockSensor blocks sensor for good and revokes, without leave to
// re-enroll, every key it has. Blocking an id blocked already keeps the
// first block and sweeps its keys again. It returns the block in force and
// the sensor's keys after the sweep.
func (s *Store) BlockSensor(ctx context.Context, sensor uuid.UUID, by, reason string) (SensorBlock, []Credential, error) {
	if sensor == uuid.Nil {
		return SensorBlock{}, nil, errors.New("creds: block: sensor id is the nil UUID")
	}
	b, ok, err := s.SensorBlock(ctx, sensor)
	if err != nil {
		return b, nil, err
	}
	if !ok {
		b = SensorBlock{SensorID: sensor, BlockedAt: time.Now().UTC().Truncate(time.Millisecond), BlockedBy: by, Reason: reason}
		if err := s.putBlock(ctx, b); err != nil {
			return b, nil, err
		}
	}
	// Written first, swept after: an enrollment or rotation that read no
	// block sees it when it settles (settle), or its key is swept here.
	if err := s.blockKeys(ctx, sensor, by); err != nil {
		return b, nil, err
	}
	keys, err := s.SensorKeys(ctx, sensor)
	return b, keys, err
}

func (s *Store) putBlock(ctx context.Context, b SensorBlock) error {
	var id proto.ColUUID
	var by, reason proto.ColStr
	var version proto.ColUInt64
	at := new(proto.ColDateTime64).WithPrecision(proto.PrecisionMilli).WithLocation(time.UTC)
	id.Append(b.SensorID)
	at.Append(b.BlockedAt)
	by.Append(b.BlockedBy)
	reason.Append(b.Reason)
	version.Append(uint64(time.Now().UnixNano()))
	in := proto.Input{{Name: "sensor_id", Data: &id}, {Name: "blocked_at", Data: at}, {Name: "blocked_by", Data: &by},
		{Name: "reason", Data: &reason}, {Name: "version", Data: &version}}
	if err := s.st.Insert(ctx, "sensor_blocks", in); err != nil {
		return fmt.Errorf("write block of sensor %s: %w", b.SensorID, err)
	}
	return nil
}

// blockSQL reads the first block of a sensor: the first decision stands.
// An aggregate without GROUP BY answers one row, n = 0 when there is none.
const blockSQL = `SELECT count() AS n, argMin(blocked_at, version) AS blocked_at,
    argMin(blocked_by, version) AS blocked_by, argMin(reason, version) AS reason
FROM sensor_blocks WHERE sensor_id = {sensor:UUID}`

// SensorBlock returns the block of sensor, read from storage (enrollments
// and rotations are rare; heartbeats meet a block as revoked keys).
func (s *Store) SensorBlock(ctx context.Context, sensor uuid.UUID) (SensorBlock, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	var n proto.ColUInt64
	var by, reason proto.ColStr
	at := new(proto.ColDateTime64).WithPrecision(proto.PrecisionMilli).WithLocation(time.UTC)
	b := SensorBlock{SensorID: sensor}
	var found bool
	q := store.Query{SQL: blockSQL, Params: []store.Param{store.P("sensor", sensor.String())}}
	err := s.st.Select(ctx, q, proto.Results{{Name: "n", Data: &n}, {Name: "blocked_at", Data: at}, {Name: "blocked_by", Data: &by}, {Name: "reason", Data: &reason}},
		func(rows int) error {
			if rows > 0 && n.Row(0) > 0 {
				found, b.BlockedAt, b.BlockedBy, b.Reason = true, at.Row(0).UTC(), by.Row(0), reason.Row(0)
			}
			return nil
		})
	if err != nil {
		return b, false, fmt.Errorf("read block of sensor %s: %w", sensor, err)
	}
	return b, found, nil
}
