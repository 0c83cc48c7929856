package registrar

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/cluster"
)

type peKey struct {
	h  asap.PoolHandle
	id uint32
}

// peState is the soft state of a PE this registrar is home for. It is not
// replicated: after a restart or a takeover it starts afresh.
type peState struct {
	key      peKey
	conn     *asapConn      // where the PE registered; nil when lost
	asapAddr asap.Transport // the PE's ASAP endpoint, for dialing
	lifetime time.Time      // registration life runs out
	nextKA   time.Time      // next keep-alive
	ackBy    time.Time      // zero unless waiting for an ACK
	home     bool           // send H=1 (a new home after takeover)
	// restored: the PE came from the handlespace at this registrar's
	// start and has not registered here since. A foreign registrar may
	// have taken it over while we were down: its word wins (restoredPE),
	// and our handle table answers leave it out until it re-registers.
	restored bool
	dialing  bool
	due      time.Time // min of the relevant deadlines
	idx      int       // heap index
	// connPrev and connNext link the PEs supervised through one
	// connection (asapConn.livePEs), so that its end visits only those.
	connPrev, connNext *peState
	// written is the raft index of the registration that track saw
	// answered before this registrar applied it (a follower's), else 0:
	// until LastApplied reaches it, the PE's absence from the local
	// handlespace means nothing.
	written uint64
}

// setConn makes c the PE's connection (l.mu held).
func (p *peState) setConn(c *asapConn) {
	if p.conn == c {
		return
	}
	p.clearConn()
	c.supervised.Store(true)
	p.conn = c
	p.connNext = c.livePEs
	if c.livePEs != nil {
		c.livePEs.connPrev = p
	}
	c.livePEs = p
}

// clearConn unlinks the PE from its connection's list (l.mu held).
func (p *peState) clearConn() {
	c := p.conn
	if c == nil {
		return
	}
	if p.connPrev != nil {
		p.connPrev.connNext = p.connNext
	} else {
		c.livePEs = p.connNext
	}
	if p.connNext != nil {
		p.connNext.connPrev = p.connPrev
	}
	p.conn, p.connPrev, p.connNext = nil, nil, nil
}

func (p *peState) reschedule() {
	due := p.lifetime
	if !p.ackBy.IsZero() {
		if p.ackBy.Before(due) {
			due = p.ackBy
		}
	} else if p.nextKA.Before(due) {
		due = p.nextKA
	}
	p.due = due
}

type peHeap []*peState

func (h peHeap) Len() int           { return len(h) }
func (h peHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h peHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i]; h[i].idx = i; h[j].idx = j }
func (h *peHeap) Push(x any)        { p := x.(*peState); p.idx = len(*h); *h = append(*h, p) }
func (h *peHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	p.idx = -1
	return p
}

// liveness supervises the PEs this registrar is home for: keep-alives with
// an ACK timeout, registration lifetimes, unreachability reports. One
// goroutine (run) owns the timing; removals and dials run in goroutines of
// the registrar.
type liveness struct {
	r        *Registrar
	interval time.Duration
	timeout  time.Duration

	mu  sync.Mutex
	pes map[peKey]*peState
	q   peHeap
	// reports are the ENDPOINT_UNREACHABLE reporters of each PE, by
	// address, with the time of their last report.
	reports map[peKey]map[netip.Addr]time.Time
	wake    chan struct{}
	// sub follows the handlespace's committed changes (takeovers, resets,
	// restores) with room for buffer of them; owned by run.
	sub    *cluster.Subscription
	buffer int
	// sleepUntil is when run wakes next by its timer: a PE scheduled
	// before that wakes it early (upsertLocked).
	sleepUntil time.Time
	// noneRestored: no supervised PE is restored any more (restoredSum).
	noneRestored bool

	// rmQ are the removals waiting for a worker (removeLoop), rmWake
	// wakes one.
	rmMu   sync.Mutex
	rmQ    []removal
	rmWake chan struct{}
}

func newLiveness(r *Registrar) *liveness {
	return &liveness{
		r:        r,
		interval: r.cfg.KeepAliveInterval.D(),
		timeout:  r.cfg.KeepAliveTimeout.D(),
		pes:      map[peKey]*peState{},
		reports:  map[peKey]map[netip.Addr]time.Time{},
		wake:     make(chan struct{}, 1),
		rmWake:   make(chan struct{}, 1),
		buffer:   changeBuffer,
	}
}

