package registrar

import (
	"net/netip"
	"sync"
	"time"
)

// rateLimits keeps a token bucket per PU address for resolutions and for
// unreachability reports, like RSPLIB's per-PU limits. Idle buckets are
// dropped so the map stays small.
type rateLimits struct {
	res, unr limiter
}

type limiter struct {
	rate  float64 // tokens per second; 0 = unlimited
	burst float64
	mu    sync.Mutex
	b     map[netip.Addr]*bucket
	swept time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newRateLimits(cfg Config) *rateLimits {
	return &rateLimits{
		res: limiter{rate: cfg.ResolutionRate, burst: float64(cfg.ResolutionBurst), b: map[netip.Addr]*bucket{}},
		unr: limiter{rate: cfg.UnreachableRate, burst: float64(cfg.UnreachableBurst), b: map[netip.Addr]*bucket{}},
	}
}

func (r *rateLimits) allowResolution(a netip.Addr) bool  { return r.res.allow(a, time.Now()) }
func (r *rateLimits) allowUnreachable(a netip.Addr) bool { return r.unr.allow(a, time.Now()) }

func (l *limiter) allow(a netip.Addr, now time.Time) bool {
	if l.rate <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		for k, b := range l.b {
			if now.Sub(b.last) > time.Minute {
				delete(l.b, k)
			}
		}
		l.swept = now
	}
	b, ok := l.b[a]
	if !ok {
		b = &bucket{tokens: l.burst, last: now}
		l.b[a] = b
	}
	b.tokens += now.Sub(b.last).Seconds() * l.rate
	if b.tokens > l.burst {
		b.tokens = l.burst
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
