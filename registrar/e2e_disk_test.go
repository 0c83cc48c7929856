package registrar_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/registrar"
	"github.com/rserpool-go/registrar/registrar/registrartest"
)

// tmpfs is a small tmpfs mounted for a test (root only).
type tmpfs struct {
	t   *testing.T
	dir string
}

func mountTmpfs(t *testing.T, size int64) *tmpfs {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root (CI runs as root)")
	}
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	return &tmpfs{t: t, dir: dir}
}

// used is how many bytes the file system holds.
func (m *tmpfs) used() int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(m.dir, &st); err != nil {
		m.t.Fatal(err)
	}
	return int64(st.Blocks-st.Bfree) * st.Bsize
}

// resize remounts it with size bytes (as `mount -o remount,size=...`).
func (m *tmpfs) resize(size int64) {
	m.t.Helper()
	size = (size + 4095) &^ 4095
	if err := syscall.Mount("tmpfs", m.dir, "tmpfs", syscall.MS_REMOUNT, fmt.Sprintf("size=%d", size)); err != nil {
		m.t.Fatalf("remount %s with size %d: %v", m.dir, size, err)
	}
}

func agentStatus(t *testing.T, a *registrartest.Agent) registrar.Status {
	t.Helper()
	var s registrar.Status
	resp, err := http.Get("http://" + a.HTTP + "/v1/status")
	if err != nil {
		t.Fatalf("GET /v1/status: %v", err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatalf("GET /v1/status: %v", err)
	}
	return s
}

// poolIDs is the set of PE IDs of a pool at a registrar.
func poolIDs(t *testing.T, a *registrartest.Agent, h string) map[string]bool {
	t.Helper()
	resp, err := http.Get("http://" + a.HTTP + "/v1/pools/" + h)
	if err != nil {
		t.Fatalf("GET pool %s: %v", h, err)
	}
	defer resp.Body.Close()
	ids := map[string]bool{}
	if resp.StatusCode == http.StatusNotFound {
		return ids
	}
	b, _ := io.ReadAll(resp.Body)
	var d registrar.PoolDetail
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("GET pool %s: %v", h, err)
	}
	for _, p := range d.PEs {
		ids[p.ID] = true
	}
	return ids
}

