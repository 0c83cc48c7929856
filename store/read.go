package store

import (
	"fmt"
	"slices"
	"sort"

	"github.com/rserpool-go/registrar/asap"
)

// The read methods work on the in-memory index only: they never wait for
// disk I/O and are safe for concurrent use with each other and with Apply.
// They see every batch whole or not at all. On a closed Store they return
// empty results (Resolve: ErrClosed).

// peOf decodes an entry into a PE. Entries were validated when stored, so
// a decoding failure is a bug; it is reported by a zero Element.
func peOf(h asap.PoolHandle, e *entry) PE {
	el, _ := decodeElement(e.enc())
	return PE{Handle: h, Element: el, Registered: e.reg}
}

// Lookup returns the PE with handle h and ID id.
func (s *Store) Lookup(h asap.PoolHandle, id uint32) (PE, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if p := s.pools[h]; p != nil {
		if slot := p.slot(id); slot >= 0 {
			return peOf(h, p.ents.at(slot)), true
		}
	}
	return PE{}, false
}

// Resolve selects up to n distinct PEs of pool h by the pool's member
// selection policy (n <= 0 means 1) and returns them best first, with the
// pool's policy parameter: as RSPLIB does, the policy values of the first
// selected PE. The returned elements are decoded copies the caller may
// keep and modify. A pool that does not exist gives an error wrapping
// ErrPoolNotFound.
//
// Selection updates the pool's local selection state (round robin position,
// tie rotation, accumulated degradation); concurrent resolutions of one
// pool are serialised by the pool's lock, those of different pools run in
// parallel. Selection does not look at lifetimes: expired PEs leave the
// handlespace by committed deregistrations. rnd is used by the random
// policies only (it may be nil for the others).
func (s *Store) Resolve(h asap.PoolHandle, n int, rnd Rand) ([]asap.PoolElement, asap.Policy, error) {
	var small [8]int32
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, slots, err := s.pick(h, n, rnd, small[:0])
	if err != nil {
		return nil, asap.Policy{}, err
	}
	out := make([]asap.PoolElement, len(slots))
	for i, sl := range slots {
		var err error
		if out[i], err = decodeElement(p.ents.at(sl).enc()); err != nil {
			return nil, asap.Policy{}, fmt.Errorf("store: pool %q PE 0x%x: %w", h, p.ents.at(sl).id, err)
		}
	}
	return out, out[0].Policy, nil
}

// pick runs the selection. The caller holds s.mu for reading.
func (s *Store) pick(h asap.PoolHandle, n int, rnd Rand, out []int32) (*pool, []int32, error) {
	if s.closed {
		return nil, nil, ErrClosed
	}
	p := s.pools[h]
	if p == nil {
		return nil, nil, &poolError{handle: h, err: ErrPoolNotFound}
	}
	if n <= 0 {
		n = 1
	}
	p.mu.Lock()
	out = p.pick(n, rnd, out)
	p.mu.Unlock()
	return p, out, nil
}

// ResolveAppend selects like Resolve and appends the whole
// ASAP_HANDLE_RESOLUTION_RESPONSE for pool h to dst, built from the stored
// parameter bytes without decoding them (asap.AppendHandleResolutionResponse):
// the pool's policy parameter (that of the first selected PE) and the
// selected Pool Element parameters without their ASAP transport (as RSPLIB
// sends them to PUs). Selected PEs that would take the message past 65535
// bytes are left out. It returns the extended buffer and the number of
// PEs in the answer. This is the fast path for the registrar: no
// allocation when dst has room.
func (s *Store) ResolveAppend(dst []byte, h asap.PoolHandle, n int, rnd Rand) ([]byte, int, error) {
	var small [8]int32
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, slots, err := s.pick(h, n, rnd, small[:0])
	if err != nil {
		return dst, 0, err
	}
	// The entries hold views checked when they were stored: gather them,
	// then copy their bytes. The loads of different PEs do not depend on
	// each other, so their cache misses overlap.
	var viewBuf [8]asap.PoolElementView
	views := viewBuf[:0]
	for _, sl := range slots {
		views = append(views, p.ents.at(sl).pe)
	}
	return asap.AppendHandleResolutionResponse(dst, h, views)
}

