// Package sleep waits for a time or a duration unless a context ends
// first, for test loops that pace faults and retries and must stop with
// the test.
package sleep

import (
	"context"
	"time"
)

// Until sleeps until at and reports whether ctx is still alive: false as
// soon as ctx ends. A time already past returns at once, with ctx's state.
func Until(ctx context.Context, at time.Time) bool {
	d := time.Until(at)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// For sleeps d and reports whether ctx is still alive (Until now+d).
func For(ctx context.Context, d time.Duration) bool {
	return Until(ctx, time.Now().Add(d))
}
