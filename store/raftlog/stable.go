package store

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
)

// Errors returned by RaftStore. Errors from OpenRaftStore are wrapped with
// the file name ("open raft store /x/raft.db: ..."), so use errors.Is.
var (
	// ErrRaftKeyNotFound is returned by RaftStore.Get and RaftStore.GetUint64
	// for a key that was never set. Its text is exactly "not found" because
	// hashicorp/raft recognises a missing stable-store key by comparing
	// err.Error() with that string; it is therefore returned unwrapped.
	ErrRaftKeyNotFound = errors.New("not found")

	// ErrRaftLogCorrupt is returned when a stored log entry cannot be decoded.
	// The wrapping error names the log index.
	ErrRaftLogCorrupt = errors.New("corrupt raft log entry")

	// ErrRaftStoreNotBbolt is returned by OpenRaftStore when the file exists
	// but is not a bbolt database (no valid meta page).
	ErrRaftStoreNotBbolt = errors.New("not a bbolt database")

	// ErrRaftStoreCorrupt is returned by OpenRaftStore when the file is a
	// damaged bbolt database, for example one that was truncated.
	ErrRaftStoreCorrupt = errors.New("corrupt database file")

	// ErrRaftStoreLayout is returned by OpenRaftStore when the file is a
	// bbolt database that does not have the raft store's buckets, for
	// example the handlespace database opened by mistake.
	ErrRaftStoreLayout = errors.New("not a raft store")

	// ErrRaftStoreVersion is returned by OpenRaftStore when the file was
	// written with a newer format version than this build understands.
	ErrRaftStoreVersion = errors.New("unsupported raft store format version")

	// ErrRaftStoreLocked is returned by OpenRaftStore when another process
	// (or another open RaftStore in this process) holds the file's lock for
	// longer than RaftStoreOptions.Timeout.
	ErrRaftStoreLocked = errors.New("raft store is locked by another process")
)

// RaftStoreFormatVersion is the on-disk format version that OpenRaftStore
// writes into a new file and the newest one it accepts. Bump it when the
// bucket layout or the log entry encoding changes incompatibly.
const RaftStoreFormatVersion = 1

// Defaults used by OpenRaftStore for zero RaftStoreOptions fields.
const (
	// DefaultRaftStoreTimeout is how long OpenRaftStore waits for the file
	// lock by default.
	DefaultRaftStoreTimeout = time.Second

	// DefaultRaftStoreFileMode is the permission of a newly created file.
	DefaultRaftStoreFileMode fs.FileMode = 0o600
)

// On-disk names. They are part of the file format: never rename them.
var (
	raftLogsBucket   = []byte("logs")
	raftStableBucket = []byte("stable")
	raftMetaBucket   = []byte("meta")
	raftFormatKey    = []byte("format_version")

	// raftBuckets is the complete set of top-level buckets of a raft store,
	// in bbolt's (byte-wise sorted) iteration order.
	raftBuckets = []string{"logs", "meta", "stable"}
)

// RaftStoreOptions configures OpenRaftStore. A nil *RaftStoreOptions and
// zero fields mean the defaults.
type RaftStoreOptions struct {
	// NoSync skips the fsync after every commit. A crash can then lose or
	// corrupt entries that raft believes are durable, which breaks raft's
	// safety: use it only in tests and benchmarks. Default false.
	NoSync bool

	// FileMode is the permission given to the file when OpenRaftStore
	// creates it. Default DefaultRaftStoreFileMode (0600).
	FileMode fs.FileMode

	// Timeout bounds how long OpenRaftStore waits for the exclusive file
	// lock when another process holds it, before failing with
	// ErrRaftStoreLocked. Zero means DefaultRaftStoreTimeout (1 s); a
	// negative value means fail at once. There is no "wait forever".
	Timeout time.Duration

	// RetryWrite, if set, is called after a failed Set or SetUint64 (the
	// term and vote) with its error: true makes it wait (50 ms, doubling
	// up to 1 s) and try again, false returns the error. raft panics when
	// it cannot save its term, so a raft node retries. nil: return it.
	RetryWrite func(err error) bool

	// Logger receives the fault's state changes. Default: a null logger.
	Logger hclog.Logger
}

