package registrar_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/asap/sharedtest"
	"github.com/rserpool-go/registrar/cluster"
	"github.com/rserpool-go/registrar/registrar"
	"github.com/rserpool-go/registrar/registrar/registrartest"
	"github.com/rserpool-go/registrar/snapshot"
	"github.com/rserpool-go/registrar/store"
	"github.com/rserpool-go/registrar/store/raftlog"
)

// allPEs lists a store's handlespace in order.
func allPEs(hs *cluster.Handlespace) []cluster.PE {
	var out []cluster.PE
	hs.Iterate(cluster.Cursor{}, 0, nil, func(pe cluster.PE) bool { out = append(out, pe); return true })
	return out
}

// snapshotPEs decodes a verified snapshot's PEs.
func snapshotPEs(t testing.TB, data []byte) (snapshot.Meta, []store.PE) {
	t.Helper()
	sr, err := snapshot.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var out []store.PE
	for {
		pe, err := sr.Next()
		if err == io.EOF {
			return sr.Meta(), out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, pe)
	}
}

func getSnapshot(t testing.TB, httpAddr string) []byte {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/v1/snapshot")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/snapshot at %s: %s: %s", httpAddr, resp.Status, data)
	}
	return data
}

func putSnapshot(t testing.TB, httpAddr string, data []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, "http://"+httpAddr+"/v1/snapshot", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// samePEs compares handlespaces: handles, IDs, homes, policies, addresses,
// lifetimes, registration times.
func sameHandlespace(got, want []store.PE) bool {
	if len(got) == 0 && len(want) == 0 {
		return true
	}
	return reflect.DeepEqual(got, want)
}

// Ensure a snapshot saved through a follower (taken at the leader) and
// restored online through another follower replaces the handlespace of
// every member, PE supervision follows, and a damaged upload is refused
// without changing anything.
func TestSnapshot_OnlineRestore_Cluster3(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	pe := newASAPPE(t)
	f := followerOf(nodes)
	for i, r := range nodes {
		cl := dialAddr(t, r.ASAPAddr(), true)
		for j := 0; j < 4; j++ {
			id := uint32(100*(i+1) + j)
			el := pe.element(id)
			h := asap.PoolHandle("rr")
			if j%2 == 1 {
				h = "lu"
				el.Policy = asap.Policy{Type: asap.PolicyLeastUsed, Load: uint32(j) << 24}
			}
			mustRegister(t, cl, h, el)
		}
	}
	for _, r := range nodes {
		waitValue(t, 10*time.Second, "replication", func() int { _, n := r.Handlespace().Counts(); return n }, 12)
	}
	data := getSnapshot(t, f.HTTPAddr())
	meta, pes := snapshotPEs(t, data)
	var taker *testRegistrar // the leader when the snapshot was taken
	for _, r := range nodes {
		if r.ID() == meta.RegistrarID {
			taker = r
		}
	}
	if meta.PEs != 12 || meta.Pools != 2 || taker == nil || meta.RaftIndex == 0 || meta.RaftTerm == 0 {
		t.Fatalf("snapshot meta: %+v (follower %08x)", meta, f.ID())
	}
	if !sameHandlespace(pes, allPEs(taker.Handlespace())) {
		t.Fatal("the snapshot differs from the leader's handlespace")
	}

	// Change the handlespace: new PEs in a new pool and in an old one.
	cl := dialAddr(t, nodes[0].ASAPAddr(), true)
	for j := uint32(0); j < 3; j++ {
		mustRegister(t, cl, "later", pe.element(900+j))
	}
	mustRegister(t, cl, "rr", pe.element(950))
	for _, r := range nodes {
		waitValue(t, 10*time.Second, "replication", func() int { _, n := r.Handlespace().Counts(); return n }, 16)
	}

	// Damaged uploads are refused and change nothing.
	bad := bytes.Clone(data)
	bad[len(bad)/2] ^= 0x04
	for name, body := range map[string][]byte{"flipped byte": bad, "truncated": data[:len(data)-10], "text": []byte("hello")} {
		code, msg := putSnapshot(t, f.HTTPAddr(), body)
		if code != http.StatusBadRequest || !strings.Contains(msg, "unchanged") {
			t.Errorf("%s upload: got %d %s, want 400 (unchanged)", name, code, msg)
		}
	}
	for _, r := range nodes {
		if _, n := r.Handlespace().Counts(); n != 16 {
			t.Fatalf("a refused upload changed the handlespace: %d PEs", n)
		}
	}

	// Restore through a follower: every member serves the snapshot.
	code, msg := putSnapshot(t, f.HTTPAddr(), data)
	if code != http.StatusOK {
		t.Fatalf("restore: %d %s", code, msg)
	}
	var res registrar.SnapshotRestoreResult
	if err := json.Unmarshal([]byte(msg), &res); err != nil || res.Snapshot.PEs != 12 || res.RaftIndex == 0 {
		t.Errorf("restore answer %s (%v)", msg, err)
	}
	for _, r := range nodes {
		waitFor(t, 10*time.Second, fmt.Sprintf("registrar %08x serves the snapshot", r.ID()), func() bool {
			return sameHandlespace(allPEs(r.Handlespace()), pes)
		})
	}
	// Supervision follows: the PEs that vanished are no longer watched,
	// the snapshot's PEs are, each by its home.
	waitFor(t, 10*time.Second, "supervision follows the restore", func() bool {
		total := 0
		for _, r := range nodes {
			var s registrar.Status
			resp, err := http.Get("http://" + r.HTTPAddr() + "/v1/status")
			if err != nil {
				return false
			}
			json.NewDecoder(resp.Body).Decode(&s)
			resp.Body.Close()
			if s.OwnedPEs != 4 {
				return false
			}
			total += s.OwnedPEs
		}
		return total == 12
	})
	// And the cluster keeps working: a registration after the restore is
	// committed everywhere.
	mustRegister(t, cl, "after", pe.element(1000))
	for _, r := range nodes {
		waitValue(t, 10*time.Second, "write after restore", func() int { _, n := r.Handlespace().Counts(); return n }, 13)
	}
}

// Ensure a pending offline restore (restore.snap in a new data dir) is
// installed at the first start through raft, reaches members that join
// later, and is not installed twice.
func TestSnapshot_PendingRestore(t *testing.T) {
	src := startRegistrar(t, "", nil)
	cl := dial(t, src, true)
	for i := uint32(1); i <= 20; i++ {
		el := testPE(i, uint16(7000+i), asap.Policy{Type: asap.PolicyWeightedRoundRobin, Weight: i % 4})
		mustRegister(t, cl, asap.PoolHandle(fmt.Sprintf("pool-%d", i%3)), el)
	}
	file := filepath.Join(t.TempDir(), "backup.snap")
	meta, err := src.SaveSnapshot(file)
	if err != nil {
		t.Fatal(err)
	}
	want := allPEs(src.Handlespace())
	if meta.PEs != 20 || len(want) != 20 {
		t.Fatalf("saved %d PEs, store has %d", meta.PEs, len(want))
	}
	src.Stop()

	dir := t.TempDir()
	data, _ := os.ReadFile(file)
	if err := os.WriteFile(filepath.Join(dir, registrar.PendingRestoreFile), data, 0o600); err != nil {
		t.Fatal(err)
	}
	a := startRegistrar(t, dir, nil)
	if got := allPEs(a.Handlespace()); !sameHandlespace(got, want) {
		t.Fatalf("restored registrar serves %d PEs, want the snapshot's %d", len(got), len(want))
	}
	if _, err := os.Stat(filepath.Join(dir, registrar.PendingRestoreFile+".done")); err != nil {
		t.Errorf("restore.snap not renamed: %v", err)
	}
	// A registrar that joins later gets the handlespace from raft.
	b := startRegistrar(t, "", func(c *registrar.Config) { c.Join = []string{a.Handlespace().GossipAddr()} })
	waitFor(t, 20*time.Second, "the joined registrar serves the snapshot", func() bool { return sameHandlespace(allPEs(b.Handlespace()), want) })

	// A restart does not install it again (a change since stays).
	mustRegister(t, dial(t, a, true), "new", testPE(77, 7077, asap.Policy{Type: asap.PolicyRoundRobin}))
	b.Leave()
	b.Stop()
	a.Stop()
	a = startRegistrar(t, dir, nil)
	if _, ok := a.Handlespace().Lookup("new", 77); !ok {
		t.Error("the restart installed the snapshot again")
	}
}

// Ensure a pending restore in a registrar started to join a cluster is
// refused with a message saying what to do.
func TestSnapshot_PendingRestoreNeedsBootstrap(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, registrar.PendingRestoreFile), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := registrartest.Config(dir)
	cfg.Logger = sharedtest.Logger(t, "registrar")
	cfg.Join = []string{"127.0.0.1:1"}
	r, err := registrar.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = r.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "restore is pending") || !strings.Contains(err.Error(), "without -join") {
		t.Fatalf("got %v, want a pending-restore error", err)
	}
}

