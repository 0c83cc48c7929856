package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"regexp"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap/csp"
	"github.com/rserpool-go/registrar/asap/sharedtest"
	"github.com/rserpool-go/registrar/registrar/registrartest"
	"github.com/rserpool-go/registrar/transport"
)

// cspCollector receives CSP reports on a UDP socket.
type cspCollector struct {
	pc net.PacketConn
	ch chan *csp.Report
}

func newCSPCollector(t *testing.T) *cspCollector {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cspCollector{pc: pc, ch: make(chan *csp.Report, 1024)}
	go func() {
		buf := make([]byte, 65536)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			r, err := csp.Parse(buf[:n])
			if err != nil {
				t.Errorf("a CSP report does not parse: %v", err)
				continue
			}
			c.ch <- r
		}
	}()
	t.Cleanup(func() { pc.Close() })
	return c
}

func (c *cspCollector) wait(t *testing.T, what string, match func(*csp.Report) bool) *csp.Report {
	t.Helper()
	timeout := time.After(15 * time.Second)
	var last *csp.Report
	for {
		select {
		case r := <-c.ch:
			if match(r) {
				return r
			}
			last = r
		case <-timeout:
			t.Fatalf("no CSP report with %s within 15s; last: %+v", what, last)
		}
	}
}

func hasAssoc(r *csp.Report, want csp.Association) bool {
	for _, a := range r.Associations {
		if a.Receiver == want.Receiver && a.Protocol == want.Protocol && a.PPID == want.PPID && a.Duration != csp.DurationUnknown {
			return true
		}
	}
	return false
}

// Ensure that rsp serve and rsp connect report their status to a CSP
// monitor as RSPLIB's PEs and PUs do: the PE its sessions, load and
// registrar association; the PU its session and its associations with
// the registrar and the PE; both a final report when they stop.
func TestCSPReports(t *testing.T) {
	sharedtest.CheckLeaks(t)
	mon := newCSPCollector(t)
	r := registrartest.Start(t, "", nil)
	reg := r.ASAPAddr()
	cspArgs := []string{"-csp-server", mon.pc.LocalAddr().String(), "-csp-interval", "250ms"}
	pe := startServe(t, append([]string{"-registrar", reg, "-pool", "csp", "-id", "0x1001", "-policy", "lu:25%",
		"-listen", "tcp:127.0.0.1:0", "-asap", "tcp:127.0.0.1:0"}, cspArgs...)...)
	peID := csp.ID(csp.GroupPoolElement, 0x1001)
	toRegistrar := csp.Association{Receiver: csp.ID(csp.GroupRegistrar, uint64(r.ID())), Protocol: 6, PPID: transport.PPIDASAP}
	mon.wait(t, "the idle PE", func(rep *csp.Report) bool {
		return rep.Sender == peID && rep.Status == "0 Sessions" && rep.Workload == csp.Workload(0.25) &&
			rep.Interval == 250000 && hasAssoc(rep, toRegistrar) && len(rep.Associations) == 1
	})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stdin, feed := io.Pipe()
	cout, cerr := &sharedtest.Buffer{}, &sharedtest.Buffer{}
	done := make(chan int, 1)
	go func() {
		done <- connectCmd(ctx, append([]string{"-registrar", reg, "-timeout", "3s"}, append(cspArgs, "csp")...), stdin, cout, cerr)
	}()
	fmt.Fprintln(feed, "hello")
	cout.Wait(t, "the echo", regexp.MustCompile("(?m)^hello$"), 10*time.Second)
	pu := mon.wait(t, "the PU's session", func(rep *csp.Report) bool {
		return csp.GroupOf(rep.Sender) == csp.GroupPoolUser && rep.Status == "1 Session" &&
			hasAssoc(rep, csp.Association{Receiver: peID, Protocol: 6}) &&
			// A PU learns the registrar's ID only from announces (off here): RSPLIB's PUs report 0 then too.
			(hasAssoc(rep, toRegistrar) || hasAssoc(rep, csp.Association{Receiver: csp.ID(csp.GroupRegistrar, 0), Protocol: 6, PPID: transport.PPIDASAP}))
	})
	mon.wait(t, "the PE's session", func(rep *csp.Report) bool { return rep.Sender == peID && rep.Status == "1 Session" })
	feed.Close()
	if code := <-done; code != 0 {
		t.Fatalf("rsp connect exited %d:\n%s", code, cerr)
	}
	mon.wait(t, "the PU's final report", func(rep *csp.Report) bool { return rep.Sender == pu.Sender && rep.Final })
	pe.stop(t)
	mon.wait(t, "the PE's final report", func(rep *csp.Report) bool { return rep.Sender == peID && rep.Final })
}

// Ensure that bad CSP flags are usage errors naming the flag.
func TestCSPFlags(t *testing.T) {
	for _, args := range [][]string{{"-csp-interval", "100ms"}, {"-csp-server", "a:b:c"}} {
		var out sharedtest.Buffer
		code := serve(context.Background(), append([]string{"-pool", "p"}, args...), &out)
		if code != 2 || !regexp.MustCompile(regexp.QuoteMeta(args[0])).MatchString(out.String()) {
			t.Errorf("rsp serve %v: exit %d, %q; want 2 and a message naming %s", args, code, out.String(), args[0])
		}
	}
}
