package registrartest

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/registrar"
)

// End-to-end test helpers: they run the built binaries (the etcd e2e
// pattern). `make test` sets E2E_BIN to the bin/ directory; without it the
// tests skip, except under CI=true where that is a failure.

// BinDir returns the directory of the built binaries, or skips the test.
func BinDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("E2E_BIN")
	if dir == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("E2E_BIN is not set under CI=true: run the tests with `make test`")
		}
		t.Skip("end-to-end test: set E2E_BIN to the bin/ directory (make test does)")
	}
	for _, b := range []string{"registrar", "rsp"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			t.Fatalf("E2E_BIN=%s has no %s binary: run `make build`", dir, b)
		}
	}
	return dir
}

// FreePort returns a port that is free on 127.0.0.1 for both TCP and UDP
// (gossip needs both). It comes from below the kernel's ephemeral range,
// so no outgoing connection or listener on port 0 can take it between
// this call and the agent's bind, or while an agent restarts; the start
// is random per process and no port is handed out twice by one process,
// so concurrent test binaries rarely try the same one, and a port in use
// is skipped.
func FreePort(t testing.TB) int {
	t.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	lo, hi := 10000, ephemeralLow()
	if portNext == 0 {
		portNext = lo + rand.IntN(hi-lo)
	}
	for range hi - lo {
		p := portNext
		portNext++
		if portNext >= hi {
			portNext = lo
		}
		if portFree(p) {
			return p
		}
	}
	t.Fatalf("no free port in %d-%d", lo, hi-1)
	return 0
}

var (
	portMu   sync.Mutex
	portNext int
)

// ephemeralLow is the first port of the kernel's ephemeral range (32768
// when it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 11000 {
				return n
			}
		}
	}
	return 32768
}

func portFree(p int) bool {
	addr := fmt.Sprintf("127.0.0.1:%d", p)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer l.Close()
	u, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	u.Close()
	return true
}

// Process is a program started for an end-to-end test; its output is
// collected line by line.
type Process struct {
	t    testing.TB
	Name string
	Path string
	Args []string
	Env  []string

	mu    sync.Mutex
	cmd   *exec.Cmd
	lines []string
	cond  *sync.Cond
	done  chan struct{}
}

// StartProcess runs bin with args; it is killed when the test ends.
func StartProcess(t testing.TB, name, bin string, args ...string) *Process {
	t.Helper()
	return StartProcessEnv(t, name, nil, bin, args...)
}

// StartProcessEnv is StartProcess with extra environment variables
// ("KEY=value").
func StartProcessEnv(t testing.TB, name string, env []string, bin string, args ...string) *Process {
	t.Helper()
	p := &Process{t: t, Name: name, Path: bin, Args: args, Env: env}
	p.cond = sync.NewCond(&p.mu)
	p.start()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			out := p.Output()
			if len(out) > 20000 {
				out = "..." + out[len(out)-20000:]
			}
			t.Logf("output of %s %v:\n%s", p.Name, p.Args, out)
		}
	})
	return p
}

func (p *Process) start() {
	p.t.Helper()
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Env = append(os.Environ(), p.Env...)
	out, err := cmd.StderrPipe()
	if err != nil {
		p.t.Fatal(err)
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.Name, err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	go func() { // ends when the process closes its output
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.cond.Broadcast()
			p.mu.Unlock()
		}
		_ = cmd.Wait()
		p.mu.Lock()
		close(done)
		p.cond.Broadcast()
		p.mu.Unlock()
	}()
}

// WaitLine waits until a line containing substr appears after line from
// (use Lines() to get a position), and returns it.
func (p *Process) WaitLine(from int, substr string, timeout time.Duration) string {
	p.t.Helper()
	line, _ := p.waitLine(from, substr, timeout)
	return line
}

// WaitNext waits like WaitLine and returns the index of the line after
// the match, to wait for the next occurrence from there.
func (p *Process) WaitNext(from int, substr string, timeout time.Duration) int {
	p.t.Helper()
	_, next := p.waitLine(from, substr, timeout)
	return next
}

func (p *Process) waitLine(from int, substr string, timeout time.Duration) (string, int) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	stop := time.AfterFunc(timeout, func() { p.mu.Lock(); p.cond.Broadcast(); p.mu.Unlock() })
	defer stop.Stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := from; ; {
		for ; i < len(p.lines); i++ {
			if strings.Contains(p.lines[i], substr) {
				return p.lines[i], i + 1
			}
		}
		select {
		case <-p.done:
			p.t.Fatalf("%s exited before logging %q; output:\n%s", p.Name, substr, strings.Join(p.lines, "\n"))
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s did not log %q within %v; output:\n%s", p.Name, substr, timeout, strings.Join(p.lines, "\n"))
		}
		p.cond.Wait()
	}
}

