//go:build unix

package registrar_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/registrar"
	"github.com/rserpool-go/registrar/registrar/registrartest"
	"github.com/rserpool-go/registrar/transport"
)

// flood holds raw TCP connections to a registrar's ports and counts
// those the registrar closed.
type flood struct {
	mu     sync.Mutex
	conns  []net.Conn
	closed atomic.Int64
	wg     sync.WaitGroup
}

// dial opens one connection to addr (host:port) and watches it: a read
// that ends means the registrar closed it (nothing is ever sent on it).
func (f *flood) dial(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatalf("flood connection %d to %s: %v", f.len()+1, addr, err)
	}
	f.mu.Lock()
	f.conns = append(f.conns, c)
	f.mu.Unlock()
	f.wg.Add(1)
	go func() { // ends when the connection closes (either side)
		defer f.wg.Done()
		var b [64]byte
		for {
			if _, err := c.Read(b[:]); err != nil {
				if !errors.Is(err, net.ErrClosed) {
					f.closed.Add(1)
				}
				return
			}
		}
	}()
}

func (f *flood) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.conns)
}

// close closes every connection and waits for the watchers.
func (f *flood) close() {
	f.mu.Lock()
	for _, c := range f.conns {
		c.Close()
	}
	f.conns = nil
	f.mu.Unlock()
	f.wg.Wait()
}

// waitKeepAlives waits until the PE client has received n more
// keep-alives than it had at from (each answered: autoAck).
func waitKeepAlives(t *testing.T, name string, cl *client, from int64, n int64) {
	t.Helper()
	waitFor(t, 20*time.Second, fmt.Sprintf("%d keep-alives to %s after %d (saw %d)", n, name, from, cl.kas.Load()), func() bool {
		return cl.kas.Load() >= from+n
	})
}

// Ensure that at the real file descriptor limit (an agent run with
// RLIMIT_NOFILE 600, soft and hard, so that the cap is 600-256 = 344
// connections) a flood of ASAP and ENRP connections, far beyond the
// limit's worth, and a flood of the raft port (cap 128), are refused by
// the connection caps and not by EMFILE: the
// connections beyond the cap are closed at once and counted, the admin
// API answers, the PEs already registered keep being supervised (their
// keep-alives sent and answered, none removed) and served (resolution,
// a new registration over their connection), the registrar can still
// dial a PE's ASAP endpoint to probe it when its registration connection
// closes, its log has no accept error, and when the flood ends new
// connections are accepted again.
//
// Under a limit below 512 the reserve is half the limit (a fixed 256
// would leave no cap at all, and the flood would run into EMFILE), and
// the agent warns at start.
func TestE2E_FileLimitConnectionFlood(t *testing.T) {
	for _, tc := range []struct {
		nofile, capConns int
		low              bool
	}{
		{600, 600 - 256, false}, // fdReserve 256
		{400, 400 / 2, true},    // low: half is kept
	} {
		t.Run(fmt.Sprintf("nofile=%d", tc.nofile), func(t *testing.T) {
			fileLimitFlood(t, tc.nofile, tc.capConns, tc.low)
		})
	}
}

