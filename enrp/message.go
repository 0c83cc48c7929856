package enrp

import (
	"encoding/binary"
	"strconv"

	"github.com/rserpool-go/registrar/asap"
)

// Type is an ENRP message type (RFC 5353 section 2).
//
// WARNING: only append to this list. The values are part of the protocol.
type Type uint8

const (
	TypePresence            Type = 0x01
	TypeHandleTableRequest  Type = 0x02
	TypeHandleTableResponse Type = 0x03
	TypeHandleUpdate        Type = 0x04
	TypeListRequest         Type = 0x05
	TypeListResponse        Type = 0x06
	TypeInitTakeover        Type = 0x07
	TypeInitTakeoverAck     Type = 0x08
	TypeTakeoverServer      Type = 0x09
	TypeError               Type = 0x0A
)

var typeNames = [...]string{
	TypePresence:            "ENRP_PRESENCE",
	TypeHandleTableRequest:  "ENRP_HANDLE_TABLE_REQUEST",
	TypeHandleTableResponse: "ENRP_HANDLE_TABLE_RESPONSE",
	TypeHandleUpdate:        "ENRP_HANDLE_UPDATE",
	TypeListRequest:         "ENRP_LIST_REQUEST",
	TypeListResponse:        "ENRP_LIST_RESPONSE",
	TypeInitTakeover:        "ENRP_INIT_TAKEOVER",
	TypeInitTakeoverAck:     "ENRP_INIT_TAKEOVER_ACK",
	TypeTakeoverServer:      "ENRP_TAKEOVER_SERVER",
	TypeError:               "ENRP_ERROR",
}

func (t Type) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return "ENRP_0x" + strconv.FormatUint(uint64(t), 16)
}

// MarshalText writes the name, e.g. ENRP_PRESENCE.
func (t Type) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText accepts a name (with or without the ENRP_ prefix) or a
// number.
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
		return &asap.EncodeError{Path: "type", Msg: "unknown ENRP message type " + strconv.Quote(s)}
	}
	*t = Type(v)
	return nil
}

// Header is the part every ENRP message has after the common header: the
// sender's and the receiver's server IDs (0 when the receiver is not yet
// known).
type Header struct {
	Sender   uint32 `json:"sender"`
	Receiver uint32 `json:"receiver"`
}

// IDs returns the header, so that any message's IDs can be read and set.
func (h *Header) IDs() *Header { return h }

// Message is an ENRP message. The set of implementations is closed: the
// structs of this package.
type Message interface {
	// Type is the message type.
	Type() Type
	// IDs gives access to the sender and receiver IDs.
	IDs() *Header
	flags() uint8
	name() string
	// fixed is the size of the type-specific fixed part after the IDs.
	fixed() int
	appendBody(b []byte) ([]byte, error)
	parse(r *asap.Reader, flags uint8, fixed []byte) error
}

// New returns an empty message of type t, or nil for an unknown type.
func New(t Type) Message {
	switch t {
	case TypePresence:
		return &Presence{}
	case TypeHandleTableRequest:
		return &HandleTableRequest{}
	case TypeHandleTableResponse:
		return &HandleTableResponse{}
	case TypeHandleUpdate:
		return &HandleUpdate{}
	case TypeListRequest:
		return &ListRequest{}
	case TypeListResponse:
		return &ListResponse{}
	case TypeInitTakeover:
		return &InitTakeover{}
	case TypeInitTakeoverAck:
		return &InitTakeoverAck{}
	case TypeTakeoverServer:
		return &TakeoverServer{}
	case TypeError:
		return &Error{}
	}
	return nil
}

// headerSize is the common header plus sender and receiver IDs.
const headerSize = 12

// Pack encodes m into a new buffer.
func Pack(m Message) ([]byte, error) { return Append(make([]byte, 0, 128), m) }

// Append encodes m at the end of b; the length includes the final padding.
func Append(b []byte, m Message) ([]byte, error) {
	start := len(b)
	h := m.IDs()
	b = append(b, byte(m.Type()), m.flags(), 0, 0)
	b = asap.AppendU32(b, h.Sender)
	b = asap.AppendU32(b, h.Receiver)
	b, err := m.appendBody(b)
	if err != nil {
		if e, ok := err.(*asap.EncodeError); ok {
			e.Path = m.name() + "." + e.Path
		}
		return b[:start], err
	}
	n := len(b) - start
	if n > asap.DefaultMaxMessageSize {
		return b[:start], &asap.EncodeError{Path: m.name(), Msg: "message of " + strconv.Itoa(n) + " bytes exceeds 65535"}
	}
	binary.BigEndian.PutUint16(b[start+2:], uint16(n))
	return b, nil
}