// Lines is the number of output lines so far.
func (p *Process) Lines() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.lines)
}

// Output is everything the process printed.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

func (p *Process) signal(sig syscall.Signal, wait time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(wait):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Signal sends sig to the process (if it runs) without waiting.
func (p *Process) Signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		_ = cmd.Process.Signal(sig)
	}
}

// Kill sends SIGKILL and waits for the process to end. Idempotent.
func (p *Process) Kill() { p.signal(syscall.SIGKILL, 10*time.Second) }

// Stop sends SIGTERM and waits (up to 20 s, then SIGKILL).
func (p *Process) Stop() { p.signal(syscall.SIGTERM, 20*time.Second) }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Restart starts the same command again (after Kill or Stop).
func (p *Process) Restart() {
	p.t.Helper()
	p.Kill()
	p.start()
}

// Agent is a `registrar agent` process on loopback ports of its own.
type Agent struct {
	*Process
	Dir                    string
	ASAP, ENRP, HTTP, Raft string
	Gossip                 string
	// CLIEnv is added to the environment of CLI (REGISTRAR_HTTP_TOKEN,
	// REGISTRAR_CA_FILE, ...).
	CLIEnv []string
}

// StartAgent runs `registrar agent` in dir with free loopback ports (TCP
// only, the local timing profile) plus extra flags, and waits for the
// ready line.
func StartAgent(t testing.TB, dir string, extra ...string) *Agent {
	t.Helper()
	return startAgent(t, dir, 0, extra...)
}

// StartAgentFileLimit is StartAgent with the agent's open file limit,
// soft and hard, set to nofile (through the shell's ulimit, before the
// exec: the agent cannot raise it).
func StartAgentFileLimit(t testing.TB, dir string, nofile int, extra ...string) *Agent {
	t.Helper()
	if nofile <= 0 {
		t.Fatalf("open file limit %d: want a positive number", nofile)
	}
	return startAgent(t, dir, nofile, extra...)
}

func startAgent(t testing.TB, dir string, nofile int, extra ...string) *Agent {
	t.Helper()
	bin := BinDir(t)
	a := &Agent{Dir: dir,
		ASAP:   fmt.Sprintf("tcp:127.0.0.1:%d", FreePort(t)),
		ENRP:   fmt.Sprintf("tcp:127.0.0.1:%d", FreePort(t)),
		HTTP:   fmt.Sprintf("127.0.0.1:%d", FreePort(t)),
		Raft:   fmt.Sprintf("127.0.0.1:%d", FreePort(t)),
		Gossip: fmt.Sprintf("127.0.0.1:%d", FreePort(t)),
	}
	args := []string{"agent", "-data-dir", dir, "-asap", a.ASAP, "-enrp", a.ENRP, "-http", a.HTTP,
		"-raft", a.Raft, "-profile", "local", "-log-level", "debug"}
	if g, ok := flagValue(extra, "-gossip"); ok {
		a.Gossip = g
	} else {
		args = append(args, "-gossip", a.Gossip)
	}
	args = append(args, extra...)
	path := filepath.Join(bin, "registrar")
	if nofile > 0 {
		// sh runs ulimit and execs the agent ($0) with its arguments.
		args = append([]string{"-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, nofile), path}, args...)
		path = "/bin/sh"
	}
	a.Process = StartProcess(t, "registrar "+filepath.Base(dir), path, args...)
	a.WaitLine(0, registrar.ReadyLine, 30*time.Second)
	return a
}

// flagValue is the value of the last "name value" pair in args.
func flagValue(args []string, name string) (v string, ok bool) {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == name {
			v, ok = args[i+1], true
		}
	}
	return v, ok
}

// RestartAndWait restarts the agent and waits for its ready line.
func (a *Agent) RestartAndWait() {
	a.t.Helper()
	from := a.Lines()
	a.Restart()
	a.WaitLine(from, registrar.ReadyLine, 30*time.Second)
}

// CLI runs `registrar ARGS` against this agent's admin API (through
// REGISTRAR_HTTP_ADDR) and returns its output.
func (a *Agent) CLI(args ...string) (string, error) {
	bin := BinDir(a.t)
	cmd := exec.Command(filepath.Join(bin, "registrar"), args...)
	cmd.Env = append(append(os.Environ(), "REGISTRAR_HTTP_ADDR="+a.HTTP), a.CLIEnv...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
