package asap

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// handleResolutionResponseSamples are responses Unpack takes, refuses or
// reports unrecognized parameters of, and other messages.
func handleResolutionResponseSamples(t testing.TB) [][]byte {
	pack := func(m Message) []byte { return packOrFail(t, m) }
	pe := func(id uint32) PoolElement {
		return PoolElement{ID: id, Home: 7, Lifetime: 60000,
			User:   Transport{Kind: ParamTCPTransport, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}, Port: 8000 + uint16(id)},
			Policy: Policy{Type: PolicyRoundRobin}}
	}
	three := pack(&HandleResolutionResponse{PoolHandle: "EchoPool", Policy: Policy{Type: PolicyRoundRobin}, PEs: []PoolElement{pe(1), pe(2), pe(3)}})
	empty := pack(&HandleResolutionResponse{PoolHandle: "EchoPool"})
	refused := pack(&HandleResolutionResponse{PoolHandle: "EchoPool", Error: NewOperationError(CauseUnrecognizedParameter, nil)})
	vector, err := hex.DecodeString("060000800009000b4672616374616c000008000c4000000140000000000a00380a0b0c0d111111110000ea600005001c1f9000010002001420010db80000000000000000000000010008000c40000001")
	if err != nil {
		t.Fatal(err)
	}
	badPE := bytes.Clone(three)
	badPE[len(badPE)-4] ^= 0xff // the last PE's policy parameter's value
	out := [][]byte{
		three, empty, refused, vector,
		three[:3], {},
		withParam(three, 0x8fff), // skip and report
		withParam(three, 0x4fff), // stop and report
		withParam(three, 0xcfff), // skip, do not report
		withParam(empty, 0x0009), // a second pool handle
		badPE,
		pack(&HandleResolution{PoolHandle: "EchoPool"}),
		append([]byte{byte(TypeHandleResolutionResponse), 0, 0, 4}, 0),
	}
	for i := 1; i < len(three); i += 7 {
		out = append(out, three[:i])
	}
	return out
}

// Ensure ReadHandleResolutionResponse agrees with Unpack: it takes the
// responses Unpack decodes without unrecognized parameters or an operation
// error, with the same handle and number of PEs, and only those and ones
// Unpack refuses for a PE's inner fields; and it allocates nothing.
func TestReadHandleResolutionResponse(t *testing.T) {
	oks := 0
	for i, b := range handleResolutionResponseSamples(t) {
		checkReadHandleResolutionResponse(t, b)
		if _, _, ok := ReadHandleResolutionResponse(b, nil); ok {
			oks++
			if a := testing.AllocsPerRun(100, func() { ReadHandleResolutionResponse(b, nil) }); a != 0 {
				t.Errorf("sample %d: %.1f allocations per read, want 0", i, a)
			}
		}
	}
	if oks < 4 {
		t.Errorf("%d samples read, want at least three PEs, none, the vector and a silently skipped parameter", oks)
	}
}

func checkReadHandleResolutionResponse(t testing.TB, b []byte) {
	h, n, ok := ReadHandleResolutionResponse(b, nil)
	m, unrec, err := Unpack(b, nil)
	r, isR := m.(*HandleResolutionResponse)
	want := err == nil && isR && len(unrec) == 0 && r.Error == nil
	var de *DecodeError
	if ok && !want && errors.As(err, &de) && strings.Contains(de.Path, ".pool_elements[") {
		return // a PE's inner fields, which the reader leaves to Unpack
	}
	if ok != want {
		t.Fatalf("% x: ReadHandleResolutionResponse ok %v; Unpack %T, %d unrecognized, error %v", b, ok, m, len(unrec), err)
	}
	if ok && (string(h) != string(r.PoolHandle) || n != len(r.PEs)) {
		t.Fatalf("% x: read %q with %d PEs, Unpack %q with %d", b, h, n, r.PoolHandle, len(r.PEs))
	}
}

func FuzzReadHandleResolutionResponse(f *testing.F) {
	for _, b := range handleResolutionResponseSamples(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkReadHandleResolutionResponse(t, b) })
}
