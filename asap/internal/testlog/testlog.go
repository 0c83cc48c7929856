// Package testlog gives tests an hclog logger that writes to t.Log and
// drops what comes after the test ended, instead of panicking the test
// binary ("Log in goroutine after Test... has completed"): goroutines of a
// registrar run in-process, memberlist's timers among them, may log after
// the registrar stopped.
package testlog

import (
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
)

type writer struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// Logger returns a debug-level logger named name. Output stops when the
// cleanups registered before this call start: call it before starting
// what logs (in StartForTest's config hook, it outlives the registrar).
func Logger(t testing.TB, name string) hclog.Logger {
	w := &writer{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Debug, Output: w})
}
