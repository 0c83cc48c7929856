package registrar

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rserpool-go/registrar/cluster"
	"github.com/rserpool-go/registrar/store"
	"github.com/rserpool-go/registrar/transport"
)

// ReadyLine is the log message written once the registrar serves.
const ReadyLine = "registrar ready"

// Registrar is one ENRP server: it serves ASAP to PEs and PUs from its
// handlespace, which raft keeps durable (and, in a cluster, replicated).
type Registrar struct {
	cfg   Config
	log   hclog.Logger
	id    uint32
	start time.Time

	store   *store.Store
	node    *cluster.Node
	members *cluster.Membership
	net     transport.Network
	asapLn  transport.Listener
	enrpLn  transport.Listener
	httpLn  net.Listener
	httpSrv *http.Server
	metrics *metrics
	live    *liveness
	peers   *peers
	limits  *rateLimits

	// logFile closes the log file (nil: logs go to standard error or
	// cfg.Logger).
	logFile io.Closer
	// reloadMu serialises Reload; applied is the configuration as last
	// applied (the start's, then each reload's).
	reloadMu sync.Mutex
	applied  Config

	ready chan struct{}
	// leaveCh is closed by POST /v1/leave: Run leaves the cluster
	// gracefully and returns.
	leaveCh   chan struct{}
	leaveOnce sync.Once
	leaving   bool

	// goroutines: started only through go(), stopped by quit.
	mu       sync.Mutex
	quit     chan struct{}
	stopping bool
	wg       sync.WaitGroup
	// conns are the served ASAP connections; nil once closeConns ran
	// (a connection served later is closed at once).
	conns map[*asapConn]struct{}
}

// New checks the configuration and prepares a registrar; Run starts it.
func New(cfg Config) (*Registrar, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	var logFile io.Closer
	if log == nil {
		log, logFile = newLogger(cfg)
	}
	network := cfg.Network
	if network == nil {
		network = transport.OSNetwork()
	}
	return &Registrar{
		cfg:     cfg,
		applied: cfg,
		logFile: logFile,
		log:     log,
		net:     network,
		ready:   make(chan struct{}),
		leaveCh: make(chan struct{}),
		quit:    make(chan struct{}),
		conns:   map[*asapConn]struct{}{},
	}, nil
}

// Ready is closed once the registrar serves ASAP.
func (r *Registrar) Ready() <-chan struct{} { return r.ready }

// ID is the registrar ID (known once Ready).
func (r *Registrar) ID() uint32 { return r.id }

// Store is the handlespace (for tests and tools in the same process).
func (r *Registrar) Store() *store.Store { return r.store }

// Node is the raft node.
func (r *Registrar) Node() *cluster.Node { return r.node }

// ASAPAddrs are the bound ASAP addresses (real ports).
func (r *Registrar) ASAPAddrs() []transport.Endpoint { return r.asapLn.Addrs() }

// ENRPAddrs are the bound ENRP addresses.
func (r *Registrar) ENRPAddrs() []transport.Endpoint { return r.enrpLn.Addrs() }

// HTTPAddr is the admin API address ("" when off).
func (r *Registrar) HTTPAddr() string {
	if r.httpLn == nil {
		return ""
	}
	return r.httpLn.Addr().String()
}

// goFunc starts a goroutine owned by the registrar; it refuses once
// shutdown began.
func (r *Registrar) goFunc(f func()) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopping {
		return false
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		f()
	}()
	return true
}

