package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/rserpool-go/registrar/store/internal/fileio"
)

// WAL is a raft LogStore that appends log entries to segment files: each
// StoreLogs is one write and one fdatasync, where a B+tree store needs two
// syncs and page rewrites. It is the registrar's raft log; the
// StableStore (term, vote) is Stable.
//
// # Layout
//
// A directory of segment files named by their first index
// (00000000000000000001.wal), each starting with the 8-byte magic
// "RSPWAL1\n" and holding records back to back:
//
//	length   4 bytes, big-endian: the payload's length
//	crc      4 bytes, big-endian: CRC-32C of the payload
//	payload  the entry (see appendEntry)
//
// Entries are contiguous: segment N+1 starts right after segment N's last
// index. Removing a prefix deletes whole segments and records the new first
// index in the file "first" (the segment that holds it keeps its older
// records). Removing a suffix truncates the files.
//
// # Crashes and damage
//
// Open scans every segment. A torn tail, a bad record (cut short, failing
// its checksum or not decoding) at the end of the last segment with
// nothing valid after it, is what a crash during an append leaves: it is
// cut off with a warning naming the file and the offset (raft was never
// told it was stored). A bad record followed by a valid one, or a bad
// record, a gap or an empty file in any segment but the last, is damage:
// Open fails with a *WALCorruptError naming the file, the offset and the
// ways to recover, and changes nothing. The store never rewrites a record.
//
// # Write failures
//
// An append that fails (ENOSPC, EIO, a short write, a failed fdatasync)
// leaves nothing behind: the segment is cut back to where the append
// began (and synced) before anything else is written, so a later append,
// or Open after a crash, never finds the records raft was told failed.
// The WAL is then faulted (Fault) until an append succeeds; the fault is
// logged once, and once when it is over. WALOptions.RetryWrite decides
// whether StoreLogs waits and retries or returns the error.
type WAL struct {
	dir     string
	noSync  bool
	segSize int64
	fs      walFS
	log     hclog.Logger
	retry   func(error) bool

	// wmu serialises the writers (StoreLogs, DeleteRange, Close), which
	// read the fields below without mu and take mu only to change them:
	// readers (GetLog, FirstIndex, LastIndex) never wait for an append's
	// write and fdatasync (raft's replication reads while its leader
	// appends).
	wmu sync.Mutex
	buf []byte // StoreLogs' encoding buffer (wmu)
	// dirty is a segment whose bytes past its size may hold a failed
	// append that could not be cut off yet (wmu).
	dirty *walSegment

	fmu   sync.Mutex
	fault *fileio.FaultError // (fmu)

	mu    sync.RWMutex
	segs  []*walSegment // by first index
	first uint64        // logical first index (0: empty)
	last  uint64
	// closed is set by Close.
	closed bool
}

type walSegment struct {
	first uint64
	path  string
	f     walFile
	// offs[i] is the offset of the record of index first+i. StoreLogs
	// appends past len(offs) without mu (readers index below it) and
	// publishes the longer slice under mu.
	offs []int64
	size int64
}

func (s *walSegment) last() uint64 { return s.first + uint64(len(s.offs)) - 1 }

// WALOptions configure OpenWAL. nil means defaults.
type WALOptions struct {
	// NoSync skips fdatasync (tests only).
	NoSync bool
	// SegmentSize starts a new segment file once one passes this many
	// bytes. Default 64 MiB.
	SegmentSize int64
	// Logger receives the warning about a torn tail cut off at open and
	// the fault's state changes. Default: a null logger.
	Logger hclog.Logger
	// RetryWrite, if set, is called after a failed append with its error:
	// true makes StoreLogs wait (50 ms, doubling up to 1 s) and try
	// again, false returns the error. nil: return it at once.
	RetryWrite func(err error) bool

	// fs replaces the operating system's files (tests: failpoints,
	// lost unsynced writes).
	fs walFS
}

const (
	walMagic        = "RSPWAL1\n"
	walRecordHeader = 8
	walFirstFile    = "first"
)

var walCRC = crc32.MakeTable(crc32.Castagnoli)