// PeekHeader reads the sender and receiver IDs of the message in b
// without decoding the rest, for answering a message that does not decode
// with an ENRP_ERROR to its sender. ok is false when b is shorter than
// the header.
func PeekHeader(b []byte) (h Header, ok bool) {
	if len(b) < headerSize {
		return Header{}, false
	}
	return Header{Sender: binary.BigEndian.Uint32(b[4:]), Receiver: binary.BigEndian.Uint32(b[8:])}, true
}

// SplitMessage takes the first message off b, a buffer of ENRP messages
// laid back to back (as the cluster's commands hold them), by the length
// in its header: the message with its final padding (cut short at the end
// of b: RSPLIB's lengths leave the padding out), and what follows it. It
// checks only that a header is there; Unpack checks the rest.
func SplitMessage(b []byte) (msg, rest []byte, err error) {
	if len(b) < 4 {
		return nil, b, &asap.DecodeError{Proto: "enrp", Path: "header", Code: asap.CauseInvalidValues,
			Err: asap.WithDetail(asap.ErrTruncated, "message of "+strconv.Itoa(len(b))+" bytes has no header")}
	}
	n := min((int(binary.BigEndian.Uint16(b[2:]))+3)&^3, len(b))
	if n < 4 {
		n = len(b) // a length below the header's: Unpack refuses the whole rest
	}
	return b[:n], b[n:], nil
}

// Unpack decodes one ENRP message (lim nil = asap.DefaultLimits). The
// second result lists unknown parameters whose type says "skip and
// report", for an ENRP_ERROR reply. Errors are *asap.DecodeError or
// *asap.UnknownMessageError (with Proto "enrp").
func Unpack(b []byte, lim *asap.Limits) (Message, []asap.Unrecognized, error) {
	d := asap.GetDecoder(b, lim, "enrp")
	defer d.Release()
	n, err := asap.CheckFrame(b, &d.Lim, headerSize, "enrp")
	if err != nil {
		return nil, nil, err
	}
	m := New(Type(b[0]))
	if m == nil {
		return nil, nil, &asap.UnknownMessageError{Proto: "enrp", Type: b[0], Message: append([]byte(nil), b[:n]...)}
	}
	h := m.IDs()
	h.Sender = binary.BigEndian.Uint32(b[4:])
	h.Receiver = binary.BigEndian.Uint32(b[8:])
	fx := m.fixed()
	if n < headerSize+fx {
		return nil, nil, &asap.DecodeError{Proto: "enrp", Path: m.name(), Offset: headerSize, Code: asap.CauseInvalidValues,
			Err: asap.WithDetail(asap.ErrBadLength, "message length "+strconv.Itoa(n)+" leaves no room for the "+strconv.Itoa(fx)+"-byte fixed part")}
	}
	r := d.Region(headerSize+fx, n)
	if err := m.parse(r, b[1], b[headerSize:headerSize+fx]); err != nil {
		return nil, nil, asap.PrefixError(err, m.name())
	}
	return m, d.Unrec, nil
}

func bit(f uint8, mask uint8) bool { return f&mask != 0 }

func flag(v bool, mask uint8) uint8 {
	if v {
		return mask
	}
	return 0
}

// ---- messages ----

// Presence (ENRP_PRESENCE, 0x01): a registrar's heartbeat with its PE
// checksum and its Server Information. ReplyRequired is the R flag.
type Presence struct {
	Header
	ReplyRequired bool            `json:"reply_required,omitempty"`
	Checksum      uint16          `json:"checksum"`
	ServerInfo    asap.ServerInfo `json:"server_information"`
}

