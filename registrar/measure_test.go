package registrar_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/registrar"
	"github.com/rserpool-go/registrar/registrar/registrartest"
)

// Measurements for docs/performance.md, with the built binaries on
// loopback. They print numbers and assert nothing about speed; run them
// with `RSP_MEASURE=1 E2E_BIN=$PWD/bin go test -run Measure -v ./registrar`.

func needMeasure(t *testing.T) {
	if os.Getenv("RSP_MEASURE") != "1" {
		t.Skip("measurement: set RSP_MEASURE=1")
	}
}

// TestMeasure_Takeover: kill -9 of a registrar to the last of its PEs
// re-homed at the survivors, and leader failover, per timing profile.
func TestMeasure_Takeover(t *testing.T) {
	needMeasure(t)
	for _, profile := range []string{"local", "lan"} {
		t.Run(profile, func(t *testing.T) {
			c := startE2ECluster(t, "-profile", profile)
			pe := newASAPPE(t)
			victim := c.agents[2]
			if c.status(victim).Raft.State == "Leader" {
				victim = c.agents[1]
			}
			cl := dialAddr(t, victim.ASAP, true)
			for i := uint32(1); i <= 50; i++ {
				mustRegister(t, cl, "pool", pe.element(i))
			}
			id := c.status(victim).ID
			waitFor(t, 10*time.Second, "replication", func() bool {
				d, ok := ourPool(c.agents[0], "pool")
				return ok && len(d.PEs) == 50
			})
			start := time.Now()
			victim.Kill()
			waitFor(t, 60*time.Second, "re-homed", func() bool {
				d, ok := ourPool(c.agents[0], "pool")
				if !ok || len(d.PEs) != 50 {
					return false
				}
				for _, p := range d.PEs {
					if p.Home == id {
						return false
					}
				}
				return true
			})
			t.Logf("profile %s: kill -9 of a follower to its 50 PEs re-homed: %v", profile, time.Since(start).Round(10*time.Millisecond))

			victim.RestartAndWait()
			c.waitVoters(3, c.agents...)
			leader := c.leader()
			start = time.Now()
			leader.Kill()
			var others []*registrartest.Agent
			for _, a := range c.agents {
				if a != leader {
					others = append(others, a)
				}
			}
			waitFor(t, 60*time.Second, "new leader", func() bool {
				for _, a := range others {
					if c.status(a).Raft.State == "Leader" {
						return true
					}
				}
				return false
			})
			t.Logf("profile %s: kill -9 of the leader to a new leader: %v", profile, time.Since(start).Round(10*time.Millisecond))
		})
	}
}

// TestMeasure_ClusterThroughput: durable registrations with 64
// connections at the leader and at a follower, resolutions at a follower.
func TestMeasure_ClusterThroughput(t *testing.T) {
	needMeasure(t)
	c := startE2ECluster(t, "-profile", "lan", "-resolution-rate", "0") // the bench floods on purpose
	leader := c.leader()
	var follower *registrartest.Agent
	for _, a := range c.agents {
		if a != leader {
			follower = a
			break
		}
	}
	// RSP_ROUNDS rounds of leader then follower, 10 s each, so that each
	// ratio compares two runs back to back.
	for round := range envInt(t, "RSP_ROUNDS", 1) {
		lr, ls := runBench(t, "register", "-registrar", leader.ASAP, "-conns", "64", "-pes", "20", "-duration", "10s")
		fr, fs := runBench(t, "register", "-registrar", follower.ASAP, "-conns", "64", "-pes", "20", "-duration", "10s")
		t.Logf("round %d, durable registrations, 64 connections: leader %s; follower %s; follower/leader %.2f",
			round+1, ls, fs, fr/max(lr, 1))
	}
	_, rs := runBench(t, "resolve", "-registrar", follower.ASAP, "-conns", "8", "-pes", "100", "-duration", "10s")
	t.Logf("resolutions, 8 connections at a follower: %s", rs)
}

