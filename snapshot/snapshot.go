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

// ParamRegistrationTime is the registrar-private parameter that carries
// the time of last registration (8 bytes, unix nanoseconds) of the Pool
// Element parameter that follows it. The upper two bits (10) make RFC 5354
// parsers skip it.
const ParamRegistrationTime asap.ParamType = 0xBF01

var (
	headerMagic  = []byte("RSPSNAP\x00")
	trailerMagic = []byte("RSPSEND\x00")
)

const (
	fixedHeaderSize = 8 + 2 + 4
	// TrailerSize is the length of the trailer: magic, pool and PE
	// counts, SHA-256.
	TrailerSize = 8 + 8 + 8 + sha256.Size
	// MaxMetaSize bounds the metadata JSON.
	MaxMetaSize = 64 << 10
)

// Meta describes a snapshot.
type Meta struct {
	// FormatVersion is the archive format version (FormatVersion).
	FormatVersion int `json:"format_version"`
	// ClusterID is reserved for the identity of the cluster the snapshot
	// comes from; empty for now (there is no cluster identity yet).
	ClusterID string `json:"cluster_id,omitempty"`
	// RegistrarID is the registrar that wrote the snapshot (the raft
	// leader for `registrar snapshot save`).
	RegistrarID uint32 `json:"registrar_id,omitempty"`
	// Build is that registrar's version.
	Build string `json:"build,omitempty"`
	// RaftIndex is the last raft index whose effect the content includes
	// (0: none, or a snapshot prepared for raft.Restore).
	RaftIndex uint64 `json:"raft_index"`
	// RaftTerm is the raft term of the writer when it took the snapshot
	// (0 for the raft FSM's own snapshots: raft records theirs).
	RaftTerm uint64 `json:"raft_term,omitempty"`
	// Created is when the snapshot was taken.
	Created time.Time `json:"created"`
	// Pools and PEs are the counts from the trailer, filled by readers
	// once the whole snapshot verified, and by Writer.Close.
	Pools int64 `json:"pools"`
	PEs   int64 `json:"pes"`
}

// headerMeta is the metadata as stored in the header (the counts are in
// the trailer).
type headerMeta struct {
	FormatVersion int       `json:"format_version"`
	ClusterID     string    `json:"cluster_id,omitempty"`
	RegistrarID   uint32    `json:"registrar_id,omitempty"`
	Build         string    `json:"build,omitempty"`
	RaftIndex     uint64    `json:"raft_index"`
	RaftTerm      uint64    `json:"raft_term,omitempty"`
	Created       time.Time `json:"created"`
}

