package registrar

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/cluster"
	"github.com/rserpool-go/registrar/enrp"
	"github.com/rserpool-go/registrar/transport"
)

// asapConn is one ASAP association with a PE or PU: accepted, or dialed by
// the registrar to reach a PE's ASAP endpoint.
type asapConn struct {
	r       *Registrar
	c       transport.Conn
	logOnce sync.Once
	log     hclog.Logger // logger() makes it
	remote  netip.Addr   // the peer's address (unreachability reporters)
	// resBucket and unrBucket are the connection's rate limits of
	// resolutions and unreachability reports (the reader goroutine's).
	resBucket, unrBucket, msgBucket bucket
	// pes are the PEs registered through this connection and not
	// deregistered on it (the reader goroutine's), for
	// max_pes_per_connection.
	pes peSet
	// sess orders the connection's reads after its own writes (the reader
	// goroutine's): a registration at a follower is answered once
	// committed, and the next request other than a registration waits
	// until it is applied here.
	sess cluster.Session
	rnd  *rand.Rand // selection randomness (one reader goroutine uses it)
	// supervised is set once a PE this registrar is home for uses the
	// connection (liveness).
	supervised atomic.Bool
	// livePEs heads the list of the PEs supervision reaches through this
	// connection (peState.connNext; liveness.mu guards it).
	livePEs *peState

	sendMu sync.Mutex
	buf    []byte

	// The reader's: the receive buffer of a FastConn, and the pool handles
	// resolved on this connection (a handle resolution read in place looks
	// its handle up here instead of allocating a string).
	rbuf    []byte
	handles map[string]asap.PoolHandle

	// Serving: the context of the connection's requests (the registrar's
	// quit context: a context per connection, and the map of children the
	// writes' timeouts give it, cost about 300 bytes each, and a write in
	// flight when the connection ends is bounded by the apply timeout
	// anyway), what runs when it ends, and parking (see parkIdle).
	ctx    context.Context
	onEnd  []func()
	active atomic.Bool // a message arrived since parkIdle last looked
	parked atomic.Bool // handed to the poller; no goroutine reads it
	wakeFn func()      // the poller's wake for this connection, made once
}

// logger returns the connection's logger (the registrar's, with the
// peer's address), made on its first line: most connections never log,
// and a logger made for every connection cost about 1 KB each.
func (ac *asapConn) logger() hclog.Logger {
	ac.logOnce.Do(func() { ac.log = ac.r.log.With("peer", ac.c.RemoteAddr().String()) })
	return ac.log
}

// maxConnHandles bounds asapConn.handles (cleared when full).
const maxConnHandles = 16

// handle returns b as a PoolHandle, allocating only for a handle new to
// this connection.
func (ac *asapConn) handle(b []byte) asap.PoolHandle {
	if ph, ok := ac.handles[string(b)]; ok {
		return ph
	}
	if ac.handles == nil || len(ac.handles) >= maxConnHandles {
		ac.handles = make(map[string]asap.PoolHandle, maxConnHandles)
	}
	ph := asap.PoolHandle(b)
	ac.handles[string(ph)] = ph
	return ph
}

func (r *Registrar) newConn(c transport.Conn) *asapConn {
	// The send buffer grows to what the connection sends (a keep-alive
	// takes 36 bytes) and the selection randomness is made on the first
	// resolution: a PE's connection only ever sends keep-alives, and
	// 19 000 of them at one registrar had 10 MB in preallocated buffers.
	ac := &asapConn{r: r, c: c}
	if pa := c.PeerAddrs(); len(pa) > 0 {
		ac.remote = pa[0]
	}
	return ac
}

// serveASAP serves an accepted ASAP connection; release (the connection
// limits' count) runs when it ends.
func (r *Registrar) serveASAP(c transport.Conn, release func()) {
	ac := r.newConn(c)
	ac.onEnd = append(ac.onEnd, release)
	r.serveConn(ac)
}

// serveConn serves one connection until it closes, and then runs its
// onEnd functions. It may return before: an idle connection is parked on
// the poller, and served again on a new goroutine when it has something
// to read.
func (r *Registrar) serveConn(ac *asapConn) {
	c := ac.c
	r.mu.Lock()
	if r.conns == nil { // shutting down: closeConns ran
		r.mu.Unlock()
		c.Close()
		ac.ended()
		return
	}
	r.conns[ac] = struct{}{}
	r.mu.Unlock()
	r.metrics.conns.Inc()
	ac.ctx = r.quitCtx
	r.serveRun(ac)
}

