package ingest

import (
	"math"
	"sync"
	"time"
)

// limiter is a set of token buckets, one per key (a client address or a
// sensor id), each refilled at rate a second and holding burst. A key whose
// bucket is full is the same as an absent one, so full buckets are swept
// away and memory follows the keys active in the last few seconds.
type limiter[K comparable] struct {
	rate, burst float64 // rate 0: no limit

	mu      sync.Mutex
	buckets map[K]bucket
	sweepAt int // sweep when the map grows to this size
}

type bucket struct {
	tokens float64
	at     int64 // unix nanoseconds of the last refill
}

func newLimiter[K comparable](rate float64) *limiter[K] {
	// A bucket holds two seconds' worth: a sensor that sends a burst after
	// an outage, or a retry just after its heartbeat, is not refused.
	return &limiter[K]{rate: rate, burst: max(1, 2*rate), buckets: map[K]bucket{}, sweepAt: 1024}
}

// refill returns k's bucket as of now; callers hold l.mu.
func (l *limiter[K]) refill(k K, now int64) bucket {
	b, ok := l.buckets[k]
	if !ok {
		return bucket{tokens: l.burst, at: now}
	}
	b.tokens = min(l.burst, b.tokens+float64(now-b.at)/1e9*l.rate)
	b.at = now
	return b
}

// take spends one token of k's bucket. When there is none it spends
// nothing and says how long until there is.
func (l *limiter[K]) take(k K, now time.Time) (bool, time.Duration) {
	if l == nil || l.rate <= 0 {
		return true, 0
	}
	ns := now.UnixNano()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.refill(k, ns)
	if b.tokens < 1 {
		return false, l.wait(b)
	}
	b.tokens--
	l.store(k, b, ns)
	return true, 0
}

// empty reports whether k's bucket has no token left, and how long until
// it has one, without spending any.
func (l *limiter[K]) empty(k K, now time.Time) (bool, time.Duration) {
	if l == nil || l.rate <= 0 {
		return false, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.buckets[k]; !ok {
		return false, 0
	}
	b := l.refill(k, now.UnixNano())
	if b.tokens < 1 {
		return true, l.wait(b)
	}
	return false, 0
}

func (l *limiter[K]) wait(b bucket) time.Duration {
	return time.Duration(math.Ceil((1 - b.tokens) / l.rate * 1e9))
}

func (l *limiter[K]) store(k K, b bucket, now int64) {
	l.buckets[k] = b
	if len(l.buckets) < l.sweepAt {
		return
	}
	for key, x := range l.buckets {
		if x.tokens+float64(now-x.at)/1e9*l.rate >= l.burst {
			delete(l.buckets, key)
		}
	}
	l.sweepAt = max(1024, 2*len(l.buckets))
}

// retryAfterSecs renders a wait as whole seconds for Retry-After, at least 1.
func retryAfterSecs(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
