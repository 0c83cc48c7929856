package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rserpool-go/registrar/asap/csp"
	"github.com/rserpool-go/registrar/transport"
)

// Component Status Protocol reports (RSPLIB's monitoring, asap/csp) of
// rsp serve (a PE) and rsp connect (a PU): with -csp-server, every
// -csp-interval, what RSPLIB's PEs and PUs report (src/rspenhancedmode.c,
// getSessionStatus), and a final report at the end.

// cspFlags are the CSP reporting flags.
type cspFlags struct {
	server   string
	interval time.Duration
}

func (f *cspFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&f.server, "csp-server", "", "report status to this RSPLIB CSP monitor (cspmonitor), host[:port] (port 2960)")
	fs.DurationVar(&f.interval, "csp-interval", time.Second, "period of CSP status reports (at least 250ms)")
}

// check validates the flags (no name resolution).
func (f *cspFlags) check() error {
	if f.interval < 250*time.Millisecond || f.interval > time.Hour {
		return fmt.Errorf("-csp-interval %v: from 250ms (RSPLIB's bound) to 1h", f.interval)
	}
	if f.server == "" {
		return nil
	}
	if _, err := csp.HostPort(f.server); err != nil {
		return fmt.Errorf("-csp-server: %v", err)
	}
	return nil
}

// start reports report() every interval until the returned stop, which
// sends the final report and waits. Without -csp-server it does nothing.
func (f *cspFlags) start(sender uint64, report func() *csp.Report, log hclog.Logger) (stop func(), err error) {
	if f.server == "" {
		return func() {}, nil
	}
	hp, err := csp.HostPort(f.server)
	if err != nil {
		return nil, fmt.Errorf("-csp-server: %v", err)
	}
	addr, err := net.ResolveUDPAddr("udp", hp)
	if err != nil {
		return nil, fmt.Errorf("-csp-server %s: %v", f.server, err)
	}
	conn, err := net.DialUDP("udp", nil, addr)
	if err != nil {
		return nil, fmt.Errorf("-csp-server %s: %w", f.server, err)
	}
	start := time.Now()
	send := func(r *csp.Report) {
		r.Sender, r.Interval = sender, uint32(f.interval.Microseconds())
		r.Time = uint64(time.Since(start).Microseconds())
		b, err := csp.Append(nil, r)
		if err == nil {
			_, err = conn.Write(b)
		}
		if err != nil && !errors.Is(err, net.ErrClosed) { // best effort: the monitor may be down
			log.Debug("csp status report not sent", "error", err)
		}
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer conn.Close()
		t := time.NewTicker(f.interval)
		defer t.Stop()
		for {
			send(report())
			select {
			case <-quit:
				send(&csp.Report{Final: true, Workload: csp.Workload(0)})
				return
			case <-t.C:
			}
		}
	}()
	log.Debug("reporting status to a CSP monitor", "monitor", addr.String(), "interval", f.interval)
	var once sync.Once
	return func() { once.Do(func() { close(quit); wg.Wait() }) }, nil
}

// ipProto is the IP protocol number of a transport, as CSP lists it.
func ipProto(k transport.Kind) uint16 {
	if k == transport.KindSCTP {
		return 132
	}
	return 6
}

// durationSince is the µs since t, or unknown for the zero time.
func durationSince(t time.Time) uint64 {
	if t.IsZero() {
		return csp.DurationUnknown
	}
	return uint64(time.Since(t).Microseconds())
}

// sessions formats RSPLIB's status text "N Session(s)".
func sessions(n int) string {
	if n == 1 {
		return "1 Session"
	}
	return fmt.Sprintf("%d Sessions", n)
}

// cspLocation is RSPLIB's location text for addrs and port, with the
// host's addresses for wildcard and loopback ones.
func cspLocation(addrs []netip.Addr, port uint16) string {
	host, _ := os.Hostname()
	var use []netip.Addr
	for _, a := range addrs {
		if !a.IsUnspecified() && !a.IsLoopback() {
			use = append(use, a)
		}
	}
	if len(use) == 0 {
		use = hostAddrs()
	}
	return csp.Location(host, use, port)
}

// hostAddrs lists the host's unicast addresses, IPv4 first, loopback and
// link-local ones last or left out.
func hostAddrs() []netip.Addr {
	ifas, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var v4, v6, loop []netip.Addr
	for _, ifa := range ifas {
		ipn, ok := ifa.(*net.IPNet)
		if !ok {
			continue
		}
		a, ok := netip.AddrFromSlice(ipn.IP)
		if !ok || a.IsLinkLocalUnicast() || a.IsMulticast() {
			continue
		}
		switch a = a.Unmap(); {
		case a.IsLoopback():
			loop = append(loop, a)
		case a.Is4():
			v4 = append(v4, a)
		default:
			v6 = append(v6, a)
		}
	}
	if len(v4)+len(v6) == 0 {
		return loop
	}
	return append(v4, v6...)
}
