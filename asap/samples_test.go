package asap_test

import (
	"encoding/hex"
	"net/netip"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/asap/wiretest"
)

// Short names for the hand-built wire helpers.
var (
	u16    = wiretest.U16
	u32    = wiretest.U32
	cat    = wiretest.Cat
	tlv    = wiretest.TLV
	msg    = wiretest.Msg
	ip4    = wiretest.IPv4
	ip6    = wiretest.IPv6
	handle = wiretest.Handle
	peid   = wiretest.PEID
	policy = wiretest.Policy
	sctp   = wiretest.SCTP
	tcp    = wiretest.TCP
	pe     = wiretest.PE
	cause  = wiretest.Cause
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

type sample struct {
	name string
	wire []byte
	msg  asap.Message
}

var (
	echoPE = asap.PoolElement{
		ID: 0x12345678, Home: 0, Lifetime: 30000,
		User:   asap.Transport{Kind: asap.ParamSCTPTransport, Port: 7000, Addrs: addrs("192.168.1.10", "10.0.0.10")},
		Policy: asap.Policy{Type: asap.PolicyRoundRobin},
	}
	lu25 = asap.Policy{Type: asap.PolicyLeastUsed, Load: 0x40000000}
)

// samples is a realistic instance of every ASAP message type (and several
// forms of some), with its wire bytes. Shared by the table, conformance,
// fuzz and benchmark tests.
func samples() []sample {
	return []sample{
		{"V1 registration", mustHex("010000400009000c4563686f506f6f6c000a0030123456780000000000007530000400181b58000000010008c0a8010a000100080a00000a0008000800000001"),
			&asap.Registration{PoolHandle: "EchoPool", PoolElement: echoPE}},
		{"registration tcp ipv6 wrr", msg(1, 0, handle("web"), pe(7, 0x11111111, 90000,
			tcp(8080, 1, ip6("2001:db8::7")), policy(2, 5))),
			&asap.Registration{PoolHandle: "web", PoolElement: asap.PoolElement{ID: 7, Home: 0x11111111, Lifetime: 90000,
				User:   asap.Transport{Kind: asap.ParamTCPTransport, Port: 8080, Use: asap.UseDataAndControl, Addrs: addrs("2001:db8::7")},
				Policy: asap.Policy{Type: asap.PolicyWeightedRoundRobin, Weight: 5}}}},
		{"registration udp lu", msg(1, 0, handle("dns"), pe(8, 0, 60000,
			tlv(6, u16(53), u16(0), ip4("192.0.2.53")), policy(0x40000001, 0x20000000))),
			&asap.Registration{PoolHandle: "dns", PoolElement: asap.PoolElement{ID: 8, Lifetime: 60000,
				User:   asap.Transport{Kind: asap.ParamUDPTransport, Port: 53, Addrs: addrs("192.0.2.53")},
				Policy: asap.Policy{Type: asap.PolicyLeastUsed, Load: 0x20000000}}}},
		{"registration udp-lite pri", msg(1, 0, handle("voice"), pe(9, 0, 60000,
			tlv(7, u16(5004), u16(0), ip4("192.0.2.9")), policy(5, 10))),
			&asap.Registration{PoolHandle: "voice", PoolElement: asap.PoolElement{ID: 9, Lifetime: 60000,
				User:   asap.Transport{Kind: asap.ParamUDPLiteTransport, Port: 5004, Addrs: addrs("192.0.2.9")},
				Policy: asap.Policy{Type: asap.PolicyPriority, Priority: 10}}}},
		{"registration dccp lud", msg(1, 0, handle("game"), pe(10, 0, 60000,
			tlv(3, u16(5001), u16(0), u32(42), ip4("192.0.2.10")), policy(0x40000002, 0x10000000, 0x01000000))),
			&asap.Registration{PoolHandle: "game", PoolElement: asap.PoolElement{ID: 10, Lifetime: 60000,
				User:   asap.Transport{Kind: asap.ParamDCCPTransport, Port: 5001, ServiceCode: 42, Addrs: addrs("192.0.2.10")},
				Policy: asap.Policy{Type: asap.PolicyLeastUsedDegradation, Load: 0x10000000, LoadDegradation: 0x01000000}}}},
		{"deregistration", msg(2, 0, handle("EchoPool"), peid(0x12345678)),
			&asap.Deregistration{PoolHandle: "EchoPool", ID: 0x12345678}},
		{"registration response ok", msg(3, 0, handle("EchoPool"), peid(0x12345678)),
			&asap.RegistrationResponse{PoolHandle: "EchoPool", ID: 0x12345678}},
		{"V8 registration response rejected", mustHex("0301002c0009000c4563686f506f6f6c000e000812345678000c0014000500100008000c0000000200000005"),
			&asap.RegistrationResponse{Reject: true, PoolHandle: "EchoPool", ID: 0x12345678,
				Error: asap.NewOperationError(asap.CauseInconsistentPolicy, policy(2, 5))}},
		{"deregistration response", msg(4, 0, handle("EchoPool"), peid(0x12345678)),
			&asap.DeregistrationResponse{PoolHandle: "EchoPool", ID: 0x12345678}},
		{"V2 handle resolution", mustHex("050000180009000b4672616374616c00803f000800000003"),
			&asap.HandleResolution{PoolHandle: "Fractal", HasItems: true, Items: 3}},
		{"handle resolution plain", msg(5, 0, handle("EchoPool")),
			&asap.HandleResolution{PoolHandle: "EchoPool"}},
		{"V3 handle resolution response", mustHex("060000800009000b4672616374616c000008000c4000000140000000000a00380a0b0c0d111111110000ea600005001c1f9000010002001420010db80000000000000000000000010008000c4000000140000000000a002c01020304222222220000ea60000400101f90000100010008c00002070008000c4000000180000000"),
			&asap.HandleResolutionResponse{PoolHandle: "Fractal", Policy: lu25, PEs: []asap.PoolElement{
				{ID: 0x0a0b0c0d, Home: 0x11111111, Lifetime: 60000,
					User:   asap.Transport{Kind: asap.ParamTCPTransport, Port: 8080, Use: asap.UseDataAndControl, Addrs: addrs("2001:db8::1")},
					Policy: lu25},
				{ID: 0x01020304, Home: 0x22222222, Lifetime: 60000,
					User:   asap.Transport{Kind: asap.ParamSCTPTransport, Port: 8080, Use: asap.UseDataAndControl, Addrs: addrs("192.0.2.7")},
					Policy: asap.Policy{Type: asap.PolicyLeastUsed, Load: 0x80000000}},
			}}},
		{"handle resolution response unknown pool", msg(6, 0, handle("nopool"), tlv(0x0c, cause(9, nil))),
			&asap.HandleResolutionResponse{PoolHandle: "nopool", Error: asap.NewOperationError(asap.CauseUnknownPoolHandle, nil)}},
		{"V4 keep alive", mustHex("0701001c111111110009000c4563686f506f6f6c000e000812345678"),
			&asap.EndpointKeepAlive{Home: true, ServerID: 0x11111111, PoolHandle: "EchoPool", HasID: true, ID: 0x12345678}},
		{"keep alive rfc form", msg(7, 0, u32(0x22222222), handle("EchoPool")),
			&asap.EndpointKeepAlive{ServerID: 0x22222222, PoolHandle: "EchoPool"}},
		{"keep alive ack", msg(8, 0, handle("EchoPool"), peid(0x12345678)),
			&asap.EndpointKeepAliveAck{PoolHandle: "EchoPool", ID: 0x12345678}},
		{"endpoint unreachable", msg(9, 0, handle("EchoPool"), peid(0x12345678)),
			&asap.EndpointUnreachable{PoolHandle: "EchoPool", ID: 0x12345678}},
		{"server announce rsplib", msg(10, 0, u32(0x11111111)),
			&asap.ServerAnnounce{ServerID: 0x11111111}},
		{"server announce with transports", msg(10, 0, u32(0x11111111), sctp(3863, 0, ip4("10.99.0.1"), ip6("fd00::1")), tcp(3863, 0, ip4("10.99.0.1"))),
			&asap.ServerAnnounce{ServerID: 0x11111111, Transports: []asap.Transport{
				{Kind: asap.ParamSCTPTransport, Port: 3863, Addrs: addrs("10.99.0.1", "fd00::1")},
				{Kind: asap.ParamTCPTransport, Port: 3863, Addrs: addrs("10.99.0.1")},
			}}},
		{"cookie", msg(11, 0, tlv(0x0d, []byte("<PP-TD1>\x00\x00\x00\x00\x00\x00\x00\x07"))),
			&asap.Cookie{Cookie: []byte("<PP-TD1>\x00\x00\x00\x00\x00\x00\x00\x07")}},
		{"cookie odd length", msg(11, 0, tlv(0x0d, []byte("abcde"))),
			&asap.Cookie{Cookie: []byte("abcde")}},
		{"cookie echo", msg(12, 0, tlv(0x0d, []byte("<PP-TD1>\x00\x00\x00\x00\x00\x00\x00\x07"))),
			&asap.CookieEcho{Cookie: []byte("<PP-TD1>\x00\x00\x00\x00\x00\x00\x00\x07")}},
		{"business card", msg(13, 0, handle("EchoPool"), policy(1),
			pe(1, 0x11111111, 30000, sctp(7000, 1, ip4("10.0.0.1")), policy(1)),
			pe(2, 0x11111111, 30000, sctp(7001, 1, ip4("10.0.0.2")), policy(1))),
			&asap.BusinessCard{PoolHandle: "EchoPool", Policy: asap.Policy{Type: asap.PolicyRoundRobin}, PEs: []asap.PoolElement{
				{ID: 1, Home: 0x11111111, Lifetime: 30000, User: asap.Transport{Kind: asap.ParamSCTPTransport, Port: 7000, Use: 1, Addrs: addrs("10.0.0.1")}, Policy: asap.Policy{Type: asap.PolicyRoundRobin}},
				{ID: 2, Home: 0x11111111, Lifetime: 30000, User: asap.Transport{Kind: asap.ParamSCTPTransport, Port: 7001, Use: 1, Addrs: addrs("10.0.0.2")}, Policy: asap.Policy{Type: asap.PolicyRoundRobin}},
			}}},
		{"error unrecognized parameter (rsplib)", mustHex("0e000014000c00100001000c41230008deadbeef"),
			&asap.Error{Error: *asap.NewOperationError(asap.CauseUnrecognizedParameter, mustHex("41230008deadbeef"))}},
		{"error unrecognized message", msg(14, 0, tlv(0x0c, cause(2, msg(0x7f, 0, handle("x"))))),
			&asap.Error{Error: *asap.NewOperationError(asap.CauseUnrecognizedMessage, msg(0x7f, 0, handle("x")))}},
	}
}

// policySamples covers every policy type with its values.
func policySamples() []struct {
	p    asap.Policy
	wire []byte
} {
	return []struct {
		p    asap.Policy
		wire []byte
	}{
		{asap.Policy{Type: asap.PolicyRoundRobin}, policy(1)},
		{asap.Policy{Type: asap.PolicyWeightedRoundRobin, Weight: 3}, policy(2, 3)},
		{asap.Policy{Type: asap.PolicyRandom}, policy(3)},
		{asap.Policy{Type: asap.PolicyWeightedRandom, Weight: 7}, policy(4, 7)},
		{asap.Policy{Type: asap.PolicyPriority, Priority: 9}, policy(5, 9)},
		{asap.Policy{Type: asap.PolicyLeastUsed, Load: 11}, policy(0x40000001, 11)},
		{asap.Policy{Type: asap.PolicyLeastUsedDegradation, Load: 12, LoadDegradation: 13}, policy(0x40000002, 12, 13)},
		{asap.Policy{Type: asap.PolicyPriorityLeastUsed, Load: 14, LoadDegradation: 15}, policy(0x40000003, 14, 15)},
		{asap.Policy{Type: asap.PolicyRandomizedLeastUsed, Load: 16}, policy(0x40000004, 16)},
		{asap.Policy{Type: asap.PolicyRandomizedPriorityLeastUsed, Load: 17, LoadDegradation: 18}, policy(0xB0001001, 17, 18)},
		{asap.Policy{Type: asap.PolicyRandomizedLeastUsedDegradation, Load: 19, LoadDegradation: 20}, policy(0xB0001002, 19, 20)},
		{asap.Policy{Type: asap.PolicyPriorityLeastUsedDegradation, Load: 21, LoadDegradation: 22}, policy(0xB0001003, 21, 22)},
		{asap.Policy{Type: asap.PolicyRandomizedPriorityLeastUsedDegradation, Load: 23, LoadDegradation: 24}, policy(0xB0001004, 23, 24)},
		{asap.Policy{Type: asap.PolicyWeightedRandomDPF, Weight: 25, WeightDPF: 26, Distance: 27}, policy(0xB0002001, 25, 26, 27)},
		{asap.Policy{Type: asap.PolicyLeastUsedDPF, Load: 28, LoadDPF: 29, Distance: 30}, policy(0xB0002002, 28, 29, 30)},
		{asap.Policy{Type: asap.PolicyLeastUsedDegradationDPF, Load: 31, LoadDegradation: 32, LoadDPF: 33, Distance: 34}, policy(0xB0002003, 31, 32, 33, 34)},
		{asap.Policy{Type: asap.PolicyPriorityLeastUsedDPF, Load: 35, LoadDegradation: 36, LoadDPF: 37, Distance: 38}, policy(0xB0002004, 35, 36, 37, 38)},
		{asap.Policy{Type: asap.PolicyPriorityLeastUsedDegradationDPF, Load: 39, LoadDegradation: 40, LoadDPF: 41, Distance: 42}, policy(0xB0002005, 39, 40, 41, 42)},
		{asap.Policy{Type: 0xB0003001, Raw: []uint32{1, 2}}, policy(0xB0003001, 1, 2)},
	}
}
