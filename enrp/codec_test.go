package enrp_test

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/asap/wiretest"
	"github.com/rserpool-go/registrar/enrp"
)

var (
	u16    = wiretest.U16
	u32    = wiretest.U32
	tlv    = wiretest.TLV
	emsg   = wiretest.ENRPMsg
	ip4    = wiretest.IPv4
	handle = wiretest.Handle
	policy = wiretest.Policy
	sctp   = wiretest.SCTP
	pe     = wiretest.PE
	cause  = wiretest.Cause
)

const (
	idA = 0x11111111
	idB = 0x22222222
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func addrs(s ...string) []netip.Addr {
	var a []netip.Addr
	for _, x := range s {
		a = append(a, netip.MustParseAddr(x))
	}
	return a
}

// echoPE is the PE of vectors V6/V7, with its ASAP transport.
var echoPE = asap.PoolElement{
	ID: 0x12345678, Home: idA, Lifetime: 30000,
	User:   asap.Transport{Kind: asap.ParamSCTPTransport, Port: 7000, Addrs: addrs("192.168.1.10")},
	Policy: asap.Policy{Type: asap.PolicyRoundRobin},
	ASAP:   asap.Transport{Kind: asap.ParamSCTPTransport, Port: 40000, Addrs: addrs("192.168.1.10")},
}

var echoPEWire = pe(0x12345678, idA, 30000, sctp(7000, 0, ip4("192.168.1.10")), policy(1), sctp(40000, 0, ip4("192.168.1.10")))

var serverA = asap.ServerInfo{ID: idA, Transport: asap.Transport{Kind: asap.ParamSCTPTransport, Port: 9901, Addrs: addrs("192.168.1.1", "10.0.0.1")}}

type sample struct {
	name string
	wire []byte
	msg  enrp.Message
}

// samples is a realistic instance of every ENRP message type.
func samples() []sample {
	hdr := enrp.Header{Sender: idA, Receiver: idB}
	return []sample{
		{"V5 presence", mustHex("010100341111111122222222000f000629a50000000b0020111111110004001826ad000000010008c0a80101000100080a000001"),
			&enrp.Presence{Header: hdr, ReplyRequired: true, Checksum: 0x29a5, ServerInfo: serverA}},
		{"handle table request W", emsg(2, 1, idA, idB), &enrp.HandleTableRequest{Header: hdr, OwnOnly: true}},
		{"handle table request", emsg(2, 0, idA, 0), &enrp.HandleTableRequest{Header: enrp.Header{Sender: idA}}},
		{"V7 handle table response", mustHex("0302005011111111222222220009000c4563686f506f6f6c000a0038123456781111111100007530000400101b58000000010008c0a8010a0008000800000001000400109c40000000010008c0a8010a"),
			&enrp.HandleTableResponse{Header: hdr, More: true, Pools: []enrp.PoolEntry{{PoolHandle: "EchoPool", PEs: []asap.PoolElement{echoPE}}}}},
		{"handle table response two pools", emsg(3, 0, idA, idB, handle("EchoPool"), echoPEWire, echoPEWire, handle("Fractal"), echoPEWire),
			&enrp.HandleTableResponse{Header: hdr, Pools: []enrp.PoolEntry{
				{PoolHandle: "EchoPool", PEs: []asap.PoolElement{echoPE, echoPE}},
				{PoolHandle: "Fractal", PEs: []asap.PoolElement{echoPE}}}}},
		{"handle table response rejected", emsg(3, 1, idB, idA), &enrp.HandleTableResponse{Header: enrp.Header{Sender: idB, Receiver: idA}, Reject: true}},
		{"V6 handle update", mustHex("040000541111111122222222000000000009000c4563686f506f6f6c000a0038123456781111111100007530000400101b58000000010008c0a8010a0008000800000001000400109c40000000010008c0a8010a"),
			&enrp.HandleUpdate{Header: hdr, Action: enrp.AddPE, PoolHandle: "EchoPool", PoolElement: echoPE}},
		{"handle update del T", emsg(4, 1, idA, idB, u16(1), u16(0), handle("EchoPool"), echoPEWire),
			&enrp.HandleUpdate{Header: hdr, TakeoverSuggested: true, Action: enrp.DelPE, PoolHandle: "EchoPool", PoolElement: echoPE}},
		{"list request", emsg(5, 0, idA, idB), &enrp.ListRequest{Header: hdr}},
		{"list response", emsg(6, 0, idA, idB, tlv(0x0b, u32(idA), sctp(9901, 0, ip4("192.168.1.1"), ip4("10.0.0.1"))), tlv(0x0b, u32(0), sctp(9901, 0, ip4("10.0.0.3")))),
			&enrp.ListResponse{Header: hdr, Servers: []asap.ServerInfo{serverA,
				{ID: 0, Transport: asap.Transport{Kind: asap.ParamSCTPTransport, Port: 9901, Addrs: addrs("10.0.0.3")}}}}},
		{"list response rejected", emsg(6, 1, idA, idB), &enrp.ListResponse{Header: hdr, Reject: true}},
		{"init takeover", emsg(7, 0, idA, idB, u32(0x33333333)), enrp.NewInitTakeover(idA, idB, 0x33333333)},
		{"init takeover ack", emsg(8, 0, idB, idA, u32(0x33333333)), enrp.NewInitTakeoverAck(idB, idA, 0x33333333)},
		{"takeover server", emsg(9, 0, idA, 0, u32(0x33333333)), enrp.NewTakeoverServer(idA, 0, 0x33333333)},
		{"error (rsplib keeps offender ids)", emsg(10, 0, 0x0badbeef, idB, tlv(0x0c, cause(0x10, nil))),
			&enrp.Error{Header: enrp.Header{Sender: 0x0badbeef, Receiver: idB}, Error: *asap.NewOperationError(asap.CauseRSPLIBInvalidMessage, nil)}},
		{"error unrecognized message", emsg(10, 0, idB, idA, tlv(0x0c, cause(2, emsg(0x7f, 0, idA, idB)))),
			&enrp.Error{Header: enrp.Header{Sender: idB, Receiver: idA}, Error: *asap.NewOperationError(asap.CauseUnrecognizedMessage, emsg(0x7f, 0, idA, idB))}},
	}
}

// Ensure that the digest's ENRP vectors decode and re-encode byte for byte.
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
		if len(cols) != 3 || cols[0] != "enrp" {
			continue
		}
		n++
		b := mustHex(cols[2])
		m, _, err := enrp.Unpack(b, nil)
		if err != nil {
			t.Fatalf("%s: %v", cols[1], err)
		}
		if out, err := enrp.Pack(m); err != nil || !bytes.Equal(out, b) {
			t.Errorf("%s: re-encoded %x (%v), want %x", cols[1], out, err, b)
		}
	}
	if n != 3 {
		t.Errorf("got %d ENRP vectors, want 3 (V5-V7)", n)
	}
}

