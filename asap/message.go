package asap

import (
	"encoding/binary"
	"strconv"
)

// Type is an ASAP message type (RFC 5352 section 2.2).
//
// WARNING: only append to this list. The values are part of the protocol.
type Type uint8

const (
	TypeRegistration             Type = 0x01
	TypeDeregistration           Type = 0x02
	TypeRegistrationResponse     Type = 0x03
	TypeDeregistrationResponse   Type = 0x04
	TypeHandleResolution         Type = 0x05
	TypeHandleResolutionResponse Type = 0x06
	TypeEndpointKeepAlive        Type = 0x07
	TypeEndpointKeepAliveAck     Type = 0x08
	TypeEndpointUnreachable      Type = 0x09
	TypeServerAnnounce           Type = 0x0A
	TypeCookie                   Type = 0x0B
	TypeCookieEcho               Type = 0x0C
	TypeBusinessCard             Type = 0x0D
	TypeError                    Type = 0x0E
)

var typeNames = [...]string{
	TypeRegistration:             "ASAP_REGISTRATION",
	TypeDeregistration:           "ASAP_DEREGISTRATION",
	TypeRegistrationResponse:     "ASAP_REGISTRATION_RESPONSE",
	TypeDeregistrationResponse:   "ASAP_DEREGISTRATION_RESPONSE",
	TypeHandleResolution:         "ASAP_HANDLE_RESOLUTION",
	TypeHandleResolutionResponse: "ASAP_HANDLE_RESOLUTION_RESPONSE",
	TypeEndpointKeepAlive:        "ASAP_ENDPOINT_KEEP_ALIVE",
	TypeEndpointKeepAliveAck:     "ASAP_ENDPOINT_KEEP_ALIVE_ACK",
	TypeEndpointUnreachable:      "ASAP_ENDPOINT_UNREACHABLE",
	TypeServerAnnounce:           "ASAP_SERVER_ANNOUNCE",
	TypeCookie:                   "ASAP_COOKIE",
	TypeCookieEcho:               "ASAP_COOKIE_ECHO",
	TypeBusinessCard:             "ASAP_BUSINESS_CARD",
	TypeError:                    "ASAP_ERROR",
}

func (t Type) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return "ASAP_0x" + strconv.FormatUint(uint64(t), 16)
}

