package registrar_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/registrar"
	"github.com/rserpool-go/registrar/registrar/registrartest"
)

// peView is what the snapshot tests compare of a PE (from `registrar
// pools -json HANDLE`); home is compared only where it must not change.
type peView struct {
	ID, Transport, Use string
	Addresses          string
	Port               uint16
	Policy             asap.Policy
	LifetimeMS         uint32
	Registered         time.Time
	ASAP               string
	Home               string
}

// handlespaceOf reads every pool and PE an agent serves, through the CLI.
func handlespaceOf(t *testing.T, a *registrartest.Agent, withHome bool) (map[string][]peView, error) {
	t.Helper()
	out, err := a.CLI("pools", "-json")
	if err != nil {
		return nil, fmt.Errorf("pools: %v: %s", err, out)
	}
	var pools []registrar.PoolSummary
	if err := json.Unmarshal([]byte(out), &pools); err != nil {
		return nil, err
	}
	hs := map[string][]peView{}
	for _, p := range pools {
		h, _ := p.Handle.MarshalText()
		out, err := a.CLI("pools", "-json", string(h))
		if err != nil {
			return nil, fmt.Errorf("pools %s: %v: %s", h, err, out)
		}
		var d registrar.PoolDetail
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			return nil, err
		}
		for _, pe := range d.PEs {
			v := peView{ID: pe.ID, Transport: pe.Transport, Use: pe.Use, Port: pe.Port, Policy: pe.Policy,
				LifetimeMS: pe.LifetimeMS, Registered: pe.Registered, Addresses: fmt.Sprint(pe.Addresses)}
			if pe.ASAP != nil {
				v.ASAP = fmt.Sprint(*pe.ASAP)
			}
			if withHome {
				v.Home = pe.Home
			}
			hs[string(h)] = append(hs[string(h)], v)
		}
		sort.Slice(hs[string(h)], func(i, j int) bool { return hs[string(h)][i].ID < hs[string(h)][j].ID })
	}
	return hs, nil
}

// waitHandlespace waits until a serves exactly want.
func waitHandlespace(t *testing.T, a *registrartest.Agent, want map[string][]peView, withHome bool, what string) {
	t.Helper()
	var last map[string][]peView
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		got, err := handlespaceOf(t, a, withHome)
		if err == nil && reflect.DeepEqual(got, want) {
			return
		}
		last = got
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: %s does not serve the snapshot's handlespace:\n got %v\nwant %v", what, a.HTTP, last, want)
}

