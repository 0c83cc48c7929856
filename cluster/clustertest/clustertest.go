// Package clustertest runs replicated handlespaces in memory for tests
// (like net/http/httptest): a cluster.Handlespace on raft's and
// memberlist's in-memory doubles and a memory store, the same code as a
// registrar's but without files or sockets, so the daemon's handlers can
// be unit-tested against the real thing.
package clustertest

import (
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap/sharedtest"
	"github.com/rserpool-go/registrar/cluster"
)

// Config returns the configuration of an in-memory handlespace for
// registrar id on net: the local timing profile, a one-node cluster of
// its own (Bootstrap) unless the caller clears it.
func Config(t testing.TB, net *cluster.InmemNetwork, id uint32) cluster.Config {
	return cluster.Config{
		ID:         id,
		Raft:       cluster.DefaultRaftConfig(cluster.ProfileLocal),
		Membership: cluster.DefaultMembershipConfig(cluster.ProfileLocal),
		Bootstrap:  true,
		Logger:     sharedtest.Logger(t, "handlespace"),
		Inmem:      net,
	}
}

// Open opens a one-registrar handlespace (registrar id) in memory, after
// mod changed its configuration (mod may be nil), waits until it leads,
// and closes it when the test ends.
func Open(t testing.TB, id uint32, mod func(*cluster.Config)) *cluster.Handlespace {
	t.Helper()
	net := cluster.NewInmemNetwork()
	cfg := Config(t, net, id)
	if mod != nil {
		mod(&cfg)
	}
	hs, err := cluster.Open(cfg)
	if err != nil {
		net.Close()
		t.Fatalf("open an in-memory handlespace: %v", err)
	}
	t.Cleanup(func() {
		if err := hs.Close(); err != nil {
			t.Errorf("close the handlespace: %v", err)
		}
		net.Close()
	})
	if !cfg.Bootstrap {
		return hs
	}
	deadline := time.Now().Add(10 * time.Second)
	for !hs.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatalf("the in-memory handlespace of registrar 0x%08x did not lead within 10 s (raft state %s)", id, hs.Status().State)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return hs
}
