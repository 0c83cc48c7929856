package registrar_test

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/registrar"
	"github.com/rserpool-go/registrar/registrar/registrartest"
	"github.com/rserpool-go/registrar/store"
	"github.com/rserpool-go/registrar/transport"
)

type testRegistrar = registrartest.Server

func startRegistrar(t testing.TB, dir string, mod func(*registrar.Config)) *testRegistrar {
	t.Helper()
	return registrartest.Start(t, dir, mod)
}

// client is a hand-driven ASAP endpoint (PE or PU) using the codec.
type client struct {
	t    testing.TB
	c    transport.Conn
	mu   sync.Mutex
	acks bool         // answer keep-alives automatically
	kas  atomic.Int64 // keep-alives received
	in   chan asap.Message
	ka   chan *asap.EndpointKeepAlive
}

func dial(t testing.TB, r *testRegistrar, autoAck bool) *client {
	t.Helper()
	return dialAddr(t, r.ASAPAddr(), autoAck)
}

// dialAddr connects a client to an ASAP address spec.
func dialAddr(t testing.TB, addr string, autoAck bool) *client {
	t.Helper()
	cfg := transport.DefaultConfig()
	cfg.PPID = transport.PPIDASAP
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := transport.Dial(ctx, addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	cl := &client{t: t, c: c, acks: autoAck, in: make(chan asap.Message, 64), ka: make(chan *asap.EndpointKeepAlive, 64)}
	go cl.readLoop()
	t.Cleanup(func() { c.Close() })
	return cl
}

func (cl *client) readLoop() {
	for {
		_, b, err := cl.c.Recv(context.Background())
		if err != nil {
			close(cl.in)
			return
		}
		m, _, err := asap.Unpack(b, nil)
		if err != nil {
			cl.t.Logf("client: undecodable message %x: %v", b, err)
			continue
		}
		if ka, ok := m.(*asap.EndpointKeepAlive); ok {
			cl.kas.Add(1)
			select {
			case cl.ka <- ka:
			default:
			}
			if cl.acks {
				// The registrar may be gone by now (the test killed
				// it): a failed answer is not the test's failure.
				b, _ := asap.Pack(&asap.EndpointKeepAliveAck{PoolHandle: ka.PoolHandle, ID: ka.ID})
				cl.mu.Lock()
				cl.c.Send(context.Background(), transport.PPIDASAP, b)
				cl.mu.Unlock()
			}
			continue
		}
		cl.in <- m
	}
}

func (cl *client) send(m asap.Message) {
	b, err := asap.Pack(m)
	if err != nil {
		cl.t.Fatal(err)
	}
	cl.sendRaw(b)
}

func (cl *client) sendRaw(b []byte) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if err := cl.c.Send(context.Background(), transport.PPIDASAP, b); err != nil {
		cl.t.Errorf("send: %v", err)
	}
}

func (cl *client) recv() asap.Message {
	cl.t.Helper()
	select {
	case m, ok := <-cl.in:
		if !ok {
			cl.t.Fatal("connection closed")
		}
		return m
	case <-time.After(10 * time.Second):
		cl.t.Fatal("no answer within 10s")
	}
	return nil
}

func (cl *client) call(m asap.Message) asap.Message {
	cl.t.Helper()
	cl.send(m)
	return cl.recv()
}

var loopback = netip.MustParseAddr("127.0.0.1")

func testPE(id uint32, port uint16, pol asap.Policy) asap.PoolElement {
	return asap.PoolElement{ID: id, Lifetime: 60000, Policy: pol,
		User: asap.Transport{Kind: asap.ParamTCPTransport, Port: port, Use: asap.UseDataAndControl, Addrs: []netip.Addr{loopback}}}
}

func register(t testing.TB, cl *client, h asap.PoolHandle, pe asap.PoolElement) *asap.RegistrationResponse {
	t.Helper()
	resp, ok := cl.call(&asap.Registration{PoolHandle: h, PoolElement: pe}).(*asap.RegistrationResponse)
	if !ok {
		t.Fatal("answer is not a registration response")
	}
	return resp
}

func mustRegister(t testing.TB, cl *client, h asap.PoolHandle, pe asap.PoolElement) {
	t.Helper()
	if resp := register(t, cl, h, pe); resp.Reject {
		t.Fatalf("registration of %s/%08x refused: %v", h, pe.ID, resp.Error)
	}
}

