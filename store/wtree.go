package store

// wtreeShift sets the block size of a wtree: 64 slots.
const (
	wtreeShift = 6
	wtreeBlock = 1 << wtreeShift
)

// wtree samples a slot with probability proportional to its weight. The
// weights are kept per slot, and a Fenwick tree holds the sums of blocks of
// 64 slots: a draw descends the small block tree (n/64 entries, which stays
// in cache) and then scans at most 64 consecutive weights. Updates touch
// one weight and O(log(n/64)) block sums. Against a Fenwick tree over all
// slots this halves the memory and avoids most cache misses.
type wtree struct {
	w   []uint32 // weight by slot
	blk fenwick  // block sums
}

func (t *wtree) total() uint64 { return t.blk.total }

// push appends a slot with weight w.
func (t *wtree) push(w uint32) {
	i := len(t.w)
	t.w = append(t.w, w)
	if i&(wtreeBlock-1) == 0 {
		t.blk.push(uint64(w))
	} else {
		t.blk.add(i>>wtreeShift, uint64(w))
	}
}

// pop removes the last slot.
func (t *wtree) pop() {
	i := len(t.w) - 1
	w := t.w[i]
	t.w = t.w[:i]
	if i&(wtreeBlock-1) == 0 {
		t.blk.pop(uint64(w))
	} else {
		t.blk.add(i>>wtreeShift, -uint64(w))
	}
	if c := cap(t.w); c > 256 && i < c/4 {
		t.w = append(make([]uint32, 0, 2*i), t.w...)
	}
}

// set changes the weight of slot i.
func (t *wtree) set(i int, w uint32) {
	if old := t.w[i]; old != w {
		t.w[i] = w
		t.blk.add(i>>wtreeShift, uint64(w)-uint64(old))
	}
}

// find returns the slot that covers r, for r < total().
func (t *wtree) find(r uint64) int {
	b, rem := t.blk.find(r)
	i := b << wtreeShift
	end := min(i+wtreeBlock, len(t.w))
	for ; i < end-1; i++ {
		w := uint64(t.w[i])
		if rem < w {
			return i
		}
		rem -= w
	}
	return end - 1
}

func (t *wtree) reset() {
	t.w = t.w[:0]
	t.blk.reset()
}
