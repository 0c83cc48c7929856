package raftlog

import (
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/rserpool-go/registrar/store/internal/fileio"
)

// walFS is every file operation of the WAL. The OS is the only one in
// production; tests put a layer in between that injects failures (ENOSPC,
// EIO, short writes, failed syncs) or loses every byte not yet synced
// when they simulate a crash.
type walFS interface {
	// OpenFile opens a segment or the first-index file.
	OpenFile(name string, flag int, perm fs.FileMode) (walFile, error)
	ReadFile(name string) ([]byte, error)
	Remove(name string) error
	Rename(from, to string) error
	MkdirAll(dir string, perm fs.FileMode) error
	// Segments lists dir's *.wal files, sorted by name.
	Segments(dir string) ([]string, error)
	// SyncDir makes dir's entries (created, removed, renamed files)
	// durable.
	SyncDir(dir string) error
}

// walFile is an open segment.
type walFile interface {
	ReadAt(b []byte, off int64) (int, error)
	WriteAt(b []byte, off int64) (int, error)
	Truncate(size int64) error
	// Sync makes the file's content durable (fdatasync).
	Sync() error
	Size() (int64, error)
	Close() error
}

// osFS is walFS on the operating system's files.
type osFS struct{}

type osFile struct{ *os.File }

func (f osFile) Size() (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (osFS) OpenFile(name string, flag int, perm fs.FileMode) (walFile, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) ReadFile(name string) ([]byte, error)        { return os.ReadFile(name) }
func (osFS) Remove(name string) error                    { return os.Remove(name) }
func (osFS) Rename(from, to string) error                { return os.Rename(from, to) }
func (osFS) MkdirAll(dir string, perm fs.FileMode) error { return os.MkdirAll(dir, perm) }
func (osFS) SyncDir(dir string) error                    { return fileio.SyncDir(dir) }

func (osFS) Segments(dir string) ([]string, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	sort.Strings(names)
	return names, err
}
