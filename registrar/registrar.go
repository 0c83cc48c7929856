package registrar

import (
	"context"
	"crypto/rand"
	"crypto/tls"
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
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rserpool-go/registrar/cluster"
	"github.com/rserpool-go/registrar/registrar/internal/killswitch"
	"github.com/rserpool-go/registrar/transport"
	"github.com/rserpool-go/registrar/transport/tlsutil"
)

// ReadyLine is the log message written once the registrar serves.
const ReadyLine = "registrar ready"

// Registrar is one ENRP server: it serves ASAP to PEs and PUs from its
// handlespace, which raft keeps durable (and, in a cluster, replicated).
type Registrar struct {
	cfg     Config
	log     hclog.Logger
	id      uint32
	start   time.Time
	fdLimit uint64 // the open file limit after raising it (0: unknown)

	// hs is the replicated handlespace: everything below the daemon
	// (the store, raft, gossip) is behind it.
	hs     *cluster.Handlespace
	net    transport.Network
	asapLn transport.Listener
	enrpLn transport.Listener
	// asapTLSLn and enrpTLSLn are the TLS listeners (nil: off).
	asapTLSLn, enrpTLSLn transport.Listener
	httpLn               net.Listener
	httpSrv              *http.Server
	// httpServed: httpSrv serves httpLn (and closes it).
	httpServed bool
	metrics    *metrics
	live       *liveness
	// peDials: associations to PEs' ASAP endpoints (pedial.go).
	peDials peDials
	// reportOut: unreachability reports to pass to the PEs' homes
	// (reports.go).
	reportOut chan outReport
	peers     *peers
	limits    *rateLimits
	// tls is the TLS material (nil: no TLS); tokens the admin API's
	// tokens (nil: none, every request allowed). Both are replaced by a
	// reload.
	tls    *tlsutil.Store
	tokens atomic.Pointer[tokens]
	// connLimits counts the accepted ASAP and ENRP connections.
	connLimits connLimits
	// trust is who may be an ENRP peer (enrp_trust.go).
	trust        atomic.Pointer[peerTrust]
	tlsPeerAddrs addrSet
	// leaderClient talks to the leader's admin API for proxied requests.
	leaderClient *http.Client
	// watch is the change stream (GET /v1/watch, long-polls, /ui/).
	watch *watcher
	// httpClosing is closed when the admin API shuts down: streams and
	// long-polls end.
	httpClosing chan struct{}
	// bootstrap: this registrar forms a one-node cluster (no -join, no
	// -bootstrap-expect, no remembered peers).
	bootstrap bool

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
	// killed: Run's context was canceled with killswitch.Cause (tests):
	// everything stops at once, as in a killed process.
	killed bool

	// goroutines: started only through go(), stopped by quit.
	mu       sync.Mutex
	quit     chan struct{}
	quitCtx  context.Context // cancelled with quit (quitCancel)
	stopping bool
	quitStop context.CancelFunc
	wg       sync.WaitGroup
	// conns are the served ASAP connections; nil once closeConns ran
	// (a connection served later is closed at once).
	conns map[*asapConn]struct{}
	// poller holds idle ASAP connections (conn_park_after); nil: none.
	poller atomic.Pointer[transport.Poller]
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
	var tlsStore *tlsutil.Store
	if cfg.TLSEnabled() {
		var err error
		if tlsStore, err = tlsutil.NewStore(cfg.tlsFiles()); err != nil {
			return nil, err
		}
		tlsStore.SetVerifyOutgoing(cfg.VerifyOutgoing)
	}
	var toks *tokens
	if cfg.HTTPTokensFile != "" {
		var err error
		if toks, err = loadTokens(cfg.HTTPTokensFile); err != nil {
			return nil, err
		}
	}
	r := &Registrar{
		cfg:     cfg,
		applied: cfg,
		logFile: logFile,
		log:     log,
		net:     network,
		ready:   make(chan struct{}),
		leaveCh: make(chan struct{}),
		quit:    make(chan struct{}),
		conns:   map[*asapConn]struct{}{},
		tls:     tlsStore,

		httpClosing: make(chan struct{}),
	}
	r.quitCtx, r.quitStop = context.WithCancel(context.Background())
	r.tokens.Store(toks)
	r.trust.Store(newPeerTrust(&cfg))
	r.leaderClient = r.newLeaderClient()
	return r, nil
}

