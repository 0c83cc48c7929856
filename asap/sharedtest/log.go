package sharedtest

import (
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// Logger returns a debug-level logger named name that writes to t.Log, so
// logs show only for failed tests. Output stops when the cleanups
// registered before this call start, instead of panicking the test binary
// ("Log in goroutine after Test... has completed"): goroutines of a
// registrar run in-process, memberlist's timers among them, may log after
// the registrar stopped. Call it before starting what logs.
func Logger(t testing.TB, name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Debug, Output: newTee(t, nil)})
}

// BufferLogger returns a trace-level logger named name that writes to
// the returned Buffer, for tests that check what was logged, and to t.Log
// like Logger.
func BufferLogger(t testing.TB, name string) (hclog.Logger, *Buffer) {
	b := &Buffer{}
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Trace, Output: newTee(t, b)}), b
}

// tee writes to t.Log until the test ends, and to buf (if set) always.
type tee struct {
	t    testing.TB
	buf  *Buffer
	mu   sync.Mutex
	done bool
}

func newTee(t testing.TB, buf *Buffer) *tee {
	w := &tee{t: t, buf: buf}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return w
}

func (w *tee) Write(p []byte) (int, error) {
	if w.buf != nil {
		_, _ = w.buf.Write(p)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}
