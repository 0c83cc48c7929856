package asap

import (
	"encoding/binary"
	"strconv"
)

// PolicyType is a member selection policy type (RFC 5356 and RSPLIB).
// 0x0000000x are non-adaptive, 0x4000000x adaptive, 0xB000xxxx RSPLIB's
// experimental ones.
//
// WARNING: only append to this list. The values are part of the protocol.
type PolicyType uint32

const (
	PolicyRoundRobin                             PolicyType = 0x00000001
	PolicyWeightedRoundRobin                     PolicyType = 0x00000002
	PolicyRandom                                 PolicyType = 0x00000003
	PolicyWeightedRandom                         PolicyType = 0x00000004
	PolicyPriority                               PolicyType = 0x00000005
	PolicyLeastUsed                              PolicyType = 0x40000001
	PolicyLeastUsedDegradation                   PolicyType = 0x40000002
	PolicyPriorityLeastUsed                      PolicyType = 0x40000003
	PolicyRandomizedLeastUsed                    PolicyType = 0x40000004
	PolicyRandomizedPriorityLeastUsed            PolicyType = 0xB0001001 // RSPLIB
	PolicyRandomizedLeastUsedDegradation         PolicyType = 0xB0001002 // RSPLIB
	PolicyPriorityLeastUsedDegradation           PolicyType = 0xB0001003 // RSPLIB
	PolicyRandomizedPriorityLeastUsedDegradation PolicyType = 0xB0001004 // RSPLIB
	PolicyWeightedRandomDPF                      PolicyType = 0xB0002001 // draft-dreibholz-rserpool-delay
	PolicyLeastUsedDPF                           PolicyType = 0xB0002002 // draft-dreibholz-rserpool-delay
	PolicyLeastUsedDegradationDPF                PolicyType = 0xB0002003 // RSPLIB
	// RSPLIB selects by these two but has no wire format for them; the
	// layout (load, load degradation, load DPF, distance, as LUD-DPF) is
	// ours: see docs/wire-format.md.
	PolicyPriorityLeastUsedDPF            PolicyType = 0xB0002004
	PolicyPriorityLeastUsedDegradationDPF PolicyType = 0xB0002005
)

// policy value fields, in wire order per type.
type policyField uint8

const (
	fWeight policyField = iota
	fPriority
	fLoad
	fLoadDegradation
	fLoadDPF
	fWeightDPF
	fDistance
)

type policyInfo struct {
	name string // short name, as used on command lines
	long string
}

var policies = map[PolicyType]policyInfo{
	PolicyRoundRobin:                             {"rr", "Round Robin"},
	PolicyWeightedRoundRobin:                     {"wrr", "Weighted Round Robin"},
	PolicyRandom:                                 {"rand", "Random"},
	PolicyWeightedRandom:                         {"wrand", "Weighted Random"},
	PolicyPriority:                               {"pri", "Priority"},
	PolicyLeastUsed:                              {"lu", "Least Used"},
	PolicyLeastUsedDegradation:                   {"lud", "Least Used with Degradation"},
	PolicyPriorityLeastUsed:                      {"plu", "Priority Least Used"},
	PolicyRandomizedLeastUsed:                    {"rlu", "Randomized Least Used"},
	PolicyRandomizedPriorityLeastUsed:            {"rplu", "Randomized Priority Least Used"},
	PolicyRandomizedLeastUsedDegradation:         {"rlud", "Randomized Least Used with Degradation"},
	PolicyPriorityLeastUsedDegradation:           {"plud", "Priority Least Used with Degradation"},
	PolicyRandomizedPriorityLeastUsedDegradation: {"rplud", "Randomized Priority Least Used with Degradation"},
	PolicyWeightedRandomDPF:                      {"wrand-dpf", "Weighted Random with Distance Penalty Factor"},
	PolicyLeastUsedDPF:                           {"lu-dpf", "Least Used with Distance Penalty Factor"},
	PolicyLeastUsedDegradationDPF:                {"lud-dpf", "Least Used with Degradation and Distance Penalty Factor"},
	PolicyPriorityLeastUsedDPF:                   {"plu-dpf", "Priority Least Used with Distance Penalty Factor"},
	PolicyPriorityLeastUsedDegradationDPF:        {"plud-dpf", "Priority Least Used with Degradation and Distance Penalty Factor"},
}

