package transport

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// pipeQueue is how many messages a pipe end buffers before Send blocks.
const pipeQueue = 64

// Pipe returns two connected in-memory Conns with DefaultConfig: what one
// Sends the other Recvs, whole and with its PPID. See NewPipe.
func Pipe() (Conn, Conn) {
	a, b, _ := NewPipe(DefaultConfig(), DefaultConfig())
	return a, b
}

// NewPipe returns two connected in-memory Conns, each with its own config.
// They behave like the real transports:
//   - each end buffers up to 64 messages; Send blocks when the peer's buffer
//     is full and honours ctx;
//   - Send rejects a message longer than its MaxMessageSize
//     (ErrMessageTooLarge) and Recv fails on one longer than its own and
//     closes the pipe, as TCP does;
//   - Recv honours ctx and ReadTimeout (closing the pipe on expiry);
//   - Close unblocks both ends; the peer first receives what was queued,
//     then io.EOF.
//
// PeerAddrs of one end returns the other's Config.LocalAddrs.
func NewPipe(cfgA, cfgB Config) (Conn, Conn, error) {
	if err := cfgA.Validate(); err != nil {
		return nil, nil, err
	}
	if err := cfgB.Validate(); err != nil {
		return nil, nil, err
	}
	a, b := newPipePair(cfgA, memEndpoint("pipe-a"), cfgB, memEndpoint("pipe-b"))
	return a, b, nil
}

type pipeMsg struct {
	ppid uint32
	data []byte
}

// pipeConn is one end of an in-memory pipe.
type pipeConn struct {
	cfg    Config
	log    hclog.Logger
	local  Endpoint
	in     chan pipeMsg  // messages for this end
	closed chan struct{} // closed when this end is closed
	peer   *pipeConn
	rsem   chan struct{}

	mu      sync.Mutex
	readErr error
	once    sync.Once
}

var _ Conn = (*pipeConn)(nil)

func newPipePair(cfgA Config, nameA Endpoint, cfgB Config, nameB Endpoint) (*pipeConn, *pipeConn) {
	mk := func(cfg Config, name Endpoint) *pipeConn {
		return &pipeConn{
			cfg:    cfg,
			log:    cfg.logger().With("transport", "pipe", "local", name.Name),
			local:  name,
			in:     make(chan pipeMsg, pipeQueue),
			closed: make(chan struct{}),
			rsem:   make(chan struct{}, 1),
		}
	}
	a, b := mk(cfgA, nameA), mk(cfgB, nameB)
	a.peer, b.peer = b, a
	return a, b
}

// Kind implements Conn.
func (c *pipeConn) Kind() Kind { return KindPipe }

// LocalAddr implements Conn.
func (c *pipeConn) LocalAddr() Endpoint { return c.local }

// RemoteAddr implements Conn.
func (c *pipeConn) RemoteAddr() Endpoint { return c.peer.local }

// PeerAddrs implements Conn.
func (c *pipeConn) PeerAddrs() []netip.Addr { return unmapAll(c.peer.cfg.LocalAddrs) }

// Send implements Conn.
func (c *pipeConn) Send(ctx context.Context, ppid uint32, msg []byte) error {
	if len(msg) == 0 {
		return fmt.Errorf("pipe send: %w: empty message", ErrBadFrame)
	}
	if len(msg) > c.cfg.MaxMessageSize {
		return fmt.Errorf("pipe send: %w: %d bytes, limit %d", ErrMessageTooLarge, len(msg), c.cfg.MaxMessageSize)
	}
	select {
	case <-c.closed:
		return fmt.Errorf("pipe send: %w", ErrClosed)
	case <-c.peer.closed:
		return fmt.Errorf("pipe send: peer closed: %w", io.ErrClosedPipe)
	default:
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m := pipeMsg{ppid: ppid, data: append([]byte(nil), msg...)}
	select {
	case c.peer.in <- m:
		return nil
	case <-c.closed:
		return fmt.Errorf("pipe send: %w", ErrClosed)
	case <-c.peer.closed:
		return fmt.Errorf("pipe send: peer closed: %w", io.ErrClosedPipe)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Recv implements Conn.
func (c *pipeConn) Recv(ctx context.Context) (uint32, []byte, error) {
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	select {
	case c.rsem <- struct{}{}:
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	}
	defer func() { <-c.rsem }()
	if err := c.getReadErr(); err != nil {
		return 0, nil, err
	}
	var timeout <-chan time.Time
	if c.cfg.ReadTimeout > 0 {
		t := time.NewTimer(c.cfg.ReadTimeout)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-c.closed:
		return 0, nil, c.setReadErr(fmt.Errorf("pipe recv: %w", ErrClosed))
	default:
	}
	select {
	case m := <-c.in:
		return c.deliver(m)
	case <-c.closed:
		return 0, nil, c.setReadErr(fmt.Errorf("pipe recv: %w", ErrClosed))
	case <-c.peer.closed:
		select {
		case m := <-c.in: // what the peer sent before closing comes first
			return c.deliver(m)
		default:
			return 0, nil, c.setReadErr(io.EOF)
		}
	case <-timeout:
		c.log.Info("closing connection: read idle timeout", "read_timeout", c.cfg.ReadTimeout)
		c.Close()
		return 0, nil, c.setReadErr(fmt.Errorf("pipe recv: no complete message within %v: %w", c.cfg.ReadTimeout, ErrReadTimeout))
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	}
}

func (c *pipeConn) deliver(m pipeMsg) (uint32, []byte, error) {
	if len(m.data) > c.cfg.MaxMessageSize {
		c.log.Warn("closing connection: message too large", "size", len(m.data), "limit", c.cfg.MaxMessageSize)
		c.Close()
		return 0, nil, c.setReadErr(fmt.Errorf("pipe recv: %w: %d bytes, limit %d", ErrMessageTooLarge, len(m.data), c.cfg.MaxMessageSize))
	}
	return m.ppid, m.data, nil
}

func (c *pipeConn) getReadErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.readErr
}

func (c *pipeConn) setReadErr(err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.readErr == nil {
		c.readErr = err
	}
	return c.readErr
}

// Close implements Conn.
func (c *pipeConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}
