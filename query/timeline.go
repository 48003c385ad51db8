package query

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/netview/netview/internal/store"
)

// The fleet timeline (GET /api/v2/network/timeline): per step of a window,
// how many sensors reported and the fleet's summed counts, for the
// Console's time control to draw and click on.
//
// Each sensor counts once a bucket, with its newest heartbeat there (its
// highest seq): the snapshot counts are a state, not a rate, so a sensor
// that reported four times in a bucket must not weigh four times. A
// retried heartbeat is the same (sensor, seq), stored twice until a merge:
// the innermost query folds it to one. A heartbeat whose snapshots the
// sensor's spool dropped reports zeros that are no observation (as in the
// summary's baseline), so a sensor's newest heartbeat with something in it
// is the one taken; completed flows are new in each heartbeat, so they are
// summed over all of the bucket's.

// maxTimelineBuckets bounds an answer; maxTimelineWindow the heartbeats it
// reads (they are kept 30 days).
const (
	maxTimelineBuckets = 2000
	maxTimelineWindow  = 31 * 24 * time.Hour
	// timelineBuckets is how many buckets the default step makes.
	timelineBuckets = 120
)

var timelineOut = []string{"time", "sensors", "connections", "listeners", "udp_listeners", "active_flows", "completed_flows"}

// timelineTarget is what the timeline's filters may ask about: the sensor
// (host=), nothing of a row's traffic.
var timelineTarget = &target{name: "timeline"}

// The window is {since_ms} .. {until_ms} (Unix ms), {step_ms} a bucket,
// {buckets} of them; %WHERE% narrows the heartbeats (h).
const timelineSQL = `SELECT fromUnixTimestamp64Milli(toInt64({since_ms:Int64} + b * {step_ms:Int64}), 'UTC') AS time,
    sensors, connections, listeners, udp_listeners, active_flows, completed_flows
FROM (
    SELECT b, toUInt64(count()) AS sensors, sum(conns) AS connections, sum(lis) AS listeners, sum(udp) AS udp_listeners,
        sum(flows) AS active_flows, sum(done) AS completed_flows
    FROM (
        SELECT sensor_id, b, toUInt64(argMaxIf(c, seq, seen)) AS conns, toUInt64(argMaxIf(l, seq, seen)) AS lis,
            toUInt64(argMaxIf(u, seq, seen)) AS udp, toUInt64(argMaxIf(f, seq, seen)) AS flows, toUInt64(sum(d)) AS done
        FROM (
            SELECT h.sensor_id AS sensor_id, h.seq AS seq,
                intDiv(toUnixTimestamp64Milli(any(h.sent_at)) - {since_ms:Int64}, {step_ms:Int64}) AS b,
                any(h.tcp_connections) AS c, any(h.tcp_listeners) AS l, any(h.udp_listeners) AS u, any(h.active_flows) AS f,
                any(h.completed_flows) AS d, c + l + u + f > 0 AS seen
            FROM heartbeats AS h
            WHERE h.sent_at >= fromUnixTimestamp64Milli({since_ms:Int64}, 'UTC') AND h.sent_at < fromUnixTimestamp64Milli({until_ms:Int64}, 'UTC')%WHERE%
            GROUP BY h.sensor_id, h.seq
        )
        GROUP BY sensor_id, b
    )
    GROUP BY b
    ORDER BY b WITH FILL FROM 0 TO {buckets:Int64}
)
ORDER BY time`

// timeline answers GET /api/v2/network/timeline.
func (s *Server) timeline(ctx context.Context, r *fasthttp.RequestCtx, _ *principal) ([]byte, error) {
	q := query(r, "sensor_id", "host", "since", "until", "step")
	sensor := q.sensor()
	sc := q.scope(timelineTarget)
	until := q.time("until", time.Now().UTC())
	since := q.time("since", until.Add(-time.Hour))
	if q.err != nil {
		return nil, q.err
	}
	since, until = since.Truncate(time.Millisecond), until.Truncate(time.Millisecond)
	window := until.Sub(since)
	if window <= 0 || window > maxTimelineWindow {
		return nil, badParam("since", "the window since..until must be positive and at most 31 days (got %s .. %s)",
			since.Format(time.RFC3339), until.Format(time.RFC3339))
	}
	// The default: about timelineBuckets buckets of whole seconds.
	step := max(((window / timelineBuckets) + time.Second - 1).Truncate(time.Second), time.Second)
	if v := q.str("step"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second || d%time.Millisecond != 0 {
			return nil, badParam("step", "%q is not a duration of at least 1s in whole milliseconds (e.g. 15s, 5m, 1h)", v)
		}
		step = d
	}
	buckets := int64((window + step - 1) / step)
	if buckets > maxTimelineBuckets {
		return nil, badParam("step", "%s over %s is %d buckets, at most %d: take a longer step or a shorter window",
			step, window, buckets, maxTimelineBuckets)
	}
	params := []store.Param{store.P("since_ms", strconv.FormatInt(since.UnixMilli(), 10)), store.P("until_ms", strconv.FormatInt(until.UnixMilli(), 10)),
		store.P("step_ms", strconv.FormatInt(step.Milliseconds(), 10)), store.P("buckets", strconv.FormatInt(buckets, 10))}
	where := sc.where("h", &params)
	if sensor != "" {
		where += " AND h.sensor_id = {sensor:UUID}"
		params = append(params, store.P("sensor", sensor))
	}
	sqlText := strings.Replace(timelineSQL, "%WHERE%", where, 1)
	return list("buckets", func(b []byte) ([]byte, error) {
		b, _, _, err := selectJSON(ctx, s.store, store.Query{SQL: sqlText, Params: params}, timelineOut, nil, b)
		return b, err
	}, func(b []byte) []byte {
		b = appendTime(field(b, "since"), since)
		b = appendTime(field(b, "until"), until)
		return strconv.AppendFloat(field(b, "step_secs"), step.Seconds(), 'f', -1, 64)
	})
}
