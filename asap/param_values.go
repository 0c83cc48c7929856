package asap

import (
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"strconv"
)

// PoolHandle names a pool (RFC 5354 section 3.9): opaque bytes, at least
// one, without terminator. It is a string so that it can be a map key; it
// may hold any bytes.
type PoolHandle string

// MarshalText writes printable handles as they are and others as 0x-hex.
func (h PoolHandle) MarshalText() ([]byte, error) {
	if printable(string(h)) {
		return []byte(h), nil
	}
	return []byte("0x" + hex.EncodeToString([]byte(h))), nil
}

// UnmarshalText is the inverse of MarshalText.
func (h *PoolHandle) UnmarshalText(b []byte) error {
	s := string(b)
	if len(s) > 2 && s[:2] == "0x" {
		raw, err := hex.DecodeString(s[2:])
		if err != nil {
			return encErr("pool_handle", "bad hex: "+err.Error())
		}
		*h = PoolHandle(raw)
		return nil
	}
	*h = PoolHandle(s)
	return nil
}

func printable(s string) bool {
	if len(s) == 0 || (len(s) > 2 && s[:2] == "0x") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// Bytes is opaque data (cookies, cause information) shown as hex in JSON.
type Bytes []byte

// MarshalText writes lower-case hex.
func (b Bytes) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(b)), nil }

// UnmarshalText reads hex.
func (b *Bytes) UnmarshalText(t []byte) error {
	raw, err := hex.DecodeString(string(t))
	if err != nil {
		return encErr("bytes", "bad hex: "+err.Error())
	}
	*b = raw
	return nil
}

// TransportUse says whether a PE accepts ASAP control messages on its data
// channel (RFC 5354 section 3.3; SCTP and TCP transports only).
type TransportUse uint16

const (
	UseData           TransportUse = 0 // data only
	UseDataAndControl TransportUse = 1 // data plus control
)

// Transport is one of the transport parameters (SCTP, TCP, UDP, UDP-Lite,
// DCCP): where a PE's user (or ASAP) endpoint, or a registrar, can be
// reached. The zero value (Kind 0) means "absent".
type Transport struct {
	// Kind is the parameter type: ParamSCTPTransport, ParamTCPTransport,
	// ParamUDPTransport, ParamUDPLiteTransport or ParamDCCPTransport.
	Kind ParamType `json:"kind"`
	Port uint16    `json:"port"`
	// Use is meaningful for SCTP and TCP only (reserved 0 otherwise).
	Use TransportUse `json:"use,omitempty"`
	// ServiceCode is the DCCP service code (DCCP only).
	ServiceCode uint32 `json:"service_code,omitempty"`
	// Addrs lists the addresses: one or more for SCTP (multi-homing),
	// exactly one for the others.
	Addrs []netip.Addr `json:"addrs"`
}

// IsZero reports an absent transport.
func (t Transport) IsZero() bool { return t.Kind == 0 }

func isTransport(t ParamType) bool {
	return t >= ParamDCCPTransport && t <= ParamUDPLiteTransport
}

// AppendTransport encodes a transport parameter.
func AppendTransport(b []byte, t *Transport) ([]byte, error) {
	if !isTransport(t.Kind) {
		return b, encErr("transport", "kind "+t.Kind.String()+" is not a transport parameter")
	}
	if len(t.Addrs) == 0 {
		return b, encErr("transport", "no address")
	}
	if t.Kind != ParamSCTPTransport && len(t.Addrs) != 1 {
		return b, encErr("transport", t.Kind.String()+" transport takes exactly one address")
	}
	b, start := beginParam(b, t.Kind)
	b = appendU16(b, t.Port)
	switch t.Kind {
	case ParamSCTPTransport, ParamTCPTransport:
		b = appendU16(b, uint16(t.Use))
	case ParamDCCPTransport:
		b = appendU16(b, 0)
		b = appendU32(b, t.ServiceCode)
	default:
		b = appendU16(b, 0)
	}
	for i, a := range t.Addrs {
		var err error
		if b, err = appendAddress(b, a); err != nil {
			return b, encErr("transport.addrs["+strconv.Itoa(i)+"]", err.Error())
		}
	}
	return endParam(b, start, "transport")
}

