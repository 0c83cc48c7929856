package store

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/rserpool-go/registrar/asap"
)

// poolOf registers one PE per policy in a fresh memory store; IDs are 1..n.
func poolOf(t testing.TB, pols ...asap.Policy) *Store {
	t.Helper()
	s := OpenMemory(nil)
	var ops []Op
	for i, p := range pols {
		ops = append(ops, reg(mkPE("P", uint32(i+1), 1, p)))
	}
	mustApply(t, s, 0, ops...)
	return s
}

// counts resolves rounds times n PEs and counts the selections per ID,
// failing on a duplicate within one resolution.
func counts(t testing.TB, s *Store, n, rounds int, rnd Rand) map[uint32]int {
	t.Helper()
	c := map[uint32]int{}
	for r := 0; r < rounds; r++ {
		pes, _, err := s.Resolve("P", n, rnd)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[uint32]bool{}
		for _, pe := range pes {
			if seen[pe.ID] {
				t.Fatalf("round %d: PE %d twice in %v", r, pe.ID, ids(pes))
			}
			seen[pe.ID] = true
			c[pe.ID]++
		}
	}
	return c
}

func ids(pes []asap.PoolElement) []uint32 {
	out := make([]uint32, len(pes))
	for i, pe := range pes {
		out[i] = pe.ID
	}
	return out
}

// sequence resolves rounds times n PEs and returns the IDs in order.
func sequence(t testing.TB, s *Store, n, rounds int) []uint32 {
	t.Helper()
	var out []uint32
	for r := 0; r < rounds; r++ {
		pes, _, err := s.Resolve("P", n, nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ids(pes)...)
	}
	return out
}

// Ensure that round robin visits every PE equally.
func TestResolve_RoundRobin(t *testing.T) {
	pols := make([]asap.Policy, 10)
	for i := range pols {
		pols[i] = rr()
	}
	s := poolOf(t, pols...)
	for _, n := range []int{1, 3, 7, 10} {
		c := counts(t, s, n, 100, nil)
		for id := uint32(1); id <= 10; id++ {
			if c[id] != 10*n {
				t.Errorf("n=%d: PE %d chosen %d times, want %d", n, id, c[id], 10*n)
			}
		}
	}
	if got := sequence(t, s, 4, 3); len(got) != 12 || got[0] == got[1] {
		t.Errorf("sequence %v", got)
	}
}

// Ensure that weighted round robin serves each PE in proportion to its
// weight, every round.
func TestResolve_WeightedRoundRobin(t *testing.T) {
	s := poolOf(t, wrr(1), wrr(2), wrr(3), wrr(4), wrr(0))
	c := counts(t, s, 1, 1100, nil) // 11 per round (weight 0 counts as 1)
	want := map[uint32]int{1: 100, 2: 200, 3: 300, 4: 400, 5: 100}
	for id, w := range want {
		if c[id] != w {
			t.Errorf("PE %d chosen %d times, want %d (all %v)", id, c[id], w, c)
		}
	}
	// A PE that joins gets its share from the current round on.
	mustApply(t, s, 0, reg(mkPE("P", 6, 1, wrr(2))))
	// With n=2 a resolution may take the last pick of one round and the
	// first of the next, so a count may be one ahead or behind.
	c = counts(t, s, 2, 1300, nil)
	for id, w := range map[uint32]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 1, 6: 2} {
		if d := c[id] - 200*w; d < -1 || d > 1 {
			t.Errorf("after a join: PE %d chosen %d times, want %d±1 (all %v)", id, c[id], 200*w, c)
		}
	}
}

// chiSquare checks observed counts against expected probabilities with a
// generous bound (the seeds are fixed, so this is deterministic).
func chiSquare(t *testing.T, c map[uint32]int, p map[uint32]float64, total int) {
	t.Helper()
	x := 0.0
	for id, pi := range p {
		e := pi * float64(total)
		d := float64(c[id]) - e
		x += d * d / e
	}
	// df = len(p)-1; the 99.9 % quantile is below 3*df+20 for small df.
	if bound := 3*float64(len(p)-1) + 20; x > bound {
		t.Errorf("chi-square %.1f > %.1f: counts %v, probabilities %v", x, bound, c, p)
	}
}

