package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap/sharedtest"
	"github.com/rserpool-go/registrar/registrar/registrartest"
)

// inProcessPE runs `rsp serve` in this process.
type inProcessPE struct {
	out    *sharedtest.Buffer
	cancel context.CancelFunc
	code   chan int
}

func startServe(t *testing.T, args ...string) *inProcessPE {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &inProcessPE{out: &sharedtest.Buffer{}, cancel: cancel, code: make(chan int, 1)}
	go func() { p.code <- serve(ctx, args, p.out) }()
	t.Cleanup(func() { p.stop(t) })
	p.out.Wait(t, `"pe registered"`, regexp.MustCompile(`pe registered`), 10*time.Second)
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
	sharedtest.CheckLeaks(t)
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
	cout, cerr := &sharedtest.Buffer{}, &sharedtest.Buffer{}
	done := make(chan int, 1)
	go func() {
		done <- connectCmd(ctx, []string{"-registrar", reg, "-timeout", "3s", "echo"}, stdin, cout, cerr)
	}()
	first := cerr.Wait(t, "connect line", regexp.MustCompile(`connected to PE (0x0000100[12])`), 10*time.Second)[1]
	for _, line := range []string{"one", "two"} {
		fmt.Fprintln(feed, line)
		cout.Wait(t, "the reply to "+line, regexp.MustCompile("(?m)^"+line+"$"), 10*time.Second)
	}
	// The echo service sends its cookie after each reply, so the cookie of
	// "one" came before the reply to "two" (that of "two" may be on its
	// way). The PE sent the pool user a business card naming the other.
	pes[first].out.Wait(t, "the business card", regexp.MustCompile(`business card sent: .*candidates=0x0000100[12]`), 10*time.Second)
	pes[first].stop(t)
	m := cerr.Wait(t, "the failover line", regexp.MustCompile(`failover: PE `+first+` unreachable, now PE (0x0000100[12]) \(cookie echoed, from the PE's business card\)`), 10*time.Second)
	second := m[1]
	fmt.Fprintln(feed, "three")
	cout.Wait(t, "the reply after the failover", regexp.MustCompile("(?m)^three$"), 10*time.Second)
	pes[second].out.Wait(t, "the restored cookie", regexp.MustCompile(`restored session from cookie: .*messages_served_before=[12]`), 5*time.Second)
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
	sharedtest.CheckLeaks(t)
	r := registrartest.Start(t, "", nil)
	reg := r.ASAPAddr()
	startServe(t, "-registrar", reg, "-pool", "daytime", "-service", "daytime", "-listen", "tcp:127.0.0.1:0", "-asap", "tcp:127.0.0.1:0")
	chargen := startServe(t, "-registrar", reg, "-pool", "chargen", "-service", "chargen", "-listen", "tcp:127.0.0.1:0", "-asap", "tcp:127.0.0.1:0")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	out, errOut := &sharedtest.Buffer{}, &sharedtest.Buffer{}
	if code := connectCmd(ctx, []string{"-registrar", reg, "-replies=false", "-n", "1", "daytime"}, strings.NewReader(""), out, errOut); code != 0 {
		t.Fatalf("rsp connect -n 1 daytime exited %d:\n%s", code, errOut.String())
	}
	if !regexp.MustCompile(`^[A-Z][a-z]+day, \d{2}-[A-Z][a-z]+-\d{4} \d{2}:\d{2}:\d{2}\.\d{6}\n$`).MatchString(out.String()) {
		t.Errorf("daytime: %q, want one line like RSPLIB's \"Monday, 23-November-2026 12:00:00.123456\"", out.String())
	}

	out, errOut = &sharedtest.Buffer{}, &sharedtest.Buffer{}
	if code := connectCmd(ctx, []string{"-registrar", reg, "-replies=false", "-n", "3", "chargen"}, strings.NewReader(""), out, errOut); code != 0 {
		t.Fatalf("rsp connect -n 3 chargen exited %d:\n%s", code, errOut.String())
	}
	if lines := strings.Split(out.String(), "\n"); len(lines) != 3*14+1 || len(lines[0]) != 72 || lines[0][:3] != ` !"` || lines[1][:3] != `!"#` {
		t.Errorf("chargen: %d lines, first %q; want 42 lines of the RFC 864 pattern", len(lines)-1, lines[0])
	}
	// The PE notices the pool user left (its stream's send fails) and ends the session.
	chargen.out.Wait(t, "the chargen session to end", regexp.MustCompile(`pool user left`), 10*time.Second)
	if strings.Contains(errOut.String(), "failover") {
		t.Errorf("chargen session failed over:\n%s", errOut.String())
	}
}

// Ensure that rsp serve sends each pool user a business card with up to
// -card-pes other PEs of its pool (never itself), none with -card-pes 0,
// and logs the pool user's own card (its pool and its transport).
func TestServeBusinessCards(t *testing.T) {
	sharedtest.CheckLeaks(t)
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
		out, errOut := &sharedtest.Buffer{}, &sharedtest.Buffer{}
		offsets := map[string]int{}
		for id, p := range pes {
			offsets[id] = len(p.out.String())
		}
		done := make(chan int, 1)
		go func() { done <- connectCmd(ctx, []string{"-registrar", reg, "cards"}, stdin, out, errOut) }()
		id := errOut.Wait(t, "the connect line", regexp.MustCompile(`connected to PE (0x[0-9a-f]{8})`), 10*time.Second)[1]
		seen[id] = true
		p := pes[id]
		from := offsets[id]
		fmt.Fprintln(feed, "hi") // the pool user's card comes before it
		out.Wait(t, "the echo", regexp.MustCompile(`(?m)^hi$`), 10*time.Second)
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
func waitForOutput(t *testing.T, what string, cond func() bool, out *sharedtest.Buffer) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 10s:\n%s", what, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
