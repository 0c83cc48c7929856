package registrar

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/cluster"
	"github.com/rserpool-go/registrar/enrp"
)

// Event types of the change stream (GET /v1/watch): see
// docs/operations.md. WatchEvent.Type is one of them.
const (
	EventPERegistered = "pe.registered"
	EventPEUpdated    = "pe.updated"
	EventPERemoved    = "pe.removed"
	EventPoolCreated  = "pool.created"
	EventPoolRemoved  = "pool.removed"
	EventLeader       = "leader.changed"
	EventMemberJoined = "member.joined"
	EventMemberFailed = "member.failed"
	EventMemberLeft   = "member.left"
	// EventReset: the handlespace was replaced (a snapshot restore, or the
	// reset before an online restore): reload it.
	EventReset = "handlespace.reset"
	// EventReady comes once after the events a resume replayed: from here
	// on the stream is live. Its index is where the stream stands.
	EventReady = "stream.ready"
	// EventResync ends a stream that cannot go on without a gap: the
	// client's index is older than the history kept, or it (or this
	// registrar) fell behind. Reload the handlespace and watch again from
	// the index the reload answered with (X-Registrar-Index).
	EventResync = "stream.resync"
)

// WatchEvent is one event of the change stream. Index is the raft index
// of the change (events of handle space changes), or for events that are
// not in the raft log (leader, member, ready, resync) the index of the
// last change this registrar had applied when it saw them.
type WatchEvent struct {
	Index uint64          `json:"index"`
	Type  string          `json:"type"`
	Pool  asap.PoolHandle `json:"pool,omitempty"`
	// PE is the PE as it now is (registered, updated) or as it was
	// (removed).
	PE *PEInfo `json:"pe,omitempty"`
	// Reason says why a PE was removed (deregistered, keep-alive-timeout,
	// lifetime, unreachable, takeover), why one was updated (takeover: a
	// new home), why the handlespace was reset (reset, restore) or why a
	// stream must resync.
	Reason string      `json:"reason,omitempty"`
	Leader *LeaderInfo `json:"leader,omitempty"`
	Member *MemberInfo `json:"member,omitempty"`
	Time   time.Time   `json:"time"` // the command's time; for local events when they were seen
	local  bool        // not in the raft log
	pool   string      // the pool, for filtering
	// enc makes data, the JSON encoding, when the first client sends the
	// event: most events of a busy registrar are never watched, and
	// encoding every one cost about 7 % of the CPU of a registration.
	enc  sync.Once
	data []byte
}

// encoded returns the event's JSON encoding, made once for all clients.
func (e *WatchEvent) encoded() []byte {
	e.enc.Do(func() { e.data, _ = json.Marshal(e) })
	return e.data
}

// LeaderInfo is the leader of a leader.changed event.
type LeaderInfo struct {
	ID   string `json:"id,omitempty"` // empty: no leader known
	Raft string `json:"raft,omitempty"`
	Term uint64 `json:"term"`
}

// Defaults and limits of the change stream.
const (
	// DefaultWatchHistory is how many events each registrar keeps for
	// clients that resume (watch_history).
	DefaultWatchHistory = 10000
	// watchSubscription is the room of the watcher's own subscription to
	// the handlespace; the watcher only encodes and stores events, so it
	// falls behind only when the machine is overloaded.
	watchSubscription = 16384
	// watchWriteTimeout drops a client whose connection takes no data
	// for this long (it does not read).
	watchWriteTimeout = 10 * time.Second
)

// watcher turns the handlespace's committed changes (and raft's and
// gossip's local ones) into events, keeps the last ones for clients that
// resume, and wakes the clients. It never blocks the FSM: it reads its
// own cluster.Subscription, and a client that falls behind the history
// is ended with a resync event.
type watcher struct {
	r   *Registrar
	sub *cluster.Subscription

	mu sync.Mutex
	// ring holds the last len(ring) events; seq numbers them from 0 (the
	// event with seq s is ring[s%len(ring)] while first <= s < next).
	ring        []*WatchEvent
	first, next uint64
	// floor: every raft event with an index above it is in the ring.
	floor uint64
	// last is the index of the last raft change processed.
	last uint64
	// pools is the index of each pool's last change (long-poll); reset
	// the index of the last handlespace reset or restore, a change of
	// every pool.
	pools map[asap.PoolHandle]uint64
	reset uint64
	// wake is closed (and replaced) when an event is added.
	wake chan struct{}
	// done is closed when the watcher stops (clients end).
	done chan struct{}
}

func newWatcher(r *Registrar, history int) *watcher {
	if history < 1 {
		history = DefaultWatchHistory
	}
	return &watcher{r: r, ring: make([]*WatchEvent, history), pools: map[asap.PoolHandle]uint64{},
		wake: make(chan struct{}), done: make(chan struct{})}
}