func (*Presence) Type() Type     { return TypePresence }
func (m *Presence) flags() uint8 { return flag(m.ReplyRequired, 0x01) }
func (*Presence) name() string   { return "presence" }
func (*Presence) fixed() int     { return 0 }
func (m *Presence) appendBody(b []byte) ([]byte, error) {
	b = asap.AppendPEChecksum(b, m.Checksum)
	return asap.AppendServerInfo(b, &m.ServerInfo)
}
func (m *Presence) parse(r *asap.Reader, f uint8, _ []byte) (err error) {
	m.ReplyRequired = bit(f, 0x01)
	if m.Checksum, err = r.PEChecksum(); err != nil {
		return err
	}
	if m.ServerInfo, err = r.ServerInfo(); err != nil {
		return err
	}
	return r.AtEnd()
}

// HandleTableRequest (ENRP_HANDLE_TABLE_REQUEST, 0x02). OwnOnly is the W
// flag: only the PEs the responder owns.
type HandleTableRequest struct {
	Header
	OwnOnly bool `json:"own_only,omitempty"`
}

func (*HandleTableRequest) Type() Type                            { return TypeHandleTableRequest }
func (m *HandleTableRequest) flags() uint8                        { return flag(m.OwnOnly, 0x01) }
func (*HandleTableRequest) name() string                          { return "handle_table_request" }
func (*HandleTableRequest) fixed() int                            { return 0 }
func (m *HandleTableRequest) appendBody(b []byte) ([]byte, error) { return b, nil }
func (m *HandleTableRequest) parse(r *asap.Reader, f uint8, _ []byte) error {
	m.OwnOnly = bit(f, 0x01)
	return r.AtEnd()
}

// PoolEntry is one pool of a handle table: its handle and PEs (each with
// its ASAP transport).
type PoolEntry struct {
	PoolHandle asap.PoolHandle    `json:"pool_handle"`
	PEs        []asap.PoolElement `json:"pool_elements"`
}

// HandleTableResponse (ENRP_HANDLE_TABLE_RESPONSE, 0x03). More is the M
// flag (ask again for the rest), Reject the R flag (no entries).
type HandleTableResponse struct {
	Header
	More   bool        `json:"more,omitempty"`
	Reject bool        `json:"reject,omitempty"`
	Pools  []PoolEntry `json:"pools,omitempty"`
}

func (*HandleTableResponse) Type() Type { return TypeHandleTableResponse }
func (m *HandleTableResponse) flags() uint8 {
	return flag(m.Reject, 0x01) | flag(m.More, 0x02)
}
func (*HandleTableResponse) name() string { return "handle_table_response" }
func (*HandleTableResponse) fixed() int   { return 0 }
func (m *HandleTableResponse) appendBody(b []byte) ([]byte, error) {
	var err error
	for i := range m.Pools {
		p := &m.Pools[i]
		if len(p.PEs) == 0 {
			return b, &asap.EncodeError{Path: "pools[" + strconv.Itoa(i) + "]", Msg: "pool entry without pool elements"}
		}
		if b, err = asap.AppendPoolHandle(b, p.PoolHandle); err != nil {
			return b, err
		}
		for j := range p.PEs {
			if b, err = asap.AppendPoolElement(b, &p.PEs[j]); err != nil {
				return b, err
			}
		}
	}
	return b, nil
}
func (m *HandleTableResponse) parse(r *asap.Reader, f uint8, _ []byte) error {
	m.Reject = bit(f, 0x01)
	m.More = bit(f, 0x02)
	for {
		t, ok, err := r.Peek()
		if err != nil || !ok {
			return err
		}
		if t != asap.ParamPoolHandle {
			if err := r.Unexpected(t); err != nil {
				return err
			}
			continue
		}
		path := "pools[" + strconv.Itoa(len(m.Pools)) + "]"
		h, err := r.PoolHandle()
		if err != nil {
			return asap.PrefixError(err, path)
		}
		entry := PoolEntry{PoolHandle: h}
		for {
			t, ok, err := r.Peek()
			if err != nil {
				return asap.PrefixError(err, path)
			}
			if !ok || t != asap.ParamPoolElement {
				break
			}
			pe, err := r.PoolElement()
			if err != nil {
				return asap.PrefixError(asap.PrefixError(err, "pool_elements["+strconv.Itoa(len(entry.PEs))+"]"), path)
			}
			entry.PEs = append(entry.PEs, pe)
		}
		if len(entry.PEs) == 0 {
			return &asap.DecodeError{Proto: "enrp", Path: path, Offset: r.Offset(), Code: asap.CauseInvalidValues,
				Err: asap.WithDetail(asap.ErrMissingParam, "pool handle without pool elements")}
		}
		m.Pools = append(m.Pools, entry)
	}
}

