package registrar_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/asap/csp"
	"github.com/rserpool-go/registrar/asap/sharedtest"
	"github.com/rserpool-go/registrar/registrar/registrartest"
)

// More interop scenarios in the SCTP lab VM: status reports to RSPLIB's
// cspmonitor, the distance-sensitive policies between RSPLIB's PEs and
// registrar and ours, and a multi-homed PE losing an interface.

// ansi matches the terminal control sequences cspmonitor draws with.
var ansi = regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)

// cspProxy receives CSP reports on a UDP port, records them and forwards
// them to cspmonitor, so a test sees both the bytes each component sent
// and what cspmonitor made of them.
type cspProxy struct {
	pc      net.PacketConn
	mu      sync.Mutex
	reports [][]byte
}

func startCSPProxy(t *testing.T, listen, monitor string) *cspProxy {
	pc, err := net.ListenPacket("udp", listen)
	if err != nil {
		t.Fatal(err)
	}
	out, err := net.Dial("udp", monitor)
	if err != nil {
		t.Fatal(err)
	}
	p := &cspProxy{pc: pc}
	go func() {
		defer out.Close()
		buf := make([]byte, 65536)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			b := append([]byte(nil), buf[:n]...)
			p.mu.Lock()
			p.reports = append(p.reports, b)
			p.mu.Unlock()
			_, _ = out.Write(b)
		}
	}()
	t.Cleanup(func() { pc.Close() })
	return p
}

// find returns the reports whose sender match accepts, raw.
func (p *cspProxy) find(match func(*csp.Report) bool) [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out [][]byte
	for _, b := range p.reports {
		if r, err := csp.Parse(b); err == nil && match(r) {
			out = append(out, b)
		}
	}
	return out
}

