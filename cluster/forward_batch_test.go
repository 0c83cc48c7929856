package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/enrp"
	"github.com/rserpool-go/registrar/store"
)

// Ensure concurrent writes at a follower travel to the leader in batches
// (fewer round trips than writes), each answered with its own result: a
// refused PE gets its refusal while the others of its batch commit, and
// every write is read at the follower as soon as it is answered.
func TestInmemCluster_ForwardBatches(t *testing.T) {
	c := startInmemCluster3(t)
	l := c.leader()
	f := c.followers(l)[0]
	// One PE first, so the pool's policy is round robin before the rest.
	register(t, f, 1)
	const writers, each = 32, 8
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				id := uint32(1000*(w+1) + i)
				p := pe(id, f.id)
				bad := i == each/2 && w%4 == 0 // refused: its pool's policy is round robin
				if bad {
					p.Policy = asap.Policy{Type: asap.PolicyLeastUsed, Load: 1}
				}
				res, err := f.node.Propose(context.Background(), NewUpdate(time.Now(), enrp.AddPE, f.id, "pool", p))
				if err != nil {
					errs <- fmt.Errorf("PE %d: %v", id, err)
					continue
				}
				ferr := res.Failed()
				switch {
				case bad && !errors.Is(ferr, store.ErrPolicyMismatch):
					errs <- fmt.Errorf("PE %d with another policy: %v, want ErrPolicyMismatch", id, ferr)
				case !bad && ferr != nil:
					errs <- fmt.Errorf("PE %d: %v", id, ferr)
				case !bad:
					if _, ok := f.st.Lookup("pool", id); !ok {
						errs <- fmt.Errorf("PE %d answered before the follower applied it", id)
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	batches, batched := f.node.batch.batches.Load(), f.node.batch.batched.Load()
	if batches == 0 || batched < 2*batches {
		t.Errorf("%d batch frames with %d writes for %d concurrent writes: want batches of several", batches, batched, writers*each)
	}
	t.Logf("%d writes, %d of them in %d batch frames", writers*each, batched, batches)
	good := 1 + writers*each - (writers+3)/4
	c.waitFor(10*time.Second, "every committed PE at the leader", func() (bool, string) {
		_, n := l.st.Counts()
		return n == good, fmt.Sprintf("%d PEs, want %d", n, good)
	})
}
