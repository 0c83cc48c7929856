package snapshot

import (
	"fmt"
	"io"
	"time"

	"go.etcd.io/bbolt"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/store"
)

// WriteTx writes the handlespace seen by tx, a read transaction of st
// (store.BeginRead or View), as a snapshot with metadata m. m.RaftIndex
// is set to the applied index recorded in tx; m.Created defaults to now.
func WriteTx(w io.Writer, st *store.Store, tx *bbolt.Tx, m Meta) (Meta, error) {
	m.RaftIndex = st.AppliedIndexTx(tx)
	if m.Created.IsZero() {
		m.Created = time.Now().UTC()
	}
	sw, err := NewWriter(w, m)
	if err != nil {
		return m, err
	}
	err = st.ForEachRawTx(tx, func(h asap.PoolHandle, _ uint32, registered int64, element []byte) error {
		return sw.AddEncoded(h, registered, element)
	})
	if err != nil {
		return m, err
	}
	return sw.Close()
}

// Restore replaces the content of st with the snapshot read from r, and
// records the snapshot's RaftIndex as the store's applied index (0 leaves
// it as it is). Nothing changes unless the whole snapshot verified and
// the store accepted every PE.
func Restore(r io.Reader, st *store.Store) (Meta, error) {
	sr, err := NewReader(r)
	if err != nil {
		return Meta{}, err
	}
	meta := sr.Meta()
	err = st.ReplaceAll(meta.RaftIndex, func(put func(store.PE) error) error {
		for {
			pe, err := sr.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if err := put(pe); err != nil {
				return fmt.Errorf("restore PE %q/0x%08x: %w", pe.Handle, pe.Element.ID, err)
			}
		}
	})
	if err != nil {
		return meta, err
	}
	return sr.Meta(), nil
}

// FSM is the raft FSM's snapshotter (it satisfies cluster.Snapshotter):
// it streams the handlespace from the bbolt read transaction the FSM
// opened, and restores by replacing the store's content once the whole
// snapshot verified.
type FSM struct {
	// ClusterID, if set, gives the metadata's cluster ID.
	ClusterID func() string
	// RegistrarID and Build go into the metadata.
	RegistrarID uint32
	Build       string
}

// Write streams the handlespace seen by tx.
func (f *FSM) Write(w io.Writer, st *store.Store, tx *bbolt.Tx) error {
	m := Meta{RegistrarID: f.RegistrarID, Build: f.Build}
	if f.ClusterID != nil {
		m.ClusterID = f.ClusterID()
	}
	_, err := WriteTx(w, st, tx, m)
	return err
}

// Restore replaces the store's content with the snapshot in r.
func (f *FSM) Restore(r io.Reader, st *store.Store) error {
	_, err := Restore(r, st)
	return err
}
