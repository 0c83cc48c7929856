package snapshot_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/snapshot"
	"github.com/rserpool-go/registrar/store"
)

var created = time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)

// element builds a PE; the variant picks transports and addresses.
func element(id uint32, pol asap.Policy, variant int) asap.PoolElement {
	el := asap.PoolElement{ID: id, Home: 0x1000 + id%3, Lifetime: 30000, Policy: pol,
		User: asap.Transport{Kind: asap.ParamTCPTransport, Port: uint16(1000 + id%50000), Use: asap.UseDataAndControl,
			Addrs: []netip.Addr{netip.AddrFrom4([4]byte{10, 0, byte(id >> 8), byte(id)})}}}
	switch variant % 3 {
	case 1:
		el.User = asap.Transport{Kind: asap.ParamSCTPTransport, Port: 7000, Use: asap.UseData,
			Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")}}
		el.ASAP = asap.Transport{Kind: asap.ParamSCTPTransport, Port: 7001, Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}}
	case 2:
		el.User = asap.Transport{Kind: asap.ParamUDPTransport, Port: 53, Addrs: []netip.Addr{netip.MustParseAddr("2001:db8::53")}}
		el.ASAP = asap.Transport{Kind: asap.ParamTCPTransport, Port: 3863, Addrs: []netip.Addr{netip.MustParseAddr("2001:db8::53")}}
	}
	return el
}

// fill registers a few pools of different policies, transports and handle
// kinds (a binary one, a long one) into st.
func fill(t testing.TB, st *store.Store) {
	t.Helper()
	pools := []struct {
		h   asap.PoolHandle
		pol asap.Policy
		n   int
	}{
		{"EchoPool", asap.Policy{Type: asap.PolicyRoundRobin}, 5},
		{"lu", asap.Policy{Type: asap.PolicyLeastUsed, Load: 0x20000000}, 3},
		{"wrr", asap.Policy{Type: asap.PolicyWeightedRoundRobin, Weight: 7}, 4},
		{"prio", asap.Policy{Type: asap.PolicyPriority, Priority: 2}, 2},
		{asap.PoolHandle("\x00\x01\xfe\xff"), asap.Policy{Type: asap.PolicyRandom}, 1},
		{asap.PoolHandle(strings.Repeat("h", 200)), asap.Policy{Type: asap.PolicyWeightedRandom, Weight: 3}, 2},
	}
	var ops []store.Op
	for i, p := range pools {
		for j := 0; j < p.n; j++ {
			el := element(uint32(100*(i+1)+j*7), p.pol, i)
			ops = append(ops, store.Op{Kind: store.OpRegister, PE: store.PE{Handle: p.h, Element: el, Registered: created.Add(time.Duration(i*10+j) * time.Second).UnixNano()}})
		}
	}
	res, err := st.Apply(42, ops)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("op %d: %v", i, r.Err)
		}
	}
}

