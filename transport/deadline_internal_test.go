package transport

import (
	"context"
	"testing"
	"time"
)

// Ensure that after stale() the next arm sets the deadline again, also
// when it is the one d believes is set: a deadline someone else left on
// the socket (the SCTP dial's) is replaced instead of failing every retry.
func TestIODeadline_StaleRearms(t *testing.T) {
	var sets []time.Time
	d := ioDeadline{set: func(dl time.Time) error { sets = append(sets, dl); return nil }}
	d.arm(context.Background(), time.Time{})()
	if len(sets) != 0 {
		t.Fatalf("arm with no deadline on a fresh ioDeadline set %v, want nothing", sets)
	}
	d.stale()
	d.arm(context.Background(), time.Time{})()
	if len(sets) != 1 || !sets[0].IsZero() {
		t.Fatalf("arm after stale set %v, want one zero (no) deadline", sets)
	}
	d.arm(context.Background(), time.Time{})()
	if len(sets) != 1 {
		t.Fatalf("a second arm with the same deadline set %v, want no new set", sets)
	}
}
