package asap

import (
	"encoding/binary"
	"strconv"
	"sync"
)

// ParamType is an RFC 5354 parameter type.
//
// WARNING: only append to this list. The values are part of the protocol.
type ParamType uint16

const (
	ParamIPv4Address            ParamType = 0x0001
	ParamIPv6Address            ParamType = 0x0002
	ParamDCCPTransport          ParamType = 0x0003
	ParamSCTPTransport          ParamType = 0x0004
	ParamTCPTransport           ParamType = 0x0005
	ParamUDPTransport           ParamType = 0x0006
	ParamUDPLiteTransport       ParamType = 0x0007
	ParamPolicy                 ParamType = 0x0008
	ParamPoolHandle             ParamType = 0x0009
	ParamPoolElement            ParamType = 0x000A
	ParamServerInfo             ParamType = 0x000B
	ParamOperationError         ParamType = 0x000C
	ParamCookie                 ParamType = 0x000D
	ParamPEIdentifier           ParamType = 0x000E
	ParamPEChecksum             ParamType = 0x000F
	ParamHandleResolutionOption ParamType = 0x803F // draft-dreibholz-rserpool-asap-hropt
)

var paramNames = map[ParamType]string{
	ParamIPv4Address:            "ipv4-address",
	ParamIPv6Address:            "ipv6-address",
	ParamDCCPTransport:          "dccp",
	ParamSCTPTransport:          "sctp",
	ParamTCPTransport:           "tcp",
	ParamUDPTransport:           "udp",
	ParamUDPLiteTransport:       "udp-lite",
	ParamPolicy:                 "policy",
	ParamPoolHandle:             "pool-handle",
	ParamPoolElement:            "pool-element",
	ParamServerInfo:             "server-information",
	ParamOperationError:         "operation-error",
	ParamCookie:                 "cookie",
	ParamPEIdentifier:           "pe-identifier",
	ParamPEChecksum:             "pe-checksum",
	ParamHandleResolutionOption: "handle-resolution-option",
}

func (t ParamType) String() string {
	if n, ok := paramNames[t]; ok {
		return n
	}
	return "0x" + strconv.FormatUint(uint64(t), 16)
}

