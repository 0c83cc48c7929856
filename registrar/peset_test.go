package registrar

import (
	"math/rand/v2"
	"testing"

	"github.com/rserpool-go/registrar/asap"
)

// Ensure peSet behaves as a map of PEs through random adds and removes,
// below its slice's size, across it and back.
func TestPESet_AgreesWithMap(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	var s peSet
	want := map[peKey]struct{}{}
	ids := peSetSmall / 2 // first 2*ids <= peSetSmall keys: the slice alone
	key := func() peKey {
		return peKey{asap.PoolHandle([]string{"a", "b"}[rnd.IntN(2)]), uint32(rnd.IntN(ids))}
	}
	grew := false
	for i := range 20000 {
		if i == 10000 {
			if s.large != nil {
				t.Fatal("outgrew the slice with at most peSetSmall keys")
			}
			ids = 3 * peSetSmall
		}
		k := key()
		if rnd.IntN(2) == 0 {
			s.add(k)
			want[k] = struct{}{}
		} else {
			s.remove(k)
			delete(want, k)
		}
		grew = grew || s.large != nil
		if s.len() != len(want) {
			t.Fatalf("step %d: len %d, want %d", i, s.len(), len(want))
		}
		for range 4 {
			k := key()
			if _, ok := want[k]; s.has(k) != ok {
				t.Fatalf("step %d: has(%v) = %v, want %v", i, k, s.has(k), ok)
			}
		}
	}
	if !grew {
		t.Fatal("the set never outgrew its slice: the test did not cover the map")
	}
	var one peSet
	one.add(peKey{"p", 1})
	one.add(peKey{"p", 1})
	if one.len() != 1 || one.large != nil {
		t.Fatalf("a PE added twice: len %d, map %v", one.len(), one.large != nil)
	}
	one.remove(peKey{"p", 1})
	if one.len() != 0 || one.has(peKey{"p", 1}) {
		t.Fatal("removed PE still there")
	}
}
