package sharedtest

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// Watched are the packages whose goroutines must not outlive a test: the
// PE and PU libraries and the transports they open.
var Watched = []string{
	"registrar/asap/pe.",
	"registrar/asap/pu.",
	"registrar/asap/internal/regclient.",
	"registrar/transport.",
}

// Leaked returns the stacks of goroutines running code of the Watched
// packages, except those whose stack contains one of ignore (a test's own
// goroutines: "registrar/transport_test.").
func Leaked(ignore ...string) string {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "sharedtest.Leaked") || containsAny(g, ignore) {
			continue
		}
		if containsAny(g, Watched) {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

func containsAny(s string, subs []string) bool {
	for _, p := range subs {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

// WaitLeaks polls until no watched goroutine runs (see Leaked), or
// returns what still runs after d.
func WaitLeaks(d time.Duration, ignore ...string) string {
	deadline := time.Now().Add(d)
	for {
		leaked := Leaked(ignore...)
		if leaked == "" || time.Now().After(deadline) {
			return leaked
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// CheckLeaks fails t if watched goroutines still run 5 s after the test
// and its other cleanups are done. Call it first in a test (cleanups run
// last registered first) and only in tests that do not run in parallel.
func CheckLeaks(t testing.TB, ignore ...string) {
	t.Helper()
	t.Cleanup(func() {
		if leaked := WaitLeaks(5*time.Second, ignore...); leaked != "" {
			t.Errorf("goroutines leaked:\n%s", leaked)
		}
	})
}
