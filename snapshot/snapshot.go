// Package snapshot is the one archive format for handlespace snapshots:
// the raft FSM's snapshots and the operator's `registrar snapshot save`,
// `inspect` and `restore` all use it.
//
// # Format
//
// A snapshot is a stream:
//
//	header   8 bytes   magic "RSPSNAP\x00"
//	         2 bytes   format version (1), big-endian
//	         4 bytes   metadata length n, big-endian
//	         n bytes   metadata, JSON (Meta)
//	body     RFC 5354 parameters back to back, each padded to 4 bytes:
//	         a Pool Handle parameter starts a pool; the Pool Element
//	         parameters that follow belong to it (sorted by handle, then
//	         PE identifier, as the store iterates)
//	trailer  8 bytes   magic "RSPSEND\x00"
//	         8 bytes   number of pools
//	         8 bytes   number of PEs
//	        32 bytes   SHA-256 of every byte before the trailer
//
// The sum covers the header, the metadata and the body, so one flipped bit
// anywhere is detected; the counts are checked against the body. Readers
// verify the sum before they report success, and Restore applies nothing
// until it has.
//
// # Caveats
//
// The PE's time of last registration is not part of the format (the
// snapshot is the handlespace as RFC parameters); a restored PE counts as
// registered at the snapshot's creation time.
package snapshot

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/store"
)

// FormatVersion is the version this package writes and reads.
const FormatVersion = 1

var (
	headerMagic  = []byte("RSPSNAP\x00")
	trailerMagic = []byte("RSPSEND\x00")
)

const trailerSize = 8 + 8 + 8 + sha256.Size

// Errors. Every read error wraps one of them.
var (
	// ErrNotSnapshot: the data does not start like a snapshot.
	ErrNotSnapshot = errors.New("not a registrar snapshot")
	// ErrVersion: the snapshot has a format version this build cannot read.
	ErrVersion = errors.New("unsupported snapshot format version")
	// ErrCorrupt: the content does not match its checksum or is malformed.
	ErrCorrupt = errors.New("snapshot is corrupt")
	// ErrTruncated: the snapshot ends early.
	ErrTruncated = errors.New("snapshot is truncated")
)

// Meta describes a snapshot.
type Meta struct {
	FormatVersion int       `json:"format_version"`
	ClusterID     string    `json:"cluster_id,omitempty"`
	RegistrarID   uint32    `json:"registrar_id,omitempty"`
	RaftIndex     uint64    `json:"raft_index"`
	RaftTerm      uint64    `json:"raft_term,omitempty"`
	Created       time.Time `json:"created"`
	// Pools and PEs are filled from the trailer when reading.
	Pools int64 `json:"pools"`
	PEs   int64 `json:"pes"`
}

// Writer writes a snapshot stream.
type Writer struct {
	w       *bufio.Writer
	h       hash.Hash
	buf     []byte
	handle  asap.PoolHandle
	started bool
	pools   int64
	pes     int64
	err     error
}

// NewWriter writes the header and metadata and returns a Writer for the
// body. Close writes the trailer.
func NewWriter(w io.Writer, m Meta) (*Writer, error) {
	sw := &Writer{w: bufio.NewWriterSize(w, 256<<10), h: sha256.New(), buf: make([]byte, 0, 512)}
	m.FormatVersion = FormatVersion
	m.Pools, m.PEs = 0, 0
	js, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	hdr := append([]byte(nil), headerMagic...)
	hdr = binary.BigEndian.AppendUint16(hdr, FormatVersion)
	hdr = binary.BigEndian.AppendUint32(hdr, uint32(len(js)))
	hdr = append(hdr, js...)
	sw.write(hdr)
	return sw, sw.err
}

func (sw *Writer) write(b []byte) {
	if sw.err != nil {
		return
	}
	sw.h.Write(b)
	_, sw.err = sw.w.Write(b)
}