// changeBuffer is how many committed changes a follower of the
// handlespace may fall behind before its subscription is dropped (it then
// catches up from the handlespace).
const changeBuffer = 4096

// start follows the handlespace's changes, adopts the PEs this registrar
// owns (after a restart, or a snapshot installed while it was opening)
// and starts the supervision loop.
func (l *liveness) start() {
	l.sub = l.r.hs.Subscribe(l.buffer, l.wants)
	l.adoptOwned(time.Now(), false)
	l.mu.Lock()
	for _, p := range l.pes {
		p.restored = true
	}
	l.mu.Unlock()
	l.r.goFunc(l.run)
	for range removeWorkers {
		l.r.goFunc(l.removeLoop)
	}
}

func (l *liveness) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// upsert adds or updates a PE's state and schedules it.
func (l *liveness) upsertLocked(key peKey, f func(p *peState)) {
	p, ok := l.pes[key]
	if !ok {
		p = &peState{key: key, idx: -1}
		l.pes[key] = p
	}
	f(p)
	p.reschedule()
	if p.idx < 0 {
		heap.Push(&l.q, p)
	} else {
		heap.Fix(&l.q, p.idx)
	}
	// An ACK moves a PE's next keep-alive from its ACK deadline to the
	// keep-alive interval, which may be sooner than run's timer.
	if p.due.Before(l.sleepUntil) {
		l.sleepUntil = p.due
		l.poke()
	}
}

func (l *liveness) dropLocked(key peKey) {
	if p, ok := l.pes[key]; ok {
		if p.idx >= 0 {
			heap.Remove(&l.q, p.idx)
		}
		l.deleteLocked(p)
	}
}

// deleteLocked forgets p, which is off the heap (l.mu held).
func (l *liveness) deleteLocked(p *peState) {
	p.clearConn()
	delete(l.pes, p.key)
}

// count is the number of PEs supervised (0 before Run started the
// supervision).
func (l *liveness) count() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.pes)
}

// track records a (re-)registration of pe in pool h through conn: a fresh
// lifetime and keep-alive period.
func (l *liveness) track(conn *asapConn, h asap.PoolHandle, pe asap.PoolElement, now time.Time, written uint64) {
	key := peKey{h, pe.ID}
	l.mu.Lock()
	delete(l.reports, key)
	l.upsertLocked(key, func(p *peState) {
		p.setConn(conn)
		p.asapAddr = pe.ASAP
		p.lifetime = now.Add(time.Duration(pe.Lifetime) * time.Millisecond)
		p.nextKA = now.Add(l.interval)
		p.ackBy = time.Time{}
		p.home = false
		p.restored = false
		p.written = written
	})
	l.mu.Unlock()
	l.poke()
}

// unapplied reports whether p's registration is committed but not yet
// applied here (so Lookup cannot find it yet).
func (l *liveness) unapplied(p *peState) bool {
	return p.written != 0 && l.r.hs.LastApplied() < p.written
}

// restoredSum is the checksum sum (asap.Checksum) of the restored PEs
// (restoredPE) still homed here, and whether there are any. Only start
// marks PEs restored, so once none is left it answers at once.
func (l *liveness) restoredSum() (asap.Checksum, bool) {
	l.mu.Lock()
	if l.noneRestored {
		l.mu.Unlock()
		return 0, false
	}
	var keys []peKey
	for k, p := range l.pes {
		if p.restored {
			keys = append(keys, k)
		}
	}
	l.noneRestored = len(keys) == 0
	l.mu.Unlock()
	var sum asap.Checksum
	for _, k := range keys { // the handlespace is read without l.mu held
		if cur, ok := l.r.hs.Lookup(k.h, k.id); ok && cur.Element.Home == l.r.id {
			sum.Add(k.h, k.id)
		}
	}
	return sum, len(keys) > 0
}

// restoredPE reports whether a PE homed here is one restored at start
// that has not registered here since (see peState.restored).
func (l *liveness) restoredPE(h asap.PoolHandle, id uint32) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.pes[peKey{h, id}]
	return ok && p.restored
}

