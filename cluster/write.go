package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/enrp"
	"github.com/rserpool-go/registrar/store"
)

// WriteError is the error of a handlespace write: why it failed, and the
// ASAP Operation Error to answer the PE or peer with. errors.As finds the
// Operation Error (*asap.OperationError) and errors.Is the cause
// (ErrPENotFound, ErrStorageFault, ErrNoLeader, a store sentinel, ...).
type WriteError struct {
	// Err is why the write failed: the store's refusal of the change (a
	// *store.PEError, ErrPENotFound), or why it did not commit.
	Err error
	// Op is what to answer: the store's cause for a refused PE, Lack of
	// Resources for a write that did not commit (nothing the PE did wrong).
	Op *asap.OperationError
}

func (e *WriteError) Error() string { return e.Err.Error() }

// Unwrap gives the cause.
func (e *WriteError) Unwrap() error { return e.Err }

// As gives the Operation Error for errors.As(err, &oe) with oe a
// *asap.OperationError.
func (e *WriteError) As(target any) bool {
	if p, ok := target.(**asap.OperationError); ok {
		*p = e.Op
		return true
	}
	return false
}

// writeError wraps the failure of a write (nil stays nil).
func writeError(err error) error {
	if err == nil {
		return nil
	}
	var we *WriteError
	if errors.As(err, &we) {
		return err
	}
	oe := (*asap.OperationError)(nil)
	if !errors.As(err, &oe) {
		oe = asap.NewOperationError(asap.CauseLackOfResources, nil)
	}
	return &WriteError{Err: err, Op: oe}
}

// Register commits the registration (or update) of pe in pool ph, homed at
// pe.Home, on behalf of this registrar. A PE the store would refuse (a
// zero ID, an unsupported policy, one inconsistent with its pool) is
// refused before anything is proposed, with the store's Operation Error;
// so is every write during a storage fault (Fault), with Lack of
// Resources.
func (h *Handlespace) Register(ctx context.Context, ph asap.PoolHandle, pe asap.PoolElement) error {
	if err := h.store.Check(store.PE{Handle: ph, Element: pe}); err != nil {
		return writeError(err)
	}
	return h.Commit(ctx, NewUpdate(time.Now(), enrp.AddPE, h.cfg.ID, ph, pe))
}

// A Session orders one client's requests at this registrar (an ASAP
// connection's): its writes (RegisterIn, DeregisterIn) are answered once
// committed, which at a follower is when the leader applied them, without
// waiting until this registrar applied them too; Sync, before the client's
// next request, waits for that (at once in the common case), so the
// client still reads its own writes. Other clients of a follower may see
// a session's write a few milliseconds after its answer, as they would at
// any other registrar. The zero Session is ready; one goroutine uses it.
type Session struct {
	pending uint64 // the raft index of the session's last write not applied here when answered
}

// Pending is the raft index of the last write of s that was not applied
// here when it was answered (0: none; Sync clears it). Compare it with
// LastApplied to tell whether this registrar has it by now.
func (s *Session) Pending() uint64 { return s.pending }

// RegisterIn is Register within session s.
func (h *Handlespace) RegisterIn(ctx context.Context, s *Session, ph asap.PoolHandle, pe asap.PoolElement) error {
	if err := h.store.Check(store.PE{Handle: ph, Element: pe}); err != nil {
		return writeError(err)
	}
	return h.commitIn(ctx, s, NewUpdate(time.Now(), enrp.AddPE, h.cfg.ID, ph, pe))
}

// DeregisterIn is Deregister within session s.
func (h *Handlespace) DeregisterIn(ctx context.Context, s *Session, ph asap.PoolHandle, pe asap.PoolElement) error {
	return h.commitIn(ctx, s, NewRemove(time.Now(), ReasonDeregistered, h.cfg.ID, ph, pe))
}

// Sync waits (bounded by ctx and the raft apply timeout) until this
// registrar applied the writes of session s, and reports whether it has:
// at once when it had, or when s wrote nothing. false (a follower cut off
// from the leader before it learned of the commit) keeps them pending:
// reads here may then miss the session's own writes.
func (h *Handlespace) Sync(ctx context.Context, s *Session) bool {
	if s.pending == 0 {
		return true
	}
	if h.store.LastApplied() < s.pending {
		h.node.WaitApplied(ctx, s.pending)
		if h.store.LastApplied() < s.pending {
			return false
		}
	}
	s.pending = 0
	return true
}

// commitIn is Commit, within session s or (nil) waiting until this
// registrar applied the command; a session's write does not wait for
// that and records the entry for Sync.
func (h *Handlespace) commitIn(ctx context.Context, s *Session, cmd Command) error {
	if err := h.node.Fault(); err != nil {
		return writeError(err)
	}
	data, err := cmd.Marshal()
	if err != nil {
		return writeError(fmt.Errorf("handlespace write failed: %w", err))
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Raft.ApplyTimeout)
	defer cancel()
	res, idx, err := h.node.propose(ctx, data, s == nil)
	if err != nil {
		return writeError(fmt.Errorf("handlespace write failed: %w", err))
	}
	if s != nil && idx > h.store.LastApplied() {
		s.pending = max(s.pending, idx)
	}
	return writeError(res.Failed())
}

// Deregister commits the removal of pe (pool ph, pe.ID) on behalf of this
// registrar, because it deregistered. A PE that is not registered gives
// ErrPENotFound.
func (h *Handlespace) Deregister(ctx context.Context, ph asap.PoolHandle, pe asap.PoolElement) error {
	return h.Remove(ctx, ph, pe, ReasonDeregistered)
}

// Remove commits the removal of pe (pool ph, pe.ID) on behalf of this
// registrar, for reason (the change stream tells it). A PE that is not
// registered gives ErrPENotFound.
func (h *Handlespace) Remove(ctx context.Context, ph asap.PoolHandle, pe asap.PoolElement, reason RemoveReason) error {
	return h.Commit(ctx, NewRemove(time.Now(), reason, h.cfg.ID, ph, pe))
}

// Takeover commits that this registrar takes over the PEs of target,
// dealing them over owners (sorted, deterministically).
func (h *Handlespace) Takeover(ctx context.Context, target uint32, owners []uint32) error {
	return h.Commit(ctx, NewTakeover(time.Now(), h.cfg.ID, target, owners))
}

// Batch commits several ENRP HANDLE_UPDATEs as one raft entry (a foreign
// peer's handle table), each with the sender it names. Each update is
// applied or refused on its own; the error is the first refusal.
func (h *Handlespace) Batch(ctx context.Context, updates []*enrp.HandleUpdate) error {
	return h.Commit(ctx, Command{Kind: KindBatch, Time: time.Now(), Updates: updates})
}

// Commit proposes any command (the verbs above build theirs) and waits,
// bounded by ctx and the raft apply timeout, until this registrar applied
// it. The error, if any, is a *WriteError: the command's own failure once
// applied, or why it did not commit.
func (h *Handlespace) Commit(ctx context.Context, cmd Command) error {
	return h.commitIn(ctx, nil, cmd)
}