// registerAsPE registers like a PE: a refusal for Lack of Resources (the
// write did not commit: a leader change outlasted the write timeout, as
// it can on a busy machine) is retried until d has passed; anything else
// fails the test.
func registerAsPE(t testing.TB, cl *client, h asap.PoolHandle, pe asap.PoolElement, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		resp := register(t, cl, h, pe)
		if !resp.Reject {
			return
		}
		if resp.Error == nil || resp.Error.First() != asap.CauseLackOfResources || time.Now().After(deadline) {
			t.Fatalf("registration of %s/%08x refused: %v", h, pe.ID, resp.Error)
		}
		t.Logf("registration of %s/%08x refused (%v): retrying as a PE does", h, pe.ID, resp.Error)
	}
}

func resolve(t testing.TB, cl *client, h asap.PoolHandle, n uint32) *asap.HandleResolutionResponse {
	t.Helper()
	m := &asap.HandleResolution{PoolHandle: h}
	if n > 0 {
		m.HasItems, m.Items = true, n
	}
	resp, ok := cl.call(m).(*asap.HandleResolutionResponse)
	if !ok {
		t.Fatal("answer is not a handle resolution response")
	}
	return resp
}

// waitFor polls cond until it holds or the deadline passes.
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

// waitValue polls get until it returns want or the deadline passes, and
// then says what it saw last.
func waitValue[T comparable](t testing.TB, d time.Duration, what string, get func() T, want T) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		got := get()
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: got %v, want %v", d, what, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Ensure that PEs register and a PU resolves them in policy order.
func TestRegisterResolve(t *testing.T) {
	r := startRegistrar(t, "", nil)
	pe := dial(t, r, true)
	rr := asap.Policy{Type: asap.PolicyRoundRobin}
	for i := uint32(1); i <= 3; i++ {
		mustRegister(t, pe, "echo", testPE(i, uint16(7000+i), rr))
	}
	pu := dial(t, r, false)
	seen := map[uint32]int{}
	for i := 0; i < 6; i++ {
		resp := resolve(t, pu, "echo", 1)
		if resp.Error != nil || len(resp.PEs) != 1 {
			t.Fatalf("resolution %d: %+v", i, resp)
		}
		got := resp.PEs[0]
		if got.Home != r.ID() || !got.ASAP.IsZero() || got.User.Addrs[0] != loopback {
			t.Errorf("PE as resolved: home %08x asap %+v addrs %v", got.Home, got.ASAP, got.User.Addrs)
		}
		seen[got.ID]++
	}
	for i := uint32(1); i <= 3; i++ {
		if seen[i] != 2 {
			t.Errorf("round robin over 6 resolutions gave PE %d %d times, want 2 (%v)", i, seen[i], seen)
		}
	}
	all := resolve(t, pu, "echo", asap.ItemsAll)
	if len(all.PEs) != 3 || all.Policy.Type != asap.PolicyRoundRobin {
		t.Errorf("items=all gave %d PEs policy %v, want 3 rr", len(all.PEs), all.Policy.Type)
	}
	def := resolve(t, pu, "echo", 0)
	if len(def.PEs) != 3 {
		t.Errorf("default resolution gave %d PEs, want MaxHResItems=3", len(def.PEs))
	}
	none := resolve(t, pu, "nopool", 0)
	if none.Error == nil || none.Error.First() != asap.CauseUnknownPoolHandle {
		t.Errorf("unknown pool: got %+v, want cause unknown pool handle", none)
	}
}

