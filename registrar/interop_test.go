package registrar_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap/sharedtest"
	"github.com/rserpool-go/registrar/asap/wiretest"
	"github.com/rserpool-go/registrar/registrar"
	"github.com/rserpool-go/registrar/registrar/registrartest"
)

// Interoperability with RSPLIB (rspregistrar, rspserver, rspterminal,
// hsdump) over kernel SCTP. These tests run inside the SCTP lab VM (see
// `make test-sctp`), which has RSPLIB's programs, SCTP and the addresses
// 10.99.0.1-3. They record an SCTP capture per test into
// RSP_CAPTURE_DIR; `TestInteropCaptures` checks those on the host with
// tshark.

const (
	ourAddr  = "10.99.0.1" // our registrar
	rsplAddr = "10.99.0.2" // RSPLIB's registrar
)

// needInterop skips (or fails, when RSP_REQUIRE_SCTP=1) without the lab.
func needInterop(t *testing.T) string {
	t.Helper()
	fail := func(why string) {
		if os.Getenv("RSP_REQUIRE_SCTP") == "1" {
			t.Fatalf("interop test required (RSP_REQUIRE_SCTP=1) but %s", why)
		}
		t.Skipf("RSPLIB interop: %s; run `make test-sctp` (it boots the SCTP lab VM)", why)
	}
	if b, _ := os.ReadFile("/proc/net/protocols"); !strings.Contains(string(b), "SCTP") {
		fail("the kernel has no SCTP")
	}
	for _, p := range []string{"rspregistrar", "rspserver", "rspterminal", "hsdump"} {
		if _, err := exec.LookPath(p); err != nil {
			fail("RSPLIB's " + p + " is not installed")
		}
	}
	if os.Getenv("E2E_BIN") == "" {
		fail("E2E_BIN does not point at our binaries")
	}
	return registrartest.BinDir(t)
}

// labCapture runs tcpdump for the test when RSP_CAPTURE_DIR is set,
// proven to capture before the scenario starts and stopped after every
// process the test started has stopped (markedCapture).
// TestInteropCaptures checks the file.
func labCapture(t *testing.T) {
	dir := os.Getenv("RSP_CAPTURE_DIR")
	if dir == "" {
		return
	}
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Fatal("RSP_CAPTURE_DIR is set but tcpdump is missing")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".pcap")
	c := startMarkedCapture(t, file, "tcpdump", "-i", "any", "-U", "-w", file,
		"sctp or udp port 3863 or udp port 9901 or udp port 2960 or udp port 2961 or "+markerFilter)
	t.Cleanup(func() {
		if err := c.stop(); err != nil {
			t.Errorf("capture: %v", err)
		}
	})
}

// ourAgent runs our registrar on 10.99.0.1 (SCTP and TCP).
func ourAgent(t *testing.T, bin string, extra ...string) *registrartest.Agent {
	a := &registrartest.Agent{Dir: t.TempDir(), ASAP: "tcp:" + ourAddr + ":3863", ENRP: ourAddr + ":9901", HTTP: "127.0.0.1:8863"}
	args := append([]string{"agent", "-data-dir", a.Dir, "-asap", ourAddr + ":3863", "-enrp", ourAddr + ":9901",
		"-http", a.HTTP, "-raft", "127.0.0.1:7947", "-gossip", "127.0.0.1:7946", "-profile", "local",
		"-announce", "off", "-enrp-announce", "off"}, extra...)
	a.Process = registrartest.StartProcess(t, "our registrar", filepath.Join(bin, "registrar"), args...)
	a.WaitLine(0, registrar.ReadyLine, 60*time.Second)
	return a
}

// rsplibMentorWait is the start-up (mentor discovery) phase the lab's
// RSPLIB registrars wait out before they serve, instead of RSPLIB's 5 s:
// in each scenario they start before any peer that could be their mentor,
// so the phase only delays the test.
const rsplibMentorWait = "-mentordiscoverytimeout=1000"

// rsplibRegistrar runs RSPLIB's registrar on 10.99.0.2, peered with ours.
// It waits out RSPLIB's start-up (mentor discovery) phase.
func rsplibRegistrar(t *testing.T) *registrartest.Process {
	return rsplibRegistrarAt(t, rsplAddr, ourAddr)
}

// rsplibFastTimers are shorter peer timers than RSPLIB's (2.444 s
// heartbeat, 5 s + 5 s to find a peer dead, 5 s takeover expiry), with
// still several heartbeats of silence before a peer counts as dead.
var rsplibFastTimers = []string{"-peerheartbeatcycle=1000", "-peermaxtimelastheard=3000", "-peermaxtimenoresponse=2000",
	"-takeoverexpiryinterval=2500"}

// rsplibRegistrarAt runs RSPLIB's registrar on addr with static peers
// (ADDR or ADDR:PORT; the port is 9901 when omitted). It
// logs at RSPLIB's level 4 (actions), so tests can see which peers it
// accepted (acceptedBy).
func rsplibRegistrarAt(t *testing.T, addr string, peers ...string) *registrartest.Process {
	return rsplibRegistrarWith(t, addr, nil, peers...)
}

