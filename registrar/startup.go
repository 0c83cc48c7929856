package registrar

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
)

// checkListeners binds every address the registrar will listen on and
// releases them again, before anything is written into the data dir: a
// port another process holds, two of our own addresses on the same port,
// or an address that is not this host's fails the start with every such
// problem listed and the data dir untouched. (The real listeners bind
// later, in shutdown order; a port taken in between still fails then.)
func (r *Registrar) checkListeners(ctx context.Context) error {
	var open []io.Closer
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	var errs []error
	fail := func(what, flagName, addr string, err error) {
		errs = append(errs, fmt.Errorf("cannot listen on the %s address %s (-%s): %w", what, addr, flagName, err))
	}
	tcfg := r.asapConnConfig()
	for _, l := range []struct{ what, flag, spec string }{{"ASAP", "asap", r.cfg.ASAP}, {"ENRP", "enrp", r.cfg.ENRP}} {
		ln, err := r.net.Listen(ctx, l.spec, tcfg)
		if err != nil {
			fail(l.what, l.flag, l.spec, err)
			continue
		}
		open = append(open, ln)
	}
	tcp := func(what, flagName, addr string) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			fail(what, flagName, addr, err)
			return
		}
		open = append(open, ln)
	}
	if r.cfg.HTTP != "off" {
		tcp("admin API", "http", r.cfg.HTTP)
	}
	tcp("raft", "raft", r.cfg.Raft)
	tcp("gossip", "gossip", r.cfg.Gossip)
	if pc, err := net.ListenPacket("udp", r.cfg.Gossip); err != nil {
		fail("gossip (UDP)", "gossip", r.cfg.Gossip, err)
	} else {
		open = append(open, pc)
	}
	if len(errs) == 0 {
		return nil
	}
	if _, err := os.Stat(filepath.Join(r.cfg.DataDir, "handlespace.db")); err == nil {
		errs = append(errs, fmt.Errorf("is another registrar already running with the data dir %s or these addresses?", r.cfg.DataDir))
	}
	return errors.Join(errs...)
}
