package store

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"

	"github.com/rserpool-go/registrar/asap"
	bolt "go.etcd.io/bbolt"
)

// mustOpenStore opens a fresh store (NoSync) in t.TempDir(). A cleanup
// checks the index invariants, checks that reopening the file gives exactly
// the same contents, and closes it.
func mustOpenStore(t testing.TB) *Store {
	t.Helper()
	return mustOpenStoreAt(t, filepath.Join(t.TempDir(), "hs.db"))
}

func mustOpenStoreAt(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(path, &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.mu.RLock()
		closed := s.closed
		s.mu.RUnlock()
		if closed {
			return
		}
		checkStore(t, s)
		checkReopen(t, s)
	})
	return s
}

// memRec is one PE as the index holds it, for comparisons.
type memRec struct {
	h   asap.PoolHandle
	id  uint32
	enc string
	reg int64
}

// contents lists every PE in Iterate order.
func contents(s *Store) []memRec {
	var out []memRec
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, p := range s.sortedPools() {
		p.ids.ascend(0, 0, func(it *ordItem) bool {
			e := p.ents.at(it.a)
			out = append(out, memRec{p.handle, e.id, e.enc(), e.reg})
			return true
		})
	}
	return out
}

// fileContents lists every PE of the store's file.
func fileContents(t testing.TB, s *Store) []memRec {
	t.Helper()
	var out []memRec
	err := s.View(func(v *ReadView) error {
		return v.ForEach(func(pe PE) error {
			enc, err := asap.AppendPoolElement(nil, &pe.Element)
			if err != nil {
				return err
			}
			out = append(out, memRec{pe.Handle, pe.Element.ID, string(enc), pe.Registered})
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkReopen closes s, reopens its file and compares the contents, the
// applied index and the checksums, then closes the reopened store.
func checkReopen(t testing.TB, s *Store) {
	t.Helper()
	want := contents(s)
	wantApplied := s.LastApplied()
	wantOwners := s.Owners()
	if got := fileContents(t, s); !slices.Equal(got, want) {
		t.Errorf("file contents differ from memory:\n got %d PEs %v\nwant %d PEs %v", len(got), short(got), len(want), short(want))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := Open(s.Path(), &Options{NoSync: true})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer r.Close()
	checkStore(t, r)
	if got := contents(r); !slices.Equal(got, want) {
		t.Errorf("reopened contents differ:\n got %v\nwant %v", short(got), short(want))
	}
	if got := r.LastApplied(); got != wantApplied {
		t.Errorf("reopened LastApplied = %d, want %d", got, wantApplied)
	}
	if got := r.Owners(); !slices.Equal(got, wantOwners) {
		t.Errorf("reopened Owners = %v, want %v", got, wantOwners)
	}
}

func short(r []memRec) string {
	s := ""
	for i, x := range r {
		if i == 20 {
			return s + " ..."
		}
		s += fmt.Sprintf(" %s/%x", x.h, x.id)
	}
	return s
}

// checkStore verifies the index invariants: the ID index, the selection
// structures, the counts, the owners and their checksums.
func checkStore(t testing.TB, s *Store) {
	t.Helper()
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	owners := map[uint32]*ownerStat{}
	live := 0
	for _, p := range s.order {
		if !p.dead {
			live++
		}
	}
	if live != len(s.pools) {
		t.Errorf("order has %d live pools, map %d", live, len(s.pools))
	}
	for h, p := range s.pools {
		if p.handle != h || p.dead || p.ents.n == 0 {
			t.Errorf("pool %q: handle %q dead %v with %d PEs", h, p.handle, p.dead, p.ents.n)
		}
		n += p.ents.n
		if p.ids.Len() != p.ents.n {
			t.Errorf("pool %q: %d IDs indexed, %d entries", h, p.ids.Len(), p.ents.n)
		}
		var prev uint32
		first := true
		p.ids.ascend(0, 0, func(it *ordItem) bool {
			if !first && it.key <= prev {
				t.Errorf("pool %q: ID index out of order at %x", h, it.key)
			}
			first, prev = false, it.key
			if it.a < 0 || int(it.a) >= p.ents.n || p.ents.at(it.a).id != it.key {
				t.Errorf("pool %q: ID %x indexes slot %d", h, it.key, it.a)
			}
			return true
		})
		for i := int32(0); i < int32(p.ents.n); i++ {
			e := p.ents.at(i)
			if homeOf(e.enc()) != e.home {
				t.Errorf("pool %q PE %x: home %x, encoded %x", h, e.id, e.home, homeOf(e.enc()))
			}
			el, err := decodeElement(e.enc())
			if err != nil {
				t.Errorf("pool %q PE %x: %v", h, e.id, err)
			} else if pmetaOf(&el) != p.meta {
				t.Errorf("pool %q PE %x: meta %v, pool %v", h, e.id, pmetaOf(&el), p.meta)
			}
			o := owners[e.home]
			if o == nil {
				o = &ownerStat{}
				owners[e.home] = o
			}
			o.n++
			o.sum.Add(h, e.id)
		}
		checkSelection(t, p)
	}
	if n != s.nPE {
		t.Errorf("nPE = %d, counted %d", s.nPE, n)
	}
	if len(owners) != len(s.owners) {
		t.Errorf("%d owners, counted %d", len(s.owners), len(owners))
	}
	for id, o := range owners {
		got := s.owners[id]
		if got == nil || got.n != o.n || got.sum.Value() != o.sum.Value() {
			t.Errorf("owner %x: %+v, recomputed %+v", id, got, o)
		}
	}
}

func checkSelection(t testing.TB, p *pool) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.sel {
	case selWeighted:
		if len(p.fw.w) != p.ents.n || p.fw.blk.n() != (p.ents.n+wtreeBlock-1)/wtreeBlock {
			t.Errorf("pool %q: weight tree of %d slots, %d blocks; %d entries", p.handle, len(p.fw.w), p.fw.blk.n(), p.ents.n)
		}
		var total uint64
		for i := int32(0); i < int32(p.ents.n); i++ {
			w := p.weightOf(p.ents.at(i))
			total += uint64(w)
			if got := p.fw.w[i]; got != w {
				t.Errorf("pool %q slot %d: weight %d, want %d", p.handle, i, got, w)
			}
		}
		for b := 0; b < p.fw.blk.n(); b++ {
			var sum uint64
			for _, w := range p.fw.w[b*wtreeBlock : min((b+1)*wtreeBlock, len(p.fw.w))] {
				sum += uint64(w)
			}
			if got := p.fw.blk.weight(b); got != sum {
				t.Errorf("pool %q block %d: sum %d, want %d", p.handle, b, got, sum)
			}
		}
		if total != p.fw.total() {
			t.Errorf("pool %q: total %d, want %d", p.handle, p.fw.total(), total)
		}
	case selBucket:
		seen := 0
		var prev uint32
		first := true
		p.bk.ascend(0, 0, func(it *ordItem) bool {
			if !first && it.key <= prev {
				t.Errorf("pool %q: buckets out of order", p.handle)
			}
			first, prev = false, it.key
			s := it.a
			for j := int32(0); j < it.b; j++ {
				e := p.ents.at(s)
				if e.bkey != it.key {
					t.Errorf("pool %q: entry %x with key %d in bucket %d", p.handle, e.id, e.bkey, it.key)
				}
				if p.base != asap.PolicyWeightedRoundRobin && p.keyOf(e) != e.bkey {
					t.Errorf("pool %q: entry %x key %d, bucket %d", p.handle, e.id, p.keyOf(e), e.bkey)
				}
				if p.ents.at(e.next).prev != s {
					t.Errorf("pool %q: broken ring at slot %d", p.handle, s)
				}
				s = e.next
				seen++
			}
			if s != it.a {
				t.Errorf("pool %q: ring of bucket %d does not close after %d entries", p.handle, it.key, it.b)
			}
			return true
		})
		if seen != p.ents.n {
			t.Errorf("pool %q: %d entries in buckets, %d entries", p.handle, seen, p.ents.n)
		}
	}
}

// homeOf reads the home registrar ID from an encoded Pool Element (0 if
// it does not view: the invariant check then reports a mismatch).
func homeOf(enc string) uint32 {
	v, err := asap.ViewPoolElement(enc)
	if err != nil {
		return 0
	}
	return v.Home()
}

// n is the number of slots of a fenwick tree.
func (f *fenwick) n() int {
	if len(f.t) == 0 {
		return 0
	}
	return len(f.t) - 1
}

// weight returns the weight of one slot of a fenwick tree.
func (f *fenwick) weight(slot int) uint64 {
	return f.prefix(slot+1) - f.prefix(slot)
}

// ---- PE builders ----

func addr4(i uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}

func addr6(i uint32) netip.Addr {
	return netip.AddrFrom16([16]byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)})
}

// mkPE builds a PE with a TCP (data+control) user transport, an SCTP ASAP
// transport and the given policy.
func mkPE(h string, id, home uint32, pol asap.Policy) PE {
	return PE{
		Handle: asap.PoolHandle(h),
		Element: asap.PoolElement{
			ID: id, Home: home, Lifetime: 90000,
			User:   asap.Transport{Kind: asap.ParamTCPTransport, Port: 7, Use: asap.UseDataAndControl, Addrs: []netip.Addr{addr4(id)}},
			Policy: pol,
			ASAP:   asap.Transport{Kind: asap.ParamSCTPTransport, Port: 3863, Addrs: []netip.Addr{addr4(id)}},
		},
		Registered: int64(id) * 1000,
	}
}

func rr() asap.Policy            { return asap.Policy{Type: asap.PolicyRoundRobin} }
func lu(load uint32) asap.Policy { return asap.Policy{Type: asap.PolicyLeastUsed, Load: load} }
func pri(p uint32) asap.Policy   { return asap.Policy{Type: asap.PolicyPriority, Priority: p} }
func wrand(w uint32) asap.Policy { return asap.Policy{Type: asap.PolicyWeightedRandom, Weight: w} }
func wrr(w uint32) asap.Policy   { return asap.Policy{Type: asap.PolicyWeightedRoundRobin, Weight: w} }
func lud(load, deg uint32) asap.Policy {
	return asap.Policy{Type: asap.PolicyLeastUsedDegradation, Load: load, LoadDegradation: deg}
}

func reg(pe PE) Op { return Op{Kind: OpRegister, PE: pe} }
func dereg(h string, id uint32) Op {
	return Op{Kind: OpDeregister, PE: PE{Handle: asap.PoolHandle(h), Element: asap.PoolElement{ID: id}}}
}

// mustApply applies ops and fails on an I/O error or any op error.
func mustApply(t testing.TB, s *Store, index uint64, ops ...Op) []Result {
	t.Helper()
	res, err := s.Apply(index, ops)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("op %d (%s): %v", i, ops[i].Kind, r.Err)
		}
	}
	return res
}

type boltTx = bolt.Tx

// openRawBolt opens a bbolt file directly, to damage it.
func openRawBolt(t testing.TB, path string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	return db
}
