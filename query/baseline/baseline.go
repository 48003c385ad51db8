// Package baseline is "what is new": a periodic job over the store that
// learns, per sensor, which listeners, outbound destinations, DNS domains
// and peer hosts each binary has shown, and writes a finding, an event of
// a baseline_* kind, the first time one shows up after the sensor's
// learning period.
//
// Each run judges a window after the job's watermark, (watermark, now -
// lag], at most MaxWindow long, reads only the rows whose own time lies
// in it or in the Overlap before it (rows written late), and
// does its work as INSERT ... SELECT statements on the engine: nothing is
// brought into the process but the watermark. What has been seen is kept
// as one row per (rule, sensor, key) in baseline_seen (migration 0013),
// never as a copy of the history.
//
// Replicas are stateless and may all run the job. A finding's event_id is
// a hash of (rule, sensor, key, time) and its time is the first row's
// time, all fixed by the data alone; events is a ReplacingMergeTree on (kind,
// sensor_id, time, event_id) read with FINAL, so a retried run or two
// replicas running the same window write the same row twice and it shows
// once.
package baseline

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/VictoriaMetrics/metrics"

	"github.com/netview/netview/internal/store"
)

// Config tunes the job. Its flags have the prefix baseline.
type Config struct {
	// Interval between runs; 0 turns the job off.
	Interval time.Duration
	// Learning is how long after a sensor's first heartbeat (as the job
	// saw it) everything is learned and nothing is a finding.
	Learning time.Duration
	// Lag keeps the window's end this far behind now, so heartbeats still
	// in a sensor's spool or an ingest batch land before their time is
	// passed.
	Lag time.Duration
	// Overlap is how far before its window a run reads again, for rows
	// written after their window was processed (a spool delivered late, a
	// slow batch, a clock behind). Re-reading is safe: a key an earlier
	// window saw is no finding, and a rerun writes the same finding again.
	// A row later than Lag + Overlap is still not read (see
	// docs/operations.md).
	Overlap time.Duration
	// MaxWindow bounds one run's window; a job behind catches up in steps.
	MaxWindow time.Duration
	// Backfill is how far back the very first run starts.
	Backfill time.Duration
	// Mute lists rules whose findings are not written (still learned).
	Mute []string
	// Deviations is how far, in standard deviations, a connection count
	// lies from its hour of day's mean to be a finding.
	Deviations float64
	// MinDays is how many days of history an hour of day needs before its
	// connection counts are judged.
	MinDays int
	// Resolvers are the binaries of local DNS resolvers: their lookup of
	// a domain a client on the sensor looked up too is no domain finding.
	Resolvers []string
	// InboundPerHour caps the inbound-peer findings of a sensor's binary
	// in an hour; 0 takes the default.
	InboundPerHour int
}

// DefaultResolvers are the local resolvers' binaries as the sensor names
// them (the kernel's comm, 15 characters: systemd-resolved is
// systemd-resolve).
var DefaultResolvers = []string{"systemd-resolve", "dnsmasq", "unbound", "named", "pdns_recursor", "kresd", "coredns", "nscd"}

// Defaults returns the configuration the flags default to.
func Defaults() Config {
	return Config{Interval: time.Minute, Learning: 24 * time.Hour, Lag: 2 * time.Minute, Overlap: 10 * time.Minute, MaxWindow: time.Hour, Backfill: time.Hour,
		Deviations: 4, MinDays: 3, Resolvers: DefaultResolvers, InboundPerHour: 10}
}

// RegisterFlags adds the job's flags to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	d := Defaults()
	fs.DurationVar(&c.Interval, "baseline.interval", d.Interval, "time between runs of the baseline job (what is new: listeners, destinations, DNS domains, peers); 0 turns it off")
	fs.DurationVar(&c.Learning, "baseline.learning", d.Learning, "learning period of a sensor from its first heartbeat: learned, but no finding")
	fs.DurationVar(&c.Lag, "baseline.lag", d.Lag, "how far behind now a run's window ends, for heartbeats still on their way")
	fs.DurationVar(&c.Overlap, "baseline.overlap", d.Overlap, "how far before its window each run reads again, for rows written after their window was processed; rows later than lag + overlap are missed")
	fs.DurationVar(&c.MaxWindow, "baseline.max-window", d.MaxWindow, "longest time span one run reads")
	fs.DurationVar(&c.Backfill, "baseline.backfill", d.Backfill, "how far back the first run of a new store starts")
	fs.Float64Var(&c.Deviations, "baseline.connection-deviations", d.Deviations, "how many standard deviations off its hour of day's mean a sensor's connection count must be for a finding")
	fs.IntVar(&c.MinDays, "baseline.connection-min-days", d.MinDays, "days of history an hour of day needs before a sensor's connection counts in it are judged")
	fs.IntVar(&c.InboundPerHour, "baseline.peer.inbound-per-hour", d.InboundPerHour, "most new inbound client networks of a sensor's binary an hour that are peer findings; the rest are learned quietly")
	c.Resolvers = d.Resolvers
	fs.Func("baseline.resolvers", "comma-separated binaries of local DNS resolvers, whose lookup of a domain a client on the same sensor looked up too is no new-domain finding (default "+strings.Join(d.Resolvers, ",")+"; empty: none)", func(v string) error {
		c.Resolvers = []string{}
		for _, r := range strings.Split(v, ",") {
			if r = strings.TrimSpace(r); r != "" {
				c.Resolvers = append(c.Resolvers, r)
			}
		}
		return nil
	})
	fs.Func("baseline.mute", "comma-separated rules whose findings are not written, though still learned: "+strings.Join(RuleNames(), ", "), func(v string) error {
		c.Mute = nil
		for _, r := range strings.Split(v, ",") {
			if r = strings.TrimSpace(r); r != "" {
				c.Mute = append(c.Mute, r)
			}
		}
		return nil
	})
}