// Ensure that a resolution whose PEs do not all fit in one message (the
// length is 16 bits) is answered with as many PEs as fit, not as an
// unknown pool.
func TestResolution_LargerThanAMessage(t *testing.T) {
	r := startRegistrar(t, "", func(c *registrar.Config) { c.AllowForeignAddresses = true })
	pe := dial(t, r, true)
	const pes = 60 // of about 1.3 KB each: 78 KB
	for i := uint32(1); i <= pes; i++ {
		p := testPE(i, 7000, asap.Policy{Type: asap.PolicyRoundRobin})
		p.User = asap.Transport{Kind: asap.ParamSCTPTransport, Port: 7000}
		for j := 0; j < asap.DefaultMaxAddresses; j++ {
			p.User.Addrs = append(p.User.Addrs, netip.AddrFrom16([16]byte{0: 0xfd, 13: byte(i), 15: byte(j)}))
		}
		mustRegister(t, pe, "big", p)
	}
	resp := resolve(t, dial(t, r, false), "big", asap.ItemsAll)
	if resp.Error != nil {
		t.Fatalf("resolution of %d PEs of 64 addresses answered %v, want as many PEs as fit", pes, resp.Error)
	}
	if n := len(resp.PEs); n == 0 || n >= pes {
		t.Fatalf("resolution of %d PEs of about 1.3 KB gave %d PEs, want as many as fit in 64 KiB (about 49)", pes, n)
	}
	for _, p := range resp.PEs {
		if len(p.User.Addrs) != asap.DefaultMaxAddresses {
			t.Fatalf("PE %d came with %d addresses, want %d", p.ID, len(p.User.Addrs), asap.DefaultMaxAddresses)
		}
	}
}

// Ensure that inconsistent registrations are refused with the RFC cause
// and the offending parameter, and change nothing. The cause is the one
// the store decides (store's TestStore_Check_Consistency pins the same
// table), also for a policy type the registrar does not know.
func TestRegistrationRefused(t *testing.T) {
	r := startRegistrar(t, "", nil)
	pe := dial(t, r, true)
	mustRegister(t, pe, "pool", testPE(1, 7001, asap.Policy{Type: asap.PolicyRoundRobin}))
	param := func(f func([]byte) ([]byte, error)) []byte {
		b, err := f(nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	policyOf := func(p asap.PoolElement) []byte {
		return param(func(b []byte) ([]byte, error) { return asap.AppendPolicy(b, &p.Policy) })
	}
	userOf := func(p asap.PoolElement) []byte {
		return param(func(b []byte) ([]byte, error) { return asap.AppendTransport(b, &p.User) })
	}
	// peOf checks that the information is the PE as the registrar would
	// have stored it: the same identifier and policy, this registrar its
	// home (the ASAP transport is the connection's, not predictable here).
	peOf := func(p asap.PoolElement) func(t *testing.T, info []byte) {
		return func(t *testing.T, info []byte) {
			v, err := asap.ViewPoolElement(string(info))
			if err != nil || v.ID() != p.ID || v.Home() != r.ID() || v.PolicyType() != p.Policy.Type {
				t.Errorf("information %x is not PE %d with home %08x (%v)", info, p.ID, r.ID(), err)
			}
		}
	}
	is := func(want []byte) func(t *testing.T, info []byte) {
		return func(t *testing.T, info []byte) {
			if !bytes.Equal(info, want) {
				t.Errorf("information %x, want %x", info, want)
			}
		}
	}
	lu := testPE(2, 7002, asap.Policy{Type: asap.PolicyLeastUsed})
	udp := testPE(3, 7003, asap.Policy{Type: asap.PolicyRoundRobin})
	udp.User.Kind, udp.User.Use = asap.ParamUDPTransport, 0
	dataOnly := testPE(4, 7004, asap.Policy{Type: asap.PolicyRoundRobin})
	dataOnly.User.Use = asap.UseData
	zero := testPE(0, 7005, asap.Policy{Type: asap.PolicyRoundRobin})
	foreign := testPE(6, 7006, asap.Policy{Type: asap.PolicyRoundRobin})
	foreign.User.Addrs = []netip.Addr{netip.MustParseAddr("192.0.2.1")}
	unknown := testPE(7, 7007, asap.Policy{Type: 0xB0003001, Raw: []uint32{1}})
	noLife := testPE(8, 7008, asap.Policy{Type: asap.PolicyRoundRobin})
	noLife.Lifetime = 0
	cases := []struct {
		name string
		pe   asap.PoolElement
		code asap.CauseCode
		info func(t *testing.T, info []byte)
	}{
		{"policy mismatch", lu, asap.CauseInconsistentPolicy, is(policyOf(lu))},
		{"transport mismatch", udp, asap.CauseInconsistentTransport, is(userOf(udp))},
		{"data/control mismatch", dataOnly, asap.CauseInconsistentDataControl, is(nil)},
		{"PE id 0", zero, asap.CauseInvalidValues, peOf(zero)},
		{"foreign address only", foreign, asap.CauseInvalidValues, is(userOf(foreign))},
		{"unsupported policy", unknown, asap.CauseInvalidValues, is(policyOf(unknown))},
		{"registration life 0", noLife, asap.CauseInvalidValues,
			is(param(func(b []byte) ([]byte, error) { return asap.AppendPoolElement(b, &noLife) }))},
	}
	before := r.Handlespace().Status().LastIndex
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := register(t, pe, "pool", c.pe)
			if !resp.Reject || resp.Error.First() != c.code || len(resp.Error.Causes) != 1 {
				t.Fatalf("got reject=%v error %v, want cause %v", resp.Reject, resp.Error, c.code)
			}
			c.info(t, resp.Error.Causes[0].Info)
		})
	}
	if pes := r.Handlespace().Pool("pool"); len(pes) != 1 {
		t.Errorf("pool has %d PEs after refusals, want 1", len(pes))
	}
	if after := r.Handlespace().Status().LastIndex; after != before {
		t.Errorf("refusals wrote to raft: index %d -> %d", before, after)
	}
}

