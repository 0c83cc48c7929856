package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/registrar/registrartest"
)

// End to end with the built binaries: `rsp watch POOL` prints the PEs
// that `rsp serve` registers and deregisters; killed and started again
// with -index of the last line it printed, it prints what happened while
// it was down, in order, and goes on across a restart of the registrar;
// `registrar watch -json` prints the same events as JSON.
func TestE2E_Watch(t *testing.T) {
	bin := registrartest.BinDir(t)
	rsp := filepath.Join(bin, "rsp")
	agent := registrartest.StartAgent(t, t.TempDir())
	serve := func(id string) *registrartest.Process {
		p := registrartest.StartProcess(t, "rsp serve "+id, rsp, "serve", "-registrar", agent.ASAP, "-pool", "echo",
			"-service", "echo", "-id", id, "-listen", "tcp:127.0.0.1:0", "-asap", "tcp:127.0.0.1:0")
		p.WaitLine(0, "pe registered", 15*time.Second)
		return p
	}
	watch := registrartest.StartProcess(t, "rsp watch", rsp, "watch", "-http", agent.HTTP, "echo")
	watch.WaitLine(0, "stream.ready", 15*time.Second)
	pe1 := serve("0x00001001")
	line := watch.WaitLine(0, "pe.registered echo pe=0x00001001", 15*time.Second)
	if !strings.Contains(line, "tcp 127.0.0.1") || !strings.Contains(line, "policy=") {
		t.Errorf("registration line %q: want the transport, address and policy", line)
	}
	last, err := strconv.ParseUint(strings.Fields(line)[0], 10, 64)
	if err != nil {
		t.Fatalf("line %q does not start with the raft index: %v", line, err)
	}
	watch.Kill()

	// While no one watches: a second PE comes, the first one goes.
	pe2 := serve("0x00001002")
	pe1.Stop()
	_ = pe2

	again := registrartest.StartProcess(t, "rsp watch -index", rsp, "watch", "-http", agent.HTTP, "-index", strconv.FormatUint(last, 10), "echo")
	reg := again.WaitNext(0, "pe.registered echo pe=0x00001002", 15*time.Second)
	rm := again.WaitLine(reg, "pe.removed echo pe=0x00001001", 15*time.Second)
	if !strings.Contains(rm, `reason="deregistered"`) {
		t.Errorf("removal line %q: want reason deregistered", rm)
	}
	if out := again.Output(); strings.Contains(out, "pe.registered echo pe=0x00001001") {
		t.Errorf("the resumed watch printed the registration it had seen before -index %d again:\n%s", last, out)
	}

	cmd := exec.Command(filepath.Join(bin, "registrar"), "watch", "-json", "-index", strconv.FormatUint(last, 10), "-n", "2", "echo")
	cmd.Env = append(cmd.Environ(), "REGISTRAR_HTTP_ADDR="+agent.HTTP)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("registrar watch -json -n 2: %v\n%s", err, out)
	}
	var types []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var e struct {
			Index uint64 `json:"index"`
			Type  string `json:"type"`
			PE    *struct {
				ID string `json:"id"`
			} `json:"pe"`
		}
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("line %q is not JSON: %v", l, err)
		}
		if e.Index <= last && !strings.HasPrefix(e.Type, "stream.") {
			t.Errorf("event at index %d, asked for after %d", e.Index, last)
		}
		if e.PE != nil {
			types = append(types, e.Type+" "+e.PE.ID)
		}
	}
	if want := "pe.registered 0x00001002,pe.removed 0x00001001"; strings.Join(types, ",") != want {
		t.Errorf("registrar watch -json printed %v, want %s", types, want)
	}

	// The registrar restarts under a running watch: it reconnects by
	// itself (resuming, or told to resync: the history is in memory)
	// and goes on printing.
	from := again.Lines()
	agent.RestartAndWait()
	serve("0x00001003")
	again.WaitLine(from, "resuming", 15*time.Second)
	again.WaitLine(from, "pe.registered echo pe=0x00001003", 30*time.Second)
}
