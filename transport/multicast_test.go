package transport_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap/sharedtest"
	"github.com/rserpool-go/registrar/transport"
)

func TestParseMulticastSpec(t *testing.T) {
	for _, in := range []string{transport.DefaultASAPAnnounce, transport.DefaultENRPPresence, "[ff15::50]:3863", "off"} {
		sp, err := transport.ParseMulticastSpec(in)
		if err != nil || sp.String() != in {
			t.Errorf("ParseMulticastSpec(%q): got %v, %v", in, sp, err)
		}
	}
	for _, tc := range []struct{ in, says string }{
		{"10.0.0.1:3863", "not a multicast address"},
		{"239.0.0.50", "want \"off\" or group:port"},
		{"239.0.0.50:0", "port 0"},
		{"on", "want \"off\""},
	} {
		if _, err := transport.ParseMulticastSpec(tc.in); !errors.Is(err, transport.ErrBadSpec) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("ParseMulticastSpec(%q): got %v, want ErrBadSpec saying %q", tc.in, err, tc.says)
		}
	}
	c := transport.DefaultMulticastConfig()
	c.TTL, c.MaxDatagramSize = 256, 0
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "TTL 256") || !strings.Contains(err.Error(), "MaxDatagramSize 0") {
		t.Errorf("Validate: got %v, want errors naming TTL and MaxDatagramSize", err)
	}
}

func TestMulticastOff(t *testing.T) {
	m, err := transport.OpenMulticast(context.Background(), "off", transport.DefaultMulticastConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Enabled() {
		t.Fatal("Enabled: got true for \"off\"")
	}
	if err := m.Send(context.Background(), []byte("x")); err != nil {
		t.Fatalf("Send when off: got %v, want nil (dropped)", err)
	}
	if _, _, err := m.Recv(context.Background()); !errors.Is(err, transport.ErrMulticastOff) {
		t.Fatalf("Recv when off: got %v, want ErrMulticastOff", err)
	}
}

// TestMulticastLoopback joins and sends on lo with TTL 0, so nothing leaves
// this host; Linux loops the datagram back to the listener. (IPv6 multicast
// on lo is often unroutable: TestMulticastNamespaces covers IPv6.)
func TestMulticastLoopback(t *testing.T) {
	sharedtest.CheckLeaks(t, testFrames)
	port := 20000 + os.Getpid()%20000
	for _, group := range []string{fmt.Sprintf("239.0.0.77:%d", port), fmt.Sprintf("[ff15::77]:%d", port)} {
		t.Run(group, func(t *testing.T) {
			ctx := ctxTimeout(t, 10*time.Second)
			cfg := transport.DefaultMulticastConfig()
			cfg.TTL = 0          // this host only
			cfg.Interface = "lo" // never join or send on an interface with a network behind it
			cfg.Logger, _ = sharedtest.BufferLogger(t, t.Name())
			rx, err := transport.OpenMulticast(ctx, group, cfg)
			if err != nil {
				t.Skipf("cannot join %s here: %v", group, err)
			}
			defer rx.Close()
			scfg := cfg
			scfg.SendOnly = true
			tx, err := transport.OpenMulticast(ctx, group, scfg)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Close()
			if err := tx.Send(ctx, []byte("announce")); err != nil {
				if strings.Contains(err.Error(), "unreachable") || strings.Contains(err.Error(), "no such device") {
					t.Skipf("no multicast on lo here (TestMulticastNamespaces covers it): %v", err)
				}
				t.Fatal(err)
			}
			payload, src, err := rx.Recv(ctx)
			if err != nil {
				t.Fatalf("Recv: %v", err)
			}
			if string(payload) != "announce" || !src.IsValid() || src.Port() != tx.LocalAddr().(*net.UDPAddr).AddrPort().Port() {
				t.Fatalf("got %q from %v, want \"announce\" from port %v", payload, src, tx.LocalAddr())
			}
			// Recv honours ctx and Close.
			if _, _, err := rx.Recv(ctxTimeout(t, 20*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Recv with a deadline: got %v, want context.DeadlineExceeded", err)
			}
			rx.Close()
			if _, _, err := rx.Recv(ctx); !errors.Is(err, transport.ErrClosed) {
				t.Fatalf("Recv after Close: got %v, want ErrClosed", err)
			}
		})
	}
}