// encodeHeader returns the header for m.
func encodeHeader(m Meta) ([]byte, error) {
	js, err := json.Marshal(headerMeta{
		FormatVersion: FormatVersion, ClusterID: m.ClusterID, RegistrarID: m.RegistrarID, Build: m.Build,
		RaftIndex: m.RaftIndex, RaftTerm: m.RaftTerm, Created: m.Created,
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot metadata: %w", err)
	}
	if len(js) > MaxMetaSize {
		return nil, fmt.Errorf("snapshot metadata of %d bytes (at most %d)", len(js), MaxMetaSize)
	}
	hdr := make([]byte, 0, fixedHeaderSize+len(js))
	hdr = append(hdr, headerMagic...)
	hdr = binary.BigEndian.AppendUint16(hdr, FormatVersion)
	hdr = binary.BigEndian.AppendUint32(hdr, uint32(len(js)))
	return append(hdr, js...), nil
}

// poolKey is what every PE of a pool shares (as the store requires).
type poolKey struct {
	policy asap.PolicyType
	kind   asap.ParamType
	use    asap.TransportUse
}

func keyOf(el *asap.PoolElement) poolKey {
	k := poolKey{policy: el.Policy.Type, kind: el.User.Kind}
	if k.kind == asap.ParamSCTPTransport || k.kind == asap.ParamTCPTransport {
		k.use = el.User.Use
	}
	return k
}

// handleLess orders pool handles as the store does: by length, then bytes.
func handleLess(a, b asap.PoolHandle) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// Writer writes a snapshot stream. Add PEs in the store's order (as
// a store.ReadView's ForEach yields them), then Close.
type Writer struct {
	bw     *bufio.Writer
	h      hash.Hash
	buf    []byte
	elem   []byte // Add's encoded Pool Element
	meta   Meta
	handle asap.PoolHandle
	key    poolKey // of the current pool, kept by Add
	lastID uint32
	pools  int64
	pes    int64
	err    error
	closed bool
}

// NewWriter writes the header with the metadata m (its FormatVersion and
// counts are ignored) and returns a Writer for the body.
func NewWriter(w io.Writer, m Meta) (*Writer, error) {
	hdr, err := encodeHeader(m)
	if err != nil {
		return nil, err
	}
	m.FormatVersion = FormatVersion
	m.Pools, m.PEs = 0, 0
	sw := &Writer{bw: bufio.NewWriterSize(w, 256<<10), h: sha256.New(), buf: make([]byte, 0, 512), meta: m}
	sw.write(hdr)
	if sw.err != nil {
		return nil, sw.err
	}
	return sw, nil
}

func (sw *Writer) write(b []byte) {
	if sw.err != nil {
		return
	}
	sw.h.Write(b)
	if _, err := sw.bw.Write(b); err != nil {
		sw.err = fmt.Errorf("write snapshot: %w", err)
	}
}

// Add appends one PE. PEs must come grouped by pool, pools in the store's
// order (handle length, then bytes), PEs of a pool by increasing ID, and
// all PEs of a pool must share policy type and user transport; otherwise
// Add fails and the Writer is unusable.
func (sw *Writer) Add(pe store.PE) error {
	if sw.err != nil {
		return sw.err
	}
	if sw.closed {
		return errors.New("snapshot: Add after Close")
	}
	el := &pe.Element
	if sw.pools > 0 && pe.Handle == sw.handle {
		if k := keyOf(el); k != sw.key {
			sw.err = fmt.Errorf("snapshot: pool %q PE 0x%08x: policy %s / transport %s differs from the pool's %s / %s", pe.Handle, el.ID, k.policy, k.kind, sw.key.policy, sw.key.kind)
			return sw.err
		}
	} else if len(pe.Handle) > store.MaxHandleLen {
		sw.err = fmt.Errorf("snapshot: pool handle of %d bytes (at most %d)", len(pe.Handle), store.MaxHandleLen)
		return sw.err
	}
	enc, err := asap.AppendPoolElement(sw.elem[:0], el)
	if err != nil {
		sw.err = fmt.Errorf("snapshot: pool %q PE 0x%08x: %w", pe.Handle, el.ID, err)
		return sw.err
	}
	sw.elem = enc
	if err := sw.AddEncoded(pe.Handle, pe.Registered, enc); err != nil {
		return err
	}
	sw.key = keyOf(el)
	return nil
}

// AddEncoded appends one PE given as its encoded Pool Element parameter
// (as the store holds it: store.ReadView.ForEachEncoded), without
// decoding it. The order rules of Add apply to the handle and the identifier; the element
// itself is trusted to be valid and consistent with its pool (the store
// checked it when it was stored; readers check it again).
func (sw *Writer) AddEncoded(h asap.PoolHandle, registered int64, element []byte) error {
	if sw.err != nil {
		return sw.err
	}
	if sw.closed {
		return errors.New("snapshot: Add after Close")
	}
	id, err := asap.CheckPoolElement(element)
	if err != nil {
		sw.err = fmt.Errorf("snapshot: pool %q: malformed pool element parameter of %d bytes: %w", h, len(element), err)
		return sw.err
	}
	b := sw.buf[:0]
	if sw.pools == 0 || h != sw.handle {
		if sw.pools > 0 && !handleLess(sw.handle, h) {
			sw.err = fmt.Errorf("snapshot: pool %q after pool %q: pools must come in store order", h, sw.handle)
			return sw.err
		}
		var err error
		if b, err = asap.AppendPoolHandle(b, h); err != nil {
			sw.err = fmt.Errorf("snapshot: pool %q: %w", h, err)
			return sw.err
		}
		sw.handle, sw.lastID = h, 0
		sw.pools++
	}
	if id == 0 || id <= sw.lastID {
		sw.err = fmt.Errorf("snapshot: pool %q PE 0x%08x after 0x%08x: PE identifiers must be non-zero and increase", h, id, sw.lastID)
		return sw.err
	}
	if registered != 0 {
		b = appendRegistrationTime(b, registered)
	}
	b = append(b, element...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	sw.lastID = id
	sw.buf = b
	sw.pes++
	sw.write(b)
	return sw.err
}

func appendRegistrationTime(b []byte, ns int64) []byte {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(ns))
	b, _ = asap.AppendParam(b, ParamRegistrationTime, v[:]) // 8 bytes always fit
	return b
}

// Close writes the trailer and flushes; it returns the metadata with the
// counts. It does not close the underlying writer.
func (sw *Writer) Close() (Meta, error) {
	if sw.err != nil {
		return sw.meta, sw.err
	}
	if sw.closed {
		return sw.meta, errors.New("snapshot: Close called twice")
	}
	sw.closed = true
	t := make([]byte, 0, TrailerSize)
	t = append(t, trailerMagic...)
	t = binary.BigEndian.AppendUint64(t, uint64(sw.pools))
	t = binary.BigEndian.AppendUint64(t, uint64(sw.pes))
	sw.write(t)
	if sw.err != nil {
		return sw.meta, sw.err
	}
	if _, err := sw.bw.Write(sw.h.Sum(nil)); err != nil {
		sw.err = fmt.Errorf("write snapshot: %w", err)
		return sw.meta, sw.err
	}
	if err := sw.bw.Flush(); err != nil {
		sw.err = fmt.Errorf("write snapshot: %w", err)
		return sw.meta, sw.err
	}
	sw.meta.Pools, sw.meta.PEs = sw.pools, sw.pes
	return sw.meta, nil
}

// Reader reads and verifies a snapshot stream. Next returns PEs until
// io.EOF, which it returns only after the trailer's counts and checksum
// matched and nothing followed.
type Reader struct {
	r      *bufio.Reader
	h      hash.Hash
	off    int64
	meta   Meta
	handle asap.PoolHandle
	key    poolKey
	poolN  int64 // PEs of the current pool
	lastID uint32
	reg    int64
	hasReg bool
	pools  int64
	pes    int64
	buf    []byte
	err    error // sticky; io.EOF once verified
}

// NewReader reads and checks the header and metadata.
func NewReader(r io.Reader) (*Reader, error) {
	sr := &Reader{r: bufio.NewReaderSize(r, 256<<10), h: sha256.New(), buf: make([]byte, 0, 512)}
	fixed := make([]byte, fixedHeaderSize)
	n, err := io.ReadFull(sr.r, fixed)
	sr.h.Write(fixed[:n])
	sr.off = int64(n)
	switch {
	case n < len(headerMagic) && !bytes.Equal(fixed[:n], headerMagic[:n]):
		return nil, fmt.Errorf("%w: starts with %q", ErrNotSnapshot, fixed[:n])
	case n < len(headerMagic) && isEOF(err):
		return nil, fmt.Errorf("%w: only %d bytes", ErrNotSnapshot, n)
	case !bytes.Equal(fixed[:len(headerMagic)], headerMagic) && (err == nil || isEOF(err)):
		return nil, fmt.Errorf("%w: starts with %q, not %q", ErrNotSnapshot, fixed[:len(headerMagic)], headerMagic)
	case isEOF(err):
		return nil, fmt.Errorf("%w: the header ends at byte %d", ErrTruncated, n)
	case err != nil:
		return nil, fmt.Errorf("read snapshot header: %w", err)
	}
	if v := binary.BigEndian.Uint16(fixed[8:]); v != FormatVersion {
		return nil, fmt.Errorf("%w %d (this registrar reads version %d; a newer registrar wrote it, or the header is damaged)", ErrVersion, v, FormatVersion)
	}
	mlen := binary.BigEndian.Uint32(fixed[10:])
	if mlen > MaxMetaSize || mlen < 2 {
		return nil, fmt.Errorf("%w: metadata length %d at byte 10 (2 to %d allowed)", ErrCorrupt, mlen, MaxMetaSize)
	}
	js := make([]byte, mlen)
	if err := sr.full(js, "metadata"); err != nil {
		return nil, err
	}
	var hm headerMeta
	if err := json.Unmarshal(js, &hm); err != nil {
		return nil, fmt.Errorf("%w: metadata at byte %d: %v", ErrCorrupt, fixedHeaderSize, err)
	}
	if hm.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("%w: metadata says format version %d, header %d", ErrCorrupt, hm.FormatVersion, FormatVersion)
	}
	sr.meta = Meta{FormatVersion: hm.FormatVersion, ClusterID: hm.ClusterID, RegistrarID: hm.RegistrarID, Build: hm.Build,
		RaftIndex: hm.RaftIndex, RaftTerm: hm.RaftTerm, Created: hm.Created}
	return sr, nil
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) }

