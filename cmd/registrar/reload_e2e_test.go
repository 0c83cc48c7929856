package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/registrar"
	"github.com/rserpool-go/registrar/registrar/registrartest"
)

// writeConfig writes a config file of keys.
func writeConfig(t *testing.T, path string, keys map[string]any) {
	t.Helper()
	b, err := json.MarshalIndent(keys, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// notifySocket listens where a test agent sends its sd_notify states.
func notifySocket(t *testing.T) (string, <-chan string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdn") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ch := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			ch <- string(buf[:n])
		}
	}()
	return path, ch
}

func waitNotify(t *testing.T, ch <-chan string, want string) {
	t.Helper()
	select {
	case got := <-ch:
		if !strings.HasPrefix(got, want) {
			t.Errorf("sd_notify: got %q, want %q", got, want)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("sd_notify: no %q within 20s", want)
	}
}

func metric(t *testing.T, httpAddr, series string) string {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// Ensure SIGHUP makes a running agent (the built binary, started with
// only -config) read its config file again: the log level and a rate
// limit change at once, a key that needs a restart is named, an invalid
// file changes nothing, and the agent keeps serving throughout; systemd
// hears READY, RELOADING/READY and STOPPING.
func TestE2E_SighupReload(t *testing.T) {
	bin := registrartest.BinDir(t)
	dir := t.TempDir()
	port := func() string { return fmt.Sprintf("127.0.0.1:%d", registrartest.FreePort(t)) }
	asap, httpAddr := "tcp:"+port(), port()
	keys := map[string]any{"data_dir": filepath.Join(dir, "data"), "asap": asap, "enrp": "tcp:" + port(), "http": httpAddr,
		"raft": port(), "gossip": port(), "profile": "local", "log_level": "info"}
	cfgPath := filepath.Join(dir, "registrar.json")
	writeConfig(t, cfgPath, keys)
	sock, notes := notifySocket(t)
	agent := registrartest.StartProcessEnv(t, "registrar agent", []string{"NOTIFY_SOCKET=" + sock},
		filepath.Join(bin, "registrar"), "agent", "-config", cfgPath)
	agent.WaitLine(0, registrar.ReadyLine, 30*time.Second)
	waitNotify(t, notes, "READY=1")

	rsp := filepath.Join(bin, "rsp")
	pe := registrartest.StartProcess(t, "rsp serve", rsp, "serve", "-registrar", asap, "-pool", "p", "-listen", "tcp:127.0.0.1:0")
	pe.WaitLine(0, "pe registered", 15*time.Second)
	resolve := func() error {
		return exec.Command(rsp, "resolve", "-registrar", asap, "-timeout", "5s", "p").Run()
	}
	for i := 0; i < 3; i++ {
		if err := resolve(); err != nil {
			t.Fatalf("resolution %d before the reload: %v", i, err)
		}
	}
	if strings.Contains(agent.Output(), "registration accepted") {
		t.Fatal("the agent logs debug lines at log_level info")
	}

	keys["log_level"] = "debug"
	keys["resolution_rate"], keys["resolution_burst"] = 0.001, 1
	keys["keepalive_interval"] = "7s"
	writeConfig(t, cfgPath, keys)
	from := agent.Lines()
	agent.Signal(syscall.SIGHUP)
	waitNotify(t, notes, "RELOADING=1")
	line := agent.WaitLine(from, "configuration reloaded", 15*time.Second)
	for _, want := range []string{"log_level: info -> debug", "resolution_rate: 1000 -> 0.001", "resolution_burst: 1000 -> 1"} {
		if !strings.Contains(line, want) {
			t.Errorf("reload line %q lacks %q", line, want)
		}
	}
	if l := agent.WaitLine(from, "apply only after a restart", 5*time.Second); !strings.Contains(l, "keepalive_interval") {
		t.Errorf("restart line %q does not name keepalive_interval", l)
	}
	waitNotify(t, notes, "READY=1")

	// The level: a new PE's registration now logs at debug.
	pe2 := registrartest.StartProcess(t, "rsp serve 2", rsp, "serve", "-registrar", asap, "-pool", "p", "-listen", "tcp:127.0.0.1:0")
	pe2.WaitLine(0, "pe registered", 15*time.Second)
	agent.WaitLine(from, "registration accepted", 10*time.Second)
	// The limit (per connection): one resolution per burst, the next ones
	// on the connection dropped (the bench gives up on them).
	_ = exec.Command(rsp, "bench", "resolve", "-registrar", asap, "-pool", "b", "-pes", "1", "-conns", "1",
		"-duration", "300ms", "-timeout", "300ms").Run()
	if v := metric(t, httpAddr, `rsp_resolutions_total{result="rate_limited"}`); v == "" || v == "0" {
		t.Errorf("rate-limited resolutions after the reload: %q, want at least 1", v)
	}

	// An invalid file: logged, nothing changes, the agent goes on.
	if err := os.WriteFile(cfgPath, []byte(`{"log_level": "loud",`), 0o644); err != nil {
		t.Fatal(err)
	}
	from = agent.Lines()
	agent.Signal(syscall.SIGHUP)
	bad := agent.WaitLine(from, "configuration not reloaded", 15*time.Second)
	if !strings.Contains(bad, "[ERROR]") || !strings.Contains(bad, cfgPath+":1:") {
		t.Errorf("invalid reload line %q: want an ERROR naming the file's position", bad)
	}
	waitNotify(t, notes, "RELOADING=1")
	waitNotify(t, notes, "READY=1")
	if agent.Exited() {
		t.Fatal("the agent exited on SIGHUP")
	}
	if out, err := exec.Command(filepath.Join(bin, "registrar"), "status", "-http", httpAddr).CombinedOutput(); err != nil {
		t.Fatalf("status after the reloads: %v\n%s", err, out)
	}
	pe.Stop()
	pe2.Stop()
	agent.Signal(syscall.SIGTERM)
	waitNotify(t, notes, "STOPPING=1")
	agent.Stop()
}

// Ensure -log-file sends the agent's logs to the file, rotated by size,
// and nothing to standard error.
func TestE2E_LogFile(t *testing.T) {
	bin := registrartest.BinDir(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "registrar.log")
	agent := registrartest.StartProcess(t, "registrar agent", filepath.Join(bin, "registrar"), "agent", "-data-dir", filepath.Join(dir, "data"),
		"-asap", fmt.Sprintf("tcp:127.0.0.1:%d", registrartest.FreePort(t)), "-enrp", fmt.Sprintf("tcp:127.0.0.1:%d", registrartest.FreePort(t)),
		"-http", fmt.Sprintf("127.0.0.1:%d", registrartest.FreePort(t)), "-raft", fmt.Sprintf("127.0.0.1:%d", registrartest.FreePort(t)),
		"-gossip", fmt.Sprintf("127.0.0.1:%d", registrartest.FreePort(t)), "-profile", "local", "-log-file", logPath)
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(logPath)
		if strings.Contains(string(b), registrar.ReadyLine) {
			break
		}
		if time.Now().After(deadline) || agent.Exited() {
			t.Fatalf("no %q in %s within 30s; the file has:\n%s\nstderr:\n%s", registrar.ReadyLine, logPath, b, agent.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	agent.Stop()
	if out := agent.Output(); out != "" {
		t.Errorf("with -log-file the agent still wrote to stderr:\n%s", out)
	}
	b, _ := os.ReadFile(logPath)
	if !strings.Contains(string(b), "shutting down") {
		t.Errorf("the log file lacks the shutdown:\n%s", b)
	}
}
