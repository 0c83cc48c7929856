package asap_test

import (
	"bytes"
	"testing"

	"github.com/rserpool-go/registrar/asap"
)

// Ensure that the framing helpers read what the hand-built TLVs hold and
// that AppendParam writes what TLV builds.
func TestParamFraming(t *testing.T) {
	p := tlv(0xBF01, u32(1), u32(2))
	typ, length, ok := asap.ParamHeader(p)
	if !ok || typ != 0xBF01 || length != 12 || asap.ParamPadded(length) != 12 {
		t.Errorf("ParamHeader = %v %d %v", typ, length, ok)
	}
	if v, ok := asap.ParamValue(p); !ok || !bytes.Equal(v, cat(u32(1), u32(2))) {
		t.Errorf("ParamValue = %x, %v", v, ok)
	}
	odd := tlv(0x000D, []byte("abcde"))
	if _, length, _ := asap.ParamHeader(odd); length != 9 || asap.ParamPadded(length) != 12 || len(odd) != 12 {
		t.Errorf("odd cookie: length %d, padded %d", length, asap.ParamPadded(length))
	}
	for _, bad := range [][]byte{nil, p[:3], p[:11], cat(u16(1), u16(2))} {
		if _, ok := asap.ParamValue(bad); ok {
			t.Errorf("ParamValue(%x) succeeded", bad)
		}
	}
	got, err := asap.AppendParam([]byte{9}, 0x000D, []byte("abcde"))
	if err != nil || !bytes.Equal(got, cat([]byte{9}, odd)) {
		t.Errorf("AppendParam = %x, %v; want %x", got, err, cat([]byte{9}, odd))
	}
	if got, err := asap.AppendParam([]byte{9}, 0x000D, make([]byte, 65532)); err == nil || !bytes.Equal(got, []byte{9}) {
		t.Errorf("AppendParam of 65532 bytes: %d bytes, %v; want an error and the buffer unchanged", len(got), err)
	}
}

// Ensure that MessageType reads the type of every sample.
func TestMessageType(t *testing.T) {
	for _, s := range samples() {
		if typ, ok := asap.MessageType(s.wire); !ok || typ != s.msg.Type() {
			t.Errorf("%s: MessageType = %v, %v; want %v", s.name, typ, ok, s.msg.Type())
		}
	}
	if _, ok := asap.MessageType(nil); ok {
		t.Error("MessageType(nil) succeeded")
	}
}

// Ensure that CheckPoolElement accepts what ViewPoolElement accepts and
// returns the identifier.
func TestCheckPoolElement(t *testing.T) {
	for _, el := range viewSamples() {
		enc, _ := asap.AppendPoolElement(nil, &el)
		if id, err := asap.CheckPoolElement(enc); err != nil || id != el.ID {
			t.Errorf("PE %d: CheckPoolElement = %d, %v", el.ID, id, err)
		}
		if _, err := asap.CheckPoolElement(enc[:len(enc)-4]); err == nil {
			t.Errorf("PE %d cut short: accepted", el.ID)
		}
	}
}
