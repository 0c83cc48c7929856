package registrar_test

import (
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
)

// changesState reports messages that may legitimately change the
// handlespace; the storm skips mutations that decode to them.
func changesState(b []byte) bool {
	m, _, err := asap.Unpack(b, nil)
	if err != nil {
		return false
	}
	switch m.(type) {
	case *asap.Registration, *asap.Deregistration, *asap.EndpointUnreachable:
		return true
	}
	return false
}

// Ensure that thousands of random and mutated messages neither crash the
// registrar nor change its handlespace, and that it keeps answering.
func TestBadInputStorm(t *testing.T) {
	r := startRegistrar(t, "", nil)
	pe := dial(t, r, true)
	for i := uint32(1); i <= 5; i++ {
		mustRegister(t, pe, "pool", testPE(i, uint16(7000+i), asap.Policy{Type: asap.PolicyLeastUsed, Load: i}))
	}
	before := r.Handlespace().Pool("pool")
	index := r.Handlespace().Status().LastIndex

	var seeds [][]byte
	for _, m := range []asap.Message{
		&asap.HandleResolution{PoolHandle: "pool", HasItems: true, Items: 2},
		&asap.EndpointKeepAliveAck{PoolHandle: "pool", ID: 1},
		&asap.Cookie{Cookie: []byte("12345678")},
		&asap.ServerAnnounce{ServerID: 7},
		&asap.Error{Error: *asap.NewOperationError(asap.CauseInvalidValues, []byte{0, 9, 0, 5, 'x'})},
		&asap.Registration{PoolHandle: "pool", PoolElement: testPE(77, 7077, asap.Policy{Type: asap.PolicyLeastUsed})},
		&asap.Deregistration{PoolHandle: "pool", ID: 1},
	} {
		b, err := asap.Pack(m)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	mutate := func() []byte {
		switch rnd.IntN(4) {
		case 0: // random bytes with a plausible header
			b := make([]byte, 4+rnd.IntN(120))
			for i := range b {
				b[i] = byte(rnd.UintN(256))
			}
			b[2], b[3] = byte(len(b)>>8), byte(len(b))
			return b
		case 1: // truncated seed
			s := seeds[rnd.IntN(len(seeds))]
			b := append([]byte(nil), s[:4+rnd.IntN(len(s)-3)]...)
			b[2], b[3] = byte(len(b)>>8), byte(len(b))
			return b
		default: // bit flips in a seed
			b := append([]byte(nil), seeds[rnd.IntN(len(seeds))]...)
			for n := 1 + rnd.IntN(4); n > 0; n-- {
				b[rnd.IntN(len(b))] ^= byte(1 << rnd.IntN(8))
			}
			b[2], b[3] = byte(len(b)>>8), byte(len(b)) // TCP frames by this length
			return b
		}
	}
	const conns, perConn = 4, 1500
	sent := 0
	for c := 0; c < conns; c++ {
		cl := dial(t, r, false)
		go func() { // drain answers so the registrar never blocks on us
			for range cl.in {
			}
		}()
		for i := 0; i < perConn; i++ {
			b := mutate()
			if changesState(b) {
				continue
			}
			cl.sendRaw(b)
			sent++
		}
	}
	t.Logf("sent %d bad or mutated messages", sent)
	// Garbage framing on raw sockets: the registrar closes those
	// connections and carries on.
	for i := 0; i < 50; i++ {
		nc, err := net.Dial("tcp", strings.TrimPrefix(r.ASAPAddr(), "tcp:"))
		if err != nil {
			t.Fatal(err)
		}
		g := make([]byte, 1+rnd.IntN(300))
		for j := range g {
			g[j] = byte(rnd.UintN(256))
		}
		if i%2 == 0 {
			g = append([]byte{5, 0, 0, 1}, g...) // a length below the header
		}
		nc.Write(g)
		nc.Close()
	}
	// The registrar still answers correctly...
	pu := dial(t, r, false)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp := resolve(t, pu, "pool", asap.ItemsAll)
		if len(resp.PEs) == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the storm: %+v", resp)
		}
	}
	// ...and nothing changed.
	after := r.Handlespace().Pool("pool")
	if len(after) != len(before) {
		t.Fatalf("pool has %d PEs after the storm, want %d", len(after), len(before))
	}
	for i := range before {
		if !samePEs(before[i].Element, after[i].Element) {
			t.Errorf("PE %d changed: %+v -> %+v", i, before[i].Element, after[i].Element)
		}
	}
	if now := r.Handlespace().Status().LastIndex; now != index {
		t.Errorf("raft index moved from %d to %d during the storm", index, now)
	}
}

func samePEs(a, b asap.PoolElement) bool {
	x, _ := asap.AppendPoolElement(nil, &a)
	y, _ := asap.AppendPoolElement(nil, &b)
	return string(x) == string(y)
}
