package pu_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/asap/sharedtest"
	"github.com/rserpool-go/registrar/registrar"
	"github.com/rserpool-go/registrar/transport"
)

// needSCTP skips without kernel SCTP, or fails under RSP_REQUIRE_SCTP=1
// (`make test-sctp`, natively or in the SCTP lab VM).
func needSCTP(t *testing.T) {
	t.Helper()
	cfg := transport.DefaultConfig()
	cfg.PPID = transport.PPIDASAP
	l, err := transport.Listen(context.Background(), "sctp:127.0.0.1:0", cfg)
	if err != nil {
		if os.Getenv("RSP_REQUIRE_SCTP") == "1" {
			t.Fatalf("RSP_REQUIRE_SCTP=1 but SCTP does not work here: %v", err)
		}
		t.Skipf("no kernel SCTP (%v); `make test-sctp` runs this test in the SCTP lab VM", err)
	}
	l.Close()
}

// Everything over SCTP: PEs register over SCTP with SCTP user and ASAP
// transports; the session carries data and ASAP on one association, told
// apart by the PPID, and fails over with the cookie.
func TestSCTP_SessionFailover(t *testing.T) {
	needSCTP(t)
	sharedtest.CheckLeaks(t)
	r := startRegistrar(t, func(c *registrar.Config) { c.ASAP = "sctp:127.0.0.1:0" })
	pes := map[uint32]*testPE{}
	for id := uint32(1); id <= 2; id++ {
		pes[id] = startPEOn(t, r, "echo", id, "sctp:127.0.0.1:0", "sctp:127.0.0.1:0")
		got, ok := r.Handlespace().Lookup("echo", id)
		if !ok || got.Element.User.Kind != asap.ParamSCTPTransport || got.Element.User.Use != asap.UseDataAndControl ||
			got.Element.ASAP.Kind != asap.ParamSCTPTransport || got.Element.ASAP.Port == 0 {
			t.Fatalf("PE %d at the registrar: %+v, want SCTP user (data+control) and ASAP transports", id, got.Element)
		}
	}
	u := newUser(t, nil, r.ASAPAddr())
	s, fo := connect(t, u, "echo")
	first := s.PE().ID
	for i := 1; i <= 3; i++ {
		if got, want := exchange(t, s, "m"), fmt.Sprintf("%x:m:%d", first, i); got != want {
			t.Fatalf("reply %d: got %q, want %q", i, got, want)
		}
	}
	cookie := binary.BigEndian.AppendUint64(nil, 3)
	waitFor(t, 5*time.Second, "the cookie", func() bool { return bytes.Equal(s.Cookie(), cookie) })
	pes[first].kill()
	if ev := fo.next(t); ev.From != first || !ev.CookieEchoed {
		t.Fatalf("failover: %+v", ev)
	}
	if got, want := exchange(t, s, "n"), fmt.Sprintf("%x:n:4", 3-first); got != want {
		t.Fatalf("reply after the failover: got %q, want %q", got, want)
	}
}
