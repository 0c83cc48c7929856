package registrar_test

import (
	"bufio"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/registrar/registrartest"
)

// BenchmarkRegister_StuckWatcher measures ASAP registrations (one PE
// after the other on one association, each answered after its raft
// commit) with no change stream client, and with clients of the stream
// that never read: their TCP windows fill, their handlers block in
// Write, and the FSM and registrations must not notice. docs/performance.md
// records the ratio of the two.
func BenchmarkRegister_StuckWatcher(b *testing.B) {
	for _, stuck := range []int{0, 4} {
		b.Run(fmt.Sprintf("stuck=%d", stuck), func(b *testing.B) {
			r := startRegistrar(b, "", nil)
			for range stuck {
				c, err := net.Dial("tcp", r.HTTPAddr())
				if err != nil {
					b.Fatal(err)
				}
				_ = c.(*net.TCPConn).SetReadBuffer(4096)
				defer c.Close()
				if _, err := fmt.Fprintf(c, "GET /v1/watch HTTP/1.1\r\nHost: bench\r\n\r\n"); err != nil {
					b.Fatal(err)
				}
				// Read the status line only: from then on it reads nothing.
				if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
					b.Fatal(err)
				}
			}
			waitFor(b, 10*time.Second, "the stuck clients connected", func() bool {
				return registrartest.Metric(b, r.HTTPAddr(), "rsp_watch_clients") == float64(stuck)
			})
			cl := dial(b, r, true)
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				pe := testPE(uint32(i+1), 7000, asap.Policy{Type: asap.PolicyRoundRobin})
				mustRegister(b, cl, "bench", pe)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "registrations/s")
			b.StopTimer()
			if got := registrartest.Metric(b, r.HTTPAddr(), "rsp_watch_clients"); got != float64(stuck) {
				b.Logf("stuck clients still connected at the end: %v of %d (dropped after %v of no progress)", got, stuck, "10s")
			}
		})
	}
}
