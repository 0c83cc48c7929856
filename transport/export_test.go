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