// Known reports whether the codec knows the policy's wire layout.
func (t PolicyType) Known() bool { _, ok := layout(t); return ok }

// Wire layouts, shared by the policies with the same value words.
var (
	layoutNone     = []policyField{}
	layoutWeight   = []policyField{fWeight}
	layoutPriority = []policyField{fPriority}
	layoutLoad     = []policyField{fLoad}
	layoutLoadDeg  = []policyField{fLoad, fLoadDegradation}
	layoutWDPF     = []policyField{fWeight, fWeightDPF, fDistance}
	layoutLDPF     = []policyField{fLoad, fLoadDPF, fDistance}
	layoutLDDPF    = []policyField{fLoad, fLoadDegradation, fLoadDPF, fDistance}
)

// layout gives the value words of a policy type (a switch: this is on the
// decoding hot path).
func layout(t PolicyType) ([]policyField, bool) {
	switch t {
	case PolicyRoundRobin, PolicyRandom:
		return layoutNone, true
	case PolicyWeightedRoundRobin, PolicyWeightedRandom:
		return layoutWeight, true
	case PolicyPriority:
		return layoutPriority, true
	case PolicyLeastUsed, PolicyRandomizedLeastUsed:
		return layoutLoad, true
	case PolicyLeastUsedDegradation, PolicyPriorityLeastUsed, PolicyRandomizedPriorityLeastUsed,
		PolicyRandomizedLeastUsedDegradation, PolicyPriorityLeastUsedDegradation,
		PolicyRandomizedPriorityLeastUsedDegradation:
		return layoutLoadDeg, true
	case PolicyWeightedRandomDPF:
		return layoutWDPF, true
	case PolicyLeastUsedDPF:
		return layoutLDPF, true
	case PolicyLeastUsedDegradationDPF, PolicyPriorityLeastUsedDPF, PolicyPriorityLeastUsedDegradationDPF:
		return layoutLDDPF, true
	}
	return nil, false
}

// DistanceSensitive reports whether the policy carries a distance (the
// DPF policies): the registrar that accepts a registration fills it in,
// and registrars add their own distance to a peer's (docs/wire-format.md).
func (t PolicyType) DistanceSensitive() bool {
	fields, _ := layout(t)
	for _, f := range fields {
		if f == fDistance {
			return true
		}
	}
	return false
}

// Adaptive reports whether the policy uses the PE's load (the 0x4000_0000
// bit of the type, and RSPLIB's load-based extensions).
func (t PolicyType) Adaptive() bool {
	fields, _ := layout(t)
	for _, f := range fields {
		if f == fLoad {
			return true
		}
	}
	return false
}

// String gives the short name (rr, wrr, lu, ...) or the hex number.
func (t PolicyType) String() string {
	if p, ok := policies[t]; ok {
		return p.name
	}
	return "0x" + strconv.FormatUint(uint64(t), 16)
}

// Description gives the long name, e.g. "Least Used".
func (t PolicyType) Description() string {
	if p, ok := policies[t]; ok {
		return p.long
	}
	return "Unknown policy " + t.String()
}

