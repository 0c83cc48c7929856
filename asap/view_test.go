package asap_test

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"testing"

	"github.com/rserpool-go/registrar/asap"
)

// viewSamples are Pool Elements of every shape a registrar stores: one
// and several addresses, IPv4 and IPv6, with and without an ASAP
// transport, every policy layout.
func viewSamples() []asap.PoolElement {
	out := []asap.PoolElement{echoPE}
	withASAP := echoPE
	withASAP.ID, withASAP.Home = 2, 0x11111111
	withASAP.ASAP = asap.Transport{Kind: asap.ParamSCTPTransport, Port: 3863, Addrs: addrs("192.168.1.10", "fd00::1")}
	out = append(out, withASAP)
	for i, p := range policySamples() {
		el := asap.PoolElement{ID: uint32(100 + i), Home: uint32(i), Lifetime: uint32(1000 * i),
			User:   asap.Transport{Kind: asap.ParamTCPTransport, Port: 8080, Use: asap.UseDataAndControl, Addrs: addrs("2001:db8::7")},
			Policy: p.p}
		if i%2 == 0 {
			el.ASAP = asap.Transport{Kind: asap.ParamTCPTransport, Port: 9000, Addrs: addrs("192.0.2.1")}
		}
		out = append(out, el)
	}
	return out
}

func mustView(t testing.TB, el *asap.PoolElement) asap.PoolElementView {
	t.Helper()
	enc, err := asap.AppendPoolElement(nil, el)
	if err != nil {
		t.Fatal(err)
	}
	v, err := asap.ViewPoolElement(string(enc))
	if err != nil {
		t.Fatalf("view of %x: %v", enc, err)
	}
	return v
}

// Ensure that a view reads every field as the decoder does, and that its
// policy parameter is the one the encoder writes.
func TestPoolElementView_Fields(t *testing.T) {
	for _, el := range viewSamples() {
		v := mustView(t, &el)
		if v.ID() != el.ID || v.Home() != el.Home || v.Lifetime() != el.Lifetime {
			t.Errorf("PE %d: view ID/home/life %d/%d/%d, want %d/%d/%d", el.ID, v.ID(), v.Home(), v.Lifetime(), el.ID, el.Home, el.Lifetime)
		}
		if v.UserTransportKind() != el.User.Kind || v.PolicyType() != el.Policy.Type || v.HasASAPTransport() != !el.ASAP.IsZero() {
			t.Errorf("PE %d: view kind %v policy %v asap %v, want %v %v %v", el.ID, v.UserTransportKind(), v.PolicyType(),
				v.HasASAPTransport(), el.User.Kind, el.Policy.Type, !el.ASAP.IsZero())
		}
		pol, _ := asap.AppendPolicy(nil, &el.Policy)
		if got := v.PolicyParam(); got != string(pol[:len(got)]) || len(pol) != (len(got)+3)&^3 {
			t.Errorf("PE %d: policy parameter %x, want %x", el.ID, got, pol)
		}
		dec, err := v.Decode()
		if err != nil || !reflect.DeepEqual(dec, el) {
			t.Errorf("PE %d: Decode = %+v, %v; want %+v", el.ID, dec, err, el)
		}
	}
}

// Ensure that WithHome changes the home registrar of a copy and nothing
// else, and leaves the original as it was.
func TestPoolElementView_WithHome(t *testing.T) {
	for _, el := range viewSamples() {
		v := mustView(t, &el)
		orig := v.Encoded()
		w := v.WithHome(0xCAFEBABE)
		if v.Encoded() != orig || v.Home() != el.Home {
			t.Fatalf("PE %d: WithHome changed the original", el.ID)
		}
		want := el
		want.Home = 0xCAFEBABE
		enc, _ := asap.AppendPoolElement(nil, &want)
		if w.Encoded() != string(enc) || w.Home() != 0xCAFEBABE || w.PolicyParam() != v.PolicyParam() {
			t.Errorf("PE %d: WithHome gives %x, want %x", el.ID, w.Encoded(), enc)
		}
	}
}

