package uplink

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/netview/netview/internal/tlsconf"
)

// Link is how a sensor reaches ingest: the heartbeat URL, the secret it
// proves itself with, and TLS. With an enrollment secret the sensor
// enrolls once for a key of its own, kept in StateDir; a static token is
// the older, weaker way (ingest must run with --ingest.shared-tokens).
type Link struct {
	URL          string
	Token        string
	TokenFile    string
	EnrollSecret string
	EnrollFile   string
	RotateEvery  time.Duration
	TLS          tlsconf.Client
	// StateDir is the sensor's state folder, where its key is kept; the
	// sensor sets it (it has its own flag).
	StateDir string
}

// RegisterFlags registers the link flags with a "sensor." prefix.
func (l *Link) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&l.URL, "sensor.ingest", "http://127.0.0.1:8090/v1/heartbeat", "ingest heartbeat URL (https:// with ingest's TLS)")
	fs.StringVar(&l.EnrollSecret, "sensor.enroll-secret", "", "enrollment secret: the sensor enrolls once with it for a key of its own, kept in its state folder (also $NETVIEW_SENSOR_ENROLL_SECRET)")
	fs.StringVar(&l.EnrollFile, "sensor.enroll-secret-file", "", "file holding the enrollment secret")
	fs.StringVar(&l.Token, "sensor.token", "", "static bearer token for ingest, used only without an enrollment secret; ingest must run with --ingest.shared-tokens (also $NETVIEW_SENSOR_TOKEN)")
	fs.StringVar(&l.TokenFile, "sensor.token-file", "", "file holding the static bearer token")
	fs.DurationVar(&l.RotateEvery, "sensor.key-rotate", 30*24*time.Hour, "replace the sensor's key once it is this old; 0: never")
	l.TLS.Register(fs, "sensor")
}

// Validate resolves the secrets from the environment and files and reports
// the first bad setting.
func (l *Link) Validate() error {
	u, err := url.Parse(l.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("sensor: ingest URL %q: want http(s)://host:port/v1/heartbeat", l.URL)
	}
	if u.Scheme == "http" && (l.TLS.CAFile != "" || l.TLS.Pin != "") {
		return errors.New("sensor: --sensor.ca-file and --sensor.pin-sha256 need an https:// ingest URL")
	}
	if _, err := l.TLS.Config(); err != nil {
		return fmt.Errorf("sensor: %w", err)
	}
	if l.EnrollSecret, err = secret(l.EnrollSecret, "NETVIEW_SENSOR_ENROLL_SECRET", l.EnrollFile); err != nil {
		return fmt.Errorf("sensor: enrollment secret file: %w", err)
	}
	if l.Token, err = secret(l.Token, "NETVIEW_SENSOR_TOKEN", l.TokenFile); err != nil {
		return fmt.Errorf("sensor: token file: %w", err)
	}
	if l.EnrollSecret == "" && l.Token == "" {
		return errors.New("sensor: no secret: set --sensor.enroll-secret (or -file, $NETVIEW_SENSOR_ENROLL_SECRET), or a static --sensor.token")
	}
	if l.RotateEvery < 0 {
		return errors.New("sensor: key-rotate must not be negative")
	}
	return nil
}

// secret is v, else $env, else the first line of file that is not blank or
// a # comment (ingest's token files may hold several).
func secret(v, env, file string) (string, error) {
	if v == "" {
		v = os.Getenv(env)
	}
	if v != "" || file == "" {
		return strings.TrimSpace(v), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if line, _, _ = strings.Cut(line, "#"); strings.TrimSpace(line) != "" {
			return strings.TrimSpace(line), nil
		}
	}
	return "", nil
}

// Client returns the client the sensor sensorID (reporting hostname)
// delivers with. Call Validate first.
func (l *Link) Client(sensorID uuid.UUID, hostname string, maxBackoff time.Duration, log *slog.Logger) (*Client, error) {
	tc, err := l.TLS.Config()
	if err != nil {
		return nil, err
	}
	c := &Client{URL: l.URL, Token: l.Token, HTTP: NewHTTPClient(tc), MaxBackoff: maxBackoff}
	if l.EnrollSecret == "" {
		return c, nil
	}
	u, err := url.Parse(l.URL)
	if err != nil {
		return nil, err
	}
	sibling := func(name string) string {
		v := *u
		v.Path, v.RawPath, v.RawQuery = path.Join(path.Dir(u.Path), name), "", ""
		return v.String()
	}
	c.Keys = &Keyring{
		EnrollURL: sibling("enroll"), RotateURL: sibling("rotate"), Secret: l.EnrollSecret,
		SensorID: sensorID, Hostname: hostname, File: filepath.Join(l.StateDir, KeyFile),
		RotateEvery: l.RotateEvery, Log: log,
	}
	return c, nil
}
