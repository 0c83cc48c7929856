package registrar_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/registrar"
	"github.com/rserpool-go/registrar/registrar/registrartest"
	"github.com/rserpool-go/registrar/transport"
)

// nsLab is testing-oracles.md's lab: a bridge in its own namespace, one
// namespace per registrar host, and a veth from the test's own namespace
// to the bridge so the test reaches every host. Names and the subnet are
// unique to this process; t.Cleanup removes everything.
type nsLab struct {
	t      *testing.T
	hosts  []string // namespace names
	net    string   // "10.98.N."
	rootIP string
}

func needRootNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but not root: network namespace tests need root")
		}
		t.Skip("network namespace tests need root")
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("CI=true as root, but %s is missing (.ci/run installs it)", tool)
			}
			t.Skipf("%s not installed", tool)
		}
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func newNSLab(t *testing.T, n int) *nsLab {
	t.Helper()
	id := os.Getpid() % 250
	prefix := fmt.Sprintf("rspr%d", os.Getpid())
	lab := &nsLab{t: t, net: fmt.Sprintf("10.98.%d.", id)}
	sw := prefix + "sw"
	rootIf := fmt.Sprintf("rsr%d", os.Getpid()%100000)
	var created []string
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", rootIf).Run()
		for _, ns := range created {
			exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	run(t, "ip", "netns", "add", sw)
	created = append(created, sw)
	run(t, "ip", "-n", sw, "link", "add", "br0", "type", "bridge")
	run(t, "ip", "-n", sw, "link", "set", "br0", "up")
	for i := 1; i <= n; i++ {
		h := fmt.Sprintf("%sh%d", prefix, i)
		run(t, "ip", "netns", "add", h)
		created = append(created, h)
		lab.hosts = append(lab.hosts, h)
		port := fmt.Sprintf("v%d", i)
		run(t, "ip", "link", "add", port, "netns", sw, "type", "veth", "peer", "name", "eth0", "netns", h)
		run(t, "ip", "-n", sw, "link", "set", port, "master", "br0", "up")
		run(t, "ip", "-n", h, "link", "set", "lo", "up")
		run(t, "ip", "-n", h, "addr", "add", lab.ip(i)+"/24", "dev", "eth0")
		run(t, "ip", "-n", h, "link", "set", "eth0", "up")
	}
	// The test's own namespace joins the bridge as .100.
	lab.rootIP = lab.net + "100"
	run(t, "ip", "link", "add", rootIf, "type", "veth", "peer", "name", "vroot", "netns", sw)
	run(t, "ip", "-n", sw, "link", "set", "vroot", "master", "br0", "up")
	run(t, "ip", "addr", "add", lab.rootIP+"/24", "dev", rootIf)
	run(t, "ip", "link", "set", rootIf, "up")
	return lab
}

func (l *nsLab) ip(i int) string { return fmt.Sprintf("%s%d", l.net, i) }

// startAgent runs `registrar agent` inside host i's namespace.
func (l *nsLab) startAgent(i int, dir string, extra ...string) *registrartest.Agent {
	t := l.t
	t.Helper()
	bin := registrartest.BinDir(t)
	ip := l.ip(i)
	a := &registrartest.Agent{Dir: dir, ASAP: "tcp:" + ip + ":3863", ENRP: "tcp:" + ip + ":9901",
		HTTP: ip + ":8863", Raft: ip + ":7947", Gossip: ip + ":7946"}
	var seeds []string
	for j := 1; j <= len(l.hosts); j++ {
		seeds = append(seeds, l.ip(j)+":7946")
	}
	args := append([]string{"netns", "exec", l.hosts[i-1], filepath.Join(bin, "registrar"), "agent",
		"-data-dir", dir, "-asap", a.ASAP, "-enrp", a.ENRP, "-http", a.HTTP, "-raft", a.Raft, "-gossip", a.Gossip,
		"-join", strings.Join(seeds, ","), "-bootstrap-expect", fmt.Sprint(len(l.hosts)), "-profile", "local",
		"-insecure"}, extra...) // a test network: no TLS, tokens or gossip key
	a.Process = registrartest.StartProcess(t, fmt.Sprintf("registrar@%s", ip), "ip", args...)
	a.WaitLine(0, registrar.ReadyLine, 30*time.Second)
	return a
}

// isolate cuts host i off from the other registrar hosts (the test's own
// address stays reachable); heal undoes it.
func (l *nsLab) isolate(i int) {
	for j := 1; j <= len(l.hosts); j++ {
		if j == i {
			continue
		}
		run(l.t, "ip", "netns", "exec", l.hosts[i-1], "iptables", "-A", "INPUT", "-s", l.ip(j), "-j", "DROP")
		run(l.t, "ip", "netns", "exec", l.hosts[i-1], "iptables", "-A", "OUTPUT", "-d", l.ip(j), "-j", "DROP")
	}
}

func (l *nsLab) heal(i int) {
	run(l.t, "ip", "netns", "exec", l.hosts[i-1], "iptables", "-F")
}

// listenPE is a test PE with an ASAP endpoint on addr.
func listenPE(t *testing.T, addr string) *asapPE {
	cfg := transport.DefaultConfig()
	cfg.PPID = transport.PPIDASAP
	ln, err := transport.Listen(context.Background(), "tcp:"+addr+":0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return wrapPE(t, ln)
}

// Ensure, with registrars in network namespaces: the minority side of a
// partition refuses registrations (and still resolves), the majority keeps
// working, and after healing everything converges.
func TestNetns_Partition(t *testing.T) {
	needRootNetns(t)
	registrartest.BinDir(t)
	lab := newNSLab(t, 3)
	base := t.TempDir()
	agents := make([]*registrartest.Agent, 3)
	done := make(chan int, 3)
	for i := 1; i <= 3; i++ {
		go func(i int) {
			agents[i-1] = lab.startAgent(i, filepath.Join(base, fmt.Sprint(i)), "-write-timeout", "1s")
			done <- i
		}(i)
	}
	for range agents {
		<-done
	}
	c := &e2eCluster{t: t, agents: agents}
	c.waitVoters(3, agents...)

	pe := listenPE(t, lab.rootIP)
	element := func(id uint32) asap.PoolElement {
		e := pe.element(id)
		e.User.Addrs = []netip.Addr{netip.MustParseAddr(lab.rootIP)}
		e.ASAP.Addrs = e.User.Addrs
		return e
	}
	clients := make([]*client, 3)
	for i, a := range agents {
		clients[i] = dialAddr(t, a.ASAP, true)
		mustRegister(t, clients[i], "pool", element(uint32(10+i)))
	}
	count := func(a *registrartest.Agent) int {
		out, err := a.CLI("pools", "-json")
		if err != nil {
			return -1
		}
		var ps []registrar.PoolSummary
		if json.Unmarshal([]byte(out), &ps) != nil || len(ps) == 0 {
			return 0
		}
		return ps[0].PEs
	}
	for _, a := range agents {
		waitValue(t, 10*time.Second, "replication", func() int { return count(a) }, 3)
	}

	// Partition: registrar 3 alone.
	lab.isolate(3)
	minority := agents[2]
	waitFor(t, 15*time.Second, "minority notices it lost the leader", func() bool { return c.status(minority).Stale })
	t.Logf("partitioned: minority %s stale=%v", minority.HTTP, c.status(minority).Stale)
	resp := register(t, clients[2], "pool", element(30))
	t.Logf("minority registration answer: reject=%v cause=%v", resp.Reject, resp.Error)
	if !resp.Reject || resp.Error.First() != asap.CauseLackOfResources {
		t.Errorf("minority registration: %+v, want refused (lack of resources)", resp)
	}
	if r := resolve(t, clients[2], "pool", asap.ItemsAll); len(r.PEs) < 3 {
		t.Errorf("minority resolution: %d PEs, want the 3 it knows", len(r.PEs))
	}
	waitFor(t, 15*time.Second, "majority registration", func() bool {
		return !register(t, clients[0], "pool", element(31)).Reject
	})

	// Heal: every registrar converges on the same handlespace.
	lab.heal(3)
	c.waitVoters(3, agents...)
	for _, a := range agents {
		waitFor(t, 30*time.Second, "convergence at "+a.HTTP, func() bool { return count(a) == 4 })
	}
	if r := resolve(t, clients[2], "pool", asap.ItemsAll); len(r.PEs) != 4 {
		t.Errorf("after healing, the former minority resolves %d PEs, want 4", len(r.PEs))
	}
}