// Ready is closed once the registrar serves ASAP.
func (r *Registrar) Ready() <-chan struct{} { return r.ready }

// ID is the registrar ID (known once Ready).
func (r *Registrar) ID() uint32 { return r.id }

// Handlespace is the replicated handlespace (known once Ready), for
// tools and tests in the same process.
func (r *Registrar) Handlespace() *cluster.Handlespace { return r.hs }

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
// stores. It returns the first error that stopped it. (Package
// registrartest can instead kill it: connections and listeners closed,
// gossip and raft stopped without a word, the handlespace file left
// without its queued commits, as after kill -9.)
func (r *Registrar) Run(ctx context.Context) (err error) {
	r.start = time.Now()
	if r.logFile != nil {
		defer r.logFile.Close()
	}
	if soft, hard, ferr := raiseFileLimit(); ferr != nil {
		r.log.Warn("cannot raise the open file limit to its hard limit", "soft", soft, "hard", hard, "error", ferr)
		r.fdLimit = soft
	} else if soft > 0 {
		r.log.Info("open file limit", "limit", soft, "hard", hard, "max_connections", connCap(r.cfg.MaxConnections, soft))
		r.fdLimit = soft
	}
	if lowFileLimit(r.fdLimit) {
		r.log.Warn("open file limit is low: half of it is kept for the admin API, raft, gossip, files and dials to PEs, the ASAP and ENRP connections get the rest",
			"limit", r.fdLimit, "max_connections", connCap(r.cfg.MaxConnections, r.fdLimit), "at_least", 2*fdReserve)
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
	if exp := r.cfg.insecureExposures(); len(exp) > 0 && r.cfg.Insecure {
		r.log.Warn("insecure: anyone who reaches these ports can change the handlespace or the cluster (see docs/security.md)", "exposed", exp)
	}
	if r.tls != nil && !r.cfg.VerifyOutgoing {
		r.log.Warn("verify_outgoing is off: the certificates of the registrars this one dials are not checked")
	}
	r.log.Info(ReadyLine, "id", fmt.Sprintf("0x%08x", r.id), "asap", addrList(r.asapLn.Addrs()),
		"enrp", addrList(r.enrpLn.Addrs()), "http", r.HTTPAddr(), "raft", r.hs.RaftAddr(),
		"gossip", r.hs.GossipAddr(), "version", Version)
	select {
	case <-ctx.Done():
		r.leaving = r.cfg.LeaveOnTerminate
		if errors.Is(context.Cause(ctx), killswitch.Cause) {
			r.killed, r.leaving = true, false
			r.log.Info("killed: stopping at once without a shutdown")
			return nil
		}
	case <-r.leaveCh:
		r.leaving = true
	}
	r.log.Info("shutting down", "leave", r.leaving)
	return nil
}

// Leave makes Run leave the cluster gracefully and return.
func (r *Registrar) Leave() { r.leaveOnce.Do(func() { close(r.leaveCh) }) }

// specList formats endpoints for status and gossip ("tcp:127.0.0.1:3863",
// "sctp:10.0.0.1/10.0.0.2:3863").
func specList(as []transport.Endpoint) []string {
	var s []string
	for _, a := range as {
		s = append(s, a.Network()+":"+a.String())
	}
	return s
}

func addrList(as []transport.Endpoint) string { return strings.Join(specList(as), ",") }

// closers are what open did, undone in reverse order (the fixed shutdown
// order) whatever the point of failure.
type closers []func() error

func (c *closers) add(f ...func() error) { *c = append(*c, f...) }

func (c closers) run() error {
	var errs []error
	for i := len(c) - 1; i >= 0; i-- {
		if err := c[i](); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// open brings everything up, one step after the other; the returned
// cleanup undoes what was done. The steps open what closes last first:
// the data dir, the listeners' sockets (bound, not yet served: gossip
// tells their addresses from its first message on), the handlespace
// (with raft and gossip), then PE supervision and ENRP peering, then the
// listeners are served.
func (r *Registrar) open(ctx context.Context) (func() error, error) {
	var c closers
	for _, step := range []func(context.Context, *closers) error{
		r.openDataDir,
		r.bindListeners,
		r.openHandlespace,
		r.startSupervision,
		r.serveListeners,
		r.startPeering,
		r.mentorPhase,
		r.serveASAPListener,
		r.startAnnounces,
	} {
		if err := step(ctx, &c); err != nil {
			return c.run, err
		}
	}
	return c.run, nil
}

// openDataDir checks that every listener can bind before it touches the
// data dir, then creates the data dir and loads (or makes) the registrar
// ID.
func (r *Registrar) openDataDir(ctx context.Context, _ *closers) error {
	if err := r.checkListeners(ctx); err != nil {
		return err
	}
	if err := os.MkdirAll(r.cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("data dir: %w (create it, make it writable by this user, or use another -data-dir)", err)
	}
	id, err := loadOrCreateID(r.cfg.DataDir, r.cfg.ID)
	if err != nil {
		return err
	}
	r.id = id
	r.log = r.log.With("registrar", fmt.Sprintf("%08x", id))
	return nil
}

// openHandlespace opens the replicated handlespace: the handlespace file,
// raft and gossip (closed last: gossip left, if leaving, and stopped,
// then raft, then the files). A registrar that neither joins nor expects
// others forms a one-node cluster the first time, and then waits
// (bounded) for its raft leader and for every entry of its log, so that
// it serves the whole handlespace and its first registrations do not
// race the election; others wait to be added.
func (r *Registrar) openHandlespace(ctx context.Context, c *closers) error {
	_, perr := os.Stat(filepath.Join(r.cfg.DataDir, "peers.json"))
	r.bootstrap = len(r.cfg.Join) == 0 && r.cfg.BootstrapExpect == 0 && perr != nil
	r.peers = newPeers(r)
	mc := r.cfg.membershipConfig()
	mc.EncryptKey, _ = cluster.ParseEncryptKey(r.cfg.Encrypt)
	mc.IsForeign = r.peers.isForeign
	hs, err := cluster.Open(cluster.Config{
		ID:         r.id,
		DataDir:    r.cfg.DataDir,
		Raft:       r.raftConfig(),
		Membership: mc,
		Meta: cluster.Meta{Build: Version, ASAP: specList(r.asapLn.Addrs()), ENRP: specList(r.enrpLn.Addrs()),
			HTTP: r.HTTPAddr()},
		Bootstrap:   r.bootstrap,
		NoSync:      r.cfg.NoSync,
		CommitDelay: r.cfg.CommitDelay.D(),
		Logger:      r.log,
	})
	if err != nil {
		return err
	}
	r.hs = hs
	c.add(func() error {
		if r.killed {
			hs.Abort()
			return nil
		}
		if r.leaving {
			if err := hs.Leave(); err != nil {
				r.log.Warn("gossip leave", "error", err)
			}
		}
		return hs.Close()
	})
	r.metrics = newMetrics(r)
	if !r.bootstrap {
		return nil
	}
	ok, err := hs.WaitLeader(ctx, r.cfg.WriteTimeout.D()+5*time.Second)
	if err != nil {
		return err
	}
	if !ok {
		r.log.Warn("no raft leader yet; serving resolutions from the local handlespace")
		return nil
	}
	// Serve the whole handlespace at once: the log entries the file did
	// not have yet (group commit) are replayed before we answer.
	if hs.IsLeader() {
		if err := hs.Barrier(ctx); err != nil {
			r.log.Warn("raft barrier before serving failed", "error", err)
		}
	}
	return nil
}

// startSupervision starts what follows the handlespace's commits, in
// goroutines stopped before the handlespace closes: PE supervision (the
// PEs this registrar is home for), ENRP peering's view of our own
// changes, snapshot restores (a pending offline restore is installed
// here).
func (r *Registrar) startSupervision(ctx context.Context, c *closers) error {
	c.add(r.stopGoroutines)
	r.limits = newRateLimits(r.cfg)
	r.watch = newWatcher(r, r.cfg.WatchHistory)
	r.watch.start()
	r.live = newLiveness(r)
	r.live.start()
	r.reportOut = make(chan outReport, reportQueue)
	r.goFunc(r.runReports)
	r.peers.start(r.hs)
	return r.startSnapshots(ctx)
}

// bindListeners binds the ASAP and ENRP listeners and the admin API's
// socket before gossip starts, so that the first word gossip says about
// this registrar (a join, or refuting what the cluster remembers of its
// previous run) carries their addresses; a later meta update could be
// missed until the next push-pull, and a follower would not know where
// the leader's admin API is. Connections wait in the backlog until
// serveListeners serves them. The closer here only covers a start that
// fails before that.
func (r *Registrar) bindListeners(ctx context.Context, c *closers) error {
	tcfg := r.asapConnConfig()
	var err error
	if r.asapLn, err = r.net.Listen(ctx, r.cfg.ASAP, tcfg); err != nil {
		return fmt.Errorf("asap listen %s: %w", r.cfg.ASAP, err)
	}
	c.add(func() error { _ = r.asapLn.Close(); return nil })
	ecfg := tcfg
	ecfg.PPID = transport.PPIDENRP
	ecfg.Logger = r.log.Named("enrp")
	ecfg.ReusePort = true // our dials to ENRP peers come from its port (enrpDialConfig)
	if r.enrpLn, err = r.net.Listen(ctx, r.cfg.ENRP, ecfg); err != nil {
		return fmt.Errorf("enrp listen %s: %w", r.cfg.ENRP, err)
	}
	c.add(func() error { _ = r.enrpLn.Close(); return nil })
	if r.cfg.ASAPTLS != "off" {
		tc := tcfg
		tc.TLS = r.tls.ServerConfig(r.clientAuth())
		if r.asapTLSLn, err = r.net.Listen(ctx, tlsSpec(r.cfg.ASAPTLS), tc); err != nil {
			return fmt.Errorf("asap tls listen %s: %w", r.cfg.ASAPTLS, err)
		}
		c.add(func() error { _ = r.asapTLSLn.Close(); return nil })
	}
	if r.cfg.ENRPTLS != "off" {
		ec := ecfg
		ec.TLS = r.tls.ServerConfig(tlsutil.ClientRegistrar)
		if r.enrpTLSLn, err = r.net.Listen(ctx, tlsSpec(r.cfg.ENRPTLS), ec); err != nil {
			return fmt.Errorf("enrp tls listen %s: %w", r.cfg.ENRPTLS, err)
		}
		c.add(func() error { _ = r.enrpTLSLn.Close(); return nil })
	}
	if r.cfg.HTTP != "off" {
		if r.httpLn, err = net.Listen("tcp", r.cfg.HTTP); err != nil {
			return fmt.Errorf("http listen %s: %w", r.cfg.HTTP, err)
		}
		if r.tls != nil {
			r.httpLn = tls.NewListener(r.httpLn, r.tls.ServerConfig(r.clientAuth()))
		}
		c.add(func() error {
			if !r.httpServed {
				_ = r.httpLn.Close()
			}
			return nil
		})
	}
	return nil
}

// serveListeners serves the listeners bindListeners bound (closed first
// at shutdown, with their connections).
func (r *Registrar) serveListeners(_ context.Context, c *closers) error {
	c.add(r.closeConns, r.asapLn.Close, r.enrpLn.Close)
	if r.httpLn != nil {
		handlers := newInflight()
		r.httpSrv = &http.Server{Handler: handlers.wrap(r.sameOrigin(r.httpHandler())), ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: r.log.Named("http").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})}
		var once sync.Once
		r.httpSrv.RegisterOnShutdown(func() { once.Do(func() { close(r.httpClosing) }) })
		ln := r.httpLn
		r.httpServed = true
		r.goFunc(func() { _ = r.httpSrv.Serve(ln) })
		c.add(func() error {
			defer func() {
				if !handlers.closeAndWait(10 * time.Second) {
					r.log.Warn("admin API requests still running 10s after shutdown began")
				}
			}()
			if r.killed {
				once.Do(func() { close(r.httpClosing) })
				return r.httpSrv.Close()
			}
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := r.httpSrv.Shutdown(sctx); err != nil {
				// The grace period ended: cut the connections (their
				// handlers see their contexts end) and wait for them.
				r.log.Debug("admin API requests still running at shutdown: closing their connections", "error", err)
				_ = r.httpSrv.Close()
			}
			return nil
		})
	}
	r.goFunc(func() { r.acceptLoop(r.enrpLn, r.limited(r.serveENRP)) })
	if r.enrpTLSLn != nil {
		c.add(r.enrpTLSLn.Close)
		r.goFunc(func() { r.acceptLoop(r.enrpTLSLn, r.limited(r.serveENRPTLS)) })
	}
	if r.asapTLSLn != nil {
		c.add(r.asapTLSLn.Close) // served after the ENRP start-up phase (serveASAPListener)
	}
	return nil
}

// serveASAPListener serves the ASAP listener: after the ENRP start-up
// phase, so that PUs are answered from a handlespace that holds the
// peers' PEs (ASAP connections wait in the backlog until then).
func (r *Registrar) serveASAPListener(_ context.Context, _ *closers) error {
	if r.cfg.ConnParkAfter.D() > 0 {
		if p, err := transport.NewPoller(); err != nil {
			r.log.Debug("idle ASAP connections keep their goroutine", "error", err)
		} else {
			r.poller.Store(p)
			r.goFunc(func() {
				if err := p.Run(r.quitCtx); err != nil {
					r.log.Error("idle connection poller stopped", "error", err)
				}
			})
			r.goFunc(r.parkIdle)
		}
	}
	r.goFunc(func() { r.acceptLoop(r.asapLn, r.admitted(r.serveASAP)) })
	if r.asapTLSLn != nil {
		r.goFunc(func() { r.acceptLoop(r.asapTLSLn, r.admitted(r.serveASAP)) })
	}
	return nil
}

// startPeering starts ENRP peering: PRESENCE on the ENRP multicast group
// and the peering loop (heartbeats, dials, takeovers). Multicast the
// operator asked for must work; the default (on for non-loopback
// addresses) only warns where the host cannot do it.
func (r *Registrar) startPeering(ctx context.Context, _ *closers) error {
	if group := r.cfg.enrpAnnounceGroup(); group != "off" {
		if err := r.peers.startMulticast(ctx, group); err != nil {
			if r.cfg.ENRPAnnounce != "" {
				return fmt.Errorf("enrp multicast %s: %w", group, err)
			}
			r.log.Warn("ENRP presence multicast off: multicast unavailable (set -enrp-announce off to silence)", "group", group, "error", err)
		} else {
			r.peers.multicast = true
		}
	}
	r.goFunc(r.peers.run)
	return nil
}

// startAnnounces starts the ASAP server announces on their multicast
// group and the CSP status reports. Multicast the operator asked for must
// work; the default (on for non-loopback addresses) only warns where the
// host cannot do it.
func (r *Registrar) startAnnounces(ctx context.Context, _ *closers) error {
	if group := r.cfg.announceGroup(); group != "off" {
		if err := r.startAnnounce(ctx, group); err != nil {
			if r.cfg.Announce != "" {
				return fmt.Errorf("announce %s: %w", group, err)
			}
			r.log.Warn("ASAP announces off: multicast unavailable (set -announce off to silence)", "group", group, "error", err)
		}
	}
	return r.startCSP()
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

// stopGoroutines stops supervision, announces and connection handlers.
func (r *Registrar) stopGoroutines() error {
	r.mu.Lock()
	if !r.stopping {
		r.stopping = true
		close(r.quit)
		r.quitStop()
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

// quitContext is a context cancelled when shutdown begins. It is a child
// of quitCtx, so it costs no goroutine: a goroutine per connection waiting
// for quit was a few KiB of every idle connection.
func (r *Registrar) quitContext() (context.Context, context.CancelFunc) {
	return context.WithCancel(r.quitCtx)
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