// full reads len(b) bytes into b and hashes them; what names them in
// errors.
func (sr *Reader) full(b []byte, what string) error {
	if n, err := sr.read(b); err != nil {
		return sr.readError(err, what, len(b)-n)
	}
	return nil
}

// read reads len(b) bytes into b and hashes what it read.
func (sr *Reader) read(b []byte) (int, error) {
	n, err := io.ReadFull(sr.r, b)
	sr.h.Write(b[:n])
	sr.off += int64(n)
	return n, err
}

// readError is the error of a read that stopped missing bytes short.
func (sr *Reader) readError(err error, what string, missing int) error {
	if isEOF(err) {
		return fmt.Errorf("%w: %s ends at byte %d (%d bytes missing)", ErrTruncated, what, sr.off, missing)
	}
	return fmt.Errorf("read snapshot at byte %d: %w", sr.off, err)
}

// Meta returns the metadata; Pools and PEs are set once Next returned
// io.EOF.
func (sr *Reader) Meta() Meta { return sr.meta }

// Offset is the number of bytes read and checked so far (for progress).
func (sr *Reader) Offset() int64 { return sr.off }

// Next returns the next PE. At the end it checks the trailer and returns
// io.EOF; every mismatch is an error wrapping ErrCorrupt or ErrTruncated
// with the byte offset. After an error, Next returns it again. The PE is
// freshly decoded and owned by the caller, but not verified until Next
// returned io.EOF.
func (sr *Reader) Next() (store.PE, error) {
	if sr.err != nil {
		return store.PE{}, sr.err
	}
	pe, err := sr.next()
	if err != nil {
		sr.err = err
	}
	return pe, err
}

