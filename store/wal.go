package store

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

	"github.com/hashicorp/raft"
)

// WAL is a raft LogStore that appends log entries to segment files: each
// StoreLogs is one write and one fdatasync, where a B+tree store (RaftStore)
// needs two syncs and page rewrites. It is the registrar's raft log; the
// StableStore (term, vote) stays in RaftStore.
//
// # Layout
//
// A directory of segment files named by their first index
// (00000000000000000001.wal), each starting with the 8-byte magic
// "RSPWAL1\n" and holding records back to back:
//
//	length   4 bytes, big-endian: the payload's length
//	crc      4 bytes, big-endian: CRC-32C of the payload
//	payload  the entry, encoded as RaftStore encodes it
//
// Entries are contiguous: segment N+1 starts right after segment N's last
// index. Removing a prefix deletes whole segments and records the new first
// index in the file "first" (the segment that holds it keeps its older
// records). Removing a suffix truncates the files.
//
// # Crashes
//
// Open scans every segment. A torn or corrupt record at the end of the last
// segment (a write cut short by a crash) is cut off: raft has not been told
// it was stored. Damage anywhere else is an error naming the file. The
// store never rewrites a record.
type WAL struct {
	dir     string
	noSync  bool
	segSize int64

	// wmu serialises the writers (StoreLogs, DeleteRange, Close), which
	// read the fields below without mu and take mu only to change them:
	// readers (GetLog, FirstIndex, LastIndex) never wait for an append's
	// write and fdatasync (raft's replication reads while its leader
	// appends).
	wmu sync.Mutex
	buf []byte // StoreLogs' encoding buffer (wmu)

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
	f     *os.File
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
}

const (
	walMagic        = "RSPWAL1\n"
	walRecordHeader = 8
	walFirstFile    = "first"
)

var walCRC = crc32.MakeTable(crc32.Castagnoli)

var (
	// ErrWALCorrupt is returned for a damaged log (other than a torn tail).
	ErrWALCorrupt = errors.New("corrupt raft log")
	// ErrWALClosed is returned by GetLog, StoreLogs and DeleteRange of a
	// closed WAL.
	ErrWALClosed = errors.New("raft log is closed")
)

var (
	_ raft.LogStore          = (*WAL)(nil)
	_ raft.MonotonicLogStore = (*WAL)(nil)
)

// OpenWAL opens (or creates) the log in dir.
func OpenWAL(dir string, opts *WALOptions) (*WAL, error) {
	w := &WAL{dir: dir, segSize: 64 << 20}
	if opts != nil {
		w.noSync = opts.NoSync
		if opts.SegmentSize > 0 {
			w.segSize = opts.SegmentSize
		}
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("raft log %s: %w", dir, err)
	}
	names, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names) // zero-padded: name order is index order
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
			w.closeFiles()
			return nil, fmt.Errorf("raft log %s: %w: starts at index %d, the previous segment ends at %d", name, ErrWALCorrupt, seg.first, w.segs[n-1].last())
		}
		w.segs = append(w.segs, seg)
	}
	if len(w.segs) > 0 {
		w.first, w.last = w.segs[0].first, w.segs[len(w.segs)-1].last()
		if b, err := os.ReadFile(filepath.Join(dir, walFirstFile)); err == nil && len(b) == 8 {
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
		return nil, fmt.Errorf("raft log %s: %w: not a segment name", name, ErrWALCorrupt)
	}
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("raft log: %w", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("raft log %s: %w", name, err)
	}
	seg := &walSegment{first: first, path: name, f: f}
	if len(data) < len(walMagic) || string(data[:len(walMagic)]) != walMagic {
		if isLast && len(data) < len(walMagic) && string(data) == walMagic[:len(data)] {
			// Created but its header never fully written: empty.
			f.Close()
			return nil, os.Remove(name)
		}
		f.Close()
		return nil, fmt.Errorf("raft log %s: %w: bad magic", name, ErrWALCorrupt)
	}
	off := int64(len(walMagic))
	for off < int64(len(data)) {
		bad := ""
		var n int64
		switch {
		case int64(len(data))-off < walRecordHeader:
			bad = "record header cut short"
		default:
			n = int64(binary.BigEndian.Uint32(data[off:]))
			sum := binary.BigEndian.Uint32(data[off+4:])
			switch {
			case off+walRecordHeader+n > int64(len(data)):
				bad = "record cut short"
			case crc32.Checksum(data[off+walRecordHeader:off+walRecordHeader+n], walCRC) != sum:
				bad = "checksum mismatch"
			default:
				var l raft.Log
				want := first + uint64(len(seg.offs))
				if err := decodeOwnedRaftLog(data[off+walRecordHeader:off+walRecordHeader+n], want, &l); err != nil {
					bad = err.Error()
				}
			}
		}
		if bad != "" {
			if !isLast {
				f.Close()
				return nil, fmt.Errorf("raft log %s: %w at offset %d: %s", name, ErrWALCorrupt, off, bad)
			}
			// A torn write at the end: raft was never told it was stored.
			if err := f.Truncate(off); err != nil {
				f.Close()
				return nil, fmt.Errorf("raft log %s: cut off torn tail: %w", name, err)
			}
			break
		}
		seg.offs = append(seg.offs, off)
		off += walRecordHeader + n
	}
	seg.size = off
	if len(seg.offs) == 0 {
		f.Close()
		if isLast {
			return nil, os.Remove(name)
		}
		return nil, fmt.Errorf("raft log %s: %w: empty segment", name, ErrWALCorrupt)
	}
	return seg, nil
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
	return decodeOwnedRaftLog(b[walRecordHeader:], index, l)
}

