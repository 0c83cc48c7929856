package transport_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap/sharedtest"
	"github.com/rserpool-go/registrar/transport"
)

// listenPair listens on spec, dials the listener's first address with the
// same config and returns (dialed, accepted).
func listenPair(t *testing.T, spec string, cfg transport.Config) (transport.Conn, transport.Conn) {
	t.Helper()
	ctx := ctxTimeout(t, 10*time.Second)
	l, err := transport.Listen(ctx, spec, cfg)
	if err != nil {
		t.Fatalf("Listen(%q): %v", spec, err)
	}
	t.Cleanup(func() { l.Close() })
	prefix, _, _ := strings.Cut(spec, ":")
	addr := l.Addrs()[0].String()
	if prefix == "tcp" || prefix == "sctp" {
		addr = prefix + ":" + addr
	}
	type result struct {
		c   transport.Conn
		err error
	}
	acc := make(chan result, 1)
	go func() {
		c, err := l.Accept(ctx)
		acc <- result{c, err}
	}()
	a, err := transport.Dial(ctx, addr, cfg)
	if err != nil {
		t.Fatalf("Dial(%q): %v", addr, err)
	}
	t.Cleanup(func() { a.Close() })
	r := <-acc
	if r.err != nil {
		t.Fatalf("Accept: %v", r.err)
	}
	t.Cleanup(func() { r.c.Close() })
	return a, r.c
}

func tcpPair(spec string, mux bool) pairFunc {
	return func(t *testing.T, cfg transport.Config) (transport.Conn, transport.Conn) {
		cfg.PPID = transport.PPIDASAP
		cfg.Mux = mux
		return listenPair(t, spec, cfg)
	}
}

func TestTCPConn(t *testing.T) {
	sharedtest.CheckLeaks(t, testFrames)
	testConn(t, suite{pair: tcpPair("tcp:127.0.0.1:0", false), ppids: []uint32{transport.PPIDASAP}})
}

func TestTCPConnMux(t *testing.T) {
	sharedtest.CheckLeaks(t, testFrames)
	testConn(t, suite{pair: tcpPair("tcp:127.0.0.1:0", true), ppids: []uint32{transport.PPIDASAP, 0, 47, 0xFFFFFFFF, transport.PPIDENRP}})
}

func TestTCPConnIPv6(t *testing.T) {
	sharedtest.CheckLeaks(t, testFrames)
	if !haveIPv6Loopback() {
		t.Skip("no IPv6 loopback (::1) on this host")
	}
	testConn(t, suite{pair: tcpPair("tcp:[::1]:0", false), ppids: []uint32{transport.PPIDASAP}})
}

