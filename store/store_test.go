package store

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
)

// Ensure that PEs can be registered, updated, looked up and deregistered,
// and that the pool list and counts follow.
func TestStore_Register_Lookup_Deregister(t *testing.T) {
	s := mustOpenStore(t)
	a, b := mkPE("EchoPool", 1, 7, rr()), mkPE("EchoPool", 2, 7, rr())
	c := mkPE("Fractal", 3, 8, lu(5))
	res := mustApply(t, s, 10, reg(a), reg(b), reg(c))
	for i, r := range res {
		if r.Changed != 1 {
			t.Errorf("op %d: Changed = %d, want 1", i, r.Changed)
		}
	}
	if got := s.LastApplied(); got != 10 {
		t.Errorf("LastApplied = %d, want 10", got)
	}
	got, ok := s.Lookup("EchoPool", 2)
	if !ok || got.Element.ID != 2 || got.Registered != b.Registered || got.Element.User.Addrs[0] != addr4(2) {
		t.Errorf("Lookup(EchoPool, 2) = %+v, %v; want %+v", got, ok, b)
	}
	if _, ok := s.Lookup("EchoPool", 3); ok {
		t.Error("Lookup(EchoPool, 3) found a PE of another pool")
	}
	if p, e := s.Counts(); p != 2 || e != 3 {
		t.Errorf("Counts = %d, %d; want 2, 3", p, e)
	}
	wantPools := []PoolInfo{
		{Handle: "Fractal", Policy: asap.PolicyLeastUsed, Transport: asap.ParamTCPTransport, PEs: 1},
		{Handle: "EchoPool", Policy: asap.PolicyRoundRobin, Transport: asap.ParamTCPTransport, PEs: 2},
	}
	if got := s.Pools(); !slices.Equal(got, wantPools) {
		t.Errorf("Pools = %+v, want %+v (length, then bytes)", got, wantPools)
	}

	for i, want := range [][2]bool{{true, true}, {true, false}, {true, true}} {
		if got := [2]bool{res[i].Added, res[i].PoolCreated}; got != want {
			t.Errorf("op %d: Added, PoolCreated = %v, want %v", i, got, want)
		}
	}

	// Update: new lifetime and registration time.
	a2 := a
	a2.Element.Lifetime, a2.Registered = 5000, 99
	if res := mustApply(t, s, 11, reg(a2)); res[0].Added || res[0].PoolCreated {
		t.Errorf("an update reports Added %v, PoolCreated %v; want neither", res[0].Added, res[0].PoolCreated)
	}
	if got, _ := s.Lookup("EchoPool", 1); got.Element.Lifetime != 5000 || got.Registered != 99 {
		t.Errorf("after update: %+v", got)
	}
	if _, e := s.Counts(); e != 3 {
		t.Errorf("update changed the count to %d", e)
	}

	res, err := s.Apply(12, []Op{dereg("EchoPool", 1), dereg("EchoPool", 1), dereg("Nope", 1)})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || res[0].Changed != 1 || res[0].PoolsRemoved != nil {
		t.Errorf("deregister of one of two PEs: %+v, want Changed 1 and no pool removed", res[0])
	}
	for _, r := range res[1:] {
		if !errors.Is(r.Err, ErrPENotFound) || r.Changed != 0 {
			t.Errorf("deregister of a missing PE: %+v, want ErrPENotFound", r)
		}
	}
	ids := []uint32{}
	for _, pe := range s.Pool("EchoPool") {
		ids = append(ids, pe.Element.ID)
	}
	if !slices.Equal(ids, []uint32{2}) {
		t.Errorf("Pool(EchoPool) IDs = %v, want [2]", ids)
	}
	if res := mustApply(t, s, 13, dereg("Fractal", 3)); !slices.Equal(res[0].PoolsRemoved, []asap.PoolHandle{"Fractal"}) {
		t.Errorf("the last PE's deregistration reports pools removed %v, want [Fractal]", res[0].PoolsRemoved)
	}
	if s.Pool("Fractal") != nil {
		t.Error("Pool(Fractal) not nil after its last PE left")
	}
	if _, _, err := s.Resolve("Fractal", 1, nil); !errors.Is(err, ErrPoolNotFound) {
		t.Errorf("Resolve of a removed pool: %v, want ErrPoolNotFound", err)
	}
}