// rsplibRegistrarWith is rsplibRegistrarAt with more RSPLIB options (its
// peer timers, -supporttakeoversuggestion).
func rsplibRegistrarWith(t *testing.T, addr string, opts []string, peers ...string) *registrartest.Process {
	args := []string{"-asap=" + addr + ":3863", "-enrp=" + addr + ":9901", "-asapannounce=off", "-enrpannounce=off",
		"-loglevel=4", "-logcolor=off", rsplibMentorWait}
	args = append(args, opts...)
	for _, p := range peers {
		if !strings.Contains(p, ":") {
			p += ":9901"
		}
		args = append(args, "-peer="+p)
	}
	p := registrartest.StartProcess(t, "rspregistrar@"+addr, "rspregistrar", args...)
	p.WaitLine(0, "The registrar is ready", 60*time.Second)
	return p
}

// acceptedBy waits until RSPLIB's registrar rsp has accepted a PRESENCE
// of the registrar with ID id (8 hex digits) on an association: only then
// does it synchronise with the peer ("... synchronization with peer $ID is
// necessary"), and only such a peer's PEs does it take over. It fails the
// test if RSPLIB refused a PRESENCE for want of a usable ENRP endpoint.
func acceptedBy(t *testing.T, rsp *registrartest.Process, id string) {
	t.Helper()
	rsp.WaitLine(0, "synchronization with peer $"+id+" is necessary", 40*time.Second)
	noUnusablePresence(t, rsp)
}

// noUnusablePresence fails the test if RSPLIB's registrar refused a
// PRESENCE because the association was not from the ENRP endpoint the
// message names.
func noUnusablePresence(t *testing.T, rsp *registrartest.Process) {
	t.Helper()
	if out := rsp.Output(); strings.Contains(out, "contains no usable ENRP endpoint addresses") {
		t.Errorf("RSPLIB's registrar refused a PRESENCE:\n%s", out)
	}
}

// rspServer runs RSPLIB's echo PE in a pool at a registrar.
func rspServer(t *testing.T, pool, reg string) *registrartest.Process {
	return registrartest.StartProcess(t, "rspserver "+pool, "rspserver", "-echo", "-poolhandle="+pool,
		"-registrar="+reg+":3863", "-asapannounce=off", "-loglevel=2", "-logcolor=off", "-quiet")
}

// ourPool is a pool as our registrar's admin API shows it.
func ourPool(a *registrartest.Agent, pool string) (registrar.PoolDetail, bool) {
	out, err := a.CLI("pools", "-json", pool)
	var d registrar.PoolDetail
	if err != nil || json.Unmarshal([]byte(out), &d) != nil {
		return d, false
	}
	return d, true
}

var ownershipLine = regexp.MustCompile(`\$([0-9a-f]{8}) -> "([^"]+)" / \$([0-9a-f]{8})`)

// hsdump asks a registrar for its handle table and returns, per pool, the
// home registrar of each PE ("pool" -> PE id -> home), both as 8 hex digits.
func hsdump(t *testing.T, addr string) (map[string]map[string]string, string) {
	cmd := exec.Command("hsdump", addr+":9901", "-logcolor=off")
	out, _ := runWithTimeout(cmd, 20*time.Second)
	homes := map[string]map[string]string{}
	for _, m := range ownershipLine.FindAllStringSubmatch(out, -1) {
		if homes[m[2]] == nil {
			homes[m[2]] = map[string]string{}
		}
		homes[m[2]][m[3]] = m[1]
	}
	return homes, out
}

func runWithTimeout(cmd *exec.Cmd, d time.Duration) (string, error) {
	var buf strings.Builder
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return buf.String(), err
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		return buf.String(), fmt.Errorf("timed out")
	}
}

func idOf(t *testing.T, a *registrartest.Agent) string {
	out, err := a.CLI("status", "-json")
	var s registrar.Status
	if err != nil || json.Unmarshal([]byte(out), &s) != nil {
		t.Fatalf("status: %v %s", err, out)
	}
	return strings.TrimPrefix(s.ID, "0x")
}

