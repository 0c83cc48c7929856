package transport

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Poller watches parked connections with one epoll instance and one
// goroutine (Run), so an idle connection costs no goroutine stack. Run
// also ends the read timeout of a parked connection, and wakes every
// parked connection when it returns.
type Poller struct {
	epfd int // epoll instance
	evfd int // eventfd that interrupts epoll_wait

	mu      sync.Mutex
	stopped bool
	gen     uint32
	parked  map[int32]*parking // by descriptor
	woken   []func()           // wakes of connections closed while parked
}

// parking is one parked connection.
type parking struct {
	p        *Poller
	c        *tcpConn
	fd       int32
	gen      uint32
	wake     func()
	deadline time.Time // its read timeout; zero: none
}

// pollSweep bounds how late Run notices a parked connection's read
// timeout.
const pollSweep = 250 * time.Millisecond

// NewPoller makes a Poller; call Run to serve it.
func NewPoller() (*Poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("poller: %w", os.NewSyscallError("epoll_create1", err))
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("poller: %w", os.NewSyscallError("eventfd", err))
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return nil, fmt.Errorf("poller: %w", os.NewSyscallError("epoll_ctl", err))
	}
	return &Poller{epfd: epfd, evfd: evfd, parked: map[int32]*parking{}}, nil
}

// kick interrupts epoll_wait.
func (p *Poller) kick() {
	var one = [8]byte{1}
	_, _ = unix.Write(p.evfd, one[:])
}

// Run serves the poller until ctx ends: it wakes each parked connection
// that becomes readable or reaches its read timeout, and the ones closed
// while parked. When ctx ends it wakes every connection still parked,
// refuses new ones and releases its descriptors.
func (p *Poller) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, p.kick)
	defer stop()
	events := make([]unix.EpollEvent, 256)
	var wakes []func()
	lastSweep := time.Now()
	for {
		n, err := unix.EpollWait(p.epfd, events, int(pollSweep/time.Millisecond))
		if err != nil && !errors.Is(err, unix.EINTR) {
			p.shut()
			return fmt.Errorf("poller: %w", os.NewSyscallError("epoll_wait", err))
		}
		p.mu.Lock()
		for i := 0; i < n; i++ {
			ev := &events[i]
			if int(ev.Fd) == p.evfd {
				var b [8]byte
				_, _ = unix.Read(p.evfd, b[:])
				continue
			}
			if pk := p.parked[ev.Fd]; pk != nil && pk.gen == uint32(ev.Pad) {
				p.unparkLocked(pk)
				wakes = append(wakes, pk.wake)
			}
		}
		wakes = append(wakes, p.woken...)
		clear(p.woken)
		p.woken = p.woken[:0]
		if now := time.Now(); now.Sub(lastSweep) >= pollSweep {
			lastSweep = now
			for _, pk := range p.parked {
				if !pk.deadline.IsZero() && !now.Before(pk.deadline) {
					p.unparkLocked(pk)
					pk.c.resumeTimeout = pk.deadline // Recv ends it: read idle timeout
					wakes = append(wakes, pk.wake)
				}
			}
		}
		p.mu.Unlock()
		for i, w := range wakes {
			w()
			wakes[i] = nil
		}
		wakes = wakes[:0]
		if ctx.Err() != nil {
			p.shut()
			return nil
		}
	}
}

// shut stops the poller: every parked connection is woken (its Recv
// reads or waits as usual), and its descriptors are closed.
func (p *Poller) shut() {
	p.mu.Lock()
	p.stopped = true
	var wakes []func()
	for _, pk := range p.parked {
		p.unparkLocked(pk)
		wakes = append(wakes, pk.wake)
	}
	wakes = append(wakes, p.woken...)
	p.woken = nil
	p.mu.Unlock()
	for _, w := range wakes {
		w()
	}
	unix.Close(p.epfd)
	unix.Close(p.evfd)
}

// unparkLocked takes pk off the poller (p.mu held).
func (p *Poller) unparkLocked(pk *parking) {
	delete(p.parked, pk.fd)
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, int(pk.fd), nil)
	pk.c.park.Store(nil)
}

// park registers c's descriptor fd (held open by the caller) for one
// readability event.
func (p *Poller) park(c *tcpConn, fd int, deadline time.Time, wake func()) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return errPollerStopped
	}
	if old := p.parked[int32(fd)]; old != nil {
		// A descriptor number in use again: its earlier connection was
		// closed without being taken off (never expected); wake it.
		p.unparkLocked(old)
		p.woken = append(p.woken, old.wake)
	}
	p.gen++
	pk := &parking{p: p, c: c, fd: int32(fd), gen: p.gen, wake: wake, deadline: deadline}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(fd), Pad: int32(pk.gen)}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	p.parked[int32(fd)] = pk
	c.park.Store(pk)
	return nil
}

// cancel takes pk off the poller because its connection is closing, and
// has Run wake it. It does nothing when pk was woken already.
func (p *Poller) cancel(pk *parking) {
	p.mu.Lock()
	if p.parked[pk.fd] != pk {
		p.mu.Unlock()
		return
	}
	p.unparkLocked(pk)
	p.woken = append(p.woken, pk.wake)
	p.mu.Unlock()
	p.kick()
}

// Parked is the number of connections parked now.
func (p *Poller) Parked() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.parked)
}
