package transport

import (
	"sync"
	"sync/atomic"
	"testing"
)

// SimulateNoSCTP makes the package behave as on a kernel without SCTP for
// the rest of the test, and forgets whether the notice was logged. Tests that
// use it must not run in parallel.
func SimulateNoSCTP(t testing.TB) {
	old := sctpSupported
	sctpSupported = func() error { return ErrNoSCTP }
	noSCTPNotice = new(sync.Once)
	t.Cleanup(func() {
		sctpSupported = old
		noSCTPNotice = new(sync.Once)
	})
}

// KernelSCTP reports the real probe's result.
func KernelSCTP() error { return probeSCTP() }

// ForcePartialDirectWrites makes Send's direct write take at most limit
// bytes and run after() before it queues the rest. Not for parallel tests.
func ForcePartialDirectWrites(t testing.TB, limit int, after func()) {
	testDirectWriteLimit, testAfterDirectWrite = limit, after
	t.Cleanup(func() { testDirectWriteLimit, testAfterDirectWrite = 0, nil })
}

// CountTLSDirectWrites counts the TLS writes made on the sending
// goroutine (not the writer's) for the rest of the test. Not for parallel
// tests.
func CountTLSDirectWrites(t testing.TB) *atomic.Int64 {
	n := new(atomic.Int64)
	testTLSDirectWrite = func() { n.Add(1) }
	t.Cleanup(func() { testTLSDirectWrite = nil })
	return n
}

// HoldsSendBuffer reports whether a TCP Conn keeps a send buffer (queued
// frames, or an empty buffer taken from the pool).
func HoldsSendBuffer(c Conn) bool {
	tc := c.(*tcpConn)
	tc.wmu.Lock()
	defer tc.wmu.Unlock()
	return tc.pending != nil
}

// AfterSCTPConnect runs f between an SCTP dial's connect and the setup of
// its connection. Not for parallel tests.
func AfterSCTPConnect(t testing.TB, f func()) {
	testAfterSCTPConnect = f
	t.Cleanup(func() { testAfterSCTPConnect = nil })
}
