package transport_test

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// TestMain runs helper modes for tests that re-execute the test binary (see
// multicast_ns_test.go) and checks, after the tests, that no goroutine of
// this package is left running.
func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	code := m.Run()
	if code == 0 {
		if leaked := waitNoLeaks(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines leaked by package transport:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// leakedGoroutines returns the stacks of goroutines running code of package
// transport (not its tests).
func leakedGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "registrar/transport.") && !strings.Contains(g, "registrar/transport_test.") &&
			!strings.Contains(g, "leakedGoroutines") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// waitNoLeaks polls until no goroutine of the package runs, or returns what
// still runs after d.
func waitNoLeaks(d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		leaked := leakedGoroutines()
		if leaked == "" || time.Now().After(deadline) {
			return leaked
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkLeaks fails t when goroutines of package transport outlive the test.
// Use it in tests that do not run in parallel.
func checkLeaks(t *testing.T) {
	t.Helper()
	t.Cleanup(func() {
		if leaked := waitNoLeaks(3 * time.Second); leaked != "" {
			t.Errorf("goroutines leaked:\n%s", leaked)
		}
	})
}

// logBuffer collects log output of a test; it also forwards every line to
// t.Log while the test runs, so logs show for failures only.
type logBuffer struct {
	t    *testing.T
	mu   sync.Mutex
	buf  bytes.Buffer
	done bool
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if !l.done {
		l.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// waitFor polls cond until it holds or d passes.
func (l *logBuffer) waitFor(d time.Duration, substr string) bool {
	deadline := time.Now().Add(d)
	for !strings.Contains(l.String(), substr) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// testLogger returns an hclog logger writing to t.Log and to the returned
// buffer.
func testLogger(t *testing.T) (hclog.Logger, *logBuffer) {
	lb := &logBuffer{t: t}
	t.Cleanup(func() {
		lb.mu.Lock()
		lb.done = true
		lb.mu.Unlock()
	})
	return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Output: lb, Level: hclog.Trace}), lb
}
