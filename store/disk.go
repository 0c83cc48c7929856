package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
	"unsafe"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/store/internal/fileio"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// FormatVersion is the handlespace file format this build writes and the
// newest it reads. Bump it on an incompatible change of the layout below.
const FormatVersion = 1

// The file layout. These names and encodings are the file format.
var (
	// bucketPEs holds one key per PE: handle length (1 byte) | handle |
	// PE ID (4 bytes big-endian). bbolt orders keys byte-wise, so the
	// order is (handle length, handle bytes, ID): the order of Iterate,
	// Pools and ReadView.ForEach. The value is valueVersion (1 byte) |
	// Registered (8 bytes big-endian, unix ns) | the RFC 5354 Pool Element
	// parameter as written by asap.AppendPoolElement.
	bucketPEs = []byte("pes")
	// bucketMeta holds keyFormat (8 bytes big-endian FormatVersion) and
	// keyApplied (8 bytes big-endian last applied raft index).
	bucketMeta = []byte("meta")
	keyFormat  = []byte("format_version")
	keyApplied = []byte("applied_index")
)

// valueVersion is the first byte of every PE value.
const valueVersion = 1

// peKey encodes the bbolt key of a PE.
func peKey(h asap.PoolHandle, id uint32) []byte {
	k := make([]byte, 1+len(h)+4)
	k[0] = byte(len(h))
	copy(k[1:], h)
	binary.BigEndian.PutUint32(k[1+len(h):], id)
	return k
}

// peValue encodes the bbolt value of an entry.
func peValue(e *entry) []byte {
	enc := e.enc()
	v := make([]byte, 9+len(enc))
	v[0] = valueVersion
	binary.BigEndian.PutUint64(v[1:], uint64(e.reg))
	copy(v[9:], enc)
	return v
}

