package baseline

// Export of findings: a delivery job per sink (a webhook, a syslog
// receiver) reads the findings from events, sends them, and records each
// one the receiver acknowledged in finding_delivery (migration 0016). The
// store is the outbox: nothing is held only in memory, so a restart
// resumes where the acknowledgements stop. Delivery is at-least-once: a
// batch sent but not yet recorded (the service stopped, the receiver
// answered too late) is sent again, with the same event_id.

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/VictoriaMetrics/metrics"
	"github.com/google/uuid"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/internal/tlsconf"
	"github.com/netview/netview/sql/schema"
)

// NotifyConfig configures the export of findings. Its flags have the
// prefixes baseline.webhook, baseline.syslog and baseline.notify.
type NotifyConfig struct {
	// WebhookURL receives POSTs of JSON arrays of findings; "" sends none.
	WebhookURL string
	// WebhookTokenFile holds a bearer token sent as Authorization.
	WebhookTokenFile string
	// WebhookHeaders are extra "Name: value" headers of every POST.
	WebhookHeaders []string
	// SyslogAddr (host:port) receives RFC 5424 lines over TCP; "" sends none.
	SyslogAddr string
	// SyslogFraming is RFC 6587's "octet-counting" or "lf" (a newline
	// after each message).
	SyslogFraming string
	// SyslogFacility is the facility code of PRI (local0 = 16).
	SyslogFacility int
	// SyslogTLS sends syslog over TLS (RFC 5425), trusting SyslogTrust's
	// CA file (the system's roots without one) and pin.
	SyslogTLS   bool
	SyslogTrust tlsconf.Client
	// Interval between looks for new findings when a sink is up to date.
	Interval time.Duration
	// Timeout bounds one send: the POST, or the dial and the write.
	Timeout time.Duration
	// Batch is the most findings one POST or one write carries.
	Batch int
	// Overlap is how far before the newest delivered finding's insertion
	// each look starts again, for findings whose insert became visible
	// late (a replica's clock behind, a slow insert).
	Overlap time.Duration
	// Backfill is how far back a sink's very first look starts.
	Backfill time.Duration
	// MaxBackoff bounds the wait between retries of a failing sink.
	MaxBackoff time.Duration
	// TTLDays is how long finding_delivery keeps a delivery; 0 takes the
	// default. It must outlast Overlap and Backfill, or a finding whose
	// record expired is sent again.
	TTLDays int
}

// NotifyDefaults returns the configuration the flags default to.
func NotifyDefaults() NotifyConfig {
	return NotifyConfig{SyslogFraming: "octet-counting", SyslogFacility: 16, Interval: 10 * time.Second, Timeout: 10 * time.Second,
		Batch: 100, Overlap: 10 * time.Minute, Backfill: 24 * time.Hour, MaxBackoff: 5 * time.Minute, TTLDays: 30}
}

// facilities are RFC 5424's facility names, by code.
var facilities = []string{"kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp", "ntp", "audit", "alert", "clock",
	"local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7"}