// Ensure that addresses not belonging to the PE are dropped, and that a
// re-registration that changes nothing costs no raft write.
func TestAddressFilterAndRefresh(t *testing.T) {
	r := startRegistrar(t, "", nil)
	pe := dial(t, r, true)
	p := testPE(9, 7009, asap.Policy{Type: asap.PolicyLeastUsed, Load: 5})
	p.User.Kind = asap.ParamSCTPTransport
	p.User.Addrs = []netip.Addr{netip.MustParseAddr("192.0.2.1"), loopback}
	mustRegister(t, pe, "lu", p)
	got, ok := r.Handlespace().Lookup("lu", 9)
	if !ok || len(got.Element.User.Addrs) != 1 || got.Element.User.Addrs[0] != loopback {
		t.Fatalf("stored addresses %v, want only 127.0.0.1", got.Element.User.Addrs)
	}
	// Without an ASAP transport in the registration, the registrar records
	// the connection's endpoint, with its real port (RSPLIB refuses port 0).
	local, _ := netip.ParseAddrPort(pe.c.LocalAddr().String())
	if a := got.Element.ASAP; a.Port == 0 || a.Port != local.Port() || a.Use != asap.UseData {
		t.Errorf("stored ASAP transport %+v, want port %d, use data", a, local.Port())
	}
	idx := r.Handlespace().Status().LastIndex
	mustRegister(t, pe, "lu", p)
	if now := r.Handlespace().Status().LastIndex; now != idx {
		t.Errorf("unchanged re-registration wrote to raft: index %d -> %d", idx, now)
	}
	p.Policy.Load = 7 // a new load is replicated
	mustRegister(t, pe, "lu", p)
	if now := r.Handlespace().Status().LastIndex; now == idx {
		t.Error("re-registration with a new load did not reach raft")
	}
	if got, _ := r.Handlespace().Lookup("lu", 9); got.Element.Policy.Load != 7 {
		t.Errorf("stored load %d, want 7", got.Element.Policy.Load)
	}
}

// Ensure deregistration removes the PE and succeeds also when it is gone.
func TestDeregistration(t *testing.T) {
	r := startRegistrar(t, "", nil)
	pe := dial(t, r, true)
	mustRegister(t, pe, "pool", testPE(1, 7001, asap.Policy{Type: asap.PolicyRandom}))
	for i := 0; i < 2; i++ {
		resp, ok := pe.call(&asap.Deregistration{PoolHandle: "pool", ID: 1}).(*asap.DeregistrationResponse)
		if !ok || resp.Error != nil || resp.ID != 1 {
			t.Fatalf("deregistration %d: %+v", i, resp)
		}
	}
	if _, ok := r.Handlespace().Lookup("pool", 1); ok {
		t.Error("PE still present after deregistration")
	}
}