func appendAddress(b []byte, a netip.Addr) ([]byte, error) {
	switch {
	case a.Is4():
		b = append(b, 0, 1, 0, 8)
		v := a.As4()
		return append(b, v[:]...), nil
	case a.Is6():
		if a.Zone() != "" {
			return b, encErr("address", "zones cannot be encoded: "+a.String())
		}
		b = append(b, 0, 2, 0, 20)
		v := a.As16()
		return append(b, v[:]...), nil
	}
	return b, encErr("address", "invalid address")
}

// Transport reads the next parameter, which must be a transport.
func (r *Reader) Transport() (Transport, error) {
	t, ok, err := r.Peek()
	if err != nil {
		return Transport{}, err
	}
	if !ok {
		return Transport{}, r.failParam(r.off, 0, withDetail(ErrMissingParam, "transport"), CauseInvalidValues)
	}
	if !isTransport(t) {
		_, length, _, _ := r.header()
		return Transport{}, r.failParam(r.off, length, withDetail(ErrUnexpectedParam, "want a transport, got "+t.String()), CauseInvalidValues)
	}
	v, start, _ := r.Expect(t)
	length := len(v) + 4
	var tr Transport
	tr.Kind = t
	fixed := 4
	if t == ParamDCCPTransport {
		fixed = 8
	}
	if len(v) < fixed {
		return tr, r.failParam(start, length, withDetail(ErrBadLength, t.String()+" transport of length "+strconv.Itoa(length)), CauseInvalidValues)
	}
	tr.Port = binary.BigEndian.Uint16(v)
	switch t {
	case ParamSCTPTransport, ParamTCPTransport:
		tr.Use = TransportUse(binary.BigEndian.Uint16(v[2:]))
		if tr.Use > UseDataAndControl {
			return tr, r.failParam(start, length, withDetail(ErrInvalidValue, "transport use "+strconv.Itoa(int(tr.Use))), CauseInvalidValues)
		}
	case ParamDCCPTransport:
		tr.ServiceCode = binary.BigEndian.Uint32(v[4:])
	}
	s, err := r.sub(start, fixed, length)
	if err != nil {
		return tr, err
	}
	tr.Addrs = make([]netip.Addr, 0, s.count(ParamIPv4Address, ParamIPv6Address))
	n := 0
	for {
		at, ok, err := s.Peek()
		if err != nil {
			return tr, prefix(err, "address["+strconv.Itoa(n)+"]")
		}
		if !ok {
			break
		}
		if at != ParamIPv4Address && at != ParamIPv6Address {
			if err := s.Unexpected(at); err != nil {
				return tr, prefix(err, "address["+strconv.Itoa(n)+"]")
			}
			continue
		}
		if len(tr.Addrs) >= r.d.Lim.MaxAddresses {
			return tr, r.failParam(start, length, withDetail(ErrInvalidValue, "more than "+strconv.Itoa(r.d.Lim.MaxAddresses)+" addresses"), CauseInvalidValues)
		}
		a, err := s.address(at)
		if err != nil {
			return tr, prefix(err, "address["+strconv.Itoa(n)+"]")
		}
		tr.Addrs = append(tr.Addrs, a)
		n++
	}
	if len(tr.Addrs) == 0 {
		return tr, r.failParam(start, length, withDetail(ErrMissingParam, "address"), CauseInvalidValues)
	}
	if t != ParamSCTPTransport && len(tr.Addrs) != 1 {
		return tr, r.failParam(start, length, withDetail(ErrInvalidValue, t.String()+" transport with "+strconv.Itoa(len(tr.Addrs))+" addresses (exactly one allowed)"), CauseInvalidValues)
	}
	return tr, nil
}

func (r *Reader) address(t ParamType) (netip.Addr, error) {
	v, start, err := r.Expect(t)
	if err != nil {
		return netip.Addr{}, err
	}
	switch {
	case t == ParamIPv4Address && len(v) == 4:
		return netip.AddrFrom4([4]byte(v)), nil
	case t == ParamIPv6Address && len(v) == 16:
		return netip.AddrFrom16([16]byte(v)), nil
	}
	return netip.Addr{}, r.failParam(start, len(v)+4, withDetail(ErrBadLength, t.String()+" of length "+strconv.Itoa(len(v)+4)), CauseInvalidValues)
}

