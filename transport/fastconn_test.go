package transport_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap/sharedtest"
	"github.com/rserpool-go/registrar/transport"
)

// asapMsg is an ASAP-framed message of size bytes carrying n.
func asapMsg(size int, n byte) []byte {
	m := make([]byte, size)
	m[0] = 5 // a handle resolution header
	binary.BigEndian.PutUint16(m[2:], uint16(size))
	for i := 4; i < size; i++ {
		m[i] = n + byte(i)
	}
	return m
}

// Ensure a TCP connection's FastConn methods carry messages as Send and
// Recv do, RecvInto reuses the caller's buffer (no allocation per message
// on either side once it is large enough), and TrySend refuses, sending
// nothing, when the send queue is full instead of waiting.
func TestTCP_FastConn(t *testing.T) {
	sharedtest.CheckLeaks(t, testFrames)
	a, b := tcpPair("tcp:127.0.0.1:0", false)(t, transport.DefaultConfig())
	fa, ok := a.(transport.FastConn)
	fb, ok2 := b.(transport.FastConn)
	if !ok || !ok2 {
		t.Fatal("a TCP connection is not a FastConn")
	}
	ctx := ctxTimeout(t, 20*time.Second)
	msg := asapMsg(64, 1)
	buf := make([]byte, 0, 128)
	allocs := testing.AllocsPerRun(200, func() {
		if sent, err := fa.TrySend(transport.PPIDASAP, msg); !sent || err != nil {
			t.Fatalf("TrySend to a reading peer: sent %v, %v", sent, err)
		}
		// No cancellable context: one costs a hook per call (the
		// registrar reads without one).
		_, got, err := fb.RecvInto(context.Background(), buf)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("RecvInto: % x, %v; want % x", got, err, msg)
		}
		buf = got
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per TrySend and RecvInto, want 0", allocs)
	}

	// b does not read: the kernel buffers fill, then the send queue; then
	// TrySend says no.
	big := asapMsg(16000, 2)
	sent := trySendUntilRefused(t, fa, big)
	// Everything accepted arrives, nothing of the refused one.
	for i := 0; i < sent; i++ {
		_, got, err := fb.RecvInto(ctx, buf)
		if err != nil || !bytes.Equal(got, big) {
			t.Fatalf("message %d of %d: %d bytes, %v", i, sent, len(got), err)
		}
		buf = got
	}
	if err := a.Send(ctx, transport.PPIDASAP, msg); err != nil {
		t.Fatal(err)
	}
	if _, got, err := fb.RecvInto(ctx, buf); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("after the accepted ones: % x, %v; want the next message, not the refused one", got, err)
	}
}

// Ensure TrySendMore holds messages until a call without more (or Flush)
// and then writes them together, in order, and Buffered tells whether a
// whole message waits in the receive buffer.
func TestTCP_TrySendMoreAndBuffered(t *testing.T) {
	sharedtest.CheckLeaks(t, testFrames)
	a, b := tcpPair("tcp:127.0.0.1:0", false)(t, transport.DefaultConfig())
	fa, fb := a.(transport.FastConn), b.(transport.FastConn)
	ctx := ctxTimeout(t, 20*time.Second)
	for i := byte(0); i < 3; i++ {
		if sent, err := fa.TrySendMore(transport.PPIDASAP, asapMsg(40, i), true); !sent || err != nil {
			t.Fatalf("TrySendMore %d: %v, %v", i, sent, err)
		}
	}
	// Held: nothing arrives (a short read deadline shows it).
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	if _, got, err := fb.RecvInto(short, nil); err == nil {
		t.Fatalf("a held message arrived: % x", got)
	}
	cancel()
	if sent, err := fa.TrySendMore(transport.PPIDASAP, asapMsg(40, 3), false); !sent || err != nil {
		t.Fatalf("TrySendMore without more: %v, %v", sent, err)
	}
	for i := byte(0); i < 4; i++ {
		_, got, err := fb.RecvInto(ctx, nil)
		if err != nil || !bytes.Equal(got, asapMsg(40, i)) {
			t.Fatalf("message %d: % x, %v", i, got, err)
		}
		// The four came in one write, so all four were read at once: the
		// ones after the first wait in the buffer.
		if want := i < 3; fb.Buffered() != want {
			t.Errorf("after message %d Buffered is %v, want %v", i, !want, want)
		}
	}
	if sent, err := fa.TrySendMore(transport.PPIDASAP, asapMsg(40, 9), true); !sent || err != nil {
		t.Fatal(sent, err)
	}
	if err := fa.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, got, err := fb.RecvInto(ctx, nil); err != nil || !bytes.Equal(got, asapMsg(40, 9)) {
		t.Fatalf("after Flush: % x, %v", got, err)
	}
}

// trySendUntilRefused sends msg with TrySend to a peer that does not
// read until TrySend refuses (the kernel buffers and the send queue are
// full), and returns how many it accepted; it fails the test if none is
// ever refused.
func trySendUntilRefused(t *testing.T, c transport.TrySender, msg []byte) int {
	t.Helper()
	sent := 0
	for i := 0; i < 100000; i++ {
		ok, err := c.TrySend(transport.PPIDASAP, msg)
		if err != nil {
			t.Fatalf("TrySend %d: %v", i, err)
		}
		if !ok {
			return sent
		}
		sent++
	}
	t.Fatalf("TrySend accepted %d messages of %d bytes to a peer that does not read", sent, len(msg))
	return sent
}
