package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// AppliedIndexTx is the last applied raft index as recorded in a read
// transaction from View (consistent with ForEachTx in the same
// transaction).
func (s *Store) AppliedIndexTx(tx *bolt.Tx) uint64 { return readApplied(tx) }

// ReplaceAll replaces the whole handlespace with the PEs fill passes to
// put, recording index as the last applied raft index. fill runs first and
// may fail (a snapshot that does not verify): then nothing changes. The
// replacement itself is one Apply batch (reset, then every PE).
func (s *Store) ReplaceAll(index uint64, fill func(put func(PE) error) error) error {
	ops := []Op{{Kind: OpReset}}
	err := fill(func(pe PE) error {
		ops = append(ops, Op{Kind: OpRegister, PE: pe})
		return nil
	})
	if err != nil {
		return err
	}
	res, err := s.Apply(index, ops)
	if err != nil {
		return err
	}
	for i, r := range res {
		if r.Err != nil {
			return fmt.Errorf("store: replace: PE %d of %d refused: %w (the handlespace is now partly replaced; restore again)", i, len(ops)-1, r.Err)
		}
	}
	return nil
}

// BeginRead opens a bbolt read transaction on the handlespace file: a
// consistent view that later applies do not change. The caller must
// Rollback it (it may hand it to another goroutine, but not use it from
// two at once). The raft FSM opens it in Snapshot and writes it in
// Persist, so the snapshot matches the index raft records for it.
func (s *Store) BeginRead() (*bolt.Tx, error) {
	s.mu.RLock()
	closed, db := s.closed, s.db
	s.mu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	if db == nil {
		return nil, ErrNoFile
	}
	return db.Begin(false)
}
