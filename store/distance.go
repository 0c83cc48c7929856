package store

import (
	"math/bits"

	"github.com/rserpool-go/registrar/asap"
)

// The distance-sensitive policies (draft-dreibholz-rserpool-delay and
// RSPLIB, src/poolpolicy-template_impl.h) penalise a PE by its distance:
// the delay in milliseconds from the registrar to the PE that the
// registrar measured when it accepted the registration, plus each ENRP
// hop's own delay (docs/wire-format.md). The DPF values are fractions
// scaled so that 0xFFFFFFFF is 1.0, "per millisecond".
//
// The penalty depends only on values the PE registered (and the measured
// distance), never on selections, so it is folded into the base policy's
// value once, when the entry is built: the LU family selects by the
// penalised load, WRAND-DPF draws by the penalised weight, and everything
// else (degradation, rotation among equal keys) is the base policy's.

// dpfLoad is the load of a LU-DPF, LUD-DPF, PLU-DPF or PLUD-DPF entry:
// load + distance·(loadDPF/0xFFFFFFFF)·0xFFFFFFFF = load + distance·loadDPF,
// saturating at 0xFFFFFFFF. RSPLIB computes the same in floating point and
// rounds; the product is exact here.
func dpfLoad(load, loadDPF, distance uint32) uint32 {
	pen := uint64(distance) * uint64(loadDPF)
	if pen >= 0xFFFFFFFF {
		return 0xFFFFFFFF
	}
	return sat32(load, uint32(pen))
}

// dpfWeight is the weight of a WRAND-DPF entry:
// weight − round(weight·distance·weightDPF/0xFFFFFFFF), at least 1 (as
// every weight of a weighted pool here, so that each PE stays selectable;
// RSPLIB keeps an exact 0, which never selects the PE).
func dpfWeight(weight, weightDPF, distance uint32) uint32 {
	// weight·distance·weightDPF < 2^96; its high word is below 2^32-1, so
	// the division cannot overflow.
	hi, lo := bits.Mul64(uint64(weight), uint64(distance)*uint64(weightDPF))
	q, r := bits.Div64(hi, lo, 0xFFFFFFFF)
	if 2*r > 0xFFFFFFFF { // the divisor is odd: never exactly half
		q++
	}
	if q >= uint64(weight) {
		return 1
	}
	return weight - uint32(q)
}

// dpfValues gives the selection values of a DPF policy: the penalised
// load or weight, and the load degradation where the base policy uses it.
func dpfValues(p *asap.Policy) (v1, v2 uint32) {
	switch p.Type {
	case asap.PolicyWeightedRandomDPF:
		return dpfWeight(p.Weight, p.WeightDPF, p.Distance), 0
	case asap.PolicyLeastUsedDPF:
		return dpfLoad(p.Load, p.LoadDPF, p.Distance), 0
	default: // LUD-DPF, PLU-DPF, PLUD-DPF
		return dpfLoad(p.Load, p.LoadDPF, p.Distance), p.LoadDegradation
	}
}
