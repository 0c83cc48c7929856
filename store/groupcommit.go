package store

import (
	"fmt"
	"time"
)

// maxPending is how many queued writes make a group commit happen at once.
const maxPending = 8192

// queue adds a batch's writes to the group commit (Options.CommitDelay).
// Called by Apply with wmu held. The batch is applied (memory changed)
// whatever happens to the commit: a failed commit becomes the store's
// fault, not Apply's error.
func (s *Store) queue(index uint64, ops []diskOp) {
	s.pmu.Lock()
	if s.fault != nil {
		// The rewrite from memory will hold this batch too.
		s.pmu.Unlock()
		return
	}
	s.pend = append(s.pend, ops...)
	if index > s.pendIdx {
		s.pendIdx = index
	}
	full := len(s.pend) >= maxPending
	if !full && s.timer == nil {
		s.timer = time.AfterFunc(s.opts.CommitDelay, func() { _ = s.Flush() })
	}
	s.pmu.Unlock()
	if full {
		_ = s.flush()
	}
}

// Flush commits every queued write (group commit) to the file. It does
// nothing when nothing is queued or CommitDelay is 0. During a storage
// fault it returns the fault (see Fault). Safe for concurrent use.
func (s *Store) Flush() error {
	if s.opts.CommitDelay <= 0 {
		return s.Fault()
	}
	return s.flush()
}

// flush commits what is queued. The writes stay queued until their commit
// succeeded, so no later commit can cover a failed one; a failure makes
// the store faulted (setFault), and a faulted store commits nothing until
// the file is rewritten from memory. flush reads s.db only when something
// is queued: ReplaceAll swaps s.db (under wmu, after its own flush) while
// readers flush, and only Apply, under wmu, queues writes.
func (s *Store) flush() error {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	s.pmu.Lock()
	if s.fault != nil {
		err := s.fault
		s.pmu.Unlock()
		return err
	}
	ops, idx := s.pend, s.pendIdx
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.pmu.Unlock()
	if len(ops) == 0 && idx == 0 {
		return nil
	}
	if s.hookCommit != nil {
		s.hookCommit(idx)
	}
	if err := s.commitFile(idx, ops); err != nil {
		return s.setFault("commit", fmt.Errorf("commit of queued writes up to index %d: %w", idx, err))
	}
	s.pmu.Lock()
	// Apply may have queued more meanwhile, under a higher index.
	if len(s.pend) > len(ops) {
		s.pend = append([]diskOp(nil), s.pend[len(ops):]...)
	} else {
		s.pend, s.pendIdx = nil, 0
	}
	if len(s.pend) > 0 && s.timer == nil {
		s.timer = time.AfterFunc(s.opts.CommitDelay, func() { _ = s.Flush() })
	}
	s.pmu.Unlock()
	return nil
}

// commitFile is commit with the failpoints of the commit sites.
func (s *Store) commitFile(index uint64, ops []diskOp) error {
	if err := s.inject("commit"); err != nil {
		return err
	}
	if err := s.commit(index, ops); err != nil {
		return err
	}
	return s.inject("commit-landed")
}
