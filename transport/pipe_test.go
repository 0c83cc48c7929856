package transport_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap/sharedtest"
	"github.com/rserpool-go/registrar/transport"
)

func pipePair(t *testing.T, cfg transport.Config) (transport.Conn, transport.Conn) {
	a, b, err := transport.NewPipe(cfg, cfg)
	if err != nil {
		t.Fatalf("NewPipe: %v", err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func memPair(t *testing.T, cfg transport.Config) (transport.Conn, transport.Conn) {
	n := transport.NewMemNetwork()
	ctx := ctxTimeout(t, 10*time.Second)
	l, err := n.Listen(ctx, "registrar:0", cfg)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	acc := make(chan transport.Conn, 1)
	go func() {
		c, err := l.Accept(ctx)
		if err != nil {
			t.Errorf("Accept: %v", err)
		}
		acc <- c
	}()
	a, err := n.Dial(ctx, l.Addrs()[0].String(), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	b := <-acc
	if b == nil {
		t.FailNow()
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestPipeConn(t *testing.T) {
	sharedtest.CheckLeaks(t, testFrames)
	testConn(t, suite{pair: pipePair, ppids: []uint32{transport.PPIDASAP, transport.PPIDENRP, 47}})
}

func TestMemNetworkConn(t *testing.T) {
	sharedtest.CheckLeaks(t, testFrames)
	testConn(t, suite{pair: memPair, ppids: []uint32{transport.PPIDASAP, transport.PPIDENRP, 0}})
}

func TestPipe_DefaultsAndKind(t *testing.T) {
	a, b := transport.Pipe()
	defer a.Close()
	defer b.Close()
	if a.Kind() != transport.KindPipe || a.Kind().String() != "pipe" {
		t.Fatalf("Kind: got %v, want pipe", a.Kind())
	}
	msg := []byte("payload is not framed on a pipe")
	mustSend(t, a, 99, msg)
	if ppid, got := mustRecv(t, b); ppid != 99 || string(got) != string(msg) {
		t.Fatalf("got %d %q", ppid, got)
	}
	msg[0] = 'X' // Send copied it
	mustSend(t, a, 99, []byte("x"))
	if _, got := mustRecv(t, b); string(got) != "x" {
		t.Fatalf("got %q", got)
	}
}

func TestPipe_ReceiverLimit(t *testing.T) {
	big := transport.DefaultConfig()
	small := transport.DefaultConfig()
	small.MaxMessageSize = 100
	small.Logger, _ = sharedtest.BufferLogger(t, t.Name())
	a, b, err := transport.NewPipe(big, small)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	mustSend(t, a, 1, make([]byte, 101))
	if _, _, err := b.Recv(context.Background()); !errors.Is(err, transport.ErrMessageTooLarge) {
		t.Fatalf("Recv of 101 bytes with limit 100: got %v, want ErrMessageTooLarge", err)
	}
	if err := a.Send(context.Background(), 1, []byte{1}); err == nil {
		t.Fatal("Send after the receiver closed: got nil error")
	}
}

func TestMemNetwork(t *testing.T) {
	sharedtest.CheckLeaks(t, testFrames)
	n := transport.NewMemNetwork()
	var _ transport.Network = n
	ctx := ctxTimeout(t, 10*time.Second)
	cfg := transport.DefaultConfig()
	if _, err := n.Dial(ctx, "nobody:1", cfg); !errors.Is(err, transport.ErrConnRefused) {
		t.Fatalf("Dial without a listener: got %v, want ErrConnRefused", err)
	}
	l, err := n.Listen(ctx, "pr-a:3863", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Listen(ctx, "pr-a:3863", cfg); err == nil {
		t.Fatal("second Listen on the same name: got nil error")
	}
	pe := cfg
	pe.LocalAddrs = []netip.Addr{netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("::ffff:10.1.0.2")}
	go func() {
		c, err := n.Dial(ctx, "pr-a:3863", pe)
		if err != nil {
			t.Errorf("Dial: %v", err)
			return
		}
		c.Close()
	}()
	s, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.PeerAddrs(); len(got) != 2 || got[0].String() != "10.1.0.1" || got[1].String() != "10.1.0.2" {
		t.Fatalf("PeerAddrs: got %v, want [10.1.0.1 10.1.0.2]", got)
	}
	if s.LocalAddr().String() != "pr-a:3863" {
		t.Fatalf("LocalAddr: got %v", s.LocalAddr())
	}
	l.Close()
	if _, err := l.Accept(ctx); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Accept after Close: got %v, want ErrClosed", err)
	}
	if _, err := n.Dial(ctx, "pr-a:3863", cfg); !errors.Is(err, transport.ErrConnRefused) {
		t.Fatalf("Dial after the listener closed: got %v, want ErrConnRefused", err)
	}
	// The name is free again.
	l2, err := n.Listen(ctx, "pr-a:3863", cfg)
	if err != nil {
		t.Fatal(err)
	}
	l2.Close()
}
