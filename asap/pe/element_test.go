package pe_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/asap/pe"
	"github.com/rserpool-go/registrar/asap/sharedtest"
	"github.com/rserpool-go/registrar/registrar"
	"github.com/rserpool-go/registrar/registrar/registrartest"
	"github.com/rserpool-go/registrar/transport"
)

var loopback = netip.MustParseAddr("127.0.0.1")

func TestElement_RegisterDeregister(t *testing.T) {
	sharedtest.CheckLeaks(t)
	r := startRegistrar(t, nil)
	srv := listenServer(t)
	el := newElement(t, testConfig(t, "echo", srv, r.ASAPAddr()))
	if err := el.Register(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	got, ok := r.Handlespace().Lookup("echo", el.ID())
	if !ok {
		t.Fatalf("PE 0x%08x not in the registrar's handlespace after Register", el.ID())
	}
	p := got.Element
	srvPort := srv.Transport().Port
	if p.User.Kind != asap.ParamTCPTransport || p.User.Port != srvPort || p.User.Use != asap.UseDataAndControl ||
		len(p.User.Addrs) != 1 || p.User.Addrs[0] != loopback {
		t.Errorf("user transport: got %+v, want tcp 127.0.0.1:%d data+control", p.User, srvPort)
	}
	asapPort := el.ASAPAddrs()[0].String()
	if p.ASAP.Kind != asap.ParamTCPTransport || p.ASAP.Use != asap.UseData || len(p.ASAP.Addrs) != 1 ||
		p.ASAP.Addrs[0] != loopback || !strings.HasSuffix(asapPort, fmt.Sprintf(":%d", p.ASAP.Port)) {
		t.Errorf("ASAP transport: got %+v, want tcp data-only at the PE's ASAP endpoint %s", p.ASAP, asapPort)
	}
	if p.Home != r.ID() || p.Lifetime != uint32(3*pe_DefaultRereg/time.Millisecond) || p.Policy.Type != asap.PolicyRoundRobin {
		t.Errorf("PE: home 0x%08x lifetime %d policy %v, want home 0x%08x, lifetime 3 x 30 s, rr", p.Home, p.Lifetime, p.Policy.Type, r.ID())
	}
	st := el.Status()
	if !st.Registered || !strings.Contains(st.Registrar, r.ASAPAddr()) || st.Err != nil {
		t.Errorf("Status: got %+v, want registered at %s", st, r.ASAPAddr())
	}
	if got := el.PoolElement(); got.ID != el.ID() || got.User.Port != srvPort {
		t.Errorf("PoolElement: got %+v", got)
	}
	if err := el.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, ok := r.Handlespace().Lookup("echo", el.ID()); ok {
		t.Fatal("PE still registered after Close")
	}
	if err := el.Register(context.Background()); !errors.Is(err, pe.ErrClosed) {
		t.Errorf("Register after Close: got %v, want ErrClosed", err)
	}
}

const pe_DefaultRereg = pe.DefaultReregInterval

func TestElement_RandomID(t *testing.T) {
	sharedtest.CheckLeaks(t)
	srv := listenServer(t)
	cfg := testConfig(t, "echo", srv, "tcp:127.0.0.1:1")
	a, b := newElement(t, cfg), newElement(t, cfg)
	if a.ID() == 0 || b.ID() == 0 || a.ID() == b.ID() {
		t.Errorf("random IDs: got 0x%08x and 0x%08x, want two different non-zero ones", a.ID(), b.ID())
	}
	cfg.ID = 0x1234
	if c := newElement(t, cfg); c.ID() != 0x1234 {
		t.Errorf("ID: got 0x%08x, want 0x1234", c.ID())
	}
}

// The element renews its registration before its lifetime runs out.
func TestElement_Renews(t *testing.T) {
	sharedtest.CheckLeaks(t)
	r := startRegistrar(t, nil)
	srv := listenServer(t)
	cfg := testConfig(t, "echo", srv, r.ASAPAddr())
	cfg.ReregInterval = 100 * time.Millisecond
	cfg.Lifetime = 300 * time.Millisecond
	el := newElement(t, cfg)
	if err := el.Register(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	first := el.Status().LastRegistration
	waitFor(t, 10*time.Second, "renewals over three lifetimes", func() bool {
		return el.Status().LastRegistration.Sub(first) > 900*time.Millisecond
	})
	if _, ok := r.Handlespace().Lookup("echo", el.ID()); !ok {
		t.Fatal("PE dropped by the registrar although it renewed its registration")
	}
}

// A new load renews the registration at once.
func TestElement_SetLoad(t *testing.T) {
	sharedtest.CheckLeaks(t)
	r := startRegistrar(t, nil)
	srv := listenServer(t)
	cfg := testConfig(t, "lu", srv, r.ASAPAddr())
	cfg.Policy = asap.Policy{Type: asap.PolicyLeastUsed, Load: 0}
	cfg.ReregInterval = time.Minute
	el := newElement(t, cfg)
	if err := el.Register(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	const half = 0x80000000
	if err := el.SetLoad(half); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the new load at the registrar", func() bool {
		got, ok := r.Handlespace().Lookup("lu", el.ID())
		return ok && got.Element.Policy.Load == half
	})
	if err := el.SetPolicy(asap.Policy{Type: asap.PolicyLeastUsed, Load: 7}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the new policy values at the registrar", func() bool {
		got, ok := r.Handlespace().Lookup("lu", el.ID())
		return ok && got.Element.Policy.Load == 7
	})

	rr := testConfig(t, "rr", srv, r.ASAPAddr())
	if err := newElement(t, rr).SetLoad(1); err == nil || !strings.Contains(err.Error(), "carries no load") {
		t.Errorf("SetLoad on round robin: got %v, want an error saying rr carries no load", err)
	}
}

