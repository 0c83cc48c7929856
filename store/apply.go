package store

import (
	"fmt"
	"slices"

	"github.com/rserpool-go/registrar/asap"
)

// Apply applies a batch of operations in order and records index as the
// last applied raft index, in one bbolt transaction. index 0 means "no raft
// index" (tests, tools): LastApplied is then left as it is.
//
// Apply is deterministic: the same ops on the same contents give the same
// results and contents on every node. An op that fails validation reports
// it in its Result.Err and changes nothing; the batch goes on. The returned
// error is only for I/O failures and a closed store: then nothing of the
// batch is applied, in memory or on disk. The caller (a raft FSM, which
// must not skip a committed entry) may apply the same batch again later.
//
// Readers are not blocked by the disk I/O: the in-memory index is changed
// first, under the write lock, and the transaction is committed after the
// lock is released; if the commit fails, the changes are undone. A
// concurrent reader may therefore see a batch an instant before it is
// durable (and, only if the commit then fails, see it vanish). Apply calls
// are serialised.
//
// With Options.CommitDelay the commit is deferred (group commit) and
// Apply does not fail on I/O: a failed commit makes the store faulted,
// and Apply keeps changing memory (see Fault). Without it, a failed
// commit faults the store too, and Apply during a fault first tries to
// rewrite the file, failing with the fault if that does not work.
func (s *Store) Apply(index uint64, ops []Op) ([]Result, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	group := s.opts.CommitDelay > 0
	file := s.path != "" // not OpenMemory
	faulted := file && s.Fault() != nil
	if faulted && !group {
		if err := s.recoverLocked(); err != nil {
			return nil, fmt.Errorf("store: apply batch at index %d: %w", index, err)
		}
		faulted = false
	}
	res := make([]Result, len(ops))
	var bl *batchLog
	if file && !faulted {
		// A group commit fails after Apply has returned, too late to
		// undo anything (the fault's rewrite from memory covers it).
		bl = &batchLog{noUndo: group}
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	var buf []byte
	for i := range ops {
		res[i] = s.applyOp(&ops[i], bl, &buf)
	}
	s.mu.Unlock()
	switch {
	case bl == nil || (len(bl.disk) == 0 && index == 0):
		// memory only: OpenMemory, a fault under group commit, or nothing to write
	case group:
		s.queue(index, bl.disk)
	default:
		if s.hookCommit != nil {
			s.hookCommit(index)
		}
		if err := s.commitFile(index, bl.disk); err != nil {
			s.mu.Lock()
			s.undo(bl)
			s.mu.Unlock()
			return nil, fmt.Errorf("store: apply batch at index %d: %w", index,
				s.setFault("commit", fmt.Errorf("commit of the batch at index %d: %w", index, err)))
		}
	}
	if index != 0 {
		s.applied.Store(index)
	}
	return res, nil
}

// batchLog records what a batch did: how to undo it in memory (unless
// noUndo) and what to write to the file.
type batchLog struct {
	undo   []undoRec
	disk   []diskOp
	noUndo bool
}

// undoRec undoes one change: undoPut restores (h, id) to old (or to absent
// when !had); undoReset puts back a whole index.
type undoRec struct {
	h       asap.PoolHandle
	id      uint32
	had     bool
	old     entry
	oldMeta pmeta
	st      *indexState // non-nil for a reset
}

// diskOp is one change of the "pes" bucket, applied in order: put (val
// non-nil), delete (val nil) or empty the bucket (reset).
type diskOp struct {
	key, val []byte
	reset    bool
}

func (s *Store) undo(bl *batchLog) {
	for i := len(bl.undo) - 1; i >= 0; i-- {
		u := &bl.undo[i]
		if u.st != nil {
			s.restoreIndex(u.st)
			continue
		}
		if p := s.pools[u.h]; p != nil {
			if slot := p.slot(u.id); slot >= 0 {
				s.deleteEntry(p, slot)
			}
		}
		if u.had {
			s.insertEntry(u.h, u.old, u.oldMeta)
		}
	}
}

// logChange records that (h, e.id) changed from old (if had) to e (or to
// absent when del).
func (bl *batchLog) logChange(h asap.PoolHandle, id uint32, had bool, old entry, oldMeta pmeta, now *entry) {
	if bl == nil {
		return
	}
	if !bl.noUndo {
		bl.undo = append(bl.undo, undoRec{h: h, id: id, had: had, old: old, oldMeta: oldMeta})
	}
	d := diskOp{key: peKey(h, id)}
	if now != nil {
		d.val = peValue(now)
	}
	bl.disk = append(bl.disk, d)
}

// putEntry stores e in pool h, replacing the entry with the same ID.
func (s *Store) putEntry(h asap.PoolHandle, e entry, m pmeta, bl *batchLog) {
	var old entry
	var oldMeta pmeta
	had := false
	if p := s.pools[h]; p != nil {
		if slot := p.slot(e.id); slot >= 0 {
			oldMeta = p.meta
			old = s.deleteEntry(p, slot)
			had = true
		}
	}
	s.insertEntry(h, e, m)
	bl.logChange(h, e.id, had, old, oldMeta, &e)
}

// removeEntry removes the entry in slot of p.
func (s *Store) removeEntry(p *pool, slot int32, bl *batchLog) {
	m := p.meta
	old := s.deleteEntry(p, slot)
	bl.logChange(p.handle, old.id, true, old, m, nil)
}

// rehome gives the entry in slot of p a new home registrar, in place.
func (s *Store) rehome(p *pool, slot int32, home uint32, bl *batchLog) {
	e := p.ents.at(slot)
	old := *e
	if o := s.owners[e.home]; o != nil {
		o.n--
		o.sum.Remove(p.handle, e.id)
		if o.n == 0 {
			delete(s.owners, e.home)
		}
	}
	e.pe = e.pe.WithHome(home)
	e.home = home
	o := s.owners[home]
	if o == nil {
		o = &ownerStat{}
		s.owners[home] = o
	}
	o.n++
	o.sum.Add(p.handle, e.id)
	now := *e
	bl.logChange(p.handle, e.id, true, old, p.meta, &now)
}

// applyOp applies one op to memory (recording into bl unless nil).
func (s *Store) applyOp(op *Op, bl *batchLog, buf *[]byte) Result {
	switch op.Kind {
	case OpRegister:
		pe := &op.PE
		enc, m, err := s.check(pe, (*buf)[:0])
		*buf = enc
		if err != nil {
			return Result{Err: err}
		}
		e, err := newEntry(string(enc), pe.Registered)
		if err != nil { // check encoded it: a bug
			return Result{Err: peErr(pe, ErrInvalidPE, asap.CauseInvalidValues, err.Error(), nil)}
		}
		e.v1, e.v2 = policyValues(&pe.Element.Policy)
		r := Result{Changed: 1, Added: true, PoolCreated: true}
		if p := s.pools[pe.Handle]; p != nil {
			r.PoolCreated = false
			r.Added = p.slot(e.id) < 0
		}
		s.putEntry(pe.Handle, e, m, bl)
		return r

	case OpDeregister:
		h, id := op.PE.Handle, op.PE.Element.ID
		if p := s.pools[h]; p != nil {
			if slot := p.slot(id); slot >= 0 {
				s.removeEntry(p, slot, bl)
				r := Result{Changed: 1}
				if p.ents.n == 0 {
					r.PoolsRemoved = []asap.PoolHandle{h}
				}
				return r
			}
		}
		return Result{Err: &poolError{handle: h, id: id, hasID: true, err: ErrPENotFound}}

	case OpReassign:
		to := slices.Clone(op.To)
		slices.Sort(to)
		to = slices.Compact(to)
		if len(to) == 0 {
			return Result{Err: fmt.Errorf("%w: reassign of registrar 0x%x without targets", ErrInvalidOp, op.From)}
		}
		var r Result
		for i, k := range s.ownedKeys(op.From) {
			home := to[i%len(to)]
			if home == op.From {
				continue
			}
			p := s.pools[k.h]
			slot := p.slot(k.id)
			s.rehome(p, slot, home, bl)
			r.PEs = append(r.PEs, peOf(k.h, p.ents.at(slot)))
		}
		r.Changed = len(r.PEs)
		return r

	case OpDeleteOwner:
		keys := s.ownedKeys(op.From)
		r := Result{Changed: len(keys), PEs: make([]PE, 0, len(keys))}
		for _, k := range keys {
			p := s.pools[k.h]
			slot := p.slot(k.id)
			r.PEs = append(r.PEs, peOf(k.h, p.ents.at(slot)))
			s.removeEntry(p, slot, bl)
			if p.ents.n == 0 {
				r.PoolsRemoved = append(r.PoolsRemoved, k.h)
			}
		}
		return r

	case OpReset:
		n := s.nPE
		st := s.resetIndex()
		if bl != nil {
			if !bl.noUndo {
				bl.undo = append(bl.undo, undoRec{st: st})
			}
			bl.disk = append(bl.disk[:0], diskOp{reset: true})
		}
		return Result{Changed: n}
	}
	return Result{Err: fmt.Errorf("%w: unknown op kind %d", ErrInvalidOp, op.Kind)}
}

type peRef struct {
	h  asap.PoolHandle
	id uint32
}

// ownedKeys lists the PEs whose home is owner in (handle, ID) order. The
// caller holds s.mu.
func (s *Store) ownedKeys(owner uint32) []peRef {
	o := s.owners[owner]
	if o == nil {
		return nil
	}
	keys := make([]peRef, 0, o.n)
	for _, p := range s.sortedPools() {
		p.ids.ascend(0, 0, func(it *ordItem) bool {
			if p.ents.at(it.a).home == owner {
				keys = append(keys, peRef{p.handle, it.key})
			}
			return true
		})
		if len(keys) == o.n {
			break
		}
	}
	return keys
}

// Check validates pe against the current handlespace without writing: the
// PE must be storable (non-zero ID, a pool handle of 1 to 255 bytes, a
// supported policy type, an encodable element) and consistent with its
// pool (same policy type, user transport kind and transport use as the
// other members; a PE that is the only member of its pool may change
// them). The error is a *PEError, which carries the ASAP Operation Error
// to answer with (errors.As to *asap.OperationError). Apply runs the same
// check for every OpRegister, with the same error.
func (s *Store) Check(pe PE) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	_, _, err := s.check(&pe, nil)
	return err
}

