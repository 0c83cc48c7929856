package asap

import "encoding/binary"

// Parameter framing for code outside the codec that reads or writes a
// stream of parameters (the snapshot archive is one): RFC 5354 section 2,
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|          Parameter Type       |       Parameter Length        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	\                                                               \
//	/                       Parameter Value                         /
//	\                                                               \
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// The length covers the type, the length and the value, not the padding
// to the next multiple of 4 bytes.

// ParamHeaderSize is the size of a parameter's type and length fields.
const ParamHeaderSize = 4

// ParamHeader reads the type and the length (header included, padding
// not) of the parameter at the start of b; ok is false when b is shorter
// than a header.
func ParamHeader(b []byte) (t ParamType, length int, ok bool) {
	if len(b) < ParamHeaderSize {
		return 0, 0, false
	}
	return ParamType(binary.BigEndian.Uint16(b)), int(binary.BigEndian.Uint16(b[2:])), true
}

// ParamPadded is a parameter length rounded up to the 4-byte boundary the
// next parameter starts at.
func ParamPadded(length int) int { return pad4(length) }

// ParamValue returns the value of the parameter at the start of b, without
// header and padding; ok is false when b does not hold the whole
// parameter or its length is below the header's.
func ParamValue(b []byte) (value []byte, ok bool) {
	_, length, ok := ParamHeader(b)
	if !ok || length < ParamHeaderSize || length > len(b) {
		return nil, false
	}
	return b[ParamHeaderSize:length], true
}

// AppendParam appends a parameter of type t holding value, padded: for
// parameters this package does not define (a registrar's private ones).
// The error is an *EncodeError for a value too long for the 16-bit length.
func AppendParam(b []byte, t ParamType, value []byte) ([]byte, error) {
	b, start := beginParam(b, t)
	b = append(b, value...)
	b, err := endParam(b, start, "param "+t.String())
	if err != nil {
		return b[:start], err
	}
	return b, nil
}