// StoreLog stores one entry.
func (w *WAL) StoreLog(l *raft.Log) error { return w.StoreLogs([]*raft.Log{l}) }

// StoreLogs appends entries (which must follow the last one) with one
// write and one fdatasync.
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
	var seg *walSegment
	if n := len(w.segs); n > 0 && w.segs[n-1].size < w.segSize && w.last != 0 {
		seg = w.segs[n-1]
	} else {
		var err error
		if seg, err = w.newSegment(logs[0].Index); err != nil {
			return err
		}
	}
	b := w.buf[:0]
	offs := seg.offs // grown past its length here, published below
	off := seg.size
	for _, l := range logs {
		start := len(b)
		b = append(b, 0, 0, 0, 0, 0, 0, 0, 0)
		b = appendRaftLog(b, l)
		payload := b[start+walRecordHeader:]
		binary.BigEndian.PutUint32(b[start:], uint32(len(payload)))
		binary.BigEndian.PutUint32(b[start+4:], crc32.Checksum(payload, walCRC))
		offs = append(offs, off+int64(start))
	}
	if _, err := seg.f.WriteAt(b, off); err != nil {
		_ = seg.f.Truncate(off) // best effort: no partial record stays
		return fmt.Errorf("raft log %s: write: %w", seg.path, err)
	}
	if !w.noSync {
		if err := seg.f.Sync(); err != nil {
			return fmt.Errorf("raft log %s: sync: %w", seg.path, err)
		}
	}
	if cap(b) <= 4<<20 {
		w.buf = b
	}
	w.mu.Lock()
	seg.offs = offs
	seg.size = off + int64(len(b))
	if w.first == 0 {
		w.first = logs[0].Index
	}
	w.last = logs[len(logs)-1].Index
	w.mu.Unlock()
	return nil
}

// newSegment creates the segment file that starts at first.
func (w *WAL) newSegment(first uint64) (*walSegment, error) {
	name := filepath.Join(w.dir, fmt.Sprintf("%020d.wal", first))
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("raft log: %w", err)
	}
	if _, err := f.Write([]byte(walMagic)); err != nil {
		f.Close()
		return nil, fmt.Errorf("raft log %s: %w", name, err)
	}
	if err := w.syncDir(); err != nil {
		f.Close()
		return nil, err
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
	d, err := os.Open(w.dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
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
	if w.first == 0 || max < w.first || min > w.last || min > max {
		return nil
	}
	switch {
	case min <= w.first && max >= w.last: // everything
		for _, s := range w.segs {
			s.f.Close()
			if err := os.Remove(s.path); err != nil {
				return fmt.Errorf("raft log: %w", err)
			}
		}
		w.segs, w.first, w.last = nil, 0, 0
		_ = os.Remove(filepath.Join(w.dir, walFirstFile))
		return w.syncDir()
	case min <= w.first: // a prefix
		keep := w.segs[:0]
		for _, s := range w.segs {
			if s.last() <= max {
				s.f.Close()
				if err := os.Remove(s.path); err != nil {
					return fmt.Errorf("raft log: %w", err)
				}
				continue
			}
			keep = append(keep, s)
		}
		w.segs = keep
		w.first = max + 1
		if err := w.writeFirst(); err != nil {
			return err
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
			if err := os.Remove(s.path); err != nil {
				return fmt.Errorf("raft log: %w", err)
			}
			w.segs = w.segs[:len(w.segs)-1]
		}
		w.last = min - 1
		if len(w.segs) == 0 || w.last < w.first {
			for _, s := range w.segs {
				s.f.Close()
				os.Remove(s.path)
			}
			w.segs, w.first, w.last = nil, 0, 0
			_ = os.Remove(filepath.Join(w.dir, walFirstFile))
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
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("raft log: %w", err)
	}
	_, err = f.Write(b)
	if err == nil && !w.noSync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("raft log: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("raft log: %w", err)
	}
	return nil
}