func (sr *Reader) corrupt(at int64, format string, a ...any) error {
	return fmt.Errorf("%w: %s at byte %d", ErrCorrupt, fmt.Sprintf(format, a...), at)
}

func (sr *Reader) next() (store.PE, error) {
	for {
		start := sr.off
		hdr, err := sr.r.Peek(4)
		if err != nil {
			if isEOF(err) {
				return store.PE{}, fmt.Errorf("%w: the body ends at byte %d without a trailer", ErrTruncated, sr.off+int64(len(hdr)))
			}
			return store.PE{}, fmt.Errorf("read snapshot at byte %d: %w", sr.off, err)
		}
		if bytes.Equal(hdr, trailerMagic[:4]) {
			return store.PE{}, sr.trailer()
		}
		t, l, _ := asap.ParamHeader(hdr) // Peek gave 4 bytes
		if l < asap.ParamHeaderSize {
			return store.PE{}, sr.corrupt(start, "parameter %s of length %d", t, l)
		}
		padded := asap.ParamPadded(l)
		if cap(sr.buf) < padded {
			sr.buf = make([]byte, 0, padded)
		}
		b := sr.buf[:padded]
		if n, err := sr.read(b); err != nil { // not full: its description would cost an allocation per parameter
			return store.PE{}, sr.readError(err, "parameter "+t.String(), padded-n)
		}
		switch t {
		case asap.ParamPoolHandle:
			if sr.hasReg {
				return store.PE{}, sr.corrupt(start, "registration time not followed by a pool element")
			}
			if sr.pools > 0 && sr.poolN == 0 {
				return store.PE{}, sr.corrupt(start, "pool %q has no pool elements", sr.handle)
			}
			d := asap.GetDecoder(b[:l], &asap.Limits{MaxPoolHandle: store.MaxHandleLen}, "snapshot")
			h, err := d.Region(0, l).PoolHandle()
			d.Release()
			if err != nil {
				return store.PE{}, sr.corrupt(start, "pool handle: %v", err)
			}
			if sr.pools > 0 && !handleLess(sr.handle, h) {
				return store.PE{}, sr.corrupt(start, "pool %q after pool %q (out of order or repeated)", h, sr.handle)
			}
			sr.handle, sr.poolN, sr.lastID = h, 0, 0
			sr.pools++
		case ParamRegistrationTime:
			v, _ := asap.ParamValue(b[:l])
			if len(v) != 8 || sr.hasReg || sr.pools == 0 {
				return store.PE{}, sr.corrupt(start, "misplaced registration time parameter of length %d", l)
			}
			sr.reg, sr.hasReg = int64(binary.BigEndian.Uint64(v)), true
		case asap.ParamPoolElement:
			if sr.pools == 0 {
				return store.PE{}, sr.corrupt(start, "pool element before any pool handle")
			}
			d := asap.GetDecoder(b[:l], nil, "snapshot")
			r := d.Region(0, l)
			el, err := r.PoolElement()
			if err == nil {
				err = r.AtEnd()
			}
			d.Release()
			if err != nil {
				return store.PE{}, sr.corrupt(start, "pool %q: pool element: %v", sr.handle, err)
			}
			if el.ID == 0 || el.ID <= sr.lastID {
				return store.PE{}, sr.corrupt(start, "pool %q: PE 0x%08x after 0x%08x (identifiers must be non-zero and increase)", sr.handle, el.ID, sr.lastID)
			}
			k := keyOf(&el)
			if sr.poolN == 0 {
				sr.key = k
			} else if k != sr.key {
				return store.PE{}, sr.corrupt(start, "pool %q: PE 0x%08x has policy %s / transport %s, the pool %s / %s", sr.handle, el.ID, k.policy, k.kind, sr.key.policy, sr.key.kind)
			}
			reg := sr.meta.Created.UnixNano()
			if sr.hasReg {
				reg, sr.hasReg = sr.reg, false
			}
			sr.lastID = el.ID
			sr.poolN++
			sr.pes++
			return store.PE{Handle: sr.handle, Element: el, Registered: reg}, nil
		default:
			if t&0x8000 == 0 {
				return store.PE{}, sr.corrupt(start, "unexpected parameter %s", t)
			}
			// An optional parameter of a later writer: skip it.
		}
	}
}

