package snapshot

import (
	"fmt"
	"io"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/store"
)

// WriteView writes the handlespace seen by v (a store.ReadView) as a
// snapshot with metadata m. m.RaftIndex is set to the applied index
// recorded in the view; m.Created defaults to now. The PEs are copied as
// the store holds them, without decoding.
func WriteView(w io.Writer, v *store.ReadView, m Meta) (Meta, error) {
	m.RaftIndex = v.AppliedIndex()
	if m.Created.IsZero() {
		m.Created = time.Now().UTC()
	}
	sw, err := NewWriter(w, m)
	if err != nil {
		return m, err
	}
	err = v.ForEachEncoded(func(h asap.PoolHandle, _ uint32, registered int64, element []byte) error {
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