// Ensure that the random policies follow their distributions.
func TestResolve_RandomDistributions(t *testing.T) {
	const max = 0xFFFFFFFF
	tests := []struct {
		name string
		pols []asap.Policy
		w    []float64
	}{
		{"rand", []asap.Policy{{Type: asap.PolicyRandom}, {Type: asap.PolicyRandom}, {Type: asap.PolicyRandom}, {Type: asap.PolicyRandom}}, []float64{1, 1, 1, 1}},
		{"wrand", []asap.Policy{wrand(1), wrand(2), wrand(3), wrand(10)}, []float64{1, 2, 3, 10}},
		{"wrand-dpf", []asap.Policy{{Type: asap.PolicyWeightedRandomDPF, Weight: 1, WeightDPF: 100, Distance: 5}, {Type: asap.PolicyWeightedRandomDPF, Weight: 3}}, []float64{1, 3}},
		{"rlu", []asap.Policy{
			{Type: asap.PolicyRandomizedLeastUsed, Load: 0},
			{Type: asap.PolicyRandomizedLeastUsed, Load: max / 2},
			{Type: asap.PolicyRandomizedLeastUsed, Load: max / 4 * 3},
		}, []float64{4, 2, 1}},
		{"rplu", []asap.Policy{
			{Type: asap.PolicyRandomizedPriorityLeastUsed, Load: 0, LoadDegradation: max / 2},
			{Type: asap.PolicyRandomizedPriorityLeastUsed, Load: 0},
		}, []float64{1, 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := poolOf(t, tc.pols...)
			rnd := rand.New(rand.NewPCG(7, 11))
			const total = 40000
			c := counts(t, s, 1, total, rnd)
			sum := 0.0
			for _, w := range tc.w {
				sum += w
			}
			p := map[uint32]float64{}
			for i, w := range tc.w {
				p[uint32(i+1)] = w / sum
			}
			chiSquare(t, c, p, total)
		})
	}
}

// Ensure that randomized LU with degradation hands out less to a PE the
// more it was chosen, until its load is reported again.
func TestResolve_RandomizedDegradation(t *testing.T) {
	const max = 0xFFFFFFFF
	s := poolOf(t,
		asap.Policy{Type: asap.PolicyRandomizedLeastUsedDegradation, Load: 0, LoadDegradation: max / 8},
		asap.Policy{Type: asap.PolicyRandomizedLeastUsedDegradation, Load: max / 2, LoadDegradation: 0})
	rnd := rand.New(rand.NewPCG(1, 2))
	c := counts(t, s, 1, 2000, rnd)
	// PE 1 starts twice as likely, but each pick costs it 1/8: it can be
	// picked only about 4-7 times before its weight hits the floor.
	if c[1] > 10 || c[2] < 1990 {
		t.Errorf("counts %v: PE 1 should degrade quickly", c)
	}
	// Re-registration clears the accumulated degradation.
	mustApply(t, s, 0, reg(mkPE("P", 1, 1, asap.Policy{Type: asap.PolicyRandomizedLeastUsedDegradation, Load: 0, LoadDegradation: max / 8})))
	pes, _, _ := s.Resolve("P", 2, rnd)
	if len(pes) != 2 {
		t.Errorf("got %d PEs", len(pes))
	}
	checkStore(t, s)
}

// Ensure that priority picks the highest priority and rotates among equals.
func TestResolve_Priority(t *testing.T) {
	s := poolOf(t, pri(1), pri(5), pri(5), pri(3), pri(5))
	if got := sequence(t, s, 1, 6); !slices.Equal(got, []uint32{2, 3, 5, 2, 3, 5}) {
		t.Errorf("n=1: %v, want 2 3 5 rotating", got)
	}
	if got := sequence(t, s, 4, 2); !slices.Equal(got, []uint32{2, 3, 5, 4, 2, 3, 5, 4}) {
		t.Errorf("n=4: %v", got)
	}
	if got := sequence(t, s, 2, 3); !slices.Equal(got, []uint32{2, 3, 5, 2, 3, 5}) {
		t.Errorf("n=2: %v", got)
	}
}

