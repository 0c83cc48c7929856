//go:build !linux

package transport

import (
	"context"
	"errors"
	"time"
)

// Poller watches parked connections; only Linux has one (epoll):
// NewPoller fails elsewhere, and connections are read as before.
type Poller struct{}

type parking struct {
	p        *Poller
	deadline time.Time
}

// NewPoller fails: no poller on this system.
func NewPoller() (*Poller, error) {
	return nil, errors.New("poller: not supported on this system")
}

// Run returns when ctx ends.
func (p *Poller) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// Parked is the number of connections parked now: none.
func (p *Poller) Parked() int { return 0 }

func (p *Poller) park(c *tcpConn, fd int, deadline time.Time, wake func()) error {
	return errPollerStopped
}

func (p *Poller) cancel(pk *parking) {}
