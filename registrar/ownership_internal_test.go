package registrar

import (
	"context"
	"net/netip"
	"testing"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/transport"
)

// connFrom is the registrar's end of an association from a peer with
// the given addresses.
func connFrom(t *testing.T, r *Registrar, addrs ...string) *asapConn {
	t.Helper()
	pcfg := transport.DefaultConfig()
	for _, a := range addrs {
		pcfg.LocalAddrs = append(pcfg.LocalAddrs, netip.MustParseAddr(a))
	}
	ours, theirs, err := transport.NewPipe(transport.DefaultConfig(), pcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ours.Close(); theirs.Close() })
	return r.newConn(ours)
}

// Ensure that a deregistration or a re-registration of an existing PE
// from another host's association is refused (Rejection due to Security
// Considerations; Non-unique PE Identifier) and changes nothing, while
// the PE's own association, and a new association from the PE's own
// addresses (a restarted PE, an RSPLIB PE coming back), may do both.
func TestOwnership_OnlyThePE(t *testing.T) {
	r := unitRegistrar(t, nil)
	ctx := context.Background()
	owner := connFrom(t, r, "10.0.0.1")
	pe := unitPE(1, asap.PolicyRoundRobin)
	if resp := r.register(ctx, owner, &asap.Registration{PoolHandle: "pool", PoolElement: pe}); resp.Reject {
		t.Fatal(resp.Error)
	}
	before, _ := r.hs.Lookup("pool", 1)
	index := r.hs.Status().LastIndex

	stranger := connFrom(t, r, "192.0.2.66")
	if resp := r.deregister(ctx, stranger, &asap.Deregistration{PoolHandle: "pool", ID: 1}); resp.Error == nil || resp.Error.First() != asap.CauseRejectedSecurity {
		t.Fatalf("a stranger's deregistration: got error %v, want Rejection due to Security Considerations (0x000a)", resp.Error)
	}
	hijack := pe
	hijack.User.Addrs = []netip.Addr{netip.MustParseAddr("192.0.2.66")}
	hijack.User.Port = 6666
	resp := r.register(ctx, stranger, &asap.Registration{PoolHandle: "pool", PoolElement: hijack})
	if !resp.Reject || resp.Error.First() != asap.CauseNonUniquePEIdentifier {
		t.Fatalf("a stranger's registration of an existing PE ID: got reject %v error %v, want Non-unique PE Identifier (0x0004)", resp.Reject, resp.Error)
	}
	// A host that shares one of a multi-homed PE's addresses is not it.
	partial := connFrom(t, r, "10.0.0.2")
	if resp := r.deregister(ctx, partial, &asap.Deregistration{PoolHandle: "pool", ID: 1}); resp.Error == nil {
		t.Fatal("a deregistration from another address of the same network was accepted")
	}
	after, ok := r.hs.Lookup("pool", 1)
	if !ok || !samePE(&after.Element, &before.Element) || r.hs.Status().LastIndex != index {
		t.Fatalf("after the refused requests the PE is %+v (found %v, raft index %d, was %d), want it unchanged", after.Element, ok, r.hs.Status().LastIndex, index)
	}

	// The PE restarted: a new association from its own address.
	restarted := connFrom(t, r, "10.0.0.1")
	moved := pe
	moved.User.Port = 7100
	if resp := r.register(ctx, restarted, &asap.Registration{PoolHandle: "pool", PoolElement: moved}); resp.Reject {
		t.Fatalf("the restarted PE's re-registration was refused: %v", resp.Error)
	}
	if cur, _ := r.hs.Lookup("pool", 1); cur.Element.User.Port != 7100 {
		t.Fatalf("after the restarted PE's re-registration the port is %d, want 7100", cur.Element.User.Port)
	}
	if resp := r.deregister(ctx, restarted, &asap.Deregistration{PoolHandle: "pool", ID: 1}); resp.Error != nil {
		t.Fatalf("the PE's own deregistration: %v", resp.Error)
	}
	if _, ok := r.hs.Lookup("pool", 1); ok {
		t.Fatal("the PE's own deregistration did not remove it")
	}
}

// Ensure that a multi-homed (SCTP) PE's new association must carry all
// of its registered addresses.
func TestCovers(t *testing.T) {
	a := func(s ...string) []netip.Addr {
		var out []netip.Addr
		for _, x := range s {
			out = append(out, netip.MustParseAddr(x))
		}
		return out
	}
	for _, tc := range []struct {
		peer, addrs []netip.Addr
		want        bool
	}{
		{a("10.0.0.1", "10.0.1.1"), a("10.0.0.1", "10.0.1.1"), true},
		{a("10.0.0.1", "10.0.1.1", "10.0.2.1"), a("10.0.1.1"), true},
		{a("10.0.0.1"), a("10.0.0.1", "10.0.1.1"), false},
		{a("::ffff:10.0.0.1"), a("10.0.0.1"), true},
		{a("10.0.0.1"), a("0.0.0.0"), false},
		{a("10.0.0.1"), nil, false},
	} {
		if got := covers(tc.peer, tc.addrs); got != tc.want {
			t.Errorf("covers(%v, %v) = %v, want %v", tc.peer, tc.addrs, got, tc.want)
		}
	}
}
