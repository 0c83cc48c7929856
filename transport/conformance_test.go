package transport_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/transport"
)

// pairFunc returns two connected Conns built with cfg (cfg.PPID and cfg.Mux
// are set by the pair function as its transport needs). The test's cleanup
// closes them.
type pairFunc func(t *testing.T, cfg transport.Config) (a, b transport.Conn)

// suite describes one transport for testConn.
type suite struct {
	pair  pairFunc
	ppids []uint32 // PPIDs the transport carries
}

// mkMsg builds an n-byte message that is a well-formed ASAP/ENRP frame
// (type, flags, 16-bit length of the whole message) with seq after the
// header and a pattern after that.
func mkMsg(n int, seq uint32) []byte {
	if n < 8 {
		panic("mkMsg: n < 8")
	}
	b := make([]byte, n)
	b[0] = byte(1 + seq%14) // ASAP message types 1..14
	binary.BigEndian.PutUint16(b[2:4], uint16(n))
	binary.BigEndian.PutUint32(b[4:8], seq)
	for i := 8; i < n; i++ {
		b[i] = byte(i*7 + int(seq))
	}
	return b
}

func msgSeq(b []byte) uint32 { return binary.BigEndian.Uint32(b[4:8]) }

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func mustSend(t *testing.T, c transport.Conn, ppid uint32, msg []byte) {
	t.Helper()
	if err := c.Send(ctxTimeout(t, 10*time.Second), ppid, msg); err != nil {
		t.Fatalf("Send(ppid %d, %d bytes): %v", ppid, len(msg), err)
	}
}

func mustRecv(t *testing.T, c transport.Conn) (uint32, []byte) {
	t.Helper()
	ppid, msg, err := c.Recv(ctxTimeout(t, 10*time.Second))
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	return ppid, msg
}

