package store

import (
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/rserpool-go/registrar/asap"
)

const maxU32 = 0xFFFFFFFF

// Ensure that the penalised load and weight are the hand-computed ones,
// saturating at the ends of the range.
func TestDPF_Values(t *testing.T) {
	loads := []struct{ load, dpf, dist, want uint32 }{
		{0, 7, 100, 700},
		{600, 1, 60, 660},
		{650, 0, 1000, 650},
		{650, 1000, 0, 650},
		// 1 % per ms (0x028f5c29) at 50 ms: 50 % (0x80000002, the 1 % rounds up).
		{0, 0x028f5c29, 50, 0x80000002},
		// 25 % + 1 % per ms at 100 ms: full.
		{0x40000000, 0x028f5c29, 100, maxU32},
		{maxU32, 1, 1, maxU32},
		{maxU32 - 5, 1, 5, maxU32},
		{maxU32 - 6, 1, 5, maxU32 - 1},
		{0, maxU32, maxU32, maxU32},
	}
	for _, c := range loads {
		if got := dpfLoad(c.load, c.dpf, c.dist); got != c.want {
			t.Errorf("dpfLoad(load %#x, dpf %#x, distance %d) = %#x, want %#x", c.load, c.dpf, c.dist, got, c.want)
		}
	}
	weights := []struct{ w, dpf, dist, want uint32 }{
		{10, 0, 100, 10},
		{10, 100, 0, 10},
		// 0.5 %/ms (0xFFFFFFFF/200 = 21474836) at 100 ms: 1000·0.49999998 = 499.99998, rounds to 500.
		{1000, maxU32 / 200, 100, 500},
		// 1 %/ms at 100 ms: the whole weight, and a weight stays at least 1.
		{1000, maxU32 / 100, 100, 1},
		{1000, maxU32, maxU32, 1},
		// 1000·20·0.0999 %/ms: 0xFFFFFFFF·0.000999 = 4290672 -> 19.98 -> 20: 980.
		{1000, 4290672, 20, 980},
		{maxU32, maxU32, maxU32, 1},
		{maxU32, 1, 1, maxU32 - 1},
		{0, 5, 5, 1},
	}
	for _, c := range weights {
		if got := dpfWeight(c.w, c.dpf, c.dist); got != c.want {
			t.Errorf("dpfWeight(weight %d, dpf %#x, distance %d) = %d, want %d", c.w, c.dpf, c.dist, got, c.want)
		}
	}
}

// Ensure (property) that the penalised values are the exact real-number
// results of RSPLIB's formulas, rounded to nearest and clamped, for random
// values over the whole range and near its ends.
func TestDPF_ValuesProperty(t *testing.T) {
	rnd := rand.New(rand.NewPCG(17, 4))
	pick := func() uint32 {
		switch rnd.IntN(4) {
		case 0:
			return rnd.Uint32N(1000)
		case 1:
			return maxU32 - rnd.Uint32N(1000)
		default:
			return rnd.Uint32()
		}
	}
	max := big.NewInt(maxU32)
	for i := 0; i < 20000; i++ {
		a, dpf, dist := pick(), pick(), pick()
		// load + distance·dpf, clamped.
		l := new(big.Int).Mul(big.NewInt(int64(dist)), big.NewInt(int64(dpf)))
		l.Add(l, big.NewInt(int64(a)))
		if l.Cmp(max) > 0 {
			l.Set(max)
		}
		if got := dpfLoad(a, dpf, dist); uint64(got) != l.Uint64() {
			t.Fatalf("dpfLoad(%#x, %#x, %d) = %#x, want %#x", a, dpf, dist, got, l.Uint64())
		}
		// weight − round(weight·distance·dpf / 0xFFFFFFFF), at least 1.
		num := new(big.Int).Mul(big.NewInt(int64(a)), big.NewInt(int64(dist)))
		num.Mul(num, big.NewInt(int64(dpf)))
		q, r := new(big.Int).QuoRem(num, max, new(big.Int))
		if r.Lsh(r, 1).Cmp(max) > 0 {
			q.Add(q, big.NewInt(1))
		}
		w := new(big.Int).Sub(big.NewInt(int64(a)), q)
		if w.Sign() <= 0 {
			w.SetInt64(1)
		}
		if got := dpfWeight(a, dpf, dist); uint64(got) != w.Uint64() {
			t.Fatalf("dpfWeight(%d, %#x, %d) = %d, want %d", a, dpf, dist, got, w.Uint64())
		}
	}
}

