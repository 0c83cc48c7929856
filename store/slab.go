package store

// slabShift sets the size of a slab chunk: 256 entries (14 KiB).
const (
	slabShift = 8
	slabSize  = 1 << slabShift
)

// slab holds a pool's entries by slot. Slot i lives in chunk i>>slabShift,
// so growing a large pool allocates a new chunk instead of copying every
// entry (a plain slice's growth copied each entry about five times, which
// dominated registration). The first chunk grows like a slice, so a small
// pool costs no more than a slice of its entries.
type slab struct {
	c [][]entry
	n int
}

// at returns the entry in slot i (< n).
func (s *slab) at(i int32) *entry {
	return &s.c[i>>slabShift][i&(slabSize-1)]
}

// push appends e and returns its slot.
func (s *slab) push(e entry) int32 {
	ci := s.n >> slabShift
	if ci == len(s.c) {
		var c []entry
		if ci > 0 {
			c = make([]entry, 0, slabSize)
		}
		s.c = append(s.c, c)
	}
	s.c[ci] = append(s.c[ci], e)
	s.n++
	return int32(s.n - 1)
}

// pop removes the last entry.
func (s *slab) pop() {
	s.n--
	ci, i := s.n>>slabShift, s.n&(slabSize-1)
	s.c[ci][i] = entry{}
	s.c[ci] = s.c[ci][:i]
	if i == 0 && ci > 0 {
		s.c[ci] = nil
		s.c = s.c[:ci]
	} else if ci == 0 && cap(s.c[0]) > 64 && i < cap(s.c[0])/4 {
		// Give back the memory of a pool that shrank a lot.
		s.c[0] = append(make([]entry, 0, 2*i), s.c[0]...)
	}
}