// MaxHandleLen is the longest pool handle the store holds (its length is
// one byte of the file's key). The ASAP decoder's default limit (32, for
// RSPLIB's sake) is lower.
const MaxHandleLen = 255

// check is Check with the caller holding s.mu; it returns the encoded
// element (appended to buf) and the pool metadata of the PE.
func (s *Store) check(pe *PE, buf []byte) ([]byte, pmeta, error) {
	el := &pe.Element
	if el.ID == 0 {
		return buf, pmeta{}, peErr(pe, ErrInvalidPE, asap.CauseInvalidValues, "PE identifier 0", nil)
	}
	if len(pe.Handle) == 0 || len(pe.Handle) > MaxHandleLen {
		return buf, pmeta{}, peErr(pe, ErrInvalidPE, asap.CauseInvalidValues, fmt.Sprintf("pool handle of %d bytes (1 to %d allowed)", len(pe.Handle), MaxHandleLen), nil)
	}
	if _, ok := policyKind(el.Policy.Type); !ok {
		info, _ := asap.AppendPolicy(nil, &el.Policy)
		return buf, pmeta{}, peErr(pe, ErrInvalidPE, asap.CauseInvalidValues, "unsupported policy type "+el.Policy.Type.String(), info)
	}
	for _, t := range [2]struct {
		name string
		tr   *asap.Transport
	}{{"user_transport", &el.User}, {"asap_transport", &el.ASAP}} {
		if t.tr.Use > asap.UseDataAndControl {
			return buf, pmeta{}, peErr(pe, ErrInvalidPE, asap.CauseInvalidValues, fmt.Sprintf("%s: transport use %d", t.name, t.tr.Use), nil)
		}
		if len(t.tr.Addrs) > asap.DefaultMaxAddresses {
			return buf, pmeta{}, peErr(pe, ErrInvalidPE, asap.CauseInvalidValues, fmt.Sprintf("%s: %d addresses (at most %d)", t.name, len(t.tr.Addrs), asap.DefaultMaxAddresses), nil)
		}
	}
	enc, err := asap.AppendPoolElement(buf, el)
	if err != nil {
		return enc, pmeta{}, peErr(pe, ErrInvalidPE, asap.CauseInvalidValues, err.Error(), nil)
	}
	m := pmetaOf(el)
	p := s.pools[pe.Handle]
	if p == nil || p.ents.n == 0 || (p.ents.n == 1 && p.ents.at(0).id == el.ID) {
		return enc, m, nil
	}
	switch {
	case m.ptype != p.meta.ptype:
		info, _ := asap.AppendPolicy(nil, &el.Policy)
		return enc, m, peErr(pe, ErrPolicyMismatch, asap.CauseInconsistentPolicy,
			"pool uses "+p.meta.ptype.String()+", PE has "+m.ptype.String(), info)
	case m.tkind != p.meta.tkind:
		info, _ := asap.AppendTransport(nil, &el.User)
		return enc, m, peErr(pe, ErrTransportMismatch, asap.CauseInconsistentTransport,
			"pool uses "+p.meta.tkind.String()+", PE has "+m.tkind.String(), info)
	case m.tuse != p.meta.tuse:
		return enc, m, peErr(pe, ErrDataControlMismatch, asap.CauseInconsistentDataControl,
			fmt.Sprintf("pool uses transport use %d, PE has %d", p.meta.tuse, m.tuse), nil)
	}
	return enc, m, nil
}
