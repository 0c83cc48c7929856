package pu_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/asap/pu"
	"github.com/rserpool-go/registrar/asap/sharedtest"
)

// failovers collects the session's failover events.
type failovers chan pu.Failover

func (f failovers) next(t testing.TB) pu.Failover {
	t.Helper()
	select {
	case ev := <-f:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no failover within 10s")
	}
	return pu.Failover{}
}

func connect(t testing.TB, u *pu.User, pool string) (*pu.Session, failovers) {
	t.Helper()
	ch := make(failovers, 8)
	cfg := pu.DefaultSessionConfig()
	cfg.PPID = 38 // RSPLIB's echo service
	cfg.DialTimeout = time.Second
	cfg.OnFailover = func(ev pu.Failover) { ch <- ev }
	s, err := u.Connect(ctxTimeout(t, 10*time.Second), asap.PoolHandle(pool), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, ch
}

// exchange sends msg and returns the reply.
func exchange(t testing.TB, s *pu.Session, msg string) string {
	t.Helper()
	ctx := ctxTimeout(t, 10*time.Second)
	if err := s.Send(ctx, []byte(msg)); err != nil {
		t.Fatalf("Send %q: %v", msg, err)
	}
	ppid, b, err := s.Recv(ctx)
	if err != nil {
		t.Fatalf("Recv after %q: %v", msg, err)
	}
	if ppid != 38 {
		t.Errorf("reply PPID: got %d, want 38", ppid)
	}
	return string(b)
}

func TestSession_SendRecv(t *testing.T) {
	sharedtest.CheckLeaks(t)
	r := startRegistrar(t, nil)
	startPE(t, r, "echo", 1)
	u := newUser(t, nil, r.ASAPAddr())
	s, _ := connect(t, u, "echo")
	if s.PE().ID != 1 {
		t.Fatalf("PE: got 0x%x, want 1", s.PE().ID)
	}
	for i := 1; i <= 3; i++ {
		if got, want := exchange(t, s, "hello"), fmt.Sprintf("1:hello:%d", i); got != want {
			t.Errorf("reply %d: got %q, want %q", i, got, want)
		}
	}
	waitFor(t, 5*time.Second, "the PE's cookie", func() bool {
		return bytes.Equal(s.Cookie(), binary.BigEndian.AppendUint64(nil, 3))
	})
	if err := s.SendPPID(ctxTimeout(t, time.Second), 11, []byte("x")); err == nil {
		t.Error("SendPPID 11: got nil, want an error (ASAP's PPID)")
	}
	s.Close()
	if _, _, err := s.Recv(ctxTimeout(t, time.Second)); err == nil {
		t.Error("Recv after Close: got nil error")
	}
}

// The PE dies: the session fails over to the other one, which gets the
// last cookie first and carries on from it.
func TestSession_FailoverCookieEcho(t *testing.T) {
	sharedtest.CheckLeaks(t)
	r := startRegistrar(t, nil)
	pes := map[uint32]*testPE{1: startPE(t, r, "echo", 1), 2: startPE(t, r, "echo", 2)}
	u := newUser(t, nil, r.ASAPAddr())
	s, fo := connect(t, u, "echo")
	first := s.PE().ID
	other := 3 - first
	for i := 1; i <= 5; i++ {
		exchange(t, s, "m")
	}
	cookie := binary.BigEndian.AppendUint64(nil, 5)
	waitFor(t, 5*time.Second, "the fifth cookie", func() bool { return bytes.Equal(s.Cookie(), cookie) })

	pes[first].kill()
	ev := fo.next(t)
	if ev.From != first || ev.To != other || !ev.CookieEchoed || ev.Reason == nil {
		t.Fatalf("failover: got %+v, want from %d to %d with the cookie echoed", ev, first, other)
	}
	if got, want := exchange(t, s, "after"), fmt.Sprintf("%x:after:6", other); got != want {
		t.Fatalf("reply after the failover: got %q, want %q (answered by the other PE, counting on from the cookie)", got, want)
	}
	if e := pes[other].echoed(); len(e) != 1 || !bytes.Equal(e[0], cookie) {
		t.Fatalf("cookies echoed to the new PE: got %x, want [%x]", e, cookie)
	}
	if s.PE().ID != other {
		t.Errorf("PE after failover: got %d, want %d", s.PE().ID, other)
	}
	// The failed PE was reported: it left the PU's cache.
	pes2, err := u.Resolve(ctxTimeout(t, 5*time.Second), "echo")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pes2 {
		if p.ID == first {
			t.Errorf("resolution after the failover still names the failed PE %d (%v)", first, ids(pes2))
		}
	}
}

// A business card from the PE names the PE to fail over to.
func TestSession_BusinessCardPreferred(t *testing.T) {
	sharedtest.CheckLeaks(t)
	r := startRegistrar(t, nil)
	pes := map[uint32]*testPE{}
	for id := uint32(1); id <= 3; id++ {
		pes[id] = startPE(t, r, "card", id)
	}
	// Each PE names the one after the next as its failover candidate, so
	// the card's choice differs from what a resolution tries first.
	for id, p := range pes {
		want := (id+1)%3 + 1
		p.setCard(&asap.BusinessCard{PoolHandle: "card", PEs: []asap.PoolElement{pes[want].el.PoolElement()}})
	}
	u := newUser(t, nil, r.ASAPAddr())
	s, fo := connect(t, u, "card")
	first := s.PE().ID
	exchange(t, s, "m") // the card came before the reply
	pes[first].kill()
	ev := fo.next(t)
	want := (first+1)%3 + 1
	if ev.To != want || !ev.FromBusinessCard {
		t.Fatalf("failover from %d: got %+v, want to %d from the business card", first, ev, want)
	}
	if got := exchange(t, s, "x"); !strings.HasPrefix(got, fmt.Sprintf("%x:", want)) {
		t.Errorf("reply after the failover: got %q, want it from PE %d", got, want)
	}
}

// The pool user sends its business card to each PE it connects to: at
// the start and after a failover, after the cookie echo and before any
// data; by default the session's pool and its own transport, with
// OwnPool its own pool and PEs; none with NoBusinessCard.
func TestSession_SendsBusinessCard(t *testing.T) {
	sharedtest.CheckLeaks(t)
	r := startRegistrar(t, nil)
	pes := map[uint32]*testPE{1: startPE(t, r, "cards", 1), 2: startPE(t, r, "cards", 2)}
	u := newUser(t, nil, r.ASAPAddr())
	s, fo := connect(t, u, "cards")
	first := s.PE().ID
	exchange(t, s, "m") // data follows the card on the same association
	check := func(p *testPE, when string) {
		t.Helper()
		cards := p.cardsGot()
		if len(cards) != 1 {
			t.Fatalf("%s: PE %x got %d business cards, want 1", when, p.el.ID(), len(cards))
		}
		c := cards[0]
		if c.card.PoolHandle != "cards" || len(c.card.PEs) != 1 {
			t.Fatalf("%s: card %+v, want the session's pool and one PE", when, c.card)
		}
		self := c.card.PEs[0]
		at := fmt.Sprintf("%s:%d", self.User.Addrs[0], self.User.Port)
		if self.ID != 0 || self.User.Kind != asap.ParamTCPTransport || self.User.Use != asap.UseDataAndControl || at != c.from {
			t.Errorf("%s: card's PE %+v at %s, want identifier 0 and the pool user's own address %s", when, self, at, c.from)
		}
	}
	check(pes[first], "at the start")
	other := 3 - first
	pes[first].kill()
	if ev := fo.next(t); ev.To != other {
		t.Fatalf("failover to %d, want %d", ev.To, other)
	}
	exchange(t, s, "n")
	check(pes[other], "after the failover")

	own := asap.PoolElement{ID: 0x77, Lifetime: 1000, Policy: asap.Policy{Type: asap.PolicyRoundRobin},
		User: asap.Transport{Kind: asap.ParamTCPTransport, Port: 9, Use: asap.UseDataAndControl, Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}}
	for _, c := range []struct {
		name string
		mod  func(*pu.SessionConfig)
		want *asap.BusinessCard
	}{
		{"own pool", func(c *pu.SessionConfig) { c.OwnPool, c.OwnPEs = "mine", []asap.PoolElement{own} }, &asap.BusinessCard{PoolHandle: "mine", PEs: []asap.PoolElement{own}}},
		{"no card", func(c *pu.SessionConfig) { c.NoBusinessCard = true }, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := startPE(t, r, "cards-"+c.name, 5)
			cfg := pu.DefaultSessionConfig()
			cfg.PPID = 38
			c.mod(&cfg)
			s, err := u.Connect(ctxTimeout(t, 10*time.Second), asap.PoolHandle("cards-"+c.name), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			exchange(t, s, "m")
			cards := p.cardsGot()
			switch {
			case c.want == nil && len(cards) != 0:
				t.Errorf("got %d cards, want none", len(cards))
			case c.want != nil && (len(cards) != 1 || !reflect.DeepEqual(cards[0].card, c.want)):
				t.Errorf("got %+v, want %+v", cards, c.want)
			}
		})
	}
	bad := pu.DefaultSessionConfig()
	bad.OwnPEs = []asap.PoolElement{own}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "OwnPEs") {
		t.Errorf("OwnPEs without OwnPool: %v, want an error naming OwnPEs", err)
	}
}