// Ensure that least used picks the lowest load and rotates among equals,
// and that a new load report moves the PE.
func TestResolve_LeastUsed(t *testing.T) {
	for _, typ := range []asap.PolicyType{asap.PolicyLeastUsed, asap.PolicyLeastUsedDPF} {
		t.Run(typ.String(), func(t *testing.T) {
			mk := func(l uint32) asap.Policy { return asap.Policy{Type: typ, Load: l} }
			s := poolOf(t, mk(3), mk(1), mk(1), mk(2), mk(1))
			if got := sequence(t, s, 1, 6); !slices.Equal(got, []uint32{2, 3, 5, 2, 3, 5}) {
				t.Errorf("n=1: %v", got)
			}
			if got := sequence(t, s, 5, 1); !slices.Equal(got, []uint32{2, 3, 5, 4, 1}) {
				t.Errorf("n=5: %v", got)
			}
			mustApply(t, s, 0, reg(mkPE("P", 1, 1, mk(0))))
			if got := sequence(t, s, 2, 2); !slices.Equal(got, []uint32{1, 2, 1, 3}) {
				t.Errorf("after PE 1 reports load 0: %v", got)
			}
		})
	}
}

// Ensure that LUD adds the degradation each time it hands a PE out, and
// that PLU treats it as a static penalty.
func TestResolve_Degradation(t *testing.T) {
	s := poolOf(t, lud(0, 10), lud(5, 10), lud(100, 0))
	if got := sequence(t, s, 1, 6); !slices.Equal(got, []uint32{1, 2, 1, 2, 1, 2}) {
		t.Errorf("LUD: %v", got)
	}
	// Keys are now 30 and 35, PE 3 has 100.
	if got := sequence(t, s, 3, 1); !slices.Equal(got, []uint32{1, 2, 3}) {
		t.Errorf("LUD n=3: %v", got)
	}
	// Re-registration clears PE 1's accumulated degradation.
	mustApply(t, s, 0, reg(mkPE("P", 1, 1, lud(0, 10))))
	if got := sequence(t, s, 1, 1); !slices.Equal(got, []uint32{1}) {
		t.Errorf("after re-registration: %v", got)
	}

	plu := func(l, d uint32) asap.Policy {
		return asap.Policy{Type: asap.PolicyPriorityLeastUsed, Load: l, LoadDegradation: d}
	}
	s = poolOf(t, plu(0, 10), plu(5, 0), plu(5, 5))
	// The degradation is static: PE 2 (5) always first, then 1 and 3 (10)
	// in turn.
	if got := sequence(t, s, 1, 2); !slices.Equal(got, []uint32{2, 2}) {
		t.Errorf("PLU n=1: %v", got)
	}
	if got := sequence(t, s, 2, 2); !slices.Equal(got, []uint32{2, 1, 2, 3}) {
		t.Errorf("PLU n=2: %v", got)
	}
	plud := func(l, d uint32) asap.Policy {
		return asap.Policy{Type: asap.PolicyPriorityLeastUsedDegradation, Load: l, LoadDegradation: d}
	}
	s = poolOf(t, plud(0, 10), plud(15, 1))
	// Keys: 10 / 16 -> 1 (now 20), 2 (now 17), 2 (18), 2 (19), 2 (20), 1 ...
	if got := sequence(t, s, 1, 6); !slices.Equal(got, []uint32{1, 2, 2, 2, 2, 1}) {
		t.Errorf("PLUD: %v", got)
	}
	luddpf := asap.Policy{Type: asap.PolicyLeastUsedDegradationDPF, Load: 0, LoadDegradation: 1, LoadDPF: 7, Distance: 9}
	s = poolOf(t, luddpf, luddpf)
	if got := sequence(t, s, 1, 4); !slices.Equal(got, []uint32{1, 2, 1, 2}) {
		t.Errorf("LUD-DPF: %v", got)
	}
}