// Ensure that every message type decodes from hand-built bytes to the
// expected struct and encodes back to the same bytes.
func TestMessages(t *testing.T) {
	seen := map[enrp.Type]bool{}
	for _, s := range samples() {
		t.Run(s.name, func(t *testing.T) {
			seen[s.msg.Type()] = true
			got, _, err := enrp.Unpack(s.wire, nil)
			if err != nil {
				t.Fatalf("Unpack(%x): %v", s.wire, err)
			}
			if !reflect.DeepEqual(got, s.msg) {
				t.Errorf("decoded\n got %#v\nwant %#v", got, s.msg)
			}
			out, err := enrp.Pack(s.msg)
			if err != nil {
				t.Fatalf("Pack: %v", err)
			}
			if !bytes.Equal(out, s.wire) {
				t.Errorf("encoded\n got %x\nwant %x", out, s.wire)
			}
		})
	}
	for ty := enrp.TypePresence; ty <= enrp.TypeError; ty++ {
		if !seen[ty] {
			t.Errorf("no sample for %v", ty)
		}
	}
}

// Ensure that bad input gives an error naming the field and the offset.
func TestDecodeErrors(t *testing.T) {
	cases := []struct {
		name   string
		wire   []byte
		want   error
		path   string
		offset int
		code   asap.CauseCode
	}{
		{"no ids", []byte{5, 0, 0, 8, 0, 0, 0, 1}, asap.ErrBadLength, "header", 0, 3},
		{"update without action", emsg(4, 0, idA, idB), asap.ErrBadLength, "handle_update", 12, 3},
		{"update action 2", emsg(4, 0, idA, idB, u16(2), u16(0), handle("EchoPool"), echoPEWire), asap.ErrInvalidValue, "handle_update.action", 12, 3},
		{"update pe without asap transport is fine but handle missing", emsg(4, 0, idA, idB, u16(0), u16(0), echoPEWire), asap.ErrUnexpectedParam, "handle_update.pool_handle", 16, 3},
		{"presence without server info", emsg(1, 0, idA, idB, tlv(0x0f, u16(1))), asap.ErrMissingParam, "presence.server_information", 20, 3},
		{"checksum wrong length", emsg(1, 0, idA, idB, tlv(0x0f, u32(1))), asap.ErrBadLength, "presence.pe_checksum", 12, 3},
		{"table entry without PEs", emsg(3, 0, idA, idB, handle("EchoPool")), asap.ErrMissingParam, "handle_table_response.pools[0]", 24, 3},
		{"list request with a parameter", emsg(5, 0, idA, idB, tlv(0x4123, u32(1))), asap.ErrUnrecognizedParam, "list_request", 12, 1},
		{"takeover without target", emsg(7, 0, idA, idB), asap.ErrBadLength, "init_takeover", 12, 3},
		{"unknown type", emsg(0x7f, 0, idA, idB), asap.ErrUnknownMessage, "", 0, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := enrp.Unpack(c.wire, nil)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if !strings.HasPrefix(err.Error(), "enrp: ") {
				t.Errorf("error %q does not name the protocol", err)
			}
			cs, ok := asap.CauseOf(err)
			if !ok || cs.Code != c.code {
				t.Errorf("cause %v (%v), want %v", cs.Code, ok, c.code)
			}
			var de *asap.DecodeError
			if errors.As(err, &de) && (de.Path != c.path || de.Offset != c.offset) {
				t.Errorf("got path %q offset %d, want %q %d (%v)", de.Path, de.Offset, c.path, c.offset, err)
			}
		})
	}
}

