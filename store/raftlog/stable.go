package raftlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/rserpool-go/registrar/store/internal/fileio"
)

// Errors of the stable store. Errors from OpenStable are wrapped with the
// file name ("open raft store /x/raft.db: ..."), so use errors.Is.
var (
	// ErrKeyNotFound is returned by Stable.Get and Stable.GetUint64 for a
	// key that was never set. Its text is exactly "not found" because
	// hashicorp/raft recognises a missing stable-store key by comparing
	// err.Error() with that string; it is therefore returned unwrapped.
	ErrKeyNotFound = errors.New("not found")

	// ErrStableNotBbolt is returned by OpenStable when the file exists but
	// is not a bbolt database (no valid meta page).
	ErrStableNotBbolt = errors.New("not a bbolt database")

	// ErrStableCorrupt is returned by OpenStable when the file is a
	// damaged bbolt database, for example one that was truncated.
	ErrStableCorrupt = errors.New("corrupt database file")

	// ErrStableLayout is returned by OpenStable when the file is a bbolt
	// database that does not have the stable store's buckets, for example
	// the handlespace database opened by mistake.
	ErrStableLayout = errors.New("not a raft store")

	// ErrStableVersion is returned by OpenStable when the file was written
	// with a newer format version than this build understands.
	ErrStableVersion = errors.New("unsupported raft store format version")

	// ErrStableLocked is returned by OpenStable when another process (or
	// another open Stable in this process) holds the file's lock for
	// longer than StableOptions.Timeout.
	ErrStableLocked = errors.New("raft store is locked by another process")
)

// StableFormatVersion is the on-disk format version that OpenStable
// writes into a new file and the newest one it accepts. Bump it when the
// bucket layout changes incompatibly.
const StableFormatVersion = 1

// Defaults used by OpenStable for zero StableOptions fields.
const (
	// DefaultStableTimeout is how long OpenStable waits for the file lock
	// by default.
	DefaultStableTimeout = time.Second

	// DefaultStableFileMode is the permission of a newly created file.
	DefaultStableFileMode fs.FileMode = 0o600
)

// On-disk names. They are part of the file format: never rename them.
var (
	stableBucket = []byte("stable")
	metaBucket   = []byte("meta")
	formatKey    = []byte("format_version")
	// oldLogBucket held raft log entries in a pre-release version, before
	// the WAL; files written then still have it, empty.
	oldLogBucket = []byte("logs")

	// stableBuckets is the set of top-level buckets of a stable store, in
	// bbolt's (byte-wise sorted) iteration order.
	stableBuckets = []string{"meta", "stable"}
)

// StableOptions configures OpenStable. A nil *StableOptions and zero
// fields mean the defaults.
type StableOptions struct {
	// NoSync skips the fsync after every commit. A crash can then lose a
	// term or vote that raft believes durable, which breaks raft's
	// safety: use it only in tests and benchmarks. Default false.
	NoSync bool

	// FileMode is the permission given to the file when OpenStable creates
	// it. Default DefaultStableFileMode (0600).
	FileMode fs.FileMode

	// Timeout bounds how long OpenStable waits for the exclusive file lock
	// when another process holds it, before failing with ErrStableLocked.
	// Zero means DefaultStableTimeout (1 s); a negative value means fail
	// at once. There is no "wait forever".
	Timeout time.Duration

	// RetryWrite, if set, is called after a failed Set or SetUint64 (the
	// term and vote) with its error: true makes it wait (50 ms, doubling
	// up to 1 s) and try again, false returns the error. raft panics when
	// it cannot save its term, so a raft node retries. nil: return it.
	RetryWrite func(err error) bool

	// Logger receives the fault's state changes. Default: a null logger.
	Logger hclog.Logger
}

// withDefaults returns a copy of o (which may be nil) with zero fields set
// to their defaults.
func (o *StableOptions) withDefaults() StableOptions {
	var out StableOptions
	if o != nil {
		out = *o
	}
	if out.FileMode == 0 {
		out.FileMode = DefaultStableFileMode
	}
	if out.Timeout == 0 {
		out.Timeout = DefaultStableTimeout
	}
	if out.Logger == nil {
		out.Logger = hclog.NewNullLogger()
	}
	return out
}

// Stable is a hashicorp/raft StableStore (the current term, the vote)
// kept in a bbolt file, raft.db.
//
// # Layout
//
// The file has two top-level buckets:
//   - "stable": the StableStore keys and values as given;
//   - "meta": "format_version" = StableFormatVersion as a big-endian
//     uint64.
//
// A file written by a pre-release version may also have an empty "logs"
// bucket (the raft log lived there before the WAL); it is left alone.
//
// # Guarantees
//
// Every method runs in one bbolt transaction and all methods are safe for
// concurrent use. Returned byte slices are copies that stay valid after
// the transaction ends. After Close every method returns an error.
//
// # Caveats
//
// OpenStable checks the meta pages, the file length and the bucket
// layout, and turns a bbolt panic or memory fault while doing so into an
// error. It does not walk every page.
type Stable struct {
	db   *bolt.DB
	path string
	opts StableOptions

	fmu   sync.Mutex
	fault *fileio.FaultError

	closeOnce sync.Once
	closeErr  error
}

