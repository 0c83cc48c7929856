package registrar

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/transport"
)

// Associations the registrar opens to PEs' ASAP endpoints, to send
// keep-alives to PEs that have no connection to it: after a takeover
// (H=1), after the PE's own connection dropped (pe_conn_loss probe), or
// to claim a PE (takeover suggestion). PEs that name the same ASAP
// endpoint (the PEs of one process, as rsp serve and the PE library
// register them) share one association: a takeover of a registrar's
// PEs dials each endpoint once, not each PE, and no goroutine waits per
// PE meanwhile.

// peDials are the associations to PEs' ASAP endpoints, by endpoint spec.
type peDials struct {
	mu sync.Mutex
	m  map[string]*peDial
}

// peDial is one endpoint's association, or its dial in progress (ac nil)
// with the callers waiting for it.
type peDial struct {
	ac      *asapConn
	waiting []func(*asapConn, error)
}

// peSpec is the transport spec of a PE's ASAP endpoint.
func peSpec(t asap.Transport) (string, error) {
	if t.IsZero() || t.Port == 0 || len(t.Addrs) == 0 {
		return "", errors.New("PE has no reachable ASAP endpoint")
	}
	spec := "tcp:"
	if t.Kind == asap.ParamSCTPTransport {
		spec = "" // auto: SCTP where the kernel has it
	}
	return spec + transport.HostList(t.Addrs) + ":" + strconv.Itoa(int(t.Port)), nil
}

// withPEConn calls f with the association to the PE's ASAP endpoint t:
// at once when it is open, or when the dial that opens it ends (f gets
// the dial's error then). f may run on the caller's goroutine: call
// withPEConn holding no lock that f takes.
func (r *Registrar) withPEConn(t asap.Transport, f func(*asapConn, error)) {
	spec, err := peSpec(t)
	if err != nil {
		f(nil, err)
		return
	}
	d := &r.peDials
	d.mu.Lock()
	if d.m == nil {
		d.m = map[string]*peDial{}
	}
	if pd := d.m[spec]; pd != nil {
		if pd.ac != nil {
			d.mu.Unlock()
			f(pd.ac, nil)
			return
		}
		pd.waiting = append(pd.waiting, f)
		d.mu.Unlock()
		return
	}
	pd := &peDial{waiting: []func(*asapConn, error){f}}
	d.m[spec] = pd
	d.mu.Unlock()
	if !r.goFunc(func() { r.dialPE(spec, pd) }) {
		r.peDialDone(spec, pd, nil, errors.New("shutting down"))
	}
}

// dialPE opens the association of pd, serves it like an accepted one
// (the PEs answer keep-alives on it) and forgets it when it ends.
func (r *Registrar) dialPE(spec string, pd *peDial) {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.KeepAliveTimeout.D())
	c, err := r.net.Dial(ctx, spec, r.asapConnConfig())
	cancel()
	if err != nil {
		r.peDialDone(spec, pd, nil, err)
		return
	}
	ac := r.newConn(c)
	ac.onEnd = append(ac.onEnd, func() {
		d := &r.peDials
		d.mu.Lock()
		if d.m[spec] == pd {
			delete(d.m, spec)
		}
		d.mu.Unlock()
	})
	r.peDialDone(spec, pd, ac, nil)
	r.serveConn(ac)
}

// peDialDone ends pd's dial: the waiting callers get ac or err, and a
// failed dial is forgotten (the next caller dials again).
func (r *Registrar) peDialDone(spec string, pd *peDial, ac *asapConn, err error) {
	d := &r.peDials
	d.mu.Lock()
	waiting := pd.waiting
	pd.waiting = nil
	if err != nil {
		if d.m[spec] == pd {
			delete(d.m, spec)
		}
	} else {
		pd.ac = ac
	}
	d.mu.Unlock()
	if err != nil {
		err = fmt.Errorf("%s: %w", spec, err)
	}
	for _, f := range waiting {
		f(ac, err)
	}
}

// forgetPEConn drops ac from the shared associations (a send on it
// failed), so that the next caller dials again.
func (r *Registrar) forgetPEConn(ac *asapConn) {
	d := &r.peDials
	d.mu.Lock()
	defer d.mu.Unlock()
	for spec, pd := range d.m {
		if pd.ac == ac {
			delete(d.m, spec)
		}
	}
}