// Ensure the snapshot commands work end to end with the built binaries:
// save from a 3-node cluster, inspect, refuse bad files, restore offline
// into a new cluster (and the members that join it later), and restore
// online into the running cluster.
func TestE2E_Snapshot(t *testing.T) {
	c := startE2ECluster(t)
	pe := newASAPPE(t)
	policies := map[asap.PoolHandle]asap.Policy{
		"rr":   {Type: asap.PolicyRoundRobin},
		"lu":   {Type: asap.PolicyLeastUsed, Load: 0x10000000},
		"wrr":  {Type: asap.PolicyWeightedRoundRobin, Weight: 3},
		"prio": {Type: asap.PolicyPriority, Priority: 2},
	}
	id := uint32(1)
	for i, a := range c.agents {
		cl := dialAddr(t, a.ASAP, true)
		for h, pol := range policies {
			for j := 0; j < 2+i; j++ {
				el := pe.element(id)
				el.Policy = pol
				mustRegister(t, cl, h, el)
				id++
			}
		}
	}
	total := int(id - 1)
	follower := c.agents[0]
	if c.leader() == follower {
		follower = c.agents[1]
	}
	waitValue(t, 20*time.Second, "replication", func() int { return c.status(follower).PEs }, total)
	want, err := handlespaceOf(t, follower, true)
	if err != nil {
		t.Fatal(err)
	}

	// save through a follower
	dir := t.TempDir()
	file := filepath.Join(dir, "backup.snap")
	out, err := follower.CLI("snapshot", "save", file)
	if err != nil || !strings.Contains(out, "verified") {
		t.Fatalf("snapshot save: %v\n%s", err, out)
	}
	t.Logf("%s", strings.TrimSpace(out))
	out, err = follower.CLI("snapshot", "inspect", "-json", file)
	if err != nil {
		t.Fatalf("inspect: %v\n%s", err, out)
	}
	var insp struct {
		Verified bool
		Meta     struct{ Pools, PEs int }
		Pools    []struct {
			Handle string
			Policy string
			PEs    int
		}
	}
	if err := json.Unmarshal([]byte(out), &insp); err != nil || !insp.Verified || insp.Meta.PEs != total || insp.Meta.Pools != 4 || len(insp.Pools) != 4 {
		t.Fatalf("inspect -json: %v\n%s", err, out)
	}
	out, _ = follower.CLI("snapshot", "inspect", file)
	if !strings.Contains(out, "Verified  yes") || !strings.Contains(out, "prio") {
		t.Errorf("inspect table:\n%s", out)
	}
	t.Logf("inspect:\n%s", out)

	// bad files: clear errors naming the file, nothing changes
	data, _ := os.ReadFile(file)
	bad := map[string][]byte{
		"flipped.snap":   func() []byte { b := append([]byte(nil), data...); b[len(b)/3] ^= 0x20; return b }(),
		"truncated.snap": data[:len(data)-7],
		"notes.txt":      []byte("not a snapshot\n"),
	}
	wantErr := map[string]string{"flipped.snap": "corrupt", "truncated.snap": "truncated", "notes.txt": "not a registrar snapshot"}
	for name, b := range bad {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := follower.CLI("snapshot", "inspect", p)
		if err == nil || !strings.Contains(out, p) || !strings.Contains(out, wantErr[name]) {
			t.Errorf("inspect %s: %v\n%s", name, err, out)
		}
		target := filepath.Join(dir, "dd-"+name)
		out, err = follower.CLI("snapshot", "restore", p, "-data-dir", target)
		if err == nil || !strings.Contains(out, wantErr[name]) {
			t.Errorf("restore %s: %v\n%s", name, err, out)
		}
		if _, err := os.Stat(target); !os.IsNotExist(err) {
			t.Errorf("restore %s left %s behind", name, target)
		}
		out, err = follower.CLI("snapshot", "restore", "-online", "-yes", p)
		if err == nil || !strings.Contains(out, wantErr[name]) {
			t.Errorf("restore -online %s: %v\n%s", name, err, out)
		}
	}
	out, err = follower.CLI("snapshot", "restore", file, "-data-dir", follower.Dir)
	if err == nil || !strings.Contains(out, "not empty") {
		t.Errorf("restore into a used data dir: %v\n%s", err, out)
	}

	// a full disk: the old file stays, no temporary file is left
	if os.Geteuid() == 0 {
		full := filepath.Join(dir, "full")
		os.Mkdir(full, 0o700)
		if err := syscall.Mount("tmpfs", full, "tmpfs", 0, "size=64k"); err == nil {
			defer syscall.Unmount(full, 0)
			old := filepath.Join(full, "backup.snap")
			os.WriteFile(old, []byte("previous backup"), 0o600)
			filler, _ := os.Create(filepath.Join(full, "filler"))
			filler.Write(make([]byte, 64<<10)) // fails when the disk is full: that is the point
			filler.Close()
			out, err := follower.CLI("snapshot", "save", old)
			if err == nil || !strings.Contains(out, "no space left on device") || !strings.Contains(out, old) {
				t.Errorf("save to a full disk: %v\n%s", err, out)
			}
			if b, _ := os.ReadFile(old); string(b) != "previous backup" {
				t.Error("a failed save changed the old file")
			}
			if ents, _ := os.ReadDir(full); len(ents) != 2 {
				t.Errorf("a failed save left files behind: %v", ents)
			}
		} else {
			t.Logf("no tmpfs for the full-disk case: %v", err)
		}
	}

	// offline restore into a new cluster
	newDir := filepath.Join(dir, "restored")
	out, err = follower.CLI("snapshot", "restore", file, "-data-dir", newDir)
	if err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	r1 := registrartest.StartAgent(t, newDir)
	r1.WaitLine(0, "handlespace restored from snapshot", 10*time.Second)
	noHome := func(m map[string][]peView) map[string][]peView {
		out := map[string][]peView{}
		for h, pes := range m {
			for _, p := range pes {
				p.Home = ""
				out[h] = append(out[h], p)
			}
		}
		return out
	}
	waitHandlespace(t, r1, noHome(want), false, "offline restore")
	base := filepath.Join(dir, "joined")
	for i := 0; i < 2; i++ {
		a := registrartest.StartAgent(t, fmt.Sprintf("%s-%d", base, i), "-join", r1.Gossip)
		waitHandlespace(t, a, noHome(want), false, "member that joined the restored cluster")
	}

	// online restore: change the running cluster, then put the snapshot back
	cl := dialAddr(t, c.agents[2].ASAP, true)
	for j := uint32(0); j < 5; j++ {
		mustRegister(t, cl, "later", pe.element(5000+j))
	}
	mustRegister(t, cl, "rr", pe.element(6000))
	waitValue(t, 20*time.Second, "changes replicated", func() int { return c.status(follower).PEs }, total+6)
	out, err = follower.CLI("snapshot", "restore", "-online", "-yes", file)
	if err != nil || !strings.Contains(out, "Restored") {
		t.Fatalf("restore -online: %v\n%s", err, out)
	}
	t.Logf("%s", strings.TrimSpace(out))
	for _, a := range c.agents {
		waitHandlespace(t, a, want, true, "online restore")
	}
}