// MarshalText writes the name, e.g. ASAP_REGISTRATION.
func (t Type) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText accepts a name (with or without the ASAP_ prefix, any case
// of the prefix is not accepted) or a number.
func (t *Type) UnmarshalText(b []byte) error {
	s := string(b)
	for i, n := range typeNames {
		if n != "" && (n == s || n[5:] == s) {
			*t = Type(i)
			return nil
		}
	}
	v, err := strconv.ParseUint(s, 0, 8)
	if err != nil {
		return encErr("type", "unknown ASAP message type "+strconv.Quote(s))
	}
	*t = Type(v)
	return nil
}

// Message is an ASAP message. The set of implementations is closed: the
// structs of this package.
type Message interface {
	// Type is the message type.
	Type() Type
	flags() uint8
	name() string
	appendBody(b []byte) ([]byte, error)
	parse(r *Reader, flags uint8) error
}

// New returns an empty message of type t, or nil for an unknown type.
func New(t Type) Message {
	switch t {
	case TypeRegistration:
		return &Registration{}
	case TypeDeregistration:
		return &Deregistration{}
	case TypeRegistrationResponse:
		return &RegistrationResponse{}
	case TypeDeregistrationResponse:
		return &DeregistrationResponse{}
	case TypeHandleResolution:
		return &HandleResolution{}
	case TypeHandleResolutionResponse:
		return &HandleResolutionResponse{}
	case TypeEndpointKeepAlive:
		return &EndpointKeepAlive{}
	case TypeEndpointKeepAliveAck:
		return &EndpointKeepAliveAck{}
	case TypeEndpointUnreachable:
		return &EndpointUnreachable{}
	case TypeServerAnnounce:
		return &ServerAnnounce{}
	case TypeCookie:
		return &Cookie{}
	case TypeCookieEcho:
		return &CookieEcho{}
	case TypeBusinessCard:
		return &BusinessCard{}
	case TypeError:
		return &Error{}
	}
	return nil
}

// Pack encodes m into a new buffer.
func Pack(m Message) ([]byte, error) { return Append(make([]byte, 0, 64), m) }

// Append encodes m at the end of b. The message length written includes
// the padding of the last parameter (what RSPLIB and Wireshark expect).
func Append(b []byte, m Message) ([]byte, error) {
	start := len(b)
	b = append(b, byte(m.Type()), m.flags(), 0, 0)
	b, err := m.appendBody(b)
	if err != nil {
		return b[:start], prefixEnc(err, m.name())
	}
	n := len(b) - start
	if n > DefaultMaxMessageSize {
		return b[:start], encErr(m.name(), "message of "+strconv.Itoa(n)+" bytes exceeds 65535")
	}
	binary.BigEndian.PutUint16(b[start+2:], uint16(n))
	return b, nil
}

// MessageType returns the type of the message in b from its header,
// without decoding it (to skip messages a caller does not wait for); ok is
// false for an empty b.
func MessageType(b []byte) (t Type, ok bool) {
	if len(b) == 0 {
		return 0, false
	}
	return Type(b[0]), true
}

// CheckFrame validates the common header of an ASAP or ENRP message in b
// (hdr is the size of the fixed part: 4 for ASAP, 12 for ENRP) and returns
// the message length from the header. It accepts a header length that
// leaves out the final padding, as RSPLIB does.
func CheckFrame(b []byte, lim *Limits, hdr int, proto string) (int, error) {
	fail := func(err error) error {
		return &DecodeError{Proto: proto, Path: "header", Err: err, Code: CauseInvalidValues}
	}
	if len(b) < 4 {
		return 0, fail(withDetail(ErrTruncated, "message of "+strconv.Itoa(len(b))+" bytes has no header"))
	}
	if len(b) > lim.MaxMessageSize {
		return 0, fail(withDetail(ErrTooLarge, strconv.Itoa(len(b))+" bytes, limit "+strconv.Itoa(lim.MaxMessageSize)))
	}
	n := int(binary.BigEndian.Uint16(b[2:]))
	switch {
	case n < hdr:
		return 0, fail(withDetail(ErrBadLength, "message length "+strconv.Itoa(n)+" is below "+strconv.Itoa(hdr)))
	case n > len(b):
		return 0, fail(withDetail(ErrTruncated, "message length "+strconv.Itoa(n)+" but "+strconv.Itoa(len(b))+" bytes present"))
	case len(b) > (n+3)&^3:
		return 0, fail(withDetail(ErrBadLength, strconv.Itoa(len(b)-n)+" bytes after the message length "+strconv.Itoa(n)))
	}
	return n, nil
}

// Unpack decodes one ASAP message (lim nil = DefaultLimits). The second
// result lists the unknown parameters whose type says "skip and report":
// a server acts on the message and also answers with an ASAP_ERROR
// carrying their causes. Errors are *DecodeError or *UnknownMessageError.
func Unpack(b []byte, lim *Limits) (Message, []Unrecognized, error) {
	d := GetDecoder(b, lim, "asap")
	defer d.Release()
	n, err := CheckFrame(b, &d.Lim, 4, "asap")
	if err != nil {
		return nil, nil, err
	}
	m := New(Type(b[0]))
	if m == nil {
		return nil, nil, &UnknownMessageError{Proto: "asap", Type: b[0], Message: append([]byte(nil), b[:n]...)}
	}
	r := d.Region(4, n)
	if err := m.parse(r, b[1]); err != nil {
		return nil, nil, prefix(err, m.name())
	}
	return m, d.Unrec, nil
}

// ---- messages ----

// Registration (ASAP_REGISTRATION, 0x01): a PE registers (or re-registers)
// under a pool handle at its home registrar.
type Registration struct {
	PoolHandle  PoolHandle  `json:"pool_handle"`
	PoolElement PoolElement `json:"pool_element"`
}

func (*Registration) Type() Type   { return TypeRegistration }
func (*Registration) flags() uint8 { return 0 }
func (*Registration) name() string { return "registration" }
func (m *Registration) appendBody(b []byte) ([]byte, error) {
	b, err := AppendPoolHandle(b, m.PoolHandle)
	if err != nil {
		return b, err
	}
	return AppendPoolElement(b, &m.PoolElement)
}
func (m *Registration) parse(r *Reader, _ uint8) (err error) {
	if m.PoolHandle, err = r.PoolHandle(); err != nil {
		return err
	}
	if m.PoolElement, err = r.PoolElement(); err != nil {
		return err
	}
	return r.AtEnd()
}

// Deregistration (ASAP_DEREGISTRATION, 0x02): a PE leaves its pool.
type Deregistration struct {
	PoolHandle PoolHandle `json:"pool_handle"`
	ID         uint32     `json:"pe_identifier"`
}

func (*Deregistration) Type() Type   { return TypeDeregistration }
func (*Deregistration) flags() uint8 { return 0 }
func (*Deregistration) name() string { return "deregistration" }
func (m *Deregistration) appendBody(b []byte) ([]byte, error) {
	return appendHandleID(b, m.PoolHandle, m.ID)
}
func (m *Deregistration) parse(r *Reader, _ uint8) (err error) {
	m.PoolHandle, m.ID, err = parseHandleID(r)
	if err != nil {
		return err
	}
	return r.AtEnd()
}

func appendHandleID(b []byte, h PoolHandle, id uint32) ([]byte, error) {
	b, err := AppendPoolHandle(b, h)
	if err != nil {
		return b, err
	}
	return AppendPEIdentifier(b, id), nil
}

func parseHandleID(r *Reader) (h PoolHandle, id uint32, err error) {
	if h, err = r.PoolHandle(); err != nil {
		return
	}
	id, err = r.PEIdentifier()
	return
}

// optionalError reads an Operation Error parameter if one comes next.
func optionalError(r *Reader) (*OperationError, error) {
	t, ok, err := r.Peek()
	if err != nil || !ok || t != ParamOperationError {
		return nil, err
	}
	return r.OperationError()
}

// RegistrationResponse (ASAP_REGISTRATION_RESPONSE, 0x03). Reject is the R
// flag; a rejection carries an Operation Error.
type RegistrationResponse struct {
	Reject     bool            `json:"reject,omitempty"`
	PoolHandle PoolHandle      `json:"pool_handle"`
	ID         uint32          `json:"pe_identifier"`
	Error      *OperationError `json:"error,omitempty"`
}

func (*RegistrationResponse) Type() Type { return TypeRegistrationResponse }
func (m *RegistrationResponse) flags() uint8 {
	if m.Reject {
		return 0x01
	}
	return 0
}
func (*RegistrationResponse) name() string { return "registration_response" }
func (m *RegistrationResponse) appendBody(b []byte) ([]byte, error) {
	b, err := appendHandleID(b, m.PoolHandle, m.ID)
	if err != nil || m.Error == nil {
		return b, err
	}
	return AppendOperationError(b, m.Error)
}
func (m *RegistrationResponse) parse(r *Reader, f uint8) (err error) {
	m.Reject = f&0x01 != 0
	if m.PoolHandle, m.ID, err = parseHandleID(r); err != nil {
		return err
	}
	if m.Error, err = optionalError(r); err != nil {
		return err
	}
	return r.AtEnd()
}

// DeregistrationResponse (ASAP_DEREGISTRATION_RESPONSE, 0x04).
type DeregistrationResponse struct {
	PoolHandle PoolHandle      `json:"pool_handle"`
	ID         uint32          `json:"pe_identifier"`
	Error      *OperationError `json:"error,omitempty"`
}

func (*DeregistrationResponse) Type() Type   { return TypeDeregistrationResponse }
func (*DeregistrationResponse) flags() uint8 { return 0 }
func (*DeregistrationResponse) name() string { return "deregistration_response" }
func (m *DeregistrationResponse) appendBody(b []byte) ([]byte, error) {
	b, err := appendHandleID(b, m.PoolHandle, m.ID)
	if err != nil || m.Error == nil {
		return b, err
	}
	return AppendOperationError(b, m.Error)
}
func (m *DeregistrationResponse) parse(r *Reader, _ uint8) (err error) {
	if m.PoolHandle, m.ID, err = parseHandleID(r); err != nil {
		return err
	}
	if m.Error, err = optionalError(r); err != nil {
		return err
	}
	return r.AtEnd()
}

// ItemsAll asks for as many PEs as possible in a handle resolution.
const ItemsAll = 0xFFFFFFFF

// HandleResolution (ASAP_HANDLE_RESOLUTION, 0x05): a PU asks for PEs of a
// pool. Items (the Handle Resolution Option, 0x803F) is how many it wants;
// without it (HasItems false) the registrar uses its default.
type HandleResolution struct {
	PoolHandle PoolHandle `json:"pool_handle"`
	HasItems   bool       `json:"has_items,omitempty"`
	Items      uint32     `json:"items,omitempty"`
}

func (*HandleResolution) Type() Type   { return TypeHandleResolution }
func (*HandleResolution) flags() uint8 { return 0 }
func (*HandleResolution) name() string { return "handle_resolution" }
func (m *HandleResolution) appendBody(b []byte) ([]byte, error) {
	b, err := AppendPoolHandle(b, m.PoolHandle)
	if err != nil || !m.HasItems {
		return b, err
	}
	b = append(b, 0x80, 0x3f, 0, 8)
	return appendU32(b, m.Items), nil
}
func (m *HandleResolution) parse(r *Reader, _ uint8) (err error) {
	if m.PoolHandle, err = r.PoolHandle(); err != nil {
		return err
	}
	t, ok, err := r.Peek()
	if err != nil {
		return err
	}
	if ok && t == ParamHandleResolutionOption {
		if m.Items, err = r.HandleResolutionOption(); err != nil {
			return err
		}
		m.HasItems = true
	}
	return r.AtEnd()
}

// HandleResolutionResponse (ASAP_HANDLE_RESOLUTION_RESPONSE, 0x06): the
// pool's overall policy and the selected PEs, or an Operation Error (cause
// Unknown Pool Handle for a pool that does not exist).
type HandleResolutionResponse struct {
	PoolHandle PoolHandle      `json:"pool_handle"`
	Policy     Policy          `json:"policy,omitzero"`
	PEs        []PoolElement   `json:"pool_elements,omitempty"`
	Error      *OperationError `json:"error,omitempty"`
}

func (*HandleResolutionResponse) Type() Type   { return TypeHandleResolutionResponse }
func (*HandleResolutionResponse) flags() uint8 { return 0 }
func (*HandleResolutionResponse) name() string { return "handle_resolution_response" }
func (m *HandleResolutionResponse) appendBody(b []byte) ([]byte, error) {
	b, err := AppendPoolHandle(b, m.PoolHandle)
	if err != nil {
		return b, err
	}
	if m.Error != nil {
		return AppendOperationError(b, m.Error)
	}
	if !m.Policy.IsZero() {
		if b, err = AppendPolicy(b, &m.Policy); err != nil {
			return b, err
		}
	}
	return appendPEs(b, m.PEs)
}

func appendPEs(b []byte, pes []PoolElement) ([]byte, error) {
	var err error
	for i := range pes {
		if b, err = AppendPoolElement(b, &pes[i]); err != nil {
			return b, prefixEnc(err, "pool_elements["+strconv.Itoa(i)+"]")
		}
	}
	return b, nil
}

// parsePEs reads Pool Element parameters until the region ends.
func parsePEs(r *Reader) ([]PoolElement, error) {
	var pes []PoolElement
	for {
		t, ok, err := r.Peek()
		if err != nil {
			return pes, err
		}
		if !ok {
			return pes, nil
		}
		if t != ParamPoolElement {
			if err := r.Unexpected(t); err != nil {
				return pes, err
			}
			continue
		}
		if pes == nil {
			pes = make([]PoolElement, 0, r.count(ParamPoolElement, ParamPoolElement))
		}
		n := len(pes)
		pes = append(pes, PoolElement{})
		if err := r.poolElement(&pes[n]); err != nil {
			return pes[:n], prefix(err, "pool_elements["+strconv.Itoa(n)+"]")
		}
	}
}

func (m *HandleResolutionResponse) parse(r *Reader, _ uint8) (err error) {
	if m.PoolHandle, err = r.PoolHandle(); err != nil {
		return err
	}
	t, ok, err := r.Peek()
	if err != nil || !ok {
		return err
	}
	switch t {
	case ParamOperationError:
		if m.Error, err = r.OperationError(); err != nil {
			return err
		}
		return r.AtEnd()
	case ParamPolicy:
		if m.Policy, err = r.Policy(); err != nil {
			return err
		}
	}
	m.PEs, err = parsePEs(r)
	return err
}

// EndpointKeepAlive (ASAP_ENDPOINT_KEEP_ALIVE, 0x07): a registrar checks a
// PE. Home is the H flag ("I want to be your home registrar"). The PE
// Identifier is RSPLIB's extension; RSPLIB always sends it.
type EndpointKeepAlive struct {
	Home       bool       `json:"home,omitempty"`
	ServerID   uint32     `json:"server_id"`
	PoolHandle PoolHandle `json:"pool_handle"`
	HasID      bool       `json:"has_pe_identifier,omitempty"`
	ID         uint32     `json:"pe_identifier,omitempty"`
}

func (*EndpointKeepAlive) Type() Type { return TypeEndpointKeepAlive }
func (m *EndpointKeepAlive) flags() uint8 {
	if m.Home {
		return 0x01
	}
	return 0
}
func (*EndpointKeepAlive) name() string { return "endpoint_keep_alive" }
func (m *EndpointKeepAlive) appendBody(b []byte) ([]byte, error) {
	b = appendU32(b, m.ServerID)
	b, err := AppendPoolHandle(b, m.PoolHandle)
	if err != nil || !m.HasID {
		return b, err
	}
	return AppendPEIdentifier(b, m.ID), nil
}
func (m *EndpointKeepAlive) parse(r *Reader, f uint8) (err error) {
	m.Home = f&0x01 != 0
	if m.ServerID, err = r.fixedServerID(); err != nil {
		return err
	}
	if m.PoolHandle, err = r.PoolHandle(); err != nil {
		return err
	}
	t, ok, err := r.Peek()
	if err != nil {
		return err
	}
	if ok && t == ParamPEIdentifier {
		if m.ID, err = r.PEIdentifier(); err != nil {
			return err
		}
		m.HasID = true
	}
	return r.AtEnd()
}

// fixedServerID reads the 32-bit Server Identifier that follows the header
// in KEEP_ALIVE and SERVER_ANNOUNCE.
func (r *Reader) fixedServerID() (uint32, error) {
	if r.end-r.off < 4 {
		e := r.fail(r.off, withDetail(ErrTruncated, "server identifier needs 4 bytes"))
		e.Code = CauseInvalidValues
		return 0, prefix(e, "server_id")
	}
	v := binary.BigEndian.Uint32(r.msg[r.off:])
	r.off += 4
	return v, nil
}

// EndpointKeepAliveAck (ASAP_ENDPOINT_KEEP_ALIVE_ACK, 0x08).
type EndpointKeepAliveAck struct {
	PoolHandle PoolHandle `json:"pool_handle"`
	ID         uint32     `json:"pe_identifier"`
}

func (*EndpointKeepAliveAck) Type() Type   { return TypeEndpointKeepAliveAck }
func (*EndpointKeepAliveAck) flags() uint8 { return 0 }
func (*EndpointKeepAliveAck) name() string { return "endpoint_keep_alive_ack" }
func (m *EndpointKeepAliveAck) appendBody(b []byte) ([]byte, error) {
	return appendHandleID(b, m.PoolHandle, m.ID)
}
func (m *EndpointKeepAliveAck) parse(r *Reader, _ uint8) (err error) {
	if m.PoolHandle, m.ID, err = parseHandleID(r); err != nil {
		return err
	}
	return r.AtEnd()
}

// EndpointUnreachable (ASAP_ENDPOINT_UNREACHABLE, 0x09): a PU reports a PE
// it could not reach.
type EndpointUnreachable struct {
	PoolHandle PoolHandle `json:"pool_handle"`
	ID         uint32     `json:"pe_identifier"`
}

func (*EndpointUnreachable) Type() Type   { return TypeEndpointUnreachable }
func (*EndpointUnreachable) flags() uint8 { return 0 }
func (*EndpointUnreachable) name() string { return "endpoint_unreachable" }
func (m *EndpointUnreachable) appendBody(b []byte) ([]byte, error) {
	return appendHandleID(b, m.PoolHandle, m.ID)
}
func (m *EndpointUnreachable) parse(r *Reader, _ uint8) (err error) {
	if m.PoolHandle, m.ID, err = parseHandleID(r); err != nil {
		return err
	}
	return r.AtEnd()
}

// ServerAnnounce (ASAP_SERVER_ANNOUNCE, 0x0A): a registrar advertises
// itself by multicast. Transports describe its ASAP endpoints; RSPLIB sends
// none (receivers then use the UDP source address and port).
type ServerAnnounce struct {
	ServerID   uint32      `json:"server_id"`
	Transports []Transport `json:"transports,omitempty"`
}

func (*ServerAnnounce) Type() Type   { return TypeServerAnnounce }
func (*ServerAnnounce) flags() uint8 { return 0 }
func (*ServerAnnounce) name() string { return "server_announce" }
func (m *ServerAnnounce) appendBody(b []byte) ([]byte, error) {
	b = appendU32(b, m.ServerID)
	var err error
	for i := range m.Transports {
		if b, err = AppendTransport(b, &m.Transports[i]); err != nil {
			return b, prefixEnc(err, "transports["+strconv.Itoa(i)+"]")
		}
	}
	return b, nil
}
func (m *ServerAnnounce) parse(r *Reader, _ uint8) (err error) {
	if m.ServerID, err = r.fixedServerID(); err != nil {
		return err
	}
	for {
		t, ok, err := r.Peek()
		if err != nil || !ok {
			return err
		}
		if !isTransport(t) {
			if err := r.Unexpected(t); err != nil {
				return err
			}
			continue
		}
		tr, err := r.Transport()
		if err != nil {
			return prefix(err, "transports["+strconv.Itoa(len(m.Transports))+"]")
		}
		m.Transports = append(m.Transports, tr)
	}
}

// Cookie (ASAP_COOKIE, 0x0B): state a PE hands its PU over the control
// channel. Keep cookie lengths a multiple of 4 for RSPLIB peers (its parser
// fails on others).
type Cookie struct {
	Cookie Bytes `json:"cookie"`
}

func (*Cookie) Type() Type                            { return TypeCookie }
func (*Cookie) flags() uint8                          { return 0 }
func (*Cookie) name() string                          { return "cookie" }
func (m *Cookie) appendBody(b []byte) ([]byte, error) { return AppendCookie(b, m.Cookie) }
func (m *Cookie) parse(r *Reader, _ uint8) (err error) {
	if m.Cookie, err = r.Cookie(); err != nil {
		return err
	}
	return r.AtEnd()
}

// CookieEcho (ASAP_COOKIE_ECHO, 0x0C): the PU replays the last cookie to
// the PE it failed over to.
type CookieEcho struct {
	Cookie Bytes `json:"cookie"`
}

func (*CookieEcho) Type() Type                            { return TypeCookieEcho }
func (*CookieEcho) flags() uint8                          { return 0 }
func (*CookieEcho) name() string                          { return "cookie_echo" }
func (m *CookieEcho) appendBody(b []byte) ([]byte, error) { return AppendCookie(b, m.Cookie) }
func (m *CookieEcho) parse(r *Reader, _ uint8) (err error) {
	if m.Cookie, err = r.Cookie(); err != nil {
		return err
	}
	return r.AtEnd()
}

// BusinessCard (ASAP_BUSINESS_CARD, 0x0D): names the sender's pool and the
// PEs to fail over to. RSPLIB's encoder adds the pool policy after the
// handle; on input a repeated pool handle (what RSPLIB's parser expects)
// is accepted as well.
type BusinessCard struct {
	PoolHandle PoolHandle    `json:"pool_handle"`
	Policy     Policy        `json:"policy,omitzero"`
	PEs        []PoolElement `json:"pool_elements"`
}

func (*BusinessCard) Type() Type   { return TypeBusinessCard }
func (*BusinessCard) flags() uint8 { return 0 }
func (*BusinessCard) name() string { return "business_card" }
func (m *BusinessCard) appendBody(b []byte) ([]byte, error) {
	b, err := AppendPoolHandle(b, m.PoolHandle)
	if err != nil {
		return b, err
	}
	if !m.Policy.IsZero() {
		if b, err = AppendPolicy(b, &m.Policy); err != nil {
			return b, err
		}
	}
	return appendPEs(b, m.PEs)
}
func (m *BusinessCard) parse(r *Reader, _ uint8) (err error) {
	if m.PoolHandle, err = r.PoolHandle(); err != nil {
		return err
	}
	t, ok, err := r.Peek()
	if err != nil {
		return err
	}
	if ok && t == ParamPoolHandle { // RSPLIB's form: the handle twice
		if _, err = r.PoolHandle(); err != nil {
			return err
		}
		if t, ok, err = r.Peek(); err != nil {
			return err
		}
	}
	if ok && t == ParamPolicy {
		if m.Policy, err = r.Policy(); err != nil {
			return err
		}
	}
	m.PEs, err = parsePEs(r)
	return err
}

// Error (ASAP_ERROR, 0x0E): reports an error back to the sender of a
// message.
type Error struct {
	Error OperationError `json:"error"`
}

func (*Error) Type() Type   { return TypeError }
func (*Error) flags() uint8 { return 0 }
func (*Error) name() string { return "error" }
func (m *Error) appendBody(b []byte) ([]byte, error) {
	return AppendOperationError(b, &m.Error)
}
func (m *Error) parse(r *Reader, _ uint8) error {
	o, err := r.OperationError()
	if err != nil {
		return err
	}
	m.Error = *o
	return r.AtEnd()
}
