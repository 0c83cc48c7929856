package registrar

import (
	"sync/atomic"
	"time"
)

// rateLimits holds the limits of handle resolutions and unreachability
// reports, each a token bucket per ASAP connection (not per address: a PU
// that floods does not starve a polite one on the same host). What goes
// beyond a limit is dropped without an answer (an answer would cost what
// the limit saves, and RSPLIB's PUs retry a resolution on their own
// timer). Rates and bursts change live (SIGHUP).
type rateLimits struct {
	res, unr, msg atomic.Pointer[limit]
}

// limit is a limiter's setting.
type limit struct {
	rate  float64 // tokens per second; 0 = unlimited
	burst float64
}

// bucket is one connection's tokens for one limit; only the connection's
// reader goroutine uses it.
type bucket struct {
	tokens float64
	last   time.Time
	used   bool // tokens and last are set
}

func newRateLimits(cfg Config) *rateLimits {
	r := &rateLimits{}
	r.configure(cfg)
	return r
}

// configure sets the rates and bursts of cfg. Buckets keep their tokens,
// capped at the new burst.
func (r *rateLimits) configure(cfg Config) {
	r.res.Store(&limit{rate: cfg.ResolutionRate, burst: float64(cfg.ResolutionBurst)})
	r.unr.Store(&limit{rate: cfg.UnreachableRate, burst: float64(cfg.UnreachableBurst)})
	r.msg.Store(&limit{rate: cfg.MessageRate, burst: max(1, cfg.MessageRate)})
}

func (r *rateLimits) allowResolution(b *bucket) bool  { return r.res.Load().allowNow(b) }
func (r *rateLimits) allowUnreachable(b *bucket) bool { return r.unr.Load().allowNow(b) }
func (r *rateLimits) allowMessage(b *bucket) bool     { return r.msg.Load().allowNow(b) }

// allowNow is allow at the current time, which it reads only when there
// is a limit (the clock costs on every message otherwise).
func (set *limit) allowNow(b *bucket) bool {
	if set.rate <= 0 {
		return true
	}
	return set.allow(b, time.Now())
}

func (set *limit) allow(b *bucket, now time.Time) bool {
	if set.rate <= 0 {
		return true
	}
	if !b.used {
		b.tokens, b.last, b.used = set.burst, now, true
	}
	b.tokens += now.Sub(b.last).Seconds() * set.rate
	if b.tokens > set.burst {
		b.tokens = set.burst
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
