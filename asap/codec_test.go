package asap_test

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/rserpool-go/registrar/asap"
)

// Ensure that the digest's vectors (testdata/wire-vectors.tsv, checked by
// Wireshark and RSPLIB) decode and re-encode byte for byte.
func TestVectorsFile(t *testing.T) {
	f, err := os.Open("testdata/wire-vectors.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	s := bufio.NewScanner(f)
	for s.Scan() {
		cols := strings.Split(s.Text(), "\t")
		if len(cols) != 3 || cols[0] != "asap" {
			continue
		}
		n++
		t.Run(cols[1], func(t *testing.T) {
			b := mustHex(cols[2])
			m, unrec, err := asap.Unpack(b, nil)
			if err != nil {
				t.Fatalf("Unpack: %v", err)
			}
			if len(unrec) != 0 {
				t.Errorf("got %d unrecognized parameters, want 0", len(unrec))
			}
			out, err := asap.Pack(m)
			if err != nil {
				t.Fatalf("Pack: %v", err)
			}
			if !bytes.Equal(out, b) {
				t.Errorf("re-encoded\n got %x\nwant %x", out, b)
			}
		})
	}
	if n != 5 {
		t.Errorf("got %d ASAP vectors, want 5 (V1-V4, V8)", n)
	}
}

// Ensure that every message type decodes from hand-built bytes to the
// expected struct and encodes back to the same bytes.
func TestMessages(t *testing.T) {
	seen := map[asap.Type]bool{}
	for _, s := range samples() {
		t.Run(s.name, func(t *testing.T) {
			seen[s.msg.Type()] = true
			got, unrec, err := asap.Unpack(s.wire, nil)
			if err != nil {
				t.Fatalf("Unpack(%x): %v", s.wire, err)
			}
			if len(unrec) != 0 {
				t.Errorf("got %d unrecognized parameters, want 0", len(unrec))
			}
			if !reflect.DeepEqual(got, s.msg) {
				t.Errorf("decoded\n got %#v\nwant %#v", got, s.msg)
			}
			out, err := asap.Pack(s.msg)
			if err != nil {
				t.Fatalf("Pack: %v", err)
			}
			if !bytes.Equal(out, s.wire) {
				t.Errorf("encoded\n got %x\nwant %x", out, s.wire)
			}
		})
	}
	for ty := asap.TypeRegistration; ty <= asap.TypeError; ty++ {
		if !seen[ty] {
			t.Errorf("no sample for %v", ty)
		}
	}
}

// Ensure that every member selection policy (RFC 5356 and RSPLIB) has its
// wire layout, inside a registration.
func TestPolicies(t *testing.T) {
	for _, ps := range policySamples() {
		t.Run(ps.p.Type.String(), func(t *testing.T) {
			wire := msg(1, 0, handle("p"), pe(1, 0, 1000, sctp(1, 0, ip4("10.0.0.1")), ps.wire))
			m, _, err := asap.Unpack(wire, nil)
			if err != nil {
				t.Fatalf("Unpack: %v", err)
			}
			got := m.(*asap.Registration).PoolElement.Policy
			if !reflect.DeepEqual(got, ps.p) {
				t.Errorf("got %+v, want %+v", got, ps.p)
			}
			out, err := asap.Pack(m)
			if err != nil || !bytes.Equal(out, wire) {
				t.Errorf("re-encoded %x (err %v), want %x", out, err, wire)
			}
			if ps.p.Type.Known() {
				back, ok := asap.ParsePolicyType(ps.p.Type.String())
				if !ok || back != ps.p.Type {
					t.Errorf("ParsePolicyType(%q) = %v, %v", ps.p.Type.String(), back, ok)
				}
			}
		})
	}
}

// Ensure that every cause code round-trips in an ASAP_ERROR, with the
// information the RFC gives it.
func TestCauses(t *testing.T) {
	codes := []asap.CauseCode{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0x10, 0x11, 0x100B, 0xF000, 0xF007, 0xF008, 0xABCD}
	for _, c := range codes {
		var info []byte
		if c.NeedsInfo() {
			info = policy(2, 5)
			if c == asap.CauseUnrecognizedMessage {
				info = msg(0x7f, 0, handle("abc"))
			}
		}
		want := &asap.Error{Error: *asap.NewOperationError(c, info)}
		wire := msg(14, 0, tlv(0x0c, cause(uint16(c), info)))
		got, _, err := asap.Unpack(wire, nil)
		if err != nil {
			t.Fatalf("cause %v: %v", c, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("cause %v: got %+v, want %+v", c, got, want)
		}
		out, _ := asap.Pack(want)
		if !bytes.Equal(out, wire) {
			t.Errorf("cause %v: encoded %x, want %x", c, out, wire)
		}
		var back asap.CauseCode
		txt, _ := c.MarshalText()
		if err := back.UnmarshalText(txt); err != nil || back != c {
			t.Errorf("cause %v: text %q gives %v, %v", c, txt, back, err)
		}
	}
	// Several causes in one parameter, one with an odd-length info.
	wire := msg(14, 0, tlv(0x0c, cause(4, nil), cause(3, []byte{1, 2, 3})))
	got, _, err := asap.Unpack(wire, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := &asap.Error{Error: asap.OperationError{Causes: []asap.Cause{{Code: 4}, {Code: 3, Info: []byte{1, 2, 3}}}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if out, _ := asap.Pack(want); !bytes.Equal(out, wire) {
		t.Errorf("encoded %x, want %x", out, wire)
	}
}

// Ensure that the forms RSPLIB sends are accepted, and that encoding turns
// them into RFC-clean output.
func TestRSPLIBTolerance(t *testing.T) {
	t.Run("length without final padding", func(t *testing.T) {
		wire := msg(5, 0, handle("Fractal")) // 16 bytes, length 16
		short := append([]byte(nil), wire...)
		short[3] = 15 // RSPLIB-style length without the pad byte
		for _, in := range [][]byte{short, short[:15]} {
			m, _, err := asap.Unpack(in, nil)
			if err != nil {
				t.Fatalf("Unpack(%x): %v", in, err)
			}
			if out, _ := asap.Pack(m); !bytes.Equal(out, wire) {
				t.Errorf("re-encoded %x, want %x", out, wire)
			}
		}
	})
	t.Run("business card with the pool handle twice", func(t *testing.T) {
		wire := msg(13, 0, handle("EchoPool"), handle("EchoPool"), policy(1), pe(1, 2, 3, sctp(7, 1, ip4("10.0.0.1")), policy(1)))
		m, _, err := asap.Unpack(wire, nil)
		if err != nil {
			t.Fatal(err)
		}
		bc := m.(*asap.BusinessCard)
		if bc.PoolHandle != "EchoPool" || len(bc.PEs) != 1 || bc.Policy.Type != asap.PolicyRoundRobin {
			t.Errorf("got %+v", bc)
		}
	})
	t.Run("unassigned flags ignored", func(t *testing.T) {
		wire := msg(5, 0xfe, handle("echo"))
		m, _, err := asap.Unpack(wire, nil)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := asap.Pack(m)
		if out[1] != 0 {
			t.Errorf("flags re-encoded as %#x, want 0", out[1])
		}
	})
	t.Run("non-zero padding ignored", func(t *testing.T) {
		wire := msg(5, 0, handle("Fractal"))
		wire[15] = 0xff
		if _, _, err := asap.Unpack(wire, nil); err != nil {
			t.Fatal(err)
		}
	})
}

// Ensure that unknown parameters follow the two upper bits of their type.
func TestUnknownParameters(t *testing.T) {
	unknown := func(ty uint16) []byte { return tlv(ty, u32(0xdeadbeef)) }
	cases := []struct {
		name       string
		wire       []byte
		wantErr    bool
		wantReport bool // error carries a cause (01) / unrecognized list non-empty (11)
		wantUnrec  int
	}{
		{"00 stop silently", msg(5, 0, handle("echo"), unknown(0x0123)), true, false, 0},
		{"01 stop and report", msg(5, 0, handle("echo"), unknown(0x4123)), true, true, 0},
		{"10 skip", msg(5, 0, handle("echo"), unknown(0x8123)), false, false, 0},
		{"11 skip and report", msg(5, 0, handle("echo"), unknown(0xC123)), false, false, 1},
		{"10 skip before handle", msg(5, 0, unknown(0x8123), handle("echo")), false, false, 0},
		{"11 skip inside pool element", msg(1, 0, handle("p"), pe(1, 0, 1, unknown(0xC001), sctp(1, 0, ip4("10.0.0.1")), policy(1))), false, false, 1},
		{"11 skip inside transport", msg(1, 0, handle("p"), pe(1, 0, 1, sctp(1, 0, ip4("10.0.0.1"), unknown(0xC002)), policy(1))), false, false, 1},
		{"01 inside transport", msg(1, 0, handle("p"), pe(1, 0, 1, sctp(1, 0, unknown(0x4002), ip4("10.0.0.1")), policy(1))), true, true, 0},
		{"known but unexpected (skip bits)", msg(5, 0, handle("echo"), tlv(0x803f, u32(1)), tlv(0x803f, u32(2))), false, false, 0},
		{"known but unexpected", msg(5, 0, handle("echo"), tlv(0x0d, []byte("x"))), true, true, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, unrec, err := asap.Unpack(c.wire, nil)
			if (err != nil) != c.wantErr {
				t.Fatalf("got err %v, want error %v", err, c.wantErr)
			}
			if err != nil {
				var de *asap.DecodeError
				if !errors.As(err, &de) {
					t.Fatalf("error %T is not *DecodeError", err)
				}
				if de.Report() != c.wantReport {
					t.Errorf("Report() = %v, want %v", de.Report(), c.wantReport)
				}
				if c.wantReport {
					cs, _ := asap.CauseOf(err)
					if len(cs.Info) < 4 {
						t.Errorf("cause %v without the offending parameter", cs.Code)
					}
				}
				return
			}
			if m == nil || len(unrec) != c.wantUnrec {
				t.Errorf("got %d unrecognized, want %d", len(unrec), c.wantUnrec)
			}
			for _, u := range unrec {
				if u.Cause().Code != asap.CauseUnrecognizedParameter || !bytes.Equal(u.TLV[:2], c.wire[u.Offset:u.Offset+2]) {
					t.Errorf("bad report %+v", u)
				}
			}
		})
	}
}

// Ensure that bad input gives an error naming the field and the offset,
// wrapping the right failure class, and never a panic.
func TestDecodeErrors(t *testing.T) {
	big := make([]byte, 70000)
	big[0], big[2], big[3] = 5, 0xff, 0xff
	cases := []struct {
		name     string
		wire     []byte
		lim      *asap.Limits
		want     error
		path     string
		offset   int
		wantCode asap.CauseCode
	}{
		{"empty", nil, nil, asap.ErrTruncated, "header", 0, 3},
		{"short header", []byte{5, 0, 0}, nil, asap.ErrTruncated, "header", 0, 3},
		{"length below header", []byte{5, 0, 0, 2}, nil, asap.ErrBadLength, "header", 0, 3},
		{"length past data", cat([]byte{5, 0, 0, 0x20}, handle("echo")), nil, asap.ErrTruncated, "header", 0, 3},
		{"trailing bytes", cat(msg(5, 0, handle("echo")), u32(0)), nil, asap.ErrBadLength, "header", 0, 3},
		{"too large", big, nil, asap.ErrTooLarge, "header", 0, 3},
		{"param length 2", msg(5, 0, []byte{0, 9, 0, 2, 'a', 'b', 'c', 'd'}), nil, asap.ErrBadLength, "handle_resolution.pool_handle", 4, 3},
		{"param past message", msg(5, 0, []byte{0, 9, 0, 0x20, 'a', 'b', 'c', 'd'}), nil, asap.ErrTruncated, "handle_resolution.pool_handle", 4, 3},
		{"missing pool handle", msg(5, 0), nil, asap.ErrMissingParam, "handle_resolution.pool_handle", 4, 3},
		{"empty pool handle", msg(5, 0, tlv(9)), nil, asap.ErrInvalidValue, "handle_resolution.pool_handle", 4, 3},
		{"pool handle too long", msg(5, 0, handle(strings.Repeat("x", 33))), nil, asap.ErrInvalidValue, "handle_resolution.pool_handle", 4, 3},
		{"pool handle within raised limit", msg(5, 0, handle(strings.Repeat("x", 33))), &asap.Limits{MaxPoolHandle: 64}, nil, "", 0, 0},
		{"pe id wrong length", msg(2, 0, handle("p"), tlv(0x0e, u16(1))), nil, asap.ErrBadLength, "deregistration.pe_identifier", 12, 3},
		{"pool element too short", msg(1, 0, handle("p"), tlv(0x0a, u32(1))), nil, asap.ErrBadLength, "registration.pool_element", 12, 3},
		{"pool element without policy", msg(1, 0, handle("p"), pe(1, 0, 1, sctp(1, 0, ip4("10.0.0.1")))), nil, asap.ErrMissingParam, "registration.pool_element.policy", 44, 3},
		{"tcp with two addresses", msg(1, 0, handle("p"), pe(1, 0, 1, tlv(5, u16(1), u16(0), ip4("10.0.0.1"), ip4("10.0.0.2")), policy(1))), nil, asap.ErrInvalidValue, "registration.pool_element.user_transport", 28, 3},
		{"transport without address", msg(1, 0, handle("p"), pe(1, 0, 1, sctp(1, 0), policy(1))), nil, asap.ErrMissingParam, "registration.pool_element.user_transport", 28, 3},
		{"ipv4 address wrong length", msg(1, 0, handle("p"), pe(1, 0, 1, sctp(1, 0, tlv(1, u16(1))), policy(1))), nil, asap.ErrBadLength, "registration.pool_element.user_transport.address[0]", 36, 3},
		{"second address truncated", cat(msg(1, 0, handle("p"), pe(1, 0, 1, sctp(1, 0, ip4("10.0.0.1"), ip4("10.0.0.2")), policy(1)))[:40]), nil, asap.ErrTruncated, "header", 0, 3},
		{"transport use 7", msg(1, 0, handle("p"), pe(1, 0, 1, sctp(1, 7, ip4("10.0.0.1")), policy(1))), nil, asap.ErrInvalidValue, "registration.pool_element.user_transport", 28, 3},
		{"policy wrong length", msg(1, 0, handle("p"), pe(1, 0, 1, sctp(1, 0, ip4("10.0.0.1")), policy(2))), nil, asap.ErrBadLength, "registration.pool_element.policy", 44, 3},
		{"policy type 0", msg(1, 0, handle("p"), pe(1, 0, 1, sctp(1, 0, ip4("10.0.0.1")), policy(0))), nil, asap.ErrInvalidValue, "registration.pool_element.policy", 44, 3},
		{"too many addresses", msg(1, 0, handle("p"), pe(1, 0, 1, sctp(1, 0, ip4("10.0.0.1"), ip4("10.0.0.2"), ip4("10.0.0.3")), policy(1))), &asap.Limits{MaxAddresses: 2}, asap.ErrInvalidValue, "registration.pool_element.user_transport", 28, 3},
		{"nesting too deep", msg(1, 0, handle("p"), pe(1, 0, 1, sctp(1, 0, ip4("10.0.0.1")), policy(1))), &asap.Limits{MaxDepth: 2}, asap.ErrTooDeep, "registration.pool_element.user_transport", 28, 3},
		{"cause length past parameter", msg(14, 0, tlv(0x0c, u16(1), u16(40))), nil, asap.ErrBadLength, "error.operation_error.causes[0]", 8, 3},
		{"empty operation error", msg(14, 0, tlv(0x0c)), nil, asap.ErrMissingParam, "error.operation_error", 4, 3},
		{"keep alive without server id", msg(7, 0), nil, asap.ErrTruncated, "endpoint_keep_alive.server_id", 4, 3},
		{"stop silently", msg(5, 0, handle("echo"), tlv(0x0123, u32(1))), nil, asap.ErrUnrecognizedParam, "handle_resolution", 12, 0},
		{"unknown message type", msg(0x7f, 0, handle("x")), nil, asap.ErrUnknownMessage, "", 0, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := asap.Unpack(c.wire, c.lim)
			if c.want == nil {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("got error %v, want %v", err, c.want)
			}
			cs, ok := asap.CauseOf(err)
			if c.wantCode == 0 {
				if ok {
					t.Errorf("got cause %v, want a silent drop", cs.Code)
				}
			} else if !ok || cs.Code != c.wantCode {
				t.Errorf("got cause %v (%v), want %v", cs.Code, ok, c.wantCode)
			}
			var de *asap.DecodeError
			if !errors.As(err, &de) {
				return // unknown message
			}
			if de.Path != c.path || de.Offset != c.offset {
				t.Errorf("got path %q offset %d, want %q offset %d (%v)", de.Path, de.Offset, c.path, c.offset, err)
			}
			if !strings.Contains(err.Error(), "offset "+strconv.Itoa(c.offset)) || (c.path != "" && !strings.Contains(err.Error(), c.path)) {
				t.Errorf("message %q does not name the field and offset", err)
			}
		})
	}
}

// Ensure that encoding refuses values the wire cannot carry.
func TestEncodeErrors(t *testing.T) {
	good := echoPE
	cases := []struct {
		name string
		m    asap.Message
		path string
	}{
		{"empty handle", &asap.HandleResolution{}, "handle_resolution.pool_handle"},
		{"no address", &asap.Registration{PoolHandle: "p", PoolElement: func() asap.PoolElement {
			p := good
			p.User.Addrs = nil
			return p
		}()}, "registration.pool_element.user_transport.transport"},
		{"tcp with two addresses", &asap.Registration{PoolHandle: "p", PoolElement: func() asap.PoolElement {
			p := good
			p.User.Kind = asap.ParamTCPTransport
			return p
		}()}, "registration.pool_element.user_transport.transport"},
		{"no policy", &asap.Registration{PoolHandle: "p", PoolElement: func() asap.PoolElement {
			p := good
			p.Policy = asap.Policy{}
			return p
		}()}, "registration.pool_element.policy"},
		{"error without cause", &asap.Error{}, "error.operation_error"},
		{"too large", &asap.Cookie{Cookie: make([]byte, 70000)}, "cookie.cookie"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := asap.Pack(c.m)
			var ee *asap.EncodeError
			if !errors.As(err, &ee) {
				t.Fatalf("got %v, want *EncodeError", err)
			}
			if ee.Path != c.path {
				t.Errorf("got path %q, want %q", ee.Path, c.path)
			}
		})
	}
}

// Ensure the PE checksum gives the digest's test values (section 10.2),
// incrementally.
func TestChecksum(t *testing.T) {
	var c asap.Checksum
	if got := c.Value(); got != 0xFFFF {
		t.Errorf("empty: got %#04x, want 0xffff", got)
	}
	c.Add("EchoPool", 0x12345678)
	if got := c.Value(); got != 0x29A5 {
		t.Errorf("EchoPool: got %#04x, want 0x29a5", got)
	}
	c.Add("Fractal", 0x0A0B0C0D)
	if got := c.Value(); got != 0x8B55 {
		t.Errorf("both: got %#04x, want 0x8b55", got)
	}
	c.Remove("EchoPool", 0x12345678)
	if got := c.Value(); got != 0x61B0 {
		t.Errorf("Fractal: got %#04x, want 0x61b0", got)
	}
	c.Remove("Fractal", 0x0A0B0C0D)
	if got := c.Value(); got != 0xFFFF {
		t.Errorf("emptied: got %#04x, want 0xffff", got)
	}
}

// Ensure JSON names survive a text round trip (used by `rsp encode`).
func TestTextRoundTrip(t *testing.T) {
	for _, h := range []asap.PoolHandle{"EchoPool", "\x00\x01bin", "0xlooks-like-hex"} {
		txt, _ := h.MarshalText()
		var back asap.PoolHandle
		if err := back.UnmarshalText(txt); err != nil || back != h {
			t.Errorf("pool handle %q -> %q -> %q (%v)", h, txt, back, err)
		}
	}
	for ty := asap.TypeRegistration; ty <= asap.TypeError; ty++ {
		txt, _ := ty.MarshalText()
		var back asap.Type
		if err := back.UnmarshalText(txt); err != nil || back != ty {
			t.Errorf("type %v -> %q -> %v (%v)", ty, txt, back, err)
		}
	}
}

// Ensure that the codec stays pure: no sockets, files, clocks or loggers.
func TestNoForbiddenImports(t *testing.T) {
	checkImports(t, ".")
}

func checkImports(t *testing.T, dir string) {
	forbidden := []string{"net", "os", "log", "fmt", "time", "io", "github.com/hashicorp/go-hclog", "log/slog"}
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			for _, bad := range forbidden {
				if p == bad || strings.HasPrefix(p, bad+"/") && bad != "net" {
					t.Errorf("%s imports %q: the codec must stay pure", f, p)
				}
			}
		}
	}
}

// FuzzUnpackPack checks that no input panics, and that whatever decodes
// encodes to bytes that decode to the same message.
func FuzzUnpackPack(f *testing.F) {
	for _, s := range samples() {
		f.Add(s.wire)
	}
	f.Add(msg(5, 0, handle("echo"), tlv(0xC123, u32(1))))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, _, err := asap.Unpack(b, nil)
		if err != nil {
			return
		}
		out, err := asap.Pack(m)
		if err != nil {
			t.Fatalf("decoded %x to %#v but cannot encode it: %v", b, m, err)
		}
		m2, _, err := asap.Unpack(out, nil)
		if err != nil {
			t.Fatalf("re-encoded %x does not decode: %v", out, err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("not stable:\n%#v\n%#v", m, m2)
		}
		out2, _ := asap.Pack(m2)
		if !bytes.Equal(out, out2) {
			t.Fatalf("encoding not stable: %x vs %x", out, out2)
		}
	})
}

var _ = hex.EncodeToString