// adoptOwned starts supervising every PE the store says this registrar
// owns that is not supervised yet, with a fresh lifetime: after a restart
// (first keep-alive after the interval) or after a takeover (takenOver:
// H=1 keep-alives at once, so the PEs switch home).
func (l *liveness) adoptOwned(now time.Time, takenOver bool) {
	owned := l.r.hs.Owned(l.r.id)
	l.mu.Lock()
	n := 0
	for _, pe := range owned {
		if l.adoptLocked(pe, now, takenOver) {
			n++
		}
	}
	l.mu.Unlock()
	switch {
	case n > 0 && takenOver:
		l.r.log.Info("took over PEs", "pes", n)
	case n > 0:
		l.r.log.Info("supervising PEs this registrar is home for", "pes", n)
	}
	l.poke()
}

// adoptLocked starts supervising pe unless it is supervised already, and
// reports whether it was not (l.mu held).
func (l *liveness) adoptLocked(pe cluster.PE, now time.Time, takenOver bool) bool {
	key := peKey{pe.Handle, pe.Element.ID}
	if _, ok := l.pes[key]; ok {
		return false
	}
	l.upsertLocked(key, func(p *peState) {
		p.asapAddr = pe.Element.ASAP
		p.lifetime = now.Add(time.Duration(pe.Element.Lifetime) * time.Millisecond)
		p.nextKA = now.Add(l.interval)
		if takenOver {
			p.nextKA, p.home = now, true
		}
	})
	return true
}

// wants picks the changes supervision follows (raft's FSM goroutine: it
// must not block).
func (l *liveness) wants(c *cluster.Change) bool {
	switch {
	case c.Kind == cluster.ChangeRestore, c.Kind == cluster.ChangeCommand && c.Command.Kind == cluster.KindReset:
		return true
	case c.Kind == cluster.ChangeCommand && c.Command.Kind == cluster.KindTakeover:
		return slices.Contains(c.Command.Owners, l.r.id)
	}
	return false
}

// follow makes supervision follow a committed change (run's goroutine):
// PEs taken over by this registrar are adopted with H=1 keep-alives, and
// after a reset or a snapshot restore the supervised PEs are made to
// match the handlespace again.
func (l *liveness) follow(c cluster.Change) {
	if c.Kind == cluster.ChangeCommand && c.Command.Kind == cluster.KindTakeover {
		l.adoptOwned(time.Now(), true)
		return
	}
	l.resync(false)
}

// caughtUp handles the end of the subscription: one that fell behind
// (ErrSlowSubscriber) is renewed and supervision made to match the
// handlespace, since changes were missed; one closed with the handlespace
// is not followed any more.
func (l *liveness) caughtUp() {
	if !errors.Is(l.sub.Err(), cluster.ErrSlowSubscriber) {
		l.sub = nil
		return
	}
	l.r.log.Info("PE supervision fell behind the handlespace's changes: resynchronising")
	l.sub = l.r.hs.Subscribe(l.buffer, l.wants)
	l.resync(true) // the missed changes may have been takeovers: H=1 to the PEs new here

}

// resync drops state for PEs that are no longer ours and adopts new ones
// (takenOver: with H=1 keep-alives at once, see adoptOwned).
func (l *liveness) resync(takenOver bool) {
	l.mu.Lock()
	for key, p := range l.pes {
		if pe, ok := l.r.hs.Lookup(key.h, key.id); (!ok && !l.unapplied(p)) || (ok && pe.Element.Home != l.r.id) {
			l.dropLocked(key)
		}
	}
	l.mu.Unlock()
	l.adoptOwned(time.Now(), takenOver)
}

// ack handles ENDPOINT_KEEP_ALIVE_ACK.
func (l *liveness) ack(conn *asapConn, h asap.PoolHandle, id uint32) {
	key := peKey{h, id}
	now := time.Now()
	l.mu.Lock()
	delete(l.reports, key) // it answers: the reports were wrong or are old
	if _, ok := l.pes[key]; ok {
		l.upsertLocked(key, func(p *peState) {
			p.ackBy = time.Time{}
			p.nextKA = now.Add(l.interval)
			p.home = false
			if p.conn == nil {
				p.setConn(conn)
			}
		})
	}
	l.mu.Unlock()
	l.r.metrics.keepAliveAcks.Inc()
}

