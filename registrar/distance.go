package registrar

import (
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/transport"
)

// The distance of a PE with a distance-sensitive policy (WRAND-DPF,
// LU-DPF, LUD-DPF, PLU-DPF, PLUD-DPF), as RSPLIB's registrar measures it
// (registrarUpdateDistance in src/rspregistrar-global.c): half the
// smoothed round-trip time of the association the PE registered over (or
// of the ENRP association its update came over), rounded to a multiple of
// DistanceStep, in milliseconds. A registration's distance is the
// measured one (whatever the PE sent); a peer's update adds ours to the
// peer's. See docs/wire-format.md.

// distance is the distance in milliseconds for a round-trip time, as
// RSPLIB computes it: half the round-trip time in whole milliseconds,
// rounded to the nearest multiple of step (in whole milliseconds), a
// tie to the even multiple (rint).
func distance(rtt, step time.Duration) uint32 {
	half, s := rtt.Milliseconds()/2, step.Milliseconds()
	if s <= 0 || half <= 0 {
		return 0
	}
	q, rem := half/s, half%s
	if 2*rem > s || (2*rem == s && q%2 == 1) {
		q++
	}
	if q*s > 0xFFFFFFFF {
		return 0xFFFFFFFF
	}
	return uint32(q * s)
}

// withDistance sets the distance of a distance-sensitive policy: base
// plus this registrar's distance over c (0 when the transport measures
// none). Other policies are returned unchanged.
func (r *Registrar) withDistance(p asap.Policy, c transport.Conn, base uint32) asap.Policy {
	if !p.Type.DistanceSensitive() {
		return p
	}
	var d uint32
	if c != nil {
		if rtt, ok := transport.RTT(c); ok {
			d = distance(rtt, r.cfg.DistanceStep.D())
		}
	}
	p.Distance = base + d
	if p.Distance < base { // saturate
		p.Distance = 0xFFFFFFFF
	}
	return p
}
