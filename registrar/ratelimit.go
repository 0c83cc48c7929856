package registrar

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// rateLimits keeps a token bucket per PU address for resolutions and for
// unreachability reports, like RSPLIB's per-PU limits. Idle buckets are
// dropped so the map stays small. Rates and bursts change live (SIGHUP).
type rateLimits struct {
	res, unr limiter
}

type limiter struct {
	set   atomic.Pointer[limit]
	mu    sync.Mutex
	b     map[netip.Addr]*bucket
	swept time.Time
}

// limit is a limiter's setting.
type limit struct {
	rate  float64 // tokens per second; 0 = unlimited
	burst float64
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newRateLimits(cfg Config) *rateLimits {
	r := &rateLimits{res: limiter{b: map[netip.Addr]*bucket{}}, unr: limiter{b: map[netip.Addr]*bucket{}}}
	r.configure(cfg)
	return r
}

// configure sets the rates and bursts of cfg. Buckets keep their tokens,
// capped at the new burst.
func (r *rateLimits) configure(cfg Config) {
	r.res.set.Store(&limit{rate: cfg.ResolutionRate, burst: float64(cfg.ResolutionBurst)})
	r.unr.set.Store(&limit{rate: cfg.UnreachableRate, burst: float64(cfg.UnreachableBurst)})
}

func (r *rateLimits) allowResolution(a netip.Addr) bool  { return r.res.allow(a, time.Now()) }
func (r *rateLimits) allowUnreachable(a netip.Addr) bool { return r.unr.allow(a, time.Now()) }

func (l *limiter) allow(a netip.Addr, now time.Time) bool {
	set := l.set.Load()
	if set.rate <= 0 {
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
		b = &bucket{tokens: set.burst, last: now}
		l.b[a] = b
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