// Ensure that cspmonitor lists our registrar, our PE and our PU with the
// status RSPLIB's components report (status text, location, workload,
// associations), beside an RSPLIB PE, and that our encoding of RSPLIB's
// own reports is byte for byte the one RSPLIB sent (a copy of which is in
// asap/csp/testdata).
func TestInterop_CSP(t *testing.T) {
	bin := needInterop(t)
	if _, err := exec.LookPath("cspmonitor"); err != nil {
		t.Fatal("RSPLIB's cspmonitor is not installed in the lab")
	}
	labCapture(t)
	mon := registrartest.StartProcess(t, "cspmonitor", "cspmonitor", "-full", "-updateinterval=250")
	proxy := startCSPProxy(t, "127.0.0.1:2961", "127.0.0.1:2960")
	const to = "127.0.0.1:2961"
	a := ourAgent(t, bin, "-csp-server", to, "-csp-interval", "250ms")
	ours := idOf(t, a)
	serve := registrartest.StartProcess(t, "rsp serve", filepath.Join(bin, "rsp"), "serve", "-registrar", "sctp:"+ourAddr+":3863",
		"-pool", "CSPPool", "-id", "0x3001", "-policy", "lu:25%", "-listen", "sctp:"+ourAddr+":0",
		"-csp-server", to, "-csp-interval", "250ms")
	serve.WaitLine(0, "pe registered", 30*time.Second)
	registrartest.StartProcess(t, "rspserver", "rspserver", "-echo", "-poolhandle=RSPLIBPool", "-registrar="+ourAddr+":3863",
		"-asapannounce=off", "-loglevel=2", "-logcolor=off", "-quiet", "-cspserver="+to, "-cspinterval=250")
	_, puOut := startWithStdin(t, filepath.Join(bin, "rsp"), "connect", "-registrar", "sctp:"+ourAddr+":3863", "-replies=false",
		"-log-level", "info", "-csp-server", to, "-csp-interval", "250ms", "CSPPool")
	defer func() {
		if t.Failed() {
			t.Logf("rsp connect:\n%s", puOut)
		}
	}()

	// cspmonitor -full: "PR $id [location] U=... l=...s A=n L=...% "status"",
	// then one "   -> PE $id ASAP/SCTP  duration=..." line per association.
	wants := map[string]*regexp.Regexp{
		"our registrar": regexp.MustCompile(`PR \$` + ours + ` \[[^\]]*: 10\.99\.0\.1:3863\] +U=\d\d:\d\d:\d\d l=[\d.]+s A=0 "2\[2\] PEs in 2 Pools, 0 Peers"`),
		"our PE":        regexp.MustCompile(`PE \$00003001 \[[^\]]*: 10\.99\.0\.1:\d+\] +U=\d\d:\d\d:\d\d l=[\d.]+s A=1 L= 25% "1 Session"\s+-> PR \$` + ours + ` ASAP/SCTP +duration=`),
		"our PU":        regexp.MustCompile(`PU \$[0-9a-f]{14} \[[^\]]*\] +U=\d\d:\d\d:\d\d l=[\d.]+s A=2 "1 Session"\s+-> PR \$[0-9a-f]{8} ASAP/SCTP +duration=\S+\s+-> PE \$00003001 Data/SCTP +duration=`),
		"RSPLIB's PE":   regexp.MustCompile(`PE \$[0-9a-f]{8} \[[^\]]*\] +U=\d\d:\d\d:\d\d l=[\d.]+s A=1 "0 Sessions"\s+-> PR \$` + ours + ` ASAP/SCTP`),
	}
	var screen string
	deadline := time.Now().Add(45 * time.Second)
	for {
		// The last whole screen: between the last two "Current Component
		// Status" headers (a screen's last line runs into the next header).
		if screens := strings.Split(mon.Output(), "Current Component Status"); len(screens) >= 3 {
			screen = ansi.ReplaceAllString(screens[len(screens)-2], "")
		}
		missing := []string{}
		for what, re := range wants {
			if !re.MatchString(screen) {
				missing = append(missing, what)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cspmonitor does not list %v as expected within 45s; its last screen:\n%s", missing, screen)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("cspmonitor:\n%s", screen)

	// RSPLIB's own reports, re-encoded by our codec, are the bytes RSPLIB sent.
	rsplib := proxy.find(func(r *csp.Report) bool {
		return csp.GroupOf(r.Sender) == csp.GroupPoolElement && csp.ObjectOf(r.Sender) != 0x3001
	})
	if len(rsplib) == 0 {
		t.Fatal("no report from RSPLIB's PE reached the proxy")
	}
	for _, b := range rsplib {
		r, err := csp.Parse(b)
		if err != nil {
			t.Fatalf("RSPLIB's report does not parse: %v (%x)", err, b)
		}
		again, err := csp.Append(nil, r)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("RSPLIB's report re-encoded differs:\nRSPLIB %x\nours   %x (%v)", b, again, err)
		}
	}
	if dir := os.Getenv("RSP_CAPTURE_DIR"); dir != "" {
		_ = os.WriteFile(filepath.Join(dir, "csp-rsplib-pe.bin"), rsplib[len(rsplib)-1], 0o644)
	}
}

// startWithStdin runs a command whose standard input stays open (until
// the returned writer is closed) and collects its output; it is killed
// when the test ends.
func startWithStdin(t *testing.T, name string, args ...string) (io.WriteCloser, *sharedtest.Buffer) {
	cmd := exec.Command(name, args...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out := &sharedtest.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	return in, out
}

// rsplibServer runs RSPLIB's echo PE with extra arguments (a policy).
func rsplibServer(t *testing.T, pool, reg string, extra ...string) *registrartest.Process {
	args := append([]string{"-echo", "-poolhandle=" + pool, "-registrar=" + reg + ":3863", "-asapannounce=off",
		"-loglevel=2", "-logcolor=off", "-quiet"}, extra...)
	return registrartest.StartProcess(t, "rspserver "+pool, "rspserver", args...)
}

// resolvedPolicy is the policy `rsp resolve` shows for the first PE of
// pool at the registrar at addr (false when it does not answer).
func resolvedPolicy(bin, addr, pool string) (asap.Policy, bool) {
	out, err := runWithTimeout(exec.Command(filepath.Join(bin, "rsp"), "resolve", "-registrar", "sctp:"+addr+":3863",
		"-timeout", "10s", "-json", pool), 20*time.Second)
	if err != nil {
		return asap.Policy{}, false
	}
	var res struct {
		PEs []struct {
			Policy asap.Policy `json:"policy"`
		} `json:"pes"`
	}
	if json.Unmarshal([]byte(out), &res) != nil || len(res.PEs) == 0 {
		return asap.Policy{}, false
	}
	return res.PEs[0].Policy, true
}

// Ensure that the distance-sensitive policies travel between RSPLIB and
// us both ways: RSPLIB's PEs with WRAND-DPF, LU-DPF and LUD-DPF register
// at our registrar (which fills in the distance it measured) and reach
// RSPLIB's registrar through ENRP with their values; our PE with LU-DPF
// registers at RSPLIB's and reaches ours; RSPLIB's terminal is served by
// a DPF pool through us.
func TestInterop_DPFPolicies(t *testing.T) {
	bin := needInterop(t)
	labCapture(t)
	rsplibRegistrar(t)
	a := ourAgent(t, bin, "-enrp-peer", rsplAddr+":9901", "-distance-step", "1ms")
	rsplibServer(t, "DPF-LU", ourAddr, "-policy=LeastUsedDPF:0.01")
	rsplibServer(t, "DPF-WRAND", ourAddr, "-policy=WeightedRandomDPF:10:0.02")
	rsplibServer(t, "DPF-LUD", ourAddr, "-policy=LeastUsedDegradationDPF:0.1:0.01")
	serve := registrartest.StartProcess(t, "rsp serve", filepath.Join(bin, "rsp"), "serve", "-registrar", "sctp:"+rsplAddr+":3863",
		"-pool", "DPF-GO", "-policy", "lu-dpf:25%:1%", "-listen", "sctp:"+ourAddr+":0")
	serve.WaitLine(0, "pe registered", 30*time.Second)

	// What both registrars must show: the policy and its values as the PE
	// gave them (RSPLIB's rint(fraction × 0xFFFFFFFF), our percentages);
	// the distance is each registrar's own measurement.
	const pct1, pct2, pct10, pct25 = 42949673, 85899346, 429496730, 1073741824
	want := map[string]asap.Policy{
		"DPF-LU":    {Type: asap.PolicyLeastUsedDPF, LoadDPF: pct1},
		"DPF-WRAND": {Type: asap.PolicyWeightedRandomDPF, Weight: 10, WeightDPF: pct2},
		"DPF-LUD":   {Type: asap.PolicyLeastUsedDegradationDPF, LoadDegradation: pct10, LoadDPF: pct1},
		"DPF-GO":    {Type: asap.PolicyLeastUsedDPF, Load: pct25, LoadDPF: pct1},
	}
	for pool, w := range want {
		for _, at := range []string{ourAddr, rsplAddr} {
			var got asap.Policy
			waitFor(t, 40*time.Second, pool+" with its policy at "+at, func() bool {
				p, ok := resolvedPolicy(bin, at, pool)
				got = p
				p.Distance = 0
				return ok && reflect.DeepEqual(p, w)
			})
			t.Logf("%s at %s: %+v", pool, at, got)
		}
	}
	d, ok := ourPool(a, "DPF-LU")
	if !ok || len(d.PEs) != 1 {
		t.Fatalf("our registrar's DPF-LU: %+v", d)
	}
	term := exec.Command("sh", "-c", "( printf 'Hello DPF\\n'; sleep 30 ) | rspterminal -poolhandle=DPF-LU -registrar="+ourAddr+":3863 -logcolor=off -loglevel=2")
	if out, _ := runUntil(term, "> Hello DPF", 25*time.Second); !regexp.MustCompile(`from PE.*Hello DPF`).MatchString(out) {
		t.Errorf("rspterminal did not reach the LU-DPF PE through our registrar:\n%s", out)
	}
}

// sysctl sets a kernel parameter for the test and restores it after.
func sysctl(t *testing.T, name, value string) {
	path := "/proc/sys/" + strings.ReplaceAll(name, ".", "/")
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("sysctl %s: %v", name, err)
	}
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		t.Fatalf("sysctl %s=%s: %v", name, value, err)
	}
	t.Cleanup(func() { _ = os.WriteFile(path, old, 0o644) })
}

// sctpPaths lists the SCTP paths the kernel has to addr (from
// /proc/net/sctp/remaddr) as "state/retransmissions" strings; state 2
// is active, 1 potentially failed, 0 inactive, 3 unconfirmed.
func sctpPaths(t *testing.T, addr string) []string {
	b, err := os.ReadFile("/proc/net/sctp/remaddr")
	if err != nil {
		t.Fatalf("no SCTP path table: %v", err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		// ADDR ASSOC_ID HB_ACT RTO MAX_PATH_RTX REM_ADDR_RTX START STATE
		if len(f) >= 8 && f[0] == addr {
			out = append(out, f[7]+"/"+f[5])
		}
	}
	return out
}

// Ensure the outcome when a member of our cluster dies while RSPLIB's
// registrar peers with all three members: the cluster re-homes the dead
// member's PE by raft, and its new home announces it; RSPLIB's registrar
// tries to take the dead member over, but no member acknowledges its
// INIT_TAKEOVER, so its takeover expires, and it ends up with the
// cluster's home for the PE: the PE is neither lost nor homed twice.
func TestInterop_RSPLIBAndOurClusterMemberDies(t *testing.T) {
	needInterop(t)
	labCapture(t)
	var peers []string
	for i := range 3 {
		peers = append(peers, fmt.Sprintf("%s:%d", ourAddr, 9901+i))
	}
	rsp := rsplibRegistrarWith(t, rsplAddr, rsplibFastTimers, peers...)

	// Three members on ASAP ports 3863-3865 and ENRP ports 9901-9903 of
	// 10.99.0.1, each peered with RSPLIB's registrar; raft and gossip on
	// loopback, with the lan profile's timers (the emulated CPUs are slow).
	gossip := make([]string, 3)
	for i := range gossip {
		gossip[i] = fmt.Sprintf("127.0.0.1:%d", registrartest.FreePort(t))
	}
	base := t.TempDir()
	members := make([]*registrartest.Agent, 3)
	done := make(chan struct{}, 3)
	for i := range 3 {
		go func() {
			defer func() { done <- struct{}{} }()
			members[i] = registrartest.StartAgent(t, filepath.Join(base, fmt.Sprintf("r%d", i+1)),
				"-asap", fmt.Sprintf("%s:%d", ourAddr, 3863+i), "-enrp", peers[i], "-announce", "off", "-enrp-announce", "off",
				"-profile", "lan", "-gossip", gossip[i], "-join", strings.Join(gossip, ","), "-bootstrap-expect", "3",
				"-enrp-peer", rsplAddr+":9901", "-peer-heartbeat", "1s")
		}()
	}
	for range 3 {
		<-done
	}
	c := &e2eCluster{t: t, agents: members}
	c.waitVoters(3, members...)
	ids := make([]string, 3)
	for i, m := range members {
		ids[i] = idOf(t, m)
		acceptedBy(t, rsp, ids[i])
	}
	leader := c.leader()
	victim := 0
	for victim < 2 && members[victim] == leader {
		victim++
	}
	serve := registrartest.StartProcess(t, "rsp serve", filepath.Join(registrartest.BinDir(t), "rsp"), "serve",
		"-registrar", fmt.Sprintf("sctp:%s:%d", ourAddr, 3863+victim), "-pool", "ClusterPool", "-service", "echo",
		"-listen", "sctp:"+ourAddr+":0")
	serve.WaitLine(0, "pe registered", 30*time.Second)
	bin := registrartest.BinDir(t)
	var peID string
	waitFor(t, 40*time.Second, "RSPLIB's registrar knows our PE, homed at member "+ids[victim], func() bool {
		homes := asapHomes(t, bin, rsplAddr, "ClusterPool")
		for id, home := range homes {
			peID = id
			return len(homes) == 1 && home == ids[victim]
		}
		return false
	})

	from := rsp.Lines()
	members[victim].Kill()
	survivor := members[(victim+1)%3]
	var newHome string
	waitFor(t, 60*time.Second, "the cluster re-homed the dead member's PE", func() bool {
		d, ok := ourPool(survivor, "ClusterPool")
		if !ok || len(d.PEs) != 1 {
			return false
		}
		newHome = strings.TrimPrefix(d.PEs[0].Home, "0x")
		return newHome != ids[victim]
	})
	// RSPLIB's registrar finds the member dead by its own timers and asks
	// the other two to acknowledge its takeover; neither does.
	line := rsp.WaitLine(from, "Takeover of peer $"+ids[victim]+" has expired", 60*time.Second)
	if !strings.Contains(line, "2 outstanding acknowledgements") {
		t.Errorf("RSPLIB's takeover of our dead member: %q, want both live members' acknowledgements outstanding", line)
	}
	if strings.Contains(rsp.Output(), "Takeover of peer $"+ids[victim]+" completed") {
		t.Errorf("RSPLIB's registrar completed a takeover of a member of our cluster:\n%s", rsp.Output())
	}
	waitFor(t, 30*time.Second, "RSPLIB's registrar has our PE homed at "+newHome, func() bool {
		homes := asapHomes(t, bin, rsplAddr, "ClusterPool")
		return len(homes) == 1 && homes[peID] == newHome
	})
	for i, m := range members {
		if i == victim {
			continue
		}
		if d, ok := ourPool(m, "ClusterPool"); !ok || len(d.PEs) != 1 || strings.TrimPrefix(d.PEs[0].Home, "0x") != newHome {
			t.Errorf("member %s: ClusterPool %+v, want the PE homed at %s", ids[i], d.PEs, newHome)
		}
	}
	serve.WaitLine(0, "new home registrar", 30*time.Second)
}

// Ensure takeover suggestions (the T bit) between RSPLIB's registrar and
// ours. With -supporttakeoversuggestion RSPLIB sends a second copy of the
// HANDLE_UPDATE of a PE homed there, with T=1, to the peer whose ID is
// farther (by XOR) from the PE's than its own; ours, with
// -enrp-takeover-suggestion, claims that PE with an H=1 keep-alive, and the
// PE makes ours its home. A PE whose ID is nearer RSPLIB's than ours gets
// no suggestion and keeps its home.
func TestInterop_TakeoverSuggestion(t *testing.T) {
	bin := needInterop(t)
	labCapture(t)
	rsp := rsplibRegistrarWith(t, rsplAddr, []string{"-supporttakeoversuggestion"}, ourAddr)
	a := ourAgent(t, bin, "-enrp-peer", rsplAddr+":9901", "-enrp-takeover-suggestion")
	ours := idOf(t, a)
	acceptedBy(t, rsp, ours)
	id, err := strconv.ParseUint(ours, 16, 32)
	if err != nil {
		t.Fatal(err)
	}
	// ours XOR far is 0xffffffff, more than RSPLIB's ID XOR far: ours is
	// the better peer. ours XOR near is 0: RSPLIB is better placed itself.
	far, near := fmt.Sprintf("%08x", ^uint32(id)), fmt.Sprintf("%08x", uint32(id))
	rsplibServer(t, "Suggested", rsplAddr, "-identifier=0x"+far, "-rereginterval=1000")
	rsplibServer(t, "Kept", rsplAddr, "-identifier=0x"+near, "-rereginterval=1000")

	var rsplID string
	waitFor(t, 30*time.Second, "the PE that stays at RSPLIB's registrar known at ours", func() bool {
		d, ok := ourPool(a, "Kept")
		if ok && len(d.PEs) == 1 {
			rsplID = strings.TrimPrefix(d.PEs[0].Home, "0x")
		}
		return ok && len(d.PEs) == 1
	})
	if rsplID == ours {
		t.Fatalf("PE %s registered at RSPLIB's registrar is homed at ours", near)
	}
	waitFor(t, 40*time.Second, "PE "+far+" homed at ours after RSPLIB suggested the takeover", func() bool {
		d, ok := ourPool(a, "Suggested")
		return ok && len(d.PEs) == 1 && strings.TrimPrefix(d.PEs[0].ID, "0x") == far &&
			strings.TrimPrefix(d.PEs[0].Home, "0x") == ours
	})
	a.WaitLine(0, "claimed a PE its home suggested we take over", 10*time.Second)
	waitFor(t, 30*time.Second, "RSPLIB's registrar knows PE "+far+" homed at ours", func() bool {
		return asapHomes(t, bin, rsplAddr, "Suggested")[far] == ours
	})
	// By now the kept PE has re-registered at RSPLIB's registrar several
	// times (every second), each time an update to ours without the T bit.
	if homes := asapHomes(t, bin, rsplAddr, "Kept"); homes[near] != rsplID {
		t.Errorf("PE %s without a suggestion: RSPLIB's registrar has homes %v, want it at %s", near, homes, rsplID)
	}
	if d, ok := ourPool(a, "Kept"); !ok || len(d.PEs) != 1 || strings.TrimPrefix(d.PEs[0].Home, "0x") != rsplID {
		t.Errorf("PE %s without a suggestion: ours has %+v, want it homed at %s", near, d.PEs, rsplID)
	}
	for _, line := range strings.Split(a.Output(), "\n") {
		if strings.Contains(line, "claimed a PE its home suggested") && !strings.Contains(line, "pe="+far) {
			t.Errorf("our registrar claimed a PE other than %s: %s", far, line)
		}
	}
}

// Ensure that a PE with two addresses on two interfaces keeps its
// associations when one interface goes down mid-session: the pool user's
// session (its primary path on the lost interface) goes on over the other
// address without an RSerPool failover, and the registrar keeps the PE
// through keep-alive rounds.
func TestInterop_MultiHomedPE(t *testing.T) {
	bin := needInterop(t)
	// A second interface with the PE's first (primary) address.
	run(t, "ip", "link", "add", "dummy1", "type", "dummy")
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", "dummy1").Run() })
	run(t, "ip", "link", "set", "dummy1", "up")
	run(t, "ip", "addr", "add", "10.98.0.1/24", "dev", "dummy1")
	// Path failure found in seconds instead of a minute: short RTOs and
	// heartbeats, two retransmissions per path.
	sysctl(t, "net.sctp.rto_min", "100")
	sysctl(t, "net.sctp.rto_initial", "300")
	sysctl(t, "net.sctp.rto_max", "1000")
	sysctl(t, "net.sctp.hb_interval", "500")
	sysctl(t, "net.sctp.path_max_retrans", "2")
	labCapture(t)
	a := ourAgent(t, bin, "-keepalive-interval", "1s", "-keepalive-timeout", "2s")
	serve := registrartest.StartProcess(t, "rsp serve", filepath.Join(bin, "rsp"), "serve", "-registrar", "sctp:"+ourAddr+":3863",
		"-pool", "MultiHomed", "-id", "0x4001", "-listen", "sctp:10.98.0.1,10.99.0.3:0", "-asap", "sctp:10.98.0.1,10.99.0.3:0",
		"-log-level", "debug")
	serve.WaitLine(0, "pe registered", 30*time.Second)
	d, ok := ourPool(a, "MultiHomed")
	if !ok || len(d.PEs) != 1 || !strings.Contains(fmt.Sprint(d.PEs[0].Addresses), "10.98.0.1") || !strings.Contains(fmt.Sprint(d.PEs[0].Addresses), "10.99.0.3") {
		t.Fatalf("the multi-homed PE at our registrar: %+v; want both addresses in its user transport", d)
	}

	feed, out := startWithStdin(t, filepath.Join(bin, "rsp"), "connect", "-registrar", "sctp:"+ourAddr+":3863", "-timeout", "20s", "MultiHomed")
	echo := func(line string, d time.Duration) {
		t.Helper()
		fmt.Fprintln(feed, line)
		waitFor(t, d, "the echo of "+line, func() bool { return strings.Contains(out.String(), line+"\n") })
	}
	echo("before", 20*time.Second)
	t.Logf("paths to 10.98.0.1 before: %v", sctpPaths(t, "10.98.0.1"))

	from := serve.Lines()
	// The interface goes down. The lab is one host: the kernel still
	// delivers to and from a local address whose interface is down, so,
	// as a cut cable would, policy-routing rules ahead of the local table
	// make the address unusable: nothing is sent to it or from it (route
	// lookups fail with "prohibited").
	run(t, "ip", "link", "set", "dummy1", "down")
	run(t, "ip", "route", "add", "prohibit", "10.98.0.0/24", "table", "98")
	run(t, "ip", "route", "add", "prohibit", "0.0.0.0/0", "table", "99")
	run(t, "ip", "rule", "add", "pref", "100", "lookup", "local")
	run(t, "ip", "rule", "del", "pref", "0")
	t.Cleanup(func() {
		for _, args := range [][]string{{"rule", "add", "pref", "0", "lookup", "local"}, {"rule", "del", "pref", "100"},
			{"rule", "del", "pref", "5"}, {"rule", "del", "pref", "6"}, {"route", "flush", "table", "98"}, {"route", "flush", "table", "99"}} {
			_ = exec.Command("ip", args...).Run()
		}
	})
	run(t, "ip", "rule", "add", "pref", "5", "to", "10.98.0.1", "lookup", "98")
	run(t, "ip", "rule", "add", "pref", "6", "from", "10.98.0.1", "lookup", "99")
	echo("after", 30*time.Second)
	waitFor(t, 20*time.Second, "a path to the lost address marked failed (state 0 or 1)", func() bool {
		for _, p := range sctpPaths(t, "10.98.0.1") {
			if strings.HasPrefix(p, "0/") || strings.HasPrefix(p, "1/") {
				return true
			}
		}
		return false
	})
	t.Logf("paths to 10.98.0.1 after: %v", sctpPaths(t, "10.98.0.1"))
	// Keep-alive rounds (1 s, answered within 2 s) go on: the PE stays.
	for i := 0; i < 3; i++ {
		from = serve.WaitNext(from, "keep-alive answered", 20*time.Second)
	}
	echo("later", 30*time.Second)
	if strings.Contains(out.String(), "failover") {
		t.Errorf("the session failed over to another PE; SCTP should have kept it:\n%s", out.String())
	}
	if d, ok := ourPool(a, "MultiHomed"); !ok || len(d.PEs) != 1 {
		t.Errorf("our registrar lost the multi-homed PE: %+v", d)
	}
	feed.Close()
}

// benchRun is one `rsp bench` run.
type benchRun struct {
	Registrar string  `json:"registrar"`
	Mode      string  `json:"mode"`
	Run       int     `json:"run"`
	OpsPerSec float64 `json:"ops_per_sec"`
	P50us     float64 `json:"p50_us"`
	P99us     float64 `json:"p99_us"`
	Errors    int64   `json:"errors"`
	Conns     int     `json:"conns"`
}

// TestLabBench_VsRSPLIB measures `rsp bench register` and `resolve` over
// SCTP against RSPLIB's rspregistrar and ours, side by side in one lab
// boot, alternating which goes first, three runs each, and profiles ours
// (pprof over the admin API). It is not part of `make test` (its name has
// neither SCTP nor Interop): `make bench-sctp` runs it, and
// docs/performance.md records the result.
func TestLabBench_VsRSPLIB(t *testing.T) {
	bin := needInterop(t)
	rsplibRegistrarAt(t, rsplAddr)
	a := ourAgent(t, bin, "-enable-debug", "-resolution-rate", "0") // bench floods on purpose
	modes := map[string][]string{
		"register": {"-conns", "8", "-pes", "10", "-pe-per-assoc"},
		"resolve":  {"-conns", "8", "-pes", "100", "-n", "3"},
	}
	const dur = "8s"
	var runs []benchRun
	for run := 1; run <= 3; run++ {
		for _, mode := range []string{"register", "resolve"} {
			order := []string{"ours", "rsplib"}
			if run%2 == 0 {
				order = []string{"rsplib", "ours"}
			}
			for _, who := range order {
				addr := ourAddr
				if who == "rsplib" {
					addr = rsplAddr
				}
				args := append([]string{"bench", mode, "-registrar", "sctp:" + addr + ":3863", "-pool", "bench-" + who + "-" + mode,
					"-duration", dur, "-json"}, modes[mode]...)
				var prof []byte
				var wg sync.WaitGroup
				if who == "ours" && run == 2 {
					wg.Add(1)
					go func() { // the profile covers the middle of the run, after resolve's pool fill
						defer wg.Done()
						time.Sleep(3 * time.Second)
						resp, err := http.Get("http://" + a.HTTP + "/debug/pprof/profile?seconds=4")
						if err == nil {
							prof, _ = io.ReadAll(resp.Body)
							resp.Body.Close()
						}
					}()
				}
				out, err := exec.Command(filepath.Join(bin, "rsp"), args...).Output()
				wg.Wait()
				var r benchRun
				if err != nil || json.Unmarshal(out, &r) != nil {
					t.Fatalf("rsp %v: %v\n%s", args, err, out)
				}
				r.Registrar, r.Run = who, run
				runs = append(runs, r)
				t.Logf("run %d %-8s %-6s %8.0f ops/s  p50 %6.0f us  p99 %7.0f us  errors %d  associations %d",
					run, mode, who, r.OpsPerSec, r.P50us, r.P99us, r.Errors, r.Conns)
				if dir := os.Getenv("RSP_CAPTURE_DIR"); dir != "" && prof != nil {
					_ = os.WriteFile(filepath.Join(dir, "bench-"+mode+".pprof"), prof, 0o644)
				}
			}
		}
	}
	for _, mode := range []string{"register", "resolve"} {
		var ours, theirs []float64
		for _, r := range runs {
			if r.Mode != mode {
				continue
			}
			if r.Registrar == "ours" {
				ours = append(ours, r.OpsPerSec)
			} else {
				theirs = append(theirs, r.OpsPerSec)
			}
		}
		var ratios []string
		for i := range ours {
			ratios = append(ratios, strconv.FormatFloat(ours[i]/theirs[i], 'f', 2, 64))
		}
		t.Logf("%s: ours/RSPLIB per run %v", mode, ratios)
	}
	if dir := os.Getenv("RSP_CAPTURE_DIR"); dir != "" {
		b, _ := json.MarshalIndent(runs, "", "  ")
		_ = os.WriteFile(filepath.Join(dir, "bench.json"), b, 0o644)
	}
}