// bytesOf views a string's bytes without copying. The result must not be
// written to; the asap decoder only reads its input and copies what it
// returns.
func bytesOf(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// decodeElement decodes an encoded Pool Element parameter.
func decodeElement(enc string) (asap.PoolElement, error) {
	b := bytesOf(enc)
	d := asap.GetDecoder(b, nil, "store")
	r := d.Region(0, len(b))
	el, err := r.PoolElement()
	if err == nil {
		err = r.AtEnd()
	}
	d.Release()
	return el, err
}

// entryFromValue decodes and validates one record of the file (or of a
// batch log) into an entry and its pool metadata. The returned entry does
// not alias k or v.
func entryFromValue(k, v []byte) (asap.PoolHandle, entry, pmeta, error) {
	h, e, m, _, err := decodeRecord(k, v)
	return h, e, m, err
}

// decodeRecord is entryFromValue that also returns the decoded element.
func decodeRecord(k, v []byte) (h asap.PoolHandle, e entry, m pmeta, el asap.PoolElement, err error) {
	if len(k) < 6 || int(k[0]) != len(k)-5 || k[0] == 0 {
		return "", e, m, el, fmt.Errorf("malformed key %x", k)
	}
	h = asap.PoolHandle(k[1 : 1+k[0]])
	id := binary.BigEndian.Uint32(k[1+k[0]:])
	if len(v) < 9 || v[0] != valueVersion {
		return h, e, m, el, fmt.Errorf("key %x: value of %d bytes with version byte %d (want %d)", k, len(v), firstByte(v), valueVersion)
	}
	enc := string(v[9:])
	if el, err = decodeElement(enc); err != nil {
		return h, e, m, el, fmt.Errorf("key %x: %w", k, err)
	}
	if e, err = newEntry(enc, int64(binary.BigEndian.Uint64(v[1:]))); err != nil {
		return h, e, m, el, fmt.Errorf("key %x: %w", k, err)
	}
	if el.ID != id || id == 0 {
		return h, e, m, el, fmt.Errorf("key %x: PE identifier 0x%x in the key, 0x%x in the value", k, id, el.ID)
	}
	if _, ok := policyKind(el.Policy.Type); !ok {
		return h, e, m, el, fmt.Errorf("key %x: unsupported policy type %s", k, el.Policy.Type)
	}
	e.id, e.home = id, el.Home
	e.v1, e.v2 = policyValues(&el.Policy)
	m = pmetaOf(&el)
	return h, e, m, el, nil
}

// pmetaOf gives the pool metadata a PE brings.
func pmetaOf(el *asap.PoolElement) pmeta {
	m := pmeta{ptype: el.Policy.Type, tkind: el.User.Kind}
	if m.tkind == asap.ParamSCTPTransport || m.tkind == asap.ParamTCPTransport {
		m.tuse = el.User.Use
	}
	return m
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}

// Open opens the handlespace file at path, creating it if it does not
// exist or is empty, and rebuilds the in-memory index from it in one pass.
//
// An existing file is first opened read-only and checked completely
// (bbolt meta pages, file length, bucket layout, format version, every PE
// value decodes and its pool is consistent) before it is opened for
// writing, so a file that is not a handlespace database or is damaged is
// never written to: Open returns an error wrapping ErrCorrupt (or
// ErrVersion) that names the file. A file locked by another process or
// Store for longer than Options.Timeout gives ErrLocked.
func Open(path string, opts *Options) (*Store, error) {
	o := opts.withDefaults()
	s := newStore(path, o)
	start := time.Now()
	info, err := os.Stat(path)
	switch {
	case err == nil && !info.Mode().IsRegular():
		return nil, fmt.Errorf("open handlespace %s: not a regular file", path)
	case err == nil && info.Size() > 0:
		if err := s.load(info.Size()); err != nil {
			return nil, fmt.Errorf("open handlespace %s: %w", path, err)
		}
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("open handlespace %s: %w", path, err)
	}
	err = fileio.GuardBolt(ErrCorrupt, func(openFile fileio.OpenFileFunc) error {
		db, err := bolt.Open(path, o.FileMode, s.boltOptions(false, openFile))
		if err != nil {
			return classifyOpenError(err)
		}
		var fresh bool
		err = db.View(func(tx *bolt.Tx) error {
			var err error
			if fresh, err = checkLayout(tx); err != nil || fresh {
				return err
			}
			// The file may differ from the read-only pass only if
			// another process wrote it in between.
			if got := readApplied(tx); got != s.applied.Load() {
				return fmt.Errorf("%w: file changed while opening (applied index %d, read %d)", ErrCorrupt, got, s.applied.Load())
			}
			return nil
		})
		if err == nil && fresh {
			if s.nPE > 0 {
				err = fmt.Errorf("%w: file changed while opening", ErrCorrupt)
			} else {
				err = db.Update(initLayout)
			}
		}
		if err != nil {
			_ = db.Close()
			return err
		}
		s.db = db
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open handlespace %s: %w", path, err)
	}
	pools, pes := len(s.pools), s.nPE
	s.log.Info("handlespace opened", "path", path, "pools", pools, "pes", pes,
		"applied-index", s.applied.Load(), "duration", time.Since(start))
	return s, nil
}

// load opens the existing file read-only, checks it and builds the index.
func (s *Store) load(size int64) error {
	return fileio.GuardBolt(ErrCorrupt, func(openFile fileio.OpenFileFunc) error {
		db, err := bolt.Open(s.path, s.opts.FileMode, s.boltOptions(true, openFile))
		if err != nil {
			err = classifyOpenError(err)
			var pathErr *fs.PathError
			if !errors.Is(err, ErrLocked) && !errors.Is(err, ErrCorrupt) && !errors.As(err, &pathErr) {
				// bbolt's other complaints about a file it cannot
				// read ("file size too small", ...).
				err = fmt.Errorf("%w: %w", ErrCorrupt, err)
			}
			return err
		}
		defer db.Close()
		return db.View(func(tx *bolt.Tx) error {
			// Before reading any page past the meta pages: bbolt maps
			// the file and would fault on pages a truncated file lacks.
			if want := tx.Size(); want > size {
				return fmt.Errorf("%w: the file has %d bytes, its bbolt meta page describes %d (truncated?)", ErrCorrupt, size, want)
			}
			if _, err := checkLayout(tx); err != nil {
				return err
			}
			s.applied.Store(readApplied(tx))
			b := tx.Bucket(bucketPEs)
			if b == nil {
				return nil
			}
			return b.ForEach(func(k, v []byte) error {
				h, e, m, err := entryFromValue(k, v)
				if err != nil {
					return fmt.Errorf("%w: %w", ErrCorrupt, err)
				}
				if p := s.pools[h]; p != nil && p.meta != m {
					return fmt.Errorf("%w: key %x: pool %q mixes policy %s/transport %s/use %d with %s/%s/%d", ErrCorrupt, k, h,
						p.meta.ptype, p.meta.tkind, p.meta.tuse, m.ptype, m.tkind, m.tuse)
				}
				s.insertEntry(h, e, m)
				return nil
			})
		})
	})
}

// boltOptions gives the bbolt options of the store's file; openFile may
// be nil (bbolt's default).
func (s *Store) boltOptions(readOnly bool, openFile fileio.OpenFileFunc) *bolt.Options {
	return &bolt.Options{
		Timeout:         s.opts.Timeout,
		InitialMmapSize: s.opts.InitialMmapSize,
		NoSync:          s.opts.NoSync,
		ReadOnly:        readOnly,
		FreelistType:    bolt.FreelistMapType,
		// Rebuild the freelist at open instead of writing it with every
		// commit (etcd's choice): fewer pages per Apply.
		NoFreelistSync: true,
		OpenFile:       openFile,
	}
}

// classifyOpenError maps bbolt's open errors to ours.
func classifyOpenError(err error) error {
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("%w: %w", ErrLocked, err)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum),
		errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrInvalidMapping):
		return fmt.Errorf("%w: not a valid bbolt database: %w", ErrCorrupt, err)
	}
	return err
}