// connOf is the association the PE registered through, if this
// registrar supervises it and still has that association (else nil).
func (l *liveness) connOf(h asap.PoolHandle, id uint32) *asapConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p, ok := l.pes[peKey{h, id}]; ok {
		return p.conn
	}
	return nil
}

// reportWindow is how long an unreachability report counts: a PE that
// many PUs cannot reach is reported by them within a few keep-alive
// rounds; older reports (of a PE another registrar supervises, whose
// keep-alive answers we do not see) expire.
func (l *liveness) reportWindow() time.Duration { return 3 * (l.interval + l.timeout) }

// report counts an unreachability report from the reporter at from; true
// when the PE must go: MaxBadPEReports distinct reporters (addresses)
// within reportWindow, none of whose reports were answered by a keep-alive
// ACK since (ack resets the count). A PE this registrar is home for is
// probed with a keep-alive at once, so one report of a dead PE removes it
// after the keep-alive timeout, and reports of a PE that answers change
// nothing: no single PU can remove a live PE.
func (l *liveness) report(h asap.PoolHandle, id uint32, from netip.Addr, now time.Time) bool {
	if _, ok := l.r.hs.Lookup(h, id); !ok {
		return false
	}
	key := peKey{h, id}
	l.mu.Lock()
	defer l.mu.Unlock()
	by := l.reports[key]
	if by == nil {
		by = map[netip.Addr]time.Time{}
		l.reports[key] = by
	}
	for a, at := range by {
		if now.Sub(at) > l.reportWindow() {
			delete(by, a)
		}
	}
	by[from.Unmap()] = now
	if len(by) >= l.r.cfg.MaxBadPEReports {
		delete(l.reports, key)
		return true
	}
	if _, ok := l.pes[key]; ok {
		l.upsertLocked(key, func(p *peState) {
			if p.ackBy.IsZero() && p.nextKA.After(now) {
				p.nextKA = now
			}
		})
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	return false
}

// forget stops supervising a PE (deregistered).
func (l *liveness) forget(h asap.PoolHandle, id uint32) {
	l.mu.Lock()
	l.dropLocked(peKey{h, id})
	delete(l.reports, peKey{h, id})
	l.mu.Unlock()
}

// connClosed: PEs that registered through conn are probed through their
// ASAP endpoint at once (a PE that died is removed after the ACK timeout;
// one that is alive answers and stays), or with PEConnLoss "remove"
// removed at once. Only the connection's own PEs are visited (its
// livePEs list), and a connection no supervised PE ever used (a PU's)
// does not even take the lock.
func (l *liveness) connClosed(conn *asapConn) {
	if !conn.supervised.Load() {
		return
	}
	now := time.Now()
	remove := l.r.cfg.PEConnLoss == PEConnLossRemove
	var gone []peKey
	l.mu.Lock()
	for p := conn.livePEs; p != nil; {
		next := p.connNext
		p.clearConn()
		if remove {
			gone = append(gone, p.key)
		} else {
			l.upsertLocked(p.key, func(p *peState) {
				if p.ackBy.IsZero() {
					p.nextKA = now
				}
			})
		}
		p = next
	}
	l.mu.Unlock()
	for _, key := range gone {
		l.remove(key.h, key.id, "association lost")
	}
	l.poke()
}

// removeReason is the change stream's reason for a removal by
// supervision (reason is its metrics label).
func removeReason(reason string) cluster.RemoveReason {
	switch reason {
	case "lifetime expired":
		return cluster.ReasonLifetime
	case "unreachable reports":
		return cluster.ReasonUnreachable
	}
	return cluster.ReasonKeepAlive
}

// reasonUnreachable is the removal reason of ENDPOINT_UNREACHABLE reports
// (which remove a PE wherever it is homed).
const reasonUnreachable = "unreachable reports"

// removeWorkers is how many removals wait for their raft commit at
// once. Removals come in bursts (a registrar's PEs all at once when the
// connection they shared drops, or at the end of a partition): the queue
// holds any number of them at a few dozen bytes each, where a goroutine
// per removal cost kilobytes each and a million at once for a million
// PEs; raft batches the concurrent commits.
const removeWorkers = 64

type removal struct {
	h      asap.PoolHandle
	id     uint32
	reason string
}

// remove commits DEL_PE for a PE (asynchronously, in the order asked), if
// it is still there. A PE of ours whose removal does not commit (no
// quorum) is supervised again, so that a later round retries.
func (l *liveness) remove(h asap.PoolHandle, id uint32, reason string) {
	l.forget(h, id)
	l.rmMu.Lock()
	l.rmQ = append(l.rmQ, removal{h, id, reason})
	l.rmMu.Unlock()
	select {
	case l.rmWake <- struct{}{}:
	default:
	}
}

// removeLoop is one of the removal workers (start starts them; they end
// with quit, leaving what is queued: the next start supervises those PEs
// again from the handlespace).
func (l *liveness) removeLoop() {
	for {
		l.rmMu.Lock()
		if len(l.rmQ) == 0 {
			l.rmQ = nil // let a burst's backing array go
			l.rmMu.Unlock()
			select {
			case <-l.r.quit:
				return
			case <-l.rmWake:
			}
			continue
		}
		rm := l.rmQ[0]
		l.rmQ[0] = removal{}
		l.rmQ = l.rmQ[1:]
		more := len(l.rmQ) > 0
		l.rmMu.Unlock()
		if more { // pass the wake on: one wake-up may stand for many
			select {
			case l.rmWake <- struct{}{}:
			default:
			}
		}
		select {
		case <-l.r.quit:
			return
		default:
		}
		l.removeNow(rm.h, rm.id, rm.reason)
	}
}

// removeNow is one removal (removeLoop).
func (l *liveness) removeNow(h asap.PoolHandle, id uint32, reason string) {
	cur, ok := l.r.hs.Lookup(h, id)
	if !ok {
		return
	}
	if reason != reasonUnreachable && cur.Element.Home != l.r.id {
		// Supervision ran out for a PE whose home moved (a foreign
		// registrar took it over while we were down): not ours to
		// remove.
		l.r.log.Debug("supervision ended for a PE homed elsewhere now", "pool", h, "pe", fmt.Sprintf("%08x", id), "home", hexID(cur.Element.Home))
		return
	}
	if err := l.r.hs.Remove(context.Background(), h, cur.Element, removeReason(reason)); err != nil {
		l.r.metrics.removalFailures.WithLabelValues(reason).Inc()
		lvl := hclog.Warn
		if errors.Is(err, cluster.ErrStorageFault) {
			// Logged once where it happened: a WARN per PE flooded the
			// log with hundreds of thousands of lines on a full disk.
			lvl = hclog.Debug
		}
		l.r.log.Log(lvl, "removing PE failed", "pool", ph(h), "pe", fmt.Sprintf("%08x", id), "reason", reason, "error", err)
		if cur.Element.Home == l.r.id && !errors.Is(err, cluster.ErrPENotFound) {
			l.mu.Lock()
			l.adoptLocked(cur, time.Now(), false)
			l.mu.Unlock()
			l.poke()
		}
		return
	}
	l.r.metrics.removals.WithLabelValues(reason).Inc()
	l.r.log.Info("PE removed", "pool", ph(h), "pe", fmt.Sprintf("%08x", id), "reason", reason)
}

// run is the supervision loop.
func (l *liveness) run() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		var sends []*peState
		var gone []struct {
			key    peKey
			reason string
		}
		l.mu.Lock()
		for len(l.q) > 0 && !l.q[0].due.After(now) {
			p := l.q[0]
			switch {
			case !p.lifetime.After(now):
				gone = append(gone, struct {
					key    peKey
					reason string
				}{p.key, "lifetime expired"})
				heap.Pop(&l.q)
				l.deleteLocked(p)
			case !p.ackBy.IsZero() && !p.ackBy.After(now):
				gone = append(gone, struct {
					key    peKey
					reason string
				}{p.key, "keep-alive timeout"})
				heap.Pop(&l.q)
				l.deleteLocked(p)
				l.r.metrics.keepAlivesMissed.Inc()
			default: // keep-alive due
				p.ackBy = now.Add(l.timeout)
				p.reschedule()
				heap.Fix(&l.q, p.idx)
				cp := *p
				cp.connPrev, cp.connNext = nil, nil // a snapshot for keepAlive, in no list
				sends = append(sends, &cp)
			}
		}
		var wait time.Duration = time.Hour
		if len(l.q) > 0 {
			wait = time.Until(l.q[0].due)
		}
		l.sleepUntil = now.Add(max(wait, 0))
		l.mu.Unlock()
		for _, g := range gone {
			l.remove(g.key.h, g.key.id, g.reason)
		}
		for _, p := range sends {
			l.keepAlive(p)
		}
		if wait < 0 {
			wait = 0
		}
		timer.Reset(wait)
		var changes <-chan cluster.Change // nil once not followed
		if l.sub != nil {
			changes = l.sub.C()
		}
		select {
		case <-l.r.quit:
			if l.sub != nil {
				l.sub.Close()
			}
			return
		case <-l.wake:
		case c, ok := <-changes:
			if !ok {
				l.caughtUp()
				continue
			}
			l.follow(c)
		case <-timer.C:
		}
	}
}

