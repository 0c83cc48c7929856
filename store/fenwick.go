package store

import "math/bits"

// fenwick is a Fenwick (binary indexed) tree over the weights of a pool's
// entry slots: prefix sums, point updates, appending and removing the last
// slot, and finding the slot that covers a given cumulative weight, each in
// O(log n). It backs the weighted random policies. Slot i is stored at
// tree index i+1.
type fenwick struct {
	t     []uint64 // t[0] unused; t[i] = sum of w over (i - lowbit(i), i]
	total uint64
}

// prefix returns the sum of the weights of slots [0, i).
func (f *fenwick) prefix(i int) uint64 {
	var s uint64
	for ; i > 0; i &= i - 1 {
		s += f.t[i]
	}
	return s
}

// push appends a slot with weight w.
func (f *fenwick) push(w uint64) {
	if len(f.t) == 0 {
		f.t = append(f.t, 0)
	}
	i := len(f.t) // tree index of the new slot
	low := i & -i
	// t[i] covers (i-low, i]: the new weight plus the slots before it in
	// that range, which are all present already.
	f.t = append(f.t, w+f.prefix(i-1)-f.prefix(i-low))
	f.total += w
}

// pop removes the last slot, whose weight is w.
func (f *fenwick) pop(w uint64) {
	f.t = f.t[:len(f.t)-1]
	f.total -= w
}

// add changes the weight of slot by delta (two's complement for a
// decrease).
func (f *fenwick) add(slot int, delta uint64) {
	for i := slot + 1; i < len(f.t); i += i & -i {
		f.t[i] += delta
	}
	f.total += delta
}

// find returns the slot s with prefix(s) <= r < prefix(s+1), for
// r < total, and r - prefix(s).
func (f *fenwick) find(r uint64) (int, uint64) {
	n := len(f.t) - 1
	pos := 0
	for step := 1 << (bits.Len(uint(n)) - 1); step > 0; step >>= 1 {
		if next := pos + step; next <= n && f.t[next] <= r {
			pos = next
			r -= f.t[next]
		}
	}
	return pos, r // tree index pos+1 holds the slot, i.e. slot pos
}

// reset empties the tree.
func (f *fenwick) reset() {
	f.t = f.t[:0]
	f.total = 0
}
