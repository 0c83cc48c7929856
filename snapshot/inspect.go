package snapshot

import (
	"io"

	"github.com/rserpool-go/registrar/asap"
)

// PoolSummary is one pool of a snapshot.
type PoolSummary struct {
	Handle    asap.PoolHandle `json:"handle"`
	Policy    asap.PolicyType `json:"policy"`
	Transport asap.ParamType  `json:"transport"`
	PEs       int64           `json:"pes"`
}

// Summary is what `registrar snapshot inspect` shows: the metadata with
// the counts, and every pool.
type Summary struct {
	Meta  Meta          `json:"meta"`
	Size  int64         `json:"size_bytes"`
	Pools []PoolSummary `json:"pools"`
}

// Summarize reads and verifies a whole snapshot and summarises its pools.
// progress, if not nil, is called now and then with the bytes read.
func Summarize(r io.Reader, progress func(read int64)) (Summary, error) {
	sr, err := NewReader(r)
	if err != nil {
		return Summary{}, err
	}
	s := Summary{Pools: []PoolSummary{}}
	var cur *PoolSummary
	for i := 0; ; i++ {
		pe, err := sr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return s, err
		}
		if cur == nil || cur.Handle != pe.Handle {
			s.Pools = append(s.Pools, PoolSummary{Handle: pe.Handle, Policy: pe.Element.Policy.Type, Transport: pe.Element.User.Kind})
			cur = &s.Pools[len(s.Pools)-1]
		}
		cur.PEs++
		if progress != nil && i%4096 == 0 {
			progress(sr.Offset())
		}
	}
	s.Meta = sr.Meta()
	s.Size = sr.Offset()
	if progress != nil {
		progress(s.Size)
	}
	return s, nil
}