// serveRun reads ac until it ends (then endConn) or is parked.
func (r *Registrar) serveRun(ac *asapConn) {
	for errors.Is(r.readLoop(ac), transport.ErrParked) {
		if r.park(ac) {
			return
		}
	}
	r.endConn(ac)
}

// isWrite reports whether msg is a registration or a deregistration.
func isWrite(msg []byte) bool {
	t, _ := asap.MessageType(msg)
	return t == asap.TypeRegistration || t == asap.TypeDeregistration
}

// endConn cleans up after a connection that ended.
func (r *Registrar) endConn(ac *asapConn) {
	r.mu.Lock()
	delete(r.conns, ac)
	r.mu.Unlock()
	r.metrics.conns.Dec()
	ac.c.Close()
	r.live.connClosed(ac)
	ac.ended()
}

// ended runs the connection's onEnd functions.
func (ac *asapConn) ended() {
	for _, f := range ac.onEnd {
		f()
	}
	ac.onEnd = nil
}

// park hands an idle connection to the poller; false when it cannot
// park (no poller, TLS, SCTP, part of a message buffered).
func (r *Registrar) park(ac *asapConn) bool {
	p := r.poller.Load()
	pc, ok := ac.c.(transport.Parker)
	if p == nil || !ok {
		return false
	}
	if ac.wakeFn == nil {
		ac.wakeFn = func() {
			ac.parked.Store(false)
			if !r.goFunc(func() { r.serveRun(ac) }) {
				r.endConn(ac) // shutting down
			}
		}
	}
	ac.rbuf = nil // the receive buffer is the transport's again when it reads
	ac.parked.Store(true)
	if !pc.Park(p, ac.wakeFn) {
		ac.parked.Store(false)
		return false
	}
	return true
}

// parkIdle asks every connection that received nothing over the last
// conn_park_after to park (its Recv returns ErrParked when it waits with
// nothing received), until shutdown.
func (r *Registrar) parkIdle() {
	t := time.NewTicker(r.cfg.ConnParkAfter.D())
	defer t.Stop()
	for {
		select {
		case <-r.quit:
			return
		case <-t.C:
		}
		r.mu.Lock()
		for ac := range r.conns {
			if !ac.active.Swap(false) && !ac.parked.Load() {
				if pc, ok := ac.c.(transport.Parker); ok {
					pc.RequestPark()
				}
			}
		}
		r.mu.Unlock()
	}
}

// readLoop reads and handles ASAP messages until Recv fails, and returns
// its error (transport.ErrParked: ac is idle and may park).
func (r *Registrar) readLoop(ac *asapConn) error {
	c, ctx := ac.c, ac.ctx
	fc, fast := c.(transport.FastConn)
	held := false // answers held by TrySendMore
	for {
		// Recv without a cancellable context (no per-message cancellation
		// hook): shutdown closes every connection, which ends it.
		var (
			ppid uint32
			msg  []byte
			err  error
		)
		if fast {
			if held && !fc.Buffered() { // never block in a read with answers held
				held = false
				if err := fc.Flush(); err != nil {
					ac.logger().Debug("send failed", "error", err)
				}
			}
			ppid, msg, err = fc.RecvInto(context.Background(), ac.rbuf)
			ac.rbuf = msg
		} else {
			ppid, msg, err = c.Recv(context.Background())
		}
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, transport.ErrClosed) && !errors.Is(err, transport.ErrParked) {
				ac.logger().Debug("asap connection ended", "error", err)
			}
			return err
		}
		ac.active.Store(true)
		if ppid != transport.PPIDASAP {
			ac.logger().Warn("dropping message with a foreign payload protocol on the ASAP port", "ppid", ppid)
			continue
		}
		if !r.limits.allowMessage(&ac.msgBucket) {
			r.metrics.messagesDropped.Inc()
			continue
		}
		if ac.sess.Pending() != 0 && !isWrite(msg) {
			// Read your writes: a resolution after this connection's
			// registrations at a follower waits until they are applied
			// here (at once in the common case); if they cannot be, it is
			// answered from what is. A registration need not wait (the
			// leader decides it); a deregistration waits in deregister.
			r.hs.Sync(ctx, &ac.sess)
		}
		if fast {
			lim := r.limitsValue()
			if h, items, has, ok := asap.ReadHandleResolution(msg, &lim); ok {
				// The hot path: no allocation; when the client pipelines,
				// the answers to the requests already received go out in
				// one write.
				more := fc.Buffered()
				r.resolveHandle(ac, ac.handle(h), has, items, more)
				held = held || more
				continue
			}
			msg = bytes.Clone(msg) // the handlers may keep parts of it; ac.rbuf is reused
		}
		r.handleASAP(ctx, ac, msg)
	}
}