// Ensure that no policy returns a PE twice in one resolution, whatever n,
// and that the returned policy is the first PE's.
func TestResolve_Distinct(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 3))
	for _, typ := range []asap.PolicyType{
		asap.PolicyRoundRobin, asap.PolicyWeightedRoundRobin, asap.PolicyRandom, asap.PolicyWeightedRandom,
		asap.PolicyPriority, asap.PolicyLeastUsed, asap.PolicyLeastUsedDegradation, asap.PolicyPriorityLeastUsed,
		asap.PolicyRandomizedLeastUsed, asap.PolicyRandomizedPriorityLeastUsed, asap.PolicyRandomizedLeastUsedDegradation,
		asap.PolicyPriorityLeastUsedDegradation, asap.PolicyRandomizedPriorityLeastUsedDegradation,
		asap.PolicyWeightedRandomDPF, asap.PolicyLeastUsedDPF, asap.PolicyLeastUsedDegradationDPF,
		asap.PolicyPriorityLeastUsedDPF, asap.PolicyPriorityLeastUsedDegradationDPF,
	} {
		t.Run(typ.String(), func(t *testing.T) {
			for _, size := range []int{1, 2, 5, 40} {
				s := OpenMemory(nil)
				var ops []Op
				for i := 0; i < size; i++ {
					p := asap.Policy{Type: typ}
					switch basePolicy(typ) {
					case asap.PolicyWeightedRoundRobin, asap.PolicyWeightedRandom:
						p.Weight = rnd.Uint32N(4)
					case asap.PolicyPriority:
						p.Priority = rnd.Uint32N(3)
					default:
						if typ.Adaptive() {
							p.Load = rnd.Uint32N(3) << 30
						}
						if typ != asap.PolicyLeastUsed && typ != asap.PolicyRandomizedLeastUsed && typ.Adaptive() && typ != asap.PolicyLeastUsedDPF {
							p.LoadDegradation = rnd.Uint32N(3) << 28
						}
					}
					ops = append(ops, reg(mkPE("P", uint32(i+1)*3, 1, p)))
				}
				mustApply(t, s, 0, ops...)
				for n := 0; n <= size+2; n++ {
					for r := 0; r < 5; r++ {
						pes, pol, err := s.Resolve("P", n, rnd)
						if err != nil {
							t.Fatal(err)
						}
						want := min(max(n, 1), size)
						if len(pes) != want {
							t.Fatalf("size %d n %d: %d PEs, want %d", size, n, len(pes), want)
						}
						got := ids(pes)
						slices.Sort(got)
						if len(slices.Compact(got)) != want {
							t.Fatalf("size %d n %d: duplicates in %v", size, n, ids(pes))
						}
						if !reflect.DeepEqual(pol, pes[0].Policy) {
							t.Fatalf("policy %+v, first PE's %+v", pol, pes[0].Policy)
						}
					}
				}
				checkStore(t, s)
			}
		})
	}
}

// Ensure that Resolve sees registrations and deregistrations at once, and
// that a pool whose only member changes policy selects by the new one.
func TestResolve_SeesChanges(t *testing.T) {
	s := poolOf(t, rr(), rr())
	mustApply(t, s, 0, reg(mkPE("P", 3, 1, rr())))
	c := counts(t, s, 3, 1, nil)
	if len(c) != 3 {
		t.Errorf("after register: %v", c)
	}
	mustApply(t, s, 0, dereg("P", 1), dereg("P", 3))
	if got := sequence(t, s, 3, 2); !slices.Equal(got, []uint32{2, 2}) {
		t.Errorf("after deregister: %v", got)
	}
	mustApply(t, s, 0, reg(mkPE("P", 2, 1, pri(9))))
	_, pol, err := s.Resolve("P", 1, nil)
	if err != nil || pol.Type != asap.PolicyPriority || pol.Priority != 9 {
		t.Errorf("after the sole member changed: %+v, %v", pol, err)
	}
	mustApply(t, s, 0, dereg("P", 2))
	if _, _, err := s.Resolve("P", 1, nil); err == nil {
		t.Error("Resolve of an emptied pool succeeded")
	}
}