func dpf(typ asap.PolicyType, load, deg, ldpf, dist uint32) asap.Policy {
	return asap.Policy{Type: typ, Load: load, LoadDegradation: deg, LoadDPF: ldpf, Distance: dist}
}

// Ensure that the LU-family DPF policies select by their penalised keys,
// in hand-computed orders: the distance counts like load, the degradation
// as in the base policy.
func TestResolve_DistancePenalty(t *testing.T) {
	// LU-DPF keys: 0+7·100 = 700, 650, 600+1·60 = 660.
	s := poolOf(t, dpf(asap.PolicyLeastUsedDPF, 0, 0, 7, 100), dpf(asap.PolicyLeastUsedDPF, 650, 0, 0, 0),
		dpf(asap.PolicyLeastUsedDPF, 600, 0, 1, 60))
	if got := sequence(t, s, 3, 2); !slices.Equal(got, []uint32{2, 3, 1, 2, 3, 1}) {
		t.Errorf("LU-DPF: %v, want 2 3 1 twice (keys 700, 650, 660)", got)
	}
	// At the realistic scale: 50 ms at 1 %/ms weighs more than 25 % load.
	s = poolOf(t, dpf(asap.PolicyLeastUsedDPF, 0, 0, 0x028f5c29, 50), dpf(asap.PolicyLeastUsedDPF, 0x40000000, 0, 0x028f5c29, 0))
	if got := sequence(t, s, 1, 2); !slices.Equal(got, []uint32{2, 2}) {
		t.Errorf("LU-DPF, 0 %% at 50 ms against 25 %% at 0 ms: %v, want 2 2", got)
	}
	// LUD-DPF keys: 0+1·5 = 5 (+10 a pick), 12 (+0): 1 (now 15), then 2 for ever.
	s = poolOf(t, dpf(asap.PolicyLeastUsedDegradationDPF, 0, 10, 1, 5), dpf(asap.PolicyLeastUsedDegradationDPF, 12, 0, 0, 0))
	if got := sequence(t, s, 1, 4); !slices.Equal(got, []uint32{1, 2, 2, 2}) {
		t.Errorf("LUD-DPF: %v, want 1 2 2 2", got)
	}
	// PLU-DPF keys (static): 0+100+7·100 = 800, 750, 0+0+8·100 = 800:
	// PE 2 first, then 1 and 3 in turn.
	s = poolOf(t, dpf(asap.PolicyPriorityLeastUsedDPF, 0, 100, 7, 100), dpf(asap.PolicyPriorityLeastUsedDPF, 750, 0, 0, 0),
		dpf(asap.PolicyPriorityLeastUsedDPF, 0, 0, 8, 100))
	if got := sequence(t, s, 2, 3); !slices.Equal(got, []uint32{2, 1, 2, 3, 2, 1}) {
		t.Errorf("PLU-DPF: %v, want 2 1 2 3 2 1", got)
	}
	// PLUD-DPF keys: 0+10+1·5 = 15 (+10 a pick), 20+1 = 21 (+1): 1 (25),
	// 2 (22), 2 (23), 2 (24), 2 (25, behind PE 1), 1.
	s = poolOf(t, dpf(asap.PolicyPriorityLeastUsedDegradationDPF, 0, 10, 1, 5), dpf(asap.PolicyPriorityLeastUsedDegradationDPF, 20, 1, 0, 0))
	if got := sequence(t, s, 1, 6); !slices.Equal(got, []uint32{1, 2, 2, 2, 2, 1}) {
		t.Errorf("PLUD-DPF: %v, want 1 2 2 2 2 1", got)
	}
	// A new distance (a re-registration measured again) moves the PE.
	mustApply(t, s, 0, reg(mkPE("P", 1, 1, dpf(asap.PolicyPriorityLeastUsedDegradationDPF, 0, 10, 1, 30))))
	if got := sequence(t, s, 2, 1); !slices.Equal(got, []uint32{2, 1}) {
		t.Errorf("PLUD-DPF after PE 1 is 30 ms away (key 40 against 26): %v, want 2 1", got)
	}
	checkStore(t, s)
}