// checkLayout reports whether tx is an empty bbolt database (fresh) and
// fails unless it is one or a handlespace database of a readable version.
func checkLayout(tx *bolt.Tx) (fresh bool, err error) {
	var names []string
	if err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
		names = append(names, string(name))
		return nil
	}); err != nil {
		return false, err
	}
	if len(names) == 0 {
		return true, nil
	}
	meta := tx.Bucket(bucketMeta)
	if tx.Bucket(bucketPEs) == nil || meta == nil || len(names) != 2 {
		return false, fmt.Errorf("%w: not a handlespace database (buckets %q, want \"meta\" and \"pes\")", ErrCorrupt, names)
	}
	v := meta.Get(keyFormat)
	if len(v) != 8 {
		return false, fmt.Errorf("%w: format version of %d bytes", ErrCorrupt, len(v))
	}
	if n := binary.BigEndian.Uint64(v); n == 0 || n > FormatVersion {
		return false, fmt.Errorf("%w: file has format version %d, this build reads up to %d", ErrVersion, n, FormatVersion)
	}
	if a := meta.Get(keyApplied); a != nil && len(a) != 8 {
		return false, fmt.Errorf("%w: applied index of %d bytes", ErrCorrupt, len(a))
	}
	return false, nil
}

func initLayout(tx *bolt.Tx) error {
	if _, err := tx.CreateBucket(bucketPEs); err != nil {
		return err
	}
	meta, err := tx.CreateBucket(bucketMeta)
	if err != nil {
		return err
	}
	return meta.Put(keyFormat, binary.BigEndian.AppendUint64(nil, FormatVersion))
}

func readApplied(tx *bolt.Tx) uint64 {
	if m := tx.Bucket(bucketMeta); m != nil {
		if v := m.Get(keyApplied); len(v) == 8 {
			return binary.BigEndian.Uint64(v)
		}
	}
	return 0
}

// commit writes one batch in one transaction.
func (s *Store) commit(index uint64, ops []diskOp) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPEs)
		if b == nil {
			return fmt.Errorf("%w: bucket %q missing", ErrCorrupt, bucketPEs)
		}
		for _, d := range ops {
			var err error
			switch {
			case d.reset:
				if err = tx.DeleteBucket(bucketPEs); err == nil {
					b, err = tx.CreateBucket(bucketPEs)
				}
			case d.val == nil:
				err = b.Delete(d.key)
			default:
				err = b.Put(d.key, d.val)
			}
			if err != nil {
				return err
			}
		}
		if index != 0 {
			return tx.Bucket(bucketMeta).Put(keyApplied, binary.BigEndian.AppendUint64(nil, index))
		}
		return nil
	})
}

// errf wraps an error with the operation and the file.
func (s *Store) errf(op string, err error) error {
	return fmt.Errorf("store: %s %s: %w", op, s.path, err)
}
