package snapshot

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// FS is what saving a snapshot file needs from the file system. OS() is
// the real one; tests substitute one that fails (a full disk).
type FS interface {
	// CreateTemp creates a new file in dir (os.CreateTemp semantics).
	CreateTemp(dir, pattern string) (File, error)
	// Open opens a file for reading.
	Open(name string) (io.ReadCloser, error)
	// Rename replaces newpath with oldpath atomically (same directory).
	Rename(oldpath, newpath string) error
	// Remove removes a file.
	Remove(name string) error
	// SyncDir makes a rename in dir durable.
	SyncDir(dir string) error
}

// File is a file being written.
type File interface {
	io.Writer
	Name() string
	Sync() error
	Close() error
}

type osFS struct{}

// OS returns the operating system's file system.
func OS() FS { return osFS{} }

func (osFS) CreateTemp(dir, pattern string) (File, error) { return os.CreateTemp(dir, pattern) }
func (osFS) Open(name string) (io.ReadCloser, error)      { return os.Open(name) }
func (osFS) Rename(oldpath, newpath string) error         { return os.Rename(oldpath, newpath) }
func (osFS) Remove(name string) error                     { return os.Remove(name) }
func (osFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// WriteFile writes a snapshot file atomically: fill writes the snapshot
// stream into a new temporary file in path's directory, which is synced,
// read back and verified completely, and only then renamed over path. On
// any failure (fill's error, a full disk, a copy that does not verify) the
// temporary file is removed and path is left as it was. fsys nil means
// OS(). It returns the verified metadata.
func WriteFile(fsys FS, path string, fill func(w io.Writer) error) (Meta, error) {
	if fsys == nil {
		fsys = OS()
	}
	dir := filepath.Dir(path)
	f, err := fsys.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return Meta{}, fmt.Errorf("save snapshot %s: %w", path, err)
	}
	tmp := f.Name()
	open := true
	done := false
	defer func() {
		if done {
			return
		}
		if open {
			_ = f.Close()
		}
		_ = fsys.Remove(tmp)
	}()
	if err := fill(f); err != nil {
		return Meta{}, fmt.Errorf("save snapshot %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return Meta{}, fmt.Errorf("save snapshot %s: sync %s: %w", path, tmp, err)
	}
	open = false
	if err := f.Close(); err != nil {
		return Meta{}, fmt.Errorf("save snapshot %s: close %s: %w", path, tmp, err)
	}
	rc, err := fsys.Open(tmp)
	if err != nil {
		return Meta{}, fmt.Errorf("save snapshot %s: reopen %s to verify: %w", path, tmp, err)
	}
	meta, err := Verify(rc)
	rc.Close()
	if err != nil {
		return Meta{}, fmt.Errorf("save snapshot %s: the written copy does not verify: %w", path, err)
	}
	if err := fsys.Rename(tmp, path); err != nil {
		return Meta{}, fmt.Errorf("save snapshot %s: %w", path, err)
	}
	done = true
	if err := fsys.SyncDir(dir); err != nil {
		return meta, fmt.Errorf("save snapshot %s: sync directory: %w", path, err)
	}
	return meta, nil
}

// VerifyFile reads the snapshot file at path completely and returns its
// metadata; errors name the file.
func VerifyFile(path string) (Meta, error) {
	f, err := os.Open(path)
	if err != nil {
		return Meta{}, fmt.Errorf("snapshot %s: %w", path, err)
	}
	defer f.Close()
	m, err := Verify(f)
	if err != nil {
		return m, fmt.Errorf("snapshot %s: %w", path, err)
	}
	return m, nil
}

// Rewrap returns the snapshot of size bytes in src with its metadata
// changed by edit, as a stream of the returned length: the body is copied
// as it is, the header and the trailer's checksum are computed anew. src
// must have been verified (Rewrap checks the header and the trailer's
// place only). It serves raft.Restore, which needs RaftIndex 0 and the
// stream's exact length.
func Rewrap(src io.ReaderAt, size int64, edit func(*Meta)) (io.Reader, int64, error) {
	sec := io.NewSectionReader(src, 0, size)
	sr, err := NewReader(bufio.NewReaderSize(sec, 4096))
	if err != nil {
		return nil, 0, err
	}
	hdrLen := sr.Offset()
	bodyLen := size - hdrLen - TrailerSize
	if bodyLen < 0 {
		return nil, 0, fmt.Errorf("%w: %d bytes cannot hold a trailer", ErrTruncated, size)
	}
	tail := make([]byte, TrailerSize)
	if _, err := src.ReadAt(tail, size-TrailerSize); err != nil {
		return nil, 0, fmt.Errorf("read snapshot trailer: %w", err)
	}
	if !bytes.Equal(tail[:8], trailerMagic) {
		return nil, 0, fmt.Errorf("%w: no trailer at byte %d", ErrCorrupt, size-TrailerSize)
	}
	m := sr.Meta()
	if edit != nil {
		edit(&m)
	}
	hdr, err := encodeHeader(m)
	if err != nil {
		return nil, 0, err
	}
	h := sha256.New()
	h.Write(hdr)
	body := io.TeeReader(io.NewSectionReader(src, hdrLen, bodyLen), h)
	trailer := &lazyReader{fn: func() []byte {
		h.Write(tail[:24])
		return h.Sum(append([]byte(nil), tail[:24]...))
	}}
	total := int64(len(hdr)) + bodyLen + TrailerSize
	return io.MultiReader(bytes.NewReader(hdr), body, trailer), total, nil
}

// lazyReader reads the bytes fn returns, calling fn at the first Read.
type lazyReader struct {
	fn func() []byte
	r  *bytes.Reader
}

func (l *lazyReader) Read(p []byte) (int, error) {
	if l.r == nil {
		l.r = bytes.NewReader(l.fn())
	}
	return l.r.Read(p)
}

// IsFormatError reports whether err says the data is not a valid
// snapshot (as opposed to an I/O error).
func IsFormatError(err error) bool {
	return errors.Is(err, ErrNotSnapshot) || errors.Is(err, ErrVersion) || errors.Is(err, ErrCorrupt) || errors.Is(err, ErrTruncated)
}