var (
	// ErrWALCorrupt is wrapped by the error of a damaged log (other than
	// a torn tail): a *WALCorruptError.
	ErrWALCorrupt = errors.New("corrupt raft log")
	// ErrWALClosed is returned by GetLog, StoreLogs and DeleteRange of a
	// closed WAL.
	ErrWALClosed = errors.New("raft log is closed")
)

var (
	_ raft.LogStore          = (*WAL)(nil)
	_ raft.MonotonicLogStore = (*WAL)(nil)
)

// WALCorruptError is the error of a raft log that OpenWAL refuses to
// open: damage other than a torn tail. It wraps ErrWALCorrupt.
type WALCorruptError struct {
	Path   string // the segment file
	Offset int64  // where the damage starts (-1: the file as a whole)
	Index  uint64 // the index of the first entry lost there (0: unknown)
	Detail string // what is wrong
}

// Error names the file, the offset and the ways to recover.
func (e *WALCorruptError) Error() string {
	at := ""
	if e.Offset >= 0 {
		at = fmt.Sprintf(" at offset %d", e.Offset)
	}
	if e.Index != 0 {
		at += fmt.Sprintf(" (index %d)", e.Index)
	}
	keep := "move the segments from this one on aside"
	if e.Offset > 0 {
		keep = fmt.Sprintf("truncate %s to %d bytes and move the later segments aside", e.Path, e.Offset)
	}
	return fmt.Sprintf("raft log %s: %v%s: %s. Refusing to start; to recover, either "+
		"(1) in a cluster, rejoin from the leader: stop this registrar, run `registrar raft remove-peer ID` at a healthy one, "+
		"move this data dir's raft/ and handlespace.db aside (keep registrar-id), and start it again: it catches up from the leader; "+
		"(2) restore a snapshot (`registrar snapshot restore FILE -data-dir DIR`); "+
		"or (3) keep what precedes the damage and lose the rest: %s, and move handlespace.db aside (see docs/operations.md)",
		e.Path, ErrWALCorrupt, at, e.Detail, keep)
}

// Unwrap gives ErrWALCorrupt.
func (e *WALCorruptError) Unwrap() error { return ErrWALCorrupt }

// OpenWAL opens (or creates) the log in dir.
func OpenWAL(dir string, opts *WALOptions) (*WAL, error) {
	w := &WAL{dir: dir, segSize: 64 << 20, fs: osFS{}, log: hclog.NewNullLogger()}
	if opts != nil {
		w.noSync = opts.NoSync
		if opts.SegmentSize > 0 {
			w.segSize = opts.SegmentSize
		}
		if opts.Logger != nil {
			w.log = opts.Logger
		}
		if opts.fs != nil {
			w.fs = opts.fs
		}
		w.retry = opts.RetryWrite
	}
	if err := w.fs.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("raft log %s: %w", dir, err)
	}
	names, err := w.fs.Segments(dir)
	if err != nil {
		return nil, fmt.Errorf("raft log %s: %w", dir, err)
	}
	for i, name := range names {
		seg, err := w.openSegment(name, i == len(names)-1)
		if err != nil {
			w.closeFiles()
			return nil, err
		}
		if seg == nil {
			continue // an empty last segment
		}
		if n := len(w.segs); n > 0 && seg.first != w.segs[n-1].last()+1 {
			prev := w.segs[n-1]
			w.closeFiles()
			seg.f.Close()
			return nil, &WALCorruptError{Path: name, Offset: -1, Index: prev.last() + 1,
				Detail: fmt.Sprintf("starts at index %d, but the previous segment %s ends at %d (a segment is missing or was cut short)",
					seg.first, filepath.Base(prev.path), prev.last())}
		}
		w.segs = append(w.segs, seg)
	}
	if len(w.segs) > 0 {
		w.first, w.last = w.segs[0].first, w.segs[len(w.segs)-1].last()
		if b, err := w.fs.ReadFile(filepath.Join(dir, walFirstFile)); err == nil && len(b) == 8 {
			if f := binary.BigEndian.Uint64(b); f > w.first && f <= w.last+1 {
				w.first = f
			}
		}
		if w.first > w.last {
			w.first, w.last = 0, 0
		}
	}
	return w, nil
}

