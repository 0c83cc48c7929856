package registrar

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// This file holds test helpers other packages use to run a real registrar
// in-process (the pattern of raft's testing.go). They are not for
// production use.

// TestLogger sends log output to t.Log, so it shows only for failed
// tests. It goes quiet when the test ends (goroutines of memberlist and
// raft may log a little later; t.Log would panic then).
func TestLogger(t testing.TB, name string) hclog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Debug, Output: w})
}

type testWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// TestServer is a registrar running in-process for a test.
type TestServer struct {
	*Registrar
	Dir    string
	cancel context.CancelFunc
	done   chan error
	t      testing.TB
}

// StartForTest runs a registrar from DefaultTestConfig (loopback, free
// ports, TCP, short timers, no fsync) in dir (a new temporary directory
// when empty), after mod changed the config, and waits until it is ready.
// It is stopped when the test ends, or earlier with Stop.
func StartForTest(t testing.TB, dir string, mod func(*Config)) *TestServer {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	cfg := DefaultTestConfig(dir)
	cfg.Logger = TestLogger(t, "registrar")
	if mod != nil {
		mod(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &TestServer{Registrar: r, Dir: dir, cancel: cancel, done: make(chan error, 1), t: t}
	go func() { ts.done <- r.Run(ctx) }()
	select {
	case <-r.Ready():
	case err := <-ts.done:
		cancel()
		t.Fatalf("registrar stopped before it was ready: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("registrar not ready after 30s")
	}
	t.Cleanup(ts.Stop)
	return ts
}

// ASAPAddr is the registrar's ASAP address as a transport spec
// ("tcp:127.0.0.1:port").
func (ts *TestServer) ASAPAddr() string {
	a := ts.ASAPAddrs()[0]
	return a.Network() + ":" + a.String()
}

// Stop shuts the registrar down and waits for Run to return. Idempotent.
func (ts *TestServer) Stop() {
	ts.cancel()
	select {
	case err, ok := <-ts.done:
		if ok && err != nil {
			ts.t.Errorf("registrar Run: %v", err)
		}
		if ok {
			close(ts.done)
		}
	case <-time.After(30 * time.Second):
		ts.t.Error("registrar did not stop within 30s")
	}
}

// Crash stops the registrar without leaving the cluster (what the others
// see of a killed process: it stops answering). Idempotent.
func (ts *TestServer) Crash() {
	ts.Stop()
}
