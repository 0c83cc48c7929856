package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/registrar/registrartest"
)

// checkLeaks fails t when goroutines of the PE/PU libraries or of the
// transport outlive the test (and its other cleanups).
func checkLeaks(t *testing.T) {
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			buf := make([]byte, 4<<20)
			buf = buf[:runtime.Stack(buf, true)]
			var leaked []string
			for _, g := range strings.Split(string(buf), "\n\n") {
				for _, p := range []string{"registrar/asap/pe.", "registrar/asap/pu.", "asap/internal/regclient.", "registrar/transport."} {
					if strings.Contains(g, p) {
						leaked = append(leaked, g)
						break
					}
				}
			}
			if len(leaked) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("goroutines leaked:\n%s", strings.Join(leaked, "\n\n"))
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// syncBuffer collects a command's output; tests wait for lines in it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// wait polls until re matches the output and returns the match.
func (s *syncBuffer) wait(t testing.TB, what string, re *regexp.Regexp, d time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if m := re.FindStringSubmatch(s.String()); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v; output:\n%s", what, d, s.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// inProcessPE runs `rsp serve` in this process.
type inProcessPE struct {
	out    *syncBuffer
	cancel context.CancelFunc
	code   chan int
}

func startServe(t *testing.T, args ...string) *inProcessPE {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &inProcessPE{out: &syncBuffer{}, cancel: cancel, code: make(chan int, 1)}
	go func() { p.code <- serve(ctx, args, p.out) }()
	t.Cleanup(func() { p.stop(t) })
	p.out.wait(t, `"pe registered"`, regexp.MustCompile(`pe registered`), 10*time.Second)
	return p
}

// stop interrupts serve as SIGTERM does and checks it deregistered.
func (p *inProcessPE) stop(t *testing.T) {
	p.cancel()
	select {
	case code, ok := <-p.code:
		if ok && code != 0 {
			t.Errorf("rsp serve exited %d; output:\n%s", code, p.out)
		}
		if ok {
			close(p.code)
		}
	case <-time.After(20 * time.Second):
		t.Error("rsp serve did not stop within 20s")
	}
}

// The commands in this process against an in-process registrar: serve
// registers, resolve lists, connect fails over with the cookie.
func TestServeResolveConnect(t *testing.T) {
	checkLeaks(t)
	r := registrartest.Start(t, "", nil) // logs to t.Log until the test ends
	reg := r.ASAPAddr()
	pes := map[string]*inProcessPE{}
	for _, id := range []string{"0x00001001", "0x00001002"} {
		pes[id] = startServe(t, "-registrar", reg, "-pool", "echo", "-id", id, "-listen", "tcp:127.0.0.1:0", "-asap", "tcp:127.0.0.1:0", "-rereg", "2s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var out, errOut bytes.Buffer
	if code := resolveCmd(ctx, []string{"-registrar", reg, "echo"}, &out, &errOut); code != 0 {
		t.Fatalf("rsp resolve exited %d: %s", code, errOut.String())
	}
	for id := range pes {
		if !regexp.MustCompile(id + `\s+0x[0-9a-f]{8}\s+tcp data\+control\s+127\.0\.0\.1\s+\d+\s+rr`).MatchString(out.String()) {
			t.Errorf("rsp resolve output lacks a row for %s:\n%s", id, out.String())
		}
	}
	out.Reset()
	if code := resolveCmd(ctx, []string{"-registrar", reg, "-json", "-n", "1", "echo"}, &out, &errOut); code != 0 {
		t.Fatalf("rsp resolve -json exited %d: %s", code, errOut.String())
	}
	var res resolution
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || res.Pool != "echo" || len(res.PEs) != 1 || res.PEs[0].Port == 0 {
		t.Fatalf("rsp resolve -json: got %+v, %v from\n%s", res, err, out.String())
	}
	errOut.Reset()
	if code := resolveCmd(ctx, []string{"-registrar", reg, "nopool"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), `pool "nopool" is unknown`) {
		t.Fatalf("rsp resolve of an unknown pool: exit %d, %q; want 1 and a clear message", code, errOut.String())
	}

	stdin, feed := io.Pipe()
	cout, cerr := &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- connectCmd(ctx, []string{"-registrar", reg, "-timeout", "3s", "echo"}, stdin, cout, cerr)
	}()
	first := cerr.wait(t, "connect line", regexp.MustCompile(`connected to PE (0x0000100[12])`), 10*time.Second)[1]
	for _, line := range []string{"one", "two"} {
		fmt.Fprintln(feed, line)
		cout.wait(t, "the reply to "+line, regexp.MustCompile("(?m)^"+line+"$"), 10*time.Second)
	}
	// The echo service sends its cookie after each reply, so the cookie of
	// "one" came before the reply to "two" (that of "two" may be on its
	// way). The PE sent the pool user a business card naming the other.
	pes[first].out.wait(t, "the business card", regexp.MustCompile(`business card sent: .*candidates=0x0000100[12]`), 10*time.Second)
	pes[first].stop(t)
	m := cerr.wait(t, "the failover line", regexp.MustCompile(`failover: PE `+first+` unreachable, now PE (0x0000100[12]) \(cookie echoed, from the PE's business card\)`), 10*time.Second)
	second := m[1]
	fmt.Fprintln(feed, "three")
	cout.wait(t, "the reply after the failover", regexp.MustCompile("(?m)^three$"), 10*time.Second)
	pes[second].out.wait(t, "the restored cookie", regexp.MustCompile(`restored session from cookie: .*messages_served_before=[12]`), 5*time.Second)
	feed.Close()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("rsp connect exited %d:\n%s", code, cerr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("rsp connect did not exit at the end of its input")
	}
	if got := cout.String(); got != "one\ntwo\nthree\n" {
		t.Errorf("rsp connect output: got %q", got)
	}
}

// Ensure that daytime and chargen talk first, as RFC 867/864 and RSPLIB's
// rspserver: rsp connect -n gets the time (one line, then the PE closes
// the session) and the character stream without sending anything.
func TestServeTalkers(t *testing.T) {
	checkLeaks(t)
	r := registrartest.Start(t, "", nil)
	reg := r.ASAPAddr()
	startServe(t, "-registrar", reg, "-pool", "daytime", "-service", "daytime", "-listen", "tcp:127.0.0.1:0", "-asap", "tcp:127.0.0.1:0")
	chargen := startServe(t, "-registrar", reg, "-pool", "chargen", "-service", "chargen", "-listen", "tcp:127.0.0.1:0", "-asap", "tcp:127.0.0.1:0")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var out, errOut syncBuffer
	if code := connectCmd(ctx, []string{"-registrar", reg, "-replies=false", "-n", "1", "daytime"}, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("rsp connect -n 1 daytime exited %d:\n%s", code, errOut.String())
	}
	if !regexp.MustCompile(`^[A-Z][a-z]+day, \d{2}-[A-Z][a-z]+-\d{4} \d{2}:\d{2}:\d{2}\.\d{6}\n$`).MatchString(out.String()) {
		t.Errorf("daytime: %q, want one line like RSPLIB's \"Monday, 23-November-2026 12:00:00.123456\"", out.String())
	}

	out, errOut = syncBuffer{}, syncBuffer{}
	if code := connectCmd(ctx, []string{"-registrar", reg, "-replies=false", "-n", "3", "chargen"}, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("rsp connect -n 3 chargen exited %d:\n%s", code, errOut.String())
	}
	if lines := strings.Split(out.String(), "\n"); len(lines) != 3*14+1 || len(lines[0]) != 72 || lines[0][:3] != ` !"` || lines[1][:3] != `!"#` {
		t.Errorf("chargen: %d lines, first %q; want 42 lines of the RFC 864 pattern", len(lines)-1, lines[0])
	}
	// The PE notices the pool user left (its stream's send fails) and ends the session.
	chargen.out.wait(t, "the chargen session to end", regexp.MustCompile(`pool user left`), 10*time.Second)
	if strings.Contains(errOut.String(), "failover") {
		t.Errorf("chargen session failed over:\n%s", errOut.String())
	}
}

// Ensure that rsp serve sends each pool user a business card with up to
// -card-pes other PEs of its pool (never itself), none with -card-pes 0,
// and logs the pool user's own card (its pool and its transport).
func TestServeBusinessCards(t *testing.T) {
	checkLeaks(t)
	r := registrartest.Start(t, "", nil)
	reg := r.ASAPAddr()
	pes := map[string]*inProcessPE{}
	for i, id := range []string{"0x00002001", "0x00002002", "0x00002003", "0x00002004"} {
		card := "2"
		if i == 3 {
			card = "0"
		}
		pes[id] = startServe(t, "-registrar", reg, "-pool", "cards", "-id", id, "-card-pes", card,
			"-listen", "tcp:127.0.0.1:0", "-asap", "tcp:127.0.0.1:0")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	seen := map[string]bool{}
	for try := 0; try < 40 && len(seen) < 4; try++ {
		// The session stays open (its input does) until the PE has told
		// what it did with the cards.
		stdin, feed := io.Pipe()
		out, errOut := &syncBuffer{}, &syncBuffer{}
		offsets := map[string]int{}
		for id, p := range pes {
			offsets[id] = len(p.out.String())
		}
		done := make(chan int, 1)
		go func() { done <- connectCmd(ctx, []string{"-registrar", reg, "cards"}, stdin, out, errOut) }()
		id := errOut.wait(t, "the connect line", regexp.MustCompile(`connected to PE (0x[0-9a-f]{8})`), 10*time.Second)[1]
		seen[id] = true
		p := pes[id]
		from := offsets[id]
		fmt.Fprintln(feed, "hi") // the pool user's card comes before it
		out.wait(t, "the echo", regexp.MustCompile(`(?m)^hi$`), 10*time.Second)
		after := func() string { return p.out.String()[from:] }
		if !regexp.MustCompile(`business card from the pool user: .*pool=cards pes=1 first="0x00000000 tcp 127\.0\.0\.1:\d+"`).MatchString(after()) {
			t.Errorf("PE %s did not log the pool user's card:\n%s", id, after())
		}
		if id != "0x00002004" {
			waitForOutput(t, "the business card "+id+" sent", func() bool { return strings.Contains(after(), "business card sent") }, p.out)
			m := regexp.MustCompile(`business card sent: .*candidates=(\S+)`).FindStringSubmatch(after())
			if cands := strings.Split(m[1], ","); len(cands) != 2 || slices.Contains(cands, id) {
				t.Errorf("PE %s named candidates %v; want 2 other PEs", id, cands)
			}
		}
		feed.Close()
		if code := <-done; code != 0 {
			t.Fatalf("rsp connect exited %d:\n%s", code, errOut.String())
		}
	}
	if len(seen) < 4 {
		t.Fatalf("round robin reached only %v of the 4 PEs", seen)
	}
	if strings.Contains(pes["0x00002004"].out.String(), "business card sent") {
		t.Error("a PE with -card-pes 0 sent a business card")
	}
}

// waitForOutput polls cond until it holds or 10 s pass.
func waitForOutput(t *testing.T, what string, cond func() bool, out *syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 10s:\n%s", what, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
