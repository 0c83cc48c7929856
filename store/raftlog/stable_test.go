package raftlog

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// mustOpenStable opens the stable store at path; a cleanup checks the
// file's consistency and closes it.
func mustOpenStable(t testing.TB, path string, opts *StableOptions) *Stable {
	t.Helper()
	s, err := OpenStable(path, opts)
	if err != nil {
		t.Fatalf("OpenStable(%s): %v", path, err)
	}
	t.Cleanup(func() {
		err := s.db.View(func(tx *bolt.Tx) error {
			for err := range tx.Check() {
				return err
			}
			return nil
		})
		if err != nil && !errors.Is(err, berrors.ErrDatabaseNotOpen) {
			t.Errorf("stable store invariants: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestStable_Values(t *testing.T) {
	s := mustOpenStable(t, filepath.Join(t.TempDir(), "raft.db"), &StableOptions{NoSync: true})
	tests := []struct {
		name string
		key  string
		val  []byte
	}{
		{"raft vote candidate", "LastVoteCand", []byte("node-1")},
		{"binary value", "bin", []byte{0, 0xff, 0, 1}},
		{"empty value", "empty", []byte{}},
		{"nil value", "nil", nil},
		{"large value", "large", bytes.Repeat([]byte("v"), 100000)},
		{"binary key", "\x00\x01", []byte("k")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.Set([]byte(tt.key), tt.val); err != nil {
				t.Fatalf("Set: %v", err)
			}
			got, err := s.Get([]byte(tt.key))
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if !bytes.Equal(got, tt.val) || got == nil {
				t.Errorf("Get = %q (nil: %v), want %q as a non-nil slice", got, got == nil, tt.val)
			}
		})
	}

	t.Run("overwrite", func(t *testing.T) {
		for _, v := range []string{"a", "longer value", "b"} {
			if err := s.Set([]byte("k"), []byte(v)); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := s.Get([]byte("k")); err != nil || string(got) != "b" {
			t.Errorf("Get = %q, %v; want \"b\", nil", got, err)
		}
	})

	t.Run("Get returns a copy", func(t *testing.T) {
		if err := s.Set([]byte("c"), []byte("abc")); err != nil {
			t.Fatal(err)
		}
		got, _ := s.Get([]byte("c"))
		got[0] = 'X'
		if again, _ := s.Get([]byte("c")); string(again) != "abc" {
			t.Errorf("Get after changing the first result = %q, want \"abc\"", again)
		}
	})

	t.Run("uint64", func(t *testing.T) {
		for _, v := range []uint64{0, 1, 255, 1 << 40, math.MaxUint64} {
			if err := s.SetUint64([]byte("CurrentTerm"), v); err != nil {
				t.Fatal(err)
			}
			if got, err := s.GetUint64([]byte("CurrentTerm")); err != nil || got != v {
				t.Errorf("GetUint64 = %d, %v; want %d, nil", got, err, v)
			}
		}
	})

	t.Run("missing key", func(t *testing.T) {
		// "k" exists, so a cursor Seek for these lands next to it.
		for _, key := range []string{"missing", "j", "k\x00", "zzz"} {
			got, err := s.Get([]byte(key))
			if err == nil || err.Error() != "not found" || !errors.Is(err, ErrKeyNotFound) || len(got) != 0 {
				t.Errorf("Get(%q) = %q, %v; want empty, an error reading exactly \"not found\"", key, got, err)
			}
			n, err := s.GetUint64([]byte(key))
			if err == nil || err.Error() != "not found" || n != 0 {
				t.Errorf("GetUint64(%q) = %d, %v; want 0, an error reading exactly \"not found\"", key, n, err)
			}
		}
	})

	t.Run("GetUint64 of a value that is not 8 bytes", func(t *testing.T) {
		if err := s.Set([]byte("short"), []byte{1, 2, 3}); err != nil {
			t.Fatal(err)
		}
		if n, err := s.GetUint64([]byte("short")); err == nil || errors.Is(err, ErrKeyNotFound) {
			t.Errorf("GetUint64 = %d, %v; want a length error", n, err)
		}
	})

	t.Run("empty key", func(t *testing.T) {
		if err := s.Set(nil, []byte("v")); err == nil {
			t.Error("Set with an empty key succeeded, want an error")
		}
	})
}

// Ensure that the term and vote survive Close and reopen (with the
// default, synced options), that Close is idempotent, and that a closed
// store fails cleanly.
func TestStable_Persistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	s, err := OpenStable(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 9); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte("node-2")); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := s.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	if _, err := s.Get([]byte("CurrentTerm")); err == nil || errors.Is(err, ErrKeyNotFound) {
		t.Errorf("Get after Close = %v, want a closed-database error", err)
	}
	if err := s.Set([]byte("CurrentTerm"), []byte("x")); err == nil {
		t.Error("Set after Close succeeded")
	}

	s2 := mustOpenStable(t, path, nil)
	if v, err := s2.GetUint64([]byte("CurrentTerm")); err != nil || v != 9 {
		t.Errorf("GetUint64(CurrentTerm) after reopen = %d, %v; want 9", v, err)
	}
	if v, err := s2.Get([]byte("LastVoteCand")); err != nil || string(v) != "node-2" {
		t.Errorf("Get(LastVoteCand) after reopen = %q, %v; want \"node-2\"", v, err)
	}
}

// Ensure a raft.db written before the raft log moved to the WAL (its
// buckets "logs", "meta", "stable", the log emptied) opens with its term
// and vote, and one whose log bucket still holds entries is refused and
// left unchanged.
func TestStable_Open_PreWALFile(t *testing.T) {
	for _, entries := range []int{0, 3} {
		path := filepath.Join(t.TempDir(), "raft.db")
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(func(tx *bolt.Tx) error {
			for _, name := range []string{"logs", "meta", "stable"} {
				if _, err := tx.CreateBucket([]byte(name)); err != nil {
					return err
				}
			}
			for i := 1; i <= entries; i++ {
				if err := tx.Bucket([]byte("logs")).Put(binary.BigEndian.AppendUint64(nil, uint64(i)), []byte("entry")); err != nil {
					return err
				}
			}
			if err := tx.Bucket(metaBucket).Put(formatKey, binary.BigEndian.AppendUint64(nil, 1)); err != nil {
				return err
			}
			return tx.Bucket(stableBucket).Put([]byte("CurrentTerm"), binary.BigEndian.AppendUint64(nil, 4))
		})
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
		before, _ := os.ReadFile(path)
		s, err := OpenStable(path, &StableOptions{NoSync: true})
		if entries > 0 {
			if err == nil {
				s.Close()
				t.Fatal("a raft.db whose log bucket holds entries opened, want ErrStableLayout")
			}
			if !errors.Is(err, ErrStableLayout) || !strings.Contains(err.Error(), path) {
				t.Errorf("open = %v, want ErrStableLayout naming %s", err, path)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
				t.Error("the refused file changed")
			}
			continue
		}
		if err != nil {
			t.Fatalf("a raft.db of the pre-WAL layout with an empty log: %v", err)
		}
		if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 4 {
			t.Errorf("CurrentTerm = %d, %v; want 4", v, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStable_Open_Options(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		opts *StableOptions
		mode os.FileMode
	}{
		{"nil options", nil, 0o600},
		{"zero options", &StableOptions{}, 0o600},
		{"file mode", &StableOptions{FileMode: 0o640, NoSync: true}, 0o640},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("raft%d.db", i))
			s := mustOpenStable(t, path, tt.opts)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != tt.mode {
				t.Errorf("file mode %v, want %v", got, tt.mode)
			}
			if err := s.SetUint64([]byte("CurrentTerm"), 1); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Ensure that an existing empty file (as left by a crash during creation)
// becomes a new store.
func TestStable_Open_EmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s := mustOpenStable(t, path, &StableOptions{NoSync: true})
	if _, err := s.Get([]byte("CurrentTerm")); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("Get on the new store = %v, want ErrKeyNotFound", err)
	}
}

// stableCorruptFile describes a file that OpenStable must refuse.
type stableCorruptFile struct {
	name    string
	make    func(t *testing.T, path string) // creates the file at path
	wantErr error
}

// stableCorruptFiles lists the refused files. The bbolt-based ones are
// built with OpenStable or raw bbolt and then damaged.
func stableCorruptFiles() []stableCorruptFile {
	rng := rand.New(rand.NewPCG(1, 2))
	randomBytes := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	write := func(t *testing.T, path string, b []byte) {
		t.Helper()
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// goodStore builds a valid stable store with 1000 values of 256
	// bytes (a file of many pages) and returns its bytes.
	goodStore := func(t *testing.T) []byte {
		t.Helper()
		path := filepath.Join(t.TempDir(), "good.db")
		s, err := OpenStable(path, &StableOptions{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 1000 {
			if err := s.Set(fmt.Appendf(nil, "key-%04d", i), bytes.Repeat([]byte{byte(i)}, 256)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// rawBolt creates a bbolt file and runs fn in a write transaction.
	rawBolt := func(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
		t.Helper()
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(fn); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// stableLayout creates the stable store's buckets, then runs fn.
	stableLayout := func(fn func(tx *bolt.Tx) error) func(tx *bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			for _, name := range stableBuckets {
				if _, err := tx.CreateBucket([]byte(name)); err != nil {
					return err
				}
			}
			return fn(tx)
		}
	}
	version := func(v uint64) func(tx *bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			return tx.Bucket(metaBucket).Put(formatKey, binary.BigEndian.AppendUint64(nil, v))
		}
	}

	return []stableCorruptFile{
		{"plain text file", func(t *testing.T, p string) {
			write(t, p, []byte("# registrar config\nasap = 127.0.0.1:3863\n"))
		}, ErrStableNotBbolt},
		{"64 KiB of random bytes", func(t *testing.T, p string) { write(t, p, randomBytes(64<<10)) }, ErrStableNotBbolt},
		{"one byte", func(t *testing.T, p string) { write(t, p, []byte{0}) }, ErrStableNotBbolt},
		{"bbolt file truncated to 100 bytes", func(t *testing.T, p string) {
			write(t, p, goodStore(t)[:100])
		}, ErrStableNotBbolt},
		{"bbolt file truncated inside the second meta page", func(t *testing.T, p string) {
			write(t, p, goodStore(t)[:5000])
		}, nil}, // bbolt: "file size too small" or our length check
		{"bbolt file truncated after the meta pages", func(t *testing.T, p string) {
			write(t, p, goodStore(t)[:3*4096])
		}, ErrStableCorrupt},
		{"bbolt file truncated to half", func(t *testing.T, p string) {
			b := goodStore(t)
			write(t, p, b[:len(b)/2])
		}, ErrStableCorrupt},
		{"both meta pages overwritten", func(t *testing.T, p string) {
			b := goodStore(t)
			copy(b, randomBytes(2*4096))
			write(t, p, b)
		}, ErrStableNotBbolt},
		{"random pages behind valid meta pages", func(t *testing.T, p string) {
			b := goodStore(t)
			copy(b[2*4096:], randomBytes(len(b)-2*4096))
			write(t, p, b)
		}, nil}, // whatever bbolt makes of it, it must be an error, not a crash
		{"bbolt file of another application", func(t *testing.T, p string) {
			rawBolt(t, p, func(tx *bolt.Tx) error {
				b, err := tx.CreateBucket([]byte("pools"))
				if err != nil {
					return err
				}
				return b.Put([]byte("echo"), []byte("pe"))
			})
		}, ErrStableLayout},
		{"stable buckets plus an extra bucket", func(t *testing.T, p string) {
			rawBolt(t, p, stableLayout(func(tx *bolt.Tx) error {
				if err := version(1)(tx); err != nil {
					return err
				}
				_, err := tx.CreateBucket([]byte("zzz"))
				return err
			}))
		}, ErrStableLayout},
		{"stable buckets without a format version", func(t *testing.T, p string) {
			rawBolt(t, p, stableLayout(func(*bolt.Tx) error { return nil }))
		}, ErrStableLayout},
		{"format version 0", func(t *testing.T, p string) { rawBolt(t, p, stableLayout(version(0))) }, ErrStableLayout},
		{"newer format version", func(t *testing.T, p string) {
			rawBolt(t, p, stableLayout(version(StableFormatVersion+1)))
		}, ErrStableVersion},
	}
}

// Ensure that a file that is not a stable store is refused with an error
// naming the file, and is left exactly as it was.
func TestStable_Open_Corrupt(t *testing.T) {
	for _, tt := range stableCorruptFiles() {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "raft.db")
			tt.make(t, path)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}

			s, err := OpenStable(path, &StableOptions{Timeout: 100 * time.Millisecond})
			if err == nil {
				_ = s.Close()
				t.Fatal("OpenStable succeeded, want an error")
			}
			t.Logf("error: %v", err)
			if want := "open raft store " + path + ": "; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q does not start with %q", err, want)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %q is not %q", err, tt.wantErr)
			}
			if errors.Is(err, ErrStableLocked) {
				t.Errorf("error %q: the file was left locked", err)
			}

			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Errorf("file changed: %d bytes before, %d after", len(before), len(after))
			}
			// The refused file's lock is released: bbolt can open it
			// (read-only, so that nothing is written) without waiting.
			if db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 100 * time.Millisecond}); errors.Is(err, berrors.ErrTimeout) {
				t.Errorf("the file is still locked after the failed open")
			} else if err == nil {
				_ = db.Close()
			}
		})
	}
}

