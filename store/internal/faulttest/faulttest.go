// Package faulttest injects storage failures for the durability tests of
// the handlespace file (package store) and the raft log (package
// raftlog): a Schedule decides, operation by operation, whether a write
// fails and with which error.
package faulttest

import (
	"math/rand/v2"
	"sync"
	"syscall"
)

// Schedule injects failures in windows: most operations pass, and now and
// then a window of a random number of operations fails about one in two
// of them with one of ENOSPC or EIO. It is deterministic for a seed and
// safe for concurrent use.
type Schedule struct {
	mu       sync.Mutex
	rng      *rand.Rand
	left     int // operations left in the current window
	errno    error
	injected int
}

// NewSchedule returns a schedule for seed.
func NewSchedule(seed uint64) *Schedule {
	return &Schedule{rng: rand.New(rand.NewPCG(seed, 5))}
}

// Next decides the outcome of one operation at site (every site alike):
// nil, or the error to fail it with. Its signature is store.Options.InjectFault's.
func (f *Schedule) Next(site string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.left == 0 {
		if f.rng.IntN(40) != 0 {
			return nil
		}
		f.left = 1 + f.rng.IntN(12)
		f.errno = []error{syscall.ENOSPC, syscall.EIO}[f.rng.IntN(2)]
	}
	f.left--
	if f.rng.IntN(2) == 0 {
		return nil
	}
	f.injected++
	return f.errno
}

// Injected is the number of failures injected so far.
func (f *Schedule) Injected() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.injected
}
