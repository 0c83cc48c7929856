package snapshot

import (
	"fmt"
	"io"
	"time"

	"go.etcd.io/bbolt"

	"github.com/rserpool-go/registrar/store"
)

// FSM is the raft FSM's snapshotter (it satisfies cluster.Snapshotter):
// it streams the handlespace from a bbolt read transaction and restores
// it by replacing the store's content once the whole snapshot verified.
type FSM struct {
	// ClusterID and RegistrarID go into the metadata.
	ClusterID   func() string
	RegistrarID uint32
}

// Write streams the handlespace seen by tx.
func (f *FSM) Write(w io.Writer, st *store.Store, tx *bbolt.Tx) error {
	m := Meta{RaftIndex: st.AppliedIndexTx(tx), Created: time.Now().UTC(), RegistrarID: f.RegistrarID}
	if f.ClusterID != nil {
		m.ClusterID = f.ClusterID()
	}
	_, err := WriteStore(w, st, m, func(fn func(store.PE) error) error {
		return st.ForEachTx(tx, fn)
	})
	return err
}

// Restore replaces the store's content with the snapshot in r. Nothing
// changes unless the whole snapshot verifies.
func (f *FSM) Restore(r io.Reader, st *store.Store) error {
	sr, err := NewReader(r)
	if err != nil {
		return err
	}
	meta := sr.Meta()
	registered := meta.Created.UnixNano()
	err = st.ReplaceAll(meta.RaftIndex, func(put func(store.PE) error) error {
		for {
			h, pe, err := sr.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if err := put(store.PE{Handle: h, Element: pe, Registered: registered}); err != nil {
				return fmt.Errorf("restore PE %q/%08x: %w", h, pe.ID, err)
			}
		}
	})
	return err
}