// openSegment reads one segment and indexes its records; a torn tail of
// the last segment is cut off.
func (w *WAL) openSegment(name string, isLast bool) (*walSegment, error) {
	base := strings.TrimSuffix(filepath.Base(name), ".wal")
	first, err := strconv.ParseUint(base, 10, 64)
	if err != nil || first == 0 {
		return nil, &WALCorruptError{Path: name, Offset: -1, Detail: "not a segment name (want the first index, 20 digits, .wal)"}
	}
	f, err := w.fs.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("raft log: %w", err)
	}
	data, err := readAll(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("raft log %s: %w", name, err)
	}
	seg := &walSegment{first: first, path: name, f: f}
	if len(data) < len(walMagic) || string(data[:len(walMagic)]) != walMagic {
		if isLast && len(data) < len(walMagic) && string(data) == walMagic[:len(data)] {
			// Created but its header never fully written: empty.
			f.Close()
			return nil, w.fs.Remove(name)
		}
		f.Close()
		return nil, &WALCorruptError{Path: name, Offset: 0, Index: first, Detail: "bad magic (not a raft log segment)"}
	}
	off := int64(len(walMagic))
	for off < int64(len(data)) {
		want := first + uint64(len(seg.offs))
		n, bad := checkRecord(data, off, want)
		if bad == "" {
			seg.offs = append(seg.offs, off)
			off += walRecordHeader + n
			continue
		}
		if !isLast {
			f.Close()
			return nil, &WALCorruptError{Path: name, Offset: off, Index: want, Detail: bad + " in a segment that is not the last"}
		}
		if next := findRecord(data, off+1, want); next >= 0 {
			f.Close()
			return nil, &WALCorruptError{Path: name, Offset: off, Index: want,
				Detail: fmt.Sprintf("%s, followed by a valid record at offset %d (damage, not a write cut short by a crash)", bad, next)}
		}
		// A torn write at the end: raft was never told it was stored.
		w.log.Warn("raft log: cutting off a torn record at the end of the last segment (an append cut short by a crash)",
			"path", name, "offset", off, "bytes", int64(len(data))-off, "index", want, "reason", bad)
		err := f.Truncate(off)
		if err == nil && !w.noSync {
			err = f.Sync()
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("raft log %s: cut off torn tail at offset %d: %w", name, off, err)
		}
		break
	}
	seg.size = off
	if len(seg.offs) == 0 {
		f.Close()
		if isLast {
			return nil, w.fs.Remove(name)
		}
		return nil, &WALCorruptError{Path: name, Offset: -1, Index: first, Detail: "empty segment that is not the last"}
	}
	return seg, nil
}