// Ensure that a PE that stops answering keep-alives is removed after the
// timeout, while one that answers stays.
func TestKeepAliveTimeout(t *testing.T) {
	r := startRegistrar(t, "", func(c *registrar.Config) {
		c.KeepAliveInterval = registrar.Duration(100 * time.Millisecond)
		// Long enough that an answer delayed by a busy machine still
		// counts: the answering PE must never be removed.
		c.KeepAliveTimeout = registrar.Duration(time.Second)
	})
	alive := dial(t, r, true)
	silent := dial(t, r, false)
	mustRegister(t, alive, "pool", testPE(1, 7001, asap.Policy{Type: asap.PolicyRoundRobin}))
	mustRegister(t, silent, "pool", testPE(2, 7002, asap.Policy{Type: asap.PolicyRoundRobin}))
	select {
	case ka := <-silent.ka:
		if ka.ServerID != r.ID() || !ka.HasID || ka.ID != 2 || ka.PoolHandle != "pool" {
			t.Errorf("keep-alive %+v", ka)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no keep-alive received")
	}
	waitFor(t, 5*time.Second, "silent PE removed", func() bool { _, ok := r.Handlespace().Lookup("pool", 2); return !ok })
	// Three more rounds answered: each would have removed the PE had its
	// answers not counted.
	since := alive.kas.Load()
	waitFor(t, 10*time.Second, "three more keep-alives answered", func() bool { return alive.kas.Load() >= since+3 })
	if _, ok := r.Handlespace().Lookup("pool", 1); !ok {
		t.Error("PE answering keep-alives was removed")
	}
}

// Ensure that keep-alives follow the keep-alive interval once answered,
// not the (longer) ACK timeout: an ACK reschedules the PE's next
// keep-alive sooner than the supervision loop's timer (it used to wait
// for the ACK deadline, so one keep-alive went out per timeout).
func TestKeepAliveInterval_ShorterThanTimeout(t *testing.T) {
	r := startRegistrar(t, "", func(c *registrar.Config) {
		c.KeepAliveInterval = registrar.Duration(50 * time.Millisecond)
		c.KeepAliveTimeout = registrar.Duration(time.Hour)
	})
	pe := dial(t, r, true)
	mustRegister(t, pe, "pool", testPE(1, 7001, asap.Policy{Type: asap.PolicyRoundRobin}))
	waitFor(t, 30*time.Second, "5 answered keep-alives (one per hour with the ACK timeout as the period)", func() bool {
		return pe.kas.Load() >= 5
	})
}

// Ensure that when the connection a PE registered on closes, the registrar
// probes the PE's ASAP endpoint at once, not at the next keep-alive.
func TestLostConnectionProbesPE(t *testing.T) {
	r := startRegistrar(t, "", func(c *registrar.Config) {
		c.KeepAliveInterval = registrar.Duration(time.Minute)
	})
	pe := newASAPPE(t)
	cl := dial(t, r, true)
	mustRegister(t, cl, "pool", pe.element(1))
	cl.c.Close()
	waitFor(t, 5*time.Second, "keep-alive at the PE's ASAP endpoint", func() bool {
		pe.mu.Lock()
		defer pe.mu.Unlock()
		return pe.kas > 0
	})
}

// Ensure that a PE whose registration life runs out is removed.
func TestLifetimeExpiry(t *testing.T) {
	r := startRegistrar(t, "", nil)
	pe := dial(t, r, true)
	p := testPE(1, 7001, asap.Policy{Type: asap.PolicyRoundRobin})
	p.Lifetime = 300
	mustRegister(t, pe, "pool", p)
	waitFor(t, 5*time.Second, "expired PE removed", func() bool { _, ok := r.Handlespace().Lookup("pool", 1); return !ok })
}

// Ensure that unreachability reports remove a PE only when it is dead or
// many reporters agree: one PU's repeated reports of a PE that answers
// keep-alives change nothing (each report probes it, and its ACK resets
// the count); reports from MaxBadPEReports distinct hosts remove it at
// once; one report of a PE that no longer answers removes it after the
// keep-alive timeout.
func TestUnreachableReports(t *testing.T) {
	r := startRegistrar(t, "", func(c *registrar.Config) {
		c.KeepAliveInterval = registrar.Duration(time.Hour) // only reports probe
		// Long enough that three hosts' reports come before the timeout
		// of the keep-alive the first one triggers, on a busy machine.
		c.KeepAliveTimeout = registrar.Duration(5 * time.Second)
	})
	alive := dial(t, r, true)
	mustRegister(t, alive, "pool", testPE(1, 7001, asap.Policy{Type: asap.PolicyRoundRobin}))
	pu := dial(t, r, false)
	for i := 0; i < 5; i++ {
		pu.send(&asap.EndpointUnreachable{PoolHandle: "pool", ID: 1})
		resolve(t, pu, "pool", 1) // orders after the report
	}
	waitFor(t, 10*time.Second, "the keep-alives the reports triggered", func() bool { return alive.kas.Load() >= 1 })
	resolve(t, pu, "pool", 1)
	if _, ok := r.Handlespace().Lookup("pool", 1); !ok {
		t.Fatal("one PU's reports removed a PE that answers keep-alives")
	}

	// Three hosts agree about a PE that does not answer (frozen).
	frozen := dial(t, r, false)
	mustRegister(t, frozen, "pool", testPE(2, 7002, asap.Policy{Type: asap.PolicyRoundRobin}))
	for _, from := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"} {
		dialFrom(t, r, from).send(&asap.EndpointUnreachable{PoolHandle: "pool", ID: 2})
	}
	waitFor(t, 5*time.Second, "the PE three hosts reported removed", func() bool { _, ok := r.Handlespace().Lookup("pool", 2); return !ok })
	if n := metricValue(t, r, `rsp_pe_removals_total{reason="unreachable reports"}`); n != 1 {
		t.Fatalf("removals for unreachable reports: %v, want 1 (the three hosts' reports, not the keep-alive timeout)", n)
	}

	// One report of a PE that died: the keep-alive it triggers goes
	// unanswered.
	dead := dial(t, r, false)
	mustRegister(t, dead, "pool", testPE(3, 7003, asap.Policy{Type: asap.PolicyRoundRobin}))
	pu.send(&asap.EndpointUnreachable{PoolHandle: "pool", ID: 3})
	waitFor(t, 20*time.Second, "the reported dead PE removed after its keep-alive timeout", func() bool {
		_, ok := r.Handlespace().Lookup("pool", 3)
		return !ok
	})
	if _, ok := r.Handlespace().Lookup("pool", 1); !ok {
		t.Fatal("the live PE is gone")
	}
}

