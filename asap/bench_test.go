package asap_test

import (
	"testing"

	"github.com/rserpool-go/registrar/asap"
)

// hrr3 is a HANDLE_RESOLUTION_RESPONSE with 3 PEs, the common answer.
func hrr3() *asap.HandleResolutionResponse {
	m := &asap.HandleResolutionResponse{PoolHandle: "EchoPool", Policy: asap.Policy{Type: asap.PolicyRoundRobin}}
	for i := 0; i < 3; i++ {
		p := echoPE
		p.ID = uint32(i + 1)
		p.Home = 0x11111111
		m.PEs = append(m.PEs, p)
	}
	return m
}

func BenchmarkDecodeHandleResolutionResponse3(b *testing.B) {
	wire, _ := asap.Pack(hrr3())
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := asap.Unpack(wire, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeHandleResolutionResponse3(b *testing.B) {
	m := hrr3()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = asap.Append(buf[:0], m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendHandleResolutionResponse3 builds the same answer as
// BenchmarkEncodeHandleResolutionResponse3 from encoded PEs, as the
// registrar does: a view of each stored element, then the builder.
func BenchmarkAppendHandleResolutionResponse3(b *testing.B) {
	var encs []string
	for _, pe := range hrr3().PEs {
		enc, _ := asap.AppendPoolElement(nil, &pe)
		encs = append(encs, string(enc))
	}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = viewAndBuild(b, buf[:0], encs)
	}
}

func BenchmarkDecodeRegistration(b *testing.B) {
	wire := samples()[0].wire // V1
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := asap.Unpack(wire, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeRegistration(b *testing.B) {
	m := samples()[0].msg
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = asap.Append(buf[:0], m)
	}
}

func BenchmarkChecksumAdd(b *testing.B) {
	var c asap.Checksum
	for i := 0; b.Loop(); i++ {
		c.Add("EchoPool", uint32(i))
	}
	_ = c.Value()
}