// send encodes and sends one message.
func (ac *asapConn) send(m asap.Message) error {
	ac.sendMu.Lock()
	defer ac.sendMu.Unlock()
	b, err := asap.Append(ac.buf[:0], m)
	if err != nil {
		ac.logger().Error("cannot encode reply", "type", m.Type(), "error", err)
		return err
	}
	ac.buf = b
	if err := ac.sendLocked(b, false); err != nil {
		ac.logger().Debug("send failed", "type", m.Type(), "error", err)
		return err
	}
	return nil
}

// countError counts an error cause sent, labelled "0x0006".
func (r *Registrar) countError(c asap.CauseCode) {
	r.metrics.errors.WithLabelValues(fmt.Sprintf("0x%04x", uint16(c))).Inc()
}

// sendError answers with an ASAP_ERROR carrying the causes.
func (ac *asapConn) sendError(causes ...asap.Cause) {
	for _, c := range causes {
		ac.r.countError(c.Code)
	}
	_ = ac.send(&asap.Error{Error: asap.OperationError{Causes: causes}})
}

func (r *Registrar) limitsFor() *asap.Limits {
	lim := r.limitsValue()
	return &lim
}

func (r *Registrar) limitsValue() asap.Limits {
	return asap.Limits{MaxPoolHandle: r.cfg.MaxPoolHandle}
}

// handleASAP decodes and dispatches one message. Bad input never changes
// the handlespace; it is answered with an ASAP_ERROR where the RFC says so.
func (r *Registrar) handleASAP(ctx context.Context, ac *asapConn, msg []byte) {
	m, unrec, err := asap.Unpack(msg, r.limitsFor())
	if err != nil {
		r.metrics.malformed.Inc()
		if cause, ok := asap.CauseOf(err); ok {
			ac.logger().Debug("refusing malformed message", "error", err)
			ac.sendError(cause)
		} else {
			ac.logger().Debug("dropping message silently", "error", err)
		}
		return
	}
	if len(unrec) > 0 {
		causes := make([]asap.Cause, len(unrec))
		for i, u := range unrec {
			causes[i] = u.Cause()
		}
		ac.sendError(causes...)
	}
	switch m := m.(type) {
	case *asap.Registration:
		ac.send(r.register(ctx, ac, m))
	case *asap.Deregistration:
		ac.send(r.deregister(ctx, ac, m))
	case *asap.HandleResolution:
		r.resolve(ac, m)
	case *asap.EndpointKeepAliveAck:
		r.live.ack(ac, m.PoolHandle, m.ID)
	case *asap.EndpointUnreachable:
		r.unreachable(ac, m)
	case *asap.Error:
		ac.logger().Debug("peer reported an error", "causes", m.Error.Error())
	default:
		ac.logger().Debug("ignoring message a registrar does not handle", "type", m.Type())
	}
}

// encodeParam encodes a parameter for the information of a refusal (nil
// if it cannot be encoded).
func encodeParam(f func([]byte) ([]byte, error)) []byte {
	b, err := f(nil)
	if err != nil {
		return nil
	}
	return b
}

// filterAddrs keeps the addresses that belong to the peer.
func filterAddrs(addrs []netip.Addr, peer []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, a := range addrs {
		a = a.Unmap()
		for _, p := range peer {
			if a == p.Unmap() {
				out = append(out, a)
				break
			}
		}
	}
	return out
}

