// Package registrartest runs registrars for tests, like net/http/httptest
// runs HTTP servers: in-process (Start, a Server on loopback with free
// ports and short timers), or as the built `registrar agent` binary
// (StartAgent, with Process for any program), plus readers of what a
// registrar exposes (Metric). The registrar package itself exports no
// test scaffolding.
package registrartest

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap/sharedtest"
	"github.com/rserpool-go/registrar/cluster"
	"github.com/rserpool-go/registrar/registrar"
	"github.com/rserpool-go/registrar/registrar/internal/killswitch"
	"github.com/rserpool-go/registrar/snapshot"
)

// Config is registrar.DefaultConfig for in-process tests: data in
// dataDir, loopback, free ports (TCP only), short timers (the local
// profile), no fsync, announces off, the admin API on a free port.
func Config(dataDir string) registrar.Config {
	c := registrar.DefaultConfig()
	c.DataDir = dataDir
	c.ASAP = "tcp:127.0.0.1:0"
	c.ENRP = "tcp:127.0.0.1:0"
	c.HTTP = "127.0.0.1:0"
	c.Raft = "127.0.0.1:0"
	c.Gossip = "127.0.0.1:0"
	c.ENRPAnnounce = "off"
	c.RetryJoinInterval = registrar.Duration(100 * time.Millisecond)
	c.Announce = "off"
	c.Profile = cluster.ProfileLocal
	c.NoSync = true
	return c
}

// Server is a registrar running in-process for a test.
type Server struct {
	*registrar.Registrar
	Dir    string
	cancel context.CancelCauseFunc
	done   chan error
	t      testing.TB
}

// Start runs a registrar from Config (in dir, a new temporary directory
// when empty; its logs go to t.Log), after mod changed the config, and
// waits until it is ready. It is stopped when the test ends, or earlier
// with Stop or Crash.
func Start(t testing.TB, dir string, mod func(*registrar.Config)) *Server {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	cfg := Config(dir)
	cfg.Logger = sharedtest.Logger(t, "registrar")
	if mod != nil {
		mod(&cfg)
	}
	r, err := registrar.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	ts := &Server{Registrar: r, Dir: dir, cancel: cancel, done: make(chan error, 1), t: t}
	go func() { ts.done <- r.Run(ctx) }()
	select {
	case <-r.Ready():
	case err := <-ts.done:
		cancel(nil)
		t.Fatalf("registrar stopped before it was ready: %v", err)
	case <-time.After(30 * time.Second):
		cancel(nil)
		t.Fatal("registrar not ready after 30s")
	}
	t.Cleanup(ts.Stop)
	return ts
}

// ASAPAddr is the registrar's ASAP address as a transport spec
// ("tcp:127.0.0.1:port").
func (ts *Server) ASAPAddr() string {
	a := ts.ASAPAddrs()[0]
	return a.Network() + ":" + a.String()
}

// Stop shuts the registrar down in order (leaving the cluster if its
// configuration says so) and waits for Run to return. Idempotent.
func (ts *Server) Stop() { ts.stop(nil) }

// Crash stops the registrar as kill -9 stops a process: its connections
// and listeners close, gossip and raft stop without a word (the others
// see it fail, never leave), and the handlespace file keeps only what was
// committed to it (group commit's queue is lost; a restart on Dir replays
// it from the raft log). It waits for Run to return. Idempotent.
func (ts *Server) Crash() { ts.stop(killswitch.Cause) }

func (ts *Server) stop(cause error) {
	ts.cancel(cause)
	select {
	case err, ok := <-ts.done:
		if ok && err != nil {
			ts.t.Errorf("registrar Run: %v", err)
		}
		if ok {
			close(ts.done)
		}
	case <-time.After(30 * time.Second):
		ts.t.Error("registrar did not stop within 30s")
	}
}

// SaveSnapshot writes a verified snapshot of the registrar's handlespace
// to path atomically (as `registrar snapshot save` does through the admin
// API) and returns its metadata.
func (ts *Server) SaveSnapshot(path string) (snapshot.Meta, error) {
	return snapshot.WriteFile(nil, path, func(w io.Writer) error {
		_, err := ts.Handlespace().WriteSnapshot(w, snapshot.Meta{RegistrarID: ts.ID(), Build: registrar.Version})
		return err
	})
}

// StartCluster runs n registrars in-process (each as Start, after mod):
// the first bootstraps, the others join it by gossip. It waits until all
// of them see n raft voters and one leads.
func StartCluster(t testing.TB, n int, mod func(*registrar.Config)) []*Server {
	t.Helper()
	nodes := []*Server{Start(t, "", mod)}
	seed := nodes[0].Handlespace().GossipAddr()
	for i := 1; i < n; i++ {
		nodes = append(nodes, Start(t, "", func(c *registrar.Config) {
			c.Join = []string{seed}
			if mod != nil {
				mod(c)
			}
		}))
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		voters, leaders := n, 0
		for _, r := range nodes {
			servers, err := r.Handlespace().Servers()
			voters = min(voters, len(servers))
			if err != nil {
				voters = 0
			}
			if r.Handlespace().IsLeader() {
				leaders++
			}
		}
		if voters == n && leaders == 1 {
			return nodes
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20 s the %d registrars see at least %d raft servers and %d leaders, want %d and 1", n, voters, leaders, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
