package asap_test

import (
	"bytes"
	"fmt"
	"reflect"
	"strconv"
	"testing"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/asap/wiretest"
)

// dpfVectors are the distance-sensitive policy parameters, built by hand
// from their layouts: WRAND-DPF, LU-DPF and LUD-DPF as RSPLIB encodes them
// (src/rserpoolmessagecreator.c), PLU-DPF and PLUD-DPF in our layout
// (load, load degradation, load DPF, distance, as LUD-DPF: RSPLIB has none).
// 0x028f5c29 is 1 %, 0x40000000 25 %, 0x0a3d70a4 4 %; distances in ms.
var dpfVectors = []struct {
	hex string
	p   asap.Policy
}{
	{"00080014" + "b0002001" + "0000000a" + "028f5c29" + "00000032",
		asap.Policy{Type: asap.PolicyWeightedRandomDPF, Weight: 10, WeightDPF: 0x028f5c29, Distance: 50}},
	{"00080014" + "b0002002" + "40000000" + "028f5c29" + "00000064",
		asap.Policy{Type: asap.PolicyLeastUsedDPF, Load: 0x40000000, LoadDPF: 0x028f5c29, Distance: 100}},
	{"00080018" + "b0002003" + "40000000" + "0a3d70a4" + "028f5c29" + "00000096",
		asap.Policy{Type: asap.PolicyLeastUsedDegradationDPF, Load: 0x40000000, LoadDegradation: 0x0a3d70a4, LoadDPF: 0x028f5c29, Distance: 150}},
	{"00080018" + "b0002004" + "40000000" + "0a3d70a4" + "028f5c29" + "000000c8",
		asap.Policy{Type: asap.PolicyPriorityLeastUsedDPF, Load: 0x40000000, LoadDegradation: 0x0a3d70a4, LoadDPF: 0x028f5c29, Distance: 200}},
	{"00080018" + "b0002005" + "40000000" + "0a3d70a4" + "028f5c29" + "00000000",
		asap.Policy{Type: asap.PolicyPriorityLeastUsedDegradationDPF, Load: 0x40000000, LoadDegradation: 0x0a3d70a4, LoadDPF: 0x028f5c29}},
}

func dpfRegistration(p asap.Policy, policyHex string) ([]byte, *asap.Registration) {
	wire := msg(1, 0, handle("dpf"), pe(0x0d0d0d0d, 0, 30000, sctp(7000, 0, ip4("10.0.0.1")), mustHex(policyHex)))
	return wire, &asap.Registration{PoolHandle: "dpf", PoolElement: asap.PoolElement{ID: 0x0d0d0d0d, Lifetime: 30000,
		User: asap.Transport{Kind: asap.ParamSCTPTransport, Port: 7000, Addrs: addrs("10.0.0.1")}, Policy: p}}
}

// Ensure that the DPF policies decode from and encode to their vectors,
// that a wrong length is refused naming the policy, and that they are the
// policies that carry a distance.
func TestPolicy_DPFVectors(t *testing.T) {
	for _, v := range dpfVectors {
		t.Run(v.p.Type.String(), func(t *testing.T) {
			if !v.p.Type.DistanceSensitive() || !v.p.Type.Known() {
				t.Errorf("%v: DistanceSensitive %v, Known %v; want both", v.p.Type, v.p.Type.DistanceSensitive(), v.p.Type.Known())
			}
			wire, want := dpfRegistration(v.p, v.hex)
			m, _, err := asap.Unpack(wire, nil)
			if err != nil {
				t.Fatalf("Unpack: %v", err)
			}
			if got := m.(*asap.Registration).PoolElement.Policy; !reflect.DeepEqual(got, v.p) {
				t.Errorf("decoded %+v, want %+v", got, v.p)
			}
			out, err := asap.Pack(want)
			if err != nil || !bytes.Equal(out, wire) {
				t.Errorf("Pack = %x, %v; want %x", out, err, wire)
			}
			// One word short: refused, the error names the policy.
			short := v.hex[:4] + fmt.Sprintf("%04x", len(v.hex)/2-4) + v.hex[8:len(v.hex)-8]
			bad, _ := dpfRegistration(v.p, short)
			if _, _, err := asap.Unpack(bad, nil); err == nil || !bytes.Contains([]byte(err.Error()), []byte(v.p.Type.String())) {
				t.Errorf("Unpack of a short %v policy: %v, want an error naming %v", v.p.Type, err, v.p.Type)
			}
		})
	}
	for _, pt := range []asap.PolicyType{asap.PolicyRoundRobin, asap.PolicyLeastUsed, asap.PolicyPriorityLeastUsedDegradation, 0xB0003001} {
		if pt.DistanceSensitive() {
			t.Errorf("%v: DistanceSensitive, want not", pt)
		}
	}
}

// Ensure that Wireshark decodes the DPF policies without a warning, with
// the values of those it knows (WRAND-DPF, LU-DPF) as encoded.
func TestWireshark_DPFPolicies(t *testing.T) {
	wiretest.Require(t)
	var wire [][]byte
	for _, v := range dpfVectors {
		w, _ := dpfRegistration(v.p, v.hex)
		wire = append(wire, w)
	}
	fields := []string{"asap.pool_member_selection_policy_type", "asap.pool_member_selection_policy_weight",
		"asap.pool_member_selection_policy_load", "asap.pool_member_selection_policy_distance",
		"asap.pool_member_selection_policy_load_dpf", "asap.pool_member_selection_policy_weight_dpf"}
	pkts := wiretest.Decode(t, wiretest.SCTPASAP, wire, fields)
	if len(pkts) != len(wire) {
		t.Fatalf("tshark returned %d packets, want %d", len(pkts), len(wire))
	}
	for i, p := range pkts {
		v := dpfVectors[i]
		if pr := p.Problems(); pr != "" {
			t.Errorf("%v: %s", v.p.Type, pr)
		}
		if got := p.First("asap.pool_member_selection_policy_type"); got != fmt.Sprintf("0x%08x", uint32(v.p.Type)) {
			t.Errorf("%v: policy type %q", v.p.Type, got)
		}
		switch v.p.Type {
		case asap.PolicyWeightedRandomDPF:
			for field, want := range map[string]string{"weight": "10", "distance": "50"} {
				if got := p.First("asap.pool_member_selection_policy_" + field); got != want {
					t.Errorf("%v: %s = %q, want %q", v.p.Type, field, got, want)
				}
			}
			checkFraction(t, v.p.Type, "weight_dpf", p.First("asap.pool_member_selection_policy_weight_dpf"), v.p.WeightDPF)
		case asap.PolicyLeastUsedDPF:
			if got := p.First("asap.pool_member_selection_policy_distance"); got != "100" {
				t.Errorf("%v: distance = %q, want 100", v.p.Type, got)
			}
			checkFraction(t, v.p.Type, "load_dpf", p.First("asap.pool_member_selection_policy_load_dpf"), v.p.LoadDPF)
		}
	}
}

// checkFraction compares Wireshark's rendering of a 0xFFFFFFFF-scaled
// fraction (a plain fraction or a percentage, depending on the field)
// with the value.
func checkFraction(t *testing.T, pt asap.PolicyType, field, got string, v uint32) {
	t.Helper()
	f, err := strconv.ParseFloat(got, 64)
	want := float64(v) / 0xFFFFFFFF
	if err != nil || (abs(f-want) > 1e-6 && abs(f-100*want) > 1e-4) {
		t.Errorf("%v: %s = %q, want %g (or %g %%)", pt, field, got, want, 100*want)
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