// MarshalText writes the parameter's name (or its hex number if unknown).
func (t ParamType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText accepts a name or a number.
func (t *ParamType) UnmarshalText(b []byte) error {
	s := string(b)
	for k, v := range paramNames {
		if v == s {
			*t = k
			return nil
		}
	}
	n, err := strconv.ParseUint(s, 0, 16)
	if err != nil {
		return encErr("param_type", "unknown parameter type "+strconv.Quote(s))
	}
	*t = ParamType(n)
	return nil
}

// isKnownParam says whether this codec understands the parameter type.
func isKnownParam(t ParamType) bool {
	return (t >= ParamIPv4Address && t <= ParamPEChecksum) || t == ParamHandleResolutionOption
}

// Action bits of a parameter type (RFC 5354 section 2).
const (
	actionSkip   = 0x8000 // continue with the next parameter
	actionReport = 0x4000 // report in an Unrecognized Parameter cause
)

// Limits bound what the decoder accepts. The zero value of a field means
// its default.
type Limits struct {
	// MaxMessageSize is the largest message accepted, in bytes.
	// Default 65535 (the largest the 16-bit length can express).
	MaxMessageSize int
	// MaxPoolHandle is the longest pool handle accepted, in bytes.
	// Default 32: RSPLIB aborts on longer handles, so a registrar that
	// peers with RSPLIB must not accept them.
	MaxPoolHandle int
	// MaxDepth is how deeply parameters may nest (a Pool Element holding a
	// transport holding an address is depth 3). Default 4.
	MaxDepth int
	// MaxAddresses is the most addresses one transport parameter may list.
	// Default 64 (as RSPLIB).
	MaxAddresses int
}

// Default limits.
const (
	DefaultMaxMessageSize = 65535
	DefaultMaxPoolHandle  = 32
	DefaultMaxDepth       = 4
	DefaultMaxAddresses   = 64
)

// DefaultLimits returns the limits used when nil is passed.
func DefaultLimits() Limits {
	return Limits{
		MaxMessageSize: DefaultMaxMessageSize,
		MaxPoolHandle:  DefaultMaxPoolHandle,
		MaxDepth:       DefaultMaxDepth,
		MaxAddresses:   DefaultMaxAddresses,
	}
}

func (l *Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l == nil {
		return d
	}
	r := *l
	if r.MaxMessageSize <= 0 || r.MaxMessageSize > DefaultMaxMessageSize {
		r.MaxMessageSize = d.MaxMessageSize
	}
	if r.MaxPoolHandle <= 0 {
		r.MaxPoolHandle = d.MaxPoolHandle
	}
	if r.MaxDepth <= 0 {
		r.MaxDepth = d.MaxDepth
	}
	if r.MaxAddresses <= 0 {
		r.MaxAddresses = d.MaxAddresses
	}
	return r
}

// Unrecognized is a parameter of unknown type that the decoder skipped
// because its type says "skip and report". A server answers with an
// ERROR carrying UnrecognizedCause(u).
type Unrecognized struct {
	Type   ParamType
	Offset int    // offset of the parameter in the message
	TLV    []byte // a copy of the whole parameter, without padding
}

// Cause returns the Unrecognized Parameter cause reporting u.
func (u Unrecognized) Cause() Cause {
	return Cause{Code: CauseUnrecognizedParameter, Info: u.TLV}
}

// Reader walks the parameters in one region of a message. It is the
// building block of the message decoders and is exported for package enrp;
// applications use Unpack.
//
// A Reader skips and records unknown parameters according to their type's
// action bits; the typed methods (PoolHandle, PoolElement, ...) read the
// next known parameter and fail if it has another type.
type Reader struct {
	d     *Decoder
	msg   []byte // the whole message (offsets are relative to it)
	off   int    // next parameter
	end   int    // end of the region
	depth int

	// the header at off, once read (hdrAt == off)
	hdrAt   int
	hdrType ParamType
	hdrLen  int
	hdrNext int
}

// Decoder holds the state of one message decode: the input, the limits and
// the list of reportable unrecognized parameters.
type Decoder struct {
	Msg   []byte
	Lim   Limits
	Proto string
	Unrec []Unrecognized
	root  Reader
}

var decoders = sync.Pool{New: func() any { return new(Decoder) }}

// GetDecoder prepares decoding msg with the given limits (nil = defaults),
// from a pool; call Release when done. proto names the protocol in error
// messages ("asap" or "enrp"). The Unrec slice stays valid after Release.
func GetDecoder(msg []byte, lim *Limits, proto string) *Decoder {
	d := decoders.Get().(*Decoder)
	*d = Decoder{Msg: msg, Lim: lim.withDefaults(), Proto: proto}
	return d
}

// Release returns the decoder to the pool.
func (d *Decoder) Release() {
	*d = Decoder{}
	decoders.Put(d)
}

// Region returns a Reader over msg[off:end] at nesting depth 0. The Reader
// belongs to the Decoder; each call resets it.
func (d *Decoder) Region(off, end int) *Reader {
	d.root = Reader{d: d, msg: d.Msg, off: off, end: end, hdrAt: -1}
	return &d.root
}

// Offset is the position of the next parameter.
func (r *Reader) Offset() int { return r.off }

func (r *Reader) fail(off int, err error) *DecodeError {
	return &DecodeError{Proto: r.d.Proto, Offset: off, Err: err}
}

// failParam builds an error carrying the parameter at [start,
// start+length) as cause information for code.
func (r *Reader) failParam(start, length int, err error, code CauseCode) *DecodeError {
	e := r.fail(start, err)
	e.Code = code
	if code != 0 && start+length <= len(r.msg) && length >= 4 {
		e.Info = append([]byte(nil), r.msg[start:start+length]...)
	}
	return e
}

// header reads the TLV header at r.off: type, length, and the offset of
// the parameter after it (past the padding).
func (r *Reader) header() (t ParamType, length int, next int, err error) {
	if r.hdrAt == r.off {
		return r.hdrType, r.hdrLen, r.hdrNext, nil
	}
	if r.end-r.off < 4 {
		return 0, 0, 0, r.failParam(r.off, 0, withDetail(ErrTruncated, "parameter header needs 4 bytes, "+strconv.Itoa(r.end-r.off)+" left"), CauseInvalidValues)
	}
	t = ParamType(binary.BigEndian.Uint16(r.msg[r.off:]))
	length = int(binary.BigEndian.Uint16(r.msg[r.off+2:]))
	if length < 4 {
		return t, length, 0, r.failParam(r.off, 0, withDetail(ErrBadLength, "parameter "+t.String()+" length "+strconv.Itoa(length)+" is below 4"), CauseInvalidValues)
	}
	if r.off+length > r.end {
		return t, length, 0, r.failParam(r.off, 0, withDetail(ErrTruncated, "parameter "+t.String()+" length "+strconv.Itoa(length)+" exceeds the "+strconv.Itoa(r.end-r.off)+" bytes left"), CauseInvalidValues)
	}
	next = r.off + (length+3)&^3
	if next > r.end {
		// The final padding of a region may be missing (RSPLIB writes
		// message lengths without it; TCP framing then cuts it off).
		next = r.end
	}
	r.hdrAt, r.hdrType, r.hdrLen, r.hdrNext = r.off, t, length, next
	return t, length, next, nil
}

// count returns how many parameters of type t or t2 follow at the top level of
// the region (stopping at the first malformed header), to size slices.
func (r *Reader) count(t, t2 ParamType) int {
	n := 0
	for off := r.off; r.end-off >= 4; {
		l := int(binary.BigEndian.Uint16(r.msg[off+2:]))
		if l < 4 {
			break
		}
		if pt := ParamType(binary.BigEndian.Uint16(r.msg[off:])); pt == t || pt == t2 {
			n++
		}
		off += (l + 3) &^ 3
	}
	return n
}

// Peek returns the type of the next known parameter, skipping (and
// recording) unknown ones as their action bits say. ok is false at the
// end of the region.
func (r *Reader) Peek() (t ParamType, ok bool, err error) {
	for r.off < r.end {
		t, length, next, err := r.header()
		if err != nil {
			return 0, false, err
		}
		if isKnownParam(t) {
			return t, true, nil
		}
		if err := r.skipUnknown(t, length, next); err != nil {
			return 0, false, err
		}
	}
	return 0, false, nil
}

// skipUnknown applies the action bits of an unknown (or unexpected)
// parameter at r.off.
func (r *Reader) skipUnknown(t ParamType, length, next int) error {
	if t&actionSkip == 0 {
		code := CauseCode(0)
		if t&actionReport != 0 {
			code = CauseUnrecognizedParameter
		}
		return r.failParam(r.off, length, withDetail(ErrUnrecognizedParam, "type "+t.String()), code)
	}
	if t&actionReport != 0 {
		r.d.Unrec = append(r.d.Unrec, Unrecognized{
			Type:   t,
			Offset: r.off,
			TLV:    append([]byte(nil), r.msg[r.off:r.off+length]...),
		})
	}
	r.off = next
	return nil
}

// Unexpected handles a known parameter found where the message does not
// allow it: skipped when its type says "skip", an error otherwise.
func (r *Reader) Unexpected(t ParamType) error {
	_, length, next, err := r.header()
	if err != nil {
		return err
	}
	if t&actionSkip != 0 {
		return r.skipUnknown(t, length, next)
	}
	return r.failParam(r.off, length, withDetail(ErrUnexpectedParam, t.String()), CauseInvalidValues)
}

// AtEnd consumes what is left of the region, which may only be parameters
// that can be skipped. It fails if a known parameter remains.
func (r *Reader) AtEnd() error {
	for {
		t, ok, err := r.Peek()
		if err != nil || !ok {
			return err
		}
		if err := r.Unexpected(t); err != nil {
			return err
		}
	}
}

// Expect positions the reader on a parameter of type want, skipping unknown
// ones before it, and returns its value and its start offset. A missing or
// different parameter is an error.
func (r *Reader) Expect(want ParamType) (value []byte, start int, err error) {
	for {
		t, ok, err := r.Peek()
		if err != nil {
			return nil, r.off, err
		}
		if !ok {
			return nil, r.off, r.failParam(r.off, 0, withDetail(ErrMissingParam, want.String()), CauseInvalidValues)
		}
		if t == want {
			break
		}
		if t&actionSkip != 0 {
			if err := r.Unexpected(t); err != nil {
				return nil, r.off, err
			}
			continue
		}
		_, length, _, _ := r.header()
		return nil, r.off, r.failParam(r.off, length, withDetail(ErrUnexpectedParam, "want "+want.String()+", got "+t.String()), CauseInvalidValues)
	}
	_, length, next, _ := r.header() // checked by Peek
	start = r.off
	value = r.msg[r.off+4 : r.off+length]
	r.off = next
	return value, start, nil
}

// sub returns a Reader over the inner parameters of the parameter at
// [start, start+length) whose fixed part has fixed bytes.
func (r *Reader) sub(start, fixed, length int) (Reader, error) {
	s := *r
	s.off = start + 4 + fixed
	s.end = start + length
	s.depth = r.depth + 1
	s.hdrAt = -1
	if s.depth >= r.d.Lim.MaxDepth {
		return s, r.failParam(start, length, ErrTooDeep, CauseInvalidValues)
	}
	return s, nil
}

// detailError adds detail to a sentinel while keeping errors.Is working.
type detailError struct {
	base   error
	detail string
}

func (e *detailError) Error() string { return e.base.Error() + ": " + e.detail }
func (e *detailError) Unwrap() error { return e.base }

func withDetail(base error, detail string) error { return &detailError{base: base, detail: detail} }

// ---- encoding helpers ----

func appendU16(b []byte, v uint16) []byte { return append(b, byte(v>>8), byte(v)) }
func appendU32(b []byte, v uint32) []byte {
	return append(b, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// beginParam writes a TLV header with a placeholder length.
func beginParam(b []byte, t ParamType) ([]byte, int) {
	start := len(b)
	return append(b, byte(t>>8), byte(t), 0, 0), start
}

// endParam sets the TLV length (which excludes the padding) and pads to 4.
func endParam(b []byte, start int, path string) ([]byte, error) {
	n := len(b) - start
	if n > 0xFFFF {
		return b, encErr(path, "parameter longer than 65535 bytes")
	}
	binary.BigEndian.PutUint16(b[start+2:], uint16(n))
	for len(b)%4 != start%4 {
		b = append(b, 0)
	}
	return b, nil
}

// AppendU32 appends a big-endian 32-bit value.
func AppendU32(b []byte, v uint32) []byte { return appendU32(b, v) }