func openStore(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "hs.db"), &store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// encode writes st's handlespace as a snapshot.
func encode(t testing.TB, st *store.Store) []byte {
	t.Helper()
	var buf bytes.Buffer
	err := st.View(func(v *store.ReadView) error {
		_, err := snapshot.WriteView(&buf, v, snapshot.Meta{RegistrarID: 7, Build: "test", RaftTerm: 3, Created: created})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// contents lists a store's PEs in order.
func contents(t testing.TB, st *store.Store) []store.PE {
	t.Helper()
	var out []store.PE
	err := st.View(func(v *store.ReadView) error {
		return v.ForEach(func(pe store.PE) error { out = append(out, pe); return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Ensure that a store written as a snapshot and restored into another
// store gives the same handlespace, registration times included, and that
// the metadata and counts come back.
func TestSnapshot_RoundTrip(t *testing.T) {
	src := openStore(t)
	fill(t, src)
	data := encode(t, src)

	m, err := snapshot.Verify(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	want := snapshot.Meta{FormatVersion: 1, RegistrarID: 7, Build: "test", RaftIndex: 42, RaftTerm: 3, Created: created, Pools: 6, PEs: 17}
	if m != want {
		t.Errorf("meta: got %+v, want %+v", m, want)
	}

	dst := openStore(t)
	if _, err := dst.Apply(5, []store.Op{{Kind: store.OpRegister, PE: store.PE{Handle: "old", Element: element(1, asap.Policy{Type: asap.PolicyRandom}, 0)}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := snapshot.Restore(bytes.NewReader(data), dst); err != nil {
		t.Fatal(err)
	}
	if got, want := contents(t, dst), contents(t, src); !reflect.DeepEqual(got, want) {
		t.Fatalf("restored handlespace differs:\n got %v\nwant %v", got, want)
	}
	if got := dst.LastApplied(); got != 42 {
		t.Errorf("applied index after restore: got %d, want 42", got)
	}
	if p, n := dst.Counts(); p != 6 || n != 17 {
		t.Errorf("counts: got %d pools %d PEs, want 6 / 17", p, n)
	}
	// The replaced file holds the same, and nothing is left beside it.
	path := dst.Path()
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	re, err := store.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer re.Close()
	if got, want := contents(t, re), contents(t, src); !reflect.DeepEqual(got, want) || re.LastApplied() != 42 {
		t.Fatalf("reopened store differs (applied %d)", re.LastApplied())
	}
	checkOnly(t, filepath.Dir(path), "hs.db")
	dst = re
	// The restored store, written again, gives the same body.
	again := encode(t, dst)
	if !bytes.Equal(again, data) {
		t.Errorf("re-encoding the restored store gives other bytes")
	}
}

// Ensure an empty handlespace makes a valid snapshot that restores to an
// empty store.
func TestSnapshot_Empty(t *testing.T) {
	data := encode(t, openStore(t))
	m, err := snapshot.Verify(bytes.NewReader(data))
	if err != nil || m.Pools != 0 || m.PEs != 0 {
		t.Fatalf("got %+v, %v; want 0 pools, 0 PEs, no error", m, err)
	}
	dst := openStore(t)
	fill(t, dst)
	if _, err := snapshot.Restore(bytes.NewReader(data), dst); err != nil {
		t.Fatal(err)
	}
	if p, n := dst.Counts(); p != 0 || n != 0 {
		t.Errorf("after restoring an empty snapshot: %d pools, %d PEs", p, n)
	}
}

// Ensure the Writer refuses PEs out of the store's order or mixing a
// pool's policy.
func TestSnapshotWriter_Order(t *testing.T) {
	rr := asap.Policy{Type: asap.PolicyRoundRobin}
	cases := []struct {
		name string
		pes  []store.PE
	}{
		{"pool order", []store.PE{{Handle: "bb", Element: element(1, rr, 0)}, {Handle: "aa", Element: element(1, rr, 0)}}},
		{"shorter handle after longer", []store.PE{{Handle: "bb", Element: element(1, rr, 0)}, {Handle: "z", Element: element(1, rr, 0)}}},
		{"pool repeated", []store.PE{{Handle: "a", Element: element(1, rr, 0)}, {Handle: "b", Element: element(1, rr, 0)}, {Handle: "a", Element: element(2, rr, 0)}}},
		{"ID order", []store.PE{{Handle: "a", Element: element(2, rr, 0)}, {Handle: "a", Element: element(1, rr, 0)}}},
		{"ID repeated", []store.PE{{Handle: "a", Element: element(2, rr, 0)}, {Handle: "a", Element: element(2, rr, 0)}}},
		{"ID zero", []store.PE{{Handle: "a", Element: element(0, rr, 0)}}},
		{"policy mix", []store.PE{{Handle: "a", Element: element(1, rr, 0)}, {Handle: "a", Element: element(2, asap.Policy{Type: asap.PolicyRandom}, 0)}}},
		{"transport mix", []store.PE{{Handle: "a", Element: element(1, rr, 0)}, {Handle: "a", Element: element(2, rr, 2)}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w, err := snapshot.NewWriter(io.Discard, snapshot.Meta{})
			if err != nil {
				t.Fatal(err)
			}
			var last error
			for _, pe := range c.pes {
				last = w.Add(pe)
			}
			if last == nil {
				t.Fatal("got no error, want the last Add refused")
			}
			if _, err := w.Close(); err == nil {
				t.Error("Close after a refused Add: got no error")
			}
		})
	}
}

// Ensure that one flipped byte anywhere (header, metadata, body, trailer)
// gives a format error from Verify and leaves a store that Restore is
// given unchanged.
func TestSnapshotReader_FlippedByte(t *testing.T) {
	src := openStore(t)
	fill(t, src)
	data := encode(t, src)
	dst := openStore(t)
	if _, err := dst.Apply(9, []store.Op{{Kind: store.OpRegister, PE: store.PE{Handle: "keep", Element: element(9, asap.Policy{Type: asap.PolicyRandom}, 0), Registered: 1}}}); err != nil {
		t.Fatal(err)
	}
	before := contents(t, dst)
	kinds := map[error]int{}
	for pos := range data {
		for _, mask := range []byte{0x01, 0x80} {
			bad := bytes.Clone(data)
			bad[pos] ^= mask
			_, err := snapshot.Verify(bytes.NewReader(bad))
			if !snapshot.IsFormatError(err) {
				t.Fatalf("byte %d ^ %#x: got %v, want a format error", pos, mask, err)
			}
			for _, e := range []error{snapshot.ErrNotSnapshot, snapshot.ErrVersion, snapshot.ErrCorrupt, snapshot.ErrTruncated} {
				if errors.Is(err, e) {
					kinds[e]++
				}
			}
			if pos%7 == 0 || pos < 64 || pos >= len(data)-64 {
				if _, err := snapshot.Restore(bytes.NewReader(bad), dst); err == nil {
					t.Fatalf("byte %d ^ %#x: restore succeeded", pos, mask)
				}
				if got := contents(t, dst); !reflect.DeepEqual(got, before) {
					t.Fatalf("byte %d ^ %#x: the failed restore changed the store", pos, mask)
				}
				if dst.LastApplied() != 9 {
					t.Fatalf("byte %d ^ %#x: the failed restore changed the applied index to %d", pos, mask, dst.LastApplied())
				}
			}
		}
	}
	t.Logf("%d bytes, 2 flips each: %v", len(data), kinds)
}

// Ensure every truncation gives ErrTruncated (or ErrNotSnapshot when too
// little is left to tell), and data appended after the trailer is refused.
func TestSnapshotReader_Truncated(t *testing.T) {
	src := openStore(t)
	fill(t, src)
	data := encode(t, src)
	for n := 0; n < len(data); n++ {
		_, err := snapshot.Verify(bytes.NewReader(data[:n]))
		switch {
		case n < 8 && errors.Is(err, snapshot.ErrNotSnapshot):
		case errors.Is(err, snapshot.ErrTruncated):
		default:
			t.Fatalf("first %d of %d bytes: got %v, want ErrTruncated", n, len(data), err)
		}
	}
	_, err := snapshot.Verify(bytes.NewReader(append(bytes.Clone(data), 0)))
	if !errors.Is(err, snapshot.ErrCorrupt) || !strings.Contains(err.Error(), "after the trailer") {
		t.Errorf("trailing byte: got %v, want ErrCorrupt (data after the trailer)", err)
	}
}

// Ensure files that are no snapshot, and snapshots of another format
// version, are refused with a clear error.
func TestSnapshotReader_NotSnapshotAndVersion(t *testing.T) {
	src := openStore(t)
	fill(t, src)
	data := encode(t, src)
	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, snapshot.ErrNotSnapshot},
		{"text", []byte("hello, this is a text file\n"), snapshot.ErrNotSnapshot},
		{"json", []byte(`{"format_version":1}`), snapshot.ErrNotSnapshot},
		{"bbolt file", mustRead(t, src.Path()), snapshot.ErrNotSnapshot},
		{"version 2", withVersion(data, 2), snapshot.ErrVersion},
		{"version 0", withVersion(data, 0), snapshot.ErrVersion},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := snapshot.Verify(bytes.NewReader(c.data))
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	// Metadata claiming another version than the header.
	m := rebuild(t, data, func(meta []byte) []byte {
		return bytes.Replace(meta, []byte(`"format_version":1`), []byte(`"format_version":2`), 1)
	}, nil)
	if _, err := snapshot.Verify(bytes.NewReader(m)); !errors.Is(err, snapshot.ErrCorrupt) {
		t.Errorf("metadata version 2: got %v, want ErrCorrupt", err)
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func withVersion(data []byte, v uint16) []byte {
	b := bytes.Clone(data)
	binary.BigEndian.PutUint16(b[8:], v)
	return b
}

// rebuild re-assembles a snapshot with edited metadata and body, and a
// correct trailer (counts from the original), so only the edit is wrong.
func rebuild(t testing.TB, data []byte, editMeta func([]byte) []byte, editBody func([]byte) []byte) []byte {
	t.Helper()
	mlen := int(binary.BigEndian.Uint32(data[10:]))
	meta := bytes.Clone(data[14 : 14+mlen])
	body := bytes.Clone(data[14+mlen : len(data)-snapshot.TrailerSize])
	counts := data[len(data)-snapshot.TrailerSize+8 : len(data)-32]
	if editMeta != nil {
		meta = editMeta(meta)
	}
	if editBody != nil {
		body = editBody(body)
	}
	var out []byte
	out = append(out, data[:10]...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(meta)))
	out = append(out, meta...)
	out = append(out, body...)
	out = append(out, "RSPSEND\x00"...)
	out = append(out, counts...)
	sum := sha256.Sum256(out)
	return append(out, sum[:]...)
}

// Ensure optional parameters of a later writer (upper type bit set) are
// skipped and other unknown ones refused, even with a matching checksum.
func TestSnapshotReader_UnknownParameters(t *testing.T) {
	src := openStore(t)
	fill(t, src)
	data := encode(t, src)
	insert := func(typ uint16) []byte {
		return rebuild(t, data, nil, func(body []byte) []byte {
			p := binary.BigEndian.AppendUint16(nil, typ)
			p = binary.BigEndian.AppendUint16(p, 6)
			p = append(p, 'x', 'y', 0, 0)
			// after the first pool handle parameter
			l := int(binary.BigEndian.Uint16(body[2:]))
			at := (l + 3) &^ 3
			return append(append(append([]byte(nil), body[:at]...), p...), body[at:]...)
		})
	}
	if m, err := snapshot.Verify(bytes.NewReader(insert(0x8123))); err != nil || m.PEs != 17 {
		t.Errorf("optional parameter 0x8123: got %+v, %v; want it skipped", m, err)
	}
	if _, err := snapshot.Verify(bytes.NewReader(insert(0x0123))); !errors.Is(err, snapshot.ErrCorrupt) {
		t.Errorf("unknown parameter 0x0123: got %v, want ErrCorrupt", err)
	}
}

// Ensure a snapshot whose checksum matches but whose PE the store cannot
// hold (an unknown policy) fails to restore and changes nothing.
func TestSnapshotRestore_RefusedPEChangesNothing(t *testing.T) {
	src := openStore(t)
	fill(t, src)
	data := encode(t, src)
	// Rewrite the policy type of the last PE of pool "EchoPool" (round
	// robin) in its pool element: find the policy parameter bytes.
	pol, _ := asap.AppendPolicy(nil, &asap.Policy{Type: asap.PolicyRoundRobin})
	bad := rebuild(t, data, nil, func(body []byte) []byte {
		i := bytes.Index(body, pol)
		if i < 0 {
			t.Fatal("policy parameter not found")
		}
		// All PEs of the pool must change, or the reader's pool check
		// refuses first: change every occurrence.
		return bytes.ReplaceAll(body, pol, append(pol[:4:4], 0x7F, 0, 0, 0x99))
	})
	if _, err := snapshot.Verify(bytes.NewReader(bad)); err != nil {
		t.Fatalf("crafted snapshot should verify (the format allows any policy): %v", err)
	}
	dst := openStore(t)
	fill(t, dst)
	if _, err := dst.Apply(50, []store.Op{{Kind: store.OpDeregister, PE: store.PE{Handle: "lu", Element: asap.PoolElement{ID: 200}}}}); err != nil {
		t.Fatal(err)
	}
	before := contents(t, dst)
	_, err := snapshot.Restore(bytes.NewReader(bad), dst)
	if err == nil {
		t.Fatal("restore of a PE with an unsupported policy succeeded")
	}
	t.Logf("error: %v", err)
	if got := contents(t, dst); !reflect.DeepEqual(got, before) {
		t.Fatal("the refused restore changed the store")
	}
	if p, n := dst.Counts(); p != 6 || n != 16 {
		t.Errorf("in-memory counts after the refused restore: %d / %d, want 6 / 16", p, n)
	}
	if dst.LastApplied() != 50 {
		t.Errorf("applied index: got %d, want 50", dst.LastApplied())
	}
}

// Ensure Rewrap changes the metadata (RaftIndex 0 for raft.Restore) and
// gives a snapshot that verifies with the same PEs and exact length.
func TestSnapshotRewrap(t *testing.T) {
	src := openStore(t)
	fill(t, src)
	data := encode(t, src)
	r, n, err := snapshot.Rewrap(bytes.NewReader(data), int64(len(data)), func(m *snapshot.Meta) { m.RaftIndex = 0; m.Build = "rewrapped" })
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(out)) != n {
		t.Fatalf("Rewrap said %d bytes, gave %d", n, len(out))
	}
	m, err := snapshot.Verify(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if m.RaftIndex != 0 || m.Build != "rewrapped" || m.PEs != 17 || m.RegistrarID != 7 {
		t.Errorf("rewrapped meta: %+v", m)
	}
	dst := openStore(t)
	if _, err := dst.Apply(77, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := snapshot.Restore(bytes.NewReader(out), dst); err != nil {
		t.Fatal(err)
	}
	if dst.LastApplied() != 77 {
		t.Errorf("restoring RaftIndex 0 changed the applied index to %d", dst.LastApplied())
	}
	if !reflect.DeepEqual(contents(t, dst), contents(t, src)) {
		t.Error("rewrapped snapshot restores another handlespace")
	}
}

// Ensure Summarize lists the pools with their policy and PE count.
func TestSnapshotSummarize(t *testing.T) {
	src := openStore(t)
	fill(t, src)
	s, err := snapshot.Summarize(bytes.NewReader(encode(t, src)), nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range s.Pools {
		h, _ := p.Handle.MarshalText()
		got = append(got, fmt.Sprintf("%s:%s:%s:%d", h, p.Policy, p.Transport, p.PEs))
	}
	want := []string{"lu:lu:sctp:3", "wrr:wrr:udp:4", "0x0001feff:rand:sctp:1", "prio:pri:tcp:2", "EchoPool:rr:tcp:5",
		strings.Repeat("h", 200) + ":wrand:udp:2"}
	if !reflect.DeepEqual(got, want) || s.Meta.PEs != 17 || s.Meta.Pools != 6 {
		t.Errorf("summary:\n got %v\nwant %v\nmeta %+v", got, want, s.Meta)
	}
}

// ---- saving files ----

// Ensure WriteFile writes atomically and verifies what it wrote.
func TestSnapshotWriteFile(t *testing.T) {
	src := openStore(t)
	fill(t, src)
	data := encode(t, src)
	dir := t.TempDir()
	path := filepath.Join(dir, "backup.snap")

	m, err := snapshot.WriteFile(nil, path, func(w io.Writer) error { _, err := w.Write(data); return err })
	if err != nil {
		t.Fatal(err)
	}
	if m.PEs != 17 {
		t.Errorf("meta PEs: got %d, want 17", m.PEs)
	}
	if !bytes.Equal(mustRead(t, path), data) {
		t.Error("file content differs")
	}
	if _, err := snapshot.VerifyFile(path); err != nil {
		t.Error(err)
	}

	// A stream that does not verify never replaces the old file.
	bad := bytes.Clone(data)
	bad[len(bad)/2] ^= 0x10
	_, err = snapshot.WriteFile(nil, path, func(w io.Writer) error { _, err := w.Write(bad); return err })
	if !errors.Is(err, snapshot.ErrCorrupt) || !strings.Contains(err.Error(), path) {
		t.Errorf("corrupt stream: got %v, want ErrCorrupt naming %s", err, path)
	}
	checkOnly(t, dir, "backup.snap")
	if !bytes.Equal(mustRead(t, path), data) {
		t.Error("a failed save changed the old file")
	}

	// A failing source: same.
	_, err = snapshot.WriteFile(nil, path, func(w io.Writer) error {
		w.Write(data[:100])
		return errors.New("connection reset")
	})
	if err == nil || !strings.Contains(err.Error(), "connection reset") {
		t.Errorf("failing source: got %v", err)
	}
	checkOnly(t, dir, "backup.snap")
	if !bytes.Equal(mustRead(t, path), data) {
		t.Error("a failed save changed the old file")
	}
}

// checkOnly fails unless dir holds exactly the named files.
func checkOnly(t testing.TB, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if !reflect.DeepEqual(got, names) {
		t.Errorf("directory holds %v, want %v", got, names)
	}
}

// fullFS is the OS file system on which writes fail with ENOSPC after
// limit bytes (a full disk).
type fullFS struct {
	snapshot.FS
	limit int
}

type fullFile struct {
	*os.File
	left int
}

func (f *fullFS) CreateTemp(dir, pattern string) (snapshot.File, error) {
	file, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return &fullFile{File: file, left: f.limit}, nil
}

func (f *fullFile) Write(p []byte) (int, error) {
	if len(p) > f.left {
		n, _ := f.File.Write(p[:f.left])
		f.left = 0
		return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	f.left -= len(p)
	return f.File.Write(p)
}

// Ensure a full disk gives a clear error, removes the temporary file and
// leaves the old file unchanged.
func TestSnapshotWriteFile_DiskFull(t *testing.T) {
	src := openStore(t)
	fill(t, src)
	data := encode(t, src)
	for _, limit := range []int{0, 10, len(data) / 2, len(data) - 1} {
		dir := t.TempDir()
		path := filepath.Join(dir, "backup.snap")
		old := []byte("the previous backup")
		if err := os.WriteFile(path, old, 0o600); err != nil {
			t.Fatal(err)
		}
		fsys := &fullFS{FS: snapshot.OS(), limit: limit}
		_, err := snapshot.WriteFile(fsys, path, func(w io.Writer) error {
			return src.View(func(v *store.ReadView) error {
				_, err := snapshot.WriteView(w, v, snapshot.Meta{RegistrarID: 7, Build: "test", RaftTerm: 3, Created: created})
				return err
			})
		})
		if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), path) {
			t.Errorf("limit %d: got %v, want ENOSPC naming %s", limit, err, path)
		}
		checkOnly(t, dir, "backup.snap")
		if !bytes.Equal(mustRead(t, path), old) {
			t.Errorf("limit %d: the old file changed", limit)
		}
	}
}

// Ensure the same on a real full file system: a 64 KiB tmpfs (root only).
func TestSnapshotWriteFile_DiskFullTmpfs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, 0) })
	path := filepath.Join(dir, "backup.snap")
	old := []byte("the previous backup")
	if err := os.WriteFile(path, old, 0o600); err != nil {
		t.Fatal(err)
	}
	st := openStore(t)
	var ops []store.Op
	for i := 1; i <= 3000; i++ { // about 200 KB of snapshot
		ops = append(ops, store.Op{Kind: store.OpRegister, PE: store.PE{Handle: "big", Element: element(uint32(i), asap.Policy{Type: asap.PolicyRoundRobin}, 1)}})
	}
	if _, err := st.Apply(1, ops); err != nil {
		t.Fatal(err)
	}
	_, err := snapshot.WriteFile(nil, path, func(w io.Writer) error {
		return st.View(func(v *store.ReadView) error { _, err := snapshot.WriteView(w, v, snapshot.Meta{}); return err })
	})
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), path) {
		t.Fatalf("got %v, want ENOSPC naming %s", err, path)
	}
	t.Logf("error: %v", err)
	checkOnly(t, dir, "backup.snap")
	if !bytes.Equal(mustRead(t, path), old) {
		t.Error("the old file changed")
	}
}

// Ensure VerifyFile names the file in its errors.
func TestSnapshotVerifyFile_NamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(path, []byte("not a snapshot"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := snapshot.VerifyFile(path)
	if !errors.Is(err, snapshot.ErrNotSnapshot) || !strings.Contains(err.Error(), path) {
		t.Errorf("got %v", err)
	}
	_, err = snapshot.VerifyFile(path + ".missing")
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), path+".missing") {
		t.Errorf("missing file: got %v", err)
	}
}

// Ensure AddEncoded writes the same bytes as Add, and refuses a
// malformed parameter or a PE out of order.
func TestSnapshotWriter_AddEncoded(t *testing.T) {
	rr := asap.Policy{Type: asap.PolicyRoundRobin}
	var a, b bytes.Buffer
	wa, _ := snapshot.NewWriter(&a, snapshot.Meta{Created: created})
	wb, _ := snapshot.NewWriter(&b, snapshot.Meta{Created: created})
	for i, h := range []asap.PoolHandle{"a", "a", "bb"} {
		el := element(uint32(10+i), rr, 1)
		if err := wa.Add(store.PE{Handle: h, Element: el, Registered: int64(i)}); err != nil {
			t.Fatal(err)
		}
		enc, _ := asap.AppendPoolElement(nil, &el)
		if err := wb.AddEncoded(h, int64(i), enc); err != nil {
			t.Fatal(err)
		}
	}
	wa.Close()
	wb.Close()
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("AddEncoded and Add wrote different bytes")
	}
	w, _ := snapshot.NewWriter(io.Discard, snapshot.Meta{})
	if err := w.AddEncoded("a", 0, []byte{0, 9, 0, 4}); err == nil {
		t.Error("malformed parameter accepted")
	}
	w, _ = snapshot.NewWriter(io.Discard, snapshot.Meta{})
	enc, _ := asap.AppendPoolElement(nil, &asap.PoolElement{ID: 5, Policy: rr, User: element(5, rr, 0).User})
	w.AddEncoded("a", 0, enc)
	if err := w.AddEncoded("a", 0, enc); err == nil {
		t.Error("repeated PE identifier accepted")
	}
}