// Ensure that a PE inconsistent with its pool is refused with the right
// sentinel and ASAP cause, and that a sole member may change.
func TestStore_Check_Consistency(t *testing.T) {
	s := mustOpenStore(t)
	mustApply(t, s, 0, reg(mkPE("P", 1, 7, rr())), reg(mkPE("P", 2, 7, rr())), reg(mkPE("S", 1, 7, rr())))

	udp := mkPE("P", 3, 7, rr())
	udp.Element.User = asap.Transport{Kind: asap.ParamUDPTransport, Port: 9, Addrs: []netip.Addr{addr4(3)}}
	dataOnly := mkPE("P", 3, 7, rr())
	dataOnly.Element.User.Use = asap.UseData
	unknown := mkPE("P", 3, 7, asap.Policy{Type: 0x12345678, Raw: []uint32{1}})
	long := mkPE(strings.Repeat("x", 256), 1, 7, rr())
	zero := mkPE("P", 0, 7, rr())
	badUse := mkPE("P", 3, 7, rr())
	badUse.Element.User.Use = 2
	noAddr := mkPE("P", 3, 7, rr())
	noAddr.Element.User.Addrs = nil

	encPE := func(pe PE) []byte { b, _ := asap.AppendPoolElement(nil, &pe.Element); return b }
	encPolicy := func(pe PE) []byte { b, _ := asap.AppendPolicy(nil, &pe.Element.Policy); return b }
	encUser := func(pe PE) []byte { b, _ := asap.AppendTransport(nil, &pe.Element.User); return b }
	// Each refusal with the one Operation Error a registrar answers: the
	// RFC cause and, for the causes that carry it, the offending parameter.
	tests := []struct {
		name  string
		pe    PE
		want  error
		cause asap.CauseCode
		info  func(PE) []byte
	}{
		{"policy", mkPE("P", 3, 7, lu(1)), ErrPolicyMismatch, asap.CauseInconsistentPolicy, encPolicy},
		{"member changes policy", mkPE("P", 1, 7, lu(1)), ErrPolicyMismatch, asap.CauseInconsistentPolicy, encPolicy},
		{"transport", udp, ErrTransportMismatch, asap.CauseInconsistentTransport, encUser},
		{"data/control", dataOnly, ErrDataControlMismatch, asap.CauseInconsistentDataControl, nil},
		{"unknown policy", unknown, ErrInvalidPE, asap.CauseInvalidValues, encPolicy},
		{"id 0", zero, ErrInvalidPE, asap.CauseInvalidValues, encPE},
		{"handle too long", long, ErrInvalidPE, asap.CauseInvalidValues, encPE},
		{"transport use 2", badUse, ErrInvalidPE, asap.CauseInvalidValues, encPE},
		{"no address", noAddr, ErrInvalidPE, asap.CauseInvalidValues, nil}, // cannot be encoded
		{"sole member changes policy", mkPE("S", 1, 7, lu(1)), nil, 0, nil},
		{"new pool", mkPE("Q", 1, 7, lu(1)), nil, 0, nil},
		{"same policy", mkPE("P", 3, 8, rr()), nil, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Check(tc.pe)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Check = %v, want %v", err, tc.want)
			}
			res, aerr := s.Apply(0, []Op{reg(tc.pe)})
			if aerr != nil {
				t.Fatal(aerr)
			}
			if !errors.Is(res[0].Err, tc.want) || (tc.want == nil) != (res[0].Err == nil) {
				t.Fatalf("Apply: %v, want %v", res[0].Err, tc.want)
			}
			if tc.want == nil {
				if res[0].Changed != 1 {
					t.Errorf("Changed = %d, want 1", res[0].Changed)
				}
				return
			}
			if res[0].Changed != 0 {
				t.Errorf("refused op: Changed = %d", res[0].Changed)
			}
			var info []byte
			if tc.info != nil {
				info = tc.info(tc.pe)
			}
			want := asap.NewOperationError(tc.cause, info)
			var checked, applied *asap.OperationError
			if !errors.As(err, &checked) || !errors.As(res[0].Err, &applied) {
				t.Fatalf("Check (%v) or Apply (%v) gives no *asap.OperationError", err, res[0].Err)
			}
			if !reflect.DeepEqual(checked, want) || !reflect.DeepEqual(applied, want) {
				t.Errorf("Operation Error: Check %+v, Apply %+v; want %+v", checked, applied, want)
			}
			if !strings.Contains(err.Error(), "pool") {
				t.Errorf("error %q does not name the pool", err)
			}
		})
	}
	if got := s.Pools(); got[0].Handle != "P" && got[0].Policy != asap.PolicyRoundRobin {
		t.Errorf("pools after refusals: %+v", got)
	}
	if pi := s.Pools(); len(pi) != 3 || pi[2].Handle != "S" || pi[2].Policy != asap.PolicyLeastUsed {
		t.Errorf("Pools = %+v, want S changed to lu", pi)
	}
}

