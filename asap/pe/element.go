package pe

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/asap/internal/regclient"
	"github.com/rserpool-go/registrar/transport"
)

// Element is a pool element: it registers under a pool handle at a
// registrar, keeps the registration alive, answers the registrar's
// keep-alives, follows a new home registrar after a takeover, and
// deregisters on Close. Safe for concurrent use.
type Element struct {
	cfg    Config
	log    hclog.Logger
	client *regclient.Client
	ln     transport.Listener // the PE's ASAP endpoint

	regMu sync.Mutex // one registration exchange at a time

	mu         sync.Mutex
	id         uint32
	policy     asap.Policy
	home       uint32
	registered bool
	running    bool // the renewal loop runs
	closed     bool
	last       asap.PoolElement // as last registered
	lastAt     time.Time
	lastVia    *regclient.Conn
	lastErr    error

	kick   chan struct{} // renew now
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Status is a snapshot of an Element's registration.
type Status struct {
	// Registered is true from the first accepted registration until its
	// registration life runs out without a renewal (or Close).
	Registered bool
	// Home is the home registrar's ID (0 while unknown: the PE learns it
	// from the registrar's keep-alives and announces).
	Home uint32
	// Registrar names the registrar of the last accepted registration.
	Registrar string
	// LastRegistration is when the last registration was accepted.
	LastRegistration time.Time
	// Transport and Since describe the connection to that registrar: its
	// transport and when it was set up (for status reports).
	Transport transport.Kind
	Since     time.Time
	// Err is the last failure of a renewal, nil after a success.
	Err error
}

// New checks cfg, picks the PE identifier and opens the PE's ASAP
// endpoint. It contacts no registrar: Register does.
func New(cfg Config) (*Element, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	id := cfg.ID
	for id == 0 {
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("pe: random identifier: %w", err)
		}
		id = binary.BigEndian.Uint32(b[:])
	}
	e := &Element{cfg: cfg, id: id, policy: cfg.Policy, kick: make(chan struct{}, 1)}
	e.log = log.With("pool", string(cfg.PoolHandle), "pe", fmt.Sprintf("0x%08x", id))
	e.ctx, e.cancel = context.WithCancel(context.Background())
	client, err := regclient.New(cfg.clientConfig(e.log, e.handle))
	if err != nil {
		e.cancel()
		return nil, fmt.Errorf("pe: %w", err)
	}
	e.client = client
	network := cfg.Network
	if network == nil {
		network = transport.OSNetwork()
	}
	ln, err := network.Listen(e.ctx, cfg.ASAP, regclient.ControlConfig(e.log))
	if err != nil {
		e.cancel()
		client.Close()
		return nil, fmt.Errorf("pe: open the ASAP endpoint %s: %w", cfg.ASAP, err)
	}
	e.ln = ln
	e.wg.Add(1)
	go e.acceptLoop()
	return e, nil
}

// ID is the PE identifier.
func (e *Element) ID() uint32 { return e.id }

// PoolHandle is the pool the element registers in.
func (e *Element) PoolHandle() asap.PoolHandle { return e.cfg.PoolHandle }

// ASAPAddrs are the bound endpoints of the PE's ASAP endpoint.
func (e *Element) ASAPAddrs() []transport.Endpoint { return e.ln.Addrs() }

// PoolElement is the Pool Element parameter as last registered (with the
// addresses the registrar saw), for business cards. Zero before the
// first registration.
func (e *Element) PoolElement() asap.PoolElement {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.last
}

// Status returns the registration state.
func (e *Element) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := Status{Registered: e.registered && time.Since(e.lastAt) < e.cfg.lifetime(), Home: e.home, LastRegistration: e.lastAt, Err: e.lastErr}
	if e.lastVia != nil {
		st.Registrar = e.lastVia.Label()
		st.Transport, st.Since = e.lastVia.Kind(), e.lastVia.Since()
	}
	return st
}

