package registrar_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/asap/sharedtest"
	"github.com/rserpool-go/registrar/registrar"
	"github.com/rserpool-go/registrar/registrar/registrartest"
)

// Ensure Reload changes the log level and the rate limits of a running
// registrar, reports what changed and what needs a restart, and leaves
// everything as it was when the new configuration is invalid.
func TestReload_LiveKeys(t *testing.T) {
	logs := &sharedtest.Buffer{}
	r := startRegistrar(t, "", func(c *registrar.Config) {
		c.Logger = hclog.New(&hclog.LoggerOptions{Name: "registrar", Level: hclog.Info, Output: logs})
	})
	pe := dial(t, r, true)
	mustRegister(t, pe, "pool", testPE(1, 7001, asap.Policy{Type: asap.PolicyRoundRobin}))
	if strings.Contains(logs.String(), "registration accepted") {
		t.Fatalf("a debug line at level info:\n%s", logs)
	}
	pu := dial(t, r, false)
	for i := 0; i < 3; i++ {
		if resp := resolve(t, pu, "pool", 1); resp.Error != nil {
			t.Fatalf("resolution %d without a limit: %v", i, resp.Error)
		}
	}

	next := r.Config()
	next.LogLevel = "debug"
	next.ResolutionRate, next.ResolutionBurst = 0.001, 1
	next.KeepAliveInterval = registrar.Duration(7 * time.Second) // needs a restart
	rep, err := r.Reload(next)
	if err != nil {
		t.Fatal(err)
	}
	wantChanged := []string{"log_level: info -> debug", "resolution_burst: 1000 -> 1", "resolution_rate: 1000 -> 0.001"}
	if strings.Join(rep.Changed, "|") != strings.Join(wantChanged, "|") || strings.Join(rep.NeedRestart, "|") != "keepalive_interval" {
		t.Errorf("report %+v, want changed %v and keepalive_interval needing a restart", rep, wantChanged)
	}
	for _, want := range []string{"configuration reloaded", "log_level: info -> debug", "[WARN]  registrar: configuration changes that apply only after a restart", "keepalive_interval"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, logs)
		}
	}
	mustRegister(t, pe, "pool", testPE(2, 7002, asap.Policy{Type: asap.PolicyRoundRobin}))
	waitFor(t, 5*time.Second, "the debug line of a registration after the reload", func() bool {
		return strings.Contains(logs.String(), "registration accepted")
	})
	if resp := resolve(t, pu, "pool", 1); resp.Error != nil {
		t.Errorf("first resolution after the reload (burst 1): %v", resp.Error)
	}
	// The second is dropped unanswered (rate 0.001/s, burst 1).
	pu.send(&asap.HandleResolution{PoolHandle: "pool"})
	waitFor(t, 10*time.Second, "the second resolution after the reload dropped", func() bool {
		return metricValue(t, r, `rsp_resolutions_total{result="rate_limited"}`) == 1
	})

	// An invalid configuration changes nothing.
	bad := r.Config()
	bad.LogLevel = "loud"
	bad.ResolutionRate = 0
	if _, err := r.Reload(bad); err == nil || !strings.Contains(err.Error(), "log_level") {
		t.Errorf("invalid reload: %v, want the log_level problem", err)
	}
	pu.send(&asap.HandleResolution{PoolHandle: "pool"})
	waitFor(t, 10*time.Second, "a resolution after the invalid reload dropped too", func() bool {
		return metricValue(t, r, `rsp_resolutions_total{result="rate_limited"}`) == 2
	})
	if !r.Logger().IsDebug() {
		t.Error("an invalid reload changed the log level")
	}
	// Applying the same configuration again changes nothing, and says so;
	// the key that needs a restart is still reported.
	rep, err = r.Reload(next)
	if err != nil || len(rep.Changed) != 0 || strings.Join(rep.NeedRestart, "|") != "keepalive_interval" {
		t.Errorf("reload of the same config: %+v, %v; want no change, keepalive_interval still pending", rep, err)
	}
}

// Ensure a reload adds and removes static ENRP peers: the registrar dials
// a new peer, and drops one no longer configured.
func TestReload_ENRPPeers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	r := startRegistrar(t, "", func(c *registrar.Config) {
		c.PeerHeartbeat = registrar.Duration(50 * time.Millisecond)
	})
	next := r.Config()
	next.ENRPPeers = []string{"tcp:" + ln.Addr().String()}
	rep, err := r.Reload(next)
	if err != nil || len(rep.Changed) != 1 || !strings.HasPrefix(rep.Changed[0], "enrp_peers: [] -> [tcp:") {
		t.Fatalf("reload: %+v, %v", rep, err)
	}
	var c net.Conn
	select {
	case c = <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("the registrar did not dial the ENRP peer added by the reload within 10s")
	}
	defer c.Close()
	next.ENRPPeers = nil
	if _, err := r.Reload(next); err != nil {
		t.Fatal(err)
	}
	// The registrar closes its association: our read ends.
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("the registrar kept its association to a peer the reload removed")
			}
			break
		}
	}
}

// Ensure a port clash at start fails with every clashing address named
// and leaves a new data dir empty (nothing written before the listeners
// are known to bind).
func TestStart_PortClashLeavesDataDirEmpty(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, tc := range []struct {
		name string
		mod  func(*registrar.Config)
		want string
	}{
		{"raft", func(c *registrar.Config) { c.Raft = taken.Addr().String() }, "raft address " + taken.Addr().String() + " (-raft)"},
		{"http", func(c *registrar.Config) { c.HTTP = taken.Addr().String() }, "admin API address " + taken.Addr().String() + " (-http)"},
		{"asap", func(c *registrar.Config) { c.ASAP = "tcp:" + taken.Addr().String() }, "ASAP address tcp:" + taken.Addr().String() + " (-asap)"},
		{"gossip", func(c *registrar.Config) { c.Gossip = taken.Addr().String() }, "gossip address " + taken.Addr().String() + " (-gossip)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			if err := os.Mkdir(dir, 0o750); err != nil {
				t.Fatal(err)
			}
			cfg := registrartest.Config(dir)
			cfg.Logger = sharedtest.Logger(t, "registrar")
			tc.mod(&cfg)
			r, err := registrar.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = r.Run(t.Context())
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "address already in use") {
				t.Fatalf("Run: %v, want an error naming the %s", err, tc.want)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 0 {
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Errorf("the data dir is not empty after the failed start: %v", names)
			}
		})
	}
}