// RegisterFlags adds the export's flags to fs.
func (c *NotifyConfig) RegisterFlags(fs *flag.FlagSet) {
	d := NotifyDefaults()
	*c = d
	fs.StringVar(&c.WebhookURL, "baseline.webhook.url", "", "`URL` (http or https) that gets every baseline finding as a POST of a JSON array; empty sends none")
	fs.StringVar(&c.WebhookTokenFile, "baseline.webhook.token-file", "", "`file` whose first line is sent as 'Authorization: Bearer <token>' to --baseline.webhook.url")
	fs.Func("baseline.webhook.header", "extra `Name: value` header of each webhook POST (repeatable)", func(v string) error {
		c.WebhookHeaders = append(c.WebhookHeaders, v)
		return nil
	})
	fs.StringVar(&c.SyslogAddr, "baseline.syslog.addr", "", "`host:port` of a syslog receiver that gets every baseline finding as an RFC 5424 line over TCP; empty sends none")
	fs.BoolVar(&c.SyslogTLS, "baseline.syslog.tls", false, "send syslog over TLS (RFC 5425), checking the receiver's certificate against --baseline.syslog.ca-file (the system's roots without one)")
	fs.StringVar(&c.SyslogTrust.CAFile, "baseline.syslog.ca-file", "", "PEM CA certificate(s) (or the receiver's own certificate) to trust for --baseline.syslog.tls")
	fs.StringVar(&c.SyslogTrust.Pin, "baseline.syslog.pin-sha256", "", "pin the syslog receiver's public key (SHA-256 of its SPKI, hex or base64) for --baseline.syslog.tls")
	fs.StringVar(&c.SyslogFraming, "baseline.syslog.framing", d.SyslogFraming, "framing of syslog over TCP: octet-counting (RFC 6587) or lf")
	fs.Func("baseline.syslog.facility", "syslog facility, by name (local0) or code (default local0)", func(v string) error {
		for i, name := range facilities {
			if v == name || v == strconv.Itoa(i) {
				c.SyslogFacility = i
				return nil
			}
		}
		return fmt.Errorf("not one of %s", strings.Join(facilities, ", "))
	})
	fs.DurationVar(&c.Interval, "baseline.notify.interval", d.Interval, "time between looks for findings to export when every sink is up to date")
	fs.DurationVar(&c.Timeout, "baseline.notify.timeout", d.Timeout, "longest a webhook POST or a syslog dial and write may take")
	fs.IntVar(&c.Batch, "baseline.notify.batch", d.Batch, "most findings in one webhook POST or one syslog write")
	fs.DurationVar(&c.Overlap, "baseline.notify.overlap", d.Overlap, "how far before the newest exported finding each look starts again, for findings written late")
	fs.DurationVar(&c.Backfill, "baseline.notify.backfill", d.Backfill, "how far back a sink's first look starts")
	fs.DurationVar(&c.MaxBackoff, "baseline.notify.max-backoff", d.MaxBackoff, "longest wait between retries of a failing sink")
	fs.IntVar(&c.TTLDays, "baseline.notify.ttl-days", d.TTLDays, "days the record of an exported finding is kept (finding_delivery's TTL, set at start)")
}

// Enabled says whether any sink is configured.
func (c NotifyConfig) Enabled() bool { return c.WebhookURL != "" || c.SyslogAddr != "" }

// Validate checks the configuration, naming the flag at fault.
func (c NotifyConfig) Validate() error {
	if c.TTLDays < 0 || c.TTLDays > 3650 {
		return fmt.Errorf("baseline: --baseline.notify.ttl-days %d: want 1 to 3650 days", c.TTLDays)
	}
	if c.TTLDays > 0 && time.Duration(c.TTLDays)*24*time.Hour <= c.Overlap+c.Backfill {
		return fmt.Errorf("baseline: --baseline.notify.ttl-days %d must outlast --baseline.notify.overlap plus --baseline.notify.backfill (%s), or expired records are sent again", c.TTLDays, c.Overlap+c.Backfill)
	}
	if !c.Enabled() {
		return nil
	}
	if c.WebhookURL != "" {
		u, err := url.Parse(c.WebhookURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("baseline: --baseline.webhook.url %q: want an http:// or https:// URL with a host", c.WebhookURL)
		}
	}
	for _, h := range c.WebhookHeaders {
		if name, _, ok := strings.Cut(h, ":"); !ok || strings.TrimSpace(name) == "" || strings.ContainsAny(name, " \t") {
			return fmt.Errorf("baseline: --baseline.webhook.header %q: want 'Name: value'", h)
		}
	}
	if c.SyslogAddr != "" {
		if _, port, err := net.SplitHostPort(c.SyslogAddr); err != nil || port == "" {
			return fmt.Errorf("baseline: --baseline.syslog.addr %q: want host:port", c.SyslogAddr)
		}
	}
	if !c.SyslogTLS && (c.SyslogTrust.CAFile != "" || c.SyslogTrust.Pin != "") {
		return errors.New("baseline: --baseline.syslog.ca-file and --baseline.syslog.pin-sha256 need --baseline.syslog.tls")
	}
	if c.SyslogTLS {
		if c.SyslogAddr == "" {
			return errors.New("baseline: --baseline.syslog.tls needs --baseline.syslog.addr")
		}
		if _, err := c.SyslogTrust.Config(); err != nil {
			return fmt.Errorf("baseline: --baseline.syslog.ca-file or --baseline.syslog.pin-sha256: %w", err)
		}
	}
	if c.SyslogFraming != "octet-counting" && c.SyslogFraming != "lf" {
		return fmt.Errorf("baseline: --baseline.syslog.framing %q: want octet-counting or lf", c.SyslogFraming)
	}
	if c.SyslogFacility < 0 || c.SyslogFacility >= len(facilities) {
		return fmt.Errorf("baseline: --baseline.syslog.facility %d: want 0 to %d", c.SyslogFacility, len(facilities)-1)
	}
	switch {
	case c.Interval <= 0:
		return errors.New("baseline: --baseline.notify.interval must be above zero")
	case c.Timeout <= 0:
		return errors.New("baseline: --baseline.notify.timeout must be above zero")
	case c.Batch < 1 || c.Batch > 10000:
		return fmt.Errorf("baseline: --baseline.notify.batch %d: want 1 to 10000", c.Batch)
	case c.Overlap < 0 || c.Backfill < 0:
		return errors.New("baseline: --baseline.notify.overlap and --baseline.notify.backfill must not be negative")
	case c.MaxBackoff < c.Interval:
		return errors.New("baseline: --baseline.notify.max-backoff must be at least --baseline.notify.interval")
	}
	return nil
}