// Run starts the registrar and serves until ctx ends, then shuts down in
// order: listeners and connections, supervision and announces, raft, the
// stores. It returns the first error that stopped it.
func (r *Registrar) Run(ctx context.Context) (err error) {
	r.start = time.Now()
	if r.logFile != nil {
		defer r.logFile.Close()
	}
	cleanup, err := r.open(ctx)
	defer func() {
		if cerr := cleanup(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if err != nil {
		return err
	}
	close(r.ready)
	r.log.Info(ReadyLine, "id", fmt.Sprintf("0x%08x", r.id), "asap", addrList(r.asapLn.Addrs()),
		"enrp", addrList(r.enrpLn.Addrs()), "http", r.HTTPAddr(), "raft", r.node.Addr(),
		"gossip", r.members.LocalAddr(), "version", Version)
	select {
	case <-ctx.Done():
		r.leaving = r.cfg.LeaveOnTerminate
	case <-r.leaveCh:
		r.leaving = true
	}
	r.log.Info("shutting down", "leave", r.leaving)
	return nil
}

// Leave makes Run leave the cluster gracefully and return.
func (r *Registrar) Leave() { r.leaveOnce.Do(func() { close(r.leaveCh) }) }

// Members is the gossip membership (nil before Run opened it).
func (r *Registrar) Members() *cluster.Membership { return r.members }

// specList formats endpoints for status and gossip ("tcp:127.0.0.1:3863",
// "sctp:10.0.0.1/10.0.0.2:3863").
func specList(as []transport.Endpoint) []string {
	var s []string
	for _, a := range as {
		s = append(s, a.Network()+":"+a.String())
	}
	return s
}

// waitRemoved waits (bounded) until the leader removed this registrar
// from raft after a leave, so that a quick shutdown does not leave the
// cluster one voter short.
func (r *Registrar) waitRemoved(d time.Duration) {
	deadline := time.Now().Add(d)
	me := cluster.ServerID(r.id)
	for time.Now().Before(deadline) {
		f := r.node.Raft().GetConfiguration()
		if f.Error() != nil {
			return
		}
		found := false
		for _, s := range f.Configuration().Servers {
			found = found || s.ID == me
		}
		if !found || len(f.Configuration().Servers) == 1 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.log.Warn("left gossip but the leader did not remove this registrar from raft in time")
}

func addrList(as []transport.Endpoint) string { return strings.Join(specList(as), ",") }

// open brings everything up; the returned cleanup undoes what was done,
// in the fixed shutdown order, whatever the point of failure.
func (r *Registrar) open(ctx context.Context) (func() error, error) {
	var closers []func() error // run in reverse
	cleanup := func() error {
		var errs []error
		for i := len(closers) - 1; i >= 0; i-- {
			if err := closers[i](); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	// Nothing touches the data dir before every listener can bind.
	if err := r.checkListeners(ctx); err != nil {
		return cleanup, err
	}
	if err := os.MkdirAll(r.cfg.DataDir, 0o750); err != nil {
		return cleanup, fmt.Errorf("data dir: %w (create it, make it writable by this user, or use another -data-dir)", err)
	}
	id, err := loadOrCreateID(r.cfg.DataDir, r.cfg.ID)
	if err != nil {
		return cleanup, err
	}
	r.id = id
	r.log = r.log.With("registrar", fmt.Sprintf("%08x", id))

	// 4. (closed last) the handlespace.
	r.store, err = store.Open(filepath.Join(r.cfg.DataDir, "handlespace.db"), &store.Options{NoSync: r.cfg.NoSync, Logger: r.log.Named("store"),
		// Room to grow without a remap while a snapshot's read
		// transaction is open (a remap would wait for it).
		InitialMmapSize: 1 << 30,
		CommitDelay:     r.cfg.CommitDelay.D()})
	if err != nil {
		return cleanup, handlespaceFix(err, r.cfg.DataDir)
	}
	closers = append(closers, r.store.Close)
	r.metrics = newMetrics(r)

	// 3. raft. A registrar that neither joins nor expects others forms a
	// one-node cluster the first time; others wait to be added.
	_, perr := os.Stat(filepath.Join(r.cfg.DataDir, "peers.json"))
	bootstrap := len(r.cfg.Join) == 0 && r.cfg.BootstrapExpect == 0 && perr != nil
	r.node, err = cluster.OpenNode(cluster.NodeConfig{
		ID:        id,
		Dir:       filepath.Join(r.cfg.DataDir, "raft"),
		Raft:      r.cfg.raftConfig(),
		Bootstrap: bootstrap,
		Logger:    newRaftLogger(r.log.Named("raft")),
		NoSync:    r.cfg.NoSync,
	}, r.store)
	if err != nil {
		return cleanup, err
	}
	closers = append(closers, r.node.Shutdown)
	r.node.OnApply(r.metrics.applied)

	// 2b. gossip membership (left and stopped after the listeners closed).
	r.peers = newPeers(r)
	mc := r.cfg.membershipConfig()
	mc.EncryptKey, _ = cluster.ParseEncryptKey(r.cfg.Encrypt)
	mc.Logger = r.log.Named("gossip")
	mc.IsForeign = r.peers.isForeign
	if r.members, err = cluster.StartMembership(mc, r.node, cluster.Meta{Build: Version}); err != nil {
		return cleanup, err
	}
	closers = append(closers, func() error {
		if r.leaving {
			if err := r.members.Leave(5 * time.Second); err != nil {
				r.log.Warn("gossip leave", "error", err)
			}
			r.waitRemoved(10 * time.Second)
		}
		return r.members.Shutdown()
	})
	if bootstrap {
		if err := r.waitLeader(ctx); err != nil {
			return cleanup, err
		}
		// Serve the whole handlespace at once: the log entries the file
		// did not have yet (group commit) are replayed before we answer.
		if r.node.IsLeader() {
			if err := r.node.Raft().Barrier(r.cfg.WriteTimeout.D()).Error(); err != nil {
				r.log.Warn("raft barrier before serving failed", "error", err)
			}
		}
	}

	// 2. PE supervision and announces (stopped through quit, joined by wg).
	closers = append(closers, r.stopGoroutines)
	r.limits = newRateLimits(r.cfg)
	r.live = newLiveness(r)
	r.node.OnCommand(func(c *cluster.Command, res *cluster.ApplyResult) {
		r.live.committed(c, res)
		r.peers.committed(c, res)
	})
	r.live.adoptOwned(time.Now(), false)
	r.goFunc(r.live.run)
	r.watchLeader()
	if err := r.startSnapshots(ctx, bootstrap); err != nil {
		return cleanup, err
	}

	// 1. (closed first) the listeners and their connections.
	tcfg := r.asapConnConfig()
	if r.asapLn, err = r.net.Listen(ctx, r.cfg.ASAP, tcfg); err != nil {
		return cleanup, fmt.Errorf("asap listen %s: %w", r.cfg.ASAP, err)
	}
	closers = append(closers, r.closeConns, r.asapLn.Close)
	ecfg := tcfg
	ecfg.PPID = transport.PPIDENRP
	ecfg.Logger = r.log.Named("enrp")
	if r.enrpLn, err = r.net.Listen(ctx, r.cfg.ENRP, ecfg); err != nil {
		return cleanup, fmt.Errorf("enrp listen %s: %w", r.cfg.ENRP, err)
	}
	closers = append(closers, r.enrpLn.Close)
	if r.cfg.HTTP != "off" {
		if r.httpLn, err = net.Listen("tcp", r.cfg.HTTP); err != nil {
			return cleanup, fmt.Errorf("http listen %s: %w", r.cfg.HTTP, err)
		}
		r.httpSrv = &http.Server{Handler: r.httpHandler(), ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: r.log.Named("http").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})}
		ln := r.httpLn
		r.goFunc(func() { _ = r.httpSrv.Serve(ln) })
		closers = append(closers, func() error {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			return r.httpSrv.Shutdown(sctx)
		})
	}
	r.goFunc(func() { r.acceptLoop(r.asapLn, r.serveASAP) })
	r.goFunc(func() { r.acceptLoop(r.enrpLn, r.serveENRP) })
	r.members.SetMeta(func(m *cluster.Meta) {
		m.ASAP, m.ENRP, m.HTTP = specList(r.asapLn.Addrs()), specList(r.enrpLn.Addrs()), r.HTTPAddr()
	})
	// Multicast the operator asked for must work; the default (on for
	// non-loopback addresses) only warns where the host cannot do it.
	if group := r.cfg.announceGroup(); group != "off" {
		if err := r.startAnnounce(ctx, group); err != nil {
			if r.cfg.Announce != "" {
				return cleanup, fmt.Errorf("announce %s: %w", group, err)
			}
			r.log.Warn("ASAP announces off: multicast unavailable (set -announce off to silence)", "group", group, "error", err)
		}
	}
	if group := r.cfg.enrpAnnounceGroup(); group != "off" {
		if err := r.peers.startMulticast(ctx, group); err != nil {
			if r.cfg.ENRPAnnounce != "" {
				return cleanup, fmt.Errorf("enrp multicast %s: %w", group, err)
			}
			r.log.Warn("ENRP presence multicast off: multicast unavailable (set -enrp-announce off to silence)", "group", group, "error", err)
		}
	}
	r.goFunc(r.peers.run)
	if err := r.startCSP(); err != nil {
		return cleanup, err
	}
	return cleanup, nil
}

// asapConnConfig is the transport configuration of ASAP connections,
// accepted or dialed to a PE.
func (r *Registrar) asapConnConfig() transport.Config {
	cfg := transport.DefaultConfig()
	cfg.PPID = transport.PPIDASAP
	cfg.ReadTimeout = r.cfg.ConnIdleTimeout.D()
	cfg.WriteTimeout = 5 * time.Second
	cfg.Logger = r.log.Named("asap")
	return cfg
}

// waitLeader waits (bounded) for this node's raft to have a leader, so the
// first registrations do not race an election.
func (r *Registrar) waitLeader(ctx context.Context) error {
	deadline := time.Now().Add(r.cfg.WriteTimeout.D() + 5*time.Second)
	for {
		if addr, _ := r.node.Raft().LeaderWithID(); addr != "" {
			return nil
		}
		if time.Now().After(deadline) {
			r.log.Warn("no raft leader yet; serving resolutions from the local handlespace")
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// commit proposes cmd through raft and waits, bounded by ctx and the
// write timeout, until it is applied. The error is the proposal's or, once
// applied, the command's own (cluster.ApplyResult.Failed).
func (r *Registrar) commit(ctx context.Context, cmd cluster.Command) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.WriteTimeout.D())
	defer cancel()
	res, err := r.node.Propose(ctx, cmd)
	if err != nil {
		return err
	}
	return res.Failed()
}

// stopGoroutines stops supervision, announces and connection handlers.
func (r *Registrar) stopGoroutines() error {
	r.mu.Lock()
	if !r.stopping {
		r.stopping = true
		close(r.quit)
	}
	r.mu.Unlock()
	r.wg.Wait()
	return nil
}

// closeConns closes every ASAP connection (after the listener stopped),
// and those served from now on, such as a PE's that a keep-alive dials
// before supervision stops.
func (r *Registrar) closeConns() error {
	r.mu.Lock()
	conns := r.conns
	r.conns = nil
	r.mu.Unlock()
	for c := range conns {
		c.c.Close()
	}
	return nil
}

// acceptLoop accepts connections until the listener closes.
func (r *Registrar) acceptLoop(ln transport.Listener, serve func(transport.Conn)) {
	ctx, cancel := r.quitContext()
	defer cancel()
	for {
		c, err := ln.Accept(ctx)
		if err != nil {
			if !errors.Is(err, transport.ErrClosed) && ctx.Err() == nil {
				r.log.Error("accept failed", "error", err)
			}
			return
		}
		if !r.goFunc(func() { serve(c) }) {
			c.Close()
			return
		}
	}
}

// quitContext is a context cancelled when shutdown begins.
func (r *Registrar) quitContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() { // ends with cancel or quit
		select {
		case <-r.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// loadOrCreateID returns the registrar ID saved in dir, saving want (or a
// random ID) the first time. A different want than the saved one is an
// error: raft knows this node by its ID. So is a file that does not hold
// an ID: it is never replaced silently.
func loadOrCreateID(dir string, want uint32) (uint32, error) {
	path := filepath.Join(dir, "registrar-id")
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		v, perr := strconv.ParseUint(strings.TrimSpace(string(b)), 0, 32)
		if perr != nil || v == 0 {
			return 0, fmt.Errorf("%s: not a registrar ID: %q (the file is empty or damaged; raft knows this node by its ID, so it is not replaced: "+
				"write the ID back, e.g. `echo 0x1234abcd > %s`, taking it from this registrar's logs (registrar=...) or from `registrar members` at another registrar; "+
				"a data dir without raft state can instead start under a new ID: remove the file)", path, strings.TrimSpace(string(b)), path)
		}
		if want != 0 && uint32(v) != want {
			return 0, fmt.Errorf("data dir %s belongs to registrar 0x%08x, but -id is 0x%08x: use another -data-dir or drop -id", dir, v, want)
		}
		return uint32(v), nil
	case !errors.Is(err, os.ErrNotExist):
		return 0, fmt.Errorf("read registrar ID: %w (make %s readable by this user, or use another -data-dir)", err, dir)
	}
	id := want
	for id == 0 {
		var rb [4]byte
		if _, err := rand.Read(rb[:]); err != nil {
			return 0, err
		}
		id = binary.BigEndian.Uint32(rb[:])
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(fmt.Sprintf("0x%08x\n", id)), 0o640); err != nil {
		return 0, fmt.Errorf("save registrar ID: %w (make %s writable by this user and free space on its file system, or use another -data-dir)", err, dir)
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, fmt.Errorf("save registrar ID: %w (make %s writable by this user, or use another -data-dir)", err, dir)
	}
	return id, nil
}

// handlespaceFix adds to an error opening handlespace.db what to do.
func handlespaceFix(err error, dir string) error {
	switch {
	case errors.Is(err, store.ErrLocked):
		return fmt.Errorf("%w (another registrar runs on this data dir: stop it, or use another -data-dir)", err)
	case errors.Is(err, store.ErrVersion):
		return fmt.Errorf("%w (written by a newer version: run that version)", err)
	case errors.Is(err, store.ErrCorrupt):
		return fmt.Errorf("%w (the file is never overwritten. Move it aside: the next start rebuilds it from raft's snapshot and log, "+
			"and in a cluster catches up from the leader; if raft's state is gone too, restore a snapshot: see docs/operations.md)", err)
	case errors.Is(err, os.ErrPermission), errors.Is(err, syscall.EROFS):
		return fmt.Errorf("%w (make %s writable by this user, or use another -data-dir)", err, dir)
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("%w (free space on the file system of %s)", err, dir)
	}
	return err
}
