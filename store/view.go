package store

import (
	"encoding/binary"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/rserpool-go/registrar/asap"
)

// ReadView is a consistent, read-only view of the handlespace file as of
// the last committed Apply (what was queued by group commit is committed
// first). Later applies do not change it, and it does not hold them up:
// the raft FSM opens one in Snapshot and streams it in Persist, so a
// snapshot is exactly the state at the index raft records for it.
//
// A view is used by one goroutine at a time (it may be handed to another)
// and must be closed; byte slices it passes to callbacks are valid only
// during the call. Keeping a view open while the file grows past its
// mapping makes the next remap wait for it (Options.InitialMmapSize).
type ReadView struct {
	s    *Store
	tx   *bolt.Tx
	once sync.Once
}

// BeginView opens a read view of the handlespace file. The caller must
// Close it. A store without a file (OpenMemory) gives ErrNoFile, a closed
// one ErrClosed; during a storage fault (see Fault) it gives the fault.
func (s *Store) BeginView() (*ReadView, error) {
	if err := s.Flush(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	closed, db := s.closed, s.db
	s.mu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	if db == nil {
		return nil, ErrNoFile
	}
	tx, err := db.Begin(false)
	if err != nil {
		return nil, s.errf("read view", err)
	}
	return &ReadView{s: s, tx: tx}, nil
}

// View runs fn with a read view (see BeginView) that is closed when fn
// returns, and returns fn's error.
func (s *Store) View(fn func(v *ReadView) error) error {
	v, err := s.BeginView()
	if err != nil {
		return err
	}
	defer v.Close()
	return fn(v)
}

// Close ends the view. Idempotent.
func (v *ReadView) Close() error {
	var err error
	v.once.Do(func() { err = v.tx.Rollback() })
	return err
}

// AppliedIndex is the last applied raft index recorded in the view: the
// index of the content ForEach and ForEachEncoded walk.
func (v *ReadView) AppliedIndex() uint64 { return readApplied(v.tx) }

// ForEach decodes every PE of the view in the store's order (handle
// length, handle bytes, ID) and calls fn with each until fn returns an
// error, which ForEach returns. A value that does not decode gives an
// error wrapping ErrCorrupt.
func (v *ReadView) ForEach(fn func(PE) error) error {
	b := v.tx.Bucket(bucketPEs)
	if b == nil {
		return fmt.Errorf("%w: %s: bucket %q missing", ErrCorrupt, v.s.path, bucketPEs)
	}
	c := b.Cursor()
	for k, val := c.First(); k != nil; k, val = c.Next() {
		h, e, _, el, err := decodeRecord(k, val)
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrCorrupt, v.s.path, err)
		}
		if err := fn(PE{Handle: h, Element: el, Registered: e.reg}); err != nil {
			return err
		}
	}
	return nil
}

// ForEachEncoded calls fn with every PE of the view in the store's order,
// without decoding it: the pool handle, the PE identifier, the
// registration time and the encoded Pool Element parameter as the store
// holds it (as asap.AppendPoolElement wrote it, validated when it was
// stored). element is valid only during the call; fn must not keep or
// modify it. It serves snapshots, which copy the parameter as it is. A
// malformed key or value gives an error wrapping ErrCorrupt.
func (v *ReadView) ForEachEncoded(fn func(h asap.PoolHandle, id uint32, registered int64, element []byte) error) error {
	b := v.tx.Bucket(bucketPEs)
	if b == nil {
		return fmt.Errorf("%w: %s: bucket %q missing", ErrCorrupt, v.s.path, bucketPEs)
	}
	var h asap.PoolHandle
	c := b.Cursor()
	for k, val := c.First(); k != nil; k, val = c.Next() {
		if len(k) < 6 || int(k[0]) != len(k)-5 || k[0] == 0 {
			return fmt.Errorf("%w: %s: malformed key %x", ErrCorrupt, v.s.path, k)
		}
		if len(val) < 9+16 || val[0] != valueVersion {
			return fmt.Errorf("%w: %s: key %x: malformed value", ErrCorrupt, v.s.path, k)
		}
		if string(k[1:1+k[0]]) != string(h) {
			h = asap.PoolHandle(k[1 : 1+k[0]])
		}
		id := binary.BigEndian.Uint32(k[1+k[0]:])
		if err := fn(h, id, int64(binary.BigEndian.Uint64(val[1:])), val[9:]); err != nil {
			return err
		}
	}
	return nil
}