// Ensure that ResolveAppend produces exactly the message the codec
// encodes from an equivalent Resolve: the pool handle, the policy and the
// PEs without their ASAP transport.
func TestResolveAppend(t *testing.T) {
	for _, pol := range []asap.Policy{rr(), lu(7), lud(3, 4), {Type: asap.PolicyWeightedRandomDPF, Weight: 5, WeightDPF: 6, Distance: 7}} {
		a, b := OpenMemory(nil), OpenMemory(nil)
		var ops []Op
		for i := uint32(1); i <= 5; i++ {
			pe := mkPE("P", i, 1, pol)
			if i == 2 {
				pe.Element.User = asap.Transport{Kind: asap.ParamTCPTransport, Port: 1, Use: 1, Addrs: []netip.Addr{addr6(i)}}
				pe.Element.ASAP.Addrs = append(pe.Element.ASAP.Addrs, addr6(i))
			}
			ops = append(ops, reg(pe))
		}
		mustApply(t, a, 0, ops...)
		mustApply(t, b, 0, ops...)
		for r := 0; r < 4; r++ {
			pes, p, err := a.Resolve("P", 3, rand.New(rand.NewPCG(uint64(r), 0)))
			if err != nil {
				t.Fatal(err)
			}
			for i := range pes {
				pes[i].ASAP = asap.Transport{}
			}
			want, err := asap.Append([]byte{0xAA}, &asap.HandleResolutionResponse{PoolHandle: "P", Policy: p, PEs: pes})
			if err != nil {
				t.Fatal(err)
			}
			got, n, err := b.ResolveAppend([]byte{0xAA}, "P", 3, rand.New(rand.NewPCG(uint64(r), 0)))
			if err != nil || n != 3 || !slices.Equal(got, want) {
				t.Fatalf("%s: ResolveAppend = %x, %d, %v; want %x", pol.Type, got, n, err, want)
			}
		}
	}
	if _, _, err := OpenMemory(nil).ResolveAppend(nil, "none", 1, nil); !errors.Is(err, ErrPoolNotFound) {
		t.Errorf("ResolveAppend of a missing pool: %v, want ErrPoolNotFound", err)
	}
}

