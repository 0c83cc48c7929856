package transport_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/rserpool-go/registrar/asap/sharedtest"
	"github.com/rserpool-go/registrar/transport"
)

// requireSCTP skips the test on a kernel without SCTP, or fails it when
// RSP_REQUIRE_SCTP=1 (set by `make test-sctp`, natively and in the lab VM),
// so SCTP tests can never pass there by skipping.
func requireSCTP(t *testing.T) {
	t.Helper()
	err := transport.KernelSCTP()
	if err == nil {
		return
	}
	if os.Getenv("RSP_REQUIRE_SCTP") == "1" {
		t.Fatalf("RSP_REQUIRE_SCTP=1 but the kernel has no SCTP: %v", err)
	}
	t.Skipf("kernel has no SCTP (%v): run `make test-sctp`, which runs the SCTP tests natively or in the SCTP lab VM", err)
}

func sctpPair(spec string) pairFunc {
	return func(t *testing.T, cfg transport.Config) (transport.Conn, transport.Conn) {
		return listenPair(t, spec, cfg)
	}
}

var sctpPPIDs = []uint32{transport.PPIDASAP, transport.PPIDENRP, 47, 0}

func TestSCTPConn(t *testing.T) {
	requireSCTP(t)
	sharedtest.CheckLeaks(t, testFrames)
	testConn(t, suite{pair: sctpPair("sctp:127.0.0.1:0"), ppids: sctpPPIDs})
}

func TestSCTPConnIPv6(t *testing.T) {
	requireSCTP(t)
	sharedtest.CheckLeaks(t, testFrames)
	if !haveIPv6Loopback() {
		t.Fatal("no IPv6 loopback (::1): the SCTP tests need it")
	}
	testConn(t, suite{pair: sctpPair("sctp:[::1]:0"), ppids: sctpPPIDs})
}

// TestSCTPPPIDs checks that the PPID travels with each message, both ways,
// and that a message is delivered whole even when larger than one SCTP
// packet (fragmented and reassembled).
func TestSCTPPPIDs(t *testing.T) {
	requireSCTP(t)
	sharedtest.CheckLeaks(t, testFrames)
	a, b := listenPair(t, "sctp:127.0.0.1:0", transport.DefaultConfig())
	if a.Kind() != transport.KindSCTP || b.Kind() != transport.KindSCTP {
		t.Fatalf("kinds: got %v and %v, want sctp", a.Kind(), b.Kind())
	}
	asap, enrp := mkMsg(12, 1), mkMsg(60000, 2)
	mustSend(t, a, transport.PPIDASAP, asap)
	mustSend(t, a, transport.PPIDENRP, enrp)
	mustSend(t, b, transport.PPIDENRP, asap)
	for _, want := range []struct {
		c    transport.Conn
		ppid uint32
		n    int
	}{{b, 11, 12}, {b, 12, 60000}, {a, 12, 12}} {
		ppid, msg := mustRecv(t, want.c)
		if ppid != want.ppid || len(msg) != want.n {
			t.Fatalf("got ppid %d, %d bytes; want ppid %d, %d bytes", ppid, len(msg), want.ppid, want.n)
		}
	}
}

// TestSCTPReceiverLimit: a message over the receiver's MaxMessageSize
// fails Recv with ErrMessageTooLarge and closes the association.
func TestSCTPReceiverLimit(t *testing.T) {
	requireSCTP(t)
	sharedtest.CheckLeaks(t, testFrames)
	ctx := ctxTimeout(t, 10*time.Second)
	small := transport.DefaultConfig()
	small.MaxMessageSize = 1000
	var lb *sharedtest.Buffer
	small.Logger, lb = sharedtest.BufferLogger(t, t.Name())
	l, err := transport.Listen(ctx, "sctp:127.0.0.1:0", small)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	a, err := transport.Dial(ctx, "sctp:"+l.Addrs()[0].String(), transport.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	mustSend(t, a, 11, mkMsg(1000, 1))
	mustSend(t, a, 11, mkMsg(5000, 2))
	if _, msg := mustRecv(t, b); len(msg) != 1000 {
		t.Fatalf("got %d bytes, want 1000", len(msg))
	}
	if _, _, err := b.Recv(ctx); !errors.Is(err, transport.ErrMessageTooLarge) {
		t.Fatalf("Recv of 5000 bytes with limit 1000: got %v, want ErrMessageTooLarge", err)
	}
	if !lb.Contains("message too large", time.Second) {
		t.Errorf("not logged; log:\n%s", lb)
	}
}

func addrSet(as []netip.Addr) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.String())
	}
	slices.Sort(out)
	return out
}

