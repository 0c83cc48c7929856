package regclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/transport"
)

// ErrNoRegistrar is wrapped by the error of a request that no registrar
// answered.
var ErrNoRegistrar = errors.New("no registrar answered")

// ErrClosed is returned after Close.
var ErrClosed = errors.New("closed")

// Attempt is one registrar tried during a server hunt and why it failed.
type Attempt struct {
	Registrar string
	Err       error
}

// NoRegistrarError is returned when every candidate registrar failed. It
// matches ErrNoRegistrar with errors.Is.
type NoRegistrarError struct {
	Tried    []Attempt
	Announce string // the announce group listened to, "" when off
	Waited   time.Duration
}

func (e *NoRegistrarError) Error() string {
	var b strings.Builder
	if len(e.Tried) == 0 {
		b.WriteString("no registrar known: none configured")
		if e.Announce != "" {
			fmt.Fprintf(&b, " and no announce heard on %s within %v", e.Announce, e.Waited)
		}
		b.WriteString(": give registrar addresses, or check that registrar announces reach this host")
		return b.String()
	}
	b.WriteString("no registrar answered (tried ")
	for i, a := range e.Tried {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(a.Registrar)
		if a.Err != nil {
			b.WriteString(": ")
			b.WriteString(short(a.Err))
		}
	}
	b.WriteString("): check the registrar addresses")
	if e.Announce != "" {
		fmt.Fprintf(&b, ", or that announces on %s reach this host", e.Announce)
	} else {
		b.WriteString(", or that announces reach this host")
	}
	return b.String()
}

// Is makes errors.Is(err, ErrNoRegistrar) true.
func (e *NoRegistrarError) Is(target error) bool { return target == ErrNoRegistrar }

// short gives the gist of a connection error.
func short(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "unreachable"
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case errors.Is(err, errTimeout):
		return err.Error()
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	return err.Error()
}

// candidate is a registrar to try.
type candidate struct {
	spec string
	id   uint32 // announced ID, 0 for static entries
}

// Client talks to registrars for a PE or a PU. Safe for concurrent use.
type Client struct {
	cfg   Config
	log   hclog.Logger
	net   transport.Network
	group string // announce group, "" when off
	ann   *announces

	ctx    context.Context // ends with Close
	cancel context.CancelFunc
	hunt   chan struct{} // one server hunt at a time

	mu        sync.Mutex
	cur       *Conn
	next      int    // where the next hunt starts in the candidate list
	preferred uint32 // registrar to try first among the announced ones
	conns     map[*Conn]struct{}
	closed    bool
	wg        sync.WaitGroup
}

// New starts a client: it joins the announce group if announces are on.
// No registrar is contacted before the first request.
func New(cfg Config) (*Client, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	network := cfg.Network
	if network == nil {
		network = transport.OSNetwork()
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{cfg: cfg, log: log, net: network, ctx: ctx, cancel: cancel,
		hunt: make(chan struct{}, 1), conns: map[*Conn]struct{}{}}
	if g := cfg.announceGroup(); g != "off" {
		ann, err := openAnnounces(ctx, g, cfg.AnnounceInterface, cfg.AnnounceTimeout, log)
		if err != nil {
			cancel()
			return nil, err
		}
		c.group, c.ann = g, ann
		c.Go(func() { ann.run(ctx) })
	}
	return c, nil
}

// Go runs f in a goroutine owned by the client (Close waits for it) and
// reports false, without running f, once the client is closed. f should
// watch Context.
func (c *Client) Go(f func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
	return true
}

// Context ends when the client closes.
func (c *Client) Context() context.Context { return c.ctx }

// candidates lists the static registrars, then the announced ones.
func (c *Client) candidates() ([]candidate, <-chan struct{}) {
	out := make([]candidate, 0, len(c.cfg.Registrars))
	seen := map[string]bool{}
	for _, s := range c.cfg.Registrars {
		if !seen[s] {
			seen[s] = true
			out = append(out, candidate{spec: s})
		}
	}
	if c.ann == nil {
		return out, nil
	}
	c.mu.Lock()
	pref := c.preferred
	c.mu.Unlock()
	ann, changed := c.ann.list(time.Now(), pref)
	for _, a := range ann {
		if !seen[a.spec] {
			seen[a.spec] = true
			out = append(out, candidate{spec: a.spec, id: a.id})
		}
	}
	return out, changed
}

// SetPreferred makes the hunt try the registrar with this ID first among
// the announced ones (a PE's home registrar).
func (c *Client) SetPreferred(id uint32) {
	c.mu.Lock()
	c.preferred = id
	c.mu.Unlock()
}

// Current returns the current registrar connection, or nil.
func (c *Client) Current() *Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur != nil && !c.cur.Alive() {
		return nil
	}
	return c.cur
}