func haveIPv6Loopback() bool {
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// rawPeer listens with transport on TCP and connects a plain net.Conn to it,
// so a test can write any bytes. It returns the raw client and the accepted
// transport.Conn.
func rawPeer(t *testing.T, cfg transport.Config) (net.Conn, transport.Conn) {
	t.Helper()
	ctx := ctxTimeout(t, 10*time.Second)
	l, err := transport.Listen(ctx, "tcp:127.0.0.1:0", cfg)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	raw, err := net.Dial("tcp", l.Addrs()[0].String())
	if err != nil {
		t.Fatalf("net.Dial: %v", err)
	}
	t.Cleanup(func() { raw.Close() })
	c, err := l.Accept(ctx)
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return raw, c
}

func asapCfg(t *testing.T) (transport.Config, *sharedtest.Buffer) {
	cfg := transport.DefaultConfig()
	cfg.PPID = transport.PPIDASAP
	var lb *sharedtest.Buffer
	cfg.Logger, lb = sharedtest.BufferLogger(t, t.Name())
	return cfg, lb
}

func TestTCPFraming_SplitMessages(t *testing.T) {
	sharedtest.CheckLeaks(t, testFrames)
	cfg, _ := asapCfg(t)
	raw, c := rawPeer(t, cfg)
	var stream []byte
	for i := uint32(0); i < 5; i++ {
		stream = append(stream, mkMsg(8+int(i)*13, i)...)
	}
	go func() {
		for i := range stream { // one byte per write
			if _, err := raw.Write(stream[i : i+1]); err != nil {
				return
			}
			if i%7 == 0 {
				time.Sleep(time.Millisecond) // let the bytes arrive as separate segments
			}
		}
	}()
	for i := uint32(0); i < 5; i++ {
		ppid, got := mustRecv(t, c)
		if want := mkMsg(8+int(i)*13, i); ppid != transport.PPIDASAP || !bytes.Equal(got, want) {
			t.Fatalf("message %d: got ppid %d % x, want ppid 11 % x", i, ppid, got, want)
		}
	}
}

func TestTCPFraming_CoalescedMessages(t *testing.T) {
	sharedtest.CheckLeaks(t, testFrames)
	cfg, _ := asapCfg(t)
	raw, c := rawPeer(t, cfg)
	const n = 2000
	var stream []byte
	for i := uint32(0); i < n; i++ {
		stream = append(stream, mkMsg(8+int(i%50)*4, i)...)
	}
	go raw.Write(stream) // one write of ~200 KB
	for i := uint32(0); i < n; i++ {
		_, got := mustRecv(t, c)
		if want := mkMsg(8+int(i%50)*4, i); !bytes.Equal(got, want) {
			t.Fatalf("message %d: got % x, want % x", i, got, want)
		}
	}
}

// TestTCPFraming_PartialRecvKeepsStream cancels Recv while half a message
// has arrived; the next Recv returns the whole message.
func TestTCPFraming_PartialRecvKeepsStream(t *testing.T) {
	sharedtest.CheckLeaks(t, testFrames)
	cfg, _ := asapCfg(t)
	raw, c := rawPeer(t, cfg)
	msg := mkMsg(100, 5)
	if _, err := raw.Write(msg[:30]); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Recv(ctxTimeout(t, 50*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Recv of half a message: got %v, want context.DeadlineExceeded", err)
	}
	if _, err := raw.Write(msg[30:]); err != nil {
		t.Fatal(err)
	}
	if _, got := mustRecv(t, c); !bytes.Equal(got, msg) {
		t.Fatalf("got % x, want % x", got, msg)
	}
}

func TestTCPFraming_BadFrames(t *testing.T) {
	sharedtest.CheckLeaks(t, testFrames)
	for _, tc := range []struct {
		name   string
		mux    bool
		max    int
		stream []byte
		want   error
		log    string
	}{
		{"ZeroLength", false, 0, []byte{1, 0, 0, 0}, transport.ErrBadFrame, "below the 4-byte header"},
		{"ShortLength", false, 0, []byte{1, 0, 0, 3, 0, 0, 0, 0}, transport.ErrBadFrame, "below the 4-byte header"},
		{"Oversize", false, 1000, []byte{1, 0, 0x03, 0xe9}, transport.ErrMessageTooLarge, "message too large"},
		{"OversizeDefaultLimit", false, 0, append(mkMsg(8, 1), 5, 0, 0xff, 0xff), nil, ""}, // 65535 is allowed: no error
		{"MuxReservedByte", true, 0, []byte{0xff, 1, 0, 8, 0, 0, 0, 1}, transport.ErrBadFrame, "reserved byte"},
		{"MuxShortFrame", true, 0, []byte{0xff, 0, 0, 7, 0, 0, 0, 1}, transport.ErrBadFrame, "below its 8-byte header"},
		{"MuxOversize", true, 100, []byte{0xff, 0, 0, 109, 0, 0, 0, 1}, transport.ErrMessageTooLarge, "mux data frame payload"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, lb := asapCfg(t)
			cfg.Mux = tc.mux
			if tc.max != 0 {
				cfg.MaxMessageSize = tc.max
			}
			raw, c := rawPeer(t, cfg)
			if _, err := raw.Write(tc.stream); err != nil {
				t.Fatal(err)
			}
			if tc.want == nil {
				mustRecv(t, c)
				_, _, err := c.Recv(ctxTimeout(t, 50*time.Millisecond))
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("Recv of an incomplete 65535-byte frame: got %v, want context.DeadlineExceeded", err)
				}
				return
			}
			_, _, err := c.Recv(ctxTimeout(t, 5*time.Second))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Recv: got %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.log) {
				t.Errorf("error %q does not say %q", err, tc.log)
			}
			if !lb.Contains("closing connection", time.Second) {
				t.Errorf("no log line says why the connection was closed; log:\n%s", lb)
			}
			// The connection is closed: the raw peer sees EOF.
			raw.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := raw.Read(make([]byte, 1)); err != io.EOF {
				t.Errorf("raw peer read: got %v, want EOF (connection closed)", err)
			}
			if err := c.Send(context.Background(), transport.PPIDASAP, mkMsg(8, 1)); err == nil {
				t.Error("Send on the closed connection: got nil error")
			}
		})
	}
}