// Finding is one finding as the sinks send it: the events API's fields of
// an event (api.md), with the sensor's hostname. EventID is stable: a
// finding sent again carries the same one, for receivers to drop repeats.
type Finding struct {
	EventID          uuid.UUID `json:"event_id"`
	SensorID         uuid.UUID `json:"sensor_id"`
	Hostname         string    `json:"hostname"`
	Kind             string    `json:"kind"`
	Time             time.Time `json:"time"`
	ReceivedAt       time.Time `json:"received_at"` // when the baseline job wrote it
	Protocol         string    `json:"protocol"`
	SrcAddress       string    `json:"src_address"`
	SrcPort          uint16    `json:"src_port"`
	DstAddress       string    `json:"dst_address"`
	DstPort          uint16    `json:"dst_port"`
	Netns            uint64    `json:"netns"`
	UID              uint32    `json:"uid"`
	PID              uint32    `json:"pid,omitempty"`
	Binary           string    `json:"binary"`
	BinaryPath       string    `json:"binary_path"`
	Unit             string    `json:"unit"`
	ContainerID      string    `json:"container_id"`
	ContainerRuntime string    `json:"container_runtime"`
	PodUID           string    `json:"pod_uid"`
	ContainerName    string    `json:"container_name"`
	ContainerImage   string    `json:"container_image"`
	Pod              string    `json:"pod"`
	PodNamespace     string    `json:"pod_namespace"`
	QueryName        string    `json:"query_name"`
	QueryType        string    `json:"query_type"`
	State            string    `json:"state"` // where its first row came from
	Source           string    `json:"source"`
}

// MarshalJSON writes times as the events API does (milliseconds, UTC).
func (f Finding) MarshalJSON() ([]byte, error) {
	type plain Finding
	return json.Marshal(struct {
		plain
		Time       string `json:"time"`
		ReceivedAt string `json:"received_at"`
	}{plain(f), f.Time.UTC().Format(jsonTime), f.ReceivedAt.UTC().Format(jsonTime)})
}

const jsonTime = "2006-01-02T15:04:05.000Z07:00"

// sink is one receiver. send returns nil only once the receiver has
// acknowledged the whole batch, as far as its protocol can say.
type sink interface {
	name() string
	send(ctx context.Context, batch []Finding) error
	close()
}