// Ensure the registrar's resolution path allocates nothing when the
// buffer has room, for every selection structure.
func TestResolveAppend_NoAllocations(t *testing.T) {
	for _, pol := range []asap.Policy{rr(), {Type: asap.PolicyRandom}, lu(3), wrand(2), pri(1), wrr(2)} {
		s := OpenMemory(nil)
		var ops []Op
		for i := uint32(1); i <= 20; i++ {
			ops = append(ops, reg(mkPE("P", i, 1, pol)))
		}
		mustApply(t, s, 0, ops...)
		rnd := rand.New(rand.NewPCG(1, 2))
		buf := make([]byte, 0, 1024)
		allocs := testing.AllocsPerRun(200, func() {
			var err error
			if buf, _, err = s.ResolveAppend(buf[:0], "P", 3, rnd); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: ResolveAppend of 3 PEs made %v allocations, want 0", pol.Type, allocs)
		}
	}
}

// Ensure that a resolution whose answer would exceed the 16-bit message
// length answers with as many PEs as fit instead of failing (the
// registrar used to report such a pool as unknown).
func TestResolveAppend_TruncatesToMessageSize(t *testing.T) {
	s := OpenMemory(nil)
	var ops []Op
	for i := uint32(1); i <= 1000; i++ {
		pe := mkPE("Big", i, 1, rr())
		pe.Element.User = asap.Transport{Kind: asap.ParamSCTPTransport, Port: 7000}
		for j := uint32(0); j < 8; j++ {
			pe.Element.User.Addrs = append(pe.Element.User.Addrs, addr6(i*8+j))
		}
		ops = append(ops, reg(pe))
	}
	mustApply(t, s, 0, ops...)
	got, n, err := s.ResolveAppend(nil, "Big", 1000, nil)
	if err != nil {
		t.Fatalf("ResolveAppend of 1000 large PEs: %v", err)
	}
	if len(got) > asap.DefaultMaxMessageSize || n == 0 || n >= 1000 {
		t.Fatalf("answer of %d bytes with %d PEs; want at most 65535 bytes and some but not all of 1000 PEs", len(got), n)
	}
	m, _, err := asap.Unpack(got, nil)
	if err != nil {
		t.Fatalf("truncated answer does not decode: %v", err)
	}
	if r := m.(*asap.HandleResolutionResponse); len(r.PEs) != n || r.Error != nil {
		t.Fatalf("decoded %d PEs (error %v), ResolveAppend said %d", len(r.PEs), r.Error, n)
	}
	pe1 := mkPE("Big", 1, 1, rr()).Element
	pe1.User = ops[0].PE.Element.User
	pe1.ASAP = asap.Transport{}
	one, _ := asap.AppendPoolElement(nil, &pe1)
	if len(got)+len(one) <= asap.DefaultMaxMessageSize {
		t.Errorf("answer of %d bytes left out a PE of %d bytes that fits", len(got), len(one))
	}
}

// Ensure that concurrent resolutions and writes are safe (run with -race).
func TestResolve_Concurrent(t *testing.T) {
	s := mustOpenStore(t)
	var ops []Op
	for p := 0; p < 4; p++ {
		for i := uint32(1); i <= 50; i++ {
			ops = append(ops, reg(mkPE(fmt.Sprintf("P%d", p), i, 1, []asap.Policy{rr(), lu(i % 5), wrand(i), lud(i, 1)}[p])))
		}
	}
	mustApply(t, s, 1, ops...)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(g), 9))
			buf := make([]byte, 0, 1024)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				h := asap.PoolHandle(fmt.Sprintf("P%d", (g+i)%4))
				if _, _, err := s.Resolve(h, 3, rnd); err != nil {
					t.Error(err)
					return
				}
				buf, _, _ = s.ResolveAppend(buf[:0], h, 3, rnd)
				s.Lookup(h, uint32(1+i%50))
				s.Checksum(1)
				s.Iterate(Cursor{}, 10, nil, func(PE) bool { return true })
			}
		}(g)
	}
	for b := 0; b < 50; b++ {
		p := b % 4
		id := uint32(51 + b)
		pol := []asap.Policy{rr(), lu(id % 5), wrand(id), lud(id, 1)}[p]
		mustApply(t, s, uint64(2+b), reg(mkPE(fmt.Sprintf("P%d", p), id, 2, pol)), dereg(fmt.Sprintf("P%d", p), uint32(1+b)))
	}
	close(stop)
	wg.Wait()
}

// Ensure that the uniform helper is unbiased on a tiny range.
func TestUniform(t *testing.T) {
	rnd := rand.New(rand.NewPCG(5, 5))
	c := map[uint32]int{}
	for i := 0; i < 30000; i++ {
		c[uint32(uniform(rnd, 3))]++
	}
	chiSquare(t, c, map[uint32]float64{0: 1.0 / 3, 1: 1.0 / 3, 2: 1.0 / 3}, 30000)
	if uniform(rnd, 1) != 0 || uniform(rnd, math.MaxUint64) == math.MaxUint64 {
		t.Error("bounds")
	}
}

// Ensure that WRR round numbers wrap around safely: after 2^32 rounds the
// rounds are rebased and the rotation goes on.
func TestResolve_WeightedRoundRobin_Rebase(t *testing.T) {
	s := poolOf(t, wrr(1), wrr(2))
	p := s.pools["P"]
	for slot := int32(0); slot < 2; slot++ {
		p.bucketRemove(slot)
		p.ents.at(slot).bkey = 0xFFFFFFFE
		p.bucketInsert(slot)
	}
	c := counts(t, s, 1, 300, nil)
	if c[1] != 100 || c[2] != 200 {
		t.Errorf("counts across the rebase: %v, want 1:100 2:200", c)
	}
	if k := p.bk.first().key; k > 1000 {
		t.Errorf("rounds not rebased: %d", k)
	}
	checkStore(t, s)
}