// Ensure that PeekHeader reads the IDs of a message that does not decode.
func TestPeekHeader(t *testing.T) {
	bad := emsg(4, 0, idA, idB) // a HANDLE_UPDATE without its body
	if _, _, err := enrp.Unpack(bad, nil); err == nil {
		t.Fatal("the test message decodes")
	}
	if h, ok := enrp.PeekHeader(bad); !ok || h.Sender != idA || h.Receiver != idB {
		t.Errorf("PeekHeader = %+v, %v; want sender %x receiver %x", h, ok, idA, idB)
	}
	if _, ok := enrp.PeekHeader(bad[:11]); ok {
		t.Error("PeekHeader of 11 bytes succeeded")
	}
}

// Ensure that SplitMessage cuts messages laid back to back by their
// header lengths, padded or not, and refuses a buffer without a header.
func TestSplitMessage(t *testing.T) {
	a, _ := enrp.Pack(enrp.NewInitTakeover(idA, idB, 7))
	b, _ := enrp.Pack(&enrp.HandleUpdate{Header: enrp.Header{Sender: idA}, Action: enrp.AddPE, PoolHandle: "odd",
		PoolElement: asap.PoolElement{ID: 1, Lifetime: 1, User: asap.Transport{Kind: asap.ParamTCPTransport, Port: 1, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}},
			Policy: asap.Policy{Type: asap.PolicyRoundRobin}}})
	unpadded := append([]byte(nil), a...)
	unpadded[3] -= 3 // as RSPLIB writes lengths: without the final padding (up to 3 bytes)
	for _, c := range []struct {
		name  string
		buf   []byte
		parts [][]byte
	}{
		{"two messages", append(append([]byte(nil), a...), b...), [][]byte{a, b}},
		{"length without padding", append(append([]byte(nil), unpadded...), b...), [][]byte{unpadded, b}},
		{"last cut short", append(append([]byte(nil), b...), a[:len(a)-2]...), [][]byte{b, a[:len(a)-2]}},
	} {
		rest := c.buf
		for i, want := range c.parts {
			var got []byte
			var err error
			if got, rest, err = enrp.SplitMessage(rest); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s: part %d = %x, %v; want %x", c.name, i, got, err, want)
			}
		}
		if len(rest) != 0 {
			t.Errorf("%s: %d bytes left", c.name, len(rest))
		}
	}
	if _, _, err := enrp.SplitMessage(a[:3]); !errors.Is(err, asap.ErrTruncated) {
		t.Errorf("3 bytes: %v, want ErrTruncated", err)
	}
}

// Ensure that "skip and report" parameters come back for an ENRP_ERROR.
func TestUnrecognizedReported(t *testing.T) {
	wire := emsg(2, 0, idA, idB, tlv(0xC555, u32(7)))
	m, unrec, err := enrp.Unpack(wire, nil)
	if err != nil || m == nil {
		t.Fatal(err)
	}
	if len(unrec) != 1 || unrec[0].Type != 0xC555 || unrec[0].Offset != 12 {
		t.Fatalf("got %+v, want one report of 0xc555 at 12", unrec)
	}
}