// keepAlive sends ENDPOINT_KEEP_ALIVE over the PE's connection, or dials
// its ASAP endpoint when it has none.
func (l *liveness) keepAlive(p *peState) {
	if cur, ok := l.r.hs.Lookup(p.key.h, p.key.id); (!ok && !l.unapplied(p)) || (ok && cur.Element.Home != l.r.id) {
		l.forget(p.key.h, p.key.id)
		if ok {
			l.r.log.Debug("PE homed elsewhere now: supervision ends", "pool", p.key.h, "pe", fmt.Sprintf("%08x", p.key.id), "home", hexID(cur.Element.Home))
		}
		return
	}
	ka := &asap.EndpointKeepAlive{Home: p.home, ServerID: l.r.id, PoolHandle: p.key.h, HasID: true, ID: p.key.id}
	l.r.metrics.keepAlivesSent.Inc()
	if p.conn != nil {
		if err := p.conn.send(ka); err == nil {
			return
		}
	}
	key := p.key
	l.mu.Lock()
	st, ok := l.pes[key]
	if !ok || st.dialing {
		l.mu.Unlock()
		return
	}
	st.dialing = true
	addr := p.asapAddr
	l.mu.Unlock()
	var sent func(ac *asapConn, err error)
	retried := false
	sent = func(ac *asapConn, err error) {
		if err == nil {
			if err = ac.send(ka); err != nil && !retried {
				// A shared association that just ended (before its reader
				// noticed): forget it and dial once more.
				retried = true
				l.r.forgetPEConn(ac)
				l.r.withPEConn(addr, sent)
				return
			}
		}
		l.mu.Lock()
		if st, ok := l.pes[key]; ok {
			st.dialing = false
			if err == nil {
				st.setConn(ac)
			}
		}
		l.mu.Unlock()
		if err != nil { // the ACK timeout removes it
			l.r.log.Debug("cannot reach PE's ASAP endpoint", "pool", ph(key.h), "pe", fmt.Sprintf("%08x", key.id), "error", err)
		}
	}
	l.r.withPEConn(addr, sent)
}

// claim sends a PE homed at another registrar an ENDPOINT_KEEP_ALIVE with
// the H bit at its ASAP endpoint: the PE makes this registrar its home and
// registers here next (a takeover suggestion, HANDLE_UPDATE with T=1).
// It becomes ours, and supervised, with that registration.
func (l *liveness) claim(h asap.PoolHandle, pe asap.PoolElement) {
	l.r.withPEConn(pe.ASAP, func(ac *asapConn, err error) {
		if err != nil {
			l.r.log.Debug("cannot reach the PE suggested for takeover", "pool", h, "pe", fmt.Sprintf("%08x", pe.ID), "error", err)
			return
		}
		l.r.metrics.keepAlivesSent.Inc()
		if err := ac.send(&asap.EndpointKeepAlive{Home: true, ServerID: l.r.id, PoolHandle: h, HasID: true, ID: pe.ID}); err == nil {
			l.r.log.Info("claimed a PE its home suggested we take over", "pool", h, "pe", fmt.Sprintf("%08x", pe.ID), "home", hexID(pe.Home))
		}
	})
}
