package fleetsim

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
)

// Report is what a run did. Rates are over the offering window
// (Config.Duration, or until the run was cancelled): OfferedPerSec is
// heartbeats taken on schedule per second, AcceptedPerSec and RowsPerSec
// count acknowledgements that came within the window. The totals
// (Accepted, Rows) include the drain.
type Report struct {
	Sensors        int           `json:"sensors"`
	TelecomSensors int           `json:"telecom_sensors"`
	Targets        []string      `json:"targets"`
	Assign         string        `json:"assign"`
	Interval       time.Duration `json:"-"`
	Duration       time.Duration `json:"-"`
	Drain          time.Duration `json:"-"`
	Seed           uint64        `json:"seed"`
	StartSeq       uint64        `json:"start_seq"`
	Start          time.Time     `json:"start"`
	// Elapsed runs from the start to the last sensor done (drain included).
	Elapsed time.Duration `json:"-"`

	// ScheduledPerSec is Sensors / Interval, the rate the schedule aims at.
	ScheduledPerSec float64 `json:"scheduled_per_sec"`
	OfferedPerSec   float64 `json:"offered_per_sec"`
	AcceptedPerSec  float64 `json:"accepted_per_sec"`
	RowsPerSec      float64 `json:"rows_per_sec"`

	// Offered heartbeats were taken on schedule; each ends as exactly one
	// of Accepted (200), Rejected (400, 413, 415), Dropped (the sensor's
	// queue was full), InDoubt (not acknowledged when the run ended, but an
	// attempt may have been stored: it was cut, timed out, lost its
	// connection or got a 5xx) or Unsent (surely not stored: never sent,
	// or every attempt was refused a connection or answered 401, 403, 429).
	Offered  uint64 `json:"offered"`
	Accepted uint64 `json:"accepted"`
	Rejected uint64 `json:"rejected"`
	Dropped  uint64 `json:"dropped"`
	InDoubt  uint64 `json:"in_doubt"`
	Unsent   uint64 `json:"unsent"`
	// Rows is the sum of the acknowledgements' "rows".
	Rows uint64 `json:"rows"`
	// Attempts counts requests; Retries the failed ones sent again.
	Attempts uint64 `json:"attempts"`
	Retries  uint64 `json:"retries"`
	// Errors counts failed attempts by kind: http_503, http_500, ...,
	// conn_refused, conn_reset, conn_closed, timeout, net_other.
	Errors map[string]uint64 `json:"errors"`
	// RowMismatches counts acknowledgements whose rows differ from what
	// the simulator wrote; AckMismatches ones that do not name the
	// heartbeat sent (heartbeat_id, seq). Both are 0 against a correct node.
	RowMismatches uint64 `json:"row_mismatches"`
	AckMismatches uint64 `json:"ack_mismatches"`
	// Connections is TCP connections the sensors opened.
	Connections uint64 `json:"connections"`

	// Latency runs from when the schedule said to take the heartbeat to
	// its acknowledgement: queueing behind older heartbeats and retries
	// included, so a slow server shows here even though the offered rate
	// does not change. RequestLatency is the acknowledged attempt alone.
	Latency        Latency `json:"latency"`
	RequestLatency Latency `json:"request_latency"`
	// ScheduleLag is how late the simulator started making heartbeats
	// after their tick: large values mean the simulator, not the server,
	// is the bottleneck.
	ScheduleLag Latency `json:"schedule_lag"`

	// The simulator's own cost: GenPerHeartbeat is the wall time to make
	// and compress one heartbeat; CPUPerHeartbeat is the process's CPU
	// time (user + system) per offered heartbeat, HTTP included, and
	// anything else the process runs (an in-process ingest node too).
	GenPerHeartbeat time.Duration `json:"-"`
	ProcessCPU      time.Duration `json:"-"`
	CPUPerHeartbeat time.Duration `json:"-"`
	MeanRows        float64       `json:"mean_rows"`
	MeanDocBytes    float64       `json:"mean_doc_bytes"`
	MeanBodyBytes   float64       `json:"mean_body_bytes"`

	Timeline []Second `json:"timeline"`
	// PerSensor has one entry per sensor, in index order.
	PerSensor []SensorReport `json:"per_sensor,omitempty"`
}

