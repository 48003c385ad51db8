package sleep

import (
	"context"
	"testing"
	"time"
)

// A live context sleeps the whole time and says so.
func TestSleepsWholeTime(t *testing.T) {
	t0 := time.Now()
	if !For(context.Background(), 50*time.Millisecond) {
		t.Fatal("For with a live context returned false")
	}
	if d := time.Since(t0); d < 50*time.Millisecond {
		t.Errorf("For(50ms) returned after %v", d)
	}
	if !Until(context.Background(), time.Now().Add(-time.Second)) {
		t.Error("Until a past time with a live context returned false")
	}
}

// A context that ends cuts the sleep short and says so; one already
// ended returns false at once, even for a time already past.
func TestEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	t0 := time.Now()
	if Until(ctx, time.Now().Add(10*time.Second)) {
		t.Fatal("Until returned true although its context ended")
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("Until took %v to see its context end", d)
	}
	if For(ctx, time.Hour) || Until(ctx, time.Now().Add(-time.Second)) {
		t.Error("an ended context slept or said it was alive")
	}
}
