package store

import (
	"fmt"
	"time"
)

// maxPending is how many queued writes make a group commit happen at once.
const maxPending = 8192

// queue adds a batch's writes to the group commit (Options.CommitDelay).
// Called by Apply with wmu held.
func (s *Store) queue(index uint64, ops []diskOp) error {
	s.pmu.Lock()
	s.pend = append(s.pend, ops...)
	if index > s.pendIdx {
		s.pendIdx = index
	}
	full := len(s.pend) >= maxPending
	if !full && s.timer == nil {
		s.timer = time.AfterFunc(s.opts.CommitDelay, func() {
			if err := s.Flush(); err != nil {
				s.log.Error("deferred handlespace commit failed; the next write reports it", "path", s.path, "error", err)
			}
		})
	}
	s.pmu.Unlock()
	if full {
		return s.flush()
	}
	return nil
}

// Flush commits every queued write (group commit) to the file. It does
// nothing when nothing is queued or CommitDelay is 0. Safe for concurrent
// use.
func (s *Store) Flush() error {
	if s.opts.CommitDelay <= 0 {
		return nil
	}
	return s.flush()
}

// flush commits what is queued. It reads s.db only when something is
// queued: ReplaceAll swaps s.db (under wmu, after its own flush) while
// readers flush, and only Apply, under wmu, queues writes.
func (s *Store) flush() error {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	s.pmu.Lock()
	ops, idx := s.pend, s.pendIdx
	s.pend, s.pendIdx = nil, 0
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
	if err := s.commit(idx, ops); err != nil {
		err = fmt.Errorf("store: commit of queued writes up to index %d to %s: %w", idx, s.path, err)
		s.pmu.Lock()
		if s.fatal == nil {
			s.fatal = err
		}
		s.pmu.Unlock()
		return err
	}
	return nil
}

// fatalErr is the failure of a deferred commit: memory is ahead of the
// file and cannot be undone, so every later Apply fails.
func (s *Store) fatalErr() error {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	return s.fatal
}