// Second is one second of the run, by when things happened.
type Second struct {
	At          int           `json:"t"` // seconds since the start
	Offered     uint64        `json:"offered"`
	Accepted    uint64        `json:"accepted"`
	Rows        uint64        `json:"rows"`
	Retries     uint64        `json:"retries"`
	Errors      uint64        `json:"errors"`
	MeanLatency time.Duration `json:"-"`
	MaxLatency  time.Duration `json:"-"`
}

// SensorReport is one sensor's part.
type SensorReport struct {
	Index    int       `json:"index"`
	SensorID uuid.UUID `json:"sensor_id"`
	Hostname string    `json:"hostname"`
	Flavor   string    `json:"flavor"`
	// FirstSeq and LastSeq bound the seqs offered (0 when none was).
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	Offered  uint64 `json:"offered"`
	Acked    uint64 `json:"acked"`
	Rejected uint64 `json:"rejected"`
	Dropped  uint64 `json:"dropped"`
	Unsent   uint64 `json:"unsent"`
	// Acks are the acknowledged heartbeats in order (empty with
	// Config.DiscardAcks).
	Acks []Ack `json:"acks,omitempty"`
	// InDoubt are heartbeats not acknowledged when the run ended that the
	// store may hold all the same (at most one per sensor).
	InDoubt []Ack `json:"in_doubt,omitempty"`
}

// Ack is one acknowledged heartbeat (or one in doubt: Rows 0, Latency -1).
type Ack struct {
	Seq         uint64        `json:"seq"`
	HeartbeatID uuid.UUID     `json:"heartbeat_id"`
	Rows        int           `json:"rows"`
	Attempts    int           `json:"attempts"`
	Latency     time.Duration `json:"-"`
}

// Key names a heartbeat in the store.
type Key struct {
	SensorID uuid.UUID
	Seq      uint64
}

// Acked returns every acknowledged heartbeat by key, with its id.
func (r *Report) Acked() map[Key]Ack {
	m := make(map[Key]Ack, r.Accepted)
	for _, s := range r.PerSensor {
		for _, a := range s.Acks {
			m[Key{s.SensorID, a.Seq}] = a
		}
	}
	return m
}

// InDoubtKeys returns the heartbeats that may or may not be stored.
func (r *Report) InDoubtKeys() map[Key]Ack {
	m := map[Key]Ack{}
	for _, s := range r.PerSensor {
		for _, a := range s.InDoubt {
			m[Key{s.SensorID, a.Seq}] = a
		}
	}
	return m
}

// SensorIDs lists the fleet's sensors in index order.
func (r *Report) SensorIDs() []uuid.UUID {
	ids := make([]uuid.UUID, len(r.PerSensor))
	for i, s := range r.PerSensor {
		ids[i] = s.SensorID
	}
	return ids
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// MarshalJSON writes durations in milliseconds.
func (l Latency) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Count uint64  `json:"count"`
		Mean  float64 `json:"mean_ms"`
		Min   float64 `json:"min_ms"`
		P50   float64 `json:"p50_ms"`
		P90   float64 `json:"p90_ms"`
		P99   float64 `json:"p99_ms"`
		Max   float64 `json:"max_ms"`
	}{l.Count, ms(l.Mean), ms(l.Min), ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Max)})
}

