package store

import (
	"sync"

	"github.com/rserpool-go/registrar/asap"
)

// entry is one PE as held in memory: its encoded Pool Element parameter
// plus the few numbers that selection and ownership need. Keeping the
// encoded form (and not a decoded asap.PoolElement with its slices) is what
// keeps a PE near 170 bytes. The encoding is kept as an asap view, checked
// once when the entry is made, so a resolution copies from it without
// parsing it again.
//
// pe, reg, id, home, v1 and v2 change only under Store.mu (write); acc,
// bkey, next and prev are selection state, changed by Resolve under
// pool.mu while Store.mu is read-locked.
type entry struct {
	pe   asap.PoolElementView // the RFC 5354 Pool Element parameter (asap.AppendPoolElement)
	reg  int64                // Registered, unix nanoseconds
	id   uint32               // PE identifier
	home uint32               // home registrar (owner)
	v1   uint32               // weight (WRR, WRAND), priority (PRI) or load (LU family)
	v2   uint32               // load degradation (LUD, PLU and their relatives)
	acc  uint32               // accumulated degradation (the "D" policies); WRR: picks left in this round
	bkey uint32               // bucket policies: the key of the bucket the entry is in
	next int32                // bucket policies: ring of the entries of one bucket
	prev int32
}

// selKind is the selection structure a pool uses.
type selKind uint8

const (
	selRR       selKind = iota + 1 // a cursor over the slots
	selRand                        // uniform over the slots
	selWeighted                    // a Fenwick tree of weights over the slots
	selBucket                      // buckets of equal key, rings rotated on selection
)

// basePolicy maps the distance-penalty policies to the policy they
// select by once the penalty is folded into the PE's load or weight
// (dpfValues, distance.go).
func basePolicy(t asap.PolicyType) asap.PolicyType {
	switch t {
	case asap.PolicyWeightedRandomDPF:
		return asap.PolicyWeightedRandom
	case asap.PolicyLeastUsedDPF:
		return asap.PolicyLeastUsed
	case asap.PolicyLeastUsedDegradationDPF:
		return asap.PolicyLeastUsedDegradation
	case asap.PolicyPriorityLeastUsedDPF:
		return asap.PolicyPriorityLeastUsed
	case asap.PolicyPriorityLeastUsedDegradationDPF:
		return asap.PolicyPriorityLeastUsedDegradation
	}
	return t
}

// policyKind returns the selection structure of a policy type, and false
// for a type the store does not support.
func policyKind(t asap.PolicyType) (selKind, bool) {
	switch basePolicy(t) {
	case asap.PolicyRoundRobin:
		return selRR, true
	case asap.PolicyRandom:
		return selRand, true
	case asap.PolicyWeightedRandom, asap.PolicyRandomizedLeastUsed,
		asap.PolicyRandomizedPriorityLeastUsed, asap.PolicyRandomizedLeastUsedDegradation,
		asap.PolicyRandomizedPriorityLeastUsedDegradation:
		return selWeighted, true
	case asap.PolicyWeightedRoundRobin, asap.PolicyPriority, asap.PolicyLeastUsed,
		asap.PolicyLeastUsedDegradation, asap.PolicyPriorityLeastUsed,
		asap.PolicyPriorityLeastUsedDegradation:
		return selBucket, true
	}
	return 0, false
}

// policyValues extracts the values selection uses from a policy.
func policyValues(p *asap.Policy) (v1, v2 uint32) {
	if p.Type.DistanceSensitive() {
		return dpfValues(p)
	}
	switch p.Type {
	case asap.PolicyWeightedRoundRobin, asap.PolicyWeightedRandom:
		return p.Weight, 0
	case asap.PolicyPriority:
		return p.Priority, 0
	case asap.PolicyLeastUsed, asap.PolicyRandomizedLeastUsed:
		return p.Load, 0
	case asap.PolicyLeastUsedDegradation, asap.PolicyPriorityLeastUsed,
		asap.PolicyRandomizedPriorityLeastUsed, asap.PolicyRandomizedLeastUsedDegradation,
		asap.PolicyPriorityLeastUsedDegradation, asap.PolicyRandomizedPriorityLeastUsedDegradation:
		return p.Load, p.LoadDegradation
	}
	return 0, 0
}

// sat32 adds with saturation at 0xFFFFFFFF.
func sat32(a, b uint32) uint32 {
	if s := a + b; s >= a {
		return s
	}
	return 0xFFFFFFFF
}

// pmeta is what a pool takes from its first PE and checks in the others.
type pmeta struct {
	ptype asap.PolicyType
	tkind asap.ParamType
	tuse  asap.TransportUse
}

// pool is one pool of the handlespace.
type pool struct {
	// mu guards the selection state (rr, fw, bk and the entries' acc,
	// bkey, next, prev) between concurrent Resolves. Structural changes
	// happen under Store.mu (write), which excludes all readers.
	mu sync.Mutex

	handle asap.PoolHandle
	meta   pmeta
	base   asap.PolicyType // meta.ptype without DPF
	sel    selKind
	dead   bool // removed from Store.pools (its last PE left)

	ents slab    // unordered; removal moves the last entry into the hole
	ids  ordList // PE ID -> slot (a), in ID order

	rr int     // selRR: next slot
	fw wtree   // selWeighted: weights by slot
	bk ordList // selBucket: key -> ring head (a) and size (b)
}

