package registrar

import (
	"context"
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
