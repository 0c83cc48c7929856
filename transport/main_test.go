package transport_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap/sharedtest"
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
		if leaked := sharedtest.WaitLeaks(5*time.Second, testFrames); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines leaked by package transport:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// testFrames marks the stacks of this package's tests, whose goroutines
// are not leaks of the transport.
const testFrames = "registrar/transport_test."