var _ raft.StableStore = (*Stable)(nil)

// OpenStable opens the stable store at path, creating the file and its
// buckets if the file does not exist, is empty, or is a bbolt database
// without buckets. Any other existing file is only ever written to after
// it has been recognised, read-only, as a stable store of a supported
// format version: a file that is not a bbolt database (ErrStableNotBbolt),
// is damaged (ErrStableCorrupt), has a foreign bucket layout
// (ErrStableLayout) or a newer version (ErrStableVersion) is left
// byte-for-byte unchanged and the error names the file. If the file is
// locked by another process for longer than opts.Timeout, the error is
// ErrStableLocked. A nil opts means the defaults.
func OpenStable(path string, opts *StableOptions) (*Stable, error) {
	o := opts.withDefaults()
	db, err := openStableBolt(path, o)
	if err != nil {
		return nil, fmt.Errorf("open raft store %s: %w", path, err)
	}
	return &Stable{db: db, path: path, opts: o}, nil
}

// openStableBolt opens and, if needed, initialises the bbolt file.
func openStableBolt(path string, o StableOptions) (*bolt.DB, error) {
	info, err := os.Stat(path)
	switch {
	case err == nil && info.Mode().IsRegular() && info.Size() > 0:
		// An existing, non-empty file: inspect it read-only before
		// opening it for writing, so nothing is ever written to a file
		// that turns out not to be ours.
		if err := checkStableFile(path, info.Size(), o); err != nil {
			return nil, err
		}
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}

	var db *bolt.DB
	err = fileio.GuardBolt(ErrStableCorrupt, func(openFile fileio.OpenFileFunc) error {
		var err error
		db, err = bolt.Open(path, o.FileMode, stableBoltOptions(o, false, openFile))
		if err != nil {
			return classifyOpenError(err, o.Timeout)
		}
		var empty bool
		err = db.View(func(tx *bolt.Tx) error {
			var err error
			empty, err = checkStableLayout(tx)
			return err
		})
		if err == nil && empty {
			err = db.Update(initStableLayout)
		}
		if err != nil {
			_ = db.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return db, nil
}

// checkStableFile opens an existing file read-only (shared lock, no
// writes) and checks that it is either an empty bbolt database or a
// stable store we can read.
func checkStableFile(path string, size int64, o StableOptions) error {
	return fileio.GuardBolt(ErrStableCorrupt, func(openFile fileio.OpenFileFunc) error {
		db, err := bolt.Open(path, o.FileMode, stableBoltOptions(o, true, openFile))
		if err != nil {
			return classifyOpenError(err, o.Timeout)
		}
		err = db.View(func(tx *bolt.Tx) error {
			// Before touching any page beyond the meta pages: bbolt
			// maps the file and would fault (SIGBUS) reading pages
			// that the meta page claims but the file no longer has.
			if want := tx.Size(); want > size {
				return fmt.Errorf("%w: file is %d bytes but its bbolt meta page describes %d bytes (truncated?)",
					ErrStableCorrupt, size, want)
			}
			_, err := checkStableLayout(tx)
			return err
		})
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		return err
	})
}

// stableBoltOptions returns the bbolt options for o, opening the file
// with openFile (from fileio.GuardBolt, which closes it if bbolt panics
// halfway through Open).
func stableBoltOptions(o StableOptions, readOnly bool, openFile fileio.OpenFileFunc) *bolt.Options {
	return &bolt.Options{
		Timeout:        o.Timeout,
		NoSync:         o.NoSync,
		ReadOnly:       readOnly,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
		OpenFile:       openFile,
	}
}

// classifyOpenError maps bbolt.Open errors to the stable store's errors.
func classifyOpenError(err error, timeout time.Duration) error {
	var pathErr *fs.PathError
	switch {
	case errors.Is(err, berrors.ErrTimeout) && timeout < 0:
		return fmt.Errorf("%w (not waiting): %w", ErrStableLocked, err)
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("%w (gave up after %s): %w", ErrStableLocked, timeout, err)
	case errors.As(err, &pathErr):
		// open, flock, mmap: a problem with the file system, not the file.
		return err
	default:
		// ErrInvalid, ErrVersionMismatch, ErrChecksum, "file size too
		// small": the meta pages do not describe a usable database.
		return fmt.Errorf("%w: %w", ErrStableNotBbolt, err)
	}
}

// checkStableLayout reports whether tx sees an empty database (empty =
// true, to be initialised) or a stable store of a supported version
// (empty = false). Anything else is an error.
func checkStableLayout(tx *bolt.Tx) (empty bool, err error) {
	var names []string
	err = tx.ForEach(func(name []byte, b *bolt.Bucket) error {
		if bytes.Equal(name, oldLogBucket) {
			if k, _ := b.Cursor().First(); k != nil {
				return fmt.Errorf("%w: bucket %q holds raft log entries of a pre-release version (the raft log is the WAL now)", ErrStableLayout, name)
			}
			return nil
		}
		names = append(names, string(name))
		return nil
	})
	if err != nil {
		return false, err
	}
	if len(names) == 0 {
		return true, nil
	}
	if !slices.Equal(names, stableBuckets) {
		return false, fmt.Errorf("%w: top-level buckets are %q, want %q", ErrStableLayout, names, stableBuckets)
	}
	v := tx.Bucket(metaBucket).Get(formatKey)
	if len(v) != 8 {
		return false, fmt.Errorf("%w: meta key %q is missing or not 8 bytes (%d bytes)", ErrStableLayout, formatKey, len(v))
	}
	switch version := binary.BigEndian.Uint64(v); {
	case version == 0:
		return false, fmt.Errorf("%w: format version is 0", ErrStableLayout)
	case version > StableFormatVersion:
		return false, fmt.Errorf("%w: file has version %d, this build reads versions up to %d",
			ErrStableVersion, version, StableFormatVersion)
	}
	return false, nil
}

// initStableLayout creates the buckets and the format version in an
// empty database. It re-checks emptiness inside the write transaction.
func initStableLayout(tx *bolt.Tx) error {
	empty, err := checkStableLayout(tx)
	if err != nil || !empty {
		return err
	}
	for _, name := range stableBuckets {
		if _, err := tx.CreateBucket([]byte(name)); err != nil {
			return fmt.Errorf("create bucket %q: %w", name, err)
		}
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], StableFormatVersion)
	return tx.Bucket(metaBucket).Put(formatKey, v[:])
}

// Close closes the bbolt file and releases its lock. It waits for running
// transactions to finish. Close is idempotent: later calls return the
// result of the first.
func (s *Stable) Close() error {
	s.closeOnce.Do(func() {
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("close raft store %s: %w", s.path, err)
		}
	})
	return s.closeErr
}

// Set stores val under key, replacing any earlier value. key must not be
// empty. A failed write faults the store (Fault) and is retried as
// StableOptions.RetryWrite says. It implements raft.StableStore.
func (s *Stable) Set(key []byte, val []byte) error {
	wait := 50 * time.Millisecond
	for {
		err := s.db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(stableBucket).Put(key, val)
		})
		if err == nil {
			s.clearFault()
			return nil
		}
		err = fmt.Errorf("raft store %s: set %q: %w", s.path, key, s.setFault(err))
		if s.opts.RetryWrite == nil || !s.opts.RetryWrite(err) {
			return err
		}
		time.Sleep(wait)
		wait = min(2*wait, time.Second)
	}
}

