package transport_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap/sharedtest"
	"github.com/rserpool-go/registrar/transport"
)

// exchange sends a few (minimal ASAP) messages back and forth so the kernel has
// round-trip samples.
func exchange(t *testing.T, a, b transport.Conn) {
	t.Helper()
	ctx := ctxTimeout(t, 10*time.Second)
	for i := 0; i < 5; i++ {
		if err := a.Send(ctx, transport.PPIDASAP, []byte{0x05, 0, 0, 4}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := b.Recv(ctx); err != nil {
			t.Fatal(err)
		}
		if err := b.Send(ctx, transport.PPIDASAP, []byte{0x06, 0, 0, 4}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := a.Recv(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// Ensure that a TCP connection reports the kernel's round-trip time
// (TCP_INFO): positive after traffic, far below a second on loopback,
// and none once closed; a pipe has none.
func TestRTT_TCP(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("TCP_INFO is read on Linux only")
	}
	cfg := transport.DefaultConfig()
	cfg.PPID = transport.PPIDASAP
	a, b := listenPair(t, "tcp:127.0.0.1:0", cfg)
	exchange(t, a, b)
	rtt, ok := transport.RTT(a)
	if !ok || rtt <= 0 || rtt > time.Second {
		t.Errorf("RTT of a loopback TCP connection = %v, %v; want a positive value below 1s", rtt, ok)
	}
	if rtt, ok := transport.RTT(b); !ok || rtt <= 0 {
		t.Errorf("RTT of the accepted side = %v, %v; want a positive value", rtt, ok)
	}
	p, q := transport.Pipe()
	defer p.Close()
	defer q.Close()
	if rtt, ok := transport.RTT(p); ok {
		t.Errorf("RTT of a pipe = %v, true; want none", rtt)
	}
}

// TestSCTPRTT: an SCTP association reports its primary path's SRTT
// (SCTP_STATUS): known after traffic, below a second in the lab (a
// misread status would give a value such as the congestion window).
func TestSCTPRTT(t *testing.T) {
	requireSCTP(t)
	sharedtest.CheckLeaks(t, testFrames)
	a, b := listenPair(t, "sctp:127.0.0.1:0", transport.DefaultConfig())
	exchange(t, a, b)
	for _, c := range []transport.Conn{a, b} {
		rtt, ok := transport.RTT(c)
		if !ok || rtt < 0 || rtt >= time.Second {
			t.Errorf("RTT of an SCTP association = %v, %v; want a value below 1s", rtt, ok)
		}
		t.Logf("SCTP SRTT %v", rtt)
	}
	a.Close()
	if rtt, ok := transport.RTT(a); ok {
		t.Errorf("RTT of a closed association = %v, true; want none", rtt)
	}
}
