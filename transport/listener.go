package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// listener is the Listener of Listen: one accept goroutine per socket (TCP
// sockets, the SCTP socket) hands connections to Accept through one channel.
// The goroutines belong to the listener; Close stops and waits for them.
type listener struct {
	log     hclog.Logger
	addrs   []Endpoint
	sockets []io.Closer
	conns   chan Conn     // unbuffered: the kernel backlog queues the rest
	closing chan struct{} // closed by Close
	wg      sync.WaitGroup

	mu      sync.Mutex
	running int           // accept loops still running
	err     error         // first fatal accept error
	dead    chan struct{} // closed when every accept loop died of an error

	closeOnce sync.Once
}

var _ Listener = (*listener)(nil)

func newListener(log hclog.Logger) *listener {
	return &listener{
		log:     log,
		conns:   make(chan Conn),
		closing: make(chan struct{}),
		dead:    make(chan struct{}),
	}
}

// add registers a socket and starts its accept loop. accept blocks until a
// connection arrives or the socket is closed.
func (l *listener) add(sock io.Closer, addr Endpoint, accept func() (Conn, error)) {
	l.sockets = append(l.sockets, sock)
	l.addrs = append(l.addrs, addr)
	l.mu.Lock()
	l.running++
	l.mu.Unlock()
	l.wg.Add(1)
	go l.acceptLoop(addr, accept)
}

func (l *listener) acceptLoop(addr Endpoint, accept func() (Conn, error)) {
	defer l.wg.Done()
	backoff := 5 * time.Millisecond
	var (
		warned     time.Time // of the last warning
		suppressed int       // failures since then not warned of
	)
	for {
		c, err := accept()
		if err != nil {
			select {
			case <-l.closing:
				return
			default:
			}
			if temporaryAcceptError(err) {
				// At the descriptor limit the accepts fail as often as a
				// descriptor frees (the backoff restarts after every
				// success): one warning per acceptWarnEvery, with the
				// count of the failures since the last one.
				if now := time.Now(); warned.IsZero() || now.Sub(warned) >= acceptWarnEvery {
					l.log.Warn("accept failed; retrying", "addr", addr.String(), "error", err, "backoff", backoff, "failures_not_logged", suppressed)
					warned, suppressed = now, 0
				} else {
					suppressed++
				}
				t := time.NewTimer(backoff)
				select {
				case <-t.C:
				case <-l.closing:
					t.Stop()
					return
				}
				backoff = min(2*backoff, time.Second)
				continue
			}
			l.log.Error("accept failed; this socket stops accepting", "addr", addr.String(), "error", err)
			l.mu.Lock()
			if l.err == nil {
				l.err = fmt.Errorf("accept on %s: %w", addr, err)
			}
			l.running--
			if l.running == 0 {
				close(l.dead)
			}
			l.mu.Unlock()
			return
		}
		backoff = 5 * time.Millisecond
		select {
		case l.conns <- c:
		case <-l.closing:
			_ = c.Close()
			return
		}
	}
}

// acceptWarnEvery is the least time between two warnings of failed
// accepts on one socket.
const acceptWarnEvery = 10 * time.Second

// temporaryAcceptError reports errors after which accepting may succeed again.
func temporaryAcceptError(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR, syscall.EPROTO, syscall.EPERM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Accept implements Listener.
func (l *listener) Accept(ctx context.Context) (Conn, error) {
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
	case <-l.dead:
		l.mu.Lock()
		defer l.mu.Unlock()
		return nil, l.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Addrs implements Listener.
func (l *listener) Addrs() []Endpoint {
	out := make([]Endpoint, len(l.addrs))
	for i, e := range l.addrs {
		e.Addrs = append([]netip.Addr(nil), e.Addrs...)
		out[i] = e
	}
	return out
}

// Close implements Listener.
func (l *listener) Close() error {
	var errs []error
	l.closeOnce.Do(func() {
		close(l.closing)
		for _, s := range l.sockets {
			if err := s.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, err)
			}
		}
		l.wg.Wait()
	})
	return errors.Join(errs...)
}
