package store

import (
	"encoding/binary"
	"fmt"

	"github.com/rserpool-go/registrar/asap"
	bolt "go.etcd.io/bbolt"
)

// ForEachRawTx calls fn with every PE of a read transaction in the
// store's order, without decoding it: the pool handle, the PE identifier,
// the registration time and the encoded Pool Element parameter as the
// store holds it (as asap.AppendPoolElement wrote it, validated when it
// was stored). element is valid only during the call; fn must not keep
// or modify it. It serves snapshots, which copy the parameter as it is.
// A malformed key or value gives an error wrapping ErrCorrupt.
func (s *Store) ForEachRawTx(tx *bolt.Tx, fn func(h asap.PoolHandle, id uint32, registered int64, element []byte) error) error {
	b := tx.Bucket(bucketPEs)
	if b == nil {
		return fmt.Errorf("%w: %s: bucket %q missing", ErrCorrupt, s.path, bucketPEs)
	}
	var h asap.PoolHandle
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(k) < 6 || int(k[0]) != len(k)-5 || k[0] == 0 {
			return fmt.Errorf("%w: %s: malformed key %x", ErrCorrupt, s.path, k)
		}
		if len(v) < 9+16 || v[0] != valueVersion {
			return fmt.Errorf("%w: %s: key %x: malformed value", ErrCorrupt, s.path, k)
		}
		if string(k[1:1+k[0]]) != string(h) {
			h = asap.PoolHandle(k[1 : 1+k[0]])
		}
		id := binary.BigEndian.Uint32(k[1+k[0]:])
		if err := fn(h, id, int64(binary.BigEndian.Uint64(v[1:])), v[9:]); err != nil {
			return err
		}
	}
	return nil
}