// Ensure that the codec stays pure.
func TestNoForbiddenImports(t *testing.T) {
	forbidden := []string{"net", "os", "log", "fmt", "time", "io", "github.com/hashicorp/go-hclog", "log/slog"}
	files, _ := filepath.Glob("*.go")
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
				if p == bad {
					t.Errorf("%s imports %q: the codec must stay pure", f, p)
				}
			}
		}
	}
}

// FuzzUnpackPack checks that no input panics and that decode -> encode ->
// decode is stable.
func FuzzUnpackPack(f *testing.F) {
	for _, s := range samples() {
		f.Add(s.wire)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, _, err := enrp.Unpack(b, nil)
		if err != nil {
			return
		}
		out, err := enrp.Pack(m)
		if err != nil {
			t.Fatalf("decoded %x to %#v but cannot encode it: %v", b, m, err)
		}
		m2, _, err := enrp.Unpack(out, nil)
		if err != nil {
			t.Fatalf("re-encoded %x does not decode: %v", out, err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("not stable:\n%#v\n%#v", m, m2)
		}
	})
}

// Ensure that Wireshark decodes every ENRP message we encode, over SCTP
// with PPID 12 and (PRESENCE) over UDP 9901, with the key fields intact.
func TestWireshark(t *testing.T) {
	wiretest.Require(t)
	ss := samples()
	var wire [][]byte
	for _, s := range ss {
		b, err := enrp.Pack(s.msg)
		if err != nil {
			t.Fatal(err)
		}
		wire = append(wire, b)
	}
	fields := []string{"enrp.message_type", "enrp.message_length", "enrp.sender_servers_id", "enrp.receiver_servers_id",
		"enrp.pool_handle_pool_handle", "enrp.pool_element_pe_identifier", "enrp.pool_member_selection_policy_type",
		"enrp.target_servers_id", "enrp.pe_checksum", "enrp.update_action"}
	pkts := wiretest.Decode(t, wiretest.SCTPENRP, wire, fields)
	if len(pkts) != len(wire) {
		t.Fatalf("tshark returned %d packets, want %d", len(pkts), len(wire))
	}
	for i, p := range pkts {
		m := ss[i].msg
		name := ss[i].name
		if pr := p.Problems(); pr != "" {
			t.Errorf("%s (%x): %s", name, wire[i], pr)
		}
		check := func(field, want string) {
			if got := p.First(field); got != want {
				t.Errorf("%s: %s = %q, want %q", name, field, got, want)
			}
		}
		check("enrp.message_type", strconv.Itoa(int(m.Type())))
		check("enrp.message_length", strconv.Itoa(len(wire[i])))
		check("enrp.sender_servers_id", fmt.Sprintf("0x%08x", m.IDs().Sender))
		check("enrp.receiver_servers_id", fmt.Sprintf("0x%08x", m.IDs().Receiver))
		switch v := m.(type) {
		case *enrp.HandleUpdate:
			check("enrp.pool_handle_pool_handle", hex.EncodeToString([]byte(v.PoolHandle)))
			check("enrp.pool_element_pe_identifier", fmt.Sprintf("0x%08x", v.PoolElement.ID))
			check("enrp.pool_member_selection_policy_type", fmt.Sprintf("0x%08x", uint32(v.PoolElement.Policy.Type)))
			check("enrp.update_action", strconv.Itoa(int(v.Action)))
		case *enrp.Presence:
			check("enrp.pe_checksum", fmt.Sprintf("0x%04x", v.Checksum))
		case *enrp.InitTakeover:
			check("enrp.target_servers_id", fmt.Sprintf("0x%08x", v.Target))
		}
	}
	for i, p := range wiretest.Decode(t, wiretest.UDPENRP, wire[:1], []string{"enrp.message_type"}) {
		if pr := p.Problems(); pr != "" || p.First("enrp.message_type") != "1" {
			t.Errorf("presence %d over UDP: %q type %q", i, pr, p.First("enrp.message_type"))
		}
	}
}

func BenchmarkDecodeHandleUpdate(b *testing.B) {
	wire := samples()[6].wire
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := enrp.Unpack(wire, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeHandleUpdate(b *testing.B) {
	m := samples()[6].msg
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = enrp.Append(buf[:0], m)
	}
}
