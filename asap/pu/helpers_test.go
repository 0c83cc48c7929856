package pu_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/asap/pe"
	"github.com/rserpool-go/registrar/asap/pu"
	"github.com/rserpool-go/registrar/asap/sharedtest"
	"github.com/rserpool-go/registrar/registrar"
	"github.com/rserpool-go/registrar/registrar/registrartest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := sharedtest.WaitLeaks(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines leaked:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// startRegistrar runs a registrar for the test; its log stops when it
// stopped (see testlog).
func startRegistrar(t testing.TB, mod func(*registrar.Config)) *registrartest.Server {
	t.Helper()
	return registrartest.Start(t, "", mod)
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func newUser(t testing.TB, mod func(*pu.Config), registrars ...string) *pu.User {
	t.Helper()
	cfg := pu.DefaultConfig()
	cfg.Registrars = registrars
	cfg.RequestTimeout = time.Second
	cfg.Logger = sharedtest.Logger(t, "pu")
	if mod != nil {
		mod(&cfg)
	}
	u, err := pu.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	return u
}

// testPE is an echo service in a pool: it answers each message with
// "<id>:<message>", then sends a cookie holding the number of messages it
// answered in the session; on a cookie echo it continues from there.
type testPE struct {
	t      testing.TB
	el     *pe.Element
	srv    *pe.Server
	mu     sync.Mutex
	card   *asap.BusinessCard // sent to each new session
	echoes [][]byte           // cookies echoed to this PE
	cards  []cardFrom         // business cards pool users sent
	wg     sync.WaitGroup
	cancel context.CancelFunc
}

func startPE(t testing.TB, r *registrartest.Server, pool string, id uint32) *testPE {
	t.Helper()
	return startPEOn(t, r, pool, id, "tcp:127.0.0.1:0", "tcp:127.0.0.1:0")
}

// startPEOn starts a PE whose service listens on listen and whose ASAP
// endpoint is asapSpec.
func startPEOn(t testing.TB, r *registrartest.Server, pool string, id uint32, listen, asapSpec string) *testPE {
	t.Helper()
	scfg := pe.DefaultServerConfig()
	scfg.Logger = sharedtest.Logger(t, fmt.Sprintf("server-%x", id))
	srv, err := pe.Listen(context.Background(), listen, scfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := pe.DefaultConfig()
	cfg.PoolHandle = asap.PoolHandle(pool)
	cfg.ID = id
	cfg.User = srv.Transport()
	cfg.Registrars = []string{r.ASAPAddr()}
	cfg.ASAP = asapSpec
	cfg.ReregInterval = time.Minute
	cfg.Logger = sharedtest.Logger(t, fmt.Sprintf("pe-%x", id))
	el, err := pe.New(cfg)
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	p := &testPE{t: t, el: el, srv: srv}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	t.Cleanup(p.stop)
	if err := el.Register(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	p.wg.Add(1)
	go p.serve(ctx)
	return p
}

func (p *testPE) serve(ctx context.Context) {
	defer p.wg.Done()
	for {
		s, err := p.srv.Accept(ctx)
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer s.Close()
			p.session(ctx, s)
		}()
	}
}

func (p *testPE) session(ctx context.Context, s *pe.Session) {
	p.mu.Lock()
	card := p.card
	p.mu.Unlock()
	if card != nil {
		if err := s.SendBusinessCard(ctx, card); err != nil {
			return
		}
	}
	var served uint64
	for {
		m, err := s.Recv(ctx)
		if err != nil {
			return
		}
		switch m.Kind {
		case pe.KindBusinessCard:
			p.mu.Lock()
			p.cards = append(p.cards, cardFrom{m.BusinessCard, s.RemoteAddr().String()})
			p.mu.Unlock()
		case pe.KindCookieEcho:
			p.mu.Lock()
			p.echoes = append(p.echoes, m.Data)
			p.mu.Unlock()
			if len(m.Data) == 8 {
				served = binary.BigEndian.Uint64(m.Data)
			}
		case pe.KindData:
			served++
			reply := fmt.Appendf(nil, "%x:%s:%d", p.el.ID(), m.Data, served)
			if s.Send(ctx, m.PPID, reply) != nil {
				return
			}
			if s.SendCookie(ctx, binary.BigEndian.AppendUint64(nil, served)) != nil {
				return
			}
		}
	}
}

// kill makes the PE vanish as a crashed process does: its connections
// close, its service refuses connections; the registration stays until
// the registrar notices.
func (p *testPE) kill() {
	p.srv.Close()
}

func (p *testPE) setCard(c *asap.BusinessCard) {
	p.mu.Lock()
	p.card = c
	p.mu.Unlock()
}

// cardFrom is a business card and the address of the pool user that
// sent it.
type cardFrom struct {
	card *asap.BusinessCard
	from string
}

func (p *testPE) cardsGot() []cardFrom {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]cardFrom(nil), p.cards...)
}

func (p *testPE) echoed() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([][]byte(nil), p.echoes...)
}

func (p *testPE) stop() {
	p.cancel()
	p.srv.Close()
	p.el.Close()
	p.wg.Wait()
}
