// Package ratelimit holds the per-client token buckets that the ingest and
// query services share, and the rules that say which client a request is
// from (trusted proxies, one bucket per IPv6 /64).
package ratelimit

import (
	"math"
	"strconv"
	"sync"
	"time"
)

// Limiter is a set of token buckets, one per key (a client address or a
// sensor id), each refilled at rate a second and holding burst. A key whose
// bucket is full is the same as an absent one, so full buckets are swept
// away and memory follows the keys active in the last few seconds. Time is
// the caller's now, so a test can step it.
type Limiter[K comparable] struct {
	rate, burst float64 // rate 0: no limit

	mu      sync.Mutex
	buckets map[K]bucket
	sweepAt int // sweep when the map grows to this size
}

type bucket struct {
	tokens float64
	at     int64 // unix nanoseconds of the last refill
}

// New returns a limiter of rate tokens a second per key, each bucket
// holding burst (at least 1); a rate of 0 or less limits nothing. A nil
// *Limiter limits nothing either.
func New[K comparable](rate, burst float64) *Limiter[K] {
	return &Limiter[K]{rate: rate, burst: max(1, burst), buckets: map[K]bucket{}, sweepAt: 1024}
}

// refill returns k's bucket as of now; callers hold l.mu.
func (l *Limiter[K]) refill(k K, now int64) bucket {
	b, ok := l.buckets[k]
	if !ok {
		return bucket{tokens: l.burst, at: now}
	}
	b.tokens = min(l.burst, b.tokens+float64(now-b.at)/1e9*l.rate)
	b.at = now
	return b
}

// Take spends one token of k's bucket. When there is none it spends
// nothing and says how long until there is.
func (l *Limiter[K]) Take(k K, now time.Time) (bool, time.Duration) {
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

// Empty reports whether k's bucket has no token left, and how long until
// it has one, without spending any.
func (l *Limiter[K]) Empty(k K, now time.Time) (bool, time.Duration) {
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

// Spend takes n tokens from k's bucket after the fact, for a cost known
// only once the work is done (the rows of a decoded heartbeat). The bucket
// may go into debt, at most one burst deep, and Empty then reports it
// empty until the debt is paid off.
func (l *Limiter[K]) Spend(k K, n float64, now time.Time) {
	if l == nil || l.rate <= 0 || n <= 0 {
		return
	}
	ns := now.UnixNano()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.refill(k, ns)
	b.tokens = max(-l.burst, b.tokens-n)
	l.store(k, b, ns)
}

func (l *Limiter[K]) wait(b bucket) time.Duration {
	return time.Duration(math.Ceil((1 - b.tokens) / l.rate * 1e9))
}

func (l *Limiter[K]) store(k K, b bucket, now int64) {
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

// RetryAfter renders a wait as the value of a Retry-After header: whole
// seconds, at least 1.
func RetryAfter(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}
