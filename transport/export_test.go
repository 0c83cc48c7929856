package transport

import (
	"sync"
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

// SendIdle reports whether a TCP Conn has nothing queued and nothing being
// written (its writer goroutine is idle).
func SendIdle(c Conn) bool {
	tc := c.(*tcpConn)
	tc.wmu.Lock()
	defer tc.wmu.Unlock()
	return !tc.writing && (tc.pending == nil || len(*tc.pending) == 0)
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

// HoldsReadBuffer reports whether a TCP Conn keeps a receive buffer. Call
// it only while no Recv is in progress.
func HoldsReadBuffer(c Conn) bool {
	return c.(*tcpConn).rbuf != nil
}

// WriterStarted reports whether a TCP Conn has started its writer goroutine.
func WriterStarted(c Conn) bool {
	return c.(*tcpConn).wup.Load()
}