// Ensure a full disk never loses an acknowledged registration, end to end
// with the built binaries: in each round the data dir's tmpfs is shrunk
// to a little more than it holds, two connections register until the
// registrar refuses (Lack of Resources; /v1/status reports the storage
// fault, resolutions still work), the tmpfs is grown back (`mount -o
// remount,size=...`), the registrar recovers by itself (every other
// round, before the kill) and is killed with SIGKILL and restarted: every
// acknowledged PE must be there. No panic, no WARN per PE.
func TestE2E_DiskFull(t *testing.T) {
	registrartest.BinDir(t)
	rounds := 20
	if testing.Short() {
		rounds = 4
	}
	fs := mountTmpfs(t, 64<<20)
	dir := filepath.Join(fs.dir, "data")
	// Thousands of PEs on one connection: no max_pes_per_connection.
	a := registrartest.StartAgent(t, dir, "-write-timeout", "1s", "-keepalive-interval", "30s", "-keepalive-timeout", "30s", "-max-pes-per-connection", "0")
	pe := newASAPPE(t)
	const pool = "diskfull"
	var acked []uint32
	next := uint32(0)
	var mu sync.Mutex
	newID := func() uint32 {
		mu.Lock()
		defer mu.Unlock()
		next++
		return next
	}
	element := func(id uint32) asap.PoolElement {
		e := pe.element(id)
		e.Lifetime = 3_600_000 // no PE expires during the test
		return e
	}
	// registerUntil registers on one connection until it saw refusals
	// (or stop), returning the acknowledged IDs and the refusals.
	registerUntil := func(refusals int, stop <-chan struct{}) (ids []uint32, refused int) {
		cl := dialAddr(t, a.ASAP, true)
		defer cl.c.Close()
		for refused < refusals {
			select {
			case <-stop:
				return ids, refused
			default:
			}
			id := newID()
			cl.send(&asap.Registration{PoolHandle: pool, PoolElement: element(id)})
			select {
			case m, ok := <-cl.in:
				if !ok {
					t.Errorf("the registrar closed the connection")
					return ids, refused
				}
				r, isResp := m.(*asap.RegistrationResponse)
				switch {
				case !isResp || r.ID != id:
					t.Errorf("answer %T to the registration of %08x", m, id)
					return ids, refused
				case r.Reject:
					refused++
					if r.Error.First() != asap.CauseLackOfResources {
						t.Errorf("registration refused with %v, want cause Lack of Resources", r.Error)
					}
				default:
					ids = append(ids, id)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("no answer to the registration of %08x within 10 s", id)
				return ids, refused
			}
		}
		return ids, refused
	}
	var faults, recovered int
	for round := 0; round < rounds && !t.Failed(); round++ {
		fs.resize(fs.used() + 96<<10)
		stop := make(chan struct{})
		timer := time.AfterFunc(60*time.Second, func() { close(stop) })
		var wg sync.WaitGroup
		var got [2][]uint32
		var refused [2]int
		for c := 0; c < 2; c++ {
			wg.Add(1)
			go func(c int) {
				defer wg.Done()
				got[c], refused[c] = registerUntil(3, stop)
			}(c)
		}
		wg.Wait()
		timer.Stop()
		acked = append(append(acked, got[0]...), got[1]...)
		if refused[0] == 0 || refused[1] == 0 {
			t.Fatalf("round %d: the disk never filled (refusals %v, %d acknowledged)", round, refused, len(got[0])+len(got[1]))
		}
		waitFor(t, 10*time.Second, "/v1/status to report the storage fault", func() bool {
			return agentStatus(t, a).StorageFault != nil
		})
		faults++
		if s := agentStatus(t, a); s.StorageFault.Path == "" || !strings.Contains(s.StorageFault.Fix, "free space") {
			t.Errorf("round %d: storage_fault %+v: want the file and the fix", round, s.StorageFault)
		}
		cl := dialAddr(t, a.ASAP, true)
		if r := resolve(t, cl, pool, 3); r.Error != nil || len(r.PEs) == 0 {
			t.Errorf("round %d: resolution during the fault: %v, %d PEs", round, r.Error, len(r.PEs))
		}
		cl.c.Close()
		fs.resize(fs.used() + 64<<20)
		if round%2 == 0 {
			waitFor(t, 20*time.Second, "the registrar to recover by itself after the disk grew", func() bool {
				return agentStatus(t, a).StorageFault == nil
			})
			recovered++
			after := make(chan struct{})
			time.AfterFunc(300*time.Millisecond, func() { close(after) })
			more, refused := registerUntil(1, after)
			if refused > 0 {
				t.Errorf("round %d: a registration was refused after the recovery", round)
			}
			acked = append(acked, more...)
		}
		if out := a.Output(); strings.Contains(out, "panic:") || strings.Count(out, "removing PE failed") > 0 {
			t.Fatalf("round %d: the registrar panicked or logged PE removal failures", round)
		}
		a.RestartAndWait() // SIGKILL, then start again
		var missing []uint32
		waitFor(t, 20*time.Second, "every acknowledged PE after the restart", func() bool {
			have := poolIDs(t, a, pool)
			missing = missing[:0]
			for _, id := range acked {
				if !have[fmt.Sprintf("0x%08x", id)] {
					missing = append(missing, id)
				}
			}
			return len(missing) == 0
		})
		t.Logf("round %d: %d acknowledged so far, refusals %v, 0 lost", round, len(acked), refused)
	}
	lines := strings.Split(a.Output(), "\n")
	warns := 0
	for _, l := range lines {
		if strings.Contains(l, "[WARN]") || strings.Contains(l, "[ERROR]") {
			warns++
		}
	}
	if warns > 4*rounds+4 {
		t.Errorf("%d WARN/ERROR lines over %d rounds: want a line per state change, not per PE", warns, rounds)
	}
	t.Logf("%d rounds (%d faults, %d recovered before the kill): %d PEs acknowledged, 0 lost; %d WARN/ERROR lines in the last run",
		rounds, faults, recovered, len(acked), warns)
}

// Ensure the documented recovery of a registrar whose raft log is corrupt
// (docs/operations.md): it refuses to start with an error naming the
// segment, the offset and the recovery; after `registrar raft
// remove-peer` at a healthy registrar and moving its raft/ and
// handlespace.db aside, it starts under the same ID, rejoins and catches
// up from the leader with every PE the cluster acknowledged, including
// those registered while it was down.
func TestE2E_CorruptLogRejoin(t *testing.T) {
	c := startE2ECluster(t)
	pe := newASAPPE(t)
	const pool = "rejoin"
	leader := c.leader()
	if leader == nil {
		t.Fatal("no leader")
	}
	var f *registrartest.Agent
	for _, a := range c.agents {
		if a != leader {
			f = a
			break
		}
	}
	fid := c.status(f).ID
	cl := dialAddr(t, leader.ASAP, true)
	var acked []uint32
	reg := func(from, to uint32) {
		for id := from; id <= to; id++ {
			e := pe.element(id)
			e.Lifetime = 3_600_000
			mustRegister(t, cl, pool, e)
			acked = append(acked, id)
		}
	}
	reg(1, 200)
	waitFor(t, 20*time.Second, "the follower to hold every PE", func() bool { return len(poolIDs(t, f, pool)) == 200 })
	f.Kill()
	segs, _ := filepath.Glob(filepath.Join(f.Dir, "raft", "wal", "*.wal"))
	if len(segs) != 1 {
		t.Fatalf("%d raft log segments, want 1", len(segs))
	}
	b, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	off := len(b) / 2
	copy(b[off:], []byte{0xde, 0xad, 0xbe, 0xef})
	if err := os.WriteFile(segs[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	reg(201, 300) // the cluster goes on without it
	from := f.Lines()
	f.Restart()
	waitFor(t, 20*time.Second, "the registrar with a corrupt log to exit", f.Exited)
	out := strings.Join(strings.Split(f.Output(), "\n")[from:], "\n")
	for _, want := range []string{"corrupt raft log", segs[0], "offset", "remove-peer", "followed by a valid record"} {
		if !strings.Contains(out, want) {
			t.Errorf("the refusal does not say %q:\n%s", want, out)
		}
	}
	t.Logf("refused to start:\n%s", out)
	if o, err := leader.CLI("raft", "remove-peer", fid); err != nil {
		t.Fatalf("registrar raft remove-peer %s: %v\n%s", fid, err, o)
	}
	for _, p := range []string{"raft", "handlespace.db"} {
		if err := os.Rename(filepath.Join(f.Dir, p), filepath.Join(f.Dir, p+".corrupt")); err != nil {
			t.Fatal(err)
		}
	}
	f.RestartAndWait()
	if id := c.status(f).ID; id != fid {
		t.Errorf("the rejoined registrar has ID %s, want its own %s", id, fid)
	}
	c.waitVoters(3, c.agents...)
	var missing int
	waitFor(t, 30*time.Second, "the rejoined registrar to hold every acknowledged PE", func() bool {
		have := poolIDs(t, f, pool)
		missing = 0
		for _, id := range acked {
			if !have[fmt.Sprintf("0x%08x", id)] {
				missing++
			}
		}
		return missing == 0
	})
	t.Logf("corrupt log refused; after remove-peer and rejoin the registrar holds all %d acknowledged PEs", len(acked))
}
