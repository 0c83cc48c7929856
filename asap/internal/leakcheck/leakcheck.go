// Package leakcheck fails tests that leave goroutines of the PE and PU
// libraries (and of the transports they open) running.
package leakcheck

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// watched are the packages whose goroutines must not outlive a test.
var watched = []string{
	"registrar/asap/pe.",
	"registrar/asap/pu.",
	"registrar/asap/internal/regclient.",
	"registrar/transport.",
}

// Leaked returns the stacks of goroutines running code of the watched
// packages.
func Leaked() string {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "leakcheck.Leaked") {
			continue
		}
		if isLibrary(g) {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

func isLibrary(g string) bool {
	for _, p := range watched {
		if strings.Contains(g, p) {
			return true
		}
	}
	return false
}

// Wait polls until no watched goroutine runs, or returns what still runs
// after d.
func Wait(d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		leaked := Leaked()
		if leaked == "" || time.Now().After(deadline) {
			return leaked
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Check fails t if watched goroutines still run once the test and its
// other cleanups are done. Call it first in a test (cleanups run last
// registered first) and only in tests that do not run in parallel.
func Check(t testing.TB) {
	t.Helper()
	t.Cleanup(func() {
		if leaked := Wait(5 * time.Second); leaked != "" {
			t.Errorf("goroutines leaked:\n%s", leaked)
		}
	})
}