// MarshalText writes the short name.
func (t PolicyType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText accepts a short name or a number.
func (t *PolicyType) UnmarshalText(b []byte) error {
	v, ok := ParsePolicyType(string(b))
	if !ok {
		return encErr("policy.type", "unknown policy "+strconv.Quote(string(b)))
	}
	*t = v
	return nil
}

// ParsePolicyType turns a short name (rr, wrr, lu, ...) or a number into
// a policy type.
func ParsePolicyType(s string) (PolicyType, bool) {
	for k, v := range policies {
		if v.name == s {
			return k, true
		}
	}
	n, err := strconv.ParseUint(s, 0, 32)
	if err != nil || n == 0 {
		return 0, false
	}
	return PolicyType(n), true
}

// Policy is the Pool Member Selection Policy parameter (RFC 5354 section
// 3.8, values RFC 5356). Only the fields of Type's layout go on the wire.
// Load, load degradation and the DPF values are fractions scaled so that
// 0xFFFFFFFF is 100 %. The zero value (Type 0) means "absent".
type Policy struct {
	Type            PolicyType `json:"type"`
	Weight          uint32     `json:"weight,omitempty"`
	Priority        uint32     `json:"priority,omitempty"`
	Load            uint32     `json:"load,omitempty"`
	LoadDegradation uint32     `json:"load_degradation,omitempty"`
	LoadDPF         uint32     `json:"load_dpf,omitempty"`
	WeightDPF       uint32     `json:"weight_dpf,omitempty"`
	Distance        uint32     `json:"distance,omitempty"`
	// Raw holds the values of a policy type this codec does not know.
	Raw []uint32 `json:"raw,omitempty"`
}

// IsZero reports an absent policy.
func (p Policy) IsZero() bool { return p.Type == 0 }

func (p *Policy) field(f policyField) *uint32 {
	switch f {
	case fWeight:
		return &p.Weight
	case fPriority:
		return &p.Priority
	case fLoad:
		return &p.Load
	case fLoadDegradation:
		return &p.LoadDegradation
	case fLoadDPF:
		return &p.LoadDPF
	case fWeightDPF:
		return &p.WeightDPF
	default:
		return &p.Distance
	}
}

// AppendPolicy encodes a policy parameter.
func AppendPolicy(b []byte, p *Policy) ([]byte, error) {
	if p.Type == 0 {
		return b, encErr("policy", "policy type 0")
	}
	fields, known := layout(p.Type)
	if known && p.Raw != nil {
		return b, encErr("policy", "raw values given for known policy "+p.Type.String())
	}
	b, start := beginParam(b, ParamPolicy)
	b = appendU32(b, uint32(p.Type))
	if known {
		for _, f := range fields {
			b = appendU32(b, *p.field(f))
		}
	} else {
		for _, v := range p.Raw {
			b = appendU32(b, v)
		}
	}
	return endParam(b, start, "policy")
}

// Policy reads a member selection policy parameter. Known types must have
// exactly their layout's length; unknown types keep their words in Raw.
func (r *Reader) Policy() (Policy, error) {
	var p Policy
	v, start, err := r.Expect(ParamPolicy)
	if err != nil {
		return p, prefix(err, "policy")
	}
	length := len(v) + 4
	if len(v) < 4 || len(v)%4 != 0 {
		return p, prefix(r.failParam(start, length, withDetail(ErrBadLength, "policy of length "+strconv.Itoa(length)), CauseInvalidValues), "policy")
	}
	p.Type = PolicyType(binary.BigEndian.Uint32(v))
	words := v[4:]
	fields, known := layout(p.Type)
	if !known {
		if p.Type == 0 {
			return p, prefix(r.failParam(start, length, withDetail(ErrInvalidValue, "policy type 0"), CauseInvalidValues), "policy")
		}
		if len(words) > 0 {
			p.Raw = make([]uint32, len(words)/4)
			for i := range p.Raw {
				p.Raw[i] = binary.BigEndian.Uint32(words[4*i:])
			}
		}
		return p, nil
	}
	if len(words) != 4*len(fields) {
		return p, prefix(r.failParam(start, length, withDetail(ErrBadLength, p.Type.String()+" policy of length "+strconv.Itoa(length)+" (want "+strconv.Itoa(8+4*len(fields))+")"), CauseInvalidValues), "policy")
	}
	for i, f := range fields {
		*p.field(f) = binary.BigEndian.Uint32(words[4*i:])
	}
	return p, nil
}