func (sr *Reader) trailer() error {
	start := sr.off
	if sr.hasReg {
		return sr.corrupt(start, "registration time not followed by a pool element")
	}
	if sr.pools > 0 && sr.poolN == 0 {
		return sr.corrupt(start, "pool %q has no pool elements", sr.handle)
	}
	t := make([]byte, 24)
	if err := sr.full(t, "trailer"); err != nil {
		return err
	}
	if !bytes.Equal(t[:8], trailerMagic) {
		return sr.corrupt(start, "bad trailer magic %q", t[:8])
	}
	sum := sr.h.Sum(nil)
	got := make([]byte, sha256.Size)
	n, err := io.ReadFull(sr.r, got)
	sr.off += int64(n)
	if err != nil {
		if isEOF(err) {
			return fmt.Errorf("%w: the checksum ends at byte %d (%d bytes missing)", ErrTruncated, sr.off, sha256.Size-n)
		}
		return fmt.Errorf("read snapshot at byte %d: %w", sr.off, err)
	}
	if !bytes.Equal(got, sum) {
		return fmt.Errorf("%w: SHA-256 mismatch: the content sums to %x..., the trailer at byte %d says %x...", ErrCorrupt, sum[:8], sr.off-sha256.Size, got[:8])
	}
	pools := int64(binary.BigEndian.Uint64(t[8:]))
	pes := int64(binary.BigEndian.Uint64(t[16:]))
	if pools != sr.pools || pes != sr.pes {
		return fmt.Errorf("%w: the trailer counts %d pools and %d PEs, the body has %d and %d", ErrCorrupt, pools, pes, sr.pools, sr.pes)
	}
	if _, err := sr.r.ReadByte(); err != io.EOF {
		if err != nil {
			return fmt.Errorf("read snapshot at byte %d: %w", sr.off, err)
		}
		return fmt.Errorf("%w: data after the trailer at byte %d", ErrCorrupt, sr.off)
	}
	sr.meta.Pools, sr.meta.PEs = pools, pes
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
		if _, err := sr.Next(); err == io.EOF {
			return sr.Meta(), nil
		} else if err != nil {
			return sr.Meta(), err
		}
	}
}
