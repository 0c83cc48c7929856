package asap

import (
	"encoding/binary"
	"strconv"
)

// CauseCode is an Operation Error cause code (RFC 5354 section 3.12).
// RSPLIB also puts its internal error numbers here (0x0010, 0x1000-0x100B,
// 0xF000-0xF008); they are accepted and shown as numbers.
//
// WARNING: only append to this list. The values are part of the protocol.
type CauseCode uint16

const (
	CauseUnrecognizedParameter      CauseCode = 0x0001
	CauseUnrecognizedMessage        CauseCode = 0x0002
	CauseInvalidValues              CauseCode = 0x0003
	CauseNonUniquePEIdentifier      CauseCode = 0x0004
	CauseInconsistentPolicy         CauseCode = 0x0005
	CauseLackOfResources            CauseCode = 0x0006
	CauseInconsistentTransport      CauseCode = 0x0007
	CauseInconsistentDataControl    CauseCode = 0x0008
	CauseUnknownPoolHandle          CauseCode = 0x0009
	CauseRejectedSecurity           CauseCode = 0x000A
	CauseRSPLIBInvalidMessage       CauseCode = 0x0010 // RSPLIB internal "invalid message"
	CauseRSPLIBInvalidValue         CauseCode = 0x0011 // RSPLIB internal "invalid value"
	CauseRSPLIBUnsupportedPolicy    CauseCode = 0x100B // RSPLIB internal "unsupported policy"
	CauseRSPLIBNoUsableUserAddress  CauseCode = 0xF008 // RSPLIB handlespace "no usable user addresses"
	CauseRSPLIBNoUsableASAPAddress  CauseCode = 0xF007 // RSPLIB handlespace "no usable ASAP addresses"
	CauseRSPLIBInvalidPEIdentifier0 CauseCode = 0xF000 // RSPLIB handlespace "PE identifier 0"
)

var causeNames = map[CauseCode]string{
	CauseUnrecognizedParameter:      "unrecognized parameter",
	CauseUnrecognizedMessage:        "unrecognized message",
	CauseInvalidValues:              "invalid values",
	CauseNonUniquePEIdentifier:      "non-unique PE identifier",
	CauseInconsistentPolicy:         "inconsistent pooling policy",
	CauseLackOfResources:            "lack of resources",
	CauseInconsistentTransport:      "inconsistent transport type",
	CauseInconsistentDataControl:    "inconsistent data/control configuration",
	CauseUnknownPoolHandle:          "unknown pool handle",
	CauseRejectedSecurity:           "rejection due to security considerations",
	CauseRSPLIBInvalidMessage:       "invalid message (RSPLIB)",
	CauseRSPLIBInvalidValue:         "invalid value (RSPLIB)",
	CauseRSPLIBUnsupportedPolicy:    "unsupported policy (RSPLIB)",
	CauseRSPLIBNoUsableUserAddress:  "no usable user address (RSPLIB)",
	CauseRSPLIBNoUsableASAPAddress:  "no usable ASAP address (RSPLIB)",
	CauseRSPLIBInvalidPEIdentifier0: "PE identifier 0 (RSPLIB)",
}

func (c CauseCode) String() string {
	if n, ok := causeNames[c]; ok {
		return n
	}
	return "cause 0x" + strconv.FormatUint(uint64(c), 16)
}

// MarshalText writes the cause as a number with its name, e.g.
// "0x0005 inconsistent pooling policy".
func (c CauseCode) MarshalText() ([]byte, error) {
	h := strconv.FormatUint(uint64(c), 16)
	for len(h) < 4 {
		h = "0" + h
	}
	s := "0x" + h
	if n, ok := causeNames[c]; ok {
		s += " " + n
	}
	return []byte(s), nil
}

// UnmarshalText accepts what MarshalText writes, a bare number or a name.
func (c *CauseCode) UnmarshalText(b []byte) error {
	s := string(b)
	for k, v := range causeNames {
		if v == s {
			*c = k
			return nil
		}
	}
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' {
			s = s[:i]
			break
		}
	}
	n, err := strconv.ParseUint(s, 0, 16)
	if err != nil {
		return encErr("cause.code", "bad cause code "+strconv.Quote(string(b)))
	}
	*c = CauseCode(n)
	return nil
}