// Ensure RSPLIB's PE registers at our registrar over SCTP, RSPLIB's
// terminal reaches it by pool handle through us, and hsdump lists it.
func TestInterop_RSPLIBClientsAtOurRegistrar(t *testing.T) {
	bin := needInterop(t)
	labCapture(t)
	a := ourAgent(t, bin)
	rspServer(t, "EchoPool", ourAddr)
	var pe registrar.PEInfo
	waitFor(t, 30*time.Second, "rspserver registered at our registrar", func() bool {
		d, ok := ourPool(a, "EchoPool")
		if ok && len(d.PEs) == 1 {
			pe = d.PEs[0]
		}
		return ok && len(d.PEs) == 1
	})
	if pe.Transport != "sctp" || pe.ASAP == nil || pe.ASAP.Port == 0 {
		t.Errorf("registered PE %+v: want SCTP with an ASAP endpoint", pe)
	}

	term := exec.Command("sh", "-c", "( printf 'Hello RSerPool\\n'; sleep 30 ) | rspterminal -poolhandle=EchoPool -registrar="+ourAddr+":3863 -logcolor=off -loglevel=2")
	var echoed bool
	var out string
	for try := 0; try < 3 && !echoed; try++ {
		out, _ = runUntil(term, "> Hello RSerPool", 20*time.Second)
		echoed = regexp.MustCompile(`from PE.*Hello RSerPool`).MatchString(out)
		term = exec.Command(term.Path, term.Args[1:]...)
	}
	if !echoed {
		t.Errorf("rspterminal did not get the echo through our registrar:\n%s", out)
	}

	homes, dump := hsdump(t, ourAddr)
	if _, ok := homes["EchoPool"][strings.TrimPrefix(pe.ID, "0x")]; !ok {
		t.Errorf("hsdump of our registrar does not list EchoPool/%s:\n%s", pe.ID, dump)
	}
}

// Ensure an RSPLIB PE that restarts with its fixed PE identifier
// re-registers over its new association (from its own addresses) while
// the registrar still has it from before: accepted by the ownership
// rule, not refused as a non-unique PE identifier.
func TestInterop_RSPLIBPERestartKeepsItsID(t *testing.T) {
	bin := needInterop(t)
	a := ourAgent(t, bin, "-keepalive-timeout", "20s")
	start := func() *registrartest.Process {
		return registrartest.StartProcess(t, "rspserver fixed ID", "rspserver", "-echo", "-poolhandle=RestartPool", "-identifier=0x5eed0001",
			"-registrar="+ourAddr+":3863", "-asapannounce=off", "-loglevel=2", "-logcolor=off", "-quiet")
	}
	registered := func() (registrar.PEInfo, bool) {
		d, ok := ourPool(a, "RestartPool")
		if !ok || len(d.PEs) != 1 || d.PEs[0].ID != "0x5eed0001" || d.PEs[0].ASAP == nil {
			return registrar.PEInfo{}, false
		}
		return d.PEs[0], true
	}
	first := start()
	var before registrar.PEInfo
	waitFor(t, 30*time.Second, "rspserver registered with its fixed ID", func() bool {
		var ok bool
		before, ok = registered()
		return ok
	})
	first.Kill()
	start()
	waitFor(t, 30*time.Second, "the restarted rspserver re-registered (a new ASAP port)", func() bool {
		pe, ok := registered()
		return ok && pe.ASAP.Port != before.ASAP.Port
	})
	if out := a.Output(); strings.Contains(out, "registration refused") {
		t.Fatalf("a re-registration of the restarted PE was refused:\n%s", out)
	}
}