// UpdateAction says what a HANDLE_UPDATE does.
type UpdateAction uint16

const (
	AddPE UpdateAction = 0 // ADD_PE
	DelPE UpdateAction = 1 // DEL_PE
)

func (a UpdateAction) String() string {
	switch a {
	case AddPE:
		return "ADD_PE"
	case DelPE:
		return "DEL_PE"
	}
	return "ACTION_" + strconv.Itoa(int(a))
}

// MarshalText writes ADD_PE or DEL_PE.
func (a UpdateAction) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText reads ADD_PE, DEL_PE or a number.
func (a *UpdateAction) UnmarshalText(b []byte) error {
	switch string(b) {
	case "ADD_PE":
		*a = AddPE
	case "DEL_PE":
		*a = DelPE
	default:
		v, err := strconv.ParseUint(string(b), 0, 16)
		if err != nil {
			return &asap.EncodeError{Path: "action", Msg: "unknown update action " + strconv.Quote(string(b))}
		}
		*a = UpdateAction(v)
	}
	return nil
}

// HandleUpdate (ENRP_HANDLE_UPDATE, 0x04): the home registrar tells its
// peers that a PE was added (or refreshed) or removed. TakeoverSuggested is
// the T flag (draft-dreibholz-rserpool-enrp-takeover).
type HandleUpdate struct {
	Header
	TakeoverSuggested bool             `json:"takeover_suggested,omitempty"`
	Action            UpdateAction     `json:"action"`
	PoolHandle        asap.PoolHandle  `json:"pool_handle"`
	PoolElement       asap.PoolElement `json:"pool_element"`
}

func (*HandleUpdate) Type() Type     { return TypeHandleUpdate }
func (m *HandleUpdate) flags() uint8 { return flag(m.TakeoverSuggested, 0x01) }
func (*HandleUpdate) name() string   { return "handle_update" }
func (*HandleUpdate) fixed() int     { return 4 }
func (m *HandleUpdate) appendBody(b []byte) ([]byte, error) {
	if m.Action > DelPE {
		return b, &asap.EncodeError{Path: "action", Msg: "unknown update action " + m.Action.String()}
	}
	b = append(b, byte(m.Action>>8), byte(m.Action), 0, 0)
	b, err := asap.AppendPoolHandle(b, m.PoolHandle)
	if err != nil {
		return b, err
	}
	return asap.AppendPoolElement(b, &m.PoolElement)
}
func (m *HandleUpdate) parse(r *asap.Reader, f uint8, fx []byte) (err error) {
	m.TakeoverSuggested = bit(f, 0x01)
	m.Action = UpdateAction(binary.BigEndian.Uint16(fx))
	if m.Action > DelPE {
		return &asap.DecodeError{Proto: "enrp", Path: "action", Offset: headerSize, Code: asap.CauseInvalidValues,
			Err: asap.WithDetail(asap.ErrInvalidValue, "update action "+strconv.Itoa(int(m.Action)))}
	}
	if m.PoolHandle, err = r.PoolHandle(); err != nil {
		return err
	}
	if m.PoolElement, err = r.PoolElement(); err != nil {
		return err
	}
	return r.AtEnd()
}

// ListRequest (ENRP_LIST_REQUEST, 0x05): asks for the peer list.
type ListRequest struct {
	Header
}

func (*ListRequest) Type() Type                            { return TypeListRequest }
func (*ListRequest) flags() uint8                          { return 0 }
func (*ListRequest) name() string                          { return "list_request" }
func (*ListRequest) fixed() int                            { return 0 }
func (m *ListRequest) appendBody(b []byte) ([]byte, error) { return b, nil }
func (m *ListRequest) parse(r *asap.Reader, _ uint8, _ []byte) error {
	return r.AtEnd()
}

// ListResponse (ENRP_LIST_RESPONSE, 0x06): the sender's peers. Reject is
// the R flag.
type ListResponse struct {
	Header
	Reject  bool              `json:"reject,omitempty"`
	Servers []asap.ServerInfo `json:"servers,omitempty"`
}