// Ensure a pending restore file that does not verify stops the start with
// an error naming it, and changes nothing.
func TestSnapshot_PendingRestoreCorrupt(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, registrar.PendingRestoreFile)
	if err := os.WriteFile(path, []byte("RSPSNAP\x00\x00\x01\x00\x00\x00\x02{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := registrartest.Config(dir)
	cfg.Logger = sharedtest.Logger(t, "registrar")
	r, err := registrar.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = r.Run(ctx)
	if !errors.Is(err, snapshot.ErrCorrupt) || !strings.Contains(err.Error(), path) {
		t.Fatalf("got %v, want ErrCorrupt naming %s", err, path)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("the pending file is gone: %v", err)
	}
}

// Ensure raft compacts its log (raft.db's first index advances, snapshots
// are written) with a low threshold, a registrar that joins then gets the
// handlespace from a snapshot, and a restart of a registrar with
// snapshots and a compacted log serves the same handlespace.
func TestSnapshot_CompactionAndRestart(t *testing.T) {
	low := func(c *registrar.Config) {
		c.SnapshotThreshold = 64
		c.TrailingLogs = 16
		c.SnapshotInterval = registrar.Duration(50 * time.Millisecond)
	}
	dir := t.TempDir()
	a := startRegistrar(t, dir, low)
	cl := dial(t, a, true)
	for i := uint32(1); i <= 400; i++ {
		mustRegister(t, cl, asap.PoolHandle(fmt.Sprintf("p%d", i%7)), testPE(i, uint16(7000+i%100), asap.Policy{Type: asap.PolicyRoundRobin}))
		if i%5 == 0 { // re-registrations with changes are log entries too
			el := testPE(i, uint16(8000+i%100), asap.Policy{Type: asap.PolicyRoundRobin})
			mustRegister(t, cl, asap.PoolHandle(fmt.Sprintf("p%d", i%7)), el)
		}
	}
	waitFor(t, 10*time.Second, "a raft snapshot", func() bool {
		snaps, _ := filepath.Glob(filepath.Join(dir, "raft", "snapshots", "*", "state.bin"))
		return len(snaps) > 0
	})
	want := allPEs(a.Handlespace())

	b := startRegistrar(t, "", func(c *registrar.Config) { low(c); c.Join = []string{a.Handlespace().GossipAddr()} })
	waitFor(t, 20*time.Second, "the joined registrar serves the handlespace", func() bool { return sameHandlespace(allPEs(b.Handlespace()), want) })
	b.Leave()
	b.Stop()
	a.Stop()

	logs, err := raftlog.OpenWAL(filepath.Join(dir, "raft", "wal"), nil)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := logs.FirstIndex()
	last, _ := logs.LastIndex()
	logs.Close()
	if first <= 1 || last-first > 600 {
		t.Errorf("the raft log holds entries %d to %d: it was not compacted", first, last)
	}
	snaps, _ := filepath.Glob(filepath.Join(dir, "raft", "snapshots", "*"))
	t.Logf("raft log entries %d..%d, %d snapshots kept", first, last, len(snaps))
	if len(snaps) == 0 || len(snaps) > 2 {
		t.Errorf("%d raft snapshots kept, want 1 or 2 (retain 2)", len(snaps))
	}

	a = startRegistrar(t, dir, low)
	if got := allPEs(a.Handlespace()); !sameHandlespace(got, want) {
		t.Fatalf("after the restart: %d PEs, want the same %d", len(got), len(want))
	}
	mustRegister(t, dial(t, a, true), "after", testPE(5000, 7000, asap.Policy{Type: asap.PolicyRoundRobin}))
}

// Measure the registrar's snapshot paths with 1 000 000 PEs (1 000 pools):
// online restore (PUT /v1/snapshot: spool, verify, raft.Restore), save
// (GET /v1/snapshot: barrier, write, verify, download into a verified
// file) and the pending restore of a new data dir (start until ready).
// RSP_SNAPSHOT_1M=1 runs it; the numbers are in docs/performance.md.
func TestSnapshot_Registrar1M(t *testing.T) {
	if os.Getenv("RSP_SNAPSHOT_1M") == "" {
		t.Skip("set RSP_SNAPSHOT_1M=1 to measure the registrar's snapshot paths with 1M PEs")
	}
	const id = 0x1234
	dir := t.TempDir()
	file := filepath.Join(dir, "1m.snap")
	pols := []asap.Policy{{Type: asap.PolicyRoundRobin}, {Type: asap.PolicyLeastUsed, Load: 1 << 20}, {Type: asap.PolicyWeightedRandom, Weight: 5}}
	_, err := snapshot.WriteFile(nil, file, func(w io.Writer) error {
		sw, err := snapshot.NewWriter(w, snapshot.Meta{Created: time.Now()})
		if err != nil {
			return err
		}
		for p := 0; p < 1000; p++ {
			for i := 1; i <= 1000; i++ {
				el := testPE(uint32(p*1000+i), uint16(1024+i), pols[p%3])
				el.Home = id
				el.ASAP = asap.Transport{Kind: asap.ParamTCPTransport, Port: 9, Addrs: el.User.Addrs}
				if err := sw.Add(store.PE{Handle: asap.PoolHandle(fmt.Sprintf("pool-%04d", p)), Element: el, Registered: 1}); err != nil {
					return err
				}
			}
		}
		_, err = sw.Close()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(file)
	quiet := func(c *registrar.Config) {
		c.ID = id
		c.KeepAliveInterval = registrar.Duration(time.Hour)
		c.KeepAliveTimeout = registrar.Duration(time.Hour)
		c.Logger = hclog.NewNullLogger()
	}
	r := startRegistrar(t, "", quiet)
	start := time.Now()
	if code, msg := putSnapshot(t, r.HTTPAddr(), data); code != http.StatusOK {
		t.Fatalf("restore: %d %s", code, msg)
	}
	t.Logf("online restore of 1M PEs (upload %d bytes, spool, verify, raft.Restore): %v", len(data), time.Since(start))

	start = time.Now()
	out := filepath.Join(dir, "saved.snap")
	m, err := snapshot.WriteFile(nil, out, func(w io.Writer) error {
		resp, err := http.Get("http://" + r.HTTPAddr() + "/v1/snapshot")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.Copy(w, resp.Body)
		return err
	})
	if err != nil || m.PEs != 1_000_000 {
		t.Fatalf("save: %v (%d PEs)", err, m.PEs)
	}
	t.Logf("save of 1M PEs through the admin API into a verified file: %v", time.Since(start))
	r.Stop()

	newDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(newDir, registrar.PendingRestoreFile), data, 0o600); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	r2 := startRegistrar(t, newDir, quiet)
	t.Logf("first start with a pending restore of 1M PEs, until ready: %v", time.Since(start))
	if _, n := r2.Handlespace().Counts(); n != 1_000_000 {
		t.Fatalf("restored %d PEs", n)
	}
}
