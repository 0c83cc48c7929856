package store

import "sort"

// ordItem is one element of an ordList: a unique key and two payload words
// whose meaning belongs to the user of the list (the ID index keeps the
// entry slot in a; the bucket index keeps a ring head and a count).
type ordItem struct {
	key  uint32
	a, b int32
}

// ordChunkMax is the largest chunk of an ordList. Inserting into a full
// chunk splits it in two halves, so an insert moves at most this many items.
const ordChunkMax = 128

// ordList is a sorted set of ordItems keyed by a uint32, kept as a list of
// sorted chunks of at most ordChunkMax items (a two-level B-tree). Lookup is
// two binary searches, insert and delete move at most ordChunkMax items
// plus, rarely, one chunk pointer per chunk, and walking in key order is a
// plain slice walk. The zero value is an empty list. Not safe for
// concurrent use.
type ordList struct {
	mins   []uint32    // mins[i] == chunks[i][0].key
	chunks [][]ordItem // each non-empty and sorted; chunk i's keys < chunk i+1's
	n      int
}

// Len is the number of items.
func (l *ordList) Len() int { return l.n }

// chunkFor returns the index of the chunk that holds key or would hold it:
// the last chunk whose first key is <= key, or 0.
func (l *ordList) chunkFor(key uint32) int {
	i := sort.Search(len(l.mins), func(i int) bool { return l.mins[i] > key })
	if i > 0 {
		i--
	}
	return i
}

// search returns the position of the first item >= key in chunk c.
func searchChunk(c []ordItem, key uint32) int {
	lo, hi := 0, len(c)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if c[m].key < key {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// get returns a pointer to the item with key, valid until the next insert
// or delete.
func (l *ordList) get(key uint32) *ordItem {
	if l.n == 0 {
		return nil
	}
	c := l.chunks[l.chunkFor(key)]
	i := searchChunk(c, key)
	if i < len(c) && c[i].key == key {
		return &c[i]
	}
	return nil
}

// insert adds it and returns a pointer to the stored copy (valid until the
// next insert or delete). If the key is present, it returns the existing
// item and false.
func (l *ordList) insert(it ordItem) (*ordItem, bool) {
	if l.n == 0 {
		l.mins = append(l.mins[:0], it.key)
		l.chunks = append(l.chunks[:0], append(make([]ordItem, 0, 1), it))
		l.n = 1
		return &l.chunks[0][0], true
	}
	ci := l.chunkFor(it.key)
	c := l.chunks[ci]
	i := searchChunk(c, it.key)
	if i < len(c) && c[i].key == it.key {
		return &c[i], false
	}
	l.n++
	if len(c) < ordChunkMax {
		c = append(c, ordItem{})
		copy(c[i+1:], c[i:])
		c[i] = it
		l.chunks[ci] = c
		l.mins[ci] = c[0].key
		return &c[i], true
	}
	// Split the full chunk into two halves, then insert into one of them.
	half := len(c) / 2
	right := make([]ordItem, len(c)-half, ordChunkMax/2+ordChunkMax/4)
	copy(right, c[half:])
	clear(c[half:])
	left := c[:half]
	l.chunks = append(l.chunks, nil)
	copy(l.chunks[ci+2:], l.chunks[ci+1:])
	l.mins = append(l.mins, 0)
	copy(l.mins[ci+2:], l.mins[ci+1:])
	l.chunks[ci], l.chunks[ci+1] = left, right
	l.mins[ci+1] = right[0].key
	target, tci := left, ci
	if i > half {
		target, tci, i = right, ci+1, i-half
	}
	target = append(target, ordItem{})
	copy(target[i+1:], target[i:])
	target[i] = it
	l.chunks[tci] = target
	l.mins[tci] = target[0].key
	return &target[i], true
}

// delete removes the item with key and reports whether it was there.
func (l *ordList) delete(key uint32) bool {
	if l.n == 0 {
		return false
	}
	ci := l.chunkFor(key)
	c := l.chunks[ci]
	i := searchChunk(c, key)
	if i >= len(c) || c[i].key != key {
		return false
	}
	l.n--
	copy(c[i:], c[i+1:])
	c[len(c)-1] = ordItem{}
	c = c[:len(c)-1]
	if len(c) > 0 {
		l.chunks[ci] = c
		l.mins[ci] = c[0].key
		// Merge small neighbours so that chunks stay at least a
		// quarter full and the chunk list short.
		if len(c) < ordChunkMax/4 && ci+1 < len(l.chunks) && len(c)+len(l.chunks[ci+1]) <= ordChunkMax/2 {
			l.chunks[ci] = append(c, l.chunks[ci+1]...)
			l.removeChunk(ci + 1)
		}
		return true
	}
	l.removeChunk(ci)
	return true
}

func (l *ordList) removeChunk(ci int) {
	copy(l.chunks[ci:], l.chunks[ci+1:])
	l.chunks[len(l.chunks)-1] = nil
	l.chunks = l.chunks[:len(l.chunks)-1]
	copy(l.mins[ci:], l.mins[ci+1:])
	l.mins = l.mins[:len(l.mins)-1]
	if len(l.chunks) == 0 {
		l.chunks, l.mins = nil, nil
	}
}

// seekAfter returns the position (chunk, index) of the first item whose
// key is > key (started) or the first item at all (!started). The
// position may be past the end (chunk == len(chunks)).
func (l *ordList) seekAfter(key uint32, started bool) (int, int) {
	if !started || l.n == 0 {
		return 0, 0
	}
	ci := l.chunkFor(key)
	c := l.chunks[ci]
	i := searchChunk(c, key)
	if i < len(c) && c[i].key == key {
		i++
	}
	if i >= len(c) {
		return ci + 1, 0
	}
	return ci, i
}

// ascend calls fn for every item in key order, starting at the position
// (ci, i), until fn returns false.
func (l *ordList) ascend(ci, i int, fn func(*ordItem) bool) {
	for ; ci < len(l.chunks); ci, i = ci+1, 0 {
		c := l.chunks[ci]
		for ; i < len(c); i++ {
			if !fn(&c[i]) {
				return
			}
		}
	}
}

// first returns the smallest item, or nil.
func (l *ordList) first() *ordItem {
	if l.n == 0 {
		return nil
	}
	return &l.chunks[0][0]
}
