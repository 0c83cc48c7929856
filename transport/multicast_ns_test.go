package transport_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap/sharedtest"
	"github.com/rserpool-go/registrar/transport"
)

// helperEnv selects a helper mode of the test binary (see TestMain): the
// namespace test runs the binary again inside each namespace.
const helperEnv = "RSP_TRANSPORT_TEST_HELPER"

// runHelper runs a helper mode and returns the exit code. Its parameters
// come from the environment: RSP_MCAST_GROUP, RSP_MCAST_IF, RSP_MCAST_COUNT.
func runHelper(mode string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	count, _ := strconv.Atoi(os.Getenv("RSP_MCAST_COUNT"))
	cfg := transport.DefaultMulticastConfig()
	cfg.Interface = os.Getenv("RSP_MCAST_IF")
	cfg.Loopback = false
	cfg.SendOnly = mode == "mcast-send"
	m, err := transport.OpenMulticast(ctx, os.Getenv("RSP_MCAST_GROUP"), cfg)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	defer m.Close()
	switch mode {
	case "mcast-recv":
		fmt.Println("ready")
		for i := 0; i < count; i++ {
			payload, src, err := m.Recv(ctx)
			if err != nil {
				fmt.Println("error", err)
				return 1
			}
			fmt.Println("got", src.Addr(), string(payload))
		}
		return 0
	case "mcast-send":
		for i := 0; i < count; i++ {
			if err := m.Send(ctx, []byte(fmt.Sprintf("announce-%d", i))); err != nil {
				fmt.Println("error", err)
				return 1
			}
			time.Sleep(20 * time.Millisecond)
		}
		fmt.Println("sent")
		return 0
	}
	fmt.Println("error: unknown helper mode", mode)
	return 2
}

// needNetns skips (or, under CI as root, fails) when network namespaces
// cannot be built.
func needNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespace tests need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true as root, but `ip` (iproute2) is missing")
		}
		t.Skip("network namespace tests need `ip` (apt-get install iproute2)")
	}
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// buildLab builds testing-oracles.md's lab: a bridge in its own namespace
// and hosts 10.99.0.1..n on veths, with names unique to this process. It
// returns the host namespaces; t.Cleanup deletes everything.
func buildLab(t *testing.T, n int) []string {
	t.Helper()
	prefix := fmt.Sprintf("rspt%d", os.Getpid())
	sw := prefix + "sw"
	var all []string
	t.Cleanup(func() {
		for _, ns := range all {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v %s", ns, err, out)
			}
		}
	})
	ipCmd(t, "netns", "add", sw)
	all = append(all, sw)
	ipCmd(t, "-n", sw, "link", "add", "br0", "type", "bridge")
	ipCmd(t, "-n", sw, "link", "set", "br0", "type", "bridge", "mcast_snooping", "0")
	ipCmd(t, "-n", sw, "link", "set", "br0", "up")
	var hosts []string
	for i := 1; i <= n; i++ {
		h := fmt.Sprintf("%sh%d", prefix, i)
		port := fmt.Sprintf("vrsp%d", i)
		ipCmd(t, "netns", "add", h)
		all = append(all, h)
		hosts = append(hosts, h)
		// No duplicate address detection, so IPv6 link-local addresses are
		// usable at once.
		if out, err := exec.Command("ip", "netns", "exec", h, "sh", "-c",
			"echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad").CombinedOutput(); err != nil {
			t.Logf("disable DAD in %s: %v %s (IPv6 may be slower to start)", h, err, out)
		}
		ipCmd(t, "link", "add", port, "netns", sw, "type", "veth", "peer", "name", "eth0", "netns", h)
		ipCmd(t, "-n", sw, "link", "set", port, "master", "br0", "up")
		ipCmd(t, "-n", h, "link", "set", "lo", "up")
		ipCmd(t, "-n", h, "addr", "add", fmt.Sprintf("10.99.0.%d/24", i), "dev", "eth0")
		ipCmd(t, "-n", h, "link", "set", "eth0", "up")
		ipCmd(t, "-n", h, "route", "add", "224.0.0.0/4", "dev", "eth0")
	}
	return hosts
}

// helperProc is the test binary running a helper mode in a namespace.
type helperProc struct {
	cmd   *exec.Cmd
	lines chan string
}

func startHelper(t *testing.T, ns, mode string, env ...string) *helperProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), append(env, helperEnv+"="+mode)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper in %s: %v", ns, err)
	}
	h := &helperProc{cmd: cmd, lines: make(chan string, 100)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(h.lines)
		s := bufio.NewScanner(out)
		for s.Scan() {
			h.lines <- s.Text()
		}
		io.Copy(io.Discard, out)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		cmd.Wait()
	})
	return h
}

// expect waits for the next line and checks its prefix.
func (h *helperProc) expect(t *testing.T, prefix string, d time.Duration) string {
	t.Helper()
	select {
	case l, ok := <-h.lines:
		if !ok {
			t.Fatalf("helper exited before printing %q", prefix)
		}
		if !strings.HasPrefix(l, prefix) {
			t.Fatalf("helper printed %q, want %q...", l, prefix)
		}
		return l
	case <-time.After(d):
		t.Fatalf("helper printed nothing in %v, want %q", d, prefix)
	}
	return ""
}

// TestMulticastNamespaces: one host's announce reaches the two others
// across a bridge, over IPv4 (the default ASAP group) and IPv6.
func TestMulticastNamespaces(t *testing.T) {
	needNetns(t)
	sharedtest.CheckLeaks(t, testFrames)
	hosts := buildLab(t, 3)
	for _, tc := range []struct{ group, src string }{
		{transport.DefaultASAPAnnounce, "10.99.0.1"},
		{"[ff15::50]:3863", "fe80::"},
	} {
		t.Run(tc.group, func(t *testing.T) {
			env := []string{"RSP_MCAST_GROUP=" + tc.group, "RSP_MCAST_IF=eth0", "RSP_MCAST_COUNT=3"}
			rx := []*helperProc{startHelper(t, hosts[1], "mcast-recv", env...), startHelper(t, hosts[2], "mcast-recv", env...)}
			for _, r := range rx {
				r.expect(t, "ready", 10*time.Second)
			}
			tx := startHelper(t, hosts[0], "mcast-send", env...)
			tx.expect(t, "sent", 10*time.Second)
			for i, r := range rx {
				for k := 0; k < 3; k++ {
					got := r.expect(t, "got", 10*time.Second)
					f := strings.Fields(got)
					if len(f) != 3 || !strings.HasPrefix(f[1], tc.src) || f[2] != fmt.Sprintf("announce-%d", k) {
						t.Errorf("host %d: got %q, want \"got %s... announce-%d\"", i+2, got, tc.src, k)
					}
				}
			}
		})
	}
}
