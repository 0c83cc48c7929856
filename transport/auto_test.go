package transport_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap/sharedtest"
	"github.com/rserpool-go/registrar/transport"
)

const noSCTPMessage = "sctp: kernel has no SCTP support (protocol not supported); use tcp: or an auto address"

// TestAutoWithoutKernelSupport simulates a kernel without SCTP: auto
// addresses use TCP and say so once per process; explicit sctp: fails.
func TestAutoWithoutKernelSupport(t *testing.T) {
	sharedtest.CheckLeaks(t, testFrames)
	transport.SimulateNoSCTP(t)
	cfg, lb := asapCfg(t)
	ctx := ctxTimeout(t, 10*time.Second)
	for i := 0; i < 2; i++ {
		l, err := transport.Listen(ctx, "127.0.0.1:0", cfg)
		if err != nil {
			t.Fatal(err)
		}
		if addrs := l.Addrs(); len(addrs) != 1 {
			t.Fatalf("auto listener without SCTP: Addrs %v, want one TCP address", addrs)
		} else if addrs[0].Kind != transport.KindTCP {
			t.Fatalf("auto listener without SCTP: Addrs %v (kind %v), want a TCP address", addrs, addrs[0].Kind)
		}
		c, err := transport.Dial(ctx, l.Addrs()[0].String(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		s, err := l.Accept(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c.Kind() != transport.KindTCP || s.Kind() != transport.KindTCP {
			t.Fatalf("kinds %v/%v, want tcp", c.Kind(), s.Kind())
		}
		c.Close()
		s.Close()
		l.Close()
	}
	if n := strings.Count(lb.String(), "no SCTP in this kernel"); n != 1 {
		t.Errorf("the no-SCTP notice was logged %d times, want once; log:\n%s", n, lb)
	}
	if _, err := transport.Listen(ctx, "sctp:127.0.0.1:0", cfg); !errors.Is(err, transport.ErrNoSCTP) || !strings.Contains(err.Error(), noSCTPMessage) {
		t.Errorf("Listen sctp: got %v, want ErrNoSCTP saying %q", err, noSCTPMessage)
	}
	if _, err := transport.Dial(ctx, "sctp:127.0.0.1:3863", cfg); !errors.Is(err, transport.ErrNoSCTP) {
		t.Errorf("Dial sctp: got %v, want ErrNoSCTP", err)
	}
}

// TestKernelWithoutSctp checks the real probe on a kernel without SCTP (this
// project's development machines); on one with SCTP it has nothing to do.
func TestKernelWithoutSctp(t *testing.T) {
	if transport.KernelSCTP() == nil {
		t.Skip("this kernel has SCTP; TestSCTP* cover it")
	}
	if err := transport.KernelSCTP(); !errors.Is(err, transport.ErrNoSCTP) {
		t.Fatalf("probe: got %v, want ErrNoSCTP", err)
	}
	cfg, _ := asapCfg(t)
	_, err := transport.Listen(context.Background(), "sctp:127.0.0.1:0", cfg)
	if !errors.Is(err, transport.ErrNoSCTP) || !strings.Contains(err.Error(), noSCTPMessage) {
		t.Fatalf("Listen sctp: got %v, want %q", err, noSCTPMessage)
	}
	l, err := transport.Listen(context.Background(), "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatalf("auto Listen: %v", err)
	}
	l.Close()
}