// withDefaults returns a copy of o (which may be nil) with zero fields set to
// their defaults.
func (o *RaftStoreOptions) withDefaults() RaftStoreOptions {
	var out RaftStoreOptions
	if o != nil {
		out = *o
	}
	if out.FileMode == 0 {
		out.FileMode = DefaultRaftStoreFileMode
	}
	if out.Timeout == 0 {
		out.Timeout = DefaultRaftStoreTimeout
	}
	if out.Logger == nil {
		out.Logger = hclog.NewNullLogger()
	}
	return out
}

// RaftStore is a hashicorp/raft LogStore and StableStore kept in a single
// bbolt file. It replaces hashicorp/raft-boltdb, which does not build with
// our dependency versions.
//
// # Layout
//
// The file has three top-level buckets and nothing else:
//   - "logs": key = log index as a big-endian uint64 (so cursor order is
//     index order), value = the entry in the encoding of appendRaftLog;
//   - "stable": the StableStore keys and values as given;
//   - "meta": "format_version" = RaftStoreFormatVersion as a big-endian
//     uint64.
//
// # Guarantees
//
// Every method runs in one bbolt transaction, so StoreLogs and DeleteRange
// are atomic, and all methods are safe for concurrent use. Returned byte
// slices are copies that stay valid after the transaction ends. After Close
// every method returns an error.
//
// # Gaps and raft.MonotonicLogStore
//
// RaftStore deliberately does not implement raft.MonotonicLogStore. That
// interface is for stores that cannot hold gaps between indexes; this one
// can (StoreLogs accepts any indexes, FirstIndex/LastIndex are simply the
// smallest and largest key). Without it, raft keeps its default behaviour
// after a snapshot restore or install: it relies on an index gap and
// compacts the log, keeping TrailingLogs entries for slow followers,
// instead of deleting the whole log in one large transaction. Both paths are
// correct; the default one is the one raft-boltdb users have always run.
//
// # Caveats
//
// OpenRaftStore checks the meta pages, the file length and the bucket
// layout, and turns a bbolt panic or memory fault while doing so into an
// error. It does not walk every page: damage deep inside the log bucket
// shows up later, as ErrRaftLogCorrupt from GetLog or as a bbolt panic.
type RaftStore struct {
	db   *bolt.DB
	path string
	opts RaftStoreOptions

	fmu   sync.Mutex
	fault *FaultError

	closeOnce sync.Once
	closeErr  error
}

// Compile-time checks that RaftStore satisfies raft's store interfaces.
var (
	_ raft.LogStore    = (*RaftStore)(nil)
	_ raft.StableStore = (*RaftStore)(nil)
)

// OpenRaftStore opens the raft store at path, creating the file and its
// buckets if the file does not exist, is empty, or is a bbolt database
// without buckets. Any other existing file is only ever written to after it
// has been recognised, read-only, as a raft store of a supported format
// version: a file that is not a bbolt database
// (ErrRaftStoreNotBbolt), is damaged (ErrRaftStoreCorrupt), has a foreign
// bucket layout (ErrRaftStoreLayout) or a newer version (ErrRaftStoreVersion)
// is left byte-for-byte unchanged and the error names the file. If the file
// is locked by another process for longer than opts.Timeout, the error is
// ErrRaftStoreLocked. A nil opts means the defaults.
func OpenRaftStore(path string, opts *RaftStoreOptions) (*RaftStore, error) {
	o := opts.withDefaults()
	db, err := openRaftBolt(path, o)
	if err != nil {
		return nil, fmt.Errorf("open raft store %s: %w", path, err)
	}
	return &RaftStore{db: db, path: path, opts: o}, nil
}