// Register registers the PE and returns once a registrar accepted it
// (after its commit) or refused it (a *RegistrationError saying what to
// change). A registration that no registrar answers fails with an error
// matching ErrNoRegistrar; Register may be called again. Once registered,
// the element renews the registration every ReregInterval, and at once
// after SetLoad or SetPolicy, hunting for another registrar when the
// current one is lost, until Close. Calling Register again renews at once.
func (e *Element) Register(ctx context.Context) error {
	if err := e.register(ctx); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.running && !e.closed {
		e.running = true
		e.wg.Add(1)
		go e.renewLoop()
	}
	return nil
}

// SetLoad sets the load (a fraction of 0xFFFFFFFF) of an adaptive policy
// (least used and its variants) and renews the registration at once.
func (e *Element) SetLoad(load uint32) error {
	e.mu.Lock()
	if !e.policy.Type.Adaptive() {
		e.mu.Unlock()
		return fmt.Errorf("pe: policy %v carries no load; SetLoad works for the least-used policies", e.policy.Type)
	}
	changed := e.policy.Load != load
	e.policy.Load = load
	e.mu.Unlock()
	if changed {
		e.renewNow()
	}
	return nil
}

// SetPolicy replaces the policy and its values (the type must stay the
// pool's) and renews the registration at once.
func (e *Element) SetPolicy(p asap.Policy) error {
	if !p.Type.Known() {
		return fmt.Errorf("pe: policy type %v is not a known member selection policy", p.Type)
	}
	e.mu.Lock()
	e.policy = p
	e.mu.Unlock()
	e.renewNow()
	return nil
}

// Policy returns the policy and values the element registers with.
func (e *Element) Policy() asap.Policy {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.policy
}

func (e *Element) renewNow() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// acceptLoop hands connections opened by registrars (a new home after a
// takeover, or the home probing a PE whose registration connection broke)
// to the client, which answers their keep-alives.
func (e *Element) acceptLoop() {
	defer e.wg.Done()
	for {
		tc, err := e.ln.Accept(e.ctx)
		if err != nil {
			if e.ctx.Err() == nil && !errors.Is(err, transport.ErrClosed) {
				e.log.Error("the ASAP endpoint stopped accepting; a registrar that takes this PE over cannot reach it", "error", err)
			}
			return
		}
		e.log.Debug("registrar connected to the ASAP endpoint", "from", tc.RemoteAddr().String())
		e.client.Serve(tc)
	}
}

// retryDelay is the first wait after a failed renewal; it doubles up to
// the re-registration interval.
const retryDelay = 250 * time.Millisecond

// renewLoop renews the registration every ReregInterval, at once when
// kicked, and sooner (with backoff) after a failure.
func (e *Element) renewLoop() {
	defer e.wg.Done()
	interval := e.cfg.ReregInterval
	backoff := min(retryDelay, interval)
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		case <-e.kick:
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
		}
		err := e.register(e.ctx)
		if e.ctx.Err() != nil {
			return
		}
		next := interval
		if err != nil {
			next = backoff
			backoff = min(2*backoff, interval)
			e.log.Warn("registration renewal failed; retrying", "error", err, "retry_in", next)
		} else {
			backoff = min(retryDelay, interval)
		}
		t.Reset(next)
	}
}