// runUntil runs cmd (in a process group of its own) until its output
// contains want or the time is up, then kills the whole group.
func runUntil(cmd *exec.Cmd, want string, d time.Duration) (string, error) {
	var buf sharedtest.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && !strings.Contains(buf.String(), want) {
		time.Sleep(100 * time.Millisecond)
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	cmd.Wait()
	return buf.String(), nil
}

// Ensure our registrar peers with RSPLIB's: PEs registered at either are
// known at both, our `rsp serve` registers at RSPLIB's registrar, and
// when RSPLIB's registrar dies ours takes over its PEs.
func TestInterop_PeeringAndWeTakeOver(t *testing.T) {
	bin := needInterop(t)
	labCapture(t)
	rsp := rsplibRegistrar(t)
	a := ourAgent(t, bin, "-enrp-peer", rsplAddr+":9901")
	ours := idOf(t, a)

	rspServer(t, "AtRSPLIB", rsplAddr)
	rspServer(t, "AtOurs", ourAddr)
	serve := registrartest.StartProcess(t, "rsp serve", filepath.Join(bin, "rsp"), "serve", "-registrar", "sctp:"+rsplAddr+":3863",
		"-pool", "OursAtRSPLIB", "-service", "echo", "-listen", "sctp:"+ourAddr+":0")
	serve.WaitLine(0, "pe registered", 30*time.Second)

	var rsplID string
	waitFor(t, 40*time.Second, "RSPLIB's PEs at our registrar", func() bool {
		d1, ok1 := ourPool(a, "AtRSPLIB")
		d2, ok2 := ourPool(a, "OursAtRSPLIB")
		if ok1 && len(d1.PEs) == 1 {
			rsplID = strings.TrimPrefix(d1.PEs[0].Home, "0x")
		}
		return ok1 && ok2 && len(d1.PEs) == 1 && len(d2.PEs) == 1 && rsplID != ours
	})
	waitFor(t, 40*time.Second, "our PE at RSPLIB's registrar", func() bool {
		homes, _ := hsdump(t, rsplAddr)
		for _, home := range homes["AtOurs"] {
			if home == ours {
				return true
			}
		}
		return false
	})

	// RSPLIB's registrar dies: ours takes over its PEs.
	start := time.Now()
	rsp.Kill()
	waitFor(t, 60*time.Second, "our registrar took over RSPLIB's PEs", func() bool {
		for _, pool := range []string{"AtRSPLIB", "OursAtRSPLIB"} {
			d, ok := ourPool(a, pool)
			if !ok || len(d.PEs) != 1 || strings.TrimPrefix(d.PEs[0].Home, "0x") != ours {
				return false
			}
		}
		return true
	})
	t.Logf("RSPLIB registrar killed; its PEs homed at ours after %v", time.Since(start))
	_ = rsplID
}

// Ensure peering completes both ways when only our registrar lists the
// other as a static peer: RSPLIB's registrar knows nothing of ours until
// our PRESENCE arrives, and it accepts it only because our association
// comes from our ENRP port (it refuses one from an ephemeral port: "no
// usable ENRP endpoint addresses"). Then it learns our PEs and we learn
// its PEs.
func TestInterop_PeeringOurSideOnly(t *testing.T) {
	bin := needInterop(t)
	labCapture(t)
	rsp := rsplibRegistrarAt(t, rsplAddr) // no static peers
	a := ourAgent(t, bin, "-enrp-peer", rsplAddr+":9901")
	ours := idOf(t, a)
	acceptedBy(t, rsp, ours)
	// Registered once peered, so our HANDLE_UPDATE goes to RSPLIB.
	rspServer(t, "AtRSPLIB", rsplAddr)
	rspServer(t, "AtOurs", ourAddr)
	waitFor(t, 40*time.Second, "RSPLIB's PE at our registrar, homed at RSPLIB's", func() bool {
		d, ok := ourPool(a, "AtRSPLIB")
		return ok && len(d.PEs) == 1 && strings.TrimPrefix(d.PEs[0].Home, "0x") != ours
	})
	var homes map[string]string
	waitFor(t, 40*time.Second, "our PE at RSPLIB's registrar, homed at ours", func() bool {
		homes = asapHomes(t, bin, rsplAddr, "AtOurs")
		return len(homes) == 1 && slices.Contains(slices.Collect(maps.Values(homes)), ours)
	})
	if line := a.WaitLine(0, "connected to ENRP peer", 10*time.Second); !strings.Contains(line, "local="+ourAddr+":9901") {
		t.Errorf("our association to RSPLIB's registrar is not from our ENRP port: %s", line)
	}
	noUnusablePresence(t, rsp)
	if strings.Contains(a.Output(), "[WARN]") {
		t.Errorf("our registrar warned:\n%s", a.Output())
	}
	// Our ENRP listener shares its port with our dials only: a second
	// registrar on the same ENRP address (all else free) fails to start.
	second := exec.Command(filepath.Join(bin, "registrar"), "agent", "-data-dir", t.TempDir(), "-asap", ourAddr+":3864",
		"-enrp", ourAddr+":9901", "-http", "127.0.0.1:8864", "-raft", "127.0.0.1:7948", "-gossip", "127.0.0.1:7949",
		"-profile", "local", "-announce", "off", "-enrp-announce", "off")
	out, err := runWithTimeout(second, 30*time.Second)
	if err == nil || !strings.Contains(out, "cannot listen on the ENRP address "+ourAddr+":9901") || !strings.Contains(out, "address already in use") {
		t.Errorf("a second registrar on our ENRP port: %v, want it to fail with the ENRP address in use:\n%s", err, out)
	}
}

// asapHomes resolves pool at the registrar at addr with `rsp resolve`
// (ASAP over SCTP) and returns the home registrar of each PE it answered
// with (PE id -> home, both as 8 hex digits). Unlike hsdump, which RSPLIB
// adds to its ENRP peer list (and then waits for in a takeover), an ASAP
// resolution leaves the registrar's peers alone.
func asapHomes(t *testing.T, bin, addr, pool string) map[string]string {
	out, err := runWithTimeout(exec.Command(filepath.Join(bin, "rsp"), "resolve", "-registrar", "sctp:"+addr+":3863",
		"-timeout", "10s", "-json", pool), 20*time.Second)
	if err != nil {
		return nil
	}
	var res struct {
		PEs []struct {
			IDHex string `json:"id_hex"`
			Home  string `json:"home"`
		} `json:"pes"`
	}
	if json.Unmarshal([]byte(out), &res) != nil {
		return nil
	}
	homes := map[string]string{}
	for _, pe := range res.PEs {
		homes[strings.TrimPrefix(pe.IDHex, "0x")] = strings.TrimPrefix(pe.Home, "0x")
	}
	return homes
}

// Ensure that when our registrar dies, RSPLIB's take over our PEs, and our
// PE (rsp serve) accepts its new home; and that our registrar, restarted
// on its data dir, leaves the PE with its new home instead of reclaiming
// it. RSPLIB completes a takeover only
// when another peer acknowledges its INIT_TAKEOVER (a lone rspregistrar
// never takes over), so two RSPLIB registrars peer with each other and
// with ours, as in an RSerPool network that mixes them. The test watches
// RSPLIB's registrars through ASAP resolutions only (asapHomes).
func TestInterop_RSPLIBTakesOverOurs(t *testing.T) {
	bin := needInterop(t)
	labCapture(t)
	const rspl2 = "10.99.0.3"
	done := make(chan struct{}, 2)
	var rsp1, rsp2 *registrartest.Process
	go func() { rsp1 = rsplibRegistrarWith(t, rsplAddr, rsplibFastTimers, ourAddr, rspl2); done <- struct{}{} }()
	go func() { rsp2 = rsplibRegistrarWith(t, rspl2, rsplibFastTimers, ourAddr, rsplAddr); done <- struct{}{} }()
	<-done
	<-done
	a := ourAgent(t, bin, "-enrp-peer", rsplAddr+":9901", "-enrp-peer", rspl2+":9901", "-peer-heartbeat", "1s",
		"-log-level", "debug")
	ours := idOf(t, a)
	serve := registrartest.StartProcess(t, "rsp serve", filepath.Join(bin, "rsp"), "serve", "-registrar", "sctp:"+ourAddr+":3863",
		"-pool", "OurPool", "-service", "echo", "-listen", "sctp:"+ourAddr+":0")
	serve.WaitLine(0, "pe registered", 30*time.Second)
	for _, addr := range []string{rsplAddr, rspl2} {
		waitFor(t, 40*time.Second, "RSPLIB's registrar at "+addr+" knows our PE, homed at ours", func() bool {
			homes := asapHomes(t, bin, addr, "OurPool")
			return len(homes) == 1 && slices.Contains(slices.Collect(maps.Values(homes)), ours)
		})
	}
	// RSPLIB takes over only from a peer whose PRESENCE it accepted, which
	// it does only on an association from our ENRP port: wait until both
	// accepted ours.
	acceptedBy(t, rsp1, ours)
	acceptedBy(t, rsp2, ours)
	start := time.Now()
	a.Kill()
	// RSPLIB notices the death after its peer timers (about 5 s here),
	// then takes over after its takeover expiry.
	var homes map[string]string
	waitFor(t, 90*time.Second, "RSPLIB's registrars took over our PE", func() bool {
		homes = asapHomes(t, bin, rsplAddr, "OurPool")
		return len(homes) == 1 && !slices.Contains(slices.Collect(maps.Values(homes)), ours)
	})
	t.Logf("our registrar killed; RSPLIB's registrar is home of our PE after %v (homes %v)", time.Since(start), homes)
	// Our PE followed the H=1 keep-alive of its new home.
	serve.WaitLine(0, "new home registrar", 30*time.Second)
	var peID, newHome string
	for id, home := range homes {
		peID, newHome = id, home
	}

	// Our registrar comes back on its data dir, with the PE restored from
	// it as its own. RSPLIB's registrars accept it as a new peer. They must
	// not be handed the PE back: not by our PRESENCE's checksum (it leaves
	// restored PEs out, so they find nothing to resynchronise and ask for
	// no table), not by an own-PEs answer (W=1) should they ask, nor by an
	// update; and ours takes the new home from their tables instead of
	// reclaiming the PE (or removing it later as expired).
	from1, from2, from := rsp1.Lines(), rsp2.Lines(), a.Lines()
	a.RestartAndWait()
	if id := idOf(t, a); id != ours {
		t.Fatalf("our registrar restarted on its data dir as %s, was %s", id, ours)
	}
	rsp1.WaitLine(from1, "synchronization with peer $"+ours+" is necessary", 40*time.Second)
	rsp2.WaitLine(from2, "synchronization with peer $"+ours+" is necessary", 40*time.Second)
	waitFor(t, 30*time.Second, "our restarted registrar knows our PE homed at "+newHome, func() bool {
		d, ok := ourPool(a, "OurPool")
		return ok && len(d.PEs) == 1 && strings.TrimPrefix(d.PEs[0].Home, "0x") == newHome
	})
	// A PE registered at ours now reaches RSPLIB's registrars on the
	// association after everything ours sent them since its restart: once
	// they know it, they have handled all of that.
	later := registrartest.StartProcess(t, "rsp serve (after the restart)", filepath.Join(bin, "rsp"), "serve", "-registrar",
		"sctp:"+ourAddr+":3863", "-pool", "AfterRestart", "-service", "echo", "-listen", "sctp:"+ourAddr+":0")
	later.WaitLine(0, "pe registered", 30*time.Second)
	for _, addr := range []string{rsplAddr, rspl2} {
		waitFor(t, 40*time.Second, "RSPLIB's registrar at "+addr+" knows the PE registered after our restart", func() bool {
			return len(asapHomes(t, bin, addr, "AfterRestart")) == 1
		})
		if got := asapHomes(t, bin, addr, "OurPool"); len(got) != 1 || got[peID] != newHome {
			t.Errorf("RSPLIB's registrar at %s after our restart: OurPool homes %v, want %s homed at %s", addr, got, peID, newHome)
		}
	}
	if d, ok := ourPool(a, "OurPool"); !ok || len(d.PEs) != 1 || strings.TrimPrefix(d.PEs[0].Home, "0x") != newHome {
		t.Errorf("our restarted registrar: OurPool %+v, want the PE homed at %s", d.PEs, newHome)
	}
	for _, line := range strings.Split(a.Output(), "\n")[from:] {
		if strings.Contains(line, "own_only=true") && !strings.Contains(line, "pes=0") {
			t.Errorf("our restarted registrar named PEs in an own-PEs answer: %s", line)
		}
	}
}

// captureWant is a message a scenario's capture must hold: protocol
// ("asap", "enrp" or "csp"), message type, and the sending and receiving
// endpoints as "HOSTS:PORTS", where HOSTS is one address or several
// separated by "|" and PORTS one number, several separated by "|", or "*".
type captureWant struct {
	proto    string
	typ      int
	from, to string
	what     string
}

// captureWants lists, per interop test, the messages both sides must have
// sent. Our registrar is 10.99.0.1:3863 (ASAP) and :9901 (ENRP); RSPLIB's
// are 10.99.0.2 and 10.99.0.3; PEs and PUs use ephemeral ports.
var captureWants = map[string][]captureWant{
	"TestInterop_RSPLIBClientsAtOurRegistrar": {
		{"asap", 1, "10.99.0.1:*", "10.99.0.1:3863", "rspserver's ASAP_REGISTRATION"},
		{"asap", 3, "10.99.0.1:3863", "10.99.0.1:*", "our ASAP_REGISTRATION_RESPONSE"},
		{"asap", 5, "10.99.0.1:*", "10.99.0.1:3863", "rspterminal's ASAP_HANDLE_RESOLUTION"},
		{"asap", 6, "10.99.0.1:3863", "10.99.0.1:*", "our ASAP_HANDLE_RESOLUTION_RESPONSE"},
		{"enrp", 2, "10.99.0.1:*", "10.99.0.1:9901", "hsdump's ENRP_HANDLE_TABLE_REQUEST"},
		{"enrp", 3, "10.99.0.1:9901", "10.99.0.1:*", "our ENRP_HANDLE_TABLE_RESPONSE"},
	},
	"TestInterop_PeeringAndWeTakeOver": {
		{"enrp", 1, "10.99.0.1:*", "10.99.0.2:9901", "our ENRP_PRESENCE"},
		{"enrp", 1, "10.99.0.2:9901", "10.99.0.1:*", "RSPLIB's ENRP_PRESENCE"},
		{"enrp", 2, "10.99.0.1:*", "10.99.0.2:9901", "our ENRP_HANDLE_TABLE_REQUEST"},
		{"enrp", 3, "10.99.0.2:9901", "10.99.0.1:*", "RSPLIB's ENRP_HANDLE_TABLE_RESPONSE"},
		{"enrp", 4, "10.99.0.1:*", "10.99.0.2:9901", "our ENRP_HANDLE_UPDATE"},
		{"enrp", 4, "10.99.0.2:9901", "10.99.0.1:*", "RSPLIB's ENRP_HANDLE_UPDATE"},
		{"asap", 1, "10.99.0.1:*", "10.99.0.2:3863", "rsp serve's ASAP_REGISTRATION at RSPLIB"},
		{"asap", 3, "10.99.0.2:3863", "10.99.0.1:*", "RSPLIB's ASAP_REGISTRATION_RESPONSE"},
		{"asap", 7, "10.99.0.1:3863", "10.99.0.1:*", "our ASAP_ENDPOINT_KEEP_ALIVE to the PEs we took over"},
		{"asap", 8, "10.99.0.1:*", "10.99.0.1:3863", "the PEs' ASAP_ENDPOINT_KEEP_ALIVE_ACK"},
	},
	"TestInterop_CSP": {
		{"asap", 1, "10.99.0.1:*", "10.99.0.1:3863", "the PEs' ASAP_REGISTRATION"},
		{"csp", 1, "127.0.0.1:*", "127.0.0.1:2961", "CSP reports to the test's proxy"},
		{"csp", 1, "127.0.0.1:*", "127.0.0.1:2960", "CSP reports forwarded to cspmonitor"},
	},
	"TestInterop_DPFPolicies": {
		{"asap", 1, "10.99.0.1:*", "10.99.0.1:3863", "rspserver's ASAP_REGISTRATION with a DPF policy"},
		{"asap", 3, "10.99.0.1:3863", "10.99.0.1:*", "our ASAP_REGISTRATION_RESPONSE"},
		{"asap", 1, "10.99.0.1:*", "10.99.0.2:3863", "rsp serve's ASAP_REGISTRATION with LU-DPF at RSPLIB"},
		{"enrp", 4, "10.99.0.1:*", "10.99.0.2:9901", "our ENRP_HANDLE_UPDATE"},
		{"enrp", 4, "10.99.0.2:9901", "10.99.0.1:*", "RSPLIB's ENRP_HANDLE_UPDATE"},
		{"asap", 6, "10.99.0.1:3863", "10.99.0.1:*", "our ASAP_HANDLE_RESOLUTION_RESPONSE"},
	},
	"TestInterop_MultiHomedPE": {
		{"asap", 1, "10.99.0.1|10.99.0.3|10.98.0.1:*", "10.99.0.1:3863", "the multi-homed PE's ASAP_REGISTRATION"},
		{"asap", 7, "10.99.0.1:3863", "10.99.0.1|10.99.0.3|10.98.0.1:*", "our ASAP_ENDPOINT_KEEP_ALIVE"},
		{"asap", 8, "10.99.0.1|10.99.0.3|10.98.0.1:*", "10.99.0.1:3863", "the PE's ASAP_ENDPOINT_KEEP_ALIVE_ACK"},
	},
	"TestInterop_PeeringOurSideOnly": {
		{"enrp", 1, "10.99.0.1:9901", "10.99.0.2:9901", "our ENRP_PRESENCE, from our ENRP port"},
		{"enrp", 1, "10.99.0.2:9901", "10.99.0.1:9901", "RSPLIB's ENRP_PRESENCE"},
		{"enrp", 4, "10.99.0.1:9901", "10.99.0.2:9901", "our ENRP_HANDLE_UPDATE"},
	},
	"TestInterop_RSPLIBTakesOverOurs": {
		{"enrp", 1, "10.99.0.1:9901", "10.99.0.2|10.99.0.3:9901", "our ENRP_PRESENCE, from our ENRP port"},
		{"enrp", 1, "10.99.0.2|10.99.0.3:9901", "10.99.0.1:*", "RSPLIB's ENRP_PRESENCE"},
		{"enrp", 4, "10.99.0.1:*", "10.99.0.2|10.99.0.3:9901", "our ENRP_HANDLE_UPDATE"},
		{"asap", 1, "10.99.0.1:*", "10.99.0.1:3863", "rsp serve's ASAP_REGISTRATION"},
		{"asap", 3, "10.99.0.1:3863", "10.99.0.1:*", "our ASAP_REGISTRATION_RESPONSE"},
		{"enrp", 7, "10.99.0.2|10.99.0.3:9901", "10.99.0.2|10.99.0.3:9901", "RSPLIB's ENRP_INIT_TAKEOVER"},
		{"enrp", 8, "10.99.0.2|10.99.0.3:9901", "10.99.0.2|10.99.0.3:9901", "RSPLIB's ENRP_INIT_TAKEOVER_ACK"},
		{"asap", 7, "10.99.0.2|10.99.0.3:3863", "10.99.0.1:*", "the new home's ASAP_ENDPOINT_KEEP_ALIVE to our PE"},
		{"asap", 8, "10.99.0.1:*", "10.99.0.2|10.99.0.3:3863", "our PE's ASAP_ENDPOINT_KEEP_ALIVE_ACK to its new home"},
		{"enrp", 2, "10.99.0.1:9901", "10.99.0.2|10.99.0.3:9901", "our (restarted) registrar's ENRP_HANDLE_TABLE_REQUEST"},
		{"enrp", 3, "10.99.0.2|10.99.0.3:9901", "10.99.0.1:9901", "RSPLIB's ENRP_HANDLE_TABLE_RESPONSE"},
	},
	"TestInterop_RSPLIBAndOurClusterMemberDies": {
		{"enrp", 1, "10.99.0.1:*", "10.99.0.2:9901", "the members' ENRP_PRESENCE"},
		{"enrp", 1, "10.99.0.2:9901", "10.99.0.1:*", "RSPLIB's ENRP_PRESENCE"},
		{"asap", 1, "10.99.0.1:*", "10.99.0.1:3863|3864|3865", "rsp serve's ASAP_REGISTRATION"},
		{"enrp", 4, "10.99.0.1:*", "10.99.0.2:9901", "the members' ENRP_HANDLE_UPDATE"},
		{"enrp", 7, "10.99.0.2:9901", "10.99.0.1:*", "RSPLIB's ENRP_INIT_TAKEOVER of the dead member"},
		{"asap", 7, "10.99.0.1:*", "10.99.0.1:*", "the new home's ASAP_ENDPOINT_KEEP_ALIVE"},
	},
	"TestInterop_TakeoverSuggestion": {
		{"asap", 1, "10.99.0.1|10.99.0.2|10.99.0.3:*", "10.99.0.2:3863", "rspserver's ASAP_REGISTRATION at RSPLIB"},
		{"enrp", 4, "10.99.0.2:9901", "10.99.0.1:*", "RSPLIB's ENRP_HANDLE_UPDATE (a copy with the T bit)"},
		// Ours dials the PE's ASAP endpoint for the claim (from an
		// ephemeral port); the PE then registers on that association.
		{"asap", 7, "10.99.0.1:*", "10.99.0.1|10.99.0.2|10.99.0.3:*", "our ASAP_ENDPOINT_KEEP_ALIVE claiming the suggested PE"},
		{"asap", 8, "10.99.0.1|10.99.0.2|10.99.0.3:*", "10.99.0.1:*", "the PE's ASAP_ENDPOINT_KEEP_ALIVE_ACK"},
		{"asap", 1, "10.99.0.1|10.99.0.2|10.99.0.3:*", "10.99.0.1:*", "the PE's ASAP_REGISTRATION at its new home"},
		{"asap", 3, "10.99.0.1:*", "10.99.0.1|10.99.0.2|10.99.0.3:*", "our ASAP_REGISTRATION_RESPONSE"},
	},
}

// matchEndpoint reports whether host:port matches a captureWant pattern.
func matchEndpoint(pattern, host, port string) bool {
	hosts, p, _ := strings.Cut(pattern, ":")
	return (p == "*" || slices.Contains(strings.Split(p, "|"), port)) && slices.Contains(strings.Split(hosts, "|"), host)
}

// Ensure the captures the interop tests recorded in the lab VM hold the
// whole scenario (tcpdump's start and end markers), contain the messages
// both sides of each scenario must send, and decode in Wireshark without
// a malformed packet or an expert warning. It runs on the host after the
// VM (`make test` sets RSP_INTEROP_CAPTURES).
func TestInteropCaptures(t *testing.T) {
	dir := os.Getenv("RSP_INTEROP_CAPTURES")
	if dir == "" {
		t.Skip("RSP_INTEROP_CAPTURES is not set: `make test` runs this after the lab VM")
	}
	wiretest.Require(t)
	files, _ := filepath.Glob(filepath.Join(dir, "*.pcap"))
	have := map[string]bool{}
	for _, f := range files {
		have[strings.TrimSuffix(filepath.Base(f), ".pcap")] = true
	}
	for name := range captureWants {
		if !have[name] {
			t.Errorf("no capture of %s in %s: the interop test did not run or did not capture", name, dir)
		}
	}
	fields := []string{"ip.src", "ip.dst", "sctp.srcport", "sctp.dstport", "udp.srcport", "udp.dstport", "asap.message_type",
		"enrp.message_type", "componentstatusprotocol.message_type"}
	typeField := map[string]string{"asap": "asap.message_type", "enrp": "enrp.message_type", "csp": "componentstatusprotocol.message_type"}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".pcap")
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []string{"start", "end"} {
			if !bytes.Contains(raw, captureMarker(m, name)) {
				t.Errorf("%s: no %s marker: the capture does not cover the whole scenario", name, m)
			}
		}
		// CSP goes to port 2960 (cspmonitor, which Wireshark knows) and
		// 2961 (TestInterop_CSP's proxy in front of it).
		pkts := wiretest.Read(t, f, fields, "-d", "udp.port==2961,componentstatusprotocol",
			"-Y", "asap || enrp || componentstatusprotocol || _ws.malformed || _ws.expert.severity >= 6291456")
		asapN, enrpN, cspN := 0, 0, 0
		found := make([]bool, len(captureWants[name]))
		for _, p := range pkts {
			if pr := p.Problems(); pr != "" {
				t.Errorf("%s: packet with %s (asap %v, enrp %v)", name, pr, p.Fields["asap.message_type"], p.Fields["enrp.message_type"])
			}
			asapN += len(p.Fields["asap.message_type"])
			enrpN += len(p.Fields["enrp.message_type"])
			cspN += len(p.Fields["componentstatusprotocol.message_type"])
			src, dst := p.Fields["ip.src"], p.Fields["ip.dst"]
			sport, dport := p.Fields["sctp.srcport"], p.Fields["sctp.dstport"]
			if len(sport) == 0 {
				sport, dport = p.Fields["udp.srcport"], p.Fields["udp.dstport"]
			}
			if len(src) == 0 || len(dst) == 0 || len(sport) == 0 || len(dport) == 0 {
				continue
			}
			for i, w := range captureWants[name] {
				for _, typ := range p.Fields[typeField[w.proto]] {
					if typ == strconv.Itoa(w.typ) && matchEndpoint(w.from, src[0], sport[0]) && matchEndpoint(w.to, dst[0], dport[0]) {
						found[i] = true
					}
				}
			}
		}
		t.Logf("%s: %d ASAP, %d ENRP and %d CSP messages decoded", name, asapN, enrpN, cspN)
		if _, known := captureWants[name]; !known {
			t.Errorf("%s: no expectations for this capture: add the test to captureWants", name)
		}
		for i, w := range captureWants[name] {
			if !found[i] {
				t.Errorf("%s: no %s (%s type %d from %s to %s) in the capture", name, w.what, w.proto, w.typ, w.from, w.to)
			}
		}
	}
}
