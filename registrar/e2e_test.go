package registrar_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/asap/wiretest"
	"github.com/rserpool-go/registrar/registrar"
	"github.com/rserpool-go/registrar/registrar/registrartest"
)

// Ensure, with the built binary: PEs register, a PU resolves them in
// policy order, a PE that stops answering is removed after the keep-alive
// timeout, the admin CLI shows the pools, and the registrar killed with
// SIGKILL and restarted serves the same pools at once. When run as root
// with tshark, the loopback traffic is captured and must decode without a
// malformed packet (TCP reassembly plugin).
func TestE2E_SingleRegistrar(t *testing.T) {
	dir := t.TempDir()
	a := registrartest.StartAgent(t, filepath.Join(dir, "data"), "-keepalive-interval", "200ms", "-keepalive-timeout", "1s")
	capture := startCapture(t, a)

	pe := dialAddr(t, a.ASAP, true)
	rr := asap.Policy{Type: asap.PolicyRoundRobin}
	for i := uint32(1); i <= 3; i++ {
		mustRegister(t, pe, "EchoPool", testPE(i, uint16(7000+i), rr))
	}
	silent := dialAddr(t, a.ASAP, false)
	mustRegister(t, silent, "Quiet", testPE(9, 7009, asap.Policy{Type: asap.PolicyLeastUsed, Load: 1}))

	pu := dialAddr(t, a.ASAP, false)
	var order []uint32
	for i := 0; i < 6; i++ {
		resp := resolve(t, pu, "EchoPool", 1)
		if len(resp.PEs) != 1 {
			t.Fatalf("resolution %d: %+v", i, resp)
		}
		order = append(order, resp.PEs[0].ID)
	}
	for i := 3; i < 6; i++ {
		if order[i] != order[i-3] || order[i] == order[i-1] {
			t.Errorf("resolutions not round robin: %v", order)
			break
		}
	}

	// The silent PE never acks: removed after interval + timeout.
	waitFor(t, 10*time.Second, "silent PE removed", func() bool {
		r := resolve(t, pu, "Quiet", 1)
		return r.Error != nil && r.Error.First() == asap.CauseUnknownPoolHandle
	})

	out, err := a.CLI("pools", "-json")
	if err != nil {
		t.Fatalf("registrar pools: %v\n%s", err, out)
	}
	var pools []registrar.PoolSummary
	if err := json.Unmarshal([]byte(out), &pools); err != nil || len(pools) != 1 || pools[0].Handle != "EchoPool" || pools[0].PEs != 3 {
		t.Fatalf("registrar pools -json = %s (%v)", out, err)
	}
	if out, err := a.CLI("status"); err != nil || !strings.Contains(out, "1 pool, 3 PEs") {
		t.Errorf("registrar status:\n%s (%v)", out, err)
	}
	if out, err := a.CLI("pools", "EchoPool"); err != nil || !strings.Contains(out, "0x00000002") {
		t.Errorf("registrar pools EchoPool:\n%s (%v)", out, err)
	}

	// SIGKILL, restart: the same pools at once.
	a.Kill()
	a.RestartAndWait()
	pu2 := dialAddr(t, a.ASAP, false)
	resp := resolve(t, pu2, "EchoPool", asap.ItemsAll)
	if len(resp.PEs) != 3 {
		t.Fatalf("after SIGKILL and restart: %d PEs, want 3 (%+v)", len(resp.PEs), resp)
	}
	capture.check(t)
}

// capture records the agent's loopback traffic with tshark when possible.
type capture struct {
	mc   *markedCapture
	file string
	a    *registrartest.Agent
}

func startCapture(t *testing.T, a *registrartest.Agent) *capture {
	if os.Geteuid() != 0 {
		t.Log("not root: no live capture")
		return nil
	}
	wiretest.Require(t)
	port := strings.TrimPrefix(a.ASAP, "tcp:127.0.0.1:")
	c := &capture{file: filepath.Join(t.TempDir(), "lo.pcapng"), a: a}
	c.mc = startMarkedCapture(t, c.file, "tshark", "-q", "-i", "lo", "-f", "tcp port "+port+" or "+markerFilter, "-w", c.file)
	return c
}

// check decodes the capture with the TCP reassembly plugin: every ASAP
// message must decode, none malformed.
func (c *capture) check(t *testing.T) {
	if c == nil {
		return
	}
	if err := c.mc.stop(); err != nil {
		t.Fatalf("capture: %v", err)
	}
	port := strings.TrimPrefix(c.a.ASAP, "tcp:127.0.0.1:")
	plugin, _ := filepath.Abs("../transport/testdata/rsp_tcp.lua")
	pkts := wiretest.Read(t, c.file, []string{"asap.message_type"},
		"-X", "lua_script:"+plugin, "-d", "tcp.port=="+port+",asaptcp", "-Y", "asap || _ws.malformed || _ws.expert.severity >= 6291456")
	n := 0
	for _, p := range pkts {
		if pr := p.Problems(); pr != "" {
			t.Errorf("capture: packet with %s (types %v)", pr, p.Fields["asap.message_type"])
		}
		n += len(p.Fields["asap.message_type"])
	}
	if n < 20 {
		t.Errorf("capture decoded only %d ASAP messages", n)
	}
	t.Logf("capture: %d ASAP messages decoded cleanly", n)
}