// register runs one registration exchange, hunting through the registrars.
func (e *Element) register(ctx context.Context) error {
	e.regMu.Lock()
	defer e.regMu.Unlock()
	e.mu.Lock()
	closed := e.closed
	e.mu.Unlock()
	if closed {
		return ErrClosed
	}
	h, id := e.cfg.PoolHandle, e.id
	match := func(m asap.Message) bool {
		r, ok := m.(*asap.RegistrationResponse)
		return ok && r.PoolHandle == h && r.ID == id
	}
	var sent asap.PoolElement
	build := func(c *regclient.Conn) (asap.Message, error) {
		pe, err := e.poolElement(c)
		sent = pe
		return &asap.Registration{PoolHandle: h, PoolElement: pe}, err
	}
	for attempt := 0; ; attempt++ {
		resp, conn, err := e.client.Request(ctx, build, match)
		if err != nil {
			err = fmt.Errorf("register PE 0x%08x in pool %q: %w", id, h, err)
			e.setErr(err)
			return err
		}
		r := resp.(*asap.RegistrationResponse)
		if r.Reject {
			rerr := &RegistrationError{PoolHandle: h, ID: id, Registrar: conn.Label(), Cause: r.Error}
			e.setErr(rerr)
			if rerr.Code() == asap.CauseLackOfResources && attempt == 0 {
				// This registrar cannot commit (e.g. its cluster lost
				// quorum): try another one.
				e.client.Drop(conn, rerr)
				continue
			}
			return rerr
		}
		e.accepted(conn, sent)
		return nil
	}
}

func (e *Element) setErr(err error) {
	e.mu.Lock()
	e.lastErr = err
	e.mu.Unlock()
}

// accepted records a registration the registrar accepted.
func (e *Element) accepted(conn *regclient.Conn, pe asap.PoolElement) {
	now := time.Now()
	e.mu.Lock()
	first := !e.registered || e.lastVia == nil || e.lastVia.Name() != conn.Name()
	if first || e.home == 0 {
		// The registrar that accepted is the home registrar; its ID is
		// known from announces and keep-alives (0 until then).
		e.home = conn.ServerID()
	}
	e.registered, e.last, e.lastAt, e.lastErr, e.lastVia = true, pe, now, nil, conn
	home := e.home
	e.mu.Unlock()
	if home != 0 {
		e.client.SetPreferred(home)
	}
	if first {
		e.log.Info("pe registered", "registrar", conn.Label(),
			"user", transportString(pe.User), "asap", transportString(pe.ASAP), "policy", pe.Policy.Type.String(),
			"lifetime", time.Duration(pe.Lifetime)*time.Millisecond)
	} else {
		e.log.Debug("registration renewed", "registrar", conn.Label())
	}
}

// poolElement builds the Pool Element parameter for a registration over
// c: unspecified addresses become the addresses the registrar sees.
func (e *Element) poolElement(c *regclient.Conn) (asap.PoolElement, error) {
	e.mu.Lock()
	pol, home := e.policy, e.home
	e.mu.Unlock()
	local := c.LocalAddrs()
	user := e.cfg.User
	user.Addrs = regclient.ReplaceUnspecified(user.Addrs, local)
	if len(user.Addrs) == 0 {
		return asap.PoolElement{}, errors.New("pe: no address for the user transport: give the service's address")
	}
	if user.Kind != asap.ParamSCTPTransport {
		user.Addrs = user.Addrs[:1]
	}
	return asap.PoolElement{
		ID:       e.id,
		Home:     home,
		Lifetime: uint32(e.cfg.lifetime() / time.Millisecond),
		User:     user,
		Policy:   pol,
		ASAP:     e.asapTransport(local),
	}, nil
}

// asapTransport describes the PE's ASAP endpoint for the registrar: the
// SCTP socket if there is one (RSPLIB requires SCTP), else the TCP one,
// transport use data only, wildcard addresses replaced by local.
func (e *Element) asapTransport(local []netip.Addr) asap.Transport {
	t := transportOf(e.ln.Addrs(), asap.UseData)
	t.Addrs = regclient.ReplaceUnspecified(t.Addrs, local)
	if len(t.Addrs) == 0 {
		return asap.Transport{} // the registrar falls back to the connection
	}
	if t.Kind != asap.ParamSCTPTransport {
		t.Addrs = t.Addrs[:1]
	}
	return t
}

