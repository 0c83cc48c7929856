package cluster

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/store"
)

// Ensure that a refusal forwarded from the leader keeps both what the
// follower tests with errors.Is (the store's sentinel) and the Operation
// Error the leader's store decided (errors.As), so a PE hears the same
// cause whichever registrar it talks to.
func TestForwardResult_KeepsOperationError(t *testing.T) {
	st := store.OpenMemory(nil)
	good := store.PE{Handle: "pool", Element: pe(1, 7)}
	bad := store.PE{Handle: "pool", Element: pe(2, 7)}
	bad.Element.Policy = asap.Policy{Type: asap.PolicyLeastUsed, Load: 1}
	res, err := st.Apply(1, []store.Op{{Kind: store.OpRegister, PE: good}, {Kind: store.OpRegister, PE: bad}, {Kind: store.OpDeregister, PE: store.PE{Handle: "none", Element: pe(9, 7)}}})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		b, err := json.Marshal(encodeResult(r))
		if err != nil {
			t.Fatal(err)
		}
		var fr forwardResult
		if err := json.Unmarshal(b, &fr); err != nil {
			t.Fatal(err)
		}
		got := decodeResult(fr)
		if got.Changed != r.Changed || (got.Err == nil) != (r.Err == nil) {
			t.Fatalf("result %d: %+v across the forward, want %+v", i, got, r)
		}
		if r.Err == nil {
			continue
		}
		for _, s := range []error{store.ErrPolicyMismatch, store.ErrPENotFound} {
			if errors.Is(got.Err, s) != errors.Is(r.Err, s) {
				t.Errorf("result %d: errors.Is(%v) %v across the forward, %v at the leader", i, s, errors.Is(got.Err, s), errors.Is(r.Err, s))
			}
		}
		var want, have *asap.OperationError
		if errors.As(r.Err, &want) != errors.As(got.Err, &have) || !reflect.DeepEqual(want, have) {
			t.Errorf("result %d: Operation Error %+v across the forward, %+v at the leader", i, have, want)
		}
	}
	var oe *asap.OperationError
	if r := decodeResult(encodeResult(res[1])); !errors.As(r.Err, &oe) || oe.First() != asap.CauseInconsistentPolicy || len(oe.Causes[0].Info) == 0 {
		t.Errorf("forwarded policy mismatch: %+v, want cause inconsistent policy with the policy", oe)
	}
}
