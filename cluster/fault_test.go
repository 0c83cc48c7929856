package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rserpool-go/registrar/asap/sharedtest"
	"github.com/rserpool-go/registrar/enrp"
	"github.com/rserpool-go/registrar/store"
	"github.com/rserpool-go/registrar/store/raftlog"
)

// faultNode is a one-node cluster in dir for the fault tests.
type faultNode struct {
	t    *testing.T
	dir  string
	seg  int64
	log  *sharedtest.Buffer
	opts store.Options
	n    *Node
	st   *store.Store
}

func (f *faultNode) open() error {
	f.log = &sharedtest.Buffer{}
	logger := hclog.New(&hclog.LoggerOptions{Output: f.log, Level: hclog.Info})
	o := f.opts
	o.NoSync = true
	o.Logger = logger.Named("store")
	st, err := store.Open(filepath.Join(f.dir, "handlespace.db"), &o)
	if err != nil {
		return err
	}
	cfg := DefaultRaftConfig(ProfileLocal)
	cfg.Bind = "127.0.0.1:0"
	n, err := OpenNode(NodeConfig{ID: 0x1234, Dir: filepath.Join(f.dir, "raft"), Raft: cfg, Bootstrap: true, NoSync: true,
		WALSegmentSize: f.seg, Logger: logger}, st)
	if err != nil {
		st.Close()
		return err
	}
	f.n, f.st = n, st
	deadline := time.Now().Add(10 * time.Second)
	for !n.IsLeader() {
		if time.Now().After(deadline) {
			f.t.Fatal("no leader after 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

func (f *faultNode) close() {
	if f.n != nil {
		f.n.Shutdown()
		f.st.Close()
		f.n, f.st = nil, nil
	}
}

func (f *faultNode) propose(id uint32) error {
	res, err := f.n.Propose(context.Background(), NewUpdate(time.Unix(int64(id), 0), enrp.AddPE, 1, "pool", pe(id, 1)))
	if err == nil {
		err = res.Failed()
	}
	return err
}

func (f *faultNode) segments() []string {
	segs, _ := filepath.Glob(filepath.Join(f.dir, "raft", "wal", "*.wal"))
	sort.Strings(segs)
	return segs
}

// Ensure each kind of damage to the raft state gives its documented
// outcome (docs/operations.md) and never a silent loss: a torn tail is cut
// with a warning naming the file and the offset, and the node starts with
// every acknowledged PE; everything else refuses to start with an error
// that names what is damaged and how to recover, and changes nothing.
func TestNode_DamagedRaftState(t *testing.T) {
	const pes = 60
	flip := func(path string, off int64) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b[off] ^= 0x5a
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name   string
		seg    int64                            // WAL segment size
		damage func(f *faultNode) (path string) // returns the file the error must name
		want   string                           // in the error; "" means the node starts
		cuts   bool                             // the refusal cuts a torn record off first
	}{
		{"torn tail", 0, func(f *faultNode) string {
			segs := f.segments()
			last := segs[len(segs)-1]
			b, _ := os.ReadFile(last)
			fh, _ := os.OpenFile(last, os.O_WRONLY|os.O_APPEND, 0)
			fh.Write(b[8 : 8+30]) // an append cut short: a record's first 30 bytes
			fh.Close()
			return last
		}, "", false},
		{"flipped byte in the middle", 0, func(f *faultNode) string {
			segs := f.segments()
			fi, _ := os.Stat(segs[0])
			flip(segs[0], fi.Size()/2)
			return segs[0]
		}, "followed by a valid record", false},
		{"flipped byte in an older segment", 1024, func(f *faultNode) string {
			segs := f.segments()
			if len(segs) < 3 {
				t.Fatalf("%d segments, want several", len(segs))
			}
			fi, _ := os.Stat(segs[1])
			flip(segs[1], fi.Size()-5)
			return segs[1]
		}, "not the last", false},
		{"truncated older segment", 1024, func(f *faultNode) string {
			segs := f.segments()
			fi, _ := os.Stat(segs[1])
			os.Truncate(segs[1], fi.Size()-40)
			return segs[1]
		}, "not the last", false},
		{"truncated last segment", 0, func(f *faultNode) string {
			segs := f.segments()
			fi, _ := os.Stat(segs[0])
			os.Truncate(segs[0], fi.Size()-40)
			return filepath.Dir(segs[0])
		}, "the log lost entries", true},
		{"deleted segment", 1024, func(f *faultNode) string {
			segs := f.segments()
			os.Remove(segs[2])
			return segs[3]
		}, "a segment is missing", false},
		{"deleted last segment", 1024, func(f *faultNode) string {
			segs := f.segments()
			os.Remove(segs[len(segs)-1])
			return filepath.Dir(segs[0])
		}, "the log lost entries", false},
		{"deleted WAL", 0, func(f *faultNode) string {
			os.RemoveAll(filepath.Join(f.dir, "raft", "wal"))
			return filepath.Join(f.dir, "raft", "wal")
		}, "is empty or missing", false},
		{"empty raft.db", 0, func(f *faultNode) string {
			p := filepath.Join(f.dir, "raft", "raft.db")
			os.Truncate(p, 0)
			return p
		}, "has no term or vote", false},
		{"deleted raft.db", 0, func(f *faultNode) string {
			p := filepath.Join(f.dir, "raft", "raft.db")
			os.Remove(p)
			return p
		}, "is missing", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := &faultNode{t: t, dir: t.TempDir(), seg: c.seg}
			if err := f.open(); err != nil {
				t.Fatal(err)
			}
			for id := uint32(1); id <= pes; id++ {
				if err := f.propose(id); err != nil {
					t.Fatal(err)
				}
			}
			f.close()
			path := c.damage(f)
			before := fileSums(t, filepath.Join(f.dir, "raft"))
			err := f.open()
			defer f.close()
			if c.want == "" {
				if err != nil {
					t.Fatalf("start after a torn tail: %v", err)
				}
				if out := f.log.String(); !strings.Contains(out, "cutting off a torn record") || !strings.Contains(out, path) || !strings.Contains(out, "offset=") {
					t.Errorf("no warning naming %s and the offset; log:\n%s", path, out)
				}
				if _, n := f.st.Counts(); n != pes {
					t.Errorf("%d PEs after the restart, want %d", n, pes)
				}
				return
			}
			if err == nil {
				t.Fatalf("the node started; want an error with %q", c.want)
			}
			msg := err.Error()
			if !strings.Contains(msg, c.want) || !strings.Contains(msg, path) || !strings.Contains(msg, "recover") {
				t.Errorf("error %q: want %q, the path %s and how to recover", msg, c.want, path)
			}
			var ce *raftlog.WALCorruptError
			if errors.As(err, &ce) && ce.Offset > 0 && !strings.Contains(msg, fmt.Sprintf("offset %d", ce.Offset)) {
				t.Errorf("error %q does not name the offset %d", msg, ce.Offset)
			}
			if after := fileSums(t, filepath.Join(f.dir, "raft")); after != before && !c.cuts {
				t.Errorf("the refused start changed the raft state:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// fileSums describes every file under dir (name and content), to check
// that nothing was written.
func fileSums(t *testing.T, dir string) string {
	var b strings.Builder
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || strings.Contains(p, "snapshots") {
			return nil
		}
		data, _ := os.ReadFile(p)
		fmt.Fprintf(&b, "%s:%d:%x ", filepath.Base(p), len(data), crc(data))
		return nil
	})
	return b.String()
}

func crc(b []byte) uint32 {
	var h uint32 = 2166136261
	for _, c := range b {
		h = (h ^ uint32(c)) * 16777619
	}
	return h
}

// Ensure a handlespace that cannot be written never panics the FSM (it
// did: "panic: cluster: apply raft index ..."): the node refuses writes
// while Fault reports it, resolutions keep working from memory, and it
// recovers by itself, with every acknowledged PE in the rewritten file.
func TestNode_HandlespaceFaultNoPanic(t *testing.T) {
	var failing atomic.Bool
	f := &faultNode{t: t, dir: t.TempDir(), opts: store.Options{InjectFault: func(site string) error {
		if failing.Load() {
			return syscall.ENOSPC
		}
		return nil
	}}}
	if err := f.open(); err != nil {
		t.Fatal(err)
	}
	defer f.close()
	for id := uint32(1); id <= 10; id++ {
		if err := f.propose(id); err != nil {
			t.Fatal(err)
		}
	}
	failing.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err := f.n.Propose(ctx, NewUpdate(time.Unix(11, 0), enrp.AddPE, 1, "pool", pe(11, 1)))
	cancel()
	if err == nil {
		t.Fatal("a write was acknowledged while the handlespace could not be written")
	}
	if !errors.Is(f.n.Fault(), store.ErrStorageFault) || !errors.Is(f.n.Fault(), syscall.ENOSPC) {
		t.Fatalf("Fault() = %v, want a storage fault with ENOSPC", f.n.Fault())
	}
	if _, ok := f.st.Lookup("pool", 5); !ok {
		t.Error("a PE applied before the fault cannot be read from memory")
	}
	failing.Store(false)
	deadline := time.Now().Add(20 * time.Second)
	for f.n.Fault() != nil || f.n.fsm.Waiting() {
		if time.Now().After(deadline) {
			t.Fatalf("still faulted after the disk recovered: %v", f.n.Fault())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := f.propose(12); err != nil {
		t.Fatalf("write after recovery: %v", err)
	}
	if out := f.log.String(); strings.Count(out, "handlespace file write failed") != 1 {
		t.Errorf("want the fault logged once; log:\n%s", out)
	}
	f.close()
	if err := f.open(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint32{1, 5, 10, 12} {
		if _, ok := f.st.Lookup("pool", id); !ok {
			t.Errorf("PE %d lost", id)
		}
	}
}
