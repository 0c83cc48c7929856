package pu

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/asap/internal/regclient"
	"github.com/rserpool-go/registrar/transport"
)

// ErrNoRegistrar is matched (errors.Is) by the error of a request no
// registrar answered. The error names every registrar tried and why.
var ErrNoRegistrar = regclient.ErrNoRegistrar

// ErrUnknownPool is matched by the error of a resolution for a pool the
// registrar does not know (no PE is registered under the handle).
var ErrUnknownPool = errors.New("unknown pool")

// ErrNoPE is matched by the error of a session that found no reachable PE.
var ErrNoPE = errors.New("no pool element reachable")

// ErrClosed is returned after Close.
var ErrClosed = errors.New("pu: closed")

// UnknownPoolError is a resolution of a pool the registrar does not know.
type UnknownPoolError struct {
	PoolHandle asap.PoolHandle
	Registrar  string
}

func (e *UnknownPoolError) Error() string {
	return fmt.Sprintf("pool %q is unknown to registrar %s: no PE is registered under this handle (check the handle, and that its PEs run)", e.PoolHandle, e.Registrar)
}

// Is makes errors.Is(err, ErrUnknownPool) true.
func (e *UnknownPoolError) Is(target error) bool { return target == ErrUnknownPool }

// User is a pool user: it resolves pool handles at a registrar (with a
// cache), reports unreachable PEs, and opens sessions with failover. Safe
// for concurrent use.
type User struct {
	cfg    Config
	log    hclog.Logger
	net    transport.Network
	client *regclient.Client

	mu       sync.Mutex
	cache    map[asap.PoolHandle]*cached
	sessions map[*Session]struct{}
	closed   bool
}

// cached is a resolution kept for CacheTime.
type cached struct {
	pes  []asap.PoolElement
	at   time.Time
	next int // rotation of successive selections
}

// New checks cfg and prepares a pool user; it joins the announce group if
// announces are on, and contacts no registrar before the first request.
func New(cfg Config) (*User, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	client, err := regclient.New(cfg.clientConfig(log))
	if err != nil {
		return nil, fmt.Errorf("pu: %w", err)
	}
	network := cfg.Network
	if network == nil {
		network = transport.OSNetwork()
	}
	return &User{cfg: cfg, log: log, net: network, client: client,
		cache: map[asap.PoolHandle]*cached{}, sessions: map[*Session]struct{}{}}, nil
}

// RegistrarConn describes the User's connection to a registrar.
type RegistrarConn struct {
	ID        uint32 // the registrar's ID, 0 while unknown
	Transport transport.Kind
	Since     time.Time // when the connection was set up
}

// Registrar describes the connection to the registrar the User asks now;
// false when it has none open (before the first request, or after the
// registrar was lost).
func (u *User) Registrar() (RegistrarConn, bool) {
	c := u.client.Current()
	if c == nil {
		return RegistrarConn{}, false
	}
	return RegistrarConn{ID: c.ServerID(), Transport: c.Kind(), Since: c.Since()}, true
}

// Resolve returns PEs of the pool, in the order to try them: the
// registrar's selection by the pool policy, or while the cache holds the
// pool (CacheTime), the cached PEs rotated by one for each call. A pool
// the registrar does not know gives an error matching ErrUnknownPool.
func (u *User) Resolve(ctx context.Context, h asap.PoolHandle) ([]asap.PoolElement, error) {
	if pes, ok := u.fromCache(h); ok {
		return pes, nil
	}
	return u.resolve(ctx, h)
}

// fromCache returns the cached PEs of h, rotated, if fresh.
func (u *User) fromCache(h asap.PoolHandle) ([]asap.PoolElement, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	c, ok := u.cache[h]
	if !ok || u.cfg.CacheTime == 0 || time.Since(c.at) >= u.cfg.CacheTime || len(c.pes) == 0 {
		return nil, false
	}
	n := len(c.pes)
	out := make([]asap.PoolElement, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, c.pes[(c.next+i)%n])
	}
	c.next = (c.next + 1) % n
	return out, true
}