// Notify runs one delivery loop per configured sink.
type Notify struct {
	cfg   NotifyConfig
	st    store.Store
	log   *slog.Logger
	sinks []sink
	// Now is the clock of the first look's start; tests set it.
	Now     func() time.Time
	metrics *metrics.Set
	// oldestMs is, per sink, when the oldest finding not yet delivered was
	// written (0 when none waits), for the lag gauge.
	oldestMs map[string]*atomic.Int64
}

// NewNotify returns the export for cfg on st; with no sink configured it
// does nothing when run.
func NewNotify(cfg NotifyConfig, st store.Store, log *slog.Logger) (*Notify, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	n := &Notify{cfg: cfg, st: st, log: log, Now: time.Now, metrics: metrics.NewSet(), oldestMs: map[string]*atomic.Int64{}}
	if cfg.WebhookURL != "" {
		w, err := newWebhook(cfg)
		if err != nil {
			return nil, err
		}
		n.sinks = append(n.sinks, w)
	}
	if cfg.SyslogAddr != "" {
		s := &syslogSink{cfg: cfg}
		if cfg.SyslogTLS {
			tc, err := cfg.SyslogTrust.Config()
			if err != nil {
				return nil, fmt.Errorf("baseline: --baseline.syslog.tls: %w", err)
			}
			s.tls = tc
		}
		n.sinks = append(n.sinks, s)
	}
	for _, s := range n.sinks {
		name := s.name()
		oldest := new(atomic.Int64)
		n.oldestMs[name] = oldest
		// Both series from the start, for alerts on rate().
		n.metrics.GetOrCreateCounter(`netview_baseline_notify_delivered_total{sink="` + name + `"}`)
		n.metrics.GetOrCreateCounter(`netview_baseline_notify_failures_total{sink="` + name + `"}`)
		// How long the oldest finding not yet delivered has waited: alert
		// when it grows past a few retries.
		n.metrics.NewGauge(`netview_baseline_notify_lag_seconds{sink="`+name+`"}`, func() float64 {
			ms := oldest.Load()
			if ms == 0 {
				return 0
			}
			return time.Since(time.UnixMilli(ms)).Seconds()
		})
	}
	return n, nil
}

// ApplyTTL sets finding_delivery's TTL to TTLDays (migration 0016 made
// it 30 days) when it differs, at the start of the service, as
// --store.events-ttl-days does for events: old parts are not rewritten,
// they expire as merges reach them. cluster is --store.cluster: there the
// ALTER goes to every node's local table.
func (n *Notify) ApplyTTL(ctx context.Context, cluster string) error {
	days := cmp.Or(n.cfg.TTLDays, NotifyDefaults().TTLDays)
	if err := schema.SetTTL(ctx, n.st, cluster, "finding_delivery", "delivered_at", days); err != nil {
		return fmt.Errorf("baseline: --baseline.notify.ttl-days: %w", err)
	}
	return nil
}

// Metrics returns the export's metrics: findings delivered and failed
// sends per sink, and the lag of each.
func (n *Notify) Metrics() *metrics.Set { return n.metrics }

// Run delivers until ctx ends, each sink in a loop of its own so that a
// failing receiver holds back only itself. A failed send is retried after
// a wait that doubles from Interval up to MaxBackoff, with the same
// findings: none is skipped.
func (n *Notify) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, s := range n.sinks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.close()
			wait := time.Duration(0)
			for {
				sent, err := n.Once(ctx, s.name())
				switch {
				case err != nil:
					if ctx.Err() != nil {
						return
					}
					wait = min(max(2*wait, n.cfg.Interval), n.cfg.MaxBackoff)
					n.log.Warn("baseline export", "sink", s.name(), "err", err, "retry_in", wait)
				case sent == n.cfg.Batch:
					wait = 0 // more may be waiting
				default:
					wait = n.cfg.Interval
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
		}()
	}
	wg.Wait()
}

