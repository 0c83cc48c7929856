package transport_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap/sharedtest"
	"github.com/rserpool-go/registrar/transport"
)

// Ensure an idle SCTP association holds no receive buffer (one of
// MaxMessageSize bytes each used to stay with every association after its
// first message): the buffer is taken when a message arrives and given
// back once it is delivered, or when a wait finds nothing.
func TestSCTPIdleHoldsNoRecvBuffer(t *testing.T) {
	requireSCTP(t)
	sharedtest.CheckLeaks(t, testFrames)
	a, b := listenPair(t, "sctp:127.0.0.1:0", transport.DefaultConfig())
	if _, _, err := b.Recv(ctxTimeout(t, 20*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Recv with nothing sent: %v, want context.DeadlineExceeded", err)
	}
	if transport.HoldsRecvBuffer(b) {
		t.Error("an association that waited with nothing to read holds a receive buffer, want none")
	}
	ctx := ctxTimeout(t, 10*time.Second)
	for i, size := range []int{8, 1500, 60000} {
		msg := mkMsg(size, uint32(i))
		if err := a.Send(ctx, transport.PPIDASAP, msg); err != nil {
			t.Fatal(err)
		}
		ppid, got, err := b.Recv(ctx)
		if err != nil || ppid != transport.PPIDASAP || !bytes.Equal(got, msg) {
			t.Fatalf("message of %d bytes: ppid %d, %d bytes, %v", size, ppid, len(got), err)
		}
		if transport.HoldsRecvBuffer(b) {
			t.Errorf("a message of %d bytes was delivered, but the association holds a receive buffer, want none", size)
		}
	}
}