// openRaftBolt opens and, if needed, initialises the bbolt file.
func openRaftBolt(path string, o RaftStoreOptions) (*bolt.DB, error) {
	info, err := os.Stat(path)
	switch {
	case err == nil && info.Mode().IsRegular() && info.Size() > 0:
		// An existing, non-empty file: inspect it read-only before
		// opening it for writing, so nothing is ever written to a file
		// that turns out not to be ours.
		if err := checkRaftStoreFile(path, info.Size(), o); err != nil {
			return nil, err
		}
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}

	var db *bolt.DB
	err = guardBolt(ErrRaftStoreCorrupt, func(openFile openFileFunc) error {
		var err error
		db, err = bolt.Open(path, o.FileMode, raftBoltOptions(o, false, openFile))
		if err != nil {
			return raftClassifyOpenError(err, o.Timeout)
		}
		var empty bool
		err = db.View(func(tx *bolt.Tx) error {
			var err error
			empty, err = checkRaftLayout(tx)
			return err
		})
		if err == nil && empty {
			err = db.Update(initRaftLayout)
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

// checkRaftStoreFile opens an existing file read-only (shared lock, no
// writes) and checks that it is either an empty bbolt database or a raft
// store we can read.
func checkRaftStoreFile(path string, size int64, o RaftStoreOptions) error {
	return guardBolt(ErrRaftStoreCorrupt, func(openFile openFileFunc) error {
		db, err := bolt.Open(path, o.FileMode, raftBoltOptions(o, true, openFile))
		if err != nil {
			return raftClassifyOpenError(err, o.Timeout)
		}
		err = db.View(func(tx *bolt.Tx) error {
			// Before touching any page beyond the meta pages: bbolt
			// maps the file and would fault (SIGBUS) reading pages
			// that the meta page claims but the file no longer has.
			if want := tx.Size(); want > size {
				return fmt.Errorf("%w: file is %d bytes but its bbolt meta page describes %d bytes (truncated?)",
					ErrRaftStoreCorrupt, size, want)
			}
			_, err := checkRaftLayout(tx)
			return err
		})
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		return err
	})
}

// raftBoltOptions returns the bbolt options for o, opening the file with
// openFile (from guardBolt, which closes it if bbolt panics halfway
// through Open).
func raftBoltOptions(o RaftStoreOptions, readOnly bool, openFile openFileFunc) *bolt.Options {
	return &bolt.Options{
		Timeout:  o.Timeout,
		NoSync:   o.NoSync,
		ReadOnly: readOnly,
		// The freelist is rebuilt at open instead of written with every
		// commit: log compaction frees pages all the time, and each
		// StoreLogs would rewrite the list.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
		OpenFile:       openFile,
	}
}

// raftClassifyOpenError maps bbolt.Open errors to the raft store's errors.
func raftClassifyOpenError(err error, timeout time.Duration) error {
	var pathErr *fs.PathError
	switch {
	case errors.Is(err, berrors.ErrTimeout) && timeout < 0:
		return fmt.Errorf("%w (not waiting): %w", ErrRaftStoreLocked, err)
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("%w (gave up after %s): %w", ErrRaftStoreLocked, timeout, err)
	case errors.As(err, &pathErr):
		// open, flock, mmap: a problem with the file system, not the file.
		return err
	default:
		// ErrInvalid, ErrVersionMismatch, ErrChecksum, "file size too
		// small": the meta pages do not describe a usable database.
		return fmt.Errorf("%w: %w", ErrRaftStoreNotBbolt, err)
	}
}

// checkRaftLayout reports whether tx sees an empty database (empty = true,
// to be initialised) or a raft store of a supported version (empty = false).
// Anything else is an error.
func checkRaftLayout(tx *bolt.Tx) (empty bool, err error) {
	var names []string
	err = tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
		names = append(names, string(name))
		return nil
	})
	if err != nil {
		return false, err
	}
	if len(names) == 0 {
		return true, nil
	}
	if !slices.Equal(names, raftBuckets) {
		return false, fmt.Errorf("%w: top-level buckets are %q, want %q", ErrRaftStoreLayout, names, raftBuckets)
	}
	v := tx.Bucket(raftMetaBucket).Get(raftFormatKey)
	if len(v) != 8 {
		return false, fmt.Errorf("%w: meta key %q is missing or not 8 bytes (%d bytes)", ErrRaftStoreLayout, raftFormatKey, len(v))
	}
	switch version := binary.BigEndian.Uint64(v); {
	case version == 0:
		return false, fmt.Errorf("%w: format version is 0", ErrRaftStoreLayout)
	case version > RaftStoreFormatVersion:
		return false, fmt.Errorf("%w: file has version %d, this build reads versions up to %d",
			ErrRaftStoreVersion, version, RaftStoreFormatVersion)
	}
	return false, nil
}

// initRaftLayout creates the buckets and the format version in an empty
// database. It re-checks emptiness inside the write transaction.
func initRaftLayout(tx *bolt.Tx) error {
	empty, err := checkRaftLayout(tx)
	if err != nil || !empty {
		return err
	}
	for _, name := range raftBuckets {
		if _, err := tx.CreateBucket([]byte(name)); err != nil {
			return fmt.Errorf("create bucket %q: %w", name, err)
		}
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], RaftStoreFormatVersion)
	return tx.Bucket(raftMetaBucket).Put(raftFormatKey, v[:])
}

// Close closes the bbolt file and releases its lock. It waits for running
// transactions to finish. Close is idempotent: later calls return the
// result of the first.
func (s *RaftStore) Close() error {
	s.closeOnce.Do(func() {
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("close raft store %s: %w", s.path, err)
		}
	})
	return s.closeErr
}

