package fleetsim

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// hist is a concurrent log-linear histogram of durations in microseconds:
// 16 buckets per power of two (about 6% wide), so a quantile is within 3%
// of the truth; min and max are exact.
type hist struct {
	counts [16 + 60*16]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Int64 // µs
	max    atomic.Int64 // µs
	min    atomic.Int64 // µs + 1; 0 = none yet
}

func bucketOf(us uint64) int {
	if us < 16 {
		return int(us)
	}
	shift := bits.Len64(us) - 5
	return 16 + shift*16 + int(us>>shift) - 16
}

// bucketMid is the middle of bucket i, µs.
func bucketMid(i int) float64 {
	if i < 16 {
		return float64(i)
	}
	shift := (i - 16) / 16
	lo := uint64(16+(i-16)%16) << shift
	return float64(lo) + float64(uint64(1)<<shift)/2
}

func (h *hist) add(d time.Duration) {
	us := max(d.Microseconds(), 0)
	i := min(bucketOf(uint64(us)), len(h.counts)-1)
	h.counts[i].Add(1)
	h.n.Add(1)
	h.sum.Add(us)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			break
		}
	}
	for {
		m := h.min.Load()
		if (m != 0 && us+1 >= m) || h.min.CompareAndSwap(m, us+1) {
			break
		}
	}
}

// Latency summarizes a distribution of durations.
type Latency struct {
	Count uint64        `json:"count"`
	Mean  time.Duration `json:"mean_ns"`
	Min   time.Duration `json:"min_ns"`
	P50   time.Duration `json:"p50_ns"`
	P90   time.Duration `json:"p90_ns"`
	P99   time.Duration `json:"p99_ns"`
	Max   time.Duration `json:"max_ns"`
}

func (h *hist) summary() Latency {
	n := h.n.Load()
	if n == 0 {
		return Latency{}
	}
	mx, mn := h.max.Load(), h.min.Load()-1
	q := func(p float64) time.Duration {
		rank := uint64(p*float64(n-1)) + 1
		var c uint64
		for i := range h.counts {
			c += h.counts[i].Load()
			if c >= rank {
				v := int64(bucketMid(i))
				return time.Duration(min(max(v, mn), mx)) * time.Microsecond
			}
		}
		return time.Duration(mx) * time.Microsecond
	}
	l := Latency{Count: n, Mean: time.Duration(h.sum.Load()/int64(n)) * time.Microsecond, Min: time.Duration(mn) * time.Microsecond,
		P50: q(0.50), P90: q(0.90), P99: q(0.99), Max: time.Duration(mx) * time.Microsecond}
	// Bucket midpoints are clamped to [min, max]; keep the order exact.
	l.P90 = max(l.P90, l.P50)
	l.P99 = max(l.P99, l.P90)
	return l
}
