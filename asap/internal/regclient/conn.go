package regclient

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/transport"
)

// errTimeout is a request that got no answer within RequestTimeout.
var errTimeout = errors.New("no answer")

// Conn is one ASAP connection with a registrar: dialed by the Client, or
// accepted on a PE's ASAP endpoint and handed to Serve. Safe for
// concurrent use.
type Conn struct {
	cl     *Client
	tc     transport.Conn
	name   string // the spec dialed, or the peer's address
	dialed bool
	cand   int       // index in the candidate list when dialed
	since  time.Time // when the connection was set up

	id atomic.Uint32 // the registrar's server ID, once known

	mu      sync.Mutex
	waiters []*waiter
	done    chan struct{} // closed when the connection is gone
	err     error         // why, once done
}

type waiter struct {
	match func(asap.Message) bool
	ch    chan asap.Message // buffered: 1
}

func newConn(cl *Client, tc transport.Conn, name string, dialed bool) *Conn {
	return &Conn{cl: cl, tc: tc, name: name, dialed: dialed, since: time.Now(), done: make(chan struct{})}
}

// Since is when the connection was set up.
func (c *Conn) Since() time.Time { return c.since }

// Name is the address spec dialed, or the peer's address for an accepted
// connection ("tcp:127.0.0.1:3863").
func (c *Conn) Name() string { return c.name }

// ServerID is the registrar's ID, or 0 while unknown (it is learnt from
// announces and from the registrar's keep-alives).
func (c *Conn) ServerID() uint32 { return c.id.Load() }

// SetServerID records the registrar's ID.
func (c *Conn) SetServerID(id uint32) {
	if id != 0 {
		c.id.Store(id)
	}
}

// Label names the registrar for logs and errors: its ID if known, and
// its address.
func (c *Conn) Label() string {
	if id := c.ServerID(); id != 0 {
		return fmt.Sprintf("0x%08x at %s", id, c.name)
	}
	return c.name
}

// LocalAddrs are this side's addresses of the connection: the addresses
// the registrar sees us by.
func (c *Conn) LocalAddrs() []netip.Addr { return c.tc.LocalAddr().Addrs }

// Kind is the transport in use.
func (c *Conn) Kind() transport.Kind { return c.tc.Kind() }

// Dialed tells whether the client dialed the connection (false: the
// registrar opened it to the PE's ASAP endpoint).
func (c *Conn) Dialed() bool { return c.dialed }

// Done is closed when the connection is gone.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Alive reports whether the connection is still open.
func (c *Conn) Alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// Err says why the connection is gone (nil while it is open).
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Send encodes m and sends it, bounded by ctx and the request timeout.
func (c *Conn) Send(ctx context.Context, m asap.Message) error {
	b, err := asap.Pack(m)
	if err != nil {
		return err
	}
	return c.sendRaw(ctx, b)
}

func (c *Conn) sendRaw(ctx context.Context, b []byte) error {
	ctx, cancel := context.WithTimeout(ctx, c.cl.cfg.RequestTimeout)
	defer cancel()
	if err := c.tc.Send(ctx, transport.PPIDASAP, b); err != nil {
		return fmt.Errorf("send to registrar %s: %w", c.Label(), err)
	}
	return nil
}

// roundTrip sends b and waits up to timeout for a message match accepts.
func (c *Conn) roundTrip(ctx context.Context, b []byte, match func(asap.Message) bool, timeout time.Duration) (asap.Message, error) {
	w := &waiter{match: match, ch: make(chan asap.Message, 1)}
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	c.waiters = append(c.waiters, w)
	c.mu.Unlock()
	defer c.removeWaiter(w)
	if err := c.sendRaw(ctx, b); err != nil {
		return nil, err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case m := <-w.ch:
		return m, nil
	case <-c.done:
		return nil, c.Err()
	case <-t.C:
		return nil, fmt.Errorf("%w from registrar %s within %v", errTimeout, c.Label(), timeout)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *Conn) removeWaiter(w *waiter) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, x := range c.waiters {
		if x == w {
			c.waiters = append(c.waiters[:i], c.waiters[i+1:]...)
			return
		}
	}
}

// deliver hands m to the first waiter that wants it.
func (c *Conn) deliver(m asap.Message) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, w := range c.waiters {
		if w.match(m) {
			c.waiters = append(c.waiters[:i], c.waiters[i+1:]...)
			w.ch <- m
			return true
		}
	}
	return false
}

// fail records why the connection ended and closes it. Idempotent.
func (c *Conn) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	if err == nil {
		err = transport.ErrClosed
	}
	c.err = fmt.Errorf("connection to registrar %s lost: %w", c.Label(), err)
	close(c.done)
	c.mu.Unlock()
	_ = c.tc.Close()
}

// isResponse reports the message types that answer a request; one that no
// request waits for is dropped, not handed to the Handler.
func isResponse(m asap.Message) bool {
	switch m.Type() {
	case asap.TypeRegistrationResponse, asap.TypeDeregistrationResponse, asap.TypeHandleResolutionResponse:
		return true
	}
	return false
}

// read runs the connection until it fails or the client closes.
func (c *Conn) read(ctx context.Context) {
	for {
		ppid, b, err := c.tc.Recv(ctx)
		if err != nil {
			c.fail(err)
			c.cl.forget(c)
			return
		}
		if ppid != transport.PPIDASAP {
			c.cl.log.Debug("dropping non-ASAP message from a registrar", "registrar", c.name, "ppid", ppid)
			continue
		}
		m, _, err := asap.Unpack(b, nil)
		if err != nil {
			c.cl.log.Debug("dropping undecodable message from a registrar", "registrar", c.name, "error", err)
			continue
		}
		if c.deliver(m) {
			continue
		}
		if isResponse(m) {
			c.cl.log.Debug("dropping a response no request waits for", "registrar", c.name, "type", m.Type())
			continue
		}
		if e, ok := m.(*asap.Error); ok {
			c.cl.log.Warn("registrar reported an error", "registrar", c.Label(), "causes", e.Error.Error())
		}
		if h := c.cl.cfg.Handler; h != nil {
			h(c, m)
		}
	}
}