// Ensure the registrar answers bad input with the RFC's errors.
func TestErrorReplies(t *testing.T) {
	r := startRegistrar(t, "", nil)
	cl := dial(t, r, false)
	cases := []struct {
		name string
		wire []byte
		code asap.CauseCode
	}{
		{"unknown message", []byte{0x7f, 0, 0, 8, 0, 9, 0, 4}, asap.CauseUnrecognizedMessage},
		{"stop and report parameter", []byte{5, 0, 0, 0x14, 0, 9, 0, 8, 'e', 'c', 'h', 'o', 0x41, 0x23, 0, 8, 0xde, 0xad, 0xbe, 0xef}, asap.CauseUnrecognizedParameter},
		{"bad parameter length", []byte{5, 0, 0, 0x0c, 0, 9, 0, 2, 'e', 'c', 'h', 'o'}, asap.CauseInvalidValues},
	}
	for _, c := range cases {
		cl.sendRaw(c.wire)
		m := cl.recv()
		e, ok := m.(*asap.Error)
		if !ok || e.Error.First() != c.code {
			t.Errorf("%s: got %#v, want ASAP_ERROR cause %v", c.name, m, c.code)
		}
	}
	// Skip-and-report: the resolution is answered and the parameter reported.
	cl.sendRaw([]byte{5, 0, 0, 0x14, 0, 9, 0, 8, 'e', 'c', 'h', 'o', 0xc1, 0x23, 0, 8, 0xde, 0xad, 0xbe, 0xef})
	first, second := cl.recv(), cl.recv()
	if e, ok := first.(*asap.Error); !ok || e.Error.First() != asap.CauseUnrecognizedParameter {
		t.Errorf("skip-and-report: first answer %#v, want the report", first)
	}
	if _, ok := second.(*asap.HandleResolutionResponse); !ok {
		t.Errorf("skip-and-report: second answer %#v, want the resolution", second)
	}
}

// Ensure that a registrar restarted on the same data dir serves the same
// handlespace at once, with the same ID.
func TestRestartKeepsHandlespace(t *testing.T) {
	dir := t.TempDir()
	r := startRegistrar(t, dir, nil)
	id := r.ID()
	pe := dial(t, r, true)
	for i := uint32(1); i <= 20; i++ {
		mustRegister(t, pe, "pool", testPE(i, uint16(7000+i), asap.Policy{Type: asap.PolicyRoundRobin}))
	}
	r.Stop()
	r2 := startRegistrar(t, dir, nil)
	if r2.ID() != id {
		t.Errorf("ID after restart %08x, want %08x", r2.ID(), id)
	}
	if _, n := r2.Handlespace().Counts(); n != 20 {
		t.Fatalf("PEs after restart: %d, want 20", n)
	}
	pu := dial(t, r2, false)
	if resp := resolve(t, pu, "pool", asap.ItemsAll); len(resp.PEs) != 20 {
		t.Errorf("resolution after restart: %d PEs, want 20", len(resp.PEs))
	}
}

