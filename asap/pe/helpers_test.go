package pe_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/asap/pe"
	"github.com/rserpool-go/registrar/asap/sharedtest"
	"github.com/rserpool-go/registrar/registrar"
	"github.com/rserpool-go/registrar/registrar/registrartest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := sharedtest.WaitLeaks(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines leaked:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// startRegistrar runs a registrar for the test; its log stops when it
// stopped (see testlog).
func startRegistrar(t testing.TB, mod func(*registrar.Config)) *registrartest.Server {
	t.Helper()
	return registrartest.Start(t, "", mod)
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// listenServer opens a PE service endpoint on loopback TCP.
func listenServer(t testing.TB) *pe.Server {
	t.Helper()
	cfg := pe.DefaultServerConfig()
	cfg.Logger = sharedtest.Logger(t, "server")
	srv, err := pe.Listen(context.Background(), "tcp:127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// testConfig is an element config for a pool on loopback with short
// timers.
func testConfig(t testing.TB, pool string, srv *pe.Server, registrars ...string) pe.Config {
	cfg := pe.DefaultConfig()
	cfg.PoolHandle = asap.PoolHandle(pool)
	cfg.User = srv.Transport()
	cfg.Registrars = registrars
	cfg.ASAP = "tcp:127.0.0.1:0"
	cfg.RequestTimeout = time.Second
	cfg.Logger = sharedtest.Logger(t, "pe")
	return cfg
}

// newElement creates an element that is closed when the test ends.
func newElement(t testing.TB, cfg pe.Config) *pe.Element {
	t.Helper()
	el, err := pe.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { el.Close() })
	return el
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// freePort returns a loopback TCP port nobody listens on.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