// Validate checks the configuration.
func (c Config) Validate() error {
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"interval", c.Interval}, {"learning", c.Learning}, {"lag", c.Lag}, {"overlap", c.Overlap}, {"backfill", c.Backfill}} {
		if d.v < 0 {
			return fmt.Errorf("baseline: --baseline.%s %s must not be negative", d.flag, d.v)
		}
	}
	if c.InboundPerHour < 0 {
		return fmt.Errorf("baseline: --baseline.peer.inbound-per-hour %d must not be negative", c.InboundPerHour)
	}
	if c.Deviations < 0 || c.MinDays < 0 || c.MinDays > 7 {
		return errors.New("baseline: --baseline.connection-deviations must not be negative and --baseline.connection-min-days must be at most 7 (0 takes the default)")
	}
	if c.Interval > 0 && c.MaxWindow <= 0 {
		return errors.New("baseline: --baseline.max-window must be above zero")
	}
	for _, m := range c.Mute {
		if !slices.Contains(RuleNames(), m) {
			return fmt.Errorf("baseline: --baseline.mute: %q is not one of %s", m, strings.Join(RuleNames(), ", "))
		}
	}
	return nil
}

// Job runs the rules over the store.
type Job struct {
	cfg Config
	st  store.Store
	log *slog.Logger
	// Now is the clock; tests set it.
	Now func() time.Time
	// metrics are the job's, in a set of its own (see Metrics).
	metrics *metrics.Set
	// watermarkMs is the watermark after the last good run, for the lag
	// gauge; 0 before it.
	watermarkMs atomic.Int64
}

// runBuckets reach a run that takes as long as --query.timeout's default.
var runBuckets = []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// New returns a job on st.
//
// A zero Deviations, MinDays or InboundPerHour, and nil Resolvers, take their default: a
// Config written before those existed keeps working.
func New(cfg Config, st store.Store, log *slog.Logger) (*Job, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := Defaults()
	cfg.Deviations, cfg.MinDays = cmp.Or(cfg.Deviations, d.Deviations), cmp.Or(cfg.MinDays, d.MinDays)
	cfg.InboundPerHour = cmp.Or(cfg.InboundPerHour, d.InboundPerHour)
	if cfg.Resolvers == nil { // unset; an empty list (the flag given empty) is none
		cfg.Resolvers = d.Resolvers
	}
	if log == nil {
		log = slog.Default()
	}
	j := &Job{cfg: cfg, st: st, log: log, Now: time.Now, metrics: metrics.NewSet()}
	for _, result := range []string{"ok", "error"} { // both series from the start, for alerts on rate()
		j.metrics.GetOrCreateCounter(`netview_baseline_runs_total{result="` + result + `"}`)
	}
	j.metrics.GetOrCreateCounter("netview_baseline_late_heartbeats_total")
	// How far behind now the learned data is: alert when it grows past a
	// few intervals (runs failing, or too slow to keep up).
	j.metrics.NewGauge("netview_baseline_watermark_lag_seconds", func() float64 {
		ms := j.watermarkMs.Load()
		if ms == 0 {
			return 0
		}
		return j.Now().Sub(time.UnixMilli(ms)).Seconds()
	})
	return j, nil
}

// Metrics returns the job's metrics, for the /metrics of the service that
// runs it: runs by result, their duration, and the watermark's lag.
func (j *Job) Metrics() *metrics.Set { return j.metrics }

// watermarkJob names the job's row in baseline_watermark.
const watermarkJob = "baseline"