// The registrar's keep-alives are answered: with short keep-alive timers
// the PE stays registered although it does not renew in that time.
func TestElement_AnswersKeepAlives(t *testing.T) {
	sharedtest.CheckLeaks(t)
	r := startRegistrar(t, func(c *registrar.Config) {
		c.KeepAliveInterval = registrar.Duration(50 * time.Millisecond)
		c.KeepAliveTimeout = registrar.Duration(time.Second)
	})
	srv := listenServer(t)
	cfg := testConfig(t, "echo", srv, r.ASAPAddr())
	cfg.ReregInterval = time.Minute
	el := newElement(t, cfg)
	if err := el.Register(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	// Thirty keep-alive rounds answered (the registrar counts the acks),
	// past the point where an unanswered one removes the PE (1.05 s).
	waitFor(t, 20*time.Second, "30 keep-alives acknowledged by the PE", func() bool {
		if _, ok := r.Handlespace().Lookup("echo", el.ID()); !ok {
			t.Fatal("the registrar removed the PE: keep-alives not answered")
		}
		return registrartest.Metric(t, r.HTTPAddr(), "rsp_keepalive_acks_total") >= 30
	})
	if _, ok := r.Handlespace().Lookup("echo", el.ID()); !ok {
		t.Fatal("the registrar removed the PE: keep-alives not answered")
	}
	waitFor(t, 5*time.Second, "the home registrar's ID from its keep-alives", func() bool { return el.Status().Home == r.ID() })
}

// When its registrar dies, the PE registers at the next one of its list.
func TestElement_HuntsNextRegistrar(t *testing.T) {
	sharedtest.CheckLeaks(t)
	a := startRegistrar(t, nil)
	b := startRegistrar(t, nil)
	srv := listenServer(t)
	cfg := testConfig(t, "echo", srv, a.ASAPAddr(), b.ASAPAddr())
	cfg.ReregInterval = 200 * time.Millisecond
	el := newElement(t, cfg)
	if err := el.Register(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Handlespace().Lookup("echo", el.ID()); !ok {
		t.Fatal("PE not registered at the first registrar of its list")
	}
	a.Stop()
	waitFor(t, 10*time.Second, "the PE at the second registrar", func() bool {
		_, ok := b.Handlespace().Lookup("echo", el.ID())
		return ok
	})
	waitFor(t, 5*time.Second, "the status to name the second registrar", func() bool {
		return strings.Contains(el.Status().Registrar, b.ASAPAddr())
	})
}

// fakeRegistrar is a registrar written with the codec: it dials a PE's
// ASAP endpoint, as a registrar that took the PE over does.
type fakeRegistrar struct {
	t  testing.TB
	c  transport.Conn
	id uint32
}

func dialPE(t testing.TB, spe asap.PoolElement, id uint32) *fakeRegistrar {
	t.Helper()
	cfg := transport.DefaultConfig()
	cfg.PPID = transport.PPIDASAP
	spec := fmt.Sprintf("tcp:%s:%d", spe.ASAP.Addrs[0], spe.ASAP.Port)
	c, err := transport.Dial(ctxTimeout(t, 5*time.Second), spec, cfg)
	if err != nil {
		t.Fatalf("dial the PE's ASAP endpoint %s: %v", spec, err)
	}
	t.Cleanup(func() { c.Close() })
	return &fakeRegistrar{t: t, c: c, id: id}
}

func (f *fakeRegistrar) send(m asap.Message) {
	f.t.Helper()
	b, err := asap.Pack(m)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.c.Send(ctxTimeout(f.t, 5*time.Second), transport.PPIDASAP, b); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeRegistrar) recv() asap.Message {
	f.t.Helper()
	_, b, err := f.c.Recv(ctxTimeout(f.t, 5*time.Second))
	if err != nil {
		f.t.Fatalf("fake registrar: %v", err)
	}
	m, _, err := asap.Unpack(b, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return m
}

// A registrar that takes the PE over reaches it on its ASAP endpoint with
// an H=1 keep-alive: the PE acks and renews at the new home from then on.
func TestElement_TakeoverAdoption(t *testing.T) {
	sharedtest.CheckLeaks(t)
	r := startRegistrar(t, nil)
	srv := listenServer(t)
	cfg := testConfig(t, "echo", srv, r.ASAPAddr())
	cfg.ReregInterval = 300 * time.Millisecond
	el := newElement(t, cfg)
	if err := el.Register(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	spe, ok := r.Handlespace().Lookup("echo", el.ID())
	if !ok {
		t.Fatal("PE not registered")
	}
	const newHome = 0xB0B0B0B0
	f := dialPE(t, spe.Element, newHome)

	// The RFC form without a PE identifier is acked for this PE.
	f.send(&asap.EndpointKeepAlive{ServerID: newHome, PoolHandle: "echo"})
	if ack, ok := f.recv().(*asap.EndpointKeepAliveAck); !ok || ack.PoolHandle != "echo" || ack.ID != el.ID() {
		t.Fatalf("answer to a keep-alive without PE ID: got %+v, want an ack for 0x%08x", ack, el.ID())
	}
	// A keep-alive for another PE is not acked (the next message is the
	// ack of the H=1 keep-alive below).
	f.send(&asap.EndpointKeepAlive{ServerID: newHome, PoolHandle: "echo", HasID: true, ID: el.ID() + 1})

	f.send(&asap.EndpointKeepAlive{Home: true, ServerID: newHome, PoolHandle: "echo", HasID: true, ID: el.ID()})
	if ack, ok := f.recv().(*asap.EndpointKeepAliveAck); !ok || ack.ID != el.ID() {
		t.Fatalf("answer to H=1 keep-alive: got %+v, want an ack for 0x%08x", ack, el.ID())
	}
	var reg *asap.Registration
	for reg == nil {
		switch m := f.recv().(type) {
		case *asap.Registration:
			reg = m
		case *asap.EndpointKeepAliveAck:
		default:
			t.Fatalf("new home got %T, want the PE's re-registration", m)
		}
	}
	if reg.PoolHandle != "echo" || reg.PoolElement.ID != el.ID() || reg.PoolElement.Home != newHome {
		t.Fatalf("re-registration at the new home: got %s 0x%08x home 0x%08x, want echo 0x%08x home 0x%08x",
			reg.PoolHandle, reg.PoolElement.ID, reg.PoolElement.Home, el.ID(), uint32(newHome))
	}
	f.send(&asap.RegistrationResponse{PoolHandle: "echo", ID: el.ID()})
	waitFor(t, 5*time.Second, "the status to name the new home", func() bool {
		st := el.Status()
		return st.Home == newHome && strings.Contains(st.Registrar, "0xb0b0b0b0")
	})
}

func TestElement_RegistrationRefused(t *testing.T) {
	sharedtest.CheckLeaks(t)
	r := startRegistrar(t, nil)
	srv := listenServer(t)
	if err := newElement(t, testConfig(t, "pool", srv, r.ASAPAddr())).Register(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, "pool", srv, r.ASAPAddr())
	cfg.Policy = asap.Policy{Type: asap.PolicyLeastUsed}
	el := newElement(t, cfg)
	err := el.Register(ctxTimeout(t, 10*time.Second))
	var rerr *pe.RegistrationError
	if !errors.As(err, &rerr) || rerr.Code() != asap.CauseInconsistentPolicy {
		t.Fatalf("Register with another policy: got %v, want a RegistrationError with cause inconsistent pooling policy", err)
	}
	var oe *asap.OperationError
	if !errors.As(err, &oe) || !strings.Contains(err.Error(), "register with the pool's policy") {
		t.Errorf("error %q: want an *asap.OperationError inside and advice", err)
	}
	if el.Status().Registered {
		t.Error("Status: registered after a refusal")
	}
}

func TestElement_NoRegistrar(t *testing.T) {
	sharedtest.CheckLeaks(t)
	srv := listenServer(t)
	addr := fmt.Sprintf("tcp:127.0.0.1:%d", freePort(t))
	el := newElement(t, testConfig(t, "echo", srv, addr))
	err := el.Register(ctxTimeout(t, 10*time.Second))
	if !errors.Is(err, pe.ErrNoRegistrar) || !strings.Contains(err.Error(), "tried "+addr+": connection refused") {
		t.Fatalf("Register without a registrar: got %v, want ErrNoRegistrar naming %s", err, addr)
	}
	if err := el.Close(); err != nil {
		t.Errorf("Close of an unregistered element: %v", err)
	}
}

func TestConfig_Validate(t *testing.T) {
	if err := pe.DefaultConfig().Validate(); err == nil ||
		!strings.Contains(err.Error(), "PoolHandle is empty") || !strings.Contains(err.Error(), "User is not set") {
		t.Errorf("default config: got %v, want errors naming PoolHandle and User", err)
	}
	c := pe.DefaultConfig()
	c.PoolHandle = asap.PoolHandle(strings.Repeat("x", 33))
	c.User = asap.Transport{Kind: asap.ParamUDPTransport, Addrs: []netip.Addr{loopback}}
	c.Policy.Type = 0x77
	c.ReregInterval = time.Second
	c.Lifetime = 500 * time.Millisecond
	c.ASAP = "udp:1.2.3.4:5"
	c.Registrars = []string{"::1:3863"}
	c.Announce = "10.0.0.1:3863"
	c.RequestTimeout = 0
	c.RequestRetries = -1
	err := c.Validate()
	for _, want := range []string{"PoolHandle is 33 bytes", "User.Kind udp", "User.Port is 0", "Policy.Type 0x77",
		"Lifetime 500ms is shorter than ReregInterval 1s", "ASAP:", "Registrars[0]", "Announce:", "RequestTimeout 0s", "RequestRetries -1"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: got %v, want it to say %q", err, want)
		}
	}
	c = pe.DefaultConfig()
	c.PoolHandle = "x"
	c.User = asap.Transport{Kind: asap.ParamTCPTransport, Port: 1}
	c.Announce = "off"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "cannot find a registrar") {
		t.Errorf("no registrar and announces off: got %v", err)
	}
	c.Announce = ""
	if err := c.Validate(); err != nil {
		t.Errorf("minimal config with announces: %v", err)
	}
}

// The PE's home registrar dies; the cluster gives the PE a new home,
// which reaches it on its ASAP endpoint with an H=1 keep-alive: the PE
// follows and renews there, although its list names only the dead one.
func TestElement_ClusterTakeover(t *testing.T) {
	sharedtest.CheckLeaks(t)
	nodes := registrartest.StartCluster(t, 3, nil)
	var home *registrartest.Server
	for _, r := range nodes {
		if !r.Handlespace().IsLeader() {
			home = r
			break
		}
	}
	srv := listenServer(t)
	cfg := testConfig(t, "echo", srv, home.ASAPAddr())
	cfg.ReregInterval = 300 * time.Millisecond
	el := newElement(t, cfg)
	if err := el.Register(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	home.Crash()
	var next *registrartest.Server
	waitFor(t, 30*time.Second, "a new home registrar", func() bool {
		st := el.Status()
		for _, r := range nodes {
			if r != home && st.Home == r.ID() {
				next = r
			}
		}
		return next != nil
	})
	waitFor(t, 10*time.Second, "renewals at the new home", func() bool {
		st := el.Status()
		return st.Err == nil && strings.Contains(st.Registrar, fmt.Sprintf("0x%08x", next.ID())) &&
			time.Since(st.LastRegistration) < time.Second
	})
	for _, r := range nodes {
		if r == home {
			continue
		}
		if got, ok := r.Handlespace().Lookup("echo", el.ID()); !ok || got.Element.Home != next.ID() {
			t.Errorf("registrar 0x%08x: PE %+v (found %v), want home 0x%08x", r.ID(), got.Element, ok, next.ID())
		}
	}
}