// testConn runs the behaviour every Conn must have.
func testConn(t *testing.T, s suite) {
	cfg := transport.DefaultConfig()

	t.Run("RoundTrip", func(t *testing.T) {
		a, b := s.pair(t, cfg)
		sizes := []int{8, 12, 100, 1000, 4096, 4097, 20000, 65535 - 8}
		type want struct {
			ppid uint32
			msg  []byte
		}
		var wants []want
		for _, ppid := range s.ppids {
			for _, n := range sizes {
				wants = append(wants, want{ppid, mkMsg(n, uint32(len(wants)))})
			}
		}
		go func() { // the kernel may not buffer all of them: send while receiving
			for _, w := range wants {
				if err := a.Send(context.Background(), w.ppid, w.msg); err != nil {
					t.Errorf("Send(ppid %d, %d bytes): %v", w.ppid, len(w.msg), err)
					return
				}
			}
		}()
		for i, w := range wants {
			gotPPID, got := mustRecv(t, b)
			if gotPPID != w.ppid || !bytes.Equal(got, w.msg) {
				t.Fatalf("message %d: got ppid %d, %d bytes; want ppid %d, %d bytes (equal=%v)", i, gotPPID, len(got), w.ppid, len(w.msg), bytes.Equal(got, w.msg))
			}
		}
		// and back
		mustSend(t, b, s.ppids[0], mkMsg(16, 99))
		if _, got := mustRecv(t, a); msgSeq(got) != 99 {
			t.Fatalf("reply: got seq %d, want 99", msgSeq(got))
		}
	})

	t.Run("MaxSize", func(t *testing.T) {
		c := cfg
		c.MaxMessageSize = 1000
		a, b := s.pair(t, c)
		err := a.Send(context.Background(), s.ppids[0], mkMsg(1001, 1))
		if !errors.Is(err, transport.ErrMessageTooLarge) {
			t.Fatalf("Send of 1001 bytes with limit 1000: got %v, want ErrMessageTooLarge", err)
		}
		mustSend(t, a, s.ppids[0], mkMsg(1000, 2))
		if _, got := mustRecv(t, b); len(got) != 1000 {
			t.Fatalf("got %d bytes, want 1000", len(got))
		}
		if err := a.Send(context.Background(), s.ppids[0], nil); err == nil {
			t.Fatal("Send of an empty message: got nil error")
		}
	})

	t.Run("ConcurrentSenders", func(t *testing.T) {
		a, b := s.pair(t, cfg)
		const senders, per = 4, 300
		var wg sync.WaitGroup
		for g := 0; g < senders; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				for i := 0; i < per; i++ {
					n := 8 + (i*37+g)%3000
					if err := a.Send(context.Background(), s.ppids[g%len(s.ppids)], mkMsg(n, uint32(g<<16|i))); err != nil {
						t.Errorf("sender %d: %v", g, err)
						return
					}
				}
			}(g)
		}
		next := make([]int, senders)
		for k := 0; k < senders*per; k++ {
			ppid, msg := mustRecv(t, b)
			seq := msgSeq(msg)
			g, i := int(seq>>16), int(seq&0xffff)
			if g >= senders || i != next[g] {
				t.Fatalf("message %d: sender %d index %d, want index %d", k, g, i, next[g])
			}
			if want := mkMsg(8+(i*37+g)%3000, seq); !bytes.Equal(msg, want) || ppid != s.ppids[g%len(s.ppids)] {
				t.Fatalf("message %d from sender %d damaged (ppid %d)", i, g, ppid)
			}
			next[g]++
		}
		wg.Wait()
	})

	t.Run("RecvContext", func(t *testing.T) {
		a, b := s.pair(t, cfg)
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			_, _, err := b.Recv(ctx)
			errc <- err
		}()
		cancel()
		select {
		case err := <-errc:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Recv after cancel: got %v, want context.Canceled", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Recv did not return after cancel")
		}
		_, _, err := b.Recv(ctxTimeout(t, 30*time.Millisecond))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Recv with a deadline: got %v, want context.DeadlineExceeded", err)
		}
		// The connection is still usable.
		mustSend(t, a, s.ppids[0], mkMsg(64, 7))
		if _, got := mustRecv(t, b); msgSeq(got) != 7 {
			t.Fatalf("got seq %d, want 7", msgSeq(got))
		}
	})

	t.Run("DoneContext", func(t *testing.T) {
		a, b := s.pair(t, cfg)
		done, cancel := context.WithCancel(context.Background())
		cancel()
		if err := a.Send(done, s.ppids[0], mkMsg(16, 1)); !errors.Is(err, context.Canceled) {
			t.Fatalf("Send with a done ctx: got %v, want context.Canceled", err)
		}
		mustSend(t, a, s.ppids[0], mkMsg(16, 2))
		time.Sleep(10 * time.Millisecond) // let it arrive (the check holds either way)
		if _, _, err := b.Recv(done); !errors.Is(err, context.Canceled) {
			t.Fatalf("Recv with a done ctx: got %v, want context.Canceled", err)
		}
		if _, got := mustRecv(t, b); msgSeq(got) != 2 {
			t.Fatalf("got seq %d, want 2 (the message sent with a done ctx must not arrive)", msgSeq(got))
		}
	})

	t.Run("CloseUnblocksRecv", func(t *testing.T) {
		_, b := s.pair(t, cfg)
		errc := make(chan error, 1)
		go func() {
			_, _, err := b.Recv(context.Background())
			errc <- err
		}()
		time.Sleep(20 * time.Millisecond) // let Recv block (it works either way)
		if err := b.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		select {
		case err := <-errc:
			if !errors.Is(err, transport.ErrClosed) {
				t.Fatalf("Recv after Close: got %v, want ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not unblock Recv")
		}
		if err := b.Close(); err != nil {
			t.Fatalf("second Close: got %v, want nil", err)
		}
		if err := b.Send(context.Background(), s.ppids[0], mkMsg(8, 1)); !errors.Is(err, transport.ErrClosed) {
			t.Fatalf("Send after Close: got %v, want ErrClosed", err)
		}
	})

	t.Run("PeerCloseDeliversThenEOF", func(t *testing.T) {
		a, b := s.pair(t, cfg)
		for i := uint32(0); i < 10; i++ {
			mustSend(t, a, s.ppids[0], mkMsg(200, i))
		}
		if err := a.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		for i := uint32(0); i < 10; i++ {
			if _, got := mustRecv(t, b); msgSeq(got) != i {
				t.Fatalf("got seq %d, want %d", msgSeq(got), i)
			}
		}
		_, _, err := b.Recv(ctxTimeout(t, 5*time.Second))
		if !errors.Is(err, io.EOF) {
			t.Fatalf("Recv after the peer closed: got %v, want io.EOF", err)
		}
	})

	t.Run("StalledPeer", func(t *testing.T) {
		a, _ := s.pair(t, cfg)
		msg := mkMsg(60000, 1)
		start := time.Now()
		for i := 0; ; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			err := a.Send(ctx, s.ppids[0], msg)
			cancel()
			if errors.Is(err, context.DeadlineExceeded) {
				t.Logf("Send blocked after %d messages (%d KiB) and returned at its deadline", i, i*60000>>10)
				break
			}
			if err != nil {
				t.Fatalf("Send %d: %v", i, err)
			}
			if time.Since(start) > 30*time.Second {
				t.Fatal("Send never blocked on a peer that does not read")
			}
		}
	})

	t.Run("ReadTimeout", func(t *testing.T) {
		c := cfg
		c.ReadTimeout = 100 * time.Millisecond
		_, b := s.pair(t, c)
		start := time.Now()
		_, _, err := b.Recv(context.Background())
		if !errors.Is(err, transport.ErrReadTimeout) {
			t.Fatalf("Recv from a silent peer: got %v, want ErrReadTimeout", err)
		}
		if d := time.Since(start); d < 90*time.Millisecond || d > 5*time.Second {
			t.Fatalf("Recv returned after %v, want about 100ms", d)
		}
		if _, _, err := b.Recv(context.Background()); !errors.Is(err, transport.ErrReadTimeout) {
			t.Fatalf("second Recv: got %v, want the same final error", err)
		}
	})

	t.Run("Addrs", func(t *testing.T) {
		a, b := s.pair(t, cfg)
		for _, e := range []transport.Endpoint{a.LocalAddr(), a.RemoteAddr(), b.LocalAddr(), b.RemoteAddr()} {
			if e.Kind != a.Kind() || e.String() == "" {
				t.Fatalf("endpoint %+v of a %v connection: a %v->%v b %v->%v", e, a.Kind(), a.LocalAddr(), a.RemoteAddr(), b.LocalAddr(), b.RemoteAddr())
			}
		}
		if a.Kind() != b.Kind() {
			t.Fatalf("kinds differ: %v and %v", a.Kind(), b.Kind())
		}
		if a.Kind() != transport.KindPipe && (a.LocalAddr().Port != b.RemoteAddr().Port || a.RemoteAddr().Port != b.LocalAddr().Port) {
			t.Errorf("the ends disagree on the ports: a %v->%v b %v->%v", a.LocalAddr(), a.RemoteAddr(), b.LocalAddr(), b.RemoteAddr())
		}
	})
}