// Run runs the job every Interval until ctx ends. A run that fails is
// logged and the next one retries its window: the watermark only moves
// once a window is wholly written.
func (j *Job) Run(ctx context.Context) {
	if j.cfg.Interval <= 0 {
		return
	}
	t := time.NewTicker(j.cfg.Interval)
	defer t.Stop()
	for {
		// Catch up in MaxWindow steps, then wait.
		for ctx.Err() == nil {
			w, err := j.Once(ctx)
			if err != nil {
				if ctx.Err() == nil {
					j.log.Warn("baseline run", "err", err)
				}
				break
			}
			if !w.Full {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Window is what one run read: rows with From < time <= To.
type Window struct {
	From, To time.Time
	// Full is true when the window was cut at MaxWindow, so more is due.
	Full bool
}

// Once runs the rules over the window after the watermark and moves the
// watermark to its end. An empty window (the job is up to date) does
// nothing.
func (j *Job) Once(ctx context.Context) (Window, error) {
	start := time.Now()
	w, err := j.once(ctx)
	result := "ok"
	if err != nil {
		result = "error"
	}
	j.metrics.GetOrCreateCounter(`netview_baseline_runs_total{result="` + result + `"}`).Inc()
	j.metrics.GetOrCreatePrometheusHistogramExt("netview_baseline_run_duration_seconds", runBuckets).UpdateDuration(start)
	return w, err
}

func (j *Job) once(ctx context.Context) (Window, error) {
	from, err := j.Watermark(ctx)
	if err != nil {
		return Window{}, err
	}
	now := j.Now().UTC().Truncate(time.Millisecond)
	if from.IsZero() {
		from = now.Add(-j.cfg.Backfill)
	}
	w := Window{From: from, To: now.Add(-j.cfg.Lag)}
	if w.To.Sub(w.From) > j.cfg.MaxWindow {
		w.To, w.Full = w.From.Add(j.cfg.MaxWindow), true
	}
	if !w.To.After(w.From) {
		j.watermarkMs.Store(w.From.UnixMilli())
		return w, nil
	}
	if err := j.Process(ctx, w.From, w.To); err != nil {
		return w, err
	}
	if err := j.countLate(ctx, w); err != nil {
		j.log.Warn("baseline late heartbeats", "err", err) // a figure only: the run goes on
	}
	err = j.st.Exec(ctx, store.Query{
		SQL:    "INSERT INTO baseline_watermark (job, processed_to, updated_at) VALUES ({job:String}, {to:DateTime64(3, 'UTC')}, now64(3, 'UTC'))",
		Params: []store.Param{store.P("job", watermarkJob), store.P("to", ts(w.To))},
	})
	if err != nil {
		return w, fmt.Errorf("baseline watermark: %w", err)
	}
	j.watermarkMs.Store(w.To.UnixMilli())
	return w, nil
}

// countLate counts the heartbeats whose rows no run judged: those that
// reached the store more than Lag + Overlap after they were sent (on
// ingest's clock against the sensor's, so a sensor's clock behind counts
// too). Each run counts those sent in its window moved back by twice the
// overlap plus the lag, so consecutive runs count every heartbeat once,
// among those that had arrived by then: a lower bound, as a heartbeat
// later still than that is not counted. It costs one read of the
// window's heartbeats, as the first step of Process does.
func (j *Job) countLate(ctx context.Context, w Window) error {
	back := 2*j.cfg.Overlap + j.cfg.Lag
	var n proto.ColUInt64
	var late uint64
	err := j.st.Select(ctx, store.Query{
		SQL: `SELECT uniqExact(sensor_id, seq) AS n FROM heartbeats
WHERE sent_at > {from:DateTime64(3, 'UTC')} AND sent_at <= {to:DateTime64(3, 'UTC')} AND received_at > sent_at + toIntervalMillisecond({late_ms:Int64})`,
		Params: []store.Param{store.P("from", ts(w.From.Add(-back))), store.P("to", ts(w.To.Add(-back))),
			store.P("late_ms", fmt.Sprint((j.cfg.Lag + j.cfg.Overlap).Milliseconds()))},
	}, proto.Results{{Name: "n", Data: &n}}, func(rows int) error {
		if rows > 0 {
			late = n.Row(0)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if late > 0 {
		j.metrics.GetOrCreateCounter("netview_baseline_late_heartbeats_total").Add(int(late))
		j.log.Warn("baseline: heartbeats later than --baseline.lag plus --baseline.overlap were not judged", "heartbeats", late,
			"sent_after", w.From.Add(-back), "sent_until", w.To.Add(-back))
	}
	return nil
}

// Watermark returns the end of the last window written, zero before the
// first run.
func (j *Job) Watermark(ctx context.Context) (time.Time, error) {
	var ms proto.ColInt64
	var got int64
	err := j.st.Select(ctx, store.Query{
		SQL:    "SELECT toInt64(toUnixTimestamp64Milli(max(processed_to))) AS ms FROM baseline_watermark WHERE job = {job:String}",
		Params: []store.Param{store.P("job", watermarkJob)},
	}, proto.Results{{Name: "ms", Data: &ms}}, func(rows int) error {
		if rows > 0 {
			got = ms.Row(0)
		}
		return nil
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("baseline watermark: %w", err)
	}
	if got <= 0 {
		return time.Time{}, nil
	}
	return time.UnixMilli(got).UTC(), nil
}

// Process runs every rule over the window from < time <= to, without
// reading or moving the watermark: it reads the rows with from - Overlap <
// time <= to, so that a row written after the window before was processed
// is still judged. Running it again over the same window changes nothing.
func (j *Job) Process(ctx context.Context, from, to time.Time) error {
	params := []store.Param{store.P("from", ts(from)), store.P("read_from", ts(from.Add(-j.cfg.Overlap))), store.P("to", ts(to)),
		store.P("learn_ms", fmt.Sprint(j.cfg.Learning.Milliseconds())), store.P("resolvers", arrayOf(j.cfg.Resolvers)),
		store.P("inbound_cap", fmt.Sprint(j.cfg.InboundPerHour))}
	// A sensor's first heartbeat first: the rules' learning period runs
	// from it, and it must be known before this window's rows are judged.
	// Its role next, so a sensor's first window is judged with its group.
	err := j.st.Exec(ctx, store.Query{SQL: `INSERT INTO baseline_seen (rule, sensor_id, key, first_seen, last_seen, first_window)
SELECT '_sensor', sensor_id, '', min(sent_at), max(sent_at), {from:DateTime64(3, 'UTC')} FROM heartbeats
WHERE sent_at > {read_from:DateTime64(3, 'UTC')} AND sent_at <= {to:DateTime64(3, 'UTC')}
GROUP BY sensor_id`, Params: params})
	if err != nil {
		return fmt.Errorf("baseline sensors: %w", err)
	}
	if err := j.st.Exec(ctx, store.Query{SQL: roleSQL, Params: params}); err != nil {
		return fmt.Errorf("baseline roles: %w", err)
	}
	for _, r := range rules {
		p := append(slices.Clone(params), store.P("rule", r.Name), store.P("kind", r.Kind))
		// A key is new when the state holds nothing of it from an earlier
		// window. A rerun, or a replica on the same window, finds the
		// state's first_window equal to its own and writes the same
		// finding again, which collapses.
		if !slices.Contains(j.cfg.Mute, r.Name) {
			if err := j.st.Exec(ctx, store.Query{SQL: r.findingsSQL(), Params: p}); err != nil {
				return fmt.Errorf("baseline %s findings: %w", r.Name, err)
			}
		}
		if err := j.st.Exec(ctx, store.Query{SQL: r.learnSQL(), Params: p}); err != nil {
			return fmt.Errorf("baseline %s: %w", r.Name, err)
		}
	}
	// The connection count: the hours first, as a window of a backfill
	// spans days whose earlier ones are the later ones' history (an hour
	// is only ever judged against hours before it).
	if err := j.st.Exec(ctx, store.Query{SQL: hourlySQL, Params: params}); err != nil {
		return fmt.Errorf("baseline hourly: %w", err)
	}
	if slices.Contains(j.cfg.Mute, countRule) {
		return nil
	}
	p := append(params, store.P("rule", countRule), store.P("kind", countKind), store.P("hours", hoursOfDay(from.Add(-j.cfg.Overlap), to)),
		store.P("min_days", fmt.Sprint(j.cfg.MinDays)), store.P("deviations", fmt.Sprint(j.cfg.Deviations)))
	if err := j.st.Exec(ctx, store.Query{SQL: countSQL, Params: p}); err != nil {
		return fmt.Errorf("baseline %s findings: %w", countRule, err)
	}
	return nil
}

// hoursOfDay is the UTC hours of day from from's hour to to, as an array
// literal.
func hoursOfDay(from, to time.Time) string {
	var hours []string
	for h := from.UTC().Truncate(time.Hour); !h.After(to) && len(hours) < 24; h = h.Add(time.Hour) {
		hours = append(hours, fmt.Sprint(h.Hour()))
	}
	return "[" + strings.Join(hours, ",") + "]"
}

// arrayOf is a query parameter's Array(String) literal.
func arrayOf(v []string) string {
	q := make([]string, len(v))
	for i, s := range v {
		q[i] = store.Quote(s)
	}
	return "[" + strings.Join(q, ",") + "]"
}

func ts(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000") }