// Ensure that what is not a Pool Element in its canonical form is refused
// with an error naming the field, never a panic: every truncation, a
// wrong type, lengths that point outside, a parameter after the ASAP
// transport.
func TestPoolElementView_Malformed(t *testing.T) {
	el := viewSamples()[1] // with an ASAP transport
	enc, _ := asap.AppendPoolElement(nil, &el)
	for n := 0; n < len(enc); n++ {
		if _, err := asap.ViewPoolElement(string(enc[:n])); err == nil {
			t.Errorf("truncated to %d of %d bytes: accepted", n, len(enc))
		}
	}
	bad := map[string][]byte{
		"a pool handle":           handle("EchoPool"),
		"policy type":             cat(u16(0x0008), enc[2:]),
		"length past the end":     cat(enc[:2], u16(uint16(len(enc)+4)), enc[4:]),
		"length below the fixed":  cat(enc[:2], u16(12), enc[4:]),
		"user transport too long": cat(enc[:18], u16(0x0400), enc[20:]),
		"user transport a cookie": pe(1, 2, 3, tlv(0x0d, u32(1)), policy(1)),
		"no policy":               pe(1, 2, 3, sctp(1, 0, ip4("10.0.0.1")), sctp(1, 0, ip4("10.0.0.1"))),
		"policy too long":         pe(1, 2, 3, tcp(1, 0, ip4("10.0.0.1")), cat(u16(8), u16(200), u32(1))),
		"cookie after the policy": pe(1, 2, 3, tcp(1, 0, ip4("10.0.0.1")), policy(1), tlv(0x0d, u32(1))),
		"two transports after":    pe(1, 2, 3, tcp(1, 0, ip4("10.0.0.1")), policy(1), tcp(2, 0, ip4("10.0.0.2")), tcp(3, 0, ip4("10.0.0.3"))),
		"bytes after the padding": append(append([]byte(nil), enc...), 0, 0, 0, 0),
	}
	for name, b := range bad {
		_, err := asap.ViewPoolElement(string(b))
		var de *asap.DecodeError
		if !errors.As(err, &de) || de.Path != "pool_element" {
			t.Errorf("%s (%x): got %v, want a *DecodeError of pool_element", name, b, err)
		}
	}
}

// pusForm returns the elements as PUs receive them: without the ASAP
// transport.
func pusForm(els []asap.PoolElement) []asap.PoolElement {
	out := append([]asap.PoolElement(nil), els...)
	for i := range out {
		out[i].ASAP = asap.Transport{}
	}
	return out
}

// Ensure that the builder writes exactly what the codec encodes from
// decoded values: the policy of the first PE, the PEs without their ASAP
// transport, the message length.
func TestAppendHandleResolutionResponse_SameAsEncoder(t *testing.T) {
	els := viewSamples()
	for n := 0; n <= len(els); n++ {
		var views []asap.PoolElementView
		for i := range els[:n] {
			views = append(views, mustView(t, &els[i]))
		}
		m := &asap.HandleResolutionResponse{PoolHandle: "EchoPool", PEs: pusForm(els[:n])}
		if n > 0 {
			m.Policy = els[0].Policy
		}
		want, err := asap.Append([]byte{0xAA}, m)
		if err != nil {
			t.Fatal(err)
		}
		got, k, err := asap.AppendHandleResolutionResponse([]byte{0xAA}, "EchoPool", views)
		if err != nil || k != n || !bytes.Equal(got, want) {
			t.Fatalf("%d PEs: got %x, %d, %v\nwant %x", n, got, k, err, want)
		}
	}
}

// Ensure that an answer over 64 KiB carries as many PEs as fit: the
// message stays within the 16-bit length, decodes, and one more PE would
// not have fit.
func TestAppendHandleResolutionResponse_Truncates(t *testing.T) {
	var els []asap.PoolElement
	var views []asap.PoolElementView
	for i := 0; i < 120; i++ {
		el := asap.PoolElement{ID: uint32(i + 1), Home: 1, Lifetime: 5000,
			User:   asap.Transport{Kind: asap.ParamSCTPTransport, Port: 7000},
			Policy: asap.Policy{Type: asap.PolicyLeastUsedDegradationDPF, Load: 1, LoadDegradation: 2, LoadDPF: 3, Distance: 4},
			ASAP:   asap.Transport{Kind: asap.ParamSCTPTransport, Port: 7001, Addrs: addrs("10.0.0.1")}}
		for j := 0; j < asap.DefaultMaxAddresses; j++ {
			el.User.Addrs = append(el.User.Addrs, netip.AddrFrom16([16]byte{0xfd, 15: byte(j), 14: byte(i)}))
		}
		els = append(els, el)
		views = append(views, mustView(t, &el))
	}
	got, n, err := asap.AppendHandleResolutionResponse(nil, "BigPool", views)
	if err != nil {
		t.Fatalf("answer of 120 PEs of 64 IPv6 addresses: %v", err)
	}
	// 49 is the bound the documentation promises for the largest PEs.
	if n < 49 || n >= len(views) || len(got) > asap.DefaultMaxMessageSize {
		t.Fatalf("%d PEs in %d bytes; want at least 49 of %d and at most 65535 bytes", n, len(got), len(views))
	}
	one := len(got) - 4 - 12 - 24 // header, pool handle, policy: the rest is n PEs of one size
	if one%n != 0 || len(got)+one/n <= asap.DefaultMaxMessageSize {
		t.Errorf("%d bytes with %d PEs: one more of %d bytes would have fit", len(got), n, one/n)
	}
	m, _, err := asap.Unpack(got, nil)
	if err != nil {
		t.Fatalf("truncated answer does not decode: %v", err)
	}
	want := &asap.HandleResolutionResponse{PoolHandle: "BigPool", Policy: els[0].Policy, PEs: pusForm(els[:n])}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("truncated answer decodes to something else than the first %d PEs", n)
	}
}