// readAll reads a whole file.
func readAll(f walFile) ([]byte, error) {
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	data := make([]byte, size)
	n, err := f.ReadAt(data, 0)
	if n == len(data) {
		return data, nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return nil, err
}

// checkRecord checks the record at off of a segment, which must hold the
// entry of index want: it returns the payload length, or why the record
// is bad.
func checkRecord(data []byte, off int64, want uint64) (int64, string) {
	if int64(len(data))-off < walRecordHeader {
		return 0, "record header cut short"
	}
	n := int64(binary.BigEndian.Uint32(data[off:]))
	sum := binary.BigEndian.Uint32(data[off+4:])
	if off+walRecordHeader+n > int64(len(data)) {
		return 0, fmt.Sprintf("record of %d bytes cut short", n)
	}
	payload := data[off+walRecordHeader : off+walRecordHeader+n]
	if crc32.Checksum(payload, walCRC) != sum {
		return 0, "checksum mismatch"
	}
	var l raft.Log
	if err := decodeEntry(payload, want, &l); err != nil {
		return 0, err.Error()
	}
	return n, ""
}

// findRecord looks for a valid record at or after from that holds an
// entry of index want or later, and returns its offset (-1: none). The
// cheap tests (encoding version, flags, index range) come before the
// checksum, so the scan is linear in practice.
func findRecord(data []byte, from int64, want uint64) int64 {
	for p := from; p+walRecordHeader+3 <= int64(len(data)); p++ {
		n := int64(binary.BigEndian.Uint32(data[p:]))
		if n < 3 || p+walRecordHeader+n > int64(len(data)) {
			continue
		}
		payload := data[p+walRecordHeader : p+walRecordHeader+n]
		if payload[0] != entryEncodingV1 || payload[2]&^entryKnownFlags != 0 {
			continue
		}
		idx, k := binary.Uvarint(payload[3:])
		if k <= 0 || idx < want || idx-want > 1<<24 {
			continue
		}
		if crc32.Checksum(payload, walCRC) != binary.BigEndian.Uint32(data[p+4:]) {
			continue
		}
		var l raft.Log
		if decodeEntry(payload, idx, &l) == nil {
			return p
		}
	}
	return -1
}

// Fault returns the storage fault of the log (a *store.FaultError) from a
// failed append until one succeeds, or nil.
func (w *WAL) Fault() error {
	w.fmu.Lock()
	defer w.fmu.Unlock()
	if w.fault == nil {
		return nil
	}
	return w.fault
}

func (w *WAL) setFault(path, op string, err error) *fileio.FaultError {
	w.fmu.Lock()
	defer w.fmu.Unlock()
	if w.fault == nil {
		w.fault = &fileio.FaultError{Path: path, Op: op, Err: err, Since: time.Now()}
		w.log.Error("raft log write failed: appends are refused until one succeeds", "path", path, "op", op,
			"error", err, "fix", w.fault.Fix())
	}
	return w.fault
}

func (w *WAL) clearFault() {
	w.fmu.Lock()
	defer w.fmu.Unlock()
	if w.fault != nil {
		w.log.Info("raft log writes work again", "path", w.fault.Path, "fault-duration", time.Since(w.fault.Since).Round(time.Millisecond))
		w.fault = nil
	}
}

func (w *WAL) closeFiles() {
	for _, s := range w.segs {
		s.f.Close()
	}
	w.segs = nil
}

// Close closes the segment files. Idempotent.
func (w *WAL) Close() error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	w.closeFiles()
	return nil
}

// IsMonotonic: the log never has gaps, so raft removes all entries after
// restoring a snapshot instead of leaving a hole.
func (w *WAL) IsMonotonic() bool { return true }

// FirstIndex is the first index stored, 0 when empty.
func (w *WAL) FirstIndex() (uint64, error) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.first, nil
}

// LastIndex is the last index stored, 0 when empty.
func (w *WAL) LastIndex() (uint64, error) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.last, nil
}

// GetLog reads one entry.
func (w *WAL) GetLog(index uint64, l *raft.Log) error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return ErrWALClosed
	}
	if w.first == 0 || index < w.first || index > w.last {
		return raft.ErrLogNotFound
	}
	i := sort.Search(len(w.segs), func(i int) bool { return w.segs[i].last() >= index })
	seg := w.segs[i]
	off := seg.offs[index-seg.first]
	end := seg.size
	if k := index - seg.first + 1; k < uint64(len(seg.offs)) {
		end = seg.offs[k]
	}
	b := make([]byte, end-off)
	if _, err := seg.f.ReadAt(b, off); err != nil {
		return fmt.Errorf("raft log %s: read index %d: %w", seg.path, index, err)
	}
	n := binary.BigEndian.Uint32(b)
	if int(n)+walRecordHeader != len(b) || crc32.Checksum(b[walRecordHeader:], walCRC) != binary.BigEndian.Uint32(b[4:]) {
		return fmt.Errorf("raft log %s: %w: index %d fails its checksum", seg.path, ErrWALCorrupt, index)
	}
	return decodeEntry(b[walRecordHeader:], index, l)
}

// StoreLog stores one entry.
func (w *WAL) StoreLog(l *raft.Log) error { return w.StoreLogs([]*raft.Log{l}) }

