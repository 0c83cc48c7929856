package registrar_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/cluster"
	"github.com/rserpool-go/registrar/registrar"
	"github.com/rserpool-go/registrar/registrar/registrartest"
)

// Ensure the gossip key rotates without downtime through the admin API:
// install, use and remove each reach every alive registrar, the members
// stay alive throughout, the keyring is kept in the data dir, and a
// registrar that knows only the new key joins afterwards; removing the
// primary is refused.
func TestKeyring_Rotation(t *testing.T) {
	const oldKey, newKey = "MTIzNDU2Nzg5MDEyMzQ1Ng==", "YWJjZGVmZ2hpamtsbW5vcA=="
	nodes := registrartest.StartCluster(t, 2, func(c *registrar.Config) { c.Encrypt = oldKey })
	base := "http://" + nodes[0].HTTPAddr()
	change := func(op, key string, want int) registrar.KeyringChange {
		t.Helper()
		code, body := adminCall(t, http.DefaultClient, "POST", base+"/v1/keyring/"+op, map[string]string{"Content-Type": "application/json"},
			strings.NewReader(`{"key": "`+key+`"}`))
		if code != want {
			t.Fatalf("keyring %s: got %d %s, want %d", op, code, body, want)
		}
		var res registrar.KeyringChange
		_ = json.Unmarshal([]byte(body), &res)
		return res
	}
	keysOf := func(n *testRegistrar) []cluster.KeyInfo {
		k, err := n.Handlespace().GossipKeys()
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	allAlive := func() {
		t.Helper()
		for _, n := range nodes {
			alive := 0
			for _, m := range n.Handlespace().Members() {
				if m.Status == cluster.StatusAlive {
					alive++
				}
			}
			if alive != 2 {
				t.Fatalf("registrar %08x sees %d alive members, want 2", n.ID(), alive)
			}
		}
	}
	if res := change("install", newKey, 200); len(res.Results) != 2 {
		t.Fatalf("install reached %+v, want both registrars", res.Results)
	}
	for _, n := range nodes {
		if k := keysOf(n); len(k) != 2 {
			t.Fatalf("after install registrar %08x has keys %+v, want 2", n.ID(), k)
		}
	}
	allAlive()
	change("use", newKey, 200)
	wantPrimary := cluster.Fingerprint([]byte("abcdefghijklmnop"))
	for _, n := range nodes {
		if k := keysOf(n); !k[0].Primary || k[0].Fingerprint != wantPrimary {
			t.Fatalf("after use registrar %08x has keys %+v, want %s primary", n.ID(), k, wantPrimary)
		}
	}
	change("remove", newKey, 400) // the primary
	change("remove", oldKey, 200)
	for _, n := range nodes {
		if k := keysOf(n); len(k) != 1 || k[0].Fingerprint != wantPrimary {
			t.Fatalf("after remove registrar %08x has keys %+v, want only the new one", n.ID(), k)
		}
		b, err := os.ReadFile(filepath.Join(n.Dir, "keyring.json"))
		if err != nil || !strings.Contains(string(b), newKey) || strings.Contains(string(b), oldKey) {
			t.Fatalf("keyring.json of %08x: %s (%v), want only the new key", n.ID(), b, err)
		}
	}
	allAlive()
	third := registrartest.Start(t, "", func(c *registrar.Config) {
		c.Encrypt = newKey
		c.Join = []string{nodes[0].Handlespace().GossipAddr()}
	})
	waitValue(t, 20*time.Second, "the registrar with only the new key as a voter", func() int {
		s, _ := third.Handlespace().Servers()
		return len(s)
	}, 3)
}