// runBench runs the built rsp bench with args (and -json) and returns its
// rate and a summary.
func runBench(t *testing.T, args ...string) (float64, string) {
	t.Helper()
	out, err := exec.Command(filepath.Join(registrartest.BinDir(t), "rsp"), append(append([]string{"bench"}, args...), "-json")...).CombinedOutput()
	if err != nil {
		t.Fatalf("rsp bench: %v\n%s", err, out)
	}
	var r struct {
		OpsPerSec float64 `json:"ops_per_sec"`
		P50us     float64 `json:"p50_us"`
		P99us     float64 `json:"p99_us"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("rsp bench output: %s", out)
	}
	return r.OpsPerSec, fmt.Sprintf("%.0f ops/s (p50 %.0f us, p99 %.0f us)", r.OpsPerSec, r.P50us, r.P99us)
}

// TestMeasure_NonVoters: durable registrations at the leader of 3
// registrars and of 7 (3 voters, 4 non-voters), alternately; then kill -9
// of a voter of the 7 to a non-voter promoted (3 alive voters again) and
// to the dead one's 50 PEs re-homed. lan profile.
func TestMeasure_NonVoters(t *testing.T) {
	needMeasure(t)
	rounds := 2
	for round := 0; round < rounds; round++ {
		for _, n := range []int{3, 7} {
			c := startE2ECluster(t, "-profile", "lan", "-voters", "3")
			base := t.TempDir()
			for i := 4; i <= n; i++ {
				c.agents = append(c.agents, registrartest.StartAgent(t, filepath.Join(base, fmt.Sprintf("r%d", i)),
					"-profile", "lan", "-voters", "3", "-join", c.agents[0].Gossip))
			}
			waitFor(t, 60*time.Second, fmt.Sprintf("%d raft servers, 3 voters", n), func() bool {
				r, leader := c.roles(c.agents[0])
				return leader && len(r["voter"]) == 3 && len(r["voter"])+len(r["non-voter"]) == n
			})
			leader := c.leader()
			_, s := runBench(t, "register", "-registrar", leader.ASAP, "-conns", "64", "-pes", "20", "-duration", "10s")
			t.Logf("round %d, %d registrars: durable registrations, 64 connections at the leader: %s", round, n, s)
			if n == 7 && round == rounds-1 {
				measureVoterKill(t, c)
			}
			for _, a := range c.agents {
				a.Kill()
			}
		}
	}
}

// measureVoterKill kills a voter that does not lead, holding 50 PEs, and
// logs the time to 3 alive voters and to its PEs re-homed.
func measureVoterKill(t *testing.T, c *e2eCluster) {
	leader := c.leader()
	var victim *registrartest.Agent
	r, _ := c.roles(leader)
	for _, a := range c.agents {
		if a != leader && slices.Contains(r["voter"], c.status(a).ID) {
			victim = a
			break
		}
	}
	id := c.status(victim).ID
	pe := newASAPPE(t)
	cl := dialAddr(t, victim.ASAP, true)
	for i := uint32(1); i <= 50; i++ {
		mustRegister(t, cl, "kill", pe.element(i))
	}
	waitFor(t, 10*time.Second, "replication", func() bool {
		d, ok := ourPool(leader, "kill")
		return ok && len(d.PEs) == 50
	})
	start := time.Now()
	victim.Kill()
	var voters, rehomed time.Duration
	waitFor(t, 120*time.Second, "3 alive voters and the PEs re-homed", func() bool {
		if voters == 0 {
			r, ok := c.roles(leader)
			if ok && len(r["voter"]) == 3 && !slices.Contains(r["voter"], id) {
				voters = time.Since(start)
			}
		}
		if rehomed == 0 {
			if d, ok := ourPool(leader, "kill"); ok && len(d.PEs) == 50 && !slices.ContainsFunc(d.PEs, func(p registrar.PEInfo) bool { return p.Home == id }) {
				rehomed = time.Since(start)
			}
		}
		return voters > 0 && rehomed > 0
	})
	t.Logf("7 registrars, lan: kill -9 of a voter to 3 alive voters (a non-voter promoted): %v; to its 50 PEs re-homed: %v",
		voters.Round(10*time.Millisecond), rehomed.Round(10*time.Millisecond))
}

// envInt is the integer in environment variable k, else def.
func envInt(t *testing.T, k string, def int) int {
	v := os.Getenv(k)
	if v == "" {
		return def
	}
	var n int
	if _, err := fmt.Sscan(v, &n); err != nil {
		t.Fatalf("%s=%q: want an integer", k, v)
	}
	return n
}

// TestMeasure_SuperviseConns: RSP_SV_CONNS PEs (default 19000), each on a
// TCP connection of its own, at one registrar with RSPLIB's keep-alive
// defaults (5 s / 5 s), supervised for RSP_SV_SECONDS (default 600):
// keep-alives, false removals, and the registrar's resident memory per
// connection. The open file limit (hard, here 20000) bounds the count.
func TestMeasure_SuperviseConns(t *testing.T) {
	needMeasure(t)
	n := envInt(t, "RSP_SV_CONNS", 19000)
	secs := envInt(t, "RSP_SV_SECONDS", 600)
	a := registrartest.StartAgent(t, t.TempDir(), "-profile", "lan", "-log-level", "info",
		"-max-connections-per-address", "0", "-resolution-rate", "0")
	out, err := exec.Command(filepath.Join(registrartest.BinDir(t), "rsp"), "bench", "supervise",
		"-registrar", a.ASAP, "-http", a.HTTP, "-pes", fmt.Sprint(n), "-conns", fmt.Sprint(n),
		"-pools", "100", "-duration", fmt.Sprintf("%ds", secs)).CombinedOutput()
	t.Logf("rsp bench supervise, %d PEs on %d connections, %d s:\n%s", n, n, secs, out)
	if err != nil {
		t.Fatalf("rsp bench supervise: %v", err)
	}
}

// TestMeasure_SuperviseCluster: RSP_SV_PES PEs (default 100000) over
// RSP_SV_CONNS associations (default 100) spread over 3 registrars (lan
// profile, RSPLIB's keep-alive defaults), supervised for RSP_SV_SECONDS
// (default 120) while one more association resolves.
func TestMeasure_SuperviseCluster(t *testing.T) {
	needMeasure(t)
	pes := envInt(t, "RSP_SV_PES", 100000)
	conns := envInt(t, "RSP_SV_CONNS", 100)
	secs := envInt(t, "RSP_SV_SECONDS", 120)
	c := startE2ECluster(t, "-profile", "lan", "-log-level", "info", "-resolution-rate", "0")
	var asaps, https []string
	for _, a := range c.agents {
		asaps, https = append(asaps, a.ASAP), append(https, a.HTTP)
	}
	out, err := exec.Command(filepath.Join(registrartest.BinDir(t), "rsp"), "bench", "supervise",
		"-registrar", strings.Join(asaps, ","), "-http", strings.Join(https, ","), "-pes", fmt.Sprint(pes),
		"-conns", fmt.Sprint(conns), "-pools", "100", "-duration", fmt.Sprintf("%ds", secs)).CombinedOutput()
	t.Logf("rsp bench supervise, %d PEs over %d associations at 3 registrars, %d s:\n%s", pes, conns, secs, out)
	if err != nil {
		t.Fatalf("rsp bench supervise: %v", err)
	}
}
