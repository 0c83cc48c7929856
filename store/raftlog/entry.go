package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// ErrEntryCorrupt is wrapped by the error of a stored log entry that does
// not decode; the wrapping error names the log index.
var ErrEntryCorrupt = errors.New("corrupt raft log entry")

// Log entry encoding, version 1: the payload of a WAL record. All integers
// are unsigned varints (encoding/binary Uvarint) unless noted:
//
//	version     1 byte   entryEncodingV1
//	type        1 byte   raft.LogType
//	flags       1 byte   bit 0: AppendedAt follows; other bits must be 0
//	index       uvarint  must equal the index the record is stored at
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
	entryEncodingV1 byte = 1

	entryFlagAppendedAt byte = 1 << 0
	entryKnownFlags          = entryFlagAppendedAt
)

// appendEntry appends the encoding of l to dst.
func appendEntry(dst []byte, l *raft.Log) []byte {
	var flags byte
	if !l.AppendedAt.IsZero() {
		flags |= entryFlagAppendedAt
	}
	dst = append(dst, entryEncodingV1, byte(l.Type), flags)
	dst = binary.AppendUvarint(dst, l.Index)
	dst = binary.AppendUvarint(dst, l.Term)
	dst = binary.AppendUvarint(dst, uint64(len(l.Data)))
	dst = append(dst, l.Data...)
	dst = binary.AppendUvarint(dst, uint64(len(l.Extensions)))
	dst = append(dst, l.Extensions...)
	if flags&entryFlagAppendedAt != 0 {
		dst = binary.AppendVarint(dst, l.AppendedAt.Unix())
		dst = binary.AppendUvarint(dst, uint64(l.AppendedAt.Nanosecond()))
	}
	return dst
}

// decodeEntry decodes b, the entry stored at index, into l. b must be a
// buffer nothing else uses or changes (read from a file into a fresh
// slice): Data and Extensions point into it. On error l is unchanged and
// the error wraps ErrEntryCorrupt and names the index.
func decodeEntry(b []byte, index uint64, l *raft.Log) error {
	d := entryDecoder{b: b}
	out, err := d.decode()
	if err == nil && out.Index != index {
		err = fmt.Errorf("entry says index %d", out.Index)
	}
	if err != nil {
		return fmt.Errorf("raft log index %d: %w: %w", index, ErrEntryCorrupt, err)
	}
	*l = out
	return nil
}

// entryDecoder reads the fields of one encoded entry in order.
type entryDecoder struct {
	b   []byte
	off int
}

func (d *entryDecoder) decode() (raft.Log, error) {
	var l raft.Log
	if len(d.b) < 3 {
		return l, fmt.Errorf("%d bytes, want at least 3", len(d.b))
	}
	if v := d.b[0]; v != entryEncodingV1 {
		return l, fmt.Errorf("unknown encoding version %d", v)
	}
	l.Type = raft.LogType(d.b[1])
	flags := d.b[2]
	if flags&^entryKnownFlags != 0 {
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
	if flags&entryFlagAppendedAt != 0 {
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
	if dataLen > 0 {
		l.Data = d.b[dataOff : dataOff+dataLen : dataOff+dataLen]
	}
	if extLen > 0 {
		l.Extensions = d.b[extOff : extOff+extLen : extOff+extLen]
	}
	return l, nil
}

// uvarint reads an unsigned varint field.
func (d *entryDecoder) uvarint(field string) (uint64, error) {
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		return 0, d.varintError(field, n)
	}
	d.off += n
	return v, nil
}

// length reads a length field and checks that that many bytes follow.
func (d *entryDecoder) length(field string) (int, error) {
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
func (d *entryDecoder) varintError(field string, n int) error {
	if n == 0 {
		return fmt.Errorf("truncated at %s (offset %d of %d)", field, d.off, len(d.b))
	}
	return fmt.Errorf("%s overflows 64 bits (offset %d)", field, d.off)
}