// PoolHandle reads the next parameter, which must be a Pool Handle.
func (r *Reader) PoolHandle() (PoolHandle, error) {
	v, start, err := r.Expect(ParamPoolHandle)
	if err != nil {
		return "", prefix(err, "pool_handle")
	}
	if len(v) == 0 || len(v) > r.d.Lim.MaxPoolHandle {
		return "", prefix(r.failParam(start, len(v)+4, withDetail(ErrInvalidValue, "pool handle of "+strconv.Itoa(len(v))+" bytes (1 to "+strconv.Itoa(r.d.Lim.MaxPoolHandle)+" allowed)"), CauseInvalidValues), "pool_handle")
	}
	return PoolHandle(v), nil
}

// AppendPoolHandle encodes a Pool Handle parameter.
func AppendPoolHandle(b []byte, h PoolHandle) ([]byte, error) {
	if len(h) == 0 {
		return b, encErr("pool_handle", "empty pool handle")
	}
	b, start := beginParam(b, ParamPoolHandle)
	b = append(b, h...)
	return endParam(b, start, "pool_handle")
}

// fixed32 reads a parameter whose value is exactly one 32-bit word.
func (r *Reader) fixed32(t ParamType, name string) (uint32, error) {
	v, start, err := r.Expect(t)
	if err != nil {
		return 0, prefix(err, name)
	}
	if len(v) != 4 {
		return 0, prefix(r.failParam(start, len(v)+4, withDetail(ErrBadLength, t.String()+" of length "+strconv.Itoa(len(v)+4)+" (want 8)"), CauseInvalidValues), name)
	}
	return binary.BigEndian.Uint32(v), nil
}

// PEIdentifier reads a PE Identifier parameter.
func (r *Reader) PEIdentifier() (uint32, error) {
	return r.fixed32(ParamPEIdentifier, "pe_identifier")
}

// HandleResolutionOption reads the Handle Resolution Option (0x803F).
func (r *Reader) HandleResolutionOption() (uint32, error) {
	return r.fixed32(ParamHandleResolutionOption, "handle_resolution_option")
}

// AppendPEIdentifier encodes a PE Identifier parameter.
func AppendPEIdentifier(b []byte, id uint32) []byte {
	b = append(b, 0, byte(ParamPEIdentifier), 0, 8)
	return appendU32(b, id)
}

// PEChecksum reads a PE Checksum parameter (length 6, then 2 pad bytes).
func (r *Reader) PEChecksum() (uint16, error) {
	v, start, err := r.Expect(ParamPEChecksum)
	if err != nil {
		return 0, prefix(err, "pe_checksum")
	}
	if len(v) != 2 {
		return 0, prefix(r.failParam(start, len(v)+4, withDetail(ErrBadLength, "PE checksum of length "+strconv.Itoa(len(v)+4)+" (want 6)"), CauseInvalidValues), "pe_checksum")
	}
	return binary.BigEndian.Uint16(v), nil
}

// AppendPEChecksum encodes a PE Checksum parameter.
func AppendPEChecksum(b []byte, sum uint16) []byte {
	return append(b, 0, byte(ParamPEChecksum), 0, 6, byte(sum>>8), byte(sum), 0, 0)
}

// Cookie reads a Cookie parameter (opaque bytes, copied).
func (r *Reader) Cookie() (Bytes, error) {
	v, _, err := r.Expect(ParamCookie)
	if err != nil {
		return nil, prefix(err, "cookie")
	}
	return append(Bytes(nil), v...), nil
}

// AppendCookie encodes a Cookie parameter.
func AppendCookie(b []byte, c []byte) ([]byte, error) {
	b, start := beginParam(b, ParamCookie)
	b = append(b, c...)
	return endParam(b, start, "cookie")
}

// PoolElement is the Pool Element parameter (RFC 5354 section 3.10): a PE
// as registrars store and exchange it.
type PoolElement struct {
	ID uint32 `json:"id"`
	// Home is the ID of the registrar that owns the PE (0 in a first
	// registration).
	Home uint32 `json:"home"`
	// Lifetime is the registration life in milliseconds.
	Lifetime uint32 `json:"lifetime_ms"`
	// User is where PUs reach the PE.
	User Transport `json:"user_transport"`
	// Policy is the PE's member selection policy and its values.
	Policy Policy `json:"policy"`
	// ASAP is where the home registrar reaches the PE's ASAP endpoint.
	// Zero (absent) in registrations and in what PUs receive; present in
	// ENRP messages.
	ASAP Transport `json:"asap_transport,omitzero"`
}

