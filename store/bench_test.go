package store

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
)

// benchPolicy gives PE i of a benchmark pool its policy.
func benchPolicy(typ asap.PolicyType, i uint32) asap.Policy {
	p := asap.Policy{Type: typ}
	switch typ {
	case asap.PolicyWeightedRandom, asap.PolicyWeightedRoundRobin:
		p.Weight = 1 + i%10
	case asap.PolicyLeastUsed, asap.PolicyRandomizedLeastUsed:
		p.Load = (i * 2654435761) % 1000 << 22 // 1000 distinct loads
	case asap.PolicyLeastUsedDegradation:
		p.Load = (i * 2654435761) % 1000 << 22
		p.LoadDegradation = 1 << 20
	case asap.PolicyPriority:
		p.Priority = i % 4
	}
	return p
}

// fillOps appends count OpRegister ops for PEs first.. of pool h.
func fillOps(ops []Op, h string, first, count uint32, typ asap.PolicyType) []Op {
	for i := first; i < first+count; i++ {
		ops = append(ops, reg(mkPE(h, i, 1+i%3, benchPolicy(typ, i))))
	}
	return ops
}

// benchStore returns a memory store with one pool of size PEs.
func benchStore(b *testing.B, size int, typ asap.PolicyType) *Store {
	b.Helper()
	s := OpenMemory(nil)
	for first := 1; first <= size; first += 1024 {
		n := min(1024, size-first+1)
		if _, err := s.Apply(0, fillOps(nil, "BenchPool", uint32(first), uint32(n), typ)); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// BenchmarkResolve measures resolving 3 PEs of a pool of 100,000 with
// Resolve (decoded elements) and ResolveAppend (encoded, the registrar's
// fast path).
func BenchmarkResolve(b *testing.B) {
	for _, tc := range []struct {
		name string
		typ  asap.PolicyType
	}{
		{"rr", asap.PolicyRoundRobin},
		{"rand", asap.PolicyRandom},
		{"lu", asap.PolicyLeastUsed},
		{"lud", asap.PolicyLeastUsedDegradation},
		{"pri", asap.PolicyPriority},
		{"wrr", asap.PolicyWeightedRoundRobin},
		{"wrand", asap.PolicyWeightedRandom},
		{"rlu", asap.PolicyRandomizedLeastUsed},
	} {
		s := benchStore(b, 100_000, tc.typ)
		rnd := rand.New(rand.NewPCG(1, 2))
		b.Run(tc.name+"/append", func(b *testing.B) {
			buf := make([]byte, 0, 1024)
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, _, err = s.ResolveAppend(buf[:0], "BenchPool", 3, rnd); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"/decoded", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := s.Resolve("BenchPool", 3, rnd); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkResolve_Parallel resolves from several goroutines, each on its
// own pool, to show that pools do not contend.
func BenchmarkResolve_Parallel(b *testing.B) {
	s := OpenMemory(nil)
	for p := 0; p < 8; p++ {
		mustApply(b, s, 0, fillOps(nil, "P"+strconv.Itoa(p), 1, 1000, asap.PolicyLeastUsed)...)
	}
	b.RunParallel(func(pb *testing.PB) {
		rnd := rand.New(rand.NewPCG(rand.Uint64(), 0))
		h := asap.PoolHandle("P" + strconv.Itoa(rand.IntN(8)))
		buf := make([]byte, 0, 1024)
		for pb.Next() {
			buf, _, _ = s.ResolveAppend(buf[:0], h, 3, rnd)
		}
	})
}

// BenchmarkRegister_Memory measures Apply of OpRegister batches of 256
// without a file (the in-memory part of a registration): one op is one
// new PE, in 100 pools.
func BenchmarkRegister_Memory(b *testing.B) {
	for _, typ := range []asap.PolicyType{asap.PolicyRoundRobin, asap.PolicyLeastUsed, asap.PolicyWeightedRandom} {
		b.Run(typ.String(), func(b *testing.B) {
			s := OpenMemory(nil)
			ops := fillOps(nil, "x", 1, 256, typ)
			handles := make([]asap.PoolHandle, 100)
			for i := range handles {
				handles[i] = asap.PoolHandle(fmt.Sprintf("BenchPool-%d", i))
			}
			id := uint32(0)
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; done += len(ops) {
				ops = ops[:min(256, b.N-done)]
				for i := range ops {
					id++
					ops[i].PE.Handle = handles[id%100]
					ops[i].PE.Element.ID = id
				}
				if _, err := s.Apply(0, ops); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "PEs/s")
		})
	}
}

// BenchmarkApply_Durable measures durable registration: Apply with 256
// new PEs per call into a real bbolt file with fsync. "spread" registers
// random PE IDs round robin over 100 pools (every op touches another
// B+tree leaf, as real registrations do); "sequential" registers
// increasing IDs into one pool (a batch dirties a few leaves: the best
// case).
func BenchmarkApply_Durable(b *testing.B) {
	for _, tc := range []struct {
		name   string
		pools  int
		random bool
	}{{"spread", 100, true}, {"sequential", 1, false}} {
		b.Run(tc.name, func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "hs.db"), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ops := fillOps(nil, "x", 1, 256, asap.PolicyRoundRobin)
			handles := make([]asap.PoolHandle, tc.pools)
			for i := range handles {
				handles[i] = asap.PoolHandle("BenchPool-" + strconv.Itoa(i))
			}
			rng := rand.New(rand.NewPCG(1, 1))
			id, index := uint32(0), uint64(0)
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; done += len(ops) {
				ops = ops[:min(256, b.N-done)]
				for i := range ops {
					id++
					ops[i].PE.Handle = handles[int(id)%len(handles)]
					ops[i].PE.Element.ID = id
					if tc.random {
						ops[i].PE.Element.ID = rng.Uint32() | 1
					}
				}
				index++
				if _, err := s.Apply(index, ops); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "PEs/s")
		})
	}
}

// bigEnv gates the tests that need about a gigabyte and a minute.
const bigEnv = "STORE_BIG"

// TestStore_Memory1M measures the heap held per PE with 1,000,000 PEs (in
// 1,000 pools of 1,000 and in 10 pools of 100,000). Set STORE_BIG=1.
func TestStore_Memory1M(t *testing.T) {
	if os.Getenv(bigEnv) == "" {
		t.Skip("set " + bigEnv + "=1 to measure memory with 1M PEs")
	}
	for _, shape := range []struct{ pools, per int }{{1000, 1000}, {10, 100_000}, {1_000_000, 1}} {
		for _, typ := range []asap.PolicyType{asap.PolicyRoundRobin, asap.PolicyLeastUsed, asap.PolicyWeightedRandom} {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			s := OpenMemory(nil)
			ops := make([]Op, 0, 1024)
			id := uint32(0)
			for p := 0; p < shape.pools; p++ {
				h := fmt.Sprintf("pool-%07d", p)
				for i := 0; i < shape.per; i++ {
					id++
					ops = append(ops, reg(mkPE(h, id, 1+id%3, benchPolicy(typ, id))))
					if len(ops) == cap(ops) {
						mustApply(t, s, 0, ops...)
						ops = ops[:0]
					}
				}
			}
			mustApply(t, s, 0, ops...)
			ops = nil
			runtime.GC()
			runtime.ReadMemStats(&after)
			per := float64(after.HeapAlloc-before.HeapAlloc) / float64(id)
			t.Logf("%d pools x %d PEs, %s: %.0f bytes per PE", shape.pools, shape.per, typ, per)
			if shape.per > 1 && per > 250 {
				t.Errorf("%.0f bytes per PE, goal 250", per)
			}
			runtime.KeepAlive(s)
		}
	}
}

// TestStore_Reopen1M measures Open of a file with 1,000,000 PEs. Set
// STORE_BIG=1.
func TestStore_Reopen1M(t *testing.T) {
	if os.Getenv(bigEnv) == "" {
		t.Skip("set " + bigEnv + "=1 to measure reopening a 1M-PE file")
	}
	path := filepath.Join(t.TempDir(), "hs.db")
	s, err := Open(path, &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	ops := make([]Op, 0, 10000)
	for id := uint32(1); id <= 1_000_000; id++ {
		ops = append(ops, reg(mkPE(fmt.Sprintf("pool-%04d", id%1000), id, 1+id%3, benchPolicy(asap.PolicyLeastUsed, id))))
		if len(ops) == cap(ops) {
			mustApply(t, s, uint64(id), ops...)
			ops = ops[:0]
		}
	}
	s.Close()
	st, _ := os.Stat(path)
	start := time.Now()
	r, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := time.Since(start)
	defer r.Close()
	if _, n := r.Counts(); n != 1_000_000 {
		t.Fatalf("reopened %d PEs", n)
	}
	t.Logf("reopen of %d PEs (%d MB file): %v", 1_000_000, st.Size()>>20, d)
	if d > 3*time.Second {
		t.Errorf("reopen took %v, goal 3 s", d)
	}
}
