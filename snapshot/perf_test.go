package snapshot_test

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/snapshot"
	"github.com/rserpool-go/registrar/store"
)

// benchPE is a typical PE: TCP user transport with one IPv4 address,
// SCTP ASAP transport, the pool's policy.
func benchPE(id uint32, pol asap.Policy) asap.PoolElement {
	a := netip.AddrFrom4([4]byte{10, byte(id >> 16), byte(id >> 8), byte(id)})
	return asap.PoolElement{ID: id, Home: 0x10000 + id%3, Lifetime: 30000, Policy: pol,
		User: asap.Transport{Kind: asap.ParamTCPTransport, Port: uint16(1024 + id%60000), Use: asap.UseDataAndControl, Addrs: []netip.Addr{a}},
		ASAP: asap.Transport{Kind: asap.ParamSCTPTransport, Port: 3863, Addrs: []netip.Addr{a}}}
}

// Measure save, inspect and restore of 1 000 000 PEs (1 000 pools of
// 1 000; round robin, least used, weighted random). RSP_SNAPSHOT_1M=1
// runs it; the numbers go to docs/performance.md.
func TestSnapshot_1M(t *testing.T) {
	if os.Getenv("RSP_SNAPSHOT_1M") == "" {
		t.Skip("set RSP_SNAPSHOT_1M=1 to measure snapshots of 1M PEs")
	}
	const pools, per = 1000, 1000
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "src.db"), &store.Options{InitialMmapSize: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pols := []asap.Policy{{Type: asap.PolicyRoundRobin}, {Type: asap.PolicyLeastUsed, Load: 1 << 20}, {Type: asap.PolicyWeightedRandom, Weight: 5}}
	start := time.Now()
	err = st.ReplaceAll(1_000_000, func(put func(store.PE) error) error {
		for p := 0; p < pools; p++ {
			h := asap.PoolHandle(fmt.Sprintf("pool-%04d", p))
			for i := 1; i <= per; i++ {
				if err := put(store.PE{Handle: h, Element: benchPE(uint32(p*per+i), pols[p%3]), Registered: int64(i)}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("build: 1M PEs into a store (ReplaceAll, bulk file write): %v", time.Since(start))

	path := filepath.Join(dir, "1m.snap")
	runtime.GC()
	start = time.Now()
	m, err := snapshot.WriteFile(nil, path, func(w io.Writer) error {
		return st.View(func(v *store.ReadView) error {
			_, err := snapshot.WriteView(w, v, snapshot.Meta{RegistrarID: 1})
			return err
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	save := time.Since(start)
	fi, _ := os.Stat(path)
	t.Logf("save (write, fsync, read back and verify, rename): %v, %d bytes = %.1f bytes per PE (%d pools, %d PEs)",
		save, fi.Size(), float64(fi.Size())/float64(m.PEs), m.Pools, m.PEs)

	runtime.GC()
	start = time.Now()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := snapshot.Summarize(f, nil)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	inspect := time.Since(start)
	t.Logf("inspect (verify and summarise %d pools): %v", len(sum.Pools), inspect)

	dst, err := store.Open(filepath.Join(dir, "dst.db"), &store.Options{InitialMmapSize: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	runtime.GC()
	start = time.Now()
	f, _ = os.Open(path)
	if err := func() error { _, err := snapshot.Restore(bufio.NewReader(f), dst); return err }(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	restore := time.Since(start)
	if _, n := dst.Counts(); n != pools*per {
		t.Fatalf("restored %d PEs", n)
	}
	t.Logf("restore (snapshot.Restore, as the raft FSM does: verify, check every PE, new index, bulk file write, swap): %v", restore)

	// Restore again over a full store (the online case).
	runtime.GC()
	start = time.Now()
	f, _ = os.Open(path)
	if _, err := snapshot.Restore(f, dst); err != nil {
		t.Fatal(err)
	}
	f.Close()
	t.Logf("restore over a 1M-PE store: %v", time.Since(start))

	if save > 5*time.Second || inspect > 3*time.Second || restore > 10*time.Second || fi.Size() > 120*pools*per {
		t.Errorf("goal missed: save %v (<= 5s), inspect %v (<= 3s), restore %v (<= 10s), %d bytes (<= 120 per PE)", save, inspect, restore, fi.Size())
	}
}
