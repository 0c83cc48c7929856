package wiretest

import "net/netip"

// Hand-built wire bytes for tests. These helpers frame TLVs independently
// of the codec (RFC 5354 section 2: a TLV length excludes its padding) so
// table tests check the codec against a second implementation.

// U16 and U32 encode big-endian integers.
func U16(v uint16) []byte { return []byte{byte(v >> 8), byte(v)} }

// U32 encodes a big-endian 32-bit integer.
func U32(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }

// Cat concatenates byte slices.
func Cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// TLV builds a parameter of type t whose value is the parts, padded.
func TLV(t uint16, parts ...[]byte) []byte {
	v := Cat(parts...)
	b := Cat(U16(t), U16(uint16(4+len(v))), v)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// Msg builds an ASAP message (or any message with a 4-byte header).
func Msg(t, flags byte, parts ...[]byte) []byte {
	body := Cat(parts...)
	return Cat([]byte{t, flags}, U16(uint16(4+len(body))), body)
}

// ENRPMsg builds an ENRP message with sender and receiver IDs.
func ENRPMsg(t, flags byte, sender, receiver uint32, parts ...[]byte) []byte {
	return Msg(t, flags, Cat(U32(sender), U32(receiver)), Cat(parts...))
}

// IPv4 and IPv6 build address parameters.
func IPv4(s string) []byte { a := netip.MustParseAddr(s).As4(); return TLV(1, a[:]) }

// IPv6 builds an IPv6 address parameter.
func IPv6(s string) []byte { a := netip.MustParseAddr(s).As16(); return TLV(2, a[:]) }

// Handle builds a Pool Handle parameter.
func Handle(s string) []byte { return TLV(9, []byte(s)) }

// PEID builds a PE Identifier parameter.
func PEID(id uint32) []byte { return TLV(0x0e, U32(id)) }

// Policy builds a member selection policy parameter.
func Policy(t uint32, vals ...uint32) []byte {
	p := [][]byte{U32(t)}
	for _, v := range vals {
		p = append(p, U32(v))
	}
	return TLV(8, p...)
}

// SCTP builds an SCTP transport parameter.
func SCTP(port, use uint16, addrs ...[]byte) []byte {
	return TLV(4, Cat(U16(port), U16(use)), Cat(addrs...))
}

// TCP builds a TCP transport parameter.
func TCP(port, use uint16, addr []byte) []byte { return TLV(5, U16(port), U16(use), addr) }

// PE builds a Pool Element parameter.
func PE(id, home, life uint32, parts ...[]byte) []byte {
	return TLV(0x0a, U32(id), U32(home), U32(life), Cat(parts...))
}

// Cause builds one error cause (to put in an Operation Error, TLV 0x0c).
func Cause(code uint16, info []byte) []byte {
	b := Cat(U16(code), U16(uint16(4+len(info))), info)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}