// start subscribes and starts the goroutine (owned by r: it ends with
// r.quit).
func (w *watcher) start() {
	w.subscribe()
	w.r.goFunc(w.run)
}

// subscribe (re)subscribes; everything after the handlespace's applied
// index from then on is delivered, so that index is the floor.
func (w *watcher) subscribe() {
	w.sub = w.r.hs.Subscribe(watchSubscription, nil)
	at := w.r.hs.LastApplied()
	w.mu.Lock()
	w.floor = max(w.floor, at)
	w.last = max(w.last, at)
	w.mu.Unlock()
}

func (w *watcher) run() {
	defer close(w.done)
	for {
		select {
		case <-w.r.quit:
			w.sub.Close()
			return
		case c, ok := <-w.sub.C():
			if !ok {
				if !errors.Is(w.sub.Err(), cluster.ErrSlowSubscriber) {
					return
				}
				w.r.log.Warn("change stream fell behind the handlespace: its clients resynchronise")
				w.subscribe()
				w.mu.Lock()
				w.addLocked(&WatchEvent{Index: w.last, Type: EventResync, Reason: "the registrar's change stream fell behind", Time: time.Now(), local: true})
				w.mu.Unlock()
				continue
			}
			w.follow(&c)
		}
	}
}

// follow adds the events of one change.
func (w *watcher) follow(c *cluster.Change) {
	var evs []*WatchEvent
	add := func(e *WatchEvent) { evs = append(evs, e) }
	now := time.Now()
	switch c.Kind {
	case cluster.ChangeCommand:
		evs = commandEvents(c)
	case cluster.ChangeRestore:
		add(&WatchEvent{Index: c.Index, Type: EventReset, Reason: "restore", Time: now})
	case cluster.ChangeLeader:
		l := &LeaderInfo{Raft: c.Leader.Addr, Term: c.Leader.Term}
		if c.Leader.ID != 0 {
			l.ID = hexID(c.Leader.ID)
		}
		add(&WatchEvent{Type: EventLeader, Leader: l, Time: now, local: true})
	case cluster.ChangeMember:
		m := c.Member
		typ := EventMemberJoined
		switch m.Status {
		case cluster.StatusFailed:
			typ = EventMemberFailed
		case cluster.StatusLeft:
			typ = EventMemberLeft
		}
		add(&WatchEvent{Type: typ, Member: &MemberInfo{Name: m.Name, ID: hexID(m.Meta.ID), Status: m.Status.String(),
			Gossip: m.Addr, Raft: m.Meta.Raft, ASAP: strings.Join(m.Meta.ASAP, ","), ENRP: strings.Join(m.Meta.ENRP, ","), HTTP: m.Meta.HTTP},
			Time: now, local: true})
	}
	if len(evs) == 0 {
		if c.Kind == cluster.ChangeCommand {
			w.mu.Lock()
			w.last = max(w.last, c.Index)
			w.mu.Unlock()
		}
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if c.Kind == cluster.ChangeCommand || c.Kind == cluster.ChangeRestore {
		w.last = max(w.last, c.Index)
	}
	for _, e := range evs {
		if e.local {
			e.Index = w.last
		}
		w.addLocked(e)
	}
}

// commandEvents are the events of a committed command, from what the
// store reported for each of its operations.
func commandEvents(c *cluster.Change) []*WatchEvent {
	cmd := &c.Command
	at := cmd.Time.UTC()
	var evs []*WatchEvent
	ev := func(typ string, h asap.PoolHandle, pe *PEInfo, reason string) {
		evs = append(evs, &WatchEvent{Index: c.Index, Type: typ, Pool: h, PE: pe, Reason: reason, Time: at})
	}
	res := func(i int) *cluster.OpResult {
		if i < len(c.Results) {
			return &c.Results[i]
		}
		return &cluster.OpResult{Err: errors.New("no result")}
	}
	switch cmd.Kind {
	case cluster.KindUpdate, cluster.KindBatch, cluster.KindRemove:
		for i, u := range cmd.Updates {
			r := res(i)
			if r.Err != nil {
				continue
			}
			info := PEInfoOf(cluster.PE{Handle: u.PoolHandle, Element: u.PoolElement, Registered: cmd.Time.UnixNano()})
			if u.Action == enrp.DelPE {
				reason := cluster.ReasonDeregistered
				if cmd.Kind == cluster.KindRemove {
					reason = cmd.Reason
				}
				ev(EventPERemoved, u.PoolHandle, &info, reason.String())
			} else {
				if r.PoolCreated {
					ev(EventPoolCreated, u.PoolHandle, nil, "")
				}
				typ := EventPEUpdated
				if r.Added {
					typ = EventPERegistered
				}
				ev(typ, u.PoolHandle, &info, "")
			}
			for _, h := range r.PoolsRemoved {
				ev(EventPoolRemoved, h, nil, "")
			}
		}
	case cluster.KindTakeover, cluster.KindDropOwner:
		r := res(0)
		removed := map[asap.PoolHandle]bool{}
		for _, h := range r.PoolsRemoved {
			removed[h] = true
		}
		for i, pe := range r.PEs {
			info := PEInfoOf(pe)
			if cmd.Kind == cluster.KindTakeover {
				ev(EventPEUpdated, pe.Handle, &info, "takeover")
				continue
			}
			ev(EventPERemoved, pe.Handle, &info, cluster.ReasonTakeover.String())
			// A pool is gone after its last PE in the (handle, ID) order.
			if removed[pe.Handle] && (i+1 == len(r.PEs) || r.PEs[i+1].Handle != pe.Handle) {
				ev(EventPoolRemoved, pe.Handle, nil, "")
			}
		}
	case cluster.KindReset:
		if res(0).Err == nil {
			ev(EventReset, "", nil, "reset")
		}
	}
	return evs
}

// addLocked appends e to the history, evicting the oldest event when it
// is full, and wakes the clients. w.mu is held.
func (w *watcher) addLocked(e *WatchEvent) {
	e.pool = string(e.Pool)
	if e.Pool != "" && !e.local {
		w.pools[e.Pool] = e.Index
	}
	if e.Type == EventReset {
		w.reset = e.Index // every pool changed (a pool of the restored state too)
	}
	if w.next-w.first == uint64(len(w.ring)) {
		old := w.ring[w.first%uint64(len(w.ring))]
		w.first++
		if !old.local {
			w.floor = max(w.floor, old.Index)
		}
		if old.Type == EventPoolRemoved && w.pools[old.Pool] <= old.Index {
			delete(w.pools, old.Pool) // poolIndex answers at least the floor
		}
	}
	if e.Type == EventResync {
		w.floor = max(w.floor, e.Index)
	}
	w.ring[w.next%uint64(len(w.ring))] = e
	w.next++
	close(w.wake)
	w.wake = make(chan struct{})
}

// position returns where a client that has seen everything up to index
// (0: nothing, start live) starts reading: the seq after the last raft
// event at or below index. ok is false when the history no longer holds
// every event after index (the client must resync).
func (w *watcher) positionLocked(index uint64, resume bool) (seq uint64, ok bool) {
	if !resume {
		return w.next, true
	}
	if index < w.floor {
		return 0, false
	}
	seq = w.next
	for s := w.next; s > w.first; s-- {
		e := w.ring[(s-1)%uint64(len(w.ring))]
		if e.Index < index || e.Index == index && !e.local {
			break
		}
		seq = s - 1
	}
	return seq, true
}

// poolIndex is the index of pool h's last change (at least the floor:
// older changes are not known) and a channel closed at the next event.
func (w *watcher) poolIndex(h asap.PoolHandle) (uint64, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return max(w.pools[h], w.floor, w.reset), w.wake
}

// index is the index of the last change the stream processed.
func (w *watcher) index() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

// cursor reads the history for one client.
type cursor struct {
	w    *watcher
	seq  uint64
	pool string // "": every event; else only that pool's (and resets, resyncs)
	// after: raft events at or below it were seen (a client resuming
	// with an index ahead of this registrar's).
	after uint64
}

// errBehind: the client fell behind the history.
var errBehind = errors.New("client fell behind the change stream's history")

// next returns the events after the cursor, a channel closed at the next
// event, and the index the stream stands at once these are sent (at
// least the index the client resumed from); or errBehind.
func (c *cursor) next(out []*WatchEvent) ([]*WatchEvent, <-chan struct{}, uint64, error) {
	w := c.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if c.seq < w.first {
		return out, nil, 0, errBehind
	}
	for ; c.seq < w.next; c.seq++ {
		e := w.ring[c.seq%uint64(len(w.ring))]
		if n := len(out); n >= 256 && (e.Index != out[n-1].Index || e.local) {
			break // a batch ends between raft indexes
		}
		if !e.local && e.Index <= c.after {
			continue
		}
		if c.pool != "" && e.pool != c.pool && e.Type != EventReset && e.Type != EventResync {
			continue
		}
		out = append(out, e)
	}
	at := max(w.last, c.after)
	if c.seq < w.next {
		at = max(out[len(out)-1].Index, c.after) // more to come
	}
	return out, w.wake, at, nil
}

// open starts a cursor after index (resume: a client that saw
// everything up to index; otherwise live from now). ok is false when the
// client must resync.
func (w *watcher) open(index uint64, resume bool, pool string) (*cursor, uint64, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	seq, ok := w.positionLocked(index, resume)
	c := &cursor{w: w, seq: seq, pool: pool}
	if resume {
		c.after = index
	}
	return c, max(w.last, c.after), ok
}
