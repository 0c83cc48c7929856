package store

import (
	"math/bits"

	"github.com/rserpool-go/registrar/asap"
)

// Rand is the random source of Resolve. *math/rand/v2.Rand satisfies it
// (with a PCG or ChaCha8 source). Resolve calls it under the pool's lock,
// so one Rand may be shared by concurrent resolutions of one pool, but
// concurrent resolutions of different pools must not share a Rand unless
// it is safe for concurrent use.
type Rand interface {
	Uint64() uint64
}

// uniform returns a uniformly distributed number in [0, n), n > 0
// (Lemire's multiply-and-reject method: no division on the fast path).
func uniform(r Rand, n uint64) uint64 {
	hi, lo := bits.Mul64(r.Uint64(), n)
	if lo < n {
		thresh := -n % n
		for lo < thresh {
			hi, lo = bits.Mul64(r.Uint64(), n)
		}
	}
	return hi
}

// pick selects min(k, len(ents)) distinct slots by the pool's policy,
// appends them to out in selection order (best first) and updates the
// selection state (round robin position, ring rotation for ties,
// accumulated degradation). The caller holds p.mu. Every policy costs
// O(k) or O(k log n), never O(n).
func (p *pool) pick(k int, rnd Rand, out []int32) []int32 {
	n := p.ents.n
	if k > n {
		k = n
	}
	if k <= 0 {
		return out
	}
	switch p.sel {
	case selRR:
		start := p.rr
		if start >= n {
			start = 0
		}
		for j := 0; j < k; j++ {
			s := start + j
			if s >= n {
				s -= n
			}
			out = append(out, int32(s))
		}
		p.rr = (start + k) % n
	case selRand:
		out = p.pickRandom(k, rnd, out)
	case selWeighted:
		out = p.pickWeighted(k, rnd, out)
	case selBucket:
		out = p.pickBucket(k, out)
	}
	return out
}

// pickRandom selects k distinct slots uniformly.
func (p *pool) pickRandom(k int, rnd Rand, out []int32) []int32 {
	n := p.ents.n
	base := len(out)
	if 2*k > n {
		// A large share of the pool: a partial Fisher-Yates shuffle over
		// all slots, O(n) = O(k).
		perm := make([]int32, n)
		for i := range perm {
			perm[i] = int32(i)
		}
		for j := 0; j < k; j++ {
			r := j + int(uniform(rnd, uint64(n-j)))
			perm[j], perm[r] = perm[r], perm[j]
		}
		return append(out, perm[:k]...)
	}
	var seen map[int32]struct{}
	if k > 16 {
		seen = make(map[int32]struct{}, k)
	}
	for len(out)-base < k {
		s := int32(uniform(rnd, uint64(n)))
		if seen != nil {
			if _, dup := seen[s]; dup {
				continue
			}
			seen[s] = struct{}{}
		} else if containsSlot(out[base:], s) {
			continue
		}
		out = append(out, s)
	}
	return out
}

func containsSlot(s []int32, v int32) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// pickWeighted selects k distinct slots with probability proportional to
// their weight, drawing without replacement: a chosen slot's weight is set
// to 0 for the rest of the draw and restored afterwards.
func (p *pool) pickWeighted(k int, rnd Rand, out []int32) []int32 {
	base := len(out)
	var small [8]uint32
	saved := small[:0]
	if k > len(small) {
		saved = make([]uint32, 0, k)
	}
	for j := 0; j < k; j++ {
		s := p.fw.find(uniform(rnd, p.fw.total()))
		saved = append(saved, p.fw.w[s])
		p.fw.set(s, 0)
		out = append(out, int32(s))
	}
	degrade := p.base == asap.PolicyRandomizedLeastUsedDegradation ||
		p.base == asap.PolicyRandomizedPriorityLeastUsedDegradation
	for j, s := range out[base:] {
		w := saved[j]
		if degrade {
			e := p.ents.at(s)
			e.acc = sat32(e.acc, e.v2)
			w = p.weightOf(e)
		}
		p.fw.set(int(s), w)
	}
	return out
}

// pickBucket takes the first k entries in (key, ring order) and then
// updates them: each goes to the tail of its ring (ties are broken round
// robin), and the dynamic policies move it to the bucket of its new key.
func (p *pool) pickBucket(k int, out []int32) []int32 {
	base := len(out)
	p.bk.ascend(0, 0, func(it *ordItem) bool {
		m := min(int(it.b), k-(len(out)-base))
		s := it.a
		for t := 0; t < m; t++ {
			out = append(out, s)
			s = p.ents.at(s).next
		}
		it.a = s // rotate: the taken ones are now at the tail
		return len(out)-base < k
	})
	switch p.base {
	case asap.PolicyWeightedRoundRobin:
		for _, s := range out[base:] {
			e := p.ents.at(s)
			if e.acc > 1 {
				e.acc--
				continue
			}
			e.acc = max(e.v1, 1)
			if e.bkey == 0xFFFFFFFF {
				p.rebaseRounds()
			}
			p.bucketRemove(s)
			e.bkey++
			p.bucketInsert(s)
		}
	case asap.PolicyLeastUsedDegradation, asap.PolicyPriorityLeastUsedDegradation:
		for _, s := range out[base:] {
			e := p.ents.at(s)
			e.acc = sat32(e.acc, e.v2)
			if nk := p.keyOf(e); nk != e.bkey {
				p.bucketRemove(s)
				e.bkey = nk
				p.bucketInsert(s)
			}
		}
	}
	return out
}

// rebaseRounds subtracts the smallest WRR round from every entry's round,
// once in 2^32 rounds, so that round numbers never overflow. The bucket
// index is rebuilt in the same order.
func (p *pool) rebaseRounds() {
	low := p.bk.first().key
	old := p.bk
	p.bk = ordList{}
	old.ascend(0, 0, func(it *ordItem) bool {
		s := it.a
		for t := int32(0); t < it.b; t++ {
			next := p.ents.at(s).next
			p.ents.at(s).bkey -= low
			p.bucketInsert(s)
			s = next
		}
		return true
	})
}
