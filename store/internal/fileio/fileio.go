// Package fileio holds what the handlespace file (package store) and the
// raft log (package raftlog) share about files: the storage-fault error
// that tells an operator which file could not be written and what to do,
// opening a bbolt file without trusting its content, and syncing a
// directory. Package store exports FaultError and ErrStorageFault under
// its own name; the raft log's faults are the same type.
package fileio

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"
)

// ErrStorageFault is wrapped by the error of a file that cannot be
// written (a full disk, an I/O error): FaultError.
var ErrStorageFault = errors.New("storage fault")

// FaultError describes a storage fault: a write, sync or rename of Path
// failed. It wraps ErrStorageFault and the I/O error (errors.Is(err,
// syscall.ENOSPC) works).
type FaultError struct {
	Path  string    // the file (or directory) that could not be written
	Op    string    // what failed: commit, rewrite, append, sync, truncate, set, ...
	Err   error     // the I/O error
	Since time.Time // when the fault began
}

// Error names the file, the operation, the error and what to do.
func (e *FaultError) Error() string {
	return fmt.Sprintf("storage fault: %s %s: %v (%s)", e.Op, e.Path, e.Err, e.Fix())
}

// Unwrap gives ErrStorageFault and the I/O error.
func (e *FaultError) Unwrap() []error { return []error{ErrStorageFault, e.Err} }

// Fix says what an operator can do about the fault.
func (e *FaultError) Fix() string { return faultFix(e.Err, filepath.Dir(e.Path)) }

// faultFix is the advice for an I/O error on a file in dir.
func faultFix(err error, dir string) string {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return "free space on the file system of " + dir + " or grow it; writes resume by themselves"
	case errors.Is(err, syscall.EROFS):
		return "the file system of " + dir + " is read-only: remount it read-write; writes resume by themselves"
	case errors.Is(err, os.ErrPermission):
		return "make " + dir + " writable by this user"
	case errors.Is(err, syscall.EIO):
		return "the disk under " + dir + " reports I/O errors: check the kernel log and the disk; if it does not recover, replace it and restore this registrar (docs/operations.md)"
	}
	return "check the file system of " + dir + " (kernel log, free space, permissions)"
}

// OpenFileFunc is bbolt's Options.OpenFile.
type OpenFileFunc = func(name string, flag int, perm fs.FileMode) (*os.File, error)

// GuardBolt runs open, which opens a bbolt file through the openFile it is
// given, and turns a bbolt panic or a memory fault on a damaged file into
// an error wrapping corrupt. bbolt's DB may be half-open after a panic
// (holding internal locks), so it is not closed: the file that openFile
// opened is closed instead, which drops its lock; the mapping leaks.
func GuardBolt(corrupt error, open func(openFile OpenFileFunc) error) (err error) {
	var file *os.File
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if file != nil {
				_ = file.Close()
			}
			err = fmt.Errorf("%w: bbolt failed reading it: %v", corrupt, r)
		}
	}()
	return open(func(name string, flag int, perm fs.FileMode) (*os.File, error) {
		f, err := os.OpenFile(name, flag, perm)
		if err == nil {
			file = f
		}
		return f, err
	})
}

// SyncDir makes dir's entries (created, removed, renamed files) durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