// Ensure Crash stops a registrar as kill -9 does, not as a shutdown: the
// handlespace file keeps only what was committed to it (group commit's
// queue is lost, where Stop would have committed it), and a restart on the
// same data dir replays the rest from the raft log: every acknowledged
// registration is there.
func TestCrashLosesOnlyWhatRaftReplays(t *testing.T) {
	// Group commit writes the file 1 s (the longest commit_delay) after
	// the first queued change: the registrations and the crash must come
	// within that, which a loaded machine may miss; such a try is redone.
	hold := func(c *registrar.Config) { c.CommitDelay = registrar.Duration(time.Second) }
	for try := 1; ; try++ {
		dir := t.TempDir()
		r := startRegistrar(t, dir, hold)
		pe := dial(t, r, true)
		start := time.Now()
		for i := uint32(1); i <= 5; i++ {
			mustRegister(t, pe, "pool", testPE(i, uint16(7000+i), asap.Policy{Type: asap.PolicyRoundRobin}))
		}
		r.Crash()
		if took := time.Since(start); took > 800*time.Millisecond {
			if try == 5 {
				t.Fatalf("5 tries took %v or more from the first registration to the crash: the machine is too slow to see group commit's queue", took)
			}
			continue
		}
		st, err := store.Open(filepath.Join(dir, "handlespace.db"), &store.Options{Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		_, inFile := st.Counts()
		st.Close()
		if inFile == 5 {
			t.Fatalf("after Crash the handlespace file holds all 5 PEs: their queued commit was written, as a shutdown does, not as a kill")
		}
		r2 := startRegistrar(t, dir, hold)
		if _, n := r2.Handlespace().Counts(); n != 5 {
			t.Errorf("after the crash and a restart: %d PEs (%d were in the file), want the 5 acknowledged ones replayed from the raft log", n, inFile)
		}
		return
	}
}

// Ensure that a bad configuration lists every problem.
func TestConfigValidateListsAll(t *testing.T) {
	c := registrar.DefaultConfig()
	c.ASAP = "sctp:"
	c.HTTP = "nope"
	c.MaxBadPEReports = 0
	c.AnnounceTTL = 0
	c.LogLevel = "loud"
	c.ConnParkAfter = registrar.Duration(time.Millisecond)
	err := c.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, field := range []string{"asap", "http", "max_bad_pe_reports", "announce_ttl", "log_level", "conn_park_after"} {
		if !strings.Contains(err.Error(), field+":") {
			t.Errorf("error does not name %s:\n%v", field, err)
		}
	}
	if _, err := registrar.New(c); err == nil {
		t.Error("New accepted a bad config")
	}
	var _ = errors.New
}

// Ensure what happens to a PE whose registration connection is lost
// follows PEConnLoss: "remove" removes it at once (the keep-alive timeout
// here is an hour, so only the removal on loss can do it; counted as
// "association lost"), "probe" (the default) sends a keep-alive to its
// ASAP endpoint at once, and the PE, which answers there, stays.
func TestPEConnLoss(t *testing.T) {
	for _, mode := range []string{registrar.PEConnLossRemove, registrar.PEConnLossProbe} {
		t.Run(mode, func(t *testing.T) {
			r := startRegistrar(t, "", func(c *registrar.Config) {
				c.PEConnLoss = mode
				c.KeepAliveInterval = registrar.Duration(time.Hour)
				c.KeepAliveTimeout = registrar.Duration(time.Hour)
			})
			pe := newASAPPE(t)
			cl := dial(t, r, true)
			mustRegister(t, cl, "pool", pe.element(1))
			cl.c.Close()
			if mode == registrar.PEConnLossRemove {
				waitValue(t, 10*time.Second, "PEs left after the association was lost", func() int {
					_, ok := r.Handlespace().Lookup("pool", 1)
					return map[bool]int{true: 1}[ok]
				}, 0)
				waitValue(t, 10*time.Second, "removals counted as association lost", func() float64 {
					return metricValue(t, r, `rsp_pe_removals_total{reason="association lost"}`)
				}, 1)
				if n := pe.keepAlivesPerPE()[1]; n != 0 {
					t.Errorf("PE got %d keep-alives; want it removed without a probe", n)
				}
				return
			}
			waitFor(t, 10*time.Second, "a keep-alive at the PE's ASAP endpoint", func() bool { return pe.keepAlivesPerPE()[1] > 0 })
			// The ACK is in once the PE has answered; with an hour's
			// timeout nothing else could remove it, so look for the ACK
			// counter rather than wait.
			waitFor(t, 10*time.Second, "the probe's ACK counted", func() bool {
				return metricValue(t, r, "rsp_keepalive_acks_total") >= 1
			})
			if _, ok := r.Handlespace().Lookup("pool", 1); !ok {
				t.Error("the PE that answered the probe was removed")
			}
		})
	}
}

// Ensure a burst of removals (every PE of a connection that drops, with
// pe_conn_loss "remove") waits in a queue for a bounded set of workers
// rather than taking a goroutine each: a goroutine per removal cost
// kilobytes each, a million of them for a million PEs. All the PEs still
// go, each counted once.
func TestMassRemovalBoundedGoroutines(t *testing.T) {
	const n = 3000
	r := startRegistrar(t, "", func(c *registrar.Config) {
		c.PEConnLoss = registrar.PEConnLossRemove
		c.KeepAliveInterval = registrar.Duration(time.Hour)
		c.KeepAliveTimeout = registrar.Duration(time.Hour)
		c.MaxPEsPerConnection = n
	})
	pe := newASAPPE(t)
	cl := dial(t, r, true)
	for i := uint32(1); i <= n; i++ {
		mustRegister(t, cl, "pool", pe.element(i))
	}
	base := runtime.NumGoroutine()
	cl.c.Close()
	peak := base
	deadline := time.Now().Add(60 * time.Second)
	for len(r.Handlespace().Owned(r.ID())) > 0 {
		peak = max(peak, runtime.NumGoroutine())
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d PEs still registered 60s after their connection dropped", len(r.Handlespace().Owned(r.ID())), n)
		}
		time.Sleep(time.Millisecond)
	}
	// The workers exist before the burst; a few goroutines may come and
	// go meanwhile (connection handling, timers), never one per PE.
	if peak-base > 200 {
		t.Errorf("goroutines rose from %d to %d while %d PEs were removed; want no goroutine per removal", base, peak, n)
	}
	waitValue(t, 10*time.Second, "removals counted as association lost", func() float64 {
		return metricValue(t, r, `rsp_pe_removals_total{reason="association lost"}`)
	}, n)
}

// Ensure PEs that name one ASAP endpoint (the PEs of one process) are
// probed over one association to it when the connection they registered
// on drops, not one per PE, and all of them answer and stay.
func TestPEDialsShareAnAssociation(t *testing.T) {
	const n = 50
	r := startRegistrar(t, "", func(c *registrar.Config) {
		c.PEConnLoss = registrar.PEConnLossProbe
		c.KeepAliveInterval = registrar.Duration(time.Hour) // only the loss probes
		c.KeepAliveTimeout = registrar.Duration(time.Hour)
	})
	pe := newASAPPE(t)
	cl := dial(t, r, true)
	ids := make([]uint32, n)
	for i := range ids {
		ids[i] = uint32(i + 1)
		mustRegister(t, cl, "pool", pe.element(ids[i]))
	}
	cl.c.Close()
	waitFor(t, 30*time.Second, "a keep-alive for every PE at their ASAP endpoint", func() bool {
		got := pe.keepAlivesPerPE()
		for _, id := range ids {
			if got[id] == 0 {
				return false
			}
		}
		return true
	})
	waitFor(t, 10*time.Second, "every probe's ACK counted", func() bool {
		return metricValue(t, r, "rsp_keepalive_acks_total") >= n
	})
	pe.mu.Lock()
	conns := pe.conns
	pe.mu.Unlock()
	if conns != 1 {
		t.Errorf("the registrar opened %d associations to the one ASAP endpoint of %d PEs, want 1", conns, n)
	}
	if got := len(r.Handlespace().Owned(r.ID())); got != n {
		t.Errorf("%d PEs left, want all %d (they answered)", got, n)
	}
}
