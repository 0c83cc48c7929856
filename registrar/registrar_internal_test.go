package registrar

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rserpool-go/registrar/transport"
)

// A connection that starts being served after the connections were
// closed at shutdown (a keep-alive dialed a PE in between) is closed at
// once: its reader would otherwise keep shutdown waiting until the idle
// timeout.
func TestServeConn_AfterCloseConns(t *testing.T) {
	r := &Registrar{cfg: DefaultConfig(), log: hclog.NewNullLogger(), quit: make(chan struct{}), conns: map[*asapConn]struct{}{}}
	r.quitCtx, r.quitStop = context.WithCancel(context.Background())
	r.metrics = newMetrics(r)
	r.live = newLiveness(r)
	_ = r.closeConns()
	c, peer := transport.Pipe()
	defer peer.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.serveConn(r.newConn(c))
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Error("connection still served 5s after the connections were closed")
		c.Close()
		<-done
	}
	if _, _, err := peer.Recv(context.Background()); err == nil {
		t.Error("peer received a message, want the connection closed")
	}
}

// Ensure quitContext costs no goroutine (it ran one per connection, a few
// KiB of every idle connection) and is still cancelled when shutdown
// begins.
func TestQuitContextNoGoroutine(t *testing.T) {
	r := unitRegistrar(t, nil)
	const n = 200
	before := runtime.NumGoroutine()
	ctxs := make([]context.Context, n)
	for i := range ctxs {
		var cancel context.CancelFunc
		ctxs[i], cancel = r.quitContext()
		defer cancel()
	}
	// The registrar's own goroutines come and go; n more would be these.
	if grown := runtime.NumGoroutine() - before; grown >= n/2 {
		t.Errorf("%d quit contexts added %d goroutines", n, grown)
	}
	if err := r.stopGoroutines(); err != nil {
		t.Fatal(err)
	}
	for i, ctx := range ctxs {
		if ctx.Err() == nil {
			t.Fatalf("quit context %d not cancelled when shutdown began", i)
		}
	}
}