// Add appends one PE. PEs must come in (handle, ID) order, grouped by
// pool.
func (sw *Writer) Add(h asap.PoolHandle, pe *asap.PoolElement) error {
	if sw.err != nil {
		return sw.err
	}
	b := sw.buf[:0]
	if !sw.started || h != sw.handle {
		var err error
		if b, err = asap.AppendPoolHandle(b, h); err != nil {
			return err
		}
		sw.handle, sw.started = h, true
		sw.pools++
	}
	b, err := asap.AppendPoolElement(b, pe)
	if err != nil {
		return err
	}
	sw.buf = b
	sw.pes++
	sw.write(b)
	return sw.err
}

// Close writes the trailer and flushes. It does not close the underlying
// writer.
func (sw *Writer) Close() error {
	if sw.err != nil {
		return sw.err
	}
	t := append([]byte(nil), trailerMagic...)
	t = binary.BigEndian.AppendUint64(t, uint64(sw.pools))
	t = binary.BigEndian.AppendUint64(t, uint64(sw.pes))
	t = sw.h.Sum(t)
	if _, err := sw.w.Write(t); err != nil {
		return err
	}
	return sw.w.Flush()
}

// Counts returns the pools and PEs written so far.
func (sw *Writer) Counts() (pools, pes int64) { return sw.pools, sw.pes }

// Reader reads a snapshot stream. Next returns PEs until io.EOF, which it
// returns only after the trailer's counts and checksum matched.
type Reader struct {
	r      *bufio.Reader
	h      hash.Hash
	meta   Meta
	handle asap.PoolHandle
	pools  int64
	pes    int64
	off    int64
	buf    []byte
	done   bool
}

// NewReader reads and checks the header and metadata.
func NewReader(r io.Reader) (*Reader, error) {
	sr := &Reader{r: bufio.NewReaderSize(r, 256<<10), h: sha256.New(), buf: make([]byte, 0, 512)}
	fixed := make([]byte, 14)
	if err := sr.full(fixed, "header"); err != nil {
		if errors.Is(err, ErrTruncated) {
			return nil, fmt.Errorf("%w (%d bytes of header)", ErrNotSnapshot, sr.off)
		}
		return nil, err
	}
	if !bytes.Equal(fixed[:8], headerMagic) {
		return nil, fmt.Errorf("%w: bad magic %q", ErrNotSnapshot, fixed[:8])
	}
	if v := binary.BigEndian.Uint16(fixed[8:]); v != FormatVersion {
		return nil, fmt.Errorf("%w %d (this build reads %d)", ErrVersion, v, FormatVersion)
	}
	n := binary.BigEndian.Uint32(fixed[10:])
	if n > 1<<20 {
		return nil, fmt.Errorf("%w: metadata of %d bytes", ErrCorrupt, n)
	}
	js := make([]byte, n)
	if err := sr.full(js, "metadata"); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(js, &sr.meta); err != nil {
		return nil, fmt.Errorf("%w: metadata: %v", ErrCorrupt, err)
	}
	if sr.meta.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("%w: metadata says format %d", ErrCorrupt, sr.meta.FormatVersion)
	}
	return sr, nil
}

func (sr *Reader) full(b []byte, what string) error {
	n, err := io.ReadFull(sr.r, b)
	sr.h.Write(b[:n])
	sr.off += int64(n)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: %s ends at byte %d", ErrTruncated, what, sr.off)
		}
		return err
	}
	return nil
}

// Meta returns the metadata; Pools and PEs are known once Next returned
// io.EOF.
func (sr *Reader) Meta() Meta { return sr.meta }