// Ensure that WRAND-DPF draws in proportion to the penalised weights:
// 1000 at 0.5 %/ms and 100 ms is 500, 1000 at 0 ms stays 1000, 1000 at
// 1 %/ms and 100 ms is the minimum, 1.
func TestResolve_WeightedRandomDistance(t *testing.T) {
	w := func(weight, wdpf, dist uint32) asap.Policy {
		return asap.Policy{Type: asap.PolicyWeightedRandomDPF, Weight: weight, WeightDPF: wdpf, Distance: dist}
	}
	s := poolOf(t, w(1000, maxU32/200, 100), w(1000, maxU32/200, 0), w(1000, maxU32/100, 100))
	const total = 30000
	c := counts(t, s, 1, total, rand.New(rand.NewPCG(5, 9)))
	chiSquare(t, c, map[uint32]float64{1: 500.0 / 1501, 2: 1000.0 / 1501, 3: 1.0 / 1501}, total)
	checkStore(t, s)
}

// Ensure (property) that for random pools of each LU-family DPF policy
// every resolution returns PEs in order of their penalised keys, none
// left out with a smaller key, where a reference model computes the keys
// from the registered values (exactly, in big integers) and adds the
// degradation of every pick as the D policies do.
func TestResolve_DistancePenaltyProperty(t *testing.T) {
	rnd := rand.New(rand.NewPCG(23, 29))
	for _, typ := range []asap.PolicyType{asap.PolicyLeastUsedDPF, asap.PolicyLeastUsedDegradationDPF,
		asap.PolicyPriorityLeastUsedDPF, asap.PolicyPriorityLeastUsedDegradationDPF} {
		t.Run(typ.String(), func(t *testing.T) {
			for round := 0; round < 30; round++ {
				size := 1 + rnd.IntN(12)
				pols := make([]asap.Policy, size)
				for i := range pols {
					p := asap.Policy{Type: typ, Load: rnd.Uint32N(1 << 30), LoadDPF: rnd.Uint32N(1 << 24), Distance: 50 * rnd.Uint32N(8)}
					if typ != asap.PolicyLeastUsedDPF {
						p.LoadDegradation = rnd.Uint32N(1 << 28)
					}
					if rnd.IntN(5) == 0 {
						p.Distance = maxU32 // saturates
					}
					pols[i] = p
				}
				s := poolOf(t, pols...)
				acc := make([]*big.Int, size)
				for i := range acc {
					acc[i] = new(big.Int)
				}
				key := func(i int) *big.Int {
					p := pols[i]
					k := new(big.Int).Mul(big.NewInt(int64(p.Distance)), big.NewInt(int64(p.LoadDPF)))
					k.Add(k, big.NewInt(int64(p.Load)))
					if typ == asap.PolicyPriorityLeastUsedDPF || typ == asap.PolicyPriorityLeastUsedDegradationDPF {
						k.Add(k, big.NewInt(int64(p.LoadDegradation)))
					}
					k.Add(k, acc[i])
					if k.Cmp(big.NewInt(maxU32)) > 0 {
						k.SetInt64(maxU32)
					}
					return k
				}
				for r := 0; r < 20; r++ {
					n := 1 + rnd.IntN(size)
					pes, _, err := s.Resolve("P", n, rnd)
					if err != nil {
						t.Fatal(err)
					}
					chosen := map[int]bool{}
					var worst *big.Int
					for j, pe := range pes {
						i := int(pe.ID) - 1
						chosen[i] = true
						k := key(i)
						if worst != nil && k.Cmp(worst) < 0 {
							t.Fatalf("%v size %d: resolution %v not in key order", typ, size, ids(pes))
						}
						worst = k
						_ = j
					}
					for i := 0; i < size; i++ {
						if !chosen[i] && key(i).Cmp(worst) < 0 {
							t.Fatalf("%v size %d: PE %d (key %v) left out of %v, whose last key is %v", typ, size, i+1, key(i), ids(pes), worst)
						}
					}
					if typ == asap.PolicyLeastUsedDegradationDPF || typ == asap.PolicyPriorityLeastUsedDegradationDPF {
						for i := range chosen {
							acc[i].Add(acc[i], big.NewInt(int64(pols[i].LoadDegradation)))
						}
					}
				}
				checkStore(t, s)
			}
		})
	}
}
