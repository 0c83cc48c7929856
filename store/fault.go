package store

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/rserpool-go/registrar/store/internal/fileio"
)

// ErrStorageFault is wrapped by the error of a file that cannot be
// written (a full disk, an I/O error): FaultError, returned by Fault and
// by the writes refused while it lasts. The raft log (package raftlog)
// reports its faults the same way.
var ErrStorageFault = fileio.ErrStorageFault

// FaultError describes a storage fault: a write, sync or rename of Path
// failed. It wraps ErrStorageFault and the I/O error (errors.Is(err,
// syscall.ENOSPC) works); Fix says what an operator can do. The raft log's
// faults are of this type too.
type FaultError = fileio.FaultError

// Fault returns the storage fault of the handlespace file (a
// *FaultError), or nil while the file is written normally.
//
// A commit of the file that fails (a full disk, an I/O error) does not
// lose or reorder anything: the store marks itself faulted, drops the
// queued writes (memory holds them), and keeps retrying, with a growing
// delay, to write the whole in-memory handlespace to a new file that
// replaces the old one; the applied index recorded in a file is always
// that of its content. With CommitDelay, Apply goes on changing memory
// meanwhile (the raft log holds every applied entry; a restart replays
// what the file lacks); without it, Apply first tries the rewrite and
// fails with the fault, changing nothing, if it does not succeed. Reads
// are served from memory throughout. The store logs the fault once, and
// once when it is over.
func (s *Store) Fault() error {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	if s.fault == nil {
		return nil
	}
	return s.fault
}

// faultRetryMin and faultRetryMax bound the delay between two attempts to
// rewrite the file after a fault.
const (
	faultRetryMin = 50 * time.Millisecond
	faultRetryMax = 5 * time.Second
)

// inject runs the test failpoint of site, if any.
func (s *Store) inject(site string) error {
	if s.opts.InjectFault == nil {
		return nil
	}
	return s.opts.InjectFault(site)
}

// setFault records a failed write of the file (the first one wins: the
// fault is logged once), drops the queued writes, which the rewrite from
// memory supersedes, and schedules the rewrite.
func (s *Store) setFault(op string, err error) error {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	if s.fault != nil {
		return s.fault
	}
	s.fault = &FaultError{Path: s.path, Op: op, Err: err, Since: time.Now()}
	s.pend, s.pendIdx = nil, 0
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.retryWait = faultRetryMin
	s.log.Error("handlespace file write failed: the file stays at its last good state and is rewritten from memory once the disk allows",
		"path", s.path, "op", op, "error", err, "fix", s.fault.Fix())
	s.scheduleRecoverLocked()
	return s.fault
}

// scheduleRecoverLocked starts the timer of the next rewrite attempt.
// The caller holds pmu.
func (s *Store) scheduleRecoverLocked() {
	if s.retry != nil || s.fault == nil || s.stopRetry {
		return
	}
	s.retry = time.AfterFunc(s.retryWait, s.recoverFromTimer)
}

func (s *Store) recoverFromTimer() {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.pmu.Lock()
	s.retry = nil
	s.pmu.Unlock()
	if err := s.recoverLocked(); err != nil {
		s.pmu.Lock()
		s.scheduleRecoverLocked()
		s.pmu.Unlock()
	}
}

// recoverLocked ends a fault by writing the whole in-memory handlespace,
// at the in-memory applied index, to a new file that replaces the
// store's. It does nothing when there is no fault. The caller holds wmu,
// so memory does not change meanwhile.
func (s *Store) recoverLocked() error {
	f := s.Fault()
	if f == nil {
		return nil
	}
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return f
	}
	s.cmu.Lock()
	defer s.cmu.Unlock()
	applied := s.applied.Load()
	tmp := s.path + ".rewrite"
	_ = os.Remove(tmp)
	err := s.inject("rewrite")
	n := 0
	if err == nil {
		s.mu.RLock()
		n = s.nPE
		err = s.writeFresh(tmp, applied)
		s.mu.RUnlock()
	}
	if err == nil {
		err = s.swapFile(tmp)
	}
	if err != nil {
		_ = os.Remove(tmp)
		s.pmu.Lock()
		s.retryWait = min(2*s.retryWait, faultRetryMax)
		s.pmu.Unlock()
		s.log.Debug("handlespace rewrite failed; retrying", "path", s.path, "error", err)
		return f
	}
	s.clearFault(n, applied)
	return nil
}

// clearFault ends the fault after the file was rewritten.
func (s *Store) clearFault(pes int, applied uint64) {
	s.pmu.Lock()
	f := s.fault
	s.fault = nil
	if s.retry != nil {
		s.retry.Stop()
		s.retry = nil
	}
	s.pmu.Unlock()
	if f != nil {
		s.log.Info("handlespace file rewritten from memory: writes go to the file again", "path", s.path,
			"pes", pes, "applied-index", applied, "fault-duration", time.Since(f.Since).Round(time.Millisecond))
	}
}

// swapFile replaces the store's file with tmp (a complete, synced
// handlespace file) and opens it. On an error the store may be left
// without an open file (s.db nil): the caller keeps it faulted. The
// caller holds wmu.
func (s *Store) swapFile(tmp string) error {
	s.mu.Lock()
	old := s.db
	s.db = nil
	s.mu.Unlock()
	if old != nil {
		// Waits for read transactions (a snapshot being written).
		_ = old.Close()
	}
	err := s.inject("rename")
	if err == nil {
		err = os.Rename(tmp, s.path)
	}
	if err != nil {
		if db, oerr := s.openBolt(); oerr == nil {
			s.mu.Lock()
			s.db = db
			s.mu.Unlock()
		}
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	err = s.inject("sync-dir")
	if err == nil {
		err = fileio.SyncDir(filepath.Dir(s.path))
	}
	db, oerr := s.openBolt()
	if oerr == nil {
		s.mu.Lock()
		s.db = db
		s.mu.Unlock()
	}
	if err != nil {
		return fmt.Errorf("sync directory of %s: %w", s.path, err)
	}
	if oerr != nil {
		return fmt.Errorf("reopen %s: %w", s.path, oerr)
	}
	return nil
}