// Ensure that the errors leave the buffer as it was.
func TestAppendHandleResolutionResponse_Errors(t *testing.T) {
	v := mustView(t, &echoPE)
	dst := []byte{1, 2, 3}
	if got, n, err := asap.AppendHandleResolutionResponse(dst, "", []asap.PoolElementView{v}); err == nil || n != 0 || !bytes.Equal(got, dst) {
		t.Errorf("empty pool handle: %x, %d, %v; want the buffer unchanged and an error", got, n, err)
	}
	huge := asap.PoolHandle(bytes.Repeat([]byte("h"), 65500))
	if got, n, err := asap.AppendHandleResolutionResponse(dst, huge, []asap.PoolElementView{v}); err == nil || n != 0 || !bytes.Equal(got, dst) {
		t.Errorf("a pool handle that leaves no room: %d bytes, %d PEs, %v; want the buffer unchanged and an error", len(got), n, err)
	}
}

// viewAndBuild is the registrar's resolution fast path: view each stored
// element, build the answer into buf.
func viewAndBuild(t testing.TB, buf []byte, encs []string) []byte {
	var vb [8]asap.PoolElementView
	views := vb[:0]
	for _, e := range encs {
		v, err := asap.ViewPoolElement(e)
		if err != nil {
			t.Fatal(err)
		}
		views = append(views, v)
	}
	buf, _, err := asap.AppendHandleResolutionResponse(buf, "EchoPool", views)
	if err != nil {
		t.Fatal(err)
	}
	return buf
}

// Ensure that the resolution fast path allocates nothing: viewing a
// stored element and building a 3-PE answer into a buffer with room.
func TestAppendHandleResolutionResponse_Allocs(t *testing.T) {
	els := viewSamples()[:3]
	var encs []string
	for i := range els {
		enc, _ := asap.AppendPoolElement(nil, &els[i])
		encs = append(encs, string(enc))
	}
	buf := make([]byte, 0, 1024)
	allocs := testing.AllocsPerRun(100, func() { buf = viewAndBuild(t, buf[:0], encs) })
	if allocs != 0 {
		t.Errorf("view and build of a 3-PE answer: %v allocations, want 0", allocs)
	}
}

// FuzzViewPoolElement checks that no input panics the view, and that what
// it accepts and the decoder decodes reads the same through both, and
// answers a resolution that decodes to it.
func FuzzViewPoolElement(f *testing.F) {
	for _, el := range viewSamples() {
		enc, _ := asap.AppendPoolElement(nil, &el)
		f.Add(enc)
	}
	f.Add(pe(1, 2, 3, tcp(1, 0, ip4("10.0.0.1")), policy(1), tlv(0x0d, u32(1))))
	f.Add(pe(1, 2, 3, tcp(1, 0, ip4("10.0.0.1")), cat(u16(8), u16(200), u32(1))))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := asap.ViewPoolElement(string(b))
		if err != nil {
			return
		}
		w := v.WithHome(v.Home() + 1)
		if w.Home() != v.Home()+1 || w.ID() != v.ID() {
			t.Fatalf("WithHome of %x: home %d id %d", b, w.Home(), w.ID())
		}
		el, err := v.Decode()
		if err != nil {
			return // framing fine, values not (an address of a bad length, ...)
		}
		if el.ID != v.ID() || el.Home != v.Home() || el.Lifetime != v.Lifetime() || el.Policy.Type != v.PolicyType() ||
			el.User.Kind != v.UserTransportKind() || el.ASAP.IsZero() == v.HasASAPTransport() {
			t.Fatalf("%x: view and decoder disagree: %+v", b, el)
		}
		msg, n, err := asap.AppendHandleResolutionResponse(nil, "P", []asap.PoolElementView{v, w})
		if err != nil || n != 2 {
			t.Fatalf("%x: answer: %d PEs, %v", b, n, err)
		}
		m, _, err := asap.Unpack(msg, nil)
		if err != nil {
			t.Fatalf("%x: answer %x does not decode: %v", b, msg, err)
		}
		r := m.(*asap.HandleResolutionResponse)
		el.ASAP = asap.Transport{}
		if len(r.PEs) != 2 || !reflect.DeepEqual(r.PEs[0], el) || r.PEs[1].Home != el.Home+1 {
			t.Fatalf("%x: answer decodes to %+v, want %+v", b, r.PEs, el)
		}
	})
}