// AppendPoolElement encodes a Pool Element parameter.
func AppendPoolElement(b []byte, pe *PoolElement) ([]byte, error) {
	b, start := beginParam(b, ParamPoolElement)
	b = appendU32(b, pe.ID)
	b = appendU32(b, pe.Home)
	b = appendU32(b, pe.Lifetime)
	var err error
	if b, err = AppendTransport(b, &pe.User); err != nil {
		return b, prefixEnc(err, "pool_element.user_transport")
	}
	if b, err = AppendPolicy(b, &pe.Policy); err != nil {
		return b, prefixEnc(err, "pool_element")
	}
	if !pe.ASAP.IsZero() {
		if b, err = AppendTransport(b, &pe.ASAP); err != nil {
			return b, prefixEnc(err, "pool_element.asap_transport")
		}
	}
	return endParam(b, start, "pool_element")
}

func prefixEnc(err error, p string) error {
	if e, ok := err.(*EncodeError); ok {
		e.Path = p + "." + e.Path
	}
	return err
}

// PoolElement reads a Pool Element parameter.
func (r *Reader) PoolElement() (PoolElement, error) {
	var pe PoolElement
	err := r.poolElement(&pe)
	return pe, err
}

// poolElement reads a Pool Element parameter into pe (no copy of the big
// struct on the hot path).
func (r *Reader) poolElement(pe *PoolElement) error {
	v, start, err := r.Expect(ParamPoolElement)
	if err != nil {
		return prefix(err, "pool_element")
	}
	length := len(v) + 4
	if len(v) < 12 {
		return prefix(r.failParam(start, length, withDetail(ErrBadLength, "pool element of length "+strconv.Itoa(length)), CauseInvalidValues), "pool_element")
	}
	pe.ID = binary.BigEndian.Uint32(v)
	pe.Home = binary.BigEndian.Uint32(v[4:])
	pe.Lifetime = binary.BigEndian.Uint32(v[8:])
	s, err := r.sub(start, 12, length)
	if err != nil {
		return prefix(err, "pool_element")
	}
	if pe.User, err = s.Transport(); err != nil {
		return prefix(prefix(err, "user_transport"), "pool_element")
	}
	if pe.Policy, err = s.Policy(); err != nil {
		return prefix(err, "pool_element")
	}
	t, ok, err := s.Peek()
	if err != nil {
		return prefix(err, "pool_element")
	}
	if ok && isTransport(t) {
		if pe.ASAP, err = s.Transport(); err != nil {
			return prefix(prefix(err, "asap_transport"), "pool_element")
		}
	}
	if err := s.AtEnd(); err != nil {
		return prefix(err, "pool_element")
	}
	return nil
}

// ServerInfo is the Server Information parameter (RFC 5354 section 3.11):
// a registrar's ID and its ENRP endpoint.
type ServerInfo struct {
	ID        uint32    `json:"id"`
	Transport Transport `json:"transport"`
}

// AppendServerInfo encodes a Server Information parameter.
func AppendServerInfo(b []byte, s *ServerInfo) ([]byte, error) {
	b, start := beginParam(b, ParamServerInfo)
	b = appendU32(b, s.ID)
	var err error
	if b, err = AppendTransport(b, &s.Transport); err != nil {
		return b, prefixEnc(err, "server_information")
	}
	return endParam(b, start, "server_information")
}

// ServerInfo reads a Server Information parameter.
func (r *Reader) ServerInfo() (ServerInfo, error) {
	var si ServerInfo
	v, start, err := r.Expect(ParamServerInfo)
	if err != nil {
		return si, prefix(err, "server_information")
	}
	length := len(v) + 4
	if len(v) < 4 {
		return si, prefix(r.failParam(start, length, withDetail(ErrBadLength, "server information of length "+strconv.Itoa(length)), CauseInvalidValues), "server_information")
	}
	si.ID = binary.BigEndian.Uint32(v)
	s, err := r.sub(start, 4, length)
	if err != nil {
		return si, prefix(err, "server_information")
	}
	if si.Transport, err = s.Transport(); err != nil {
		return si, prefix(prefix(err, "transport"), "server_information")
	}
	if err := s.AtEnd(); err != nil {
		return si, prefix(err, "server_information")
	}
	return si, nil
}