// StoreLogs appends entries (which must follow the last one) with one
// write and one fdatasync. A failed append leaves the log as it was (see
// the type's documentation) and returns an error wrapping a
// *store.FaultError, unless WALOptions.RetryWrite has it retried.
func (w *WAL) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if w.closed {
		return ErrWALClosed
	}
	for i, l := range logs {
		if l == nil {
			return fmt.Errorf("raft log: entry %d of the batch is nil", i)
		}
		if want := logs[0].Index + uint64(i); l.Index != want || l.Index == 0 {
			return fmt.Errorf("raft log: batch not contiguous: entry %d has index %d, want %d", i, l.Index, want)
		}
	}
	if w.last != 0 && logs[0].Index != w.last+1 {
		return fmt.Errorf("raft log: append at index %d, the log ends at %d", logs[0].Index, w.last)
	}
	b := w.buf[:0]
	var rel []int64 // record offsets within b
	for _, l := range logs {
		start := len(b)
		b = append(b, 0, 0, 0, 0, 0, 0, 0, 0)
		b = appendEntry(b, l)
		payload := b[start+walRecordHeader:]
		binary.BigEndian.PutUint32(b[start:], uint32(len(payload)))
		binary.BigEndian.PutUint32(b[start+4:], crc32.Checksum(payload, walCRC))
		rel = append(rel, int64(start))
	}
	if cap(b) <= 4<<20 {
		w.buf = b
	}
	wait := 50 * time.Millisecond
	for {
		seg, err := w.appendOnce(logs[0].Index, b)
		if err == nil {
			w.clearFault()
			w.mu.Lock()
			offs := seg.offs // appendOnce wrote past its length; readers index below it
			for _, r := range rel {
				offs = append(offs, seg.size+r)
			}
			seg.offs = offs
			seg.size += int64(len(b))
			if w.first == 0 {
				w.first = logs[0].Index
			}
			w.last = logs[len(logs)-1].Index
			w.mu.Unlock()
			return nil
		}
		if w.retry == nil || !w.retry(err) {
			return err
		}
		time.Sleep(wait)
		wait = min(2*wait, time.Second)
	}
}

// appendOnce makes one attempt to write b (the records from index first
// on) at the end of the log and sync it. The caller holds wmu.
func (w *WAL) appendOnce(first uint64, b []byte) (*walSegment, error) {
	if d := w.dirty; d != nil {
		// A failed append could not be cut off: do it first.
		if err := w.cutBack(d, d.size); err != nil {
			return nil, fmt.Errorf("raft log %s: %w", d.path, w.setFault(d.path, "truncate", err))
		}
		w.dirty = nil
	}
	var seg *walSegment
	created := false
	if n := len(w.segs); n > 0 && w.segs[n-1].size < w.segSize && w.last != 0 {
		seg = w.segs[n-1]
	} else {
		var err error
		if seg, err = w.newSegment(first); err != nil {
			return nil, err
		}
		created = true
	}
	off := seg.size
	op := "write"
	n, err := seg.f.WriteAt(b, off)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	if err == nil && !w.noSync {
		op = "sync"
		err = seg.f.Sync()
	}
	if err == nil {
		return seg, nil
	}
	// Nothing of a failed append may stay: raft is told it failed, and
	// the records must not come back at the next open.
	if created {
		// A segment without records: the next attempt creates it again.
		w.mu.Lock()
		w.segs = w.segs[:len(w.segs)-1]
		w.mu.Unlock()
		seg.f.Close()
		if w.fs.Remove(seg.path) == nil {
			_ = w.syncDir()
		}
	} else if cerr := w.cutBack(seg, off); cerr != nil {
		w.dirty = seg
	}
	return nil, fmt.Errorf("raft log %s: %s at offset %d: %w", seg.path, op, off, w.setFault(seg.path, op, err))
}

// cutBack truncates seg to size and syncs it.
func (w *WAL) cutBack(seg *walSegment, size int64) error {
	err := seg.f.Truncate(size)
	if err == nil && !w.noSync {
		err = seg.f.Sync()
	}
	return err
}