// huntLog records the registrars one request tried and why each failed, in
// the order they were tried.
type huntLog struct {
	tried map[string]error
	order []string
}

func newHuntLog() *huntLog { return &huntLog{tried: map[string]error{}} }

// failed records that the registrar name failed with err.
func (h *huntLog) failed(name string, err error) {
	if _, seen := h.tried[name]; !seen {
		h.order = append(h.order, name)
	}
	h.tried[name] = err
}

// connect returns the current connection, or hunts: it dials the
// candidates not yet tried, starting at the one after the last that
// failed, and makes the first that accepts current.
func (c *Client) connect(ctx context.Context, h *huntLog) (*Conn, error) {
	select {
	case c.hunt <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.ctx.Done():
		return nil, ErrClosed
	}
	defer func() { <-c.hunt }()
	if cur := c.Current(); cur != nil {
		if _, failed := h.tried[cur.name]; !failed {
			return cur, nil
		}
	}
	waited := false
	var waitedFor time.Duration
	for {
		cands, changed := c.candidates()
		c.mu.Lock()
		start := c.next
		c.mu.Unlock()
		for i := range cands {
			k := (start + i) % len(cands)
			cd := cands[k]
			if _, ok := h.tried[cd.spec]; ok {
				continue
			}
			conn, err := c.dial(ctx, cd, k)
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				if errors.Is(err, ErrClosed) {
					return nil, err
				}
				h.failed(cd.spec, err)
				c.log.Debug("registrar not reachable", "registrar", cd.spec, "error", err)
				continue
			}
			return conn, nil
		}
		// Every candidate failed, or none is known yet: wait once for an
		// announce when none was heard at all.
		if c.ann == nil || len(cands) > 0 || waited {
			break
		}
		waited = true
		t0 := time.Now()
		t := time.NewTimer(c.cfg.AnnounceTimeout)
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-c.ctx.Done():
			t.Stop()
			return nil, ErrClosed
		}
		t.Stop()
		waitedFor = time.Since(t0).Round(time.Millisecond)
	}
	e := &NoRegistrarError{Announce: c.group, Waited: waitedFor}
	for _, s := range h.order {
		e.Tried = append(e.Tried, Attempt{Registrar: s, Err: h.tried[s]})
	}
	return nil, e
}

// dial connects to one candidate and makes it the current connection.
func (c *Client) dial(ctx context.Context, cd candidate, idx int) (*Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	tcfg := ControlConfig(c.log)
	tcfg.TLS = c.cfg.TLS
	tc, err := c.net.Dial(dctx, cd.spec, tcfg)
	if err != nil {
		return nil, err
	}
	conn := newConn(c, tc, cd.spec, true)
	conn.cand = idx
	id := cd.id
	if id == 0 && c.ann != nil {
		id = c.ann.idOf(cd.spec)
	}
	conn.SetServerID(id)
	if !c.track(conn) {
		return nil, ErrClosed
	}
	c.mu.Lock()
	old := c.cur
	c.cur = conn
	c.mu.Unlock()
	if old != nil && old != conn {
		old.fail(errors.New("replaced by another registrar connection"))
	}
	c.log.Debug("connected to registrar", "registrar", conn.Label())
	return conn, nil
}

