package store_test

import (
	"errors"
	"fmt"
	"log"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/store"
)

// echoPE is a PE of pool "EchoPool" with the given ID and load.
func echoPE(id, load uint32) store.PE {
	addr := netip.AddrFrom4([4]byte{10, 0, 0, byte(id)})
	return store.PE{
		Handle: "EchoPool",
		Element: asap.PoolElement{
			ID: id, Home: 0x11111111, Lifetime: 90000,
			User:   asap.Transport{Kind: asap.ParamTCPTransport, Port: 7, Use: asap.UseDataAndControl, Addrs: []netip.Addr{addr}},
			Policy: asap.Policy{Type: asap.PolicyLeastUsed, Load: load},
			ASAP:   asap.Transport{Kind: asap.ParamSCTPTransport, Port: 3863, Addrs: []netip.Addr{addr}},
		},
		Registered: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).UnixNano(),
	}
}

// Resolve picks PEs by the pool's policy: here Least Used, so one of the
// two least loaded PEs, the tie between PE 2 and PE 3 broken round robin.
func ExampleStore_Resolve() {
	dir, err := os.MkdirTemp("", "handlespace")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	st, err := store.Open(filepath.Join(dir, "handlespace.db"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()

	ops := []store.Op{
		{Kind: store.OpRegister, PE: echoPE(1, 0x80000000)},
		{Kind: store.OpRegister, PE: echoPE(2, 0x10000000)},
		{Kind: store.OpRegister, PE: echoPE(3, 0x10000000)},
	}
	if _, err := st.Apply(1, ops); err != nil {
		log.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 3; i++ {
		pes, policy, err := st.Resolve("EchoPool", 1, rnd)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(policy.Type, pes[0].ID, pes[0].User.Addrs)
	}
	// Output:
	// lu 2 [10.0.0.2]
	// lu 3 [10.0.0.3]
	// lu 2 [10.0.0.2]
}

// Apply reports a refused registration in the op's result, which holds
// the ASAP Operation Error to send back.
func ExampleStore_Apply() {
	st := store.OpenMemory(nil)
	defer st.Close()
	rr := echoPE(4, 0)
	rr.Element.Policy = asap.Policy{Type: asap.PolicyRoundRobin}
	res, err := st.Apply(0, []store.Op{
		{Kind: store.OpRegister, PE: echoPE(1, 0)},
		{Kind: store.OpRegister, PE: rr},
	})
	if err != nil {
		log.Fatal(err)
	}
	var oe *asap.OperationError
	errors.As(res[1].Err, &oe)
	fmt.Println(res[0].Changed, res[1].Changed, oe)
	// Output: 1 0 inconsistent pooling policy
}

// Iterate pages through the PEs a registrar owns, as an ENRP
// HANDLE_TABLE_RESPONSE with the W bit does.
func ExampleStore_Iterate() {
	st := store.OpenMemory(nil)
	defer st.Close()
	var ops []store.Op
	for id := uint32(1); id <= 5; id++ {
		ops = append(ops, store.Op{Kind: store.OpRegister, PE: echoPE(id, 0)})
	}
	if _, err := st.Apply(0, ops); err != nil {
		log.Fatal(err)
	}
	owner := uint32(0x11111111)
	cur, more := store.Cursor{}, true
	for more {
		var page []uint32
		cur, more = st.Iterate(cur, 2, &owner, func(pe store.PE) bool {
			page = append(page, pe.Element.ID)
			return true
		})
		fmt.Println(page, more)
	}
	fmt.Printf("checksum %#04x\n", st.Checksum(owner))
	// Output:
	// [1 2] true
	// [3 4] true
	// [5] false
	// checksum 0xdb88
}