// MarshalJSON writes durations in milliseconds (and the configured ones
// as Go durations, "15s").
func (r Report) MarshalJSON() ([]byte, error) {
	type plain Report
	return json.Marshal(struct {
		plain
		Interval        string  `json:"interval"`
		Duration        string  `json:"duration"`
		Drain           string  `json:"drain"`
		ElapsedMS       float64 `json:"elapsed_ms"`
		GenPerHeartbeat float64 `json:"gen_us_per_heartbeat"`
		ProcessCPU      float64 `json:"process_cpu_ms"`
		CPUPerHeartbeat float64 `json:"cpu_us_per_heartbeat"`
	}{plain(r), r.Interval.String(), r.Duration.String(), r.Drain.String(), ms(r.Elapsed),
		float64(r.GenPerHeartbeat.Nanoseconds()) / 1e3, ms(r.ProcessCPU), float64(r.CPUPerHeartbeat.Nanoseconds()) / 1e3})
}

// MarshalJSON writes the second's latencies in milliseconds.
func (s Second) MarshalJSON() ([]byte, error) {
	type plain Second
	return json.Marshal(struct {
		plain
		Mean float64 `json:"mean_latency_ms"`
		Max  float64 `json:"max_latency_ms"`
	}{plain(s), ms(s.MeanLatency), ms(s.MaxLatency)})
}

// MarshalJSON writes the latency in milliseconds (omitted when in doubt).
func (a Ack) MarshalJSON() ([]byte, error) {
	type plain Ack
	var lat *float64
	if a.Latency >= 0 {
		v := ms(a.Latency)
		lat = &v
	}
	return json.Marshal(struct {
		plain
		Latency *float64 `json:"latency_ms,omitempty"`
	}{plain(a), lat})
}

func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}

// WriteText writes the report as a table for people.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, a ...any) { fmt.Fprintf(tw, format+"\n", a...) }
	p("fleet\t%d sensors (%d telecom), every %v, for %v (+ drain up to %v), %s to %s", r.Sensors, r.TelecomSensors, r.Interval, r.Duration, r.Drain,
		r.Assign, strings.Join(r.Targets, ", "))
	p("heartbeats/s\tscheduled %.1f\toffered %.1f\taccepted %.1f", r.ScheduledPerSec, r.OfferedPerSec, r.AcceptedPerSec)
	p("rows/s\t%.0f\t(%.0f rows per heartbeat, %.1f KiB JSON, %.1f KiB zstd)", r.RowsPerSec, r.MeanRows, r.MeanDocBytes/1024, r.MeanBodyBytes/1024)
	p("heartbeats\toffered %d\taccepted %d\trejected %d\tdropped %d\tin doubt %d\tunsent %d", r.Offered, r.Accepted, r.Rejected, r.Dropped, r.InDoubt, r.Unsent)
	p("rows\t%d acknowledged", r.Rows)
	p("requests\t%d attempts\t%d retries\t%d connections opened", r.Attempts, r.Retries, r.Connections)
	if len(r.Errors) > 0 {
		kinds := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		parts := make([]string, len(kinds))
		for i, k := range kinds {
			parts[i] = fmt.Sprintf("%s %d", k, r.Errors[k])
		}
		p("errors\t%s", strings.Join(parts, "\t"))
	} else {
		p("errors\tnone")
	}
	if r.RowMismatches+r.AckMismatches > 0 {
		p("MISMATCHES\t%d acks with other rows than sent\t%d acks naming another heartbeat", r.RowMismatches, r.AckMismatches)
	}
	p("")
	p("latency\tp50\tp90\tp99\tmax\tmean")
	for _, l := range []struct {
		name string
		l    Latency
	}{{"ack (from schedule)", r.Latency}, {"request", r.RequestLatency}, {"schedule lag", r.ScheduleLag}} {
		p("%s\t%s\t%s\t%s\t%s\t%s", l.name, fmtDur(l.l.P50), fmtDur(l.l.P90), fmtDur(l.l.P99), fmtDur(l.l.Max), fmtDur(l.l.Mean))
	}
	p("")
	p("simulator\t%s process CPU per offered heartbeat (%s in all)\t%s wall time to make and compress one", fmtDur(r.CPUPerHeartbeat), fmtDur(r.ProcessCPU), fmtDur(r.GenPerHeartbeat))
	return tw.Flush()
}