// handle answers what registrars send: ENDPOINT_KEEP_ALIVE.
func (e *Element) handle(c *regclient.Conn, m asap.Message) {
	ka, ok := m.(*asap.EndpointKeepAlive)
	if !ok {
		if m.Type() != asap.TypeError {
			e.log.Debug("ignoring a message a PE does not handle", "registrar", c.Label(), "type", m.Type())
		}
		return
	}
	// RSPLIB names the PE; the RFC form does not, and then every
	// registration of this PE in the pool is meant (an Element has one).
	if ka.PoolHandle != e.cfg.PoolHandle || (ka.HasID && ka.ID != e.id) {
		e.log.Debug("ignoring a keep-alive for another PE", "registrar", c.Label(), "pool", string(ka.PoolHandle), "id", fmt.Sprintf("0x%08x", ka.ID))
		return
	}
	c.SetServerID(ka.ServerID)
	ctx, cancel := context.WithTimeout(e.ctx, e.cfg.RequestTimeout)
	err := c.Send(ctx, &asap.EndpointKeepAliveAck{PoolHandle: e.cfg.PoolHandle, ID: e.id})
	cancel()
	if err != nil {
		e.log.Debug("keep-alive ack not sent", "registrar", c.Label(), "error", err)
		return
	}
	cur := e.client.Current()
	e.mu.Lock()
	old := e.home
	adopt := false
	switch {
	case ka.Home && c != cur:
		// A registrar that is not the one we talk to claims us: a new home
		// after a takeover. Its connection becomes ours.
		adopt = true
		e.home = ka.ServerID
	case ka.Home || (c == cur && e.home == 0):
		e.home = ka.ServerID
	case cur == nil && e.registered && ka.ServerID == e.home:
		// Our registration connection broke and the home registrar
		// reached us through the ASAP endpoint: keep talking to it there.
		adopt = true
	}
	home := e.home
	e.mu.Unlock()
	e.log.Debug("keep-alive answered", "registrar", c.Label(), "from", fmt.Sprintf("0x%08x", ka.ServerID), "home", ka.Home)
	if adopt {
		e.client.Adopt(c)
	}
	if home != 0 {
		e.client.SetPreferred(home)
	}
	if adopt || (home != old && old != 0) {
		e.log.Info("new home registrar", "from", fmt.Sprintf("0x%08x", old), "to", fmt.Sprintf("0x%08x", home), "registrar", c.Name())
	}
}

// Close stops renewing, deregisters the PE (bounded by the request
// timeout and retries) and closes its connections and ASAP endpoint. It
// returns the deregistration's error, if any. Idempotent.
func (e *Element) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	registered := e.registered
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.registered = false
		e.mu.Unlock()
	}()
	e.cancel()
	e.wg.Wait()
	var err error
	if registered {
		err = e.deregister()
	}
	e.ln.Close()
	e.client.Close()
	return err
}

// deregister sends ASAP_DEREGISTRATION to the current registrar (or the
// first one that answers), bounded by the request timeout and retries.
func (e *Element) deregister() error {
	h, id := e.cfg.PoolHandle, e.id
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(e.cfg.RequestRetries+1)*e.cfg.RequestTimeout)
	defer cancel()
	resp, conn, err := e.client.Request(ctx,
		func(*regclient.Conn) (asap.Message, error) { return &asap.Deregistration{PoolHandle: h, ID: id}, nil },
		func(m asap.Message) bool {
			r, ok := m.(*asap.DeregistrationResponse)
			return ok && r.PoolHandle == h && r.ID == id
		})
	if err != nil {
		return fmt.Errorf("deregister PE 0x%08x from pool %q: %w (the registrar drops it when its lifetime ends)", id, h, err)
	}
	if r := resp.(*asap.DeregistrationResponse); r.Error != nil {
		return fmt.Errorf("deregister PE 0x%08x from pool %q: registrar %s answered %w", id, h, conn.Label(), r.Error)
	}
	e.log.Info("pe deregistered", "registrar", conn.Label())
	return nil
}