// resolve asks the registrar and refreshes the cache.
func (u *User) resolve(ctx context.Context, h asap.PoolHandle) ([]asap.PoolElement, error) {
	if u.isClosed() {
		return nil, ErrClosed
	}
	req := &asap.HandleResolution{PoolHandle: h}
	if u.cfg.Items != 0 {
		req.HasItems, req.Items = true, u.cfg.Items
	}
	resp, conn, err := u.client.Request(ctx,
		func(*regclient.Conn) (asap.Message, error) { return req, nil },
		func(m asap.Message) bool {
			r, ok := m.(*asap.HandleResolutionResponse)
			return ok && r.PoolHandle == h
		})
	if err != nil {
		return nil, fmt.Errorf("resolve pool %q: %w", h, err)
	}
	r := resp.(*asap.HandleResolutionResponse)
	if r.Error != nil {
		if r.Error.First() == asap.CauseUnknownPoolHandle {
			u.evict(h, 0)
			return nil, &UnknownPoolError{PoolHandle: h, Registrar: conn.Label()}
		}
		return nil, fmt.Errorf("resolve pool %q: registrar %s answered %w", h, conn.Label(), r.Error)
	}
	if len(r.PEs) == 0 {
		u.evict(h, 0)
		return nil, &UnknownPoolError{PoolHandle: h, Registrar: conn.Label()}
	}
	if u.cfg.CacheTime > 0 {
		u.mu.Lock()
		u.cache[h] = &cached{pes: append([]asap.PoolElement(nil), r.PEs...), at: time.Now(), next: 1 % len(r.PEs)}
		u.mu.Unlock()
	}
	return r.PEs, nil
}

// evict removes a PE (id 0: the whole pool) from the cache.
func (u *User) evict(h asap.PoolHandle, id uint32) {
	u.mu.Lock()
	defer u.mu.Unlock()
	c, ok := u.cache[h]
	if !ok {
		return
	}
	if id == 0 {
		delete(u.cache, h)
		return
	}
	for i, pe := range c.pes {
		if pe.ID == id {
			c.pes = append(c.pes[:i:i], c.pes[i+1:]...)
			break
		}
	}
	if len(c.pes) == 0 {
		delete(u.cache, h)
	} else {
		c.next %= len(c.pes)
	}
}

// ReportUnreachable tells the registrar that a PE of the pool could not be
// reached (ASAP_ENDPOINT_UNREACHABLE) and drops it from the cache. The
// registrar removes a PE after a few reports (RSPLIB and ours: 3).
func (u *User) ReportUnreachable(ctx context.Context, h asap.PoolHandle, id uint32) error {
	u.evict(h, id)
	if u.isClosed() {
		return ErrClosed
	}
	if err := u.client.Send(ctx, &asap.EndpointUnreachable{PoolHandle: h, ID: id}); err != nil {
		return fmt.Errorf("report PE 0x%08x of pool %q unreachable: %w", id, h, err)
	}
	u.log.Debug("reported PE unreachable", "pool", string(h), "pe", fmt.Sprintf("0x%08x", id))
	return nil
}

// reportAsync reports in a goroutine of the User, bounded by the request
// timeout.
func (u *User) reportAsync(h asap.PoolHandle, id uint32) {
	u.evict(h, id)
	u.client.Go(func() {
		ctx, cancel := context.WithTimeout(u.client.Context(), u.cfg.RequestTimeout)
		defer cancel()
		if err := u.ReportUnreachable(ctx, h, id); err != nil && !errors.Is(err, ErrClosed) {
			u.log.Debug("unreachability report not sent", "error", err)
		}
	})
}

func (u *User) isClosed() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.closed
}

// Close closes the sessions, the registrar connection and the announce
// listener, and waits for every goroutine of the User. Idempotent.
func (u *User) Close() error {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return nil
	}
	u.closed = true
	open := make([]*Session, 0, len(u.sessions))
	for s := range u.sessions {
		open = append(open, s)
	}
	u.mu.Unlock()
	for _, s := range open {
		s.Close()
	}
	return u.client.Close()
}