// register handles ASAP_REGISTRATION: validate, become the PE's home,
// commit through the replicated handlespace, answer after the commit, and
// tell the ENRP peers (peers follow the handlespace's committed changes).
// A re-registration that changes nothing only refreshes the PE's soft
// state (and the peers' lifetime of it). What the PE may register
// (identifier, policy, consistency with its pool) is the handlespace's
// decision, and so is the refusal's cause (the write's
// *asap.OperationError: the store's, or Lack of Resources for a write
// that did not commit); the registrar checks only what belongs to the
// registration itself (a lifetime, addresses of the PE's own connection).
func (r *Registrar) register(ctx context.Context, ac *asapConn, m *asap.Registration) *asap.RegistrationResponse {
	now := time.Now()
	pe := m.PoolElement
	resp := &asap.RegistrationResponse{PoolHandle: m.PoolHandle, ID: pe.ID}
	refuse := func(reason string, oe *asap.OperationError) *asap.RegistrationResponse {
		r.metrics.registrations.WithLabelValues("rejected").Inc()
		r.countError(oe.First())
		ac.logger().Info("registration refused", "pool", ph(m.PoolHandle), "pe", fmt.Sprintf("%08x", pe.ID), "reason", reason)
		resp.Reject, resp.Error = true, oe
		return resp
	}
	if pe.Lifetime == 0 {
		return refuse("registration life 0", asap.NewOperationError(asap.CauseInvalidValues,
			encodeParam(func(b []byte) ([]byte, error) { return asap.AppendPoolElement(b, &pe) })))
	}
	peer := ac.c.PeerAddrs()
	if !r.cfg.AllowForeignAddresses {
		user := pe.User
		user.Addrs = filterAddrs(pe.User.Addrs, peer)
		if len(user.Addrs) == 0 {
			return refuse("no user address belongs to the PE's connection", asap.NewOperationError(asap.CauseInvalidValues,
				encodeParam(func(b []byte) ([]byte, error) { return asap.AppendTransport(b, &pe.User) })))
		}
		pe.User = user
	}
	pe.ASAP = r.asapTransport(ac, pe.ASAP, peer)
	pe.Home = r.id
	pe.Policy = r.withDistance(pe.Policy, ac.c, 0)
	key := peKey{m.PoolHandle, pe.ID}
	if !ac.pes.has(key) && r.cfg.MaxPEsPerConnection > 0 && ac.pes.len() >= r.cfg.MaxPEsPerConnection {
		r.metrics.pesRefused.Inc()
		return refuse("max_pes_per_connection reached on this connection", asap.NewOperationError(asap.CauseLackOfResources, nil))
	}
	cur, exists := r.hs.Lookup(m.PoolHandle, pe.ID)
	if exists && !r.mayChange(ac, m.PoolHandle, cur.Element) {
		ac.logger().Warn("registration refused: the PE identifier belongs to another endpoint", "pool", ph(m.PoolHandle),
			"pe", fmt.Sprintf("%08x", pe.ID), "registered-addresses", addrsOf(cur.Element.User.Addrs))
		r.metrics.registrations.WithLabelValues("rejected").Inc()
		r.countError(asap.CauseNonUniquePEIdentifier)
		resp.Reject, resp.Error = true, asap.NewOperationError(asap.CauseNonUniquePEIdentifier, nil)
		return resp
	}
	if exists && samePE(&cur.Element, &pe) {
		ac.pes.add(key)
		r.live.track(ac, m.PoolHandle, pe, now, 0) // in the handlespace here already
		r.metrics.refreshed.Inc()
		r.peers.announce(enrp.AddPE, m.PoolHandle, pe) // peers refresh its lifetime
		return resp
	}
	t0 := time.Now()
	err := r.hs.RegisterIn(ctx, &ac.sess, m.PoolHandle, pe)
	var oe *asap.OperationError
	switch {
	case err == nil:
		r.metrics.commit.Observe(time.Since(t0).Seconds())
	case errors.Is(err, cluster.ErrStorageFault):
		// The fault is logged once where it happened; one line per
		// refused PE would flood the log.
		r.metrics.registrations.WithLabelValues("rejected").Inc()
		r.countError(asap.CauseLackOfResources)
		ac.logger().Debug("registration refused: storage fault", "pool", ph(m.PoolHandle), "pe", fmt.Sprintf("%08x", pe.ID), "error", err)
		resp.Reject, resp.Error = true, asap.NewOperationError(asap.CauseLackOfResources, nil)
		return resp
	case errors.As(err, &oe):
		return refuse(err.Error(), oe)
	}
	ac.pes.add(key)
	r.metrics.accepted.Inc()
	if ac.r.log.IsDebug() { // its arguments would allocate on every registration
		ac.logger().Debug("registration accepted", "pool", ph(m.PoolHandle), "pe", fmt.Sprintf("%08x", pe.ID), "lifetime_ms", pe.Lifetime)
	}
	// At a follower the write may not be applied here yet (ac.sess):
	// supervision knows its index, so that it does not take the PE's
	// absence from the local handlespace for a removal.
	r.live.track(ac, m.PoolHandle, pe, now, ac.sess.Pending())
	return resp
}