// When every PE is gone the session says so.
func TestSession_NoPELeft(t *testing.T) {
	sharedtest.CheckLeaks(t)
	r := startRegistrar(t, nil)
	p := startPE(t, r, "echo", 1)
	u := newUser(t, nil, r.ASAPAddr())
	s, _ := connect(t, u, "echo")
	exchange(t, s, "m")
	p.kill()
	waitFor(t, 10*time.Second, "the session to break", func() bool {
		_, _, err := s.Recv(ctxTimeout(t, 50*time.Millisecond))
		return err != nil && strings.Contains(err.Error(), "no pool element reachable")
	})
	if err := s.Send(ctxTimeout(t, time.Second), []byte("x")); err == nil || !strings.Contains(err.Error(), "failover from PE 0x00000001") {
		t.Errorf("Send on a broken session: got %v", err)
	}
}

// Failover on request (the application's timeout).
func TestSession_ForcedFailover(t *testing.T) {
	sharedtest.CheckLeaks(t)
	r := startRegistrar(t, nil)
	startPE(t, r, "echo", 1)
	startPE(t, r, "echo", 2)
	u := newUser(t, nil, r.ASAPAddr())
	s, fo := connect(t, u, "echo")
	first := s.PE().ID
	exchange(t, s, "m")
	waitFor(t, 5*time.Second, "the cookie", func() bool { return s.Cookie() != nil })
	if err := s.Failover(ctxTimeout(t, 10*time.Second), fmt.Errorf("no reply in time")); err != nil {
		t.Fatal(err)
	}
	if ev := fo.next(t); ev.From != first || ev.To == first || ev.Reason.Error() != "no reply in time" {
		t.Fatalf("forced failover: got %+v", ev)
	}
	if got := exchange(t, s, "x"); !strings.HasPrefix(got, fmt.Sprintf("%x:x:2", 3-first)) {
		t.Errorf("reply after the forced failover: got %q, want PE %d counting on from the cookie", got, 3-first)
	}
}