// newSegment creates the segment file that starts at first.
func (w *WAL) newSegment(first uint64) (*walSegment, error) {
	name := filepath.Join(w.dir, fmt.Sprintf("%020d.wal", first))
	f, err := w.fs.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("raft log: %w", w.setFault(name, "create", err))
	}
	op := "write"
	n, err := f.WriteAt([]byte(walMagic), 0)
	if err == nil && n < len(walMagic) {
		err = io.ErrShortWrite
	}
	if err == nil {
		op = "sync directory"
		err = w.syncDir()
	}
	if err != nil {
		f.Close()
		_ = w.fs.Remove(name)
		return nil, fmt.Errorf("raft log %s: %w", name, w.setFault(name, op, err))
	}
	seg := &walSegment{first: first, path: name, f: f, size: int64(len(walMagic))}
	w.mu.Lock()
	w.segs = append(w.segs, seg)
	w.mu.Unlock()
	return seg, nil
}

func (w *WAL) syncDir() error {
	if w.noSync {
		return nil
	}
	return w.fs.SyncDir(w.dir)
}

// DeleteRange removes [min, max]: a prefix (log compaction after a
// snapshot), a suffix (conflicting entries on a follower) or everything.
func (w *WAL) DeleteRange(min, max uint64) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrWALClosed
	}
	if d := w.dirty; d != nil {
		if err := w.cutBack(d, d.size); err != nil {
			return fmt.Errorf("raft log %s: %w", d.path, w.setFault(d.path, "truncate", err))
		}
		w.dirty = nil
	}
	if w.first == 0 || max < w.first || min > w.last || min > max {
		return nil
	}
	switch {
	case min <= w.first && max >= w.last: // everything
		for _, s := range w.segs {
			s.f.Close()
			if err := w.fs.Remove(s.path); err != nil {
				return fmt.Errorf("raft log: %w", err)
			}
		}
		w.segs, w.first, w.last = nil, 0, 0
		_ = w.fs.Remove(filepath.Join(w.dir, walFirstFile))
		return w.syncDir()
	case min <= w.first: // a prefix
		// Record the new first index, then remove the segments it
		// leaves behind: a crash in between leaves entries before it,
		// never a hole. A segment that cannot be removed stays (with
		// the later ones), below the first index.
		w.first = max + 1
		if err := w.writeFirst(); err != nil {
			return err
		}
		var rmErr error
		for len(w.segs) > 1 && w.segs[0].last() <= max && rmErr == nil {
			s := w.segs[0]
			if rmErr = w.fs.Remove(s.path); rmErr == nil {
				s.f.Close()
				w.segs = w.segs[1:]
			}
		}
		if rmErr != nil {
			return fmt.Errorf("raft log: %w", rmErr)
		}
		return w.syncDir()
	case max >= w.last: // a suffix
		for len(w.segs) > 0 {
			s := w.segs[len(w.segs)-1]
			if s.first < min {
				k := min - s.first
				if err := s.f.Truncate(s.offs[k]); err != nil {
					return fmt.Errorf("raft log %s: truncate: %w", s.path, err)
				}
				if !w.noSync {
					if err := s.f.Sync(); err != nil {
						return fmt.Errorf("raft log %s: sync: %w", s.path, err)
					}
				}
				s.size = s.offs[k]
				s.offs = s.offs[:k]
				break
			}
			s.f.Close()
			if err := w.fs.Remove(s.path); err != nil {
				return fmt.Errorf("raft log: %w", err)
			}
			w.segs = w.segs[:len(w.segs)-1]
		}
		w.last = min - 1
		if len(w.segs) == 0 || w.last < w.first {
			for _, s := range w.segs {
				s.f.Close()
				w.fs.Remove(s.path)
			}
			w.segs, w.first, w.last = nil, 0, 0
			_ = w.fs.Remove(filepath.Join(w.dir, walFirstFile))
		}
		return w.syncDir()
	}
	return fmt.Errorf("raft log: cannot delete [%d, %d] from the middle of [%d, %d]", min, max, w.first, w.last)
}

// writeFirst records the logical first index (atomically).
func (w *WAL) writeFirst() error {
	p := filepath.Join(w.dir, walFirstFile)
	tmp := p + ".tmp"
	b := binary.BigEndian.AppendUint64(nil, w.first)
	f, err := w.fs.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("raft log: %w", err)
	}
	n, err := f.WriteAt(b, 0)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	if err == nil && !w.noSync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("raft log: %w", err)
	}
	if err := w.fs.Rename(tmp, p); err != nil {
		return fmt.Errorf("raft log: %w", err)
	}
	return nil
}