func (*ListResponse) Type() Type     { return TypeListResponse }
func (m *ListResponse) flags() uint8 { return flag(m.Reject, 0x01) }
func (*ListResponse) name() string   { return "list_response" }
func (*ListResponse) fixed() int     { return 0 }
func (m *ListResponse) appendBody(b []byte) ([]byte, error) {
	var err error
	for i := range m.Servers {
		if b, err = asap.AppendServerInfo(b, &m.Servers[i]); err != nil {
			return b, err
		}
	}
	return b, nil
}
func (m *ListResponse) parse(r *asap.Reader, f uint8, _ []byte) error {
	m.Reject = bit(f, 0x01)
	for {
		t, ok, err := r.Peek()
		if err != nil || !ok {
			return err
		}
		if t != asap.ParamServerInfo {
			if err := r.Unexpected(t); err != nil {
				return err
			}
			continue
		}
		si, err := r.ServerInfo()
		if err != nil {
			return asap.PrefixError(err, "servers["+strconv.Itoa(len(m.Servers))+"]")
		}
		m.Servers = append(m.Servers, si)
	}
}

// takeover is the shared layout of the three takeover messages: the
// target server's ID.
type takeover struct {
	Header
	Target uint32 `json:"target"`
}

func (*takeover) fixed() int   { return 4 }
func (*takeover) flags() uint8 { return 0 }
func (m *takeover) appendBody(b []byte) ([]byte, error) {
	return asap.AppendU32(b, m.Target), nil
}
func (m *takeover) parse(r *asap.Reader, _ uint8, fx []byte) error {
	m.Target = binary.BigEndian.Uint32(fx)
	return r.AtEnd()
}

// InitTakeover (ENRP_INIT_TAKEOVER, 0x07): the sender starts taking over
// the PEs of Target, which it believes dead.
type InitTakeover struct{ takeover }

func (*InitTakeover) Type() Type   { return TypeInitTakeover }
func (*InitTakeover) name() string { return "init_takeover" }

// InitTakeoverAck (ENRP_INIT_TAKEOVER_ACK, 0x08): the sender agrees.
type InitTakeoverAck struct{ takeover }

func (*InitTakeoverAck) Type() Type   { return TypeInitTakeoverAck }
func (*InitTakeoverAck) name() string { return "init_takeover_ack" }

// TakeoverServer (ENRP_TAKEOVER_SERVER, 0x09): the sender now owns the PEs
// of Target.
type TakeoverServer struct{ takeover }

func (*TakeoverServer) Type() Type   { return TypeTakeoverServer }
func (*TakeoverServer) name() string { return "takeover_server" }

// NewInitTakeover, NewInitTakeoverAck and NewTakeoverServer build the
// takeover messages.
func NewInitTakeover(sender, receiver, target uint32) *InitTakeover {
	return &InitTakeover{takeover{Header{sender, receiver}, target}}
}

// NewInitTakeoverAck builds an ENRP_INIT_TAKEOVER_ACK.
func NewInitTakeoverAck(sender, receiver, target uint32) *InitTakeoverAck {
	return &InitTakeoverAck{takeover{Header{sender, receiver}, target}}
}

// NewTakeoverServer builds an ENRP_TAKEOVER_SERVER.
func NewTakeoverServer(sender, receiver, target uint32) *TakeoverServer {
	return &TakeoverServer{takeover{Header{sender, receiver}, target}}
}

// Error (ENRP_ERROR, 0x0A). Note that RSPLIB keeps the IDs of the message
// that caused the error (its Sender is the offender): do not trust the
// Sender of an ENRP_ERROR from RSPLIB.
type Error struct {
	Header
	Error asap.OperationError `json:"error"`
}

func (*Error) Type() Type   { return TypeError }
func (*Error) flags() uint8 { return 0 }
func (*Error) name() string { return "error" }
func (*Error) fixed() int   { return 0 }
func (m *Error) appendBody(b []byte) ([]byte, error) {
	return asap.AppendOperationError(b, &m.Error)
}
func (m *Error) parse(r *asap.Reader, _ uint8, _ []byte) error {
	o, err := r.OperationError()
	if err != nil {
		return err
	}
	m.Error = *o
	return r.AtEnd()
}