// mayChange reports whether the association ac may re-register or
// deregister the registered PE pe of pool h: the association it
// registered through, or one whose peer addresses include every address
// the PE registered (its user addresses, or its ASAP endpoint's): a PE
// that restarted, or that moved to this registrar after its home failed,
// comes back over a new association from its own addresses, as RSPLIB's
// PEs do. Anything else could be any host's.
func (r *Registrar) mayChange(ac *asapConn, h asap.PoolHandle, pe asap.PoolElement) bool {
	if c := r.live.connOf(h, pe.ID); c != nil && c == ac {
		return true
	}
	peer := ac.c.PeerAddrs()
	return covers(peer, pe.User.Addrs) || covers(peer, pe.ASAP.Addrs)
}

// covers reports whether every specified address of addrs is one of
// peer's (false when addrs has none).
func covers(peer, addrs []netip.Addr) bool {
	n := 0
	for _, a := range addrs {
		a = a.Unmap()
		if a.IsUnspecified() || !a.IsValid() {
			continue
		}
		found := false
		for _, p := range peer {
			if p.Unmap() == a {
				found = true
				break
			}
		}
		if !found {
			return false
		}
		n++
	}
	return n > 0
}

// addrsOf formats addresses for a log line.
func addrsOf(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}

// asapTransport decides where the registrar reaches the PE's ASAP
// endpoint: the one the PE gave (our PE library listens on it), with its
// addresses checked, else the connection's own endpoint (SCTP: the
// association's peer addresses and port, as RSPLIB does).
func (r *Registrar) asapTransport(ac *asapConn, given asap.Transport, peer []netip.Addr) asap.Transport {
	if !given.IsZero() && given.Port != 0 {
		if !r.cfg.AllowForeignAddresses {
			given.Addrs = filterAddrs(given.Addrs, peer)
		}
		if len(given.Addrs) > 0 {
			given.Use = asap.UseData
			if given.Kind != asap.ParamSCTPTransport && len(given.Addrs) > 1 {
				given.Addrs = given.Addrs[:1]
			}
			return given
		}
	}
	t := asap.Transport{Kind: asap.ParamTCPTransport, Use: asap.UseData, Addrs: peer}
	if ac.c.Kind() == transport.KindSCTP {
		t.Kind = asap.ParamSCTPTransport
	}
	t.Port = ac.c.RemoteAddr().Port
	if len(t.Addrs) == 0 {
		t.Addrs = []netip.Addr{netip.IPv4Unspecified()}
	}
	if t.Kind != asap.ParamSCTPTransport && len(t.Addrs) > 1 {
		t.Addrs = t.Addrs[:1]
	}
	return t
}

// samePE reports whether a re-registration changes nothing that is
// replicated.
func samePE(a, b *asap.PoolElement) bool {
	ab, err1 := asap.AppendPoolElement(nil, a)
	bb, err2 := asap.AppendPoolElement(nil, b)
	return err1 == nil && err2 == nil && bytes.Equal(ab, bb)
}