func sctpAddrSet(a transport.Endpoint) []string {
	if a.Kind != transport.KindSCTP {
		return []string{"not an SCTP endpoint: " + a.Kind.String()}
	}
	return addrSet(a.Addrs)
}

func hostAddrs(t *testing.T) map[string]bool {
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, a := range ifaddrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			have[p.Addr().String()] = true
		}
	}
	return have
}

// TestSCTPMultiHomed binds two local addresses on each side and checks that
// each side sees all the other's addresses.
func TestSCTPMultiHomed(t *testing.T) {
	requireSCTP(t)
	sharedtest.CheckLeaks(t, testFrames)
	cases := []struct {
		name           string
		server, client []string
	}{
		{"Loopback", []string{"127.0.0.1", "127.0.0.2"}, []string{"127.0.0.3", "127.0.0.4"}},
	}
	if have := hostAddrs(t); have["10.99.0.1"] && have["10.99.0.2"] && have["10.99.0.3"] {
		cases = append(cases, struct {
			name           string
			server, client []string
		}{"LabDummy", []string{"10.99.0.1", "10.99.0.2"}, []string{"10.99.0.3"}})
	} else if os.Getenv("SCTP_LAB") == "1" {
		t.Errorf("in the SCTP lab but 10.99.0.1-3 are missing: %v", have)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxTimeout(t, 10*time.Second)
			l, err := transport.Listen(ctx, "sctp:"+strings.Join(tc.server, ",")+":0", transport.DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			la := l.Addrs()[0]
			if la.Kind != transport.KindSCTP || len(la.Addrs) != len(tc.server) || la.Port == 0 {
				t.Fatalf("listener Addrs: got %v, want %v with a port", la, tc.server)
			}
			cfg := transport.DefaultConfig()
			for _, a := range tc.client {
				cfg.LocalAddrs = append(cfg.LocalAddrs, netip.MustParseAddr(a))
			}
			// Dial the peer by all its addresses (sctp_connectx).
			a, err := transport.Dial(ctx, "sctp:"+strings.Join(tc.server, ",")+":"+strconv.Itoa(int(la.Port)), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			b, err := l.Accept(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if got := addrSet(a.PeerAddrs()); !slices.Equal(got, tc.server) {
				t.Errorf("client PeerAddrs: got %v, want %v", got, tc.server)
			}
			if got := addrSet(b.PeerAddrs()); !slices.Equal(got, tc.client) {
				t.Errorf("server PeerAddrs: got %v, want %v", got, tc.client)
			}
			if got := sctpAddrSet(a.LocalAddr()); !slices.Equal(got, tc.client) {
				t.Errorf("client LocalAddr: got %v, want %v", got, tc.client)
			}
			if got := sctpAddrSet(b.LocalAddr()); !slices.Equal(got, tc.server) {
				t.Errorf("server LocalAddr: got %v, want %v", got, tc.server)
			}
			if ra := b.RemoteAddr(); ra.Kind != transport.KindSCTP || len(ra.Addrs) != len(tc.client) {
				t.Errorf("server RemoteAddr: got %v, want %d addresses", ra, len(tc.client))
			}
			mustSend(t, a, 11, mkMsg(100, 1))
			if ppid, msg := mustRecv(t, b); ppid != 11 || msgSeq(msg) != 1 {
				t.Fatalf("got ppid %d seq %d", ppid, msgSeq(msg))
			}
			t.Logf("client %v <-> server %v", a.LocalAddr(), b.LocalAddr())
		})
	}
}

// TestSCTPDualStack binds an IPv6 and an IPv4 address to one SCTP socket
// ("[::1],127.0.0.1:port") and reaches it over both.
func TestSCTPDualStack(t *testing.T) {
	requireSCTP(t)
	sharedtest.CheckLeaks(t, testFrames)
	ctx := ctxTimeout(t, 10*time.Second)
	l, err := transport.Listen(ctx, "sctp:[::1],127.0.0.1:0", transport.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	la := l.Addrs()[0]
	port := strconv.Itoa(int(la.Port))
	for _, spec := range []string{"sctp:[::1]:" + port, "sctp:127.0.0.1:" + port, "sctp:[::1],127.0.0.1:" + port} {
		a, err := transport.Dial(ctx, spec, transport.DefaultConfig())
		if err != nil {
			t.Fatalf("Dial %s: %v", spec, err)
		}
		b, err := l.Accept(ctx)
		if err != nil {
			t.Fatal(err)
		}
		mustSend(t, a, 12, mkMsg(40, 3))
		if ppid, msg := mustRecv(t, b); ppid != 12 || msgSeq(msg) != 3 {
			t.Fatalf("%s: got ppid %d seq %d", spec, ppid, msgSeq(msg))
		}
		t.Logf("%s: client sees peer %v, server sees peer %v", spec, a.PeerAddrs(), b.PeerAddrs())
		if len(a.PeerAddrs()) == 0 || len(b.PeerAddrs()) == 0 {
			t.Errorf("%s: empty PeerAddrs", spec)
		}
		a.Close()
		b.Close()
	}
}

// TestSCTPAuto: an auto listener takes SCTP and TCP on one port; an auto
// Dial uses SCTP, and falls back to TCP when the peer listens on TCP only.
func TestSCTPAuto(t *testing.T) {
	requireSCTP(t)
	sharedtest.CheckLeaks(t, testFrames)
	ctx := ctxTimeout(t, 20*time.Second)
	cfg := transport.DefaultConfig()
	cfg.PPID = transport.PPIDENRP
	l, err := transport.Listen(ctx, "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addrs := l.Addrs()
	if len(addrs) != 2 {
		t.Fatalf("auto listener Addrs: got %v, want a TCP and an SCTP address", addrs)
	}
	tcpA, sctpA := addrs[0], addrs[1]
	if tcpA.Kind != transport.KindTCP || sctpA.Kind != transport.KindSCTP || tcpA.Port != sctpA.Port {
		t.Fatalf("auto listener Addrs: got %v (%v, %v), want TCP and SCTP on the same port", addrs, tcpA.Kind, sctpA.Kind)
	}
	port := strconv.Itoa(int(tcpA.Port))
	for _, tc := range []struct {
		spec string
		want transport.Kind
	}{
		{"127.0.0.1:" + port, transport.KindSCTP},
		{"tcp:127.0.0.1:" + port, transport.KindTCP},
		{"sctp:127.0.0.1:" + port, transport.KindSCTP},
	} {
		a, err := transport.Dial(ctx, tc.spec, cfg)
		if err != nil {
			t.Fatalf("Dial %s: %v", tc.spec, err)
		}
		b, err := l.Accept(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if a.Kind() != tc.want || b.Kind() != tc.want {
			t.Errorf("Dial %s: kinds %v/%v, want %v", tc.spec, a.Kind(), b.Kind(), tc.want)
		}
		mustSend(t, a, transport.PPIDENRP, mkMsg(20, 4))
		if ppid, msg := mustRecv(t, b); ppid != transport.PPIDENRP || msgSeq(msg) != 4 {
			t.Fatalf("%s: got ppid %d seq %d", tc.spec, ppid, msgSeq(msg))
		}
		a.Close()
		b.Close()
	}

	// Fallback: only TCP listens on the port.
	tl, err := transport.Listen(ctx, "tcp:127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	start := time.Now()
	a, err := transport.Dial(ctx, tl.Addrs()[0].String(), cfg)
	if err != nil {
		t.Fatalf("auto Dial to a TCP-only listener: %v", err)
	}
	defer a.Close()
	if a.Kind() != transport.KindTCP {
		t.Fatalf("auto Dial to a TCP-only listener: kind %v, want tcp", a.Kind())
	}
	t.Logf("fell back to TCP after %v", time.Since(start))
	b, err := tl.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
}

// TestSCTPDialCancel: a Dial whose INIT is never answered returns when ctx
// ends, and an auto Dial gives up on SCTP after SCTPAttemptTimeout.
func TestSCTPDialCancel(t *testing.T) {
	requireSCTP(t)
	sharedtest.CheckLeaks(t, testFrames)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := transport.Dial(ctx, "sctp:127.0.0.1:9", transport.DefaultConfig()); !errors.Is(err, context.Canceled) {
		t.Fatalf("Dial with a cancelled context: got %v, want context.Canceled", err)
	}
	if os.Getenv("SCTP_LAB") != "1" {
		t.Skip("the silent-peer part runs in the SCTP lab VM only, where 10.99.0.0/24 is a dummy interface that drops everything")
	}
	// 10.99.0.200 is routed to dummy0 and never answers.
	start := time.Now()
	_, err := transport.Dial(ctxTimeout(t, 300*time.Millisecond), "sctp:10.99.0.200:3863", transport.DefaultConfig())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial to a silent peer: got %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Dial returned %v after its deadline of 300ms", d)
	}
	cfg := transport.DefaultConfig()
	cfg.PPID = transport.PPIDASAP
	cfg.SCTPAttemptTimeout = 200 * time.Millisecond
	start = time.Now()
	_, err = transport.Dial(ctxTimeout(t, 700*time.Millisecond), "10.99.0.200:3863", cfg)
	if err == nil {
		t.Fatal("auto Dial to a silent peer: got a connection")
	}
	t.Logf("auto Dial to a silent peer: %v after %v", err, time.Since(start))
}

// TestSCTPSendAfterDialDeadline: a connection dialled with a deadline
// stays usable after that deadline passed (the connect wait used to leave
// it on the socket, and every later Send without a deadline of its own
// looped on the deadline error forever).
func TestSCTPSendAfterDialDeadline(t *testing.T) {
	requireSCTP(t)
	sharedtest.CheckLeaks(t, testFrames)
	cfg := transport.DefaultConfig()
	l, err := transport.Listen(ctxTimeout(t, 10*time.Second), "sctp:127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	acc := make(chan transport.Conn, 1)
	go func() {
		c, err := l.Accept(ctxTimeout(t, 10*time.Second))
		if err != nil {
			t.Error(err)
		}
		acc <- c
	}()
	const dialDeadline = 500 * time.Millisecond
	dctx, cancel := context.WithTimeout(context.Background(), dialDeadline)
	defer cancel()
	dl, _ := dctx.Deadline()
	a, err := transport.Dial(dctx, "sctp:"+l.Addrs()[0].String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b := <-acc
	if b == nil {
		t.FailNow()
	}
	defer b.Close()
	// The scenario is the passing of the dial deadline: wait it out.
	time.Sleep(time.Until(dl) + 200*time.Millisecond)
	for i, msg := range []string{"first", "second"} {
		sent := make(chan error, 1)
		go func() { sent <- a.Send(context.Background(), 47, []byte(msg)) }()
		select {
		case err := <-sent:
			if err != nil {
				t.Fatalf("Send %d after the dial deadline: %v", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Send %d after the dial deadline did not return within 10s", i)
		}
		_, got, err := b.Recv(ctxTimeout(t, 10*time.Second))
		if err != nil || string(got) != msg {
			t.Fatalf("peer received %q, %v; want %q", got, err, msg)
		}
		if err := b.Send(ctxTimeout(t, 10*time.Second), 47, got); err != nil {
			t.Fatal(err)
		}
		_, back, err := a.Recv(ctxTimeout(t, 10*time.Second))
		if err != nil || string(back) != msg {
			t.Fatalf("dialled side received %q, %v; want %q", back, err, msg)
		}
	}
}

// TestSCTPAcceptAfterVanishedPeers: associations that are closed again
// before the listener accepts them are dropped, and the listener goes on
// accepting (it used to fail for good on the first: "peer addresses:
// getsockopt: invalid argument", and a PE whose pool users came and went
// quickly stopped serving).
func TestSCTPAcceptAfterVanishedPeers(t *testing.T) {
	requireSCTP(t)
	sharedtest.CheckLeaks(t, testFrames)
	cfg := transport.DefaultConfig()
	ctx := ctxTimeout(t, 20*time.Second)
	l, err := transport.Listen(ctx, "sctp:127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	spec := "sctp:" + l.Addrs()[0].String()
	for i := 0; i < 5; i++ {
		c, err := transport.Dial(ctx, spec, cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	// Wait until the kernel has freed at least one of them (the others may
	// linger in a shutdown state while nobody accepts them).
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile("/proc/net/sctp/assocs")
		// A header line, then a line per association end: 5
		// associations have 10.
		n := strings.Count(string(b), "\n") - 1
		if n < 10 {
			t.Logf("association ends left: %d", n)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the 5 closed associations still have %d ends after 10s", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	keep, err := transport.Dial(ctx, spec, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer keep.Close()
	want := keep.LocalAddr().Port
	for {
		c, err := l.Accept(ctx)
		if err != nil {
			t.Fatalf("Accept after vanished peers: %v", err)
		}
		got := c.RemoteAddr().Port
		c.Close()
		if got == want {
			return
		}
	}
}

// TestSCTPDialFromListenPort: a dial with LocalPort and ReusePort comes
// from the port of our own listener (opened with ReusePort), as RSPLIB's
// one-to-many socket does, and the peer sees that port; the listener goes
// on accepting new associations itself; a second listener on the port
// still fails with "address already in use" (with or without ReusePort);
// a second dial between the same two endpoints is refused by the kernel;
// and where the port cannot be shared (its listener has no ReusePort),
// the dial falls back to an ephemeral port and logs why.
func TestSCTPDialFromListenPort(t *testing.T) {
	requireSCTP(t)
	sharedtest.CheckLeaks(t, testFrames)
	ctx := ctxTimeout(t, 30*time.Second)
	cfg := transport.DefaultConfig()
	cfg.ReusePort = true
	ours, err := transport.Listen(ctx, "sctp:127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ours.Close()
	port := ours.Addrs()[0].Port
	for _, reuse := range []bool{false, true} {
		c2 := transport.DefaultConfig()
		c2.ReusePort = reuse
		if l2, err := transport.Listen(ctx, "sctp:127.0.0.1:"+strconv.Itoa(int(port)), c2); err == nil {
			l2.Close()
			t.Fatalf("a second listener (ReusePort %v) bound port %d of a listener with ReusePort", reuse, port)
		} else if !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("second listener (ReusePort %v): %v; want address already in use", reuse, err)
		}
	}
	// An association our listener accepted owns the port too (and does
	// not inherit SO_REUSEPORT): a dial from the port must share it.
	in, err := transport.Dial(ctx, "sctp:"+ours.Addrs()[0].String(), transport.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	acc, err := ours.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer acc.Close()
	if acc.RemoteAddr().Port != in.LocalAddr().Port {
		t.Fatalf("our listener accepted %s, want the dial from %s", acc.RemoteAddr(), in.LocalAddr())
	}

	theirs, err := transport.Listen(ctx, "sctp:127.0.0.1:0", transport.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer theirs.Close()
	theirSpec := "sctp:" + theirs.Addrs()[0].String()

	var logs sharedtest.Buffer
	dcfg := transport.DefaultConfig()
	dcfg.LocalPort, dcfg.ReusePort = port, true
	dcfg.LocalAddrs = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	dcfg.Logger = hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Debug})
	c, err := transport.Dial(ctx, theirSpec, dcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.LocalAddr().Port; got != port {
		t.Fatalf("dial from the listener's port %d: local port %d (log: %s)", port, got, logs.String())
	}
	peer, err := theirs.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if got := peer.RemoteAddr().Port; got != port {
		t.Fatalf("the peer sees the association from port %d, want %d", got, port)
	}
	if err := c.Send(ctx, 12, []byte("from the ENRP port")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := peer.Recv(ctx); err != nil || string(msg) != "from the ENRP port" {
		t.Fatalf("peer Recv: %q, %v", msg, err)
	}

	// The same two endpoints again: one association per pair.
	if c2, err := transport.Dial(ctx, theirSpec, dcfg); err == nil {
		c2.Close()
		t.Fatalf("a second dial from port %d to %s succeeded; want it refused", port, theirSpec)
	} else {
		t.Logf("second dial between the same endpoints: %v", err)
	}

	// Our listener still accepts associations itself.
	in2, err := transport.Dial(ctx, "sctp:"+ours.Addrs()[0].String(), transport.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer in2.Close()
	acc2, err := ours.Accept(ctx)
	if err != nil {
		t.Fatalf("our listener after a dial from its port: %v", err)
	}
	if acc2.RemoteAddr().Port != in2.LocalAddr().Port {
		t.Fatalf("our listener accepted %s, want the dial from %s", acc2.RemoteAddr(), in2.LocalAddr())
	}
	acc2.Close()
	// A second listener still fails with accepted and dialed associations on the port.
	if l2, err := transport.Listen(ctx, "sctp:127.0.0.1:"+strconv.Itoa(int(port)), transport.DefaultConfig()); err == nil {
		l2.Close()
		t.Fatalf("a second listener bound port %d beside our listener, its accepted and its dialed associations", port)
	}

	// A port whose listener does not share it: an ephemeral port, logged.
	dcfg.LocalPort = theirs.Addrs()[0].Port
	var logs2 sharedtest.Buffer
	dcfg.Logger = hclog.New(&hclog.LoggerOptions{Output: &logs2, Level: hclog.Debug})
	c3, err := transport.Dial(ctx, "sctp:"+ours.Addrs()[0].String(), dcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if c3.LocalAddr().Port == dcfg.LocalPort {
		t.Fatalf("dialed from port %d, which a listener without ReusePort holds", dcfg.LocalPort)
	}
	if !strings.Contains(logs2.String(), "dialing from an ephemeral one") {
		t.Fatalf("fallback to an ephemeral port not logged; log:\n%s", logs2.String())
	}
}

// TestSCTPManyPeerAddrs: a peer with more addresses than the pooled
// address buffer holds (16) is listed whole (the kernel answers ENOMEM to
// the small buffer; a large one follows).
func TestSCTPManyPeerAddrs(t *testing.T) {
	requireSCTP(t)
	sharedtest.CheckLeaks(t, testFrames)
	ctx := ctxTimeout(t, 20*time.Second)
	var hosts []string
	for i := 1; i <= 20; i++ {
		hosts = append(hosts, "127.0.0."+strconv.Itoa(i))
	}
	l, err := transport.Listen(ctx, "sctp:"+strings.Join(hosts, ",")+":0", transport.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := strconv.Itoa(int(l.Addrs()[0].Port))
	c, err := transport.Dial(ctx, "sctp:"+strings.Join(hosts, ",")+":"+port, transport.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.PeerAddrs(); len(got) != 20 {
		t.Fatalf("PeerAddrs: %d addresses %v, want the listener's 20", len(got), got)
	}
	if got := c.RemoteAddr().Addrs; len(got) != 20 {
		t.Fatalf("RemoteAddr: %d addresses, want 20", len(got))
	}
}

// TestSCTPTrySend: an SCTP connection's TrySend (the registrar's answer
// path: no timer, context or deadline) delivers each message whole with
// its PPID; to a peer that does not read it refuses once the association's
// buffers are full, sending nothing of the refused message, and the
// messages accepted before arrive in order, then the next Send's.
func TestSCTPTrySend(t *testing.T) {
	requireSCTP(t)
	sharedtest.CheckLeaks(t, testFrames)
	ctx := ctxTimeout(t, 20*time.Second)
	a, b := listenPair(t, "sctp:127.0.0.1:0", transport.DefaultConfig())
	ta, ok := a.(transport.TrySender)
	if !ok {
		t.Fatal("an SCTP connection is not a TrySender")
	}
	for i, ppid := range sctpPPIDs {
		msg := asapMsg(64+i, byte(i))
		if sent, err := ta.TrySend(ppid, msg); !sent || err != nil {
			t.Fatalf("TrySend %d to a reading peer: sent %v, %v", i, sent, err)
		}
		got, m := mustRecv(t, b)
		if got != ppid || !bytes.Equal(m, msg) {
			t.Fatalf("message %d: ppid %d, % x; want ppid %d, % x", i, got, m, ppid, msg)
		}
	}
	big := asapMsg(16000, 7)
	sent := trySendUntilRefused(t, ta, big)
	for i := 0; i < sent; i++ {
		ppid, got, err := b.Recv(ctx)
		if err != nil || ppid != transport.PPIDASAP || !bytes.Equal(got, big) {
			t.Fatalf("message %d of %d: ppid %d, %d bytes, %v", i, sent, ppid, len(got), err)
		}
	}
	last := asapMsg(40, 9)
	mustSend(t, a, transport.PPIDASAP, last)
	if _, got := mustRecv(t, b); !bytes.Equal(got, last) {
		t.Fatalf("after the accepted ones: % x; want the next message, not the refused one", got)
	}
	if _, err := ta.TrySend(transport.PPIDASAP, nil); !errors.Is(err, transport.ErrBadFrame) {
		t.Errorf("TrySend of an empty message: %v, want ErrBadFrame", err)
	}
	a.Close()
	if sent, err := ta.TrySend(transport.PPIDASAP, last); sent || err == nil {
		t.Errorf("TrySend after Close: sent %v, %v; want an error", sent, err)
	}
}

// TestSCTPPeerAddrsCached: PeerAddrs answers from its cache (no system
// call per registration) a copy the caller may change: changing one
// answer does not change the next.
func TestSCTPPeerAddrsCached(t *testing.T) {
	requireSCTP(t)
	sharedtest.CheckLeaks(t, testFrames)
	a, _ := listenPair(t, "sctp:127.0.0.1:0", transport.DefaultConfig())
	first := a.PeerAddrs()
	if len(first) != 1 || first[0] != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("PeerAddrs: %v, want [127.0.0.1]", first)
	}
	first[0] = netip.MustParseAddr("192.0.2.1")
	if again := a.PeerAddrs(); len(again) != 1 || again[0] != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("PeerAddrs after the caller changed an answer: %v, want [127.0.0.1]", again)
	}
}

// TestSCTPDialPeerClosedAtOnce: a peer that sends a message and closes the
// association before the dial has set up its connection (RSPLIB's daytime
// PE): the dial succeeds with the dialed address as the peer's, and the
// message is read before EOF. The association's peer addresses can no
// longer be asked for; the dial used to fail ("peer addresses: getsockopt:
// invalid argument") and rsp connect found no PE.
func TestSCTPDialPeerClosedAtOnce(t *testing.T) {
	requireSCTP(t)
	sharedtest.CheckLeaks(t, testFrames)
	ctx := ctxTimeout(t, 20*time.Second)
	l, err := transport.Listen(ctx, "sctp:127.0.0.1:0", transport.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	closed := make(chan struct{})
	go func() {
		c, err := l.Accept(ctx)
		if err != nil {
			return
		}
		_ = c.Send(ctx, 40, []byte("the time is now"))
		c.Close()
		close(closed)
	}()
	port := strconv.Itoa(int(l.Addrs()[0].Port))
	transport.AfterSCTPConnect(t, func() {
		<-closed
		// Until the kernel has forgotten the association (both ends):
		// no line of /proc/net/sctp/assocs has the listener's port as
		// its local or remote port (fields 12 and 13).
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			b, _ := os.ReadFile("/proc/net/sctp/assocs")
			left := 0
			for _, line := range strings.Split(string(b), "\n")[1:] {
				if f := strings.Fields(line); len(f) > 12 && (f[11] == port || f[12] == port) {
					left++
				}
			}
			if left == 0 {
				return
			}
		}
		t.Error("the closed association is still in /proc/net/sctp/assocs after 10s")
	})
	spec := "sctp:" + l.Addrs()[0].String()
	c, err := transport.Dial(ctx, spec, transport.DefaultConfig())
	if err != nil {
		t.Fatalf("dial to a peer that closed at once: %v", err)
	}
	defer c.Close()
	if got := c.RemoteAddr(); got.Port != l.Addrs()[0].Port || len(got.Addrs) != 1 || got.Addrs[0] != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("RemoteAddr %v, want the dialed %v", got, l.Addrs()[0])
	}
	ppid, msg, err := c.Recv(ctx)
	if err != nil || ppid != 40 || string(msg) != "the time is now" {
		t.Fatalf("Recv: ppid %d %q %v; want the peer's message", ppid, msg, err)
	}
	if _, _, err := c.Recv(ctx); !errors.Is(err, io.EOF) {
		t.Errorf("Recv after the message: %v, want EOF", err)
	}
}
