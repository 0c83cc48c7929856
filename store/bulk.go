package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	bolt "go.etcd.io/bbolt"

	"github.com/rserpool-go/registrar/asap"
)

// bulkTxSize is how many PEs one transaction of the bulk file write puts.
const bulkTxSize = 10_000

// replaceBulk is ReplaceAll's engine: it builds the new handlespace beside
// the current one (a scratch index in memory and a new file next to the
// store's, written with the keys in order), and swaps both in only when
// everything was accepted and the file is durable. Until then the store is
// unchanged; a failure after the swap began leaves memory unchanged and
// the store faulted (see Fault). The caller holds s.wmu.
func (s *Store) replaceBulk(index uint64, fill func(put func(PE) error) error) error {
	scratch := newStore(s.path, s.opts)
	var buf []byte
	n := 0
	err := fill(func(pe PE) error {
		enc, m, err := scratch.check(&pe, buf[:0])
		buf = enc
		if err != nil {
			return err
		}
		e, err := newEntry(string(enc), pe.Registered)
		if err != nil { // check encoded it: a bug
			return peErr(&pe, ErrInvalidPE, asap.CauseInvalidValues, err.Error(), nil)
		}
		e.v1, e.v2 = policyValues(&pe.Element.Policy)
		scratch.putEntry(pe.Handle, e, m, nil)
		n++
		return nil
	})
	if err != nil {
		return err
	}
	applied := s.applied.Load()
	if index != 0 {
		applied = index
	}
	if s.db == nil {
		s.swapIndex(scratch)
		s.applied.Store(applied)
		return nil
	}
	tmp := s.path + ".replace"
	_ = os.Remove(tmp) // a leftover of an interrupted replace
	if err := s.inject("rewrite"); err != nil {
		return fmt.Errorf("store: replace %s: write %s: %w", s.path, tmp, err)
	}
	if err := scratch.writeFresh(tmp, applied); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("store: replace %s: write %s: %w", s.path, tmp, err)
	}
	// Swap the files: readers that open a transaction meanwhile get
	// ErrNoFile; closing the old file waits for the read transactions
	// still open.
	if err := s.swapFile(tmp); err != nil {
		_ = os.Remove(tmp)
		// The file may now be the old one, the new one or none: memory
		// keeps the old handlespace, and the fault's rewrite makes the
		// file match it.
		return fmt.Errorf("store: replace %s: %w", s.path, s.setFault("replace", err))
	}
	s.swapIndex(scratch)
	s.applied.Store(applied)
	// The new file holds everything: a fault before the replace is over.
	s.clearFault(n, applied)
	s.log.Info("handlespace replaced", "path", s.path, "pes", n, "applied-index", applied)
	return nil
}

// swapIndex makes scratch's index the store's.
func (s *Store) swapIndex(scratch *Store) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pools, s.owners, s.nPE, s.order = scratch.pools, scratch.owners, scratch.nPE, scratch.order
	s.ordDirt = true
}

func (s *Store) openBolt() (*bolt.DB, error) {
	return bolt.Open(s.path, s.opts.FileMode, s.boltOptions(false, nil))
}

// writeFresh writes s's index as a new handlespace file at path: keys in
// order (the bbolt pages fill completely), bulkTxSize PEs per transaction
// without fsync, one fsync at the end.
func (s *Store) writeFresh(path string, applied uint64) error {
	db, err := bolt.Open(path, s.opts.FileMode, &bolt.Options{
		NoSync: true, NoFreelistSync: true, FreelistType: bolt.FreelistMapType,
		InitialMmapSize: s.opts.InitialMmapSize, Timeout: s.opts.Timeout,
	})
	if err != nil {
		return err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := initLayout(tx); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyApplied, binary.BigEndian.AppendUint64(nil, applied))
	})
	var tx *bolt.Tx
	var b *bolt.Bucket
	inTx := 0
	flush := func() error {
		if tx == nil {
			return nil
		}
		err := tx.Commit()
		tx, inTx = nil, 0
		return err
	}
	for _, p := range s.sortedPools() {
		if err != nil {
			break
		}
		p.ids.ascend(0, 0, func(it *ordItem) bool {
			if tx == nil {
				if tx, err = db.Begin(true); err != nil {
					return false
				}
				b = tx.Bucket(bucketPEs)
				b.FillPercent = 1.0
			}
			e := p.ents.at(it.a)
			if err = b.Put(peKey(p.handle, e.id), peValue(e)); err != nil {
				return false
			}
			if inTx++; inTx == bulkTxSize {
				err = flush()
			}
			return err == nil
		})
	}
	if err == nil {
		err = flush()
	} else if tx != nil {
		_ = tx.Rollback()
	}
	if err == nil {
		err = db.Sync()
	}
	return errors.Join(err, db.Close())
}
