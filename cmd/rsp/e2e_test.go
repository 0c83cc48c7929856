package main

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap/sharedtest"
	"github.com/rserpool-go/registrar/registrar/registrartest"
)

// End to end with the built binaries (E2E_BIN, set by `make test`): a
// registrar agent, three `rsp serve` PEs, `rsp resolve`, and `rsp connect`
// surviving a SIGKILL of the PE it talks to.
func TestE2E_ServeResolveConnect(t *testing.T) {
	bin := registrartest.BinDir(t)
	rsp := filepath.Join(bin, "rsp")
	agent := registrartest.StartAgent(t, t.TempDir())

	ids := []string{"0x00001001", "0x00001002", "0x00001003"}
	pes := map[string]*registrartest.Process{}
	for _, id := range ids {
		p := registrartest.StartProcess(t, "rsp serve "+id, rsp, "serve", "-registrar", agent.ASAP, "-pool", "echo",
			"-service", "echo", "-id", id, "-listen", "tcp:127.0.0.1:0", "-asap", "tcp:127.0.0.1:0", "-rereg", "2s")
		pes[id] = p
	}
	for id, p := range pes {
		line := p.WaitLine(0, "pe registered", 15*time.Second)
		if !strings.Contains(line, "pe="+id) || !strings.Contains(line, "pool=echo") || !strings.Contains(line, agent.ASAP) {
			t.Errorf("registration line of %s: %q, want the pool, the PE and the registrar", id, line)
		}
	}

	out, err := exec.Command(rsp, "resolve", "-registrar", agent.ASAP, "-n", "3", "echo").CombinedOutput()
	if err != nil {
		t.Fatalf("rsp resolve: %v\n%s", err, out)
	}
	for _, id := range ids {
		if !strings.Contains(string(out), id) {
			t.Errorf("rsp resolve does not list %s:\n%s", id, out)
		}
	}
	out, err = exec.Command(rsp, "resolve", "-registrar", agent.ASAP, "-json", "-n", "3", "echo").Output()
	var res resolution
	if err != nil || json.Unmarshal(out, &res) != nil || len(res.PEs) != 3 {
		t.Fatalf("rsp resolve -json: %v, got %+v from\n%s", err, res, out)
	}
	out, err = exec.Command(rsp, "resolve", "-registrar", agent.ASAP, "nopool").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), `pool "nopool" is unknown`) {
		t.Errorf("rsp resolve of an unknown pool: %v, %q; want exit 1 and a clear message", err, out)
	}

	cmd := exec.Command(rsp, "connect", "-registrar", agent.ASAP, "-timeout", "3s", "echo")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	cout, cerr := &sharedtest.Buffer{}, &sharedtest.Buffer{}
	cmd.Stdout, cmd.Stderr = cout, cerr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("rsp connect stdout:\n%s\nstderr:\n%s", cout, cerr)
		}
	})
	first := cerr.Wait(t, "connect line", regexp.MustCompile(`connected to PE (0x0000100[123])`), 15*time.Second)[1]
	for _, line := range []string{"one", "two", "three"} {
		fmt.Fprintln(stdin, line)
		cout.Wait(t, "the reply to "+line, regexp.MustCompile("(?m)^"+line+"$"), 10*time.Second)
	}
	pes[first].Kill() // SIGKILL
	second := cerr.Wait(t, "the failover line",
		regexp.MustCompile(`failover: PE `+first+` unreachable, now PE (0x0000100[123]) \(cookie echoed, from (the PE's business card|a handle resolution)\)`), 15*time.Second)[1]
	fmt.Fprintln(stdin, "four")
	cout.Wait(t, "the reply after the failover", regexp.MustCompile("(?m)^four$"), 10*time.Second)
	restored := pes[second].WaitLine(0, "restored session from cookie", 10*time.Second)
	if !regexp.MustCompile(`messages_served_before=[23]`).MatchString(restored) {
		t.Errorf("new PE's cookie line: %q, want 2 or 3 messages served before", restored)
	}
	stdin.Close()
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Fatalf("rsp connect: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("rsp connect did not exit at the end of its input")
	}
	if got := cout.String(); got != "one\ntwo\nthree\nfour\n" {
		t.Errorf("rsp connect output: got %q", got)
	}

	// SIGTERM deregisters: the registrar stops listing the PE at once.
	pes[second].Stop()
	if !strings.Contains(pes[second].Output(), "pe deregistered") {
		t.Errorf("rsp serve on SIGTERM did not deregister:\n%s", pes[second].Output())
	}
	out, _ = exec.Command(rsp, "resolve", "-registrar", agent.ASAP, "-n", "3", "echo").CombinedOutput()
	if strings.Contains(string(out), second) {
		t.Errorf("rsp resolve still lists %s after it deregistered:\n%s", second, out)
	}
}