// Ensure that checks within one batch see the earlier ops of the batch.
func TestStore_Apply_BatchOrder(t *testing.T) {
	s := mustOpenStore(t)
	res, err := s.Apply(1, []Op{
		reg(mkPE("P", 1, 7, rr())),
		reg(mkPE("P", 2, 7, lu(0))), // refused: P is rr now
		dereg("P", 1),
		reg(mkPE("P", 2, 7, lu(0))), // P is empty again: accepted
		{Kind: OpReassign, From: 7},
		{Kind: 99},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []error{nil, ErrPolicyMismatch, nil, nil, ErrInvalidOp, ErrInvalidOp}
	for i, r := range res {
		if !errors.Is(r.Err, want[i]) || (want[i] == nil) != (r.Err == nil) {
			t.Errorf("op %d: %v, want %v", i, r.Err, want[i])
		}
	}
	if pi := s.Pools(); len(pi) != 1 || pi[0].Policy != asap.PolicyLeastUsed || pi[0].PEs != 1 {
		t.Errorf("Pools = %+v", pi)
	}
}

// Ensure that OpReassign deals an owner's PEs evenly and deterministically
// over the targets, whatever the insertion order, and keeps checksums.
func TestStore_Reassign(t *testing.T) {
	var pes []PE
	for p := 0; p < 5; p++ {
		for i := 1; i <= 7; i++ {
			pes = append(pes, mkPE(fmt.Sprintf("pool-%d", p), uint32(i*13), 1, rr()))
		}
	}
	pes = append(pes, mkPE("pool-0", 1000, 2, rr()), mkPE("other", 5, 3, rr()))

	var first []PE
	for seed := uint64(1); seed <= 3; seed++ {
		s := mustOpenStore(t)
		shuffled := slices.Clone(pes)
		rand.New(rand.NewPCG(seed, 0)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		var ops []Op
		for _, pe := range shuffled {
			ops = append(ops, reg(pe))
		}
		mustApply(t, s, 1, ops...)
		before2 := s.Checksum(2)
		res := mustApply(t, s, 2, Op{Kind: OpReassign, From: 1, To: []uint32{4, 2, 3, 4}})
		if res[0].Changed != 35 || len(res[0].PEs) != 35 {
			t.Errorf("Changed = %d, %d PEs reported moved, want 35", res[0].Changed, len(res[0].PEs))
		}
		for _, pe := range res[0].PEs {
			if now, _ := s.Lookup(pe.Handle, pe.Element.ID); pe.Element.Home == 1 || now.Element.Home != pe.Element.Home {
				t.Errorf("reported moved %s/%d to %d, the store has it at %d", pe.Handle, pe.Element.ID, pe.Element.Home, now.Element.Home)
			}
		}
		if got := s.Owned(1); len(got) != 0 {
			t.Errorf("owner 1 still has %d PEs", len(got))
		}
		if s.Checksum(1) != 0xFFFF {
			t.Errorf("Checksum(1) = %#x, want 0xffff", s.Checksum(1))
		}
		counts := map[uint32]int{}
		for _, o := range []uint32{2, 3, 4} {
			counts[o] = len(s.Owned(o))
		}
		// 35 PEs over 3 targets: 12, 12, 11 (+1 already owned by 2 and 3).
		if counts[2] != 13 || counts[3] != 13 || counts[4] != 11 {
			t.Errorf("spread = %v, want 2:13 3:13 4:11", counts)
		}
		if s.Checksum(2) == before2 {
			t.Error("Checksum(2) did not change")
		}
		var all []PE
		s.Iterate(Cursor{}, 0, nil, func(pe PE) bool { all = append(all, pe); return true })
		if first == nil {
			first = all
		} else if !slices.EqualFunc(all, first, func(a, b PE) bool {
			return a.Handle == b.Handle && a.Element.ID == b.Element.ID && a.Element.Home == b.Element.Home
		}) {
			t.Errorf("seed %d: reassignment differs with another insertion order", seed)
		}
		// The deal order: owner 1's PEs in (handle, ID) order go 2, 3, 4, 2, ...
		i := 0
		for _, pe := range all {
			if pe.Handle == "other" || pe.Element.ID == 1000 {
				continue
			}
			if want := []uint32{2, 3, 4}[i%3]; pe.Element.Home != want {
				t.Errorf("%s/%d: home %d, want %d", pe.Handle, pe.Element.ID, pe.Element.Home, want)
			}
			i++
		}
	}
}

// Ensure that OpDeleteOwner removes exactly that owner's PEs and OpReset
// everything.
func TestStore_DeleteOwner_Reset(t *testing.T) {
	s := mustOpenStore(t)
	mustApply(t, s, 1,
		reg(mkPE("A", 1, 1, rr())), reg(mkPE("A", 2, 2, rr())),
		reg(mkPE("B", 1, 1, lu(3))), reg(mkPE("C", 9, 3, wrand(2))))
	res := mustApply(t, s, 2, Op{Kind: OpDeleteOwner, From: 1}, Op{Kind: OpDeleteOwner, From: 42})
	if res[0].Changed != 2 || res[1].Changed != 0 {
		t.Errorf("Changed = %d, %d; want 2, 0", res[0].Changed, res[1].Changed)
	}
	if p, e := s.Counts(); p != 2 || e != 2 {
		t.Errorf("Counts = %d, %d; want 2, 2", p, e)
	}
	var gone []string
	for _, pe := range res[0].PEs {
		gone = append(gone, fmt.Sprintf("%s/%d@%d", pe.Handle, pe.Element.ID, pe.Element.Home))
	}
	if want := []string{"A/1@1", "B/1@1"}; !slices.Equal(gone, want) || !slices.Equal(res[0].PoolsRemoved, []asap.PoolHandle{"B"}) {
		t.Errorf("delete-owner reports PEs %v and removed pools %v, want %v and [B]", gone, res[0].PoolsRemoved, want)
	}
	if got := s.Owners(); !slices.Equal(got, []uint32{2, 3}) {
		t.Errorf("Owners = %v", got)
	}
	res = mustApply(t, s, 3, Op{Kind: OpReset}, reg(mkPE("D", 4, 5, rr())))
	if res[0].Changed != 2 {
		t.Errorf("reset Changed = %d, want 2", res[0].Changed)
	}
	if p, e := s.Counts(); p != 1 || e != 1 {
		t.Errorf("after reset: Counts = %d, %d; want 1, 1", p, e)
	}
	if got := s.Owners(); !slices.Equal(got, []uint32{5}) {
		t.Errorf("Owners = %v", got)
	}
}

// Ensure that the per-owner checksum matches asap's test values through
// adds, removes and reassignments.
func TestStore_Checksum(t *testing.T) {
	s := mustOpenStore(t)
	if got := s.Checksum(1); got != 0xFFFF {
		t.Errorf("empty: %#x, want 0xffff", got)
	}
	mustApply(t, s, 0, reg(mkPE("EchoPool", 0x12345678, 1, rr())))
	if got := s.Checksum(1); got != 0x29A5 {
		t.Errorf("EchoPool/0x12345678: %#x, want 0x29a5", got)
	}
	mustApply(t, s, 0, reg(mkPE("Fractal", 0x0A0B0C0D, 1, rr())))
	if got := s.Checksum(1); got != 0x8B55 {
		t.Errorf("both: %#x, want 0x8b55", got)
	}
	mustApply(t, s, 0, dereg("EchoPool", 0x12345678))
	if got := s.Checksum(1); got != 0x61B0 {
		t.Errorf("Fractal/0x0A0B0C0D: %#x, want 0x61b0", got)
	}
	mustApply(t, s, 0, reg(mkPE("EchoPool", 0x12345678, 2, rr())), Op{Kind: OpReassign, From: 2, To: []uint32{1}})
	if got := s.Checksum(1); got != 0x8B55 {
		t.Errorf("after reassign: %#x, want 0x8b55", got)
	}
	if got := s.Checksum(2); got != 0xFFFF {
		t.Errorf("owner 2 after reassign: %#x, want 0xffff", got)
	}
}

// Ensure that Iterate pages through the handlespace in order, with and
// without owner filter, across pool boundaries, without duplicates or
// gaps, and terminates, also when PEs come and go between pages.
func TestStore_Iterate_Paging(t *testing.T) {
	s := mustOpenStore(t)
	var ops []Op
	var want, want2 []memRec
	handles := []string{"a", "b", "zz", "ab", "\x00\xff", "longer-handle"}
	for _, h := range handles {
		for i := uint32(1); i <= 9; i++ {
			home := 1 + i%3
			ops = append(ops, reg(mkPE(h, i*7, home, rr())))
		}
	}
	mustApply(t, s, 1, ops...)
	for _, r := range contents(s) {
		want = append(want, r)
		if homeOf(r.enc) == 2 {
			want2 = append(want2, r)
		}
	}
	// The order is (length, bytes, id).
	if want[0].h != "a" || want[9].h != "b" || want[18].h != "zz" && want[18].h != "\x00\xff" {
		t.Errorf("order starts %v", short(want))
	}
	for _, limit := range []int{1, 2, 5, 9, 10, 1000} {
		for _, owner := range []*uint32{nil, ptr(uint32(2)), ptr(uint32(99))} {
			exp := want
			if owner != nil {
				exp = want2
				if *owner == 99 {
					exp = nil
				}
			}
			var got []memRec
			cur := Cursor{}
			for pages := 0; ; pages++ {
				if pages > 1000 {
					t.Fatalf("limit %d: paging does not terminate", limit)
				}
				n := 0
				next, more := s.Iterate(cur, limit, owner, func(pe PE) bool {
					enc, _ := asap.AppendPoolElement(nil, &pe.Element)
					got = append(got, memRec{pe.Handle, pe.Element.ID, string(enc), pe.Registered})
					n++
					return true
				})
				if n > limit {
					t.Fatalf("page of %d with limit %d", n, limit)
				}
				if !more {
					break
				}
				if n == 0 {
					t.Fatalf("limit %d: empty page with more", limit)
				}
				cur = next
			}
			if !slices.Equal(got, exp) {
				t.Errorf("limit %d owner %v: got %v, want %v", limit, owner, short(got), short(exp))
			}
		}
	}

	// Changes between pages: the cursor's own PE and pool vanish.
	cur, more := s.Iterate(Cursor{}, 12, nil, func(PE) bool { return true })
	if !more || cur.Handle != "b" || cur.ID != 21 {
		t.Fatalf("cursor after 12 = %+v, %v", cur, more)
	}
	var del []Op
	for i := uint32(1); i <= 9; i++ {
		del = append(del, dereg("b", i*7))
	}
	mustApply(t, s, 2, del...)
	var rest []asap.PoolHandle
	s.Iterate(cur, 0, nil, func(pe PE) bool { rest = append(rest, pe.Handle); return true })
	if len(rest) != 36 || rest[0] != "\x00\xff" {
		t.Errorf("after removing the cursor's pool: %d PEs starting %q, want 36 from \"\\x00\\xff\"", len(rest), rest[0])
	}
	// fn returning false stops there.
	n := 0
	cur, more = s.Iterate(Cursor{}, 0, nil, func(PE) bool { n++; return n < 3 })
	if n != 3 || !more || cur.Handle != "a" || cur.ID != 21 {
		t.Errorf("stop after 3: n=%d cursor %+v more %v", n, cur, more)
	}
}

func ptr[T any](v T) *T { return &v }

// Ensure that what Apply wrote survives Close and Open, including the
// applied index.
func TestStore_Reopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hs.db")
	s, err := Open(path, &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, 5, reg(mkPE("A", 1, 1, lud(10, 5))), reg(mkPE("B", 2, 1, pri(3))), reg(mkPE("A", 3, 2, lud(1, 1))))
	mustApply(t, s, 6, dereg("A", 1))
	mustApply(t, s, 0, reg(mkPE("C", 4, 4, wrr(2))))
	want := contents(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.Apply(7, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Apply after Close: %v, want ErrClosed", err)
	}
	if err := s.Check(mkPE("A", 1, 1, rr())); !errors.Is(err, ErrClosed) {
		t.Errorf("Check after Close: %v", err)
	}
	if err := s.View(func(*ReadView) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("View after Close: %v", err)
	}
	r := mustOpenStoreAt(t, path)
	if got := contents(r); !slices.Equal(got, want) {
		t.Errorf("reopened: %v, want %v", short(got), short(want))
	}
	if r.LastApplied() != 6 {
		t.Errorf("LastApplied = %d, want 6", r.LastApplied())
	}
}

// Ensure that a second opener fails with ErrLocked after the timeout.
func TestStore_Open_Locked(t *testing.T) {
	s := mustOpenStore(t)
	start := time.Now()
	_, err := Open(s.Path(), &Options{Timeout: 100 * time.Millisecond})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), s.Path()) {
		t.Errorf("second Open = %v, want ErrLocked naming the file", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("second Open took %v", d)
	}
}

// Ensure that damaged files are refused with an error naming the file,
// and are left unchanged.
func TestStore_Open_Corrupt(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	s, err := Open(good, &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	var ops []Op
	for i := uint32(1); i <= 300; i++ {
		ops = append(ops, reg(mkPE(fmt.Sprintf("pool-%d", i%7), i, 1, rr())))
	}
	mustApply(t, s, 1, ops...)
	s.Close()
	goodBytes, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}

	badValue := func(t *testing.T, path string) {
		copyFile(t, good, path)
		db := openRawBolt(t, path)
		if err := db.Update(func(tx *boltTx) error {
			return tx.Bucket(bucketPEs).Put(peKey("pool-1", 1), []byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 3})
		}); err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
	foreign := func(t *testing.T, path string) {
		db := openRawBolt(t, path)
		if err := db.Update(func(tx *boltTx) error { _, err := tx.CreateBucket([]byte("logs")); return err }); err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
	newer := func(t *testing.T, path string) {
		copyFile(t, good, path)
		db := openRawBolt(t, path)
		if err := db.Update(func(tx *boltTx) error {
			return tx.Bucket(bucketMeta).Put(keyFormat, []byte{0, 0, 0, 0, 0, 0, 0, 9})
		}); err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
	mixed := func(t *testing.T, path string) {
		copyFile(t, good, path)
		db := openRawBolt(t, path)
		pe := mkPE("pool-1", 1, 1, lu(1))
		enc, _ := asap.AppendPoolElement(nil, &pe.Element)
		e, err := newEntry(string(enc), 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(func(tx *boltTx) error { return tx.Bucket(bucketPEs).Put(peKey("pool-1", 1), peValue(&e)) }); err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
	tests := []struct {
		name string
		make func(t *testing.T, path string)
		want error
	}{
		{"garbage", func(t *testing.T, p string) { writeFile(t, p, []byte(strings.Repeat("not a database ", 1000))) }, ErrCorrupt},
		{"short garbage", func(t *testing.T, p string) { writeFile(t, p, []byte("xyz")) }, ErrCorrupt},
		{"truncated", func(t *testing.T, p string) { writeFile(t, p, goodBytes[:len(goodBytes)/2]) }, ErrCorrupt},
		{"first page only", func(t *testing.T, p string) { writeFile(t, p, goodBytes[:4096]) }, ErrCorrupt},
		{"corrupt PE value", badValue, ErrCorrupt},
		{"mixed policies", mixed, ErrCorrupt},
		{"foreign bbolt file", foreign, ErrCorrupt},
		{"newer format", newer, ErrVersion},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.db")
			tc.make(t, path)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			s, err := Open(path, &Options{NoSync: true, Timeout: time.Second})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("Open = %v, want %v naming %s", err, tc.want, path)
			}
			t.Log(err)
			after, _ := os.ReadFile(path)
			if !slices.Equal(before, after) {
				t.Error("Open changed the file")
			}
		})
	}
	if _, err := Open(dir, nil); err == nil {
		t.Error("Open of a directory succeeded")
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, b)
}

// Ensure that an I/O failure in Apply (no group commit) leaves memory as
// it was, faults the store, refuses later batches while the file cannot
// be rewritten, and that the store recovers by itself once it can: the
// rewritten file holds exactly memory at the last applied index.
func TestStore_Apply_IOError(t *testing.T) {
	var failing atomic.Bool
	path := filepath.Join(t.TempDir(), "hs.db")
	s, err := Open(path, &Options{NoSync: true, InjectFault: func(site string) error {
		if failing.Load() {
			return syscall.EIO
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustApply(t, s, 1, reg(mkPE("A", 1, 1, rr())), reg(mkPE("A", 2, 1, rr())), reg(mkPE("B", 1, 2, lu(4))))
	want := contents(s)
	wantSum := s.Checksum(1)
	failing.Store(true)
	batches := [][]Op{
		{reg(mkPE("A", 3, 1, rr())), dereg("A", 1), reg(mkPE("C", 1, 3, rr()))},
		{Op{Kind: OpReassign, From: 1, To: []uint32{5}}},
		{Op{Kind: OpDeleteOwner, From: 1}, reg(mkPE("A", 1, 2, lu(1)))},
		{Op{Kind: OpReset}, reg(mkPE("Z", 1, 1, rr()))},
		{dereg("A", 1), dereg("A", 2), reg(mkPE("A", 9, 9, lu(1))), Op{Kind: OpReset}, reg(mkPE("A", 1, 1, rr()))},
	}
	for i, ops := range batches {
		_, err := s.Apply(uint64(2+i), ops)
		if err == nil || !strings.Contains(err.Error(), s.Path()) || !errors.Is(err, ErrStorageFault) || !errors.Is(err, syscall.EIO) {
			t.Fatalf("batch %d: Apply = %v, want a storage fault naming the file and EIO", i, err)
		}
		if got := contents(s); !slices.Equal(got, want) {
			t.Errorf("batch %d: memory changed: %v, want %v", i, short(got), short(want))
		}
		if s.LastApplied() != 1 || s.Checksum(1) != wantSum {
			t.Errorf("batch %d: LastApplied %d checksum %#x", i, s.LastApplied(), s.Checksum(1))
		}
		if f := s.Fault(); f == nil {
			t.Errorf("batch %d: Fault() = nil after a failed commit", i)
		}
		checkStore(t, s)
	}
	failing.Store(false)
	mustApply(t, s, 2, batches[0]...)
	if f := s.Fault(); f != nil {
		t.Fatalf("Fault() = %v after a successful Apply", f)
	}
	want = contents(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got := contents(r); r.LastApplied() != 2 || !slices.Equal(got, want) {
		t.Errorf("reopened at index %d with %v, want 2 with %v", r.LastApplied(), short(got), short(want))
	}
}

// Ensure that a random mix of operations keeps the index consistent with
// the file and with a model.
func TestStore_RandomOps(t *testing.T) {
	s := mustOpenStore(t)
	mem := OpenMemory(nil)
	rng := rand.New(rand.NewPCG(42, 1))
	policies := []func() asap.Policy{
		rr, func() asap.Policy { return lu(rng.Uint32N(4)) }, func() asap.Policy { return wrand(rng.Uint32N(3)) },
		func() asap.Policy { return lud(rng.Uint32N(100), rng.Uint32N(50)) },
		func() asap.Policy { return wrr(rng.Uint32N(3)) }, func() asap.Policy { return pri(rng.Uint32N(3)) },
		func() asap.Policy {
			return asap.Policy{Type: asap.PolicyRandomizedPriorityLeastUsedDegradation, Load: rng.Uint32(), LoadDegradation: rng.Uint32N(1 << 30)}
		},
	}
	model := map[memKey]PE{}
	for batch := 0; batch < 200; batch++ {
		var ops []Op
		for j := 0; j < 1+rng.IntN(20); j++ {
			h := fmt.Sprintf("p%d", rng.IntN(6))
			id := 1 + rng.Uint32N(30)
			switch r := rng.IntN(100); {
			case r < 60:
				pol := policies[int(h[1]-'0')%len(policies)]() // one policy family per pool
				ops = append(ops, reg(mkPE(h, id, 1+rng.Uint32N(4), pol)))
			case r < 90:
				ops = append(ops, dereg(h, id))
			case r < 96:
				ops = append(ops, Op{Kind: OpReassign, From: 1 + rng.Uint32N(4), To: []uint32{1 + rng.Uint32N(5), 1 + rng.Uint32N(5)}})
			case r < 99:
				ops = append(ops, Op{Kind: OpDeleteOwner, From: 1 + rng.Uint32N(4)})
			default:
				ops = append(ops, Op{Kind: OpReset})
			}
		}
		res, err := s.Apply(uint64(batch+1), ops)
		if err != nil {
			t.Fatal(err)
		}
		res2, _ := mem.Apply(uint64(batch+1), ops)
		for i := range res {
			if (res[i].Err == nil) != (res2[i].Err == nil) || res[i].Changed != res2[i].Changed {
				t.Fatalf("batch %d op %d: file store %+v, memory store %+v", batch, i, res[i], res2[i])
			}
		}
		applyModel(model, ops, res)
		// Resolve a little so that selection state changes too.
		for _, pi := range s.Pools() {
			if _, _, err := s.Resolve(pi.Handle, 1+rng.IntN(4), rng); err != nil {
				t.Fatal(err)
			}
		}
		checkStore(t, s)
		got := contents(s)
		if !slices.Equal(got, contents(mem)) {
			t.Fatalf("batch %d: file and memory stores differ", batch)
		}
		if len(got) != len(model) {
			t.Fatalf("batch %d: %d PEs, model %d", batch, len(got), len(model))
		}
		for _, r := range got {
			pe, ok := model[memKey{r.h, r.id}]
			if !ok || homeOf(r.enc) != pe.Element.Home || r.reg != pe.Registered {
				t.Fatalf("batch %d: %s/%d differs from the model", batch, r.h, r.id)
			}
		}
	}
}

type memKey struct {
	h  asap.PoolHandle
	id uint32
}

// applyModel applies the successful ops to a plain map.
func applyModel(m map[memKey]PE, ops []Op, res []Result) {
	for i, op := range ops {
		if res[i].Err != nil {
			continue
		}
		switch op.Kind {
		case OpRegister:
			m[memKey{op.PE.Handle, op.PE.Element.ID}] = op.PE
		case OpDeregister:
			delete(m, memKey{op.PE.Handle, op.PE.Element.ID})
		case OpDeleteOwner:
			for k, pe := range m {
				if pe.Element.Home == op.From {
					delete(m, k)
				}
			}
		case OpReset:
			clear(m)
		case OpReassign:
			var keys []memKey
			for k, pe := range m {
				if pe.Element.Home == op.From {
					keys = append(keys, k)
				}
			}
			slices.SortFunc(keys, func(a, b memKey) int {
				if c := handleCompare(a.h, b.h); c != 0 {
					return c
				}
				return int(int64(a.id) - int64(b.id))
			})
			to := slices.Compact(slices.Sorted(slices.Values(op.To)))
			for j, k := range keys {
				pe := m[k]
				pe.Element.Home = to[j%len(to)]
				m[k] = pe
			}
		}
	}
}

// Ensure that the memory store needs no file and refuses View.
func TestOpenMemory(t *testing.T) {
	s := OpenMemory(nil)
	mustApply(t, s, 3, reg(mkPE("A", 1, 1, rr())))
	if s.LastApplied() != 3 || s.Path() != "" {
		t.Errorf("LastApplied %d Path %q", s.LastApplied(), s.Path())
	}
	if err := s.View(func(*ReadView) error { return nil }); !errors.Is(err, ErrNoFile) {
		t.Errorf("View = %v, want ErrNoFile", err)
	}
	checkStore(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
