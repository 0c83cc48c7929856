package transport

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// MemNetwork is an in-memory Network for tests of the layers above:
// listeners are found by name, and Dial returns one end of a pipe (see
// NewPipe) whose other end the listener's Accept returns. Names are any
// strings (address specs read well: "registrar-a:3863"); a name ending in
// ":0" gets a fresh number instead of the 0, which Addrs reports.
//
// Safe for concurrent use.
type MemNetwork struct {
	mu        sync.Mutex
	listeners map[string]*memListener
	next      int
}

var _ Network = (*MemNetwork)(nil)

// NewMemNetwork returns an empty in-memory network.
func NewMemNetwork() *MemNetwork {
	return &MemNetwork{listeners: make(map[string]*memListener), next: 40000}
}

// Listen registers a listener under name. The accepted ends use cfg.
func (n *MemNetwork) Listen(ctx context.Context, name string, cfg Config) (Listener, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if base, ok := strings.CutSuffix(name, ":0"); ok {
		for {
			n.next++
			name = base + ":" + strconv.Itoa(n.next)
			if n.listeners[name] == nil {
				break
			}
		}
	}
	if n.listeners[name] != nil {
		return nil, fmt.Errorf("mem listen %q: address already in use", name)
	}
	l := &memListener{
		net:     n,
		name:    name,
		addr:    memEndpoint(name),
		cfg:     cfg,
		conns:   make(chan *pipeConn),
		closing: make(chan struct{}),
	}
	n.listeners[name] = l
	return l, nil
}

// Dial connects to the listener registered under name, waiting for it to
// accept (bounded by ctx). The dialer's end uses cfg.
func (n *MemNetwork) Dial(ctx context.Context, name string, cfg Config) (Conn, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n.mu.Lock()
	l := n.listeners[name]
	n.next++
	local := memEndpoint("mem-client:" + strconv.Itoa(n.next))
	n.mu.Unlock()
	if l == nil {
		return nil, fmt.Errorf("mem dial %q: %w", name, ErrConnRefused)
	}
	client, server := newPipePair(cfg, local, l.cfg, l.addr)
	select {
	case l.conns <- server:
		return client, nil
	case <-l.closing:
		return nil, fmt.Errorf("mem dial %q: %w", name, ErrConnRefused)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// memListener is a Listener of a MemNetwork.
type memListener struct {
	net     *MemNetwork
	name    string
	addr    Endpoint
	cfg     Config
	conns   chan *pipeConn
	closing chan struct{}
	once    sync.Once
}

// Accept implements Listener.
func (l *memListener) Accept(ctx context.Context) (Conn, error) {
	select {
	case <-l.closing:
		return nil, ErrClosed
	default:
	}
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closing:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Addrs implements Listener.
func (l *memListener) Addrs() []Endpoint { return []Endpoint{l.addr} }

// Close implements Listener.
func (l *memListener) Close() error {
	l.once.Do(func() {
		close(l.closing)
		l.net.mu.Lock()
		if l.net.listeners[l.name] == l {
			delete(l.net.listeners, l.name)
		}
		l.net.mu.Unlock()
	})
	return nil
}
