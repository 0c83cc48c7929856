package asap

import (
	"errors"
	"strconv"
)

// Failure classes of the decoder. Every decoding error wraps one of them.
var (
	// ErrTruncated: a length field points past the bytes present.
	ErrTruncated = errors.New("truncated")
	// ErrBadLength: a length field is impossible for its item (too short,
	// not the fixed size of the parameter, or disagreeing with the header).
	ErrBadLength = errors.New("bad length")
	// ErrTooLarge: the message exceeds Limits.MaxMessageSize.
	ErrTooLarge = errors.New("message too large")
	// ErrTooDeep: parameters are nested deeper than Limits.MaxDepth.
	ErrTooDeep = errors.New("parameters nested too deeply")
	// ErrMissingParam: a mandatory parameter is absent.
	ErrMissingParam = errors.New("missing parameter")
	// ErrUnexpectedParam: a known parameter appears where the message does
	// not allow it.
	ErrUnexpectedParam = errors.New("unexpected parameter")
	// ErrUnrecognizedParam: a parameter of unknown type whose upper bits
	// say "stop processing".
	ErrUnrecognizedParam = errors.New("unrecognized parameter")
	// ErrInvalidValue: a field holds a value the protocol does not allow
	// (pool handle empty or too long, PE identifier 0, a TCP transport with
	// two addresses, ...).
	ErrInvalidValue = errors.New("invalid value")
	// ErrUnknownMessage: the message type is not one of this protocol's.
	ErrUnknownMessage = errors.New("unknown message type")
)

// DecodeError is a decoding error. It names the field path and the byte offset
// (from the start of the message) where decoding failed.
type DecodeError struct {
	Proto  string // "asap" or "enrp"
	Path   string // field path, e.g. "registration.pool_element.policy"
	Offset int    // byte offset in the message
	Err    error  // one of the sentinels above, possibly with detail

	// Code is the Operation Error cause a server should answer with, or 0
	// when the message must be dropped silently (an unknown parameter of
	// type 00xx, RFC 5354 section 2).
	Code CauseCode
	// Info is the cause information for Code: a copy of the offending
	// parameter, or nil.
	Info []byte
}

func (e *DecodeError) Error() string {
	p := e.Proto
	if p == "" {
		p = "asap"
	}
	s := p + ": "
	if e.Path != "" {
		s += e.Path + " "
	}
	return s + "at offset " + strconv.Itoa(e.Offset) + ": " + e.Err.Error()
}

// Unwrap gives the failure class.
func (e *DecodeError) Unwrap() error { return e.Err }

// Report says whether the sender should get an error message back.
func (e *DecodeError) Report() bool { return e.Code != 0 }

// Cause returns the Operation Error cause to send back, and false when the
// message is to be dropped silently.
func (e *DecodeError) Cause() (Cause, bool) {
	if e.Code == 0 {
		return Cause{}, false
	}
	return Cause{Code: e.Code, Info: e.Info}, true
}

// UnknownMessageError is returned for a message type this codec does not
// know. RFC 5352 asks for an ERROR with cause Unrecognized Message (0x0002)
// carrying the message; Cause builds it.
type UnknownMessageError struct {
	Proto   string
	Type    uint8
	Message []byte // a copy of the whole message
}

func (e *UnknownMessageError) Error() string {
	p := e.Proto
	if p == "" {
		p = "asap"
	}
	return p + ": unknown message type 0x" + strconv.FormatUint(uint64(e.Type), 16)
}

// Unwrap makes errors.Is(err, ErrUnknownMessage) true.
func (e *UnknownMessageError) Unwrap() error { return ErrUnknownMessage }

// Cause returns the Unrecognized Message cause for the error reply.
func (e *UnknownMessageError) Cause() (Cause, bool) {
	return Cause{Code: CauseUnrecognizedMessage, Info: e.Message}, true
}

// CauseOf extracts the Operation Error cause to send back for a decoding
// error, and false if there is none (the message is to be dropped silently,
// or err is not a decoding error).
func CauseOf(err error) (Cause, bool) {
	var e *DecodeError
	if errors.As(err, &e) {
		return e.Cause()
	}
	var u *UnknownMessageError
	if errors.As(err, &u) {
		return u.Cause()
	}
	return Cause{}, false
}

// prefix prepends a path component to a decoding error on its way up.
// It costs nothing on the success path.
func prefix(err error, component string) error {
	if e, ok := err.(*DecodeError); ok {
		if e.Path == "" {
			e.Path = component
		} else {
			e.Path = component + "." + e.Path
		}
	}
	return err
}

// EncodeError is returned when a value cannot be encoded (an empty pool
// handle, an address that is not valid, a message over 65535 bytes, ...).
type EncodeError struct {
	Path string
	Msg  string
}

func (e *EncodeError) Error() string { return "asap: encode " + e.Path + ": " + e.Msg }

func encErr(path, msg string) error { return &EncodeError{Path: path, Msg: msg} }

// PrefixError prepends a field path component to a decoding error on its
// way up (for package enrp). Other errors pass through unchanged.
func PrefixError(err error, component string) error { return prefix(err, component) }

// WithDetail adds detail to one of the sentinels above, keeping errors.Is
// working (for package enrp).
func WithDetail(sentinel error, detail string) error { return withDetail(sentinel, detail) }