// Once sends the next batch of findings to the sink named "webhook" or
// "syslog", and records them delivered once the receiver acknowledged
// them. It returns how many it sent.
func (n *Notify) Once(ctx context.Context, sinkName string) (int, error) {
	var s sink
	for _, c := range n.sinks {
		if c.name() == sinkName {
			s = c
		}
	}
	if s == nil {
		return 0, fmt.Errorf("baseline export: no sink %q", sinkName)
	}
	sent, err := n.once(ctx, s)
	if err != nil {
		if ctx.Err() == nil { // a stop is not a failure of the receiver
			n.metrics.GetOrCreateCounter(`netview_baseline_notify_failures_total{sink="` + sinkName + `"}`).Inc()
		}
		return 0, fmt.Errorf("%s: %w", sinkName, err)
	}
	n.metrics.GetOrCreateCounter(`netview_baseline_notify_delivered_total{sink="` + sinkName + `"}`).Add(sent)
	return sent, nil
}

func (n *Notify) once(ctx context.Context, s sink) (int, error) {
	since, err := n.since(ctx, s.name())
	if err != nil {
		return 0, err
	}
	batch, err := n.pending(ctx, s.name(), since)
	if err != nil {
		return 0, err
	}
	oldest := n.oldestMs[s.name()]
	if len(batch) == 0 {
		oldest.Store(0)
		return 0, nil
	}
	oldest.Store(batch[0].ReceivedAt.UnixMilli())
	sctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	err = s.send(sctx, batch)
	cancel()
	if err != nil {
		return 0, err
	}
	// Sent: a failure from here on sends the batch again (at-least-once).
	if err := n.markDelivered(ctx, s.name(), batch); err != nil {
		return 0, err
	}
	return len(batch), nil
}

