package transport_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap/sharedtest"
	"github.com/rserpool-go/registrar/transport"
	"github.com/rserpool-go/registrar/transport/tlsutil"
	"github.com/rserpool-go/registrar/transport/tlsutil/tlstest"
)

// tlsPair returns a dialled TLS connection and the one accepted for it,
// as FastConns. The accepted side sends hello before it has read
// anything, so its handshake runs in its writer goroutine (Dial waits for
// it); the dialled side has read hello when tlsPair returns.
func tlsPair(t *testing.T, cfg transport.Config) (client, server transport.FastConn) {
	t.Helper()
	ca := tlstest.New(t, "cluster")
	srv := tlstest.Store(t, ca.Registrar("registrar"))
	ctx := ctxTimeout(t, 20*time.Second)
	cfg.PPID = transport.PPIDASAP
	lcfg := cfg
	lcfg.TLS = srv.ServerConfig(tlsutil.ClientOptional)
	ln, err := transport.Listen(ctx, "tls:127.0.0.1:0", lcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	acc := make(chan transport.Conn, 1)
	go func() {
		c, err := ln.Accept(ctx)
		if err != nil {
			t.Errorf("Accept: %v", err)
			acc <- nil
			return
		}
		if sent, err := c.(transport.FastConn).TrySend(transport.PPIDASAP, asapMsg(32, 0xEE)); !sent || err != nil {
			t.Errorf("TrySend before the handshake: sent %v, %v", sent, err)
		}
		acc <- c
	}()
	dcfg := cfg
	dcfg.TLS = tlstest.Store(t, tlsutil.Files{CA: ca.File}).ClientConfig("")
	a, err := transport.Dial(ctx, "tls:"+ln.Addrs()[0].String(), dcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b := <-acc
	if b == nil {
		t.FailNow()
	}
	t.Cleanup(func() { b.Close() })
	if _, got, err := a.Recv(ctx); err != nil || !bytes.Equal(got, asapMsg(32, 0xEE)) {
		t.Fatalf("hello sent before the handshake: % x, %v", got, err)
	}
	return a.(transport.FastConn), b.(transport.FastConn)
}

// Ensure a TLS connection's FastConn methods work as over TCP: a send
// before the handshake goes out once it is done, answers held by
// TrySendMore go out together in one record, in order (the client has
// them all buffered after the first), TrySend and Send interleaved arrive
// in order, and a peer that does not read makes TrySend refuse instead of
// block, with everything accepted delivered in order.
func TestTLS_FastConn(t *testing.T) {
	sharedtest.CheckLeaks(t, testFrames)
	cfg := transport.DefaultConfig()
	cfg.WriteTimeout = 30 * time.Second
	a, b := tlsPair(t, cfg)
	ctx := ctxTimeout(t, 20*time.Second)
	// A request read by b completes b's handshake.
	if err := a.Send(ctx, transport.PPIDASAP, asapMsg(20, 1)); err != nil {
		t.Fatal(err)
	}
	if _, got, err := b.RecvInto(ctx, nil); err != nil || !bytes.Equal(got, asapMsg(20, 1)) {
		t.Fatalf("request: % x, %v", got, err)
	}

	// The writer goroutine that wrote hello may still be finishing (it
	// takes what is sent meanwhile, rightly): wait until it is idle.
	for !transport.SendIdle(b) {
		if ctx.Err() != nil {
			t.Fatal("the accepted side's writer did not become idle after writing hello")
		}
		time.Sleep(time.Millisecond)
	}
	// Pipelined answers: three held, the fourth writes all four.
	for i := byte(0); i < 3; i++ {
		if sent, err := b.TrySendMore(transport.PPIDASAP, asapMsg(100, i), true); !sent || err != nil {
			t.Fatalf("TrySendMore %d: %v, %v", i, sent, err)
		}
	}
	if sent, err := b.TrySendMore(transport.PPIDASAP, asapMsg(100, 3), false); !sent || err != nil {
		t.Fatalf("TrySendMore without more: %v, %v", sent, err)
	}
	for i := byte(0); i < 4; i++ {
		_, got, err := a.RecvInto(ctx, nil)
		if err != nil || !bytes.Equal(got, asapMsg(100, i)) {
			t.Fatalf("answer %d: % x, %v", i, got, err)
		}
		// One write, one record: the client decrypted all four at once.
		if want := i < 3; a.Buffered() != want {
			t.Errorf("after answer %d Buffered is %v, want %v", i, !want, want)
		}
	}

	// Single answers and Sends interleaved arrive in order.
	for i := byte(0); i < 50; i++ {
		var err error
		if i%3 == 0 {
			err = b.Send(ctx, transport.PPIDASAP, asapMsg(60, i))
		} else if sent, e := b.TrySend(transport.PPIDASAP, asapMsg(60, i)); !sent || e != nil {
			t.Fatalf("TrySend %d to a reading peer: sent %v, %v", i, sent, e)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := byte(0); i < 50; i++ {
		if _, got, err := a.RecvInto(ctx, nil); err != nil || !bytes.Equal(got, asapMsg(60, i)) {
			t.Fatalf("message %d: % x, %v", i, got, err)
		}
	}

	// a does not read: the kernel buffers fill, then the send queue; then
	// TrySend says no (a write on this goroutine that blocked would hang
	// here until the test's deadline).
	big := asapMsg(16000, 2)
	sent := trySendUntilRefused(t, b, big)
	buf := make([]byte, 0, 16000)
	for i := 0; i < sent; i++ {
		_, got, err := a.RecvInto(ctx, buf)
		if err != nil || !bytes.Equal(got, big) {
			t.Fatalf("message %d of %d: %d bytes, %v", i, sent, len(got), err)
		}
		buf = got
	}
	if err := b.Send(ctx, transport.PPIDASAP, asapMsg(30, 7)); err != nil {
		t.Fatal(err)
	}
	if _, got, err := a.RecvInto(context.Background(), buf); err != nil || !bytes.Equal(got, asapMsg(30, 7)) {
		t.Fatalf("after the accepted ones: % x, %v; want the next message, not the refused one", got, err)
	}
}