// Fault returns the storage fault (a *store.FaultError) from a failed Set
// until one succeeds, or nil.
func (s *Stable) Fault() error {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	if s.fault == nil {
		return nil
	}
	return s.fault
}

func (s *Stable) setFault(err error) *fileio.FaultError {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	if s.fault == nil {
		s.fault = &fileio.FaultError{Path: s.path, Op: "set", Err: err, Since: time.Now()}
		s.opts.Logger.Error("raft term/vote write failed: raft waits until it can save them", "path", s.path,
			"error", err, "fix", s.fault.Fix())
	}
	return s.fault
}

func (s *Stable) clearFault() {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	if s.fault != nil {
		s.opts.Logger.Info("raft term/vote writes work again", "path", s.path, "fault-duration", time.Since(s.fault.Since).Round(time.Millisecond))
		s.fault = nil
	}
}

// Get returns a copy of the value stored under key. For a key that was
// never set it returns an empty slice and ErrKeyNotFound, whose text "not
// found" is what raft checks for. It implements raft.StableStore.
func (s *Stable) Get(key []byte) ([]byte, error) {
	var val []byte
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		k, v := tx.Bucket(stableBucket).Cursor().Seek(key)
		if k == nil || !bytes.Equal(k, key) {
			return nil
		}
		found = true
		val = bytes.Clone(v)
		if val == nil {
			val = []byte{}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("raft store %s: get %q: %w", s.path, key, err)
	}
	if !found {
		return nil, ErrKeyNotFound
	}
	return val, nil
}

// SetUint64 stores val under key as 8 big-endian bytes. It implements
// raft.StableStore.
func (s *Stable) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 returns the value stored under key by SetUint64. For a key
// that was never set it returns 0 and ErrKeyNotFound (see Get). A value
// that is not 8 bytes long is an error. It implements raft.StableStore.
func (s *Stable) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("raft store %s: get %q: value is %d bytes, want 8 for a uint64", s.path, key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}
