package transport_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap/sharedtest"
	"github.com/rserpool-go/registrar/transport"
)

// startPoller runs a Poller until the test ends.
func startPoller(t *testing.T) *transport.Poller {
	t.Helper()
	p, err := transport.NewPoller()
	if err != nil {
		t.Fatalf("NewPoller: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Poller.Run: %v", err)
		}
	})
	return p
}

// parkIdle makes c's Recv, waiting with nothing received, return
// ErrParked, and parks c on p; the returned channel gets a value when
// c is woken.
func parkIdle(t *testing.T, p *transport.Poller, c transport.Conn) <-chan struct{} {
	t.Helper()
	pc, ok := c.(transport.Parker)
	if !ok {
		t.Fatal("a TCP connection is not a Parker")
	}
	got := make(chan error, 1)
	go func() {
		_, _, err := c.Recv(context.Background())
		got <- err
	}()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for done := false; !done; {
		pc.RequestPark()
		select {
		case err := <-got:
			if !errors.Is(err, transport.ErrParked) {
				t.Fatalf("Recv after RequestPark: %v, want ErrParked", err)
			}
			done = true
		case <-tick.C:
		case <-deadline:
			t.Fatal("RequestPark did not end a waiting Recv within 10 s")
		}
	}
	if transport.HoldsReadBuffer(c) {
		t.Error("a connection that returned ErrParked holds a receive buffer")
	}
	woken := make(chan struct{}, 2)
	if !pc.Park(p, func() { woken <- struct{}{} }) {
		t.Fatal("Park of an idle TCP connection: false, want true")
	}
	return woken
}

func waitWoken(t *testing.T, woken <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-woken:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: the parked connection was not woken within 10 s", what)
	}
}

// Ensure a parked TCP connection is woken once when a message arrives, and
// its Recv then returns the message; it parks again after that.
func TestTCPPark_WokenByMessage(t *testing.T) {
	sharedtest.CheckLeaks(t, testFrames)
	p := startPoller(t)
	a, b := tcpPair("tcp:127.0.0.1:0", false)(t, transport.DefaultConfig())
	ctx := ctxTimeout(t, 10*time.Second)
	for i := range 3 {
		woken := parkIdle(t, p, b)
		if n := p.Parked(); n != 1 {
			t.Fatalf("round %d: Parked() = %d, want 1", i, n)
		}
		select {
		case <-woken:
			t.Fatalf("round %d: woken with nothing sent", i)
		case <-time.After(50 * time.Millisecond):
		}
		msg := mkMsg(40, uint32(i))
		if err := a.Send(ctx, transport.PPIDASAP, msg); err != nil {
			t.Fatal(err)
		}
		waitWoken(t, woken, "a message sent")
		if _, got := mustRecv(t, b); !bytes.Equal(got, msg) {
			t.Fatalf("round %d: after the wake Recv got % x, want % x", i, got, msg)
		}
		if n := p.Parked(); n != 0 {
			t.Fatalf("round %d: Parked() = %d after the wake, want 0", i, n)
		}
		if len(woken) != 0 {
			t.Fatalf("round %d: woken twice", i)
		}
	}
}

// Ensure closing a parked connection, from this side or the peer's, wakes
// it and its Recv reports the end; a connection with part of a message
// buffered does not park.
func TestTCPPark_Close(t *testing.T) {
	sharedtest.CheckLeaks(t, testFrames)
	p := startPoller(t)
	a, b := tcpPair("tcp:127.0.0.1:0", false)(t, transport.DefaultConfig())
	woken := parkIdle(t, p, b)
	b.Close()
	waitWoken(t, woken, "closed by this side")
	if _, _, err := b.Recv(ctxTimeout(t, 5*time.Second)); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Recv after Close of a parked connection: %v, want ErrClosed", err)
	}

	a2, b2 := tcpPair("tcp:127.0.0.1:0", false)(t, transport.DefaultConfig())
	woken = parkIdle(t, p, b2)
	a2.Close()
	waitWoken(t, woken, "closed by the peer")
	if _, _, err := b2.Recv(ctxTimeout(t, 5*time.Second)); !errors.Is(err, io.EOF) {
		t.Fatalf("Recv after the peer closed a parked connection: %v, want EOF", err)
	}
	_ = a

	cfg, _ := asapCfg(t)
	raw, c := rawPeer(t, cfg)
	msg := mkMsg(100, 1)
	if _, err := raw.Write(msg[:30]); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !transport.HoldsReadBuffer(c) {
		if time.Now().After(deadline) {
			t.Fatal("30 bytes written, but the connection took no receive buffer within 10 s")
		}
		c.(transport.Parker).RequestPark()
		if _, _, err := c.Recv(ctxTimeout(t, 20*time.Millisecond)); errors.Is(err, transport.ErrParked) {
			continue // asked before the bytes arrived
		} else if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Recv with part of a message: %v", err)
		}
	}
	c.(transport.Parker).RequestPark()
	if _, _, err := c.Recv(ctxTimeout(t, 20*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Recv after RequestPark with part of a message buffered: %v, want to go on waiting (DeadlineExceeded)", err)
	}
	if c.(transport.Parker).Park(p, func() {}) {
		t.Fatal("Park with part of a message buffered: true, want false")
	}
	if _, err := raw.Write(msg[30:]); err != nil {
		t.Fatal(err)
	}
	if _, got := mustRecv(t, c); !bytes.Equal(got, msg) {
		t.Fatalf("got % x, want % x", got, msg)
	}
}

// Ensure a parked connection's read timeout still closes it: the poller
// wakes it and its Recv reports ErrReadTimeout.
func TestTCPPark_ReadTimeout(t *testing.T) {
	sharedtest.CheckLeaks(t, testFrames)
	p := startPoller(t)
	cfg := transport.DefaultConfig()
	cfg.ReadTimeout = 300 * time.Millisecond
	_, b := tcpPair("tcp:127.0.0.1:0", false)(t, cfg)
	start := time.Now()
	woken := parkIdle(t, p, b)
	waitWoken(t, woken, "read timeout")
	if _, _, err := b.Recv(ctxTimeout(t, 5*time.Second)); !errors.Is(err, transport.ErrReadTimeout) {
		t.Fatalf("Recv after the read timeout passed while parked: %v, want ErrReadTimeout", err)
	}
	if el := time.Since(start); el < cfg.ReadTimeout {
		t.Fatalf("closed as idle after %v, before its read timeout %v", el, cfg.ReadTimeout)
	}
}

// Ensure the poller's end wakes every parked connection, which then reads
// as before, and refuses to park more.
func TestTCPPark_PollerStops(t *testing.T) {
	sharedtest.CheckLeaks(t, testFrames)
	p, err := transport.NewPoller()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	a, b := tcpPair("tcp:127.0.0.1:0", false)(t, transport.DefaultConfig())
	woken := parkIdle(t, p, b)
	cancel()
	waitWoken(t, woken, "poller stopped")
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if b.(transport.Parker).Park(p, func() {}) {
		t.Fatal("Park on a stopped poller: true, want false")
	}
	msg := mkMsg(40, 9)
	if err := a.Send(ctxTimeout(t, 5*time.Second), transport.PPIDASAP, msg); err != nil {
		t.Fatal(err)
	}
	if _, got := mustRecv(t, b); !bytes.Equal(got, msg) {
		t.Fatalf("got % x, want % x", got, msg)
	}
}
