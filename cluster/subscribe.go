package cluster

import (
	"errors"
	"sync"
)

// ChangeKind says what a Change is.
//
// WARNING: only append to this list: subscribers switch on the values.
type ChangeKind uint8

const (
	// ChangeCommand is a committed command (Change.Command), applied to
	// the handlespace at Change.Index.
	ChangeCommand ChangeKind = iota + 1
	// ChangeRestore is a snapshot that replaced the whole handlespace (an
	// operator's restore, or a snapshot installed from the leader);
	// Change.Index is the applied index it left.
	ChangeRestore
	// ChangeLeader is a new raft leader as this registrar saw it
	// (Change.Leader; 0: none known), or a new term of the same leader.
	// It is not in the raft log: Change.Index is the index of the last
	// change published before it.
	ChangeLeader
	// ChangeMember is a registrar that gossip saw join, fail or leave
	// (Change.Member). Like ChangeLeader it is local to this registrar and
	// carries the index of the last change published before it.
	ChangeMember
)

// LeaderChange is what a ChangeLeader says.
type LeaderChange struct {
	ID   uint32 // the leader's registrar ID; 0 while none is known
	Addr string // its raft address
	Term uint64 // the raft term this registrar was in when it saw it
}

// Change is one committed change of the handlespace, as a Subscription
// delivers it: in commit order, each with its raft index, after the store
// applied it (a read of the handlespace sees it).
type Change struct {
	Kind ChangeKind
	// Index is the raft index of the command, or for a restore the
	// handlespace's applied index after it (a snapshot installed from
	// the leader), or for an operator's restore, whose content carries
	// index 0, the index after the last change published: the indexes a
	// subscription delivers never go down.
	Index uint64
	// Command is the committed command (ChangeCommand): its kind, the
	// time in its envelope, the ENRP updates or the takeover it carries.
	Command Command
	// Err is why the command changed nothing, or the first operation of it
	// the store refused (ApplyResult.Failed); nil when it applied.
	Err error
	// Results are the outcomes of the command's store operations, one
	// per Command.Ops entry (what each added, moved or removed).
	Results []OpResult
	// Leader is the leader of a ChangeLeader; Member the registrar of a
	// ChangeMember, with its status after the change.
	Leader LeaderChange
	Member Member
}

// ErrSlowSubscriber ends a Subscription whose buffer was full when a
// change came: the FSM never waits for a subscriber, so the subscriber
// missed changes and must catch up from the handlespace itself (and
// subscribe again).
var ErrSlowSubscriber = errors.New("subscriber too slow: changes were dropped")

// ErrSubscriptionClosed ends a Subscription that was closed by Close, or
// whose handlespace was closed.
var ErrSubscriptionClosed = errors.New("subscription closed")

// Subscription receives the committed changes of a handlespace (see
// Handlespace.Subscribe). Its channel is closed when it ends: Err says
// why.
type Subscription struct {
	hub  *changeHub
	c    chan Change
	want func(*Change) bool // nil: every change
	err  error              // set (under hub.mu) before c is closed
}

// C delivers the changes in commit order. It is closed when the
// subscription ends (see Err).
func (s *Subscription) C() <-chan Change { return s.c }

// Err is why the subscription ended: ErrSlowSubscriber (changes were
// dropped: catch up from the handlespace and subscribe again) or
// ErrSubscriptionClosed; nil while it runs. Valid once C is closed.
func (s *Subscription) Err() error {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	return s.err
}

// Close ends the subscription. Idempotent.
func (s *Subscription) Close() {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	s.hub.endLocked(s, ErrSubscriptionClosed)
}

// changeHub fans committed changes out to the subscriptions. publish runs
// on raft's FSM goroutine and never blocks: a subscription whose buffer is
// full is ended with ErrSlowSubscriber instead.
type changeHub struct {
	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	closed bool
	last   uint64 // the index of the last change published
}

// subscribe adds a subscription with room for buffer changes (at least
// 1) that gets the changes want accepts (all if want is nil).
func (h *changeHub) subscribe(buffer int, want func(*Change) bool) *Subscription {
	s := &Subscription{hub: h, c: make(chan Change, max(buffer, 1)), want: want}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		h.endLockedNoMap(s, ErrSubscriptionClosed)
		return s
	}
	if h.subs == nil {
		h.subs = map[*Subscription]struct{}{}
	}
	h.subs[s] = struct{}{}
	return s
}

// publish delivers changes to every subscription, in order, without
// waiting.
func (h *changeHub) publish(changes ...Change) {
	if len(changes) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range changes {
		c := &changes[i]
		switch {
		case c.Kind == ChangeLeader || c.Kind == ChangeMember:
			c.Index = h.last // local events: after what was published
		case c.Kind == ChangeRestore && c.Index <= h.last:
			// An operator's restore carries index 0 in its content
			// (raft applies what follows on top of it): it comes after
			// every change published before it.
			c.Index = h.last + 1
			h.last = c.Index
		default:
			h.last = c.Index
		}
	}
	for s := range h.subs {
		for i := range changes {
			c := &changes[i]
			if s.want != nil && !s.want(c) {
				continue
			}
			select {
			case s.c <- *c:
				continue
			default:
				h.endLocked(s, ErrSlowSubscriber)
			}
			break
		}
	}
}

// close ends every subscription; later ones end at once.
func (h *changeHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		h.endLocked(s, ErrSubscriptionClosed)
	}
}

// endLocked ends s with err unless it has ended. The caller holds h.mu.
func (h *changeHub) endLocked(s *Subscription, err error) {
	if _, ok := h.subs[s]; !ok {
		return
	}
	delete(h.subs, s)
	h.endLockedNoMap(s, err)
}

func (h *changeHub) endLockedNoMap(s *Subscription, err error) {
	s.err = err
	close(s.c)
}