// Next returns the next PE and its pool handle. At the end it checks the
// trailer and returns io.EOF; any mismatch is ErrCorrupt or ErrTruncated.
// The returned PoolElement is freshly decoded and owned by the caller.
func (sr *Reader) Next() (asap.PoolHandle, asap.PoolElement, error) {
	for {
		if sr.done {
			return "", asap.PoolElement{}, io.EOF
		}
		start := sr.off
		hdr, err := sr.r.Peek(4)
		if err != nil {
			return "", asap.PoolElement{}, fmt.Errorf("%w: body ends at byte %d without trailer", ErrTruncated, sr.off)
		}
		if bytes.Equal(hdr, trailerMagic[:4]) {
			return "", asap.PoolElement{}, sr.trailer()
		}
		t := asap.ParamType(binary.BigEndian.Uint16(hdr))
		l := int(binary.BigEndian.Uint16(hdr[2:]))
		if l < 4 {
			return "", asap.PoolElement{}, fmt.Errorf("%w: parameter of length %d at byte %d", ErrCorrupt, l, start)
		}
		padded := (l + 3) &^ 3
		b := sr.buf[:padded]
		if cap(sr.buf) < padded {
			b = make([]byte, padded)
			sr.buf = b
		}
		if err := sr.full(b, "body"); err != nil {
			return "", asap.PoolElement{}, err
		}
		switch t {
		case asap.ParamPoolHandle:
			d := asap.NewDecoder(b, &asap.Limits{MaxPoolHandle: 0xFFFF}, "snapshot")
			h, err := d.Region(0, l).PoolHandle()
			if err != nil {
				return "", asap.PoolElement{}, fmt.Errorf("%w: pool handle at byte %d: %v", ErrCorrupt, start, err)
			}
			sr.handle = h
			sr.pools++
		case asap.ParamPoolElement:
			if sr.pools == 0 {
				return "", asap.PoolElement{}, fmt.Errorf("%w: pool element before any pool handle at byte %d", ErrCorrupt, start)
			}
			d := asap.NewDecoder(b, nil, "snapshot")
			pe, err := d.Region(0, l).PoolElement()
			if err != nil {
				return "", asap.PoolElement{}, fmt.Errorf("%w: pool element at byte %d: %v", ErrCorrupt, start, err)
			}
			sr.pes++
			return sr.handle, pe, nil
		default:
			return "", asap.PoolElement{}, fmt.Errorf("%w: unexpected parameter %v at byte %d", ErrCorrupt, t, start)
		}
	}
}

func (sr *Reader) trailer() error {
	sum := sr.h.Sum(nil)
	t := make([]byte, trailerSize)
	if _, err := io.ReadFull(sr.r, t); err != nil {
		return fmt.Errorf("%w: trailer at byte %d", ErrTruncated, sr.off)
	}
	if !bytes.Equal(t[:8], trailerMagic) {
		return fmt.Errorf("%w: bad trailer at byte %d", ErrCorrupt, sr.off)
	}
	pools := int64(binary.BigEndian.Uint64(t[8:]))
	pes := int64(binary.BigEndian.Uint64(t[16:]))
	if !bytes.Equal(t[24:], sum) {
		return fmt.Errorf("%w: SHA-256 mismatch (content %x, trailer says %x)", ErrCorrupt, sum[:8], t[24:32])
	}
	if pools != sr.pools || pes != sr.pes {
		return fmt.Errorf("%w: trailer counts %d pools / %d PEs, body has %d / %d", ErrCorrupt, pools, pes, sr.pools, sr.pes)
	}
	if _, err := sr.r.ReadByte(); err != io.EOF {
		return fmt.Errorf("%w: data after the trailer", ErrCorrupt)
	}
	sr.meta.Pools, sr.meta.PEs = pools, pes
	sr.done = true
	return io.EOF
}

// Verify reads a whole snapshot, checking everything, and returns its
// metadata with the counts.
func Verify(r io.Reader) (Meta, error) {
	sr, err := NewReader(r)
	if err != nil {
		return Meta{}, err
	}
	for {
		if _, _, err := sr.Next(); err == io.EOF {
			return sr.Meta(), nil
		} else if err != nil {
			return sr.Meta(), err
		}
	}
}

// WriteStore writes the handlespace seen by a bbolt read transaction of
// st. Meta.RaftIndex defaults to the store's applied index in that
// transaction.
func WriteStore(w io.Writer, st *store.Store, m Meta, each func(fn func(store.PE) error) error) (Meta, error) {
	sw, err := NewWriter(w, m)
	if err != nil {
		return m, err
	}
	if err := each(func(pe store.PE) error { return sw.Add(pe.Handle, &pe.Element) }); err != nil {
		return m, err
	}
	if err := sw.Close(); err != nil {
		return m, err
	}
	m.FormatVersion = FormatVersion
	m.Pools, m.PEs = sw.Counts()
	return m, nil
}
