package asap

import (
	"bytes"
	"testing"
)

// handleResolutionSamples are handle resolutions Unpack takes, refuses or
// reports unrecognized parameters of, and other messages.
func handleResolutionSamples(t testing.TB) [][]byte {
	pack := func(m Message) []byte { return packOrFail(t, m) }
	plain := pack(&HandleResolution{PoolHandle: "EchoPool"})
	items := pack(&HandleResolution{PoolHandle: "EchoPool", HasItems: true, Items: 3})
	return [][]byte{
		plain, items,
		plain[:len(plain)-1], plain[:3], {},
		withParam(plain, 0x8fff), // skip and report
		withParam(plain, 0x4fff), // stop and report
		withParam(plain, 0xcfff), // skip, do not report
		withParam(items, 0x803f), // a second option
		pack(&HandleResolution{PoolHandle: PoolHandle(bytes.Repeat([]byte{'x'}, 300))}),
		pack(&Deregistration{PoolHandle: "EchoPool", ID: 1}),
		append([]byte{byte(TypeHandleResolution), 0, 0, 4}, 0),
	}
}

// packOrFail packs m, failing the test if it cannot.
func packOrFail(t testing.TB, m Message) []byte {
	t.Helper()
	b, err := Pack(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withParam returns b with an extra 8-byte parameter of type typ at the
// end, its message length updated.
func withParam(b []byte, typ uint16) []byte {
	out := append(bytes.Clone(b), byte(typ>>8), byte(typ), 0, 8, 1, 2, 3, 4)
	out[2], out[3] = byte(len(out)>>8), byte(len(out))
	return out
}

// Ensure ReadHandleResolution agrees with Unpack: it takes exactly the
// handle resolutions Unpack decodes without unrecognized parameters, with
// the same handle and items, and allocates nothing.
func TestReadHandleResolution(t *testing.T) {
	oks := 0
	for i, b := range handleResolutionSamples(t) {
		checkReadHandleResolution(t, b)
		if _, _, _, ok := ReadHandleResolution(b, nil); ok {
			oks++
			if a := testing.AllocsPerRun(100, func() { ReadHandleResolution(b, nil) }); a != 0 {
				t.Errorf("sample %d: %.1f allocations per read, want 0", i, a)
			}
		}
	}
	if oks < 3 {
		t.Errorf("%d samples read, want at least plain, with items and with a silently skipped parameter", oks)
	}
}

func checkReadHandleResolution(t testing.TB, b []byte) {
	h, items, has, ok := ReadHandleResolution(b, nil)
	m, unrec, err := Unpack(b, nil)
	hr, isHR := m.(*HandleResolution)
	want := err == nil && isHR && len(unrec) == 0
	if ok != want {
		t.Fatalf("% x: ReadHandleResolution ok %v; Unpack %T, %d unrecognized, error %v", b, ok, m, len(unrec), err)
	}
	if ok && (string(h) != string(hr.PoolHandle) || items != hr.Items || has != hr.HasItems) {
		t.Fatalf("% x: read %q %d %v, Unpack %+v", b, h, items, has, hr)
	}
}

func FuzzReadHandleResolution(f *testing.F) {
	for _, b := range handleResolutionSamples(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkReadHandleResolution(t, b) })
}