// deregister handles ASAP_DEREGISTRATION from the PE's own association
// (mayChange; others are refused with Rejection due to Security
// Considerations and change nothing). Like RSPLIB it answers success
// also when the PE is already gone. The PE stays supervised until its
// removal is committed.
func (r *Registrar) deregister(ctx context.Context, ac *asapConn, m *asap.Deregistration) *asap.DeregistrationResponse {
	resp := &asap.DeregistrationResponse{PoolHandle: m.PoolHandle, ID: m.ID}
	r.metrics.deregistrations.Inc()
	if !r.hs.Sync(ctx, &ac.sess) {
		// This connection's registrations are committed but not applied
		// here (a follower cut off from its leader): a PE missing here
		// may well be registered, so "not registered" would be a lie.
		r.log.Debug("deregistration refused: this connection's registrations are not applied here yet", "pool", ph(m.PoolHandle), "pe", fmt.Sprintf("%08x", m.ID))
		resp.Error = asap.NewOperationError(asap.CauseLackOfResources, nil)
		return resp
	}
	cur, ok := r.hs.Lookup(m.PoolHandle, m.ID)
	if !ok {
		return resp
	}
	if !r.mayChange(ac, m.PoolHandle, cur.Element) {
		ac.logger().Warn("deregistration refused: not the PE's association", "pool", ph(m.PoolHandle), "pe", fmt.Sprintf("%08x", m.ID),
			"registered-addresses", addrsOf(cur.Element.User.Addrs))
		r.countError(asap.CauseRejectedSecurity)
		resp.Error = asap.NewOperationError(asap.CauseRejectedSecurity, nil)
		return resp
	}
	err := r.hs.DeregisterIn(ctx, &ac.sess, m.PoolHandle, cur.Element)
	if err != nil && !errors.Is(err, cluster.ErrPENotFound) {
		lvl := hclog.Warn
		if errors.Is(err, cluster.ErrStorageFault) {
			lvl = hclog.Debug // logged once where it happened
		}
		r.log.Log(lvl, "deregistration not committed", "pool", ph(m.PoolHandle), "pe", fmt.Sprintf("%08x", m.ID), "error", err)
		resp.Error = asap.NewOperationError(asap.CauseLackOfResources, nil)
		return resp
	}
	r.live.forget(m.PoolHandle, m.ID)
	ac.pes.remove(peKey{m.PoolHandle, m.ID})
	return resp
}

// resolve handles ASAP_HANDLE_RESOLUTION from the local handlespace. The
// answer is built straight from the stored parameter bytes (no decoding);
// when the selected PEs do not all fit in one message it carries as many
// as fit.
func (r *Registrar) resolve(ac *asapConn, m *asap.HandleResolution) {
	r.resolveHandle(ac, m.PoolHandle, m.HasItems, m.Items, false)
}

// resolveHandle answers a resolution of ph (items: the Handle Resolution
// Option, if has). It allocates nothing when the answer fits the
// connection's buffer and its send queue takes it without waiting. more
// holds the answer for the next one's write (see sendLocked).
func (r *Registrar) resolveHandle(ac *asapConn, ph asap.PoolHandle, has bool, items uint32, more bool) {
	fail := func(code asap.CauseCode, label string) {
		r.metrics.resolutions.WithLabelValues(label).Inc()
		ac.send(&asap.HandleResolutionResponse{PoolHandle: ph, Error: asap.NewOperationError(code, nil)})
	}
	if !r.limits.allowResolution(&ac.resBucket) {
		r.metrics.resolutions.WithLabelValues("rate_limited").Inc() // dropped: no answer
		return
	}
	n := r.cfg.MaxHResItems
	if has && items > 0 {
		n = r.cfg.MaxHResItemsCap
		if items < uint32(n) {
			n = int(items)
		}
	}
	ac.sendMu.Lock()
	if ac.rnd == nil {
		ac.rnd = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	b, _, err := r.hs.AppendResolution(ac.buf[:0], ph, n, ac.rnd)
	if err != nil {
		ac.sendMu.Unlock()
		fail(asap.CauseUnknownPoolHandle, "unknown_pool")
		return
	}
	ac.buf = b
	err = ac.sendLocked(b, more)
	ac.sendMu.Unlock()
	if err != nil {
		ac.logger().Debug("send failed", "type", asap.TypeHandleResolutionResponse, "error", err)
	}
	r.metrics.resolutionsOK.Inc()
}

// sendLocked sends b (ac.sendMu held): at once if the connection takes it
// without waiting, else waiting up to 2 s for room. With more (only the
// reader passes it) a FastConn holds b for the next message's write; the
// reader flushes before it waits for a request.
func (ac *asapConn) sendLocked(b []byte, more bool) error {
	if fc, ok := ac.c.(transport.FastConn); ok {
		if sent, err := fc.TrySendMore(transport.PPIDASAP, b, more); sent || err != nil {
			return err
		}
	} else if ts, ok := ac.c.(transport.TrySender); ok {
		if sent, err := ts.TrySend(transport.PPIDASAP, b); sent || err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return ac.c.Send(ctx, transport.PPIDASAP, b)
}