func newPool(h asap.PoolHandle, m pmeta) *pool {
	p := &pool{handle: h}
	p.setMeta(m)
	return p
}

func (p *pool) setMeta(m pmeta) {
	p.meta = m
	p.base = basePolicy(m.ptype)
	p.sel, _ = policyKind(m.ptype)
	p.rr = 0
	p.fw.reset()
	p.bk = ordList{}
}

// slot returns the slot of PE id, or -1.
func (p *pool) slot(id uint32) int32 {
	if it := p.ids.get(id); it != nil {
		return it.a
	}
	return -1
}

// weightOf is the selection weight of an entry of a selWeighted pool
// (never 0, so that every PE stays selectable).
func (p *pool) weightOf(e *entry) uint32 {
	var w uint32
	switch p.base {
	case asap.PolicyWeightedRandom:
		w = e.v1
	case asap.PolicyRandomizedLeastUsed:
		w = 0xFFFFFFFF - e.v1
	case asap.PolicyRandomizedPriorityLeastUsed:
		w = 0xFFFFFFFF - sat32(e.v1, e.v2)
	default: // RLUD, RPLUD
		w = 0xFFFFFFFF - sat32(sat32(e.v1, e.v2), e.acc)
	}
	return max(w, 1)
}

// keyOf is the bucket key of an entry of a selBucket pool: lower is
// selected first. WRR keeps its round in bkey instead.
func (p *pool) keyOf(e *entry) uint32 {
	switch p.base {
	case asap.PolicyPriority:
		return ^e.v1 // highest priority first
	case asap.PolicyLeastUsed:
		return e.v1
	case asap.PolicyPriorityLeastUsed:
		return sat32(e.v1, e.v2)
	case asap.PolicyLeastUsedDegradation:
		return sat32(e.v1, e.acc)
	case asap.PolicyPriorityLeastUsedDegradation:
		return sat32(sat32(e.v1, e.v2), e.acc)
	}
	return e.bkey // WRR
}

// add appends e (whose pool metadata the caller has checked) and links it
// into the selection structure.
func (p *pool) add(e entry) {
	e.acc, e.next, e.prev = 0, -1, -1
	slot := p.ents.push(e)
	p.ids.insert(ordItem{key: e.id, a: slot})
	ne := p.ents.at(slot)
	switch p.sel {
	case selWeighted:
		p.fw.push(p.weightOf(ne))
	case selBucket:
		if p.base == asap.PolicyWeightedRoundRobin {
			// Join the current round with a full count.
			ne.acc = max(ne.v1, 1)
			if f := p.bk.first(); f != nil {
				ne.bkey = f.key
			} else {
				ne.bkey = 0
			}
		} else {
			ne.bkey = p.keyOf(ne)
		}
		p.bucketInsert(slot)
	}
}

// remove takes out the entry in slot; the last entry moves into its place.
func (p *pool) remove(slot int32) {
	last := int32(p.ents.n - 1)
	e := p.ents.at(slot)
	p.ids.delete(e.id)
	if p.sel == selBucket {
		p.bucketRemove(slot)
	}
	if slot != last {
		m := p.ents.at(last)
		*e = *m
		p.ids.get(e.id).a = slot
		switch p.sel {
		case selWeighted:
			p.fw.set(int(slot), p.fw.w[last])
		case selBucket:
			if e.next == last {
				e.next, e.prev = slot, slot
			} else {
				p.ents.at(e.prev).next = slot
				p.ents.at(e.next).prev = slot
			}
			if it := p.bk.get(e.bkey); it.a == last {
				it.a = slot
			}
		}
	}
	if p.sel == selWeighted {
		p.fw.pop()
	}
	p.ents.pop()
	if p.rr >= p.ents.n {
		p.rr = 0
	}
}

// bucketInsert puts slot at the tail of the ring of its bucket (e.bkey),
// creating the bucket if needed.
func (p *pool) bucketInsert(slot int32) {
	e := p.ents.at(slot)
	it, created := p.bk.insert(ordItem{key: e.bkey, a: slot, b: 1})
	if created {
		e.next, e.prev = slot, slot
		return
	}
	head := it.a
	tail := p.ents.at(head).prev
	e.prev, e.next = tail, head
	p.ents.at(tail).next = slot
	p.ents.at(head).prev = slot
	it.b++
}

// bucketRemove unlinks slot from its bucket, deleting an emptied bucket.
func (p *pool) bucketRemove(slot int32) {
	e := p.ents.at(slot)
	it := p.bk.get(e.bkey)
	if it.b == 1 {
		p.bk.delete(e.bkey)
		e.next, e.prev = -1, -1
		return
	}
	p.ents.at(e.prev).next = e.next
	p.ents.at(e.next).prev = e.prev
	if it.a == slot {
		it.a = e.next
	}
	it.b--
	e.next, e.prev = -1, -1
}

// newEntry makes the entry of an encoded, checked Pool Element. The error
// (an encoding the asap view refuses) means a bug in the caller's check
// or a corrupt record.
func newEntry(enc string, registered int64) (entry, error) {
	v, err := asap.ViewPoolElement(enc)
	if err != nil {
		return entry{}, err
	}
	return entry{pe: v, reg: registered, id: v.ID(), home: v.Home()}, nil
}

// enc is the entry's encoded Pool Element parameter.
func (e *entry) enc() string { return e.pe.Encoded() }
