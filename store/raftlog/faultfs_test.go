package raftlog

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// memFS is a walFS in memory for fault tests. It injects failures
// through fail (per operation: create, write, sync, truncate, remove,
// rename, syncdir), and crash makes it lose what a power cut loses: every
// byte not yet synced (an append keeps a random prefix of its unsynced
// bytes, as a torn write does) and every directory change (create,
// remove, rename) not yet made durable by SyncDir.
type memFS struct {
	mu      sync.Mutex
	rng     *rand.Rand
	names   map[string]*memNode // the directory as the process sees it
	durable map[string]*memNode // the directory as of the last SyncDir
	// fail, if set, returns the error to inject into op (nil: none).
	fail func(op string) error
	// short is set when a write fails after writing part of its bytes.
	short bool
}

type memNode struct {
	data   []byte // as the process sees it
	synced []byte // as the disk holds it
}

func newMemFS(seed uint64) *memFS {
	return &memFS{rng: rand.New(rand.NewPCG(seed, 3)), names: map[string]*memNode{}, durable: map[string]*memNode{}}
}

func (m *memFS) inject(op string) error {
	if m.fail == nil {
		return nil
	}
	return m.fail(op)
}

// crash loses what a power cut would lose; the WAL using m must be
// dropped (its files are stale).
func (m *memFS) crash() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.names = map[string]*memNode{}
	for name, n := range m.durable {
		if extra := len(n.data) - len(n.synced); extra > 0 && bytes.HasPrefix(n.data, n.synced) {
			n.synced = append(n.synced, n.data[len(n.synced):len(n.synced)+m.rng.IntN(extra+1)]...)
		}
		n.data = slices.Clone(n.synced)
		m.names[name] = n
	}
}

func (m *memFS) OpenFile(name string, flag int, _ fs.FileMode) (walFile, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.names[name]
	if n == nil {
		if flag&os.O_CREATE == 0 {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
		if err := m.inject("create"); err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		n = &memNode{}
		m.names[name] = n
	}
	if flag&os.O_TRUNC != 0 {
		n.data = nil
	}
	return &memFile{m: m, n: n, name: name}, nil
}

func (m *memFS) ReadFile(name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.names[name]
	if n == nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return slices.Clone(n.data), nil
}

func (m *memFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.names[name] == nil {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	if err := m.inject("remove"); err != nil {
		return &fs.PathError{Op: "remove", Path: name, Err: err}
	}
	delete(m.names, name)
	return nil
}

func (m *memFS) Rename(from, to string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.names[from]
	if n == nil {
		return &fs.PathError{Op: "rename", Path: from, Err: fs.ErrNotExist}
	}
	if err := m.inject("rename"); err != nil {
		return &fs.PathError{Op: "rename", Path: from, Err: err}
	}
	delete(m.names, from)
	m.names[to] = n
	return nil
}

func (m *memFS) MkdirAll(string, fs.FileMode) error { return nil }

func (m *memFS) Segments(dir string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for name := range m.names {
		if filepath.Dir(name) == filepath.Clean(dir) && strings.HasSuffix(name, ".wal") {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out, nil
}

func (m *memFS) SyncDir(string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.inject("syncdir"); err != nil {
		return err
	}
	m.durable = maps(m.names)
	return nil
}

func maps(in map[string]*memNode) map[string]*memNode {
	out := make(map[string]*memNode, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}

type memFile struct {
	m      *memFS
	n      *memNode
	name   string
	closed bool
}

var errFileClosed = errors.New("file already closed")

func (f *memFile) ReadAt(b []byte, off int64) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if f.closed {
		return 0, errFileClosed
	}
	if off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	n := copy(b, f.n.data[off:])
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) WriteAt(b []byte, off int64) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if f.closed {
		return 0, errFileClosed
	}
	n := len(b)
	err := f.m.inject("write")
	if err != nil {
		n = 0
		if f.m.short && len(b) > 1 {
			n = f.m.rng.IntN(len(b))
		}
	}
	if end := off + int64(n); end > int64(len(f.n.data)) {
		f.n.data = append(f.n.data, make([]byte, end-int64(len(f.n.data)))...)
	}
	copy(f.n.data[off:], b[:n])
	if err != nil {
		return n, &fs.PathError{Op: "write", Path: f.name, Err: err}
	}
	return n, nil
}

func (f *memFile) Truncate(size int64) error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if f.closed {
		return errFileClosed
	}
	if err := f.m.inject("truncate"); err != nil {
		return &fs.PathError{Op: "truncate", Path: f.name, Err: err}
	}
	if size <= int64(len(f.n.data)) {
		f.n.data = f.n.data[:size]
	} else {
		f.n.data = append(f.n.data, make([]byte, size-int64(len(f.n.data)))...)
	}
	return nil
}

func (f *memFile) Sync() error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if f.closed {
		return errFileClosed
	}
	if err := f.m.inject("sync"); err != nil {
		// A failed fsync may have written the data anyway, or not.
		if f.m.rng.IntN(2) == 0 {
			f.n.synced = slices.Clone(f.n.data)
		}
		return &fs.PathError{Op: "fsync", Path: f.name, Err: err}
	}
	f.n.synced = slices.Clone(f.n.data)
	return nil
}

func (f *memFile) Size() (int64, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	return int64(len(f.n.data)), nil
}

func (f *memFile) Close() error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	f.closed = true
	return nil
}