// FirstIndex returns the lowest index in the log, or 0 if the log is empty.
// It implements raft.LogStore.
func (s *RaftStore) FirstIndex() (uint64, error) {
	return s.edgeIndex((*bolt.Cursor).First)
}

// LastIndex returns the highest index in the log, or 0 if the log is empty.
// It implements raft.LogStore.
func (s *RaftStore) LastIndex() (uint64, error) {
	return s.edgeIndex((*bolt.Cursor).Last)
}

// edgeIndex returns the index under the cursor after move (First or Last).
func (s *RaftStore) edgeIndex(move func(*bolt.Cursor) ([]byte, []byte)) (uint64, error) {
	var idx uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		k, _ := move(tx.Bucket(raftLogsBucket).Cursor())
		if k == nil {
			return nil
		}
		if len(k) != 8 {
			return fmt.Errorf("%w: log key %x is not 8 bytes", ErrRaftLogCorrupt, k)
		}
		idx = binary.BigEndian.Uint64(k)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("raft store %s: %w", s.path, err)
	}
	return idx, nil
}

// GetLog reads the entry at index into log. It returns raft.ErrLogNotFound
// (unwrapped, as raft compares it with ==) if there is no such entry, and an
// error wrapping ErrRaftLogCorrupt that names the index if the stored value
// cannot be decoded. Data and Extensions are fresh copies. It implements
// raft.LogStore.
func (s *RaftStore) GetLog(index uint64, log *raft.Log) error {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], index)
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(raftLogsBucket).Get(k[:])
		if v == nil {
			return nil
		}
		found = true
		return decodeRaftLog(v, index, log)
	})
	if err != nil {
		return fmt.Errorf("raft store %s: %w", s.path, err)
	}
	if !found {
		return raft.ErrLogNotFound
	}
	return nil
}

// StoreLog stores one entry, replacing any entry with the same index. It
// implements raft.LogStore.
func (s *RaftStore) StoreLog(log *raft.Log) error {
	return s.StoreLogs([]*raft.Log{log})
}