func TestStable_Open_Directory(t *testing.T) {
	dir := t.TempDir()
	_, err := OpenStable(dir, nil)
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("OpenStable(directory) = %v, want an error naming %s", err, dir)
	}
}

// Ensure that a second open of a store that is in use fails within the
// timeout instead of hanging, and succeeds once the first is closed.
func TestStable_Open_Locked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	first, err := OpenStable(path, &StableOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	for _, timeout := range []time.Duration{-1, 300 * time.Millisecond} {
		start := time.Now()
		s, err := OpenStable(path, &StableOptions{Timeout: timeout})
		elapsed := time.Since(start)
		if err == nil {
			_ = s.Close()
			t.Fatalf("second OpenStable succeeded, want ErrStableLocked")
		}
		if !errors.Is(err, ErrStableLocked) || !strings.Contains(err.Error(), path) {
			t.Errorf("second OpenStable = %v, want ErrStableLocked naming %s", err, path)
		}
		if elapsed > max(timeout, 0)+2*time.Second {
			t.Errorf("second OpenStable with timeout %v took %v", timeout, elapsed)
		}
		t.Logf("timeout %v: failed after %v: %v", timeout, elapsed.Round(time.Millisecond), err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	s := mustOpenStable(t, path, nil)
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 7 {
		t.Errorf("CurrentTerm after the first store closed = %d, %v; want 7", v, err)
	}
}

// stableLockHolderEnv makes the test binary, run as a child process by
// TestStable_Open_LockedByOtherProcess, hold the store named by its
// value until its standard input closes.
const stableLockHolderEnv = "STABLE_TEST_LOCK_HOLDER"

// Ensure that a store held by another process is reported as locked within
// the timeout.
func TestStable_Open_LockedByOtherProcess(t *testing.T) {
	if path := os.Getenv(stableLockHolderEnv); path != "" {
		s, err := OpenStable(path, &StableOptions{NoSync: true})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("locked")
		_, _ = io.Copy(io.Discard, os.Stdin)
		_ = s.Close()
		return
	}

	path := filepath.Join(t.TempDir(), "raft.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestStable_Open_LockedByOtherProcess$")
	cmd.Env = append(os.Environ(), stableLockHolderEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if line := sc.Text(); line == "locked" || strings.HasPrefix(line, "error:") {
				ready <- line
				break
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		close(ready)
	}()
	select {
	case line := <-ready:
		if line != "locked" {
			t.Fatalf("child process: %q", line)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("child process did not open the store")
	}

	start := time.Now()
	s, err := OpenStable(path, &StableOptions{Timeout: 300 * time.Millisecond})
	elapsed := time.Since(start)
	if err == nil {
		_ = s.Close()
		t.Fatal("OpenStable succeeded while another process holds the store")
	}
	if !errors.Is(err, ErrStableLocked) || !strings.Contains(err.Error(), path) {
		t.Errorf("OpenStable = %v, want ErrStableLocked naming %s", err, path)
	}
	if elapsed > 3*time.Second {
		t.Errorf("OpenStable took %v with a 300ms timeout", elapsed)
	}
	t.Logf("failed after %v: %v", elapsed.Round(time.Millisecond), err)

	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child process: %v", err)
	}
	s2 := mustOpenStable(t, path, nil)
	if _, err := s2.Get([]byte("CurrentTerm")); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("Get = %v, want ErrKeyNotFound (the child set nothing)", err)
	}
}