func TestTCPReadTimeoutSlowPeer(t *testing.T) {
	sharedtest.CheckLeaks(t, testFrames)
	cfg, lb := asapCfg(t)
	cfg.ReadTimeout = 150 * time.Millisecond
	raw, c := rawPeer(t, cfg)
	msg := mkMsg(100, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() { // one byte every 20 ms: each Read makes progress, the message never completes in time
		for i := range msg {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if _, err := raw.Write(msg[i : i+1]); err != nil {
				return
			}
		}
	}()
	_, _, err := c.Recv(context.Background())
	if !errors.Is(err, transport.ErrReadTimeout) {
		t.Fatalf("Recv from a slow peer: got %v, want ErrReadTimeout", err)
	}
	if !lb.Contains("read idle timeout", time.Second) {
		t.Errorf("timeout not logged; log:\n%s", lb)
	}
}

func TestTCPSend_Validation(t *testing.T) {
	sharedtest.CheckLeaks(t, testFrames)
	cfg, _ := asapCfg(t)
	a, _ := listenPair(t, "tcp:127.0.0.1:0", cfg)
	ctx := context.Background()
	bad := mkMsg(12, 1)
	binary.BigEndian.PutUint16(bad[2:], 16)
	for _, tc := range []struct {
		name string
		ppid uint32
		msg  []byte
		want error
	}{
		{"LengthMismatch", transport.PPIDASAP, bad, transport.ErrBadFrame},
		{"TooShort", transport.PPIDASAP, []byte{1, 0, 0}, transport.ErrBadFrame},
		{"OtherPPID", transport.PPIDENRP, mkMsg(8, 1), transport.ErrBadPPID},
	} {
		if err := a.Send(ctx, tc.ppid, tc.msg); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestTCPMux_WireFormat(t *testing.T) {
	sharedtest.CheckLeaks(t, testFrames)
	cfg, _ := asapCfg(t)
	cfg.Mux = true
	raw, c := rawPeer(t, cfg)
	// Sent by transport: an ASAP message raw, then a data frame.
	asap := mkMsg(12, 3)
	mustSend(t, c, transport.PPIDASAP, asap)
	mustSend(t, c, 1234, []byte("hello"))
	want := append(append([]byte(nil), asap...), 0xff, 0, 0, 13, 0, 0, 0x04, 0xd2, 'h', 'e', 'l', 'l', 'o')
	got := make([]byte, len(want))
	raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(raw, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("wire bytes:\n got % x\nwant % x", got, want)
	}
	// Received by transport: the same bytes back.
	if _, err := raw.Write(want); err != nil {
		t.Fatal(err)
	}
	if ppid, m := mustRecv(t, c); ppid != transport.PPIDASAP || !bytes.Equal(m, asap) {
		t.Fatalf("got ppid %d % x, want 11 % x", ppid, m, asap)
	}
	if ppid, m := mustRecv(t, c); ppid != 1234 || string(m) != "hello" {
		t.Fatalf("got ppid %d %q, want 1234 \"hello\"", ppid, m)
	}
	// A raw ASAP message may not start with 0xff in mux mode.
	bad := mkMsg(8, 1)
	bad[0] = 0xff
	if err := c.Send(context.Background(), transport.PPIDASAP, bad); !errors.Is(err, transport.ErrBadFrame) {
		t.Fatalf("Send of an ASAP message of type 0xff: got %v, want ErrBadFrame", err)
	}
}

func TestTCPCloseFlushesQueue(t *testing.T) {
	sharedtest.CheckLeaks(t, testFrames)
	cfg, _ := asapCfg(t)
	a, b := listenPair(t, "tcp:127.0.0.1:0", cfg)
	const n = 3000
	for i := uint32(0); i < n; i++ {
		mustSend(t, a, transport.PPIDASAP, mkMsg(100, i))
	}
	a.Close()
	for i := uint32(0); i < n; i++ {
		if _, got := mustRecv(t, b); msgSeq(got) != i {
			t.Fatalf("got seq %d, want %d", msgSeq(got), i)
		}
	}
}

func TestTCPWriteTimeout(t *testing.T) {
	sharedtest.CheckLeaks(t, testFrames)
	cfg, lb := asapCfg(t)
	cfg.WriteTimeout = 200 * time.Millisecond
	a, _ := listenPair(t, "tcp:127.0.0.1:0", cfg)
	msg := mkMsg(60000, 1)
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := a.Send(ctxTimeout(t, 5*time.Second), transport.PPIDASAP, msg)
		if err != nil {
			if !strings.Contains(err.Error(), "peer stopped reading") {
				t.Fatalf("Send to a stalled peer: got %v, want a write-timeout error", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the connection never failed")
		}
	}
	if !lb.Contains("peer does not read", time.Second) {
		t.Errorf("write timeout not logged; log:\n%s", lb)
	}
}

func TestListenerCloseUnblocksAccept(t *testing.T) {
	sharedtest.CheckLeaks(t, testFrames)
	cfg, _ := asapCfg(t)
	l, err := transport.Listen(context.Background(), "tcp:127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		c, err := l.Accept(context.Background())
		if c != nil {
			c.Close()
		}
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond) // let Accept block (it works either way)
	l.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, transport.ErrClosed) {
			t.Fatalf("Accept after Close: got %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock Accept")
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := l.Accept(ctxTimeout(t, time.Second)); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Accept on a closed listener: got %v, want ErrClosed", err)
	}
}

func TestListenerCloseClosesUnacceptedConns(t *testing.T) {
	sharedtest.CheckLeaks(t, testFrames)
	cfg, _ := asapCfg(t)
	l, err := transport.Listen(context.Background(), "tcp:127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := net.Dial("tcp", l.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	l.Close()
	raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := raw.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read on a connection the listener never handed out: got %v, want EOF or reset", err)
	}
}

func TestListenTCP_MultipleAddressesSamePort(t *testing.T) {
	sharedtest.CheckLeaks(t, testFrames)
	if !haveIPv6Loopback() {
		t.Skip("no IPv6 loopback (::1) on this host")
	}
	cfg, _ := asapCfg(t)
	l, err := transport.Listen(context.Background(), "tcp:127.0.0.1,[::1]:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addrs := l.Addrs()
	if len(addrs) != 2 {
		t.Fatalf("Addrs: got %v, want 2 addresses", addrs)
	}
	p0, p1 := addrs[0].Port, addrs[1].Port
	if p0 == 0 || p0 != p1 {
		t.Fatalf("ports: got %d and %d, want the same non-zero port", p0, p1)
	}
	for _, a := range addrs {
		c, err := transport.Dial(ctxTimeout(t, 5*time.Second), "tcp:"+a.String(), cfg)
		if err != nil {
			t.Fatalf("Dial %s: %v", a, err)
		}
		s, err := l.Accept(ctxTimeout(t, 5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if got := s.PeerAddrs(); len(got) != 1 || len(a.Addrs) != 1 || got[0] != a.Addrs[0] || a.Kind != transport.KindTCP {
			t.Errorf("PeerAddrs via %s: got %v", a, got)
		}
		c.Close()
		s.Close()
	}
}

func TestListenDial_Errors(t *testing.T) {
	ctx := context.Background()
	cfg := transport.DefaultConfig() // PPID unset
	if _, err := transport.Listen(ctx, "tcp:127.0.0.1:0", cfg); err == nil || !strings.Contains(err.Error(), "PPID") {
		t.Errorf("Listen without PPID: got %v, want an error naming PPID", err)
	}
	cfg.PPID = transport.PPIDENRP
	if _, err := transport.Dial(ctx, "tcp::3863", cfg); !errors.Is(err, transport.ErrBadSpec) {
		t.Errorf("Dial without host: got %v, want ErrBadSpec", err)
	}
	if _, err := transport.Dial(ctx, "tcp:127.0.0.1:0", cfg); !errors.Is(err, transport.ErrBadSpec) {
		t.Errorf("Dial to port 0: got %v, want ErrBadSpec", err)
	}
	bad := cfg
	bad.MaxMessageSize = 1
	if _, err := transport.Listen(ctx, "tcp:127.0.0.1:0", bad); err == nil || !strings.Contains(err.Error(), "MaxMessageSize") {
		t.Errorf("Listen with a bad config: got %v, want an error naming MaxMessageSize", err)
	}
	// Refused: listen, note the port, close, dial it.
	l, err := transport.Listen(ctx, "tcp:127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addrs()[0].String()
	l.Close()
	if _, err := transport.Dial(ctx, "tcp:"+addr, cfg); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("Dial to a closed port: got %v, want connection refused", err)
	}
}

// Ensure that concurrent senders of large messages against a slow reader
// (the socket buffer fills, so direct writes are partial and the writer
// goroutine finishes them) deliver every message intact and in each
// sender's order, in plain and mux framing.
func TestTCPSend_ConcurrentLargeSlowReader(t *testing.T) {
	for _, mux := range []bool{false, true} {
		cfg := transport.DefaultConfig()
		a, b := tcpPair("tcp:127.0.0.1:0", mux)(t, cfg)
		const senders, each = 4, 60
		errc := make(chan error, senders)
		for s := 0; s < senders; s++ {
			go func(s int) {
				for i := 0; i < each; i++ {
					size := 20000 + (s*each+i)%9000
					msg := make([]byte, size)
					msg[0], msg[1] = 1, 0 // an ASAP registration header
					binary.BigEndian.PutUint16(msg[2:], uint16(size))
					msg[4], msg[5] = byte(s), byte(i)
					for j := 6; j < size; j++ {
						msg[j] = byte(s + i + j)
					}
					if err := a.Send(ctxTimeout(t, 20*time.Second), transport.PPIDASAP, msg); err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}(s)
		}
		next := make([]int, senders)
		for n := 0; n < senders*each; n++ {
			if n%20 == 0 {
				time.Sleep(5 * time.Millisecond) // read slowly: the sender's socket buffer fills
			}
			_, msg, err := b.Recv(ctxTimeout(t, 20*time.Second))
			if err != nil {
				t.Fatalf("mux=%v: Recv %d: %v", mux, n, err)
			}
			s, i := int(msg[4]), int(msg[5])
			if s >= senders || i != next[s] {
				t.Fatalf("mux=%v: message %d from sender %d, want %d", mux, i, s, next[s])
			}
			next[s]++
			if want := 20000 + (s*each+i)%9000; len(msg) != want {
				t.Fatalf("mux=%v: message %d/%d has %d bytes, want %d", mux, s, i, len(msg), want)
			}
			for j := 6; j < len(msg); j++ {
				if msg[j] != byte(s+i+j) {
					t.Fatalf("mux=%v: message %d/%d corrupt at byte %d", mux, s, i, j)
				}
			}
		}
		for s := 0; s < senders; s++ {
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
		}
	}
}

// Ensure the tail of a partial direct write goes out before a message
// another goroutine queued while that write was in progress.
func TestTCPSend_PartialDirectWriteKeepsOrder(t *testing.T) {
	cfg := transport.DefaultConfig()
	a, b := tcpPair("tcp:127.0.0.1:0", false)(t, cfg)
	mk := func(tag byte) []byte {
		m := make([]byte, 64)
		m[0], m[3] = 5, 64
		for i := 4; i < len(m); i++ {
			m[i] = tag
		}
		return m
	}
	once := false
	transport.ForcePartialDirectWrites(t, 10, func() {
		if once {
			return
		}
		once = true
		done := make(chan error)
		go func() { done <- a.Send(context.Background(), transport.PPIDASAP, mk(2)) }()
		if err := <-done; err != nil { // queued: the first write is in progress
			t.Error(err)
		}
	})
	if err := a.Send(context.Background(), transport.PPIDASAP, mk(1)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []byte{1, 2} {
		_, msg, err := b.Recv(ctxTimeout(t, 5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(msg, mk(want)) {
			t.Fatalf("got message %x, want the one tagged %d", msg, want)
		}
	}
}

// Ensure that a connection whose sends all went out by direct write keeps
// no send buffer: idle connections hold none (the batches are pooled), in
// plain and mux framing.
func TestTCPSend_DirectWriteHoldsNoBuffer(t *testing.T) {
	for _, mux := range []bool{false, true} {
		a, b := tcpPair("tcp:127.0.0.1:0", mux)(t, transport.DefaultConfig())
		for _, ppid := range []uint32{transport.PPIDASAP, 47} {
			if !mux && ppid != transport.PPIDASAP {
				continue
			}
			msg := []byte{1, 0, 0, 8, 1, 2, 3, 4}
			if err := a.Send(context.Background(), ppid, msg); err != nil {
				t.Fatalf("mux=%v: Send: %v", mux, err)
			}
			if _, got, err := b.Recv(ctxTimeout(t, 5*time.Second)); err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("mux=%v: Recv = %x, %v; want %x", mux, got, err, msg)
			}
			if transport.HoldsSendBuffer(a) {
				t.Errorf("mux=%v ppid=%d: got a send buffer held after a direct write, want none", mux, ppid)
			}
		}
	}
}

// Ensure an idle TCP connection holds neither a receive buffer nor a
// writer goroutine: the buffer is taken when bytes arrive and given back
// once they are all consumed, kept while part of a message waits, and the
// writer starts only when a send leaves something queued.
func TestTCP_IdleHoldsNoBufferOrWriter(t *testing.T) {
	sharedtest.CheckLeaks(t, testFrames)
	cfg, _ := asapCfg(t)
	raw, c := rawPeer(t, cfg)
	if transport.HoldsReadBuffer(c) {
		t.Error("a new connection holds a receive buffer, want none")
	}
	if _, _, err := c.Recv(ctxTimeout(t, 20*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Recv with nothing sent: %v, want context.DeadlineExceeded", err)
	}
	if transport.HoldsReadBuffer(c) {
		t.Error("a connection that waited with nothing to read holds a receive buffer, want none")
	}

	// Part of a message: the buffer holds it until the rest arrives.
	m1, m2 := mkMsg(100, 1), mkMsg(60, 2)
	if _, err := raw.Write(m1[:30]); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !transport.HoldsReadBuffer(c) {
		if time.Now().After(deadline) {
			t.Fatal("30 bytes written, but the connection took no receive buffer within 10 s")
		}
		if _, _, err := c.Recv(ctxTimeout(t, 20*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Recv of part of a message: %v, want context.DeadlineExceeded", err)
		}
	}
	if _, err := raw.Write(append(m1[30:], m2...)); err != nil {
		t.Fatal(err)
	}
	if _, got := mustRecv(t, c); !bytes.Equal(got, m1) {
		t.Fatalf("first message: % x, want % x", got, m1)
	}
	if _, got := mustRecv(t, c); !bytes.Equal(got, m2) {
		t.Fatalf("second message: % x, want % x", got, m2)
	}
	if transport.HoldsReadBuffer(c) {
		t.Error("every byte received was consumed, but the connection holds a receive buffer, want none")
	}

	// A send the socket takes at once needs no writer goroutine.
	ctx := ctxTimeout(t, 10*time.Second)
	if err := c.Send(ctx, transport.PPIDASAP, m1); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(m1))
	if _, err := io.ReadFull(raw, got); err != nil || !bytes.Equal(got, m1) {
		t.Fatalf("peer read % x, %v; want % x", got, err, m1)
	}
	if transport.WriterStarted(c) {
		t.Error("the writer goroutine started though every send went straight to the socket")
	}
	// A partial direct write leaves the rest to the writer, which starts.
	transport.ForcePartialDirectWrites(t, 10, nil)
	if err := c.Send(ctx, transport.PPIDASAP, m2); err != nil {
		t.Fatal(err)
	}
	got = make([]byte, len(m2))
	if _, err := io.ReadFull(raw, got); err != nil || !bytes.Equal(got, m2) {
		t.Fatalf("peer read % x, %v; want % x", got, err, m2)
	}
	if !transport.WriterStarted(c) {
		t.Error("a send left 50 bytes queued, but no writer goroutine started")
	}
}

// Ensure the read timeout counts from the last message, not from the
// first: a peer that sends a message every tenth of the timeout is never
// closed as idle, over several timeouts.
func TestTCPReadTimeout_MovesWithMessages(t *testing.T) {
	sharedtest.CheckLeaks(t, testFrames)
	cfg := transport.DefaultConfig()
	cfg.ReadTimeout = 3 * time.Second
	a, b := tcpPair("tcp:127.0.0.1:0", false)(t, cfg)
	ctx := ctxTimeout(t, 30*time.Second)
	end := time.Now().Add(3*cfg.ReadTimeout + time.Second)
	for i := uint32(0); time.Now().Before(end); i++ {
		msg := mkMsg(40, i)
		if err := a.Send(ctx, transport.PPIDASAP, msg); err != nil {
			t.Fatal(err)
		}
		if _, got, err := b.Recv(ctx); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("message %d after %v: % x, %v", i, time.Until(end), got, err)
		}
		time.Sleep(cfg.ReadTimeout / 10)
	}
}