// StoreLogs stores a batch of entries in one bbolt transaction: either all
// of them are stored or, on error, none. Entries replace entries with the
// same index. A nil entry or an entry with index 0 (raft's indexes start at
// 1; 0 means "empty" to FirstIndex/LastIndex) fails the whole batch. It
// implements raft.LogStore.
func (s *RaftStore) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	// bbolt keeps references to keys and values until commit, so each
	// needs its own bytes; carve them all out of one allocation.
	size := 0
	for _, l := range logs {
		size += 8
		if l != nil {
			size += raftLogMaxSize(l)
		}
	}
	arena := make([]byte, 0, size)
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(raftLogsBucket)
		// raft appends at the tail (after deleting a conflicting tail,
		// if any), so pack pages full instead of bbolt's default half.
		b.FillPercent = 1.0
		for i, l := range logs {
			if l == nil {
				return fmt.Errorf("batch entry %d of %d is nil", i, len(logs))
			}
			if l.Index == 0 {
				return fmt.Errorf("batch entry %d of %d has index 0", i, len(logs))
			}
			start := len(arena)
			arena = binary.BigEndian.AppendUint64(arena, l.Index)
			key := arena[start:len(arena):len(arena)]
			start = len(arena)
			arena = appendRaftLog(arena, l)
			val := arena[start:len(arena):len(arena)]
			if err := b.Put(key, val); err != nil {
				return fmt.Errorf("put raft log %d: %w", l.Index, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("raft store %s: store logs: %w", s.path, err)
	}
	return nil
}

// DeleteRange deletes the entries with min <= index <= max in one bbolt
// transaction. Indexes that have no entry are ignored; min > max deletes
// nothing. Removing the whole log drops and recreates the bucket, which
// frees its pages without visiting every key. It implements raft.LogStore.
func (s *RaftStore) DeleteRange(min, max uint64) error {
	if min > max {
		return nil
	}
	var minKey [8]byte
	binary.BigEndian.PutUint64(minKey[:], min)
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(raftLogsBucket)
		c := b.Cursor()
		first, _ := c.First()
		if first == nil {
			return nil
		}
		last, _ := c.Last()
		if min <= binary.BigEndian.Uint64(first) && binary.BigEndian.Uint64(last) <= max {
			if err := tx.DeleteBucket(raftLogsBucket); err != nil {
				return err
			}
			_, err := tx.CreateBucket(raftLogsBucket)
			return err
		}
		// Seek past each deleted key rather than calling Next: a cursor
		// positioned on a node that Delete modified would skip the
		// following key. Seek to the deleted key, not to min: branch
		// keys are only updated at commit, so seeking to min would walk
		// every leaf emptied so far, making a large delete quadratic.
		var cur [8]byte
		for k, _ := c.Seek(minKey[:]); k != nil && binary.BigEndian.Uint64(k) <= max; k, _ = c.Seek(cur[:]) {
			copy(cur[:], k)
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("raft store %s: delete logs %d-%d: %w", s.path, min, max, err)
	}
	return nil
}

// Set stores val under key, replacing any earlier value. key must not be
// empty. A failed write faults the store (Fault) and is retried as
// RaftStoreOptions.RetryWrite says. It implements raft.StableStore.
func (s *RaftStore) Set(key []byte, val []byte) error {
	wait := 50 * time.Millisecond
	for {
		err := s.db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(raftStableBucket).Put(key, val)
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

// Fault returns the storage fault (a *FaultError) from a failed Set until
// one succeeds, or nil.
func (s *RaftStore) Fault() error {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	if s.fault == nil {
		return nil
	}
	return s.fault
}

func (s *RaftStore) setFault(err error) *FaultError {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	if s.fault == nil {
		s.fault = &FaultError{Path: s.path, Op: "set", Err: err, Since: time.Now()}
		s.opts.Logger.Error("raft term/vote write failed: raft waits until it can save them", "path", s.path,
			"error", err, "fix", s.fault.Fix())
	}
	return s.fault
}

func (s *RaftStore) clearFault() {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	if s.fault != nil {
		s.opts.Logger.Info("raft term/vote writes work again", "path", s.path, "fault-duration", time.Since(s.fault.Since).Round(time.Millisecond))
		s.fault = nil
	}
}

// Get returns a copy of the value stored under key. For a key that was
// never set it returns an empty slice and ErrRaftKeyNotFound, whose text
// "not found" is what raft checks for. It implements raft.StableStore.
func (s *RaftStore) Get(key []byte) ([]byte, error) {
	var val []byte
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		k, v := tx.Bucket(raftStableBucket).Cursor().Seek(key)
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
		return nil, ErrRaftKeyNotFound
	}
	return val, nil
}

// SetUint64 stores val under key as 8 big-endian bytes. It implements
// raft.StableStore.
func (s *RaftStore) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 returns the value stored under key by SetUint64. For a key that
// was never set it returns 0 and ErrRaftKeyNotFound (see Get). A value that
// is not 8 bytes long is an error. It implements raft.StableStore.
func (s *RaftStore) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("raft store %s: get %q: value is %d bytes, want 8 for a uint64", s.path, key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// Log entry encoding, version 1. All integers are unsigned varints
// (encoding/binary Uvarint) unless noted:
//
//	version     1 byte   raftLogEncodingV1
//	type        1 byte   raft.LogType
//	flags       1 byte   bit 0: AppendedAt follows; other bits must be 0
//	index       uvarint  must equal the key
//	term        uvarint
//	len(Data)   uvarint, then Data
//	len(Ext)    uvarint, then Extensions
//	if bit 0:   seconds since 1970 as a signed varint, then nanoseconds
//	            (0..999999999) as a uvarint
//
// Nothing may follow. Empty Data and Extensions decode as nil; a zero
// AppendedAt decodes as the zero time.Time; other times decode in
// time.Local, without a monotonic reading. To change the format, add a new
// version byte and keep decoding the old ones.
const (
	raftLogEncodingV1 byte = 1

	raftLogFlagAppendedAt byte = 1 << 0
	raftLogKnownFlags          = raftLogFlagAppendedAt
)

// raftLogMaxSize is an upper bound of len(appendRaftLog(nil, l)).
func raftLogMaxSize(l *raft.Log) int {
	return 3 + 6*binary.MaxVarintLen64 + len(l.Data) + len(l.Extensions)
}

// appendRaftLog appends the encoding of l to dst.
func appendRaftLog(dst []byte, l *raft.Log) []byte {
	var flags byte
	if !l.AppendedAt.IsZero() {
		flags |= raftLogFlagAppendedAt
	}
	dst = append(dst, raftLogEncodingV1, byte(l.Type), flags)
	dst = binary.AppendUvarint(dst, l.Index)
	dst = binary.AppendUvarint(dst, l.Term)
	dst = binary.AppendUvarint(dst, uint64(len(l.Data)))
	dst = append(dst, l.Data...)
	dst = binary.AppendUvarint(dst, uint64(len(l.Extensions)))
	dst = append(dst, l.Extensions...)
	if flags&raftLogFlagAppendedAt != 0 {
		dst = binary.AppendVarint(dst, l.AppendedAt.Unix())
		dst = binary.AppendUvarint(dst, uint64(l.AppendedAt.Nanosecond()))
	}
	return dst
}

// decodeRaftLog decodes b, the value stored under index, into l. It copies
// Data and Extensions out of b (which may be bbolt's memory). On error l is
// unchanged and the error wraps ErrRaftLogCorrupt and names the index.
func decodeRaftLog(b []byte, index uint64, l *raft.Log) error {
	return decodeRaftLogIn(raftLogDecoder{b: b}, index, l)
}

// decodeOwnedRaftLog is decodeRaftLog for a b that nothing else uses or
// changes (read from a file into a fresh buffer): Data and Extensions
// point into b instead of being copied.
func decodeOwnedRaftLog(b []byte, index uint64, l *raft.Log) error {
	return decodeRaftLogIn(raftLogDecoder{b: b, owned: true}, index, l)
}

func decodeRaftLogIn(d raftLogDecoder, index uint64, l *raft.Log) error {
	out, err := d.decode()
	if err == nil && out.Index != index {
		err = fmt.Errorf("entry says index %d", out.Index)
	}
	if err != nil {
		return fmt.Errorf("raft log index %d: %w: %w", index, ErrRaftLogCorrupt, err)
	}
	*l = out
	return nil
}

// raftLogDecoder reads the fields of one encoded entry in order.
type raftLogDecoder struct {
	b     []byte
	off   int
	owned bool // Data and Extensions may alias b
}

func (d *raftLogDecoder) decode() (raft.Log, error) {
	var l raft.Log
	if len(d.b) < 3 {
		return l, fmt.Errorf("%d bytes, want at least 3", len(d.b))
	}
	if v := d.b[0]; v != raftLogEncodingV1 {
		return l, fmt.Errorf("unknown encoding version %d", v)
	}
	l.Type = raft.LogType(d.b[1])
	flags := d.b[2]
	if flags&^raftLogKnownFlags != 0 {
		return l, fmt.Errorf("unknown flags %#02x", flags)
	}
	d.off = 3
	var err error
	if l.Index, err = d.uvarint("index"); err != nil {
		return l, err
	}
	if l.Term, err = d.uvarint("term"); err != nil {
		return l, err
	}
	dataLen, err := d.length("Data")
	if err != nil {
		return l, err
	}
	dataOff := d.off
	d.off += dataLen
	extLen, err := d.length("Extensions")
	if err != nil {
		return l, err
	}
	extOff := d.off
	d.off += extLen
	if flags&raftLogFlagAppendedAt != 0 {
		sec, n := binary.Varint(d.b[d.off:])
		if n <= 0 {
			return l, d.varintError("AppendedAt seconds", n)
		}
		d.off += n
		nsec, err := d.uvarint("AppendedAt nanoseconds")
		if err != nil {
			return l, err
		}
		if nsec >= uint64(time.Second) {
			return l, fmt.Errorf("AppendedAt nanoseconds %d out of range", nsec)
		}
		l.AppendedAt = time.Unix(sec, int64(nsec))
	}
	if d.off != len(d.b) {
		return l, fmt.Errorf("%d unexpected trailing bytes", len(d.b)-d.off)
	}
	if d.owned {
		if dataLen > 0 {
			l.Data = d.b[dataOff : dataOff+dataLen : dataOff+dataLen]
		}
		if extLen > 0 {
			l.Extensions = d.b[extOff : extOff+extLen : extOff+extLen]
		}
		return l, nil
	}
	// One allocation for both slices, copied out of bbolt's memory.
	if dataLen+extLen > 0 {
		buf := make([]byte, dataLen+extLen)
		copy(buf, d.b[dataOff:dataOff+dataLen])
		copy(buf[dataLen:], d.b[extOff:extOff+extLen])
		if dataLen > 0 {
			l.Data = buf[:dataLen:dataLen]
		}
		if extLen > 0 {
			l.Extensions = buf[dataLen:]
		}
	}
	return l, nil
}

// uvarint reads an unsigned varint field.
func (d *raftLogDecoder) uvarint(field string) (uint64, error) {
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		return 0, d.varintError(field, n)
	}
	d.off += n
	return v, nil
}

// length reads a length field and checks that that many bytes follow.
func (d *raftLogDecoder) length(field string) (int, error) {
	n, err := d.uvarint("length of " + field)
	if err != nil {
		return 0, err
	}
	if left := uint64(len(d.b) - d.off); n > left {
		return 0, fmt.Errorf("truncated %s: length %d, only %d bytes left", field, n, left)
	}
	return int(n), nil
}

// varintError describes a failed binary.Uvarint/Varint read (n <= 0).
func (d *raftLogDecoder) varintError(field string, n int) error {
	if n == 0 {
		return fmt.Errorf("truncated at %s (offset %d of %d)", field, d.off, len(d.b))
	}
	return fmt.Errorf("%s overflows 64 bits (offset %d)", field, d.off)
}