// Pools lists the pools in handle order (length, then bytes).
func (s *Store) Pools() []PoolInfo {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ps := s.sortedPools()
	out := make([]PoolInfo, 0, len(ps))
	for _, p := range ps {
		out = append(out, PoolInfo{Handle: p.handle, Policy: p.meta.ptype, Transport: p.meta.tkind, PEs: p.ents.n})
	}
	return out
}

// Pool returns the PEs of pool h sorted by ID, or nil.
func (s *Store) Pool(h asap.PoolHandle) []PE {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p := s.pools[h]
	if p == nil {
		return nil
	}
	out := make([]PE, 0, p.ents.n)
	p.ids.ascend(0, 0, func(it *ordItem) bool {
		out = append(out, peOf(h, p.ents.at(it.a)))
		return true
	})
	return out
}

// Counts returns the number of pools and of PEs.
func (s *Store) Counts() (pools, pes int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.pools), s.nPE
}

// Owned returns the PEs whose Home is owner, sorted by (handle, ID).
func (s *Store) Owned(owner uint32) []PE {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []PE
	for _, k := range s.ownedKeys(owner) {
		p := s.pools[k.h]
		out = append(out, peOf(k.h, p.ents.at(p.slot(k.id))))
	}
	return out
}

// Owners returns the distinct home registrar IDs, sorted.
func (s *Store) Owners() []uint32 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]uint32, 0, len(s.owners))
	for id := range s.owners {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// Checksum returns the ENRP PE checksum (RFC 5353, asap.Checksum) of the
// PEs owned by owner, kept up to date on every change; 0xFFFF if it owns
// none.
func (s *Store) Checksum(owner uint32) uint16 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if o := s.owners[owner]; o != nil {
		return o.sum.Value()
	}
	return 0xFFFF
}

// ChecksumSum is the unfolded form of Checksum (asap.Checksum), from which
// a caller can take PEs out before folding it.
func (s *Store) ChecksumSum(owner uint32) asap.Checksum {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if o := s.owners[owner]; o != nil {
		return o.sum
	}
	return 0
}

// Iterate visits PEs in the store's stable order (handle length, handle
// bytes, ID: the file's key order) starting after the cursor, calling fn
// for at most limit PEs (limit <= 0: no limit) whose Home is *owner (all if
// owner is nil: the W bit of ENRP_HANDLE_TABLE_REQUEST). It returns the
// cursor of the last PE visited (after, if none) and whether more matching
// PEs follow. If fn returns false, Iterate stops there and returns that
// PE's cursor with more true.
//
// Resuming with the returned cursor continues exactly after it, without
// duplicates or gaps for PEs that stayed in the handlespace, also when the
// pool or PE of the cursor was removed in between; every call makes
// progress, so paging terminates. fn runs with the store read-locked: it
// must not call Apply or Close.
func (s *Store) Iterate(after Cursor, limit int, owner *uint32, fn func(PE) bool) (next Cursor, more bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	next = after
	ps := s.sortedPools()
	i := 0
	if after.Started {
		i = sort.Search(len(ps), func(i int) bool { return !handleLess(ps[i].handle, after.Handle) })
	}
	count := 0
	stopped := false
	for ; i < len(ps) && !stopped; i++ {
		p := ps[i]
		ci, ei := 0, 0
		if after.Started && p.handle == after.Handle {
			ci, ei = p.ids.seekAfter(after.ID, true)
		}
		p.ids.ascend(ci, ei, func(it *ordItem) bool {
			e := p.ents.at(it.a)
			if owner != nil && e.home != *owner {
				return true
			}
			if limit > 0 && count >= limit {
				more, stopped = true, true
				return false
			}
			count++
			next = Cursor{Handle: p.handle, ID: e.id, Started: true}
			if !fn(peOf(p.handle, e)) {
				more, stopped = true, true
				return false
			}
			return true
		})
	}
	return next, more
}