func fileLimitFlood(t *testing.T, nofile, capConns int, low bool) {
	const (
		asapN = 700 // flood connections to the ASAP port
		enrpN = 300 // and to the ENRP port: 1000, beyond the limit
	)
	a := registrartest.StartAgentFileLimit(t, t.TempDir(), nofile,
		"-keepalive-interval", "200ms", "-keepalive-timeout", "5s")
	a.WaitLine(0, fmt.Sprintf("open file limit: limit=%d hard=%d max_connections=%d", nofile, nofile, capConns), 10*time.Second)
	const lowLine = "open file limit is low"
	if got := strings.Contains(a.Output(), lowLine); got != low {
		t.Errorf("start with open file limit %d: logged %q: %v, want %v", nofile, lowLine, got, low)
	}
	asapAddr := strings.TrimPrefix(a.ASAP, "tcp:")
	enrpAddr := strings.TrimPrefix(a.ENRP, "tcp:")

	// Three PEs, each on its own connection, and a fourth whose ASAP
	// endpoint is the test's listener: its registration connection is
	// closed during the flood, and the registrar must dial it.
	rr := asap.Policy{Type: asap.PolicyRoundRobin}
	pes := make([]*client, 3)
	for i := range pes {
		pes[i] = dialAddr(t, a.ASAP, true)
		mustRegister(t, pes[i], "pool", testPE(uint32(i+1), uint16(7001+i), rr))
	}
	lcfg := transport.DefaultConfig()
	lcfg.PPID = transport.PPIDASAP
	ln, err := transport.Listen(context.Background(), "tcp:127.0.0.1:0", lcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	probed := testPE(5, 7005, rr)
	probed.ASAP = asap.Transport{Kind: asap.ParamTCPTransport, Port: ln.Addrs()[0].Port, Use: asap.UseDataAndControl, Addrs: []netip.Addr{loopback}}
	reg5 := dialAddr(t, a.ASAP, true)
	mustRegister(t, reg5, "pool", probed)
	const existing = 4 // ASAP connections open before the flood

	// The flood: every connection beyond the cap is closed at once.
	f := &flood{}
	t.Cleanup(f.close)
	kas := make([]int64, len(pes))
	for i, pe := range pes {
		kas[i] = pe.kas.Load()
	}
	for i := range asapN + enrpN {
		if i%10 < 7 { // mixed, so that both listeners hit the cap
			f.dial(t, asapAddr)
		} else {
			f.dial(t, enrpAddr)
		}
	}
	refused := int64(asapN + enrpN - (capConns - existing))
	waitValue(t, 30*time.Second, fmt.Sprintf("flood connections closed by the registrar (of %d; the cap %d admits %d beside the PEs')", asapN+enrpN, capConns, capConns-existing), func() int64 {
		return min(f.closed.Load(), refused)
	}, refused)
	waitValue(t, 10*time.Second, `rsp_connections_refused_total{reason="global"}`, func() float64 {
		return registrartest.Metric(t, a.HTTP, `rsp_connections_refused_total{reason="global"}`)
	}, float64(refused))
	if n := f.closed.Load(); n != refused {
		t.Errorf("%d flood connections closed by the registrar, want %d (the cap admits %d beside the %d PE connections)", n, refused, capConns-existing, existing)
	}

	// A flood of the raft port on top: its own cap (128) closes the rest.
	rf := &flood{}
	t.Cleanup(rf.close)
	const raftN, raftCap = 300, 128
	for range raftN {
		rf.dial(t, a.Raft)
	}
	waitFor(t, 20*time.Second, fmt.Sprintf("%d of %d raft port flood connections closed (its cap is %d; saw %d)", raftN-raftCap, raftN, raftCap, rf.closed.Load()), func() bool {
		return rf.closed.Load() >= raftN-raftCap
	})

	// At the caps: the admin API answers.
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Get("http://" + a.HTTP + "/v1/status")
	if err != nil {
		t.Fatalf("admin API at the connection cap: %v", err)
	}
	var st registrar.Status
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/status at the connection cap: %s, %v", resp.Status, err)
	}
	if st.FDLimit != uint64(nofile) {
		t.Errorf("status fd_limit %d, want %d", st.FDLimit, nofile)
	}

	// The PEs are still supervised and served over their connections.
	for i, pe := range pes {
		waitKeepAlives(t, fmt.Sprintf("PE %d", i+1), pe, kas[i], 2)
	}
	if res := resolve(t, pes[0], "pool", 10); len(res.PEs) != 4 {
		t.Fatalf("resolution over a PE connection at the cap: %d PEs, want 4: %+v", len(res.PEs), res)
	}
	mustRegister(t, pes[1], "pool", testPE(4, 7004, rr))

	// PE 5's registration connection closes: the registrar probes its
	// ASAP endpoint, a dial of its own at the cap, and goes on
	// supervising it there.
	reg5.c.Close()
	actx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pc, err := ln.Accept(actx)
	if err != nil {
		t.Fatalf("no probe of PE 5 at its ASAP endpoint after its connection closed (at the cap): %v", err)
	}
	t.Cleanup(func() { pc.Close() })
	for n := range 2 { // the probe and the next keep-alive, both answered
		_, b, err := pc.Recv(actx)
		if err != nil {
			t.Fatalf("keep-alive %d to PE 5 at its ASAP endpoint: %v", n+1, err)
		}
		m, _, err := asap.Unpack(b, nil)
		ka, ok := m.(*asap.EndpointKeepAlive)
		if err != nil || !ok || ka.ID != 5 {
			t.Fatalf("message %d at PE 5's ASAP endpoint: %T %+v, %v; want a keep-alive for PE 5", n+1, m, m, err)
		}
		ack, _ := asap.Pack(&asap.EndpointKeepAliveAck{PoolHandle: ka.PoolHandle, ID: ka.ID})
		if err := pc.Send(actx, transport.PPIDASAP, ack); err != nil {
			t.Fatalf("ACK from PE 5: %v", err)
		}
	}

	// Nothing ran out of descriptors, nothing was removed.
	out := a.Output()
	for _, bad := range []string{"too many open files", "accept failed", "http: Accept error"} {
		if n := strings.Count(strings.ToLower(out), strings.ToLower(bad)); n > 0 {
			t.Errorf("the registrar logged %q %d times at the connection cap", bad, n)
		}
	}
	if n := registrartest.Metric(t, a.HTTP, "rsp_pe_removals_total"); n != 0 {
		t.Errorf("rsp_pe_removals_total %v at the connection cap, want 0 (all PEs answer)", n)
	}

	// The flood ends: new connections are accepted again (once the
	// registrar has seen the flood's connections close).
	f.close()
	waitFor(t, 20*time.Second, "a new connection served after the flood closed", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := transport.Dial(ctx, a.ASAP, lcfg)
		if err != nil {
			return false
		}
		defer c.Close()
		b, _ := asap.Pack(&asap.HandleResolution{PoolHandle: "pool"})
		if c.Send(ctx, transport.PPIDASAP, b) != nil {
			return false
		}
		_, rb, err := c.Recv(ctx) // a refused connection ends here
		if err != nil {
			return false
		}
		m, _, err := asap.Unpack(rb, nil)
		res, ok := m.(*asap.HandleResolutionResponse)
		return err == nil && ok && len(res.PEs) > 0
	})
	if res := resolve(t, pes[2], "pool", 10); len(res.PEs) != 5 {
		t.Errorf("after the flood: %d PEs, want 5: %+v", len(res.PEs), res)
	}
}