// NeedsInfo reports the causes that carry the offending parameter or
// message (Wireshark flags them as malformed without it).
func (c CauseCode) NeedsInfo() bool {
	switch c {
	case CauseUnrecognizedParameter, CauseUnrecognizedMessage, CauseInvalidValues,
		CauseInconsistentPolicy, CauseInconsistentTransport:
		return true
	}
	return false
}

// Cause is one error cause inside an Operation Error parameter.
type Cause struct {
	Code CauseCode `json:"code"`
	// Info is the cause-specific information: the offending parameter or
	// message for causes 1, 2, 3, 5 and 7.
	Info Bytes `json:"info,omitempty"`
}

func (c Cause) Error() string { return c.Code.String() }

// OperationError is the Operation Error parameter: one or more causes.
type OperationError struct {
	Causes []Cause `json:"causes"`
}

// NewOperationError builds an Operation Error with a single cause.
func NewOperationError(code CauseCode, info []byte) *OperationError {
	return &OperationError{Causes: []Cause{{Code: code, Info: info}}}
}

// First returns the first cause code (0 if none).
func (o *OperationError) First() CauseCode {
	if o == nil || len(o.Causes) == 0 {
		return 0
	}
	return o.Causes[0].Code
}

func (o *OperationError) Error() string {
	if o == nil || len(o.Causes) == 0 {
		return "operation error"
	}
	s := ""
	for i, c := range o.Causes {
		if i > 0 {
			s += "; "
		}
		s += c.Code.String()
	}
	return s
}

// AppendOperationError encodes an Operation Error parameter.
func AppendOperationError(b []byte, o *OperationError) ([]byte, error) {
	if len(o.Causes) == 0 {
		return b, encErr("operation_error", "no cause")
	}
	b, start := beginParam(b, ParamOperationError)
	for i, c := range o.Causes {
		cs := len(b)
		b = appendU16(b, uint16(c.Code))
		b = append(b, 0, 0)
		b = append(b, c.Info...)
		n := len(b) - cs
		if n > 0xFFFF {
			return b, encErr("operation_error.causes["+strconv.Itoa(i)+"]", "cause longer than 65535 bytes")
		}
		binary.BigEndian.PutUint16(b[cs+2:], uint16(n))
		for (len(b)-cs)%4 != 0 {
			b = append(b, 0)
		}
	}
	return endParam(b, start, "operation_error")
}

// OperationError reads an Operation Error parameter.
func (r *Reader) OperationError() (*OperationError, error) {
	v, start, err := r.Expect(ParamOperationError)
	if err != nil {
		return nil, prefix(err, "operation_error")
	}
	if r.depth+1 >= r.d.Lim.MaxDepth {
		return nil, prefix(r.failParam(start, len(v)+4, ErrTooDeep, CauseInvalidValues), "operation_error")
	}
	o := &OperationError{}
	off := 0
	for off < len(v) {
		path := "operation_error.causes[" + strconv.Itoa(len(o.Causes)) + "]"
		at := start + 4 + off
		if len(v)-off < 4 {
			return nil, prefix(r.failParam(start, len(v)+4, withDetail(ErrTruncated, "cause header needs 4 bytes"), CauseInvalidValues), path)
		}
		code := CauseCode(binary.BigEndian.Uint16(v[off:]))
		n := int(binary.BigEndian.Uint16(v[off+2:]))
		if n < 4 || off+n > len(v) {
			e := r.failParam(start, len(v)+4, withDetail(ErrBadLength, "cause length "+strconv.Itoa(n)), CauseInvalidValues)
			e.Offset = at
			return nil, prefix(e, path)
		}
		// An empty Info stays nil: append copies nothing into a nil slice.
		o.Causes = append(o.Causes, Cause{Code: code, Info: append(Bytes(nil), v[off+4:off+n]...)})
		off += (n + 3) &^ 3
	}
	if len(o.Causes) == 0 {
		return nil, prefix(r.failParam(start, len(v)+4, withDetail(ErrMissingParam, "cause"), CauseInvalidValues), "operation_error")
	}
	return o, nil
}