// track registers conn and starts its reader; false (conn closed) once the
// client is closed.
func (c *Client) track(conn *Conn) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		_ = conn.tc.Close()
		return false
	}
	c.conns[conn] = struct{}{}
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		conn.read(c.ctx)
	}()
	return true
}

// forget removes a connection that ended.
func (c *Client) forget(conn *Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.conns, conn)
	if c.cur == conn {
		c.cur = nil
		if conn.dialed {
			c.next = conn.cand + 1
		}
	}
}

// Drop closes a connection that failed; the next request hunts, starting
// after it.
func (c *Client) Drop(conn *Conn, reason error) {
	if conn == nil {
		return
	}
	if conn.Alive() {
		c.log.Info("leaving registrar", "registrar", conn.Label(), "reason", reason)
	}
	conn.fail(reason)
	c.forget(conn)
}

// Serve runs a connection a registrar opened to us (a PE's ASAP
// endpoint): its messages go to the Handler. It returns nil, and closes
// tc, once the client is closed.
func (c *Client) Serve(tc transport.Conn) *Conn {
	conn := newConn(c, tc, tc.RemoteAddr().Network()+":"+tc.RemoteAddr().String(), false)
	conn.cand = -1
	if !c.track(conn) {
		return nil
	}
	return conn
}

// Adopt makes conn the current registrar connection (a new home
// registrar reached us); the previous one is closed.
func (c *Client) Adopt(conn *Conn) {
	c.mu.Lock()
	old := c.cur
	c.cur = conn
	c.mu.Unlock()
	if old != nil && old != conn {
		old.fail(fmt.Errorf("home registrar is now %s", conn.Label()))
		c.forget(old)
	}
}

// Request sends the message build makes for a connection and waits for
// the response match accepts: on the current connection, sent again up to
// RequestRetries times after RequestTimeout each, then on the next
// registrar of the hunt. It returns the response and the connection that
// answered, or a *NoRegistrarError once every candidate failed.
func (c *Client) Request(ctx context.Context, build func(*Conn) (asap.Message, error), match func(asap.Message) bool) (asap.Message, *Conn, error) {
	h := newHuntLog()
	for {
		conn, err := c.connect(ctx, h)
		if err != nil {
			return nil, nil, err
		}
		m, err := build(conn)
		if err != nil {
			return nil, conn, err
		}
		b, err := asap.Pack(m)
		if err != nil {
			return nil, conn, err
		}
		var last error
		for attempt := 0; attempt <= c.cfg.RequestRetries; attempt++ {
			resp, err := conn.roundTrip(ctx, b, match, c.cfg.RequestTimeout)
			if err == nil {
				return resp, conn, nil
			}
			last = err
			if ctx.Err() != nil {
				return nil, conn, ctx.Err()
			}
			if !conn.Alive() {
				break
			}
			c.log.Debug("request not answered; sending it again", "registrar", conn.Label(), "type", m.Type(), "attempt", attempt+1)
		}
		h.failed(conn.name, last)
		c.Drop(conn, last)
	}
}

// Send sends a message that has no response (ENDPOINT_UNREACHABLE) to
// the current registrar, hunting for one if needed.
func (c *Client) Send(ctx context.Context, m asap.Message) error {
	h := newHuntLog()
	for {
		conn, err := c.connect(ctx, h)
		if err != nil {
			return err
		}
		err = conn.Send(ctx, m)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		h.failed(conn.name, err)
		c.Drop(conn, err)
	}
}

// Close stops the announce listener, closes every connection and waits
// for the client's goroutines. Idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	conns := make([]*Conn, 0, len(c.conns))
	for conn := range c.conns {
		conns = append(conns, conn)
	}
	c.cur = nil
	c.mu.Unlock()
	c.cancel()
	if c.ann != nil {
		c.ann.close()
	}
	for _, conn := range conns {
		conn.fail(ErrClosed)
	}
	c.wg.Wait()
	return nil
}
