package registrar

import (
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rserpool-go/registrar/cluster"
)

// A takeover or a reset committed while the supervision loop is busy
// (its event queue full) is not lost: the loop gets it once it catches up.
func TestLiveness_CommittedEventsWaitForAFullQueue(t *testing.T) {
	r := &Registrar{id: 1, cfg: DefaultConfig(), log: hclog.NewNullLogger(), quit: make(chan struct{})}
	t.Cleanup(func() { _ = r.stopGoroutines() })
	l := newLiveness(r)
	for len(l.events) < cap(l.events) {
		l.events <- func() {}
	}
	l.committed(&cluster.Command{Kind: cluster.KindTakeover, Owners: []uint32{2, 1}}, nil)
	l.committed(&cluster.Command{Kind: cluster.KindReset}, nil)
	want := cap(l.events) + 2
	for got := 0; got < want; got++ {
		select {
		case <-l.events:
		case <-time.After(5 * time.Second):
			t.Fatalf("got %d events, want %d", got, want)
		}
	}
}
