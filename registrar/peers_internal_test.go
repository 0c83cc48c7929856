package registrar

import (
	"sync"
	"testing"
	"time"
)

// The peering loop and the PRESENCE multicast sender jitter their periods
// from two goroutines at once; run with -race.
func TestPeers_JitterConcurrent(t *testing.T) {
	p := newPeers(&Registrar{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				if d := p.jitter(time.Second); d < 875*time.Millisecond || d > 1125*time.Millisecond {
					t.Errorf("jitter(1s) = %v, want 1s ± 12.5 %%", d)
					return
				}
			}
		}()
	}
	wg.Wait()
}