// since returns where the sink's next look starts: Overlap before the
// newest insertion time it has delivered. A sink's first look records a
// start row (the nil event_id) Backfill back, so that a restart before
// anything was delivered starts there again, not later.
func (n *Notify) since(ctx context.Context, name string) (time.Time, error) {
	var ms proto.ColInt64
	var rows proto.ColUInt64
	var got, count int64
	err := n.st.Select(ctx, store.Query{
		SQL:    "SELECT toInt64(toUnixTimestamp64Milli(max(received_at))) AS ms, count() AS n FROM finding_delivery WHERE sink = {sink:String}",
		Params: []store.Param{store.P("sink", name)},
	}, proto.Results{{Name: "ms", Data: &ms}, {Name: "n", Data: &rows}}, func(r int) error {
		if r > 0 {
			got, count = ms.Row(0), int64(rows.Row(0))
		}
		return nil
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("read export watermark: %w", err)
	}
	if count == 0 {
		start := n.Now().UTC().Add(-n.cfg.Backfill).Truncate(time.Millisecond)
		if err := n.markDelivered(ctx, name, []Finding{{ReceivedAt: start, Time: start}}); err != nil {
			return time.Time{}, err
		}
		return start.Add(-n.cfg.Overlap), nil
	}
	return time.UnixMilli(got).UTC().Add(-n.cfg.Overlap), nil
}

// findingKinds is the SQL list of the findings' kinds.
var findingKinds = func() string {
	var q []string
	for _, k := range heartbeat.BaselineEventKinds {
		q = append(q, store.Quote(k))
	}
	return strings.Join(q, ", ")
}()

// findingStrs are the string columns of a finding, in the order of
// (*Finding).strs.
var findingStrs = []string{"kind", "protocol", "binary", "binary_path", "unit", "container_id", "container_runtime", "pod_uid", "container_name",
	"container_image", "pod", "pod_namespace", "query_name", "query_type", "state", "source"}

func (f *Finding) strs() []*string {
	return []*string{&f.Kind, &f.Protocol, &f.Binary, &f.BinaryPath, &f.Unit, &f.ContainerID, &f.ContainerRuntime, &f.PodUID, &f.ContainerName,
		&f.ContainerImage, &f.Pod, &f.PodNamespace, &f.QueryName, &f.QueryType, &f.State, &f.Source}
}

// pendingSQL is the next findings written after since that the sink has
// not had, in the order they were written (received_at is set by the
// insert, so a finding about an old time written late still comes after
// since). The findings' kinds lead events' sorting key, so this reads
// their granules only. A finding written twice (a baseline run retried)
// has one event_id: the first copy is sent, and the delivered set drops
// the second. GLOBAL NOT IN, as in findingsSQL, for a cluster.
func pendingSQL(batch int) string {
	var strs []string
	for _, c := range findingStrs {
		strs = append(strs, fmt.Sprintf("CAST(e.%s AS String) AS %s", c, c))
	}
	return `SELECT e.event_id AS event_id, e.sensor_id AS sensor_id, e.time AS time, e.received_at AS received_at, e.src_address AS src_address, e.src_port AS src_port,
    e.dst_address AS dst_address, e.dst_port AS dst_port, e.netns AS netns, e.uid AS uid, e.pid AS pid, ` + strings.Join(strs, ", ") + `, h.hostname AS hostname
FROM (
    SELECT * FROM events
    WHERE kind IN (` + findingKinds + `) AND received_at > {since:DateTime64(3, 'UTC')}
      AND event_id GLOBAL NOT IN (SELECT event_id FROM finding_delivery WHERE sink = {sink:String})
    ORDER BY received_at, event_id
    LIMIT 1 BY event_id
    LIMIT ` + strconv.Itoa(batch) + `
) AS e
LEFT JOIN (SELECT sensor_id, argMax(hostname, seq) AS hostname FROM sensors GROUP BY sensor_id) AS h ON h.sensor_id = e.sensor_id
ORDER BY received_at, event_id`
}

// findingCols decode pendingSQL's rows.
type findingCols struct {
	eventID, sensorID      proto.ColUUID
	time, receivedAt       proto.ColDateTime64
	srcAddress, dstAddress proto.ColIPv6
	srcPort, dstPort       proto.ColUInt16
	netns                  proto.ColUInt64
	uid, pid               proto.ColUInt32
	strs                   []proto.ColStr
	hostname               proto.ColStr
}

func (c *findingCols) results() proto.Results {
	c.strs = make([]proto.ColStr, len(findingStrs))
	r := proto.Results{{Name: "event_id", Data: &c.eventID}, {Name: "sensor_id", Data: &c.sensorID}, {Name: "time", Data: &c.time},
		{Name: "received_at", Data: &c.receivedAt}, {Name: "src_address", Data: &c.srcAddress}, {Name: "src_port", Data: &c.srcPort},
		{Name: "dst_address", Data: &c.dstAddress}, {Name: "dst_port", Data: &c.dstPort}, {Name: "netns", Data: &c.netns},
		{Name: "uid", Data: &c.uid}, {Name: "pid", Data: &c.pid}}
	for i, name := range findingStrs {
		r = append(r, proto.ResultColumn{Name: name, Data: &c.strs[i]})
	}
	return append(r, proto.ResultColumn{Name: "hostname", Data: &c.hostname})
}

func (c *findingCols) row(i int) Finding {
	f := Finding{EventID: c.eventID.Row(i), SensorID: c.sensorID.Row(i), Time: c.time.Row(i).UTC(), ReceivedAt: c.receivedAt.Row(i).UTC(),
		SrcAddress: addr(c.srcAddress.Row(i)), SrcPort: c.srcPort.Row(i), DstAddress: addr(c.dstAddress.Row(i)), DstPort: c.dstPort.Row(i),
		Netns: c.netns.Row(i), UID: c.uid.Row(i), PID: c.pid.Row(i), Hostname: c.hostname.Row(i)}
	for j, p := range f.strs() {
		*p = c.strs[j].Row(i)
	}
	return f
}

// addr writes an address as the events API does: IPv4 without its ::ffff: prefix.
func addr(v proto.IPv6) string { return netip.AddrFrom16(v).Unmap().String() }

func (n *Notify) pending(ctx context.Context, name string, since time.Time) ([]Finding, error) {
	var c findingCols
	var out []Finding
	err := n.st.Select(ctx, store.Query{SQL: pendingSQL(n.cfg.Batch), Params: []store.Param{store.P("sink", name), store.P("since", ts(since))}},
		c.results(), func(rows int) error {
			for i := range rows {
				out = append(out, c.row(i))
			}
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("read findings: %w", err)
	}
	return out, nil
}

// markDelivered records the batch as acknowledged by the sink.
func (n *Notify) markDelivered(ctx context.Context, name string, batch []Finding) error {
	var sinkCol proto.ColStr
	var id proto.ColUUID
	received, at, delivered := new(proto.ColDateTime64), new(proto.ColDateTime64), new(proto.ColDateTime64)
	for _, t := range []*proto.ColDateTime64{received, at, delivered} {
		t.WithPrecision(proto.PrecisionMilli).WithLocation(time.UTC)
	}
	now := time.Now().UTC()
	for _, f := range batch {
		sinkCol.Append(name)
		id.Append(f.EventID)
		received.Append(f.ReceivedAt)
		at.Append(f.Time)
		delivered.Append(now)
	}
	err := n.st.Insert(ctx, "finding_delivery", proto.Input{{Name: "sink", Data: &sinkCol}, {Name: "event_id", Data: &id},
		{Name: "received_at", Data: received}, {Name: "time", Data: at}, {Name: "delivered_at", Data: delivered}})
	if err != nil {
		return fmt.Errorf("record delivery: %w", err)
	}
	return nil
}

// webhook POSTs each batch as one JSON array; any 2xx acknowledges it.
type webhook struct {
	cfg     NotifyConfig
	client  *http.Client
	headers http.Header
}

func newWebhook(cfg NotifyConfig) (*webhook, error) {
	w := &webhook{cfg: cfg, client: &http.Client{Timeout: cfg.Timeout}, headers: http.Header{}}
	w.headers.Set("Content-Type", "application/json")
	w.headers.Set("User-Agent", "netview-baseline-export")
	for _, h := range cfg.WebhookHeaders {
		name, value, _ := strings.Cut(h, ":")
		w.headers.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	if cfg.WebhookTokenFile != "" {
		b, err := os.ReadFile(cfg.WebhookTokenFile)
		if err != nil {
			return nil, fmt.Errorf("baseline: --baseline.webhook.token-file: %w", err)
		}
		tok, _, _ := strings.Cut(string(b), "\n")
		if tok = strings.TrimSpace(tok); tok == "" {
			return nil, fmt.Errorf("baseline: --baseline.webhook.token-file %s: empty", cfg.WebhookTokenFile)
		}
		w.headers.Set("Authorization", "Bearer "+tok)
	}
	return w, nil
}

func (w *webhook) name() string { return "webhook" }

func (w *webhook) send(ctx context.Context, batch []Finding) error {
	body, err := json.Marshal(batch)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header = w.headers.Clone()
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // so the connection is reused
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("POST %s: %s: %s", w.cfg.WebhookURL, resp.Status, bytes.TrimSpace(snippet))
	}
	return nil
}

func (w *webhook) close() { w.client.CloseIdleConnections() }

// syslogSink writes RFC 5424 messages on one TCP connection, dialled again
// after any error. TCP acknowledges bytes to the kernel, not to the
// receiver's application: a write that returned is in this host's send
// buffer, and a receiver that crashes before reading it loses it without
// either side knowing. That is all syslog over TCP can promise (RFC 6587);
// a receiver that must not lose one needs the webhook.
//
// Over TLS (RFC 5425) the same holds: TLS adds the receiver's identity
// and privacy, not an acknowledgement of each message.
type syslogSink struct {
	cfg  NotifyConfig
	tls  *tls.Config // nil: plain TCP
	conn net.Conn
	buf  []byte
}

func (s *syslogSink) name() string { return "syslog" }

func (s *syslogSink) send(ctx context.Context, batch []Finding) error {
	s.buf = s.buf[:0]
	for _, f := range batch {
		s.buf = AppendSyslog(s.buf, f, s.cfg.SyslogFacility, s.cfg.SyslogFraming == "octet-counting")
	}
	if s.conn != nil && !s.alive() {
		s.close()
	}
	if s.conn == nil {
		d := &net.Dialer{Timeout: s.cfg.Timeout}
		var c net.Conn
		var err error
		if s.tls != nil {
			// The handshake is part of the dial; the server name is the
			// address's host.
			c, err = (&tls.Dialer{NetDialer: d, Config: s.tls}).DialContext(ctx, "tcp", s.cfg.SyslogAddr)
		} else {
			c, err = d.DialContext(ctx, "tcp", s.cfg.SyslogAddr)
		}
		if err != nil {
			return err
		}
		s.conn = c
	}
	deadline, _ := ctx.Deadline()
	s.conn.SetWriteDeadline(deadline)
	// A connection that dies after the check above may still take this
	// write into its buffer and lose it unseen (see above).
	if _, err := s.conn.Write(s.buf); err != nil {
		s.close()
		return err
	}
	return nil
}

// alive says whether the receiver has not closed the connection: a
// receiver sends nothing, so a read that does not time out at once is its
// end (or a reset). Checked before each batch, it spares the batch after a
// receiver's restart from going into a dead connection.
func (s *syslogSink) alive() bool {
	s.conn.SetReadDeadline(time.Now().Add(time.Millisecond))
	var one [1]byte
	_, err := s.conn.Read(one[:])
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (s *syslogSink) close() {
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}

// syslogSeverity is notice: a finding is normal but significant.
const syslogSeverity = 5

// sdID names the structured data element. 32473 is the enterprise number
// RFC 5612 reserves for examples: Netview has none registered of its own.
const sdID = "netview@32473"

// AppendSyslog appends f to b as one RFC 5424 message,
//
//	<PRI>1 TIMESTAMP HOSTNAME netview - KIND [netview@32473 event_id="..." ...] JSON
//
// the finding's time as TIMESTAMP, the sensor's hostname (its id when it
// has none) as HOSTNAME, its kind as MSGID, its main fields as structured
// data and all of it as the JSON MSG. With octetCounting it is framed as
// RFC 6587's "LEN SP MSG"; otherwise a newline ends it (JSON has none).
func AppendSyslog(b []byte, f Finding, facility int, octetCounting bool) []byte {
	var m []byte
	m = fmt.Appendf(m, "<%d>1 %s %s netview - %s [%s", facility*8+syslogSeverity, f.Time.UTC().Format("2006-01-02T15:04:05.000Z"),
		syslogHost(f), f.Kind, sdID)
	param := func(name, value string) {
		if value == "" || value == "0" {
			return
		}
		m = append(m, ' ')
		m = append(m, name...)
		m = append(m, '=', '"')
		for _, r := range value {
			switch {
			case r == '"' || r == '\\' || r == ']':
				m = append(m, '\\', byte(r))
			case r < 0x20 || r == 0x7f: // a newline would end an lf-framed message
				m = append(m, '?')
			default:
				m = append(m, string(r)...)
			}
		}
		m = append(m, '"')
	}
	param("event_id", f.EventID.String())
	param("sensor_id", f.SensorID.String())
	param("protocol", f.Protocol)
	param("binary", f.Binary)
	param("pid", strconv.FormatUint(uint64(f.PID), 10))
	param("src", f.SrcAddress)
	param("sport", strconv.Itoa(int(f.SrcPort)))
	if f.DstAddress != "::" {
		param("dst", f.DstAddress)
	}
	param("dport", strconv.Itoa(int(f.DstPort)))
	param("query_name", f.QueryName)
	param("container_id", f.ContainerID)
	param("state", f.State)
	m = append(m, "] "...)
	j, _ := json.Marshal(f) // a Finding always marshals
	m = append(m, j...)
	if octetCounting {
		b = strconv.AppendInt(b, int64(len(m)), 10)
		b = append(b, ' ')
		return append(b, m...)
	}
	b = append(b, m...)
	return append(b, '\n')
}

// syslogHost is HOSTNAME: printable ASCII without spaces, at most 255.
func syslogHost(f Finding) string {
	h := f.Hostname
	if h == "" {
		return f.SensorID.String()
	}
	out := []byte(h)
	for i, c := range out {
		if c <= ' ' || c > '~' {
			out[i] = '_'
		}
	}
	if len(out) > 255 {
		out = out[:255]
	}
	return string(out)
}
