package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/registrar"
	"github.com/rserpool-go/registrar/registrar/registrartest"
)

// alarming are log lines a healthy start must not print.
var alarming = regexp.MustCompile(`\[(WARN|ERROR)\]|use tcp: or an auto address`)

// checkQuiet fails the test for every WARN or ERROR line (or misleading
// advice) in a program's output.
func checkQuiet(t *testing.T, what, out string) {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if alarming.MatchString(line) {
			t.Errorf("%s logged an alarming line on a healthy run: %s", what, line)
		}
	}
}

// Ensure the README's quick start, run as a new operator would (a
// registrar with its default flags but free ports, two `rsp serve` PEs,
// `rsp resolve`, `rsp connect`, `registrar status`, `registrar pools`, then
// Ctrl-C for everything), works and logs no WARN or ERROR line anywhere,
// and that the counts read right ("1 pool, 2 PEs").
func TestE2E_QuickStartIsQuiet(t *testing.T) {
	bin := registrartest.BinDir(t)
	reg, rsp := filepath.Join(bin, "registrar"), filepath.Join(bin, "rsp")
	port := func() int { return registrartest.FreePort(t) }
	asapPort, httpAddr := port(), fmt.Sprintf("127.0.0.1:%d", port())
	// As `make run`: no tcp: prefix (auto), default profile and log level.
	agent := registrartest.StartProcess(t, "registrar agent", reg, "agent", "-data-dir", filepath.Join(t.TempDir(), "registrar-data"),
		"-asap", fmt.Sprintf("127.0.0.1:%d", asapPort), "-enrp", fmt.Sprintf("127.0.0.1:%d", port()), "-http", httpAddr,
		"-raft", fmt.Sprintf("127.0.0.1:%d", port()), "-gossip", fmt.Sprintf("127.0.0.1:%d", port()))
	agent.WaitLine(0, registrar.ReadyLine, 30*time.Second)

	regAddr := fmt.Sprintf("tcp:127.0.0.1:%d", asapPort)
	var pes []*registrartest.Process
	for i := 0; i < 2; i++ {
		p := registrartest.StartProcess(t, fmt.Sprintf("rsp serve %d", i), rsp, "serve", "-registrar", regAddr,
			"-pool", "EchoPool", "-service", "echo", "-listen", "tcp:127.0.0.1:0")
		p.WaitLine(0, "pe registered", 15*time.Second)
		pes = append(pes, p)
	}
	run := func(stdin string, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Env = append(cmd.Environ(), "REGISTRAR_HTTP_ADDR="+httpAddr)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %q: %v\n%s", filepath.Base(name), args, err, out)
		}
		checkQuiet(t, filepath.Base(name)+" "+args[0], string(out))
		return string(out)
	}
	if out := run("", rsp, "resolve", "-registrar", regAddr, "EchoPool"); len(regexp.MustCompile(`(?m)^0x`).FindAllString(out, -1)) != 2 {
		t.Errorf("rsp resolve should list both PEs:\n%s", out)
	}
	if out := run("hello\nworld\n", rsp, "connect", "-registrar", regAddr, "EchoPool"); !strings.Contains(out, "hello\nworld\n") {
		t.Errorf("rsp connect did not echo the lines:\n%s", out)
	}
	status := run("", reg, "status")
	for _, want := range []string{"1 pool, 2 PEs, 2 homed here", "Members", "1 registrar, 1 alive", "(leader)"} {
		if !strings.Contains(status, want) {
			t.Errorf("registrar status lacks %q:\n%s", want, status)
		}
	}
	if pools := run("", reg, "pools", "EchoPool"); !strings.Contains(pools, "Pool EchoPool, policy rr (Round Robin), 2 PEs") {
		t.Errorf("registrar pools EchoPool:\n%s", pools)
	}
	for i, p := range pes {
		p.Stop()
		checkQuiet(t, fmt.Sprintf("rsp serve %d", i), p.Output())
		if !strings.Contains(p.Output(), "pe deregistered") {
			t.Errorf("rsp serve %d did not deregister on SIGTERM:\n%s", i, p.Output())
		}
		if strings.Contains(p.Output(), "no SCTP") {
			t.Errorf("rsp serve %d with only tcp: addresses talks about SCTP:\n%s", i, p.Output())
		}
	}
	agent.Stop() // as Ctrl-C: an orderly shutdown
	if !agent.Exited() || !strings.Contains(agent.Output(), "shutting down") {
		t.Errorf("the agent did not shut down in order:\n%s", agent.Output())
	}
	checkQuiet(t, "registrar agent", agent.Output())
	if !strings.Contains(agent.Output(), "starting election") {
		t.Errorf("the agent's log does not show its self-election at all (the check above would be empty):\n%s", agent.Output())
	}
}
