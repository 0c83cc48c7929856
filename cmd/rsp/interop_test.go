package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap/sharedtest"
	"github.com/rserpool-go/registrar/registrar/registrartest"
)

// Interoperability of rsp serve, resolve and connect with RSPLIB over
// kernel SCTP. The test runs in the SCTP lab VM (`make test-sctp`), which
// has SCTP, RSPLIB's programs and the addresses 10.99.0.1-3. RSPLIB drops
// loopback addresses, hence the lab addresses.

const (
	labPE        = "10.99.0.1" // our PE
	labRegistrar = "10.99.0.2" // RSPLIB's registrar
)

func needLab(t *testing.T) string {
	t.Helper()
	fail := func(why string) {
		if os.Getenv("RSP_REQUIRE_SCTP") == "1" {
			t.Fatalf("RSPLIB interop required (RSP_REQUIRE_SCTP=1) but %s", why)
		}
		t.Skipf("RSPLIB interop: %s; `make test-sctp` runs it in the SCTP lab VM", why)
	}
	if b, _ := os.ReadFile("/proc/net/protocols"); !strings.Contains(string(b), "SCTP") {
		fail("the kernel has no SCTP")
	}
	for _, p := range []string{"rspregistrar", "rspserver", "rspterminal"} {
		if _, err := exec.LookPath(p); err != nil {
			fail("RSPLIB's " + p + " is not installed")
		}
	}
	if os.Getenv("E2E_BIN") == "" {
		fail("E2E_BIN does not point at our binaries")
	}
	return registrartest.BinDir(t)
}

// runUntil runs cmd in a process group of its own until its output
// matches want or d passes, then kills the group.
func runUntil(t *testing.T, cmd *exec.Cmd, want *regexp.Regexp, d time.Duration) (string, bool) {
	out := &sharedtest.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	deadline := time.Now().Add(d)
	ok := false
	for !ok && time.Now().Before(deadline) {
		ok = want.MatchString(out.String())
		select {
		case <-done:
			deadline = time.Now() // exited: one last look
		case <-time.After(20 * time.Millisecond):
		}
	}
	ok = ok || want.MatchString(out.String())
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
	return out.String(), ok
}

// rsp serve registers at RSPLIB's registrar and rspterminal reaches it;
// RSPLIB's echo PE is resolved and reached by rsp resolve and rsp connect.
func TestSCTPInterop_RSPLIB(t *testing.T) {
	bin := needLab(t)
	rsp := filepath.Join(bin, "rsp")
	// Its output is block-buffered (not a terminal): rsp serve's retries
	// tell when it serves. It has no peer, so its start-up (mentor
	// discovery) phase is cut from 5 s to 1 s.
	registrartest.StartProcess(t, "rspregistrar", "rspregistrar", "-asap="+labRegistrar+":3863", "-enrp="+labRegistrar+":9901",
		"-asapannounce=off", "-enrpannounce=off", "-loglevel=2", "-logcolor=off", "-mentordiscoverytimeout=1000")
	regSpec := "sctp:" + labRegistrar + ":3863"

	t.Run("our PE, RSPLIB's PU", func(t *testing.T) {
		p := registrartest.StartProcess(t, "rsp serve", rsp, "serve", "-registrar", regSpec, "-pool", "GoEcho", "-id", "0x2001",
			"-listen", "sctp:"+labPE+":0", "-asap", "sctp:"+labPE+":0", "-rereg", "5s", "-log-level", "debug")
		p.WaitLine(0, "pe registered", 60*time.Second)
		out, err := exec.Command(rsp, "resolve", "-registrar", regSpec, "GoEcho").CombinedOutput()
		if err != nil || !regexp.MustCompile(`0x00002001\s+0x[0-9a-f]{8}\s+sctp data\+control\s+`+regexp.QuoteMeta(labPE)).Match(out) {
			t.Fatalf("rsp resolve at RSPLIB's registrar: %v\n%s", err, out)
		}
		term := exec.Command("sh", "-c", "( printf 'Hello Go PE\\n'; sleep 60 ) | rspterminal -poolhandle=GoEcho -registrar="+
			labRegistrar+":3863 -logcolor=off -loglevel=2")
		if out, ok := runUntil(t, term, regexp.MustCompile(`from PE.*Hello Go PE`), 40*time.Second); !ok {
			t.Fatalf("rspterminal got no echo from rsp serve:\n%s", out)
		}
		p.WaitLine(0, "pool user connected", 5*time.Second)
		// RSPLIB's registrar keeps the PE through keep-alive rounds
		// (every 5 s; an unanswered one removes it 5 s later): two answered
		// after the echo, and the PE is still there.
		from := p.Lines()
		for i := 0; i < 2; i++ {
			from = p.WaitNext(from, "keep-alive answered", 30*time.Second)
		}
		out, err = exec.Command(rsp, "resolve", "-registrar", regSpec, "GoEcho").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "0x00002001") {
			t.Fatalf("rsp serve's PE left RSPLIB's registrar: %v\n%s\n%s", err, out, p.Output())
		}
	})

	t.Run("RSPLIB's PE, our PU", func(t *testing.T) {
		registrartest.StartProcess(t, "rspserver", "rspserver", "-echo", "-poolhandle=EchoPool", "-registrar="+labRegistrar+":3863",
			"-asapannounce=off", "-loglevel=2", "-logcolor=off", "-quiet")
		var out []byte
		deadline := time.Now().Add(30 * time.Second)
		for {
			var err error
			out, err = exec.Command(rsp, "resolve", "-registrar", regSpec, "EchoPool").CombinedOutput()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("rspserver's PE not resolvable through rsp resolve: %v\n%s", err, out)
			}
			time.Sleep(200 * time.Millisecond)
		}
		if !strings.Contains(string(out), "sctp data+control") {
			t.Errorf("rsp resolve of RSPLIB's PE:\n%s", out)
		}
		conn := exec.Command(rsp, "connect", "-registrar", regSpec, "-timeout", "10s", "EchoPool")
		conn.Stdin = strings.NewReader("hello rsplib\n")
		got, err := conn.CombinedOutput()
		if err != nil || !strings.Contains(string(got), "hello rsplib") {
			t.Fatalf("rsp connect to RSPLIB's echo PE: %v\n%s", err, got)
		}
	})

	t.Run("a line after the dial deadline", func(t *testing.T) { testLineAfterDialDeadline(t, rsp, regSpec) })
	t.Run("services", func(t *testing.T) { testServices(t, rsp, regSpec) })
}
