package raftlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// entryDiff describes how got differs from want, or returns "".
// AppendedAt is compared with time.Time.Equal; a zero want must decode as
// exactly the zero time.Time.
func entryDiff(got, want *raft.Log) string {
	var d []string
	if got.Index != want.Index {
		d = append(d, fmt.Sprintf("Index %d, want %d", got.Index, want.Index))
	}
	if got.Term != want.Term {
		d = append(d, fmt.Sprintf("Term %d, want %d", got.Term, want.Term))
	}
	if got.Type != want.Type {
		d = append(d, fmt.Sprintf("Type %v, want %v", got.Type, want.Type))
	}
	if !bytes.Equal(got.Data, want.Data) {
		d = append(d, fmt.Sprintf("Data %d bytes %.16x, want %d bytes %.16x", len(got.Data), got.Data, len(want.Data), want.Data))
	}
	if !bytes.Equal(got.Extensions, want.Extensions) {
		d = append(d, fmt.Sprintf("Extensions %x, want %x", got.Extensions, want.Extensions))
	}
	if want.AppendedAt.IsZero() {
		if got.AppendedAt != (time.Time{}) {
			d = append(d, fmt.Sprintf("AppendedAt %v, want the zero time", got.AppendedAt))
		}
	} else if !got.AppendedAt.Equal(want.AppendedAt) {
		d = append(d, fmt.Sprintf("AppendedAt %v, want %v", got.AppendedAt, want.AppendedAt))
	}
	return strings.Join(d, "; ")
}

func TestDecodeEntry(t *testing.T) {
	full := &raft.Log{Index: 300, Term: 70000, Type: raft.LogCommand, Data: []byte("data"),
		Extensions: []byte("ext"), AppendedAt: time.Unix(1700000000, 999)}
	enc := appendEntry(nil, full)

	t.Run("round trip", func(t *testing.T) {
		var l raft.Log
		if err := decodeEntry(bytes.Clone(enc), 300, &l); err != nil {
			t.Fatal(err)
		}
		if d := entryDiff(&l, full); d != "" {
			t.Error(d)
		}
		if cap(l.Data) != len(l.Data) {
			t.Errorf("Data has capacity %d past its %d bytes: an append would overwrite Extensions", cap(l.Data), len(l.Data))
		}
	})
	t.Run("every truncation", func(t *testing.T) {
		for n := 0; n < len(enc); n++ {
			var l raft.Log
			err := decodeEntry(bytes.Clone(enc[:n]), 300, &l)
			if !errors.Is(err, ErrEntryCorrupt) || !strings.Contains(err.Error(), "raft log index 300") {
				t.Errorf("%d of %d bytes: err = %v, want ErrEntryCorrupt naming index 300", n, len(enc), err)
			}
			if l.Index != 0 || l.Data != nil {
				t.Errorf("%d of %d bytes: the failed decode changed the log: %+v", n, len(enc), l)
			}
		}
	})

	bad := func(mutate func(b []byte) []byte) []byte { return mutate(bytes.Clone(enc)) }
	tests := []struct {
		name  string
		value []byte
		index uint64
		want  string
	}{
		{"trailing byte", append(bytes.Clone(enc), 0), 300, "trailing"},
		{"unknown version", bad(func(b []byte) []byte { b[0] = 2; return b }), 300, "version 2"},
		{"unknown flag", bad(func(b []byte) []byte { b[2] |= 0x80; return b }), 300, "flags"},
		{"index differs from key", enc, 301, "says index 300"},
		{"varint overflow", []byte{1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 1, "overflows"},
		{"data length beyond the value", []byte{1, 0, 0, 1, 1, 200, 'x'}, 1, "truncated Data"},
		{"nanoseconds out of range", append([]byte{1, 0, 1, 1, 1, 0, 0, 2}, binary.AppendUvarint(nil, uint64(time.Second))...), 1, "nanoseconds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l raft.Log
			err := decodeEntry(bytes.Clone(tt.value), tt.index, &l)
			if !errors.Is(err, ErrEntryCorrupt) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want ErrEntryCorrupt mentioning %q", err, tt.want)
			}
		})
	}
}

// FuzzDecodeEntry checks that decoding arbitrary bytes never panics, and
// that whatever decodes re-encodes to the same bytes.
func FuzzDecodeEntry(f *testing.F) {
	f.Add(appendEntry(nil, &raft.Log{Index: 1}), uint64(1))
	f.Add(appendEntry(nil, &raft.Log{Index: 5, Term: 2, Type: raft.LogConfiguration, Data: []byte("d"),
		Extensions: []byte("e"), AppendedAt: time.Unix(-5, 7)}), uint64(5))
	f.Add([]byte("garbage"), uint64(3))
	f.Fuzz(func(t *testing.T, b []byte, index uint64) {
		var l raft.Log
		if err := decodeEntry(bytes.Clone(b), index, &l); err != nil {
			if !errors.Is(err, ErrEntryCorrupt) {
				t.Fatalf("error %v is not ErrEntryCorrupt", err)
			}
			return
		}
		if again := appendEntry(nil, &l); !bytes.Equal(again, b) {
			// Varints have more than one encoding; a canonical
			// re-encoding must at least decode the same.
			var l2 raft.Log
			if err := decodeEntry(bytes.Clone(again), index, &l2); err != nil {
				t.Fatalf("re-encoding does not decode: %v", err)
			}
			if d := entryDiff(&l2, &l); d != "" {
				t.Fatalf("re-encoding decodes differently: %s", d)
			}
		}
	})
}
