package asap

import (
	"encoding/binary"
	"strconv"
)

// PoolElementView reads an encoded Pool Element parameter in place, the
// form a registrar keeps PEs in: the fields without decoding the whole
// element, a copy with a new home registrar, and the parts a handle
// resolution answer is built from (AppendHandleResolutionResponse).
//
// RFC 5354 section 3.10:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     Parameter Type = 0x000A   |       Parameter Length        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       PE Identifier                           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                  Home ENRP Server Identifier                  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                   Registration Life                           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	:                 User Transport param                          :
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	:                 Member Selection Policy param                 :
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	:                 ASAP Transport param                          :
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// A view holds the encoding as a string, so it is immutable and may be
// kept and shared; it is a small value (the string and two offsets) and
// costs no allocation. The zero value is not a valid view.
type PoolElementView struct {
	enc    string
	policy int32 // offset of the policy parameter
	end    int32 // end of the policy parameter, without padding
}

// Offsets of the fixed part of a Pool Element parameter.
const (
	peOffID       = 4
	peOffHome     = 8
	peOffLifetime = 12
	peOffUser     = 16 // the user transport parameter
)

// ViewPoolElement checks the framing of an encoded Pool Element parameter
// (as AppendPoolElement writes it: the fixed part, a transport parameter,
// a policy parameter, at most one more transport parameter; the final
// padding may be missing) and returns a view of it. Only the framing is
// checked: the transport and policy values are not decoded (Decode does
// that). The error is a *DecodeError naming the field.
func ViewPoolElement(enc string) (PoolElementView, error) {
	pol, end, err := framePoolElement(enc)
	if err != nil {
		return PoolElementView{}, err
	}
	return PoolElementView{enc: enc, policy: int32(pol), end: int32(end)}, nil
}

// CheckPoolElement checks the framing of an encoded Pool Element parameter
// as ViewPoolElement does, without copying b, and returns its PE
// identifier.
func CheckPoolElement(b []byte) (id uint32, err error) {
	if _, _, err := framePoolElement(b); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(b[peOffID:]), nil
}

// framePoolElement checks the framing of an encoded Pool Element and
// returns the offset of its policy parameter and the policy's end.
func framePoolElement[T string | []byte](enc T) (pol, end int, err error) {
	fail := func(off int, err error) (int, int, error) {
		return 0, 0, &DecodeError{Proto: "asap", Path: "pool_element", Offset: off, Err: err, Code: CauseInvalidValues}
	}
	if len(enc) < peOffUser+4 {
		return fail(0, withDetail(ErrTruncated, "pool element of "+strconv.Itoa(len(enc))+" bytes"))
	}
	if t := ParamType(be16(enc, 0)); t != ParamPoolElement {
		return fail(0, withDetail(ErrUnexpectedParam, "want pool-element, got "+t.String()))
	}
	length := be16(enc, 2)
	if length < peOffUser+4 || length > len(enc) || len(enc) > pad4(length) {
		return fail(0, withDetail(ErrBadLength, "pool element length "+strconv.Itoa(length)+" in "+strconv.Itoa(len(enc))+" bytes"))
	}
	ut, utLen := ParamType(be16(enc, peOffUser)), be16(enc, peOffUser+2)
	if !isTransport(ut) || utLen < 8 || peOffUser+utLen > length {
		return fail(peOffUser, withDetail(ErrBadLength, "user transport "+ut.String()+" of length "+strconv.Itoa(utLen)))
	}
	pol = peOffUser + pad4(utLen)
	if pol+8 > length || ParamType(be16(enc, pol)) != ParamPolicy {
		return fail(pol, withDetail(ErrMissingParam, "policy"))
	}
	polLen := be16(enc, pol+2)
	if polLen < 8 || pol+polLen > length {
		return fail(pol, withDetail(ErrBadLength, "policy of length "+strconv.Itoa(polLen)))
	}
	end = pol + polLen
	if rest := pad4(end); rest < length {
		if rest+8 > length || !isTransport(ParamType(be16(enc, rest))) || rest+be16(enc, rest+2) != length {
			return fail(rest, withDetail(ErrUnexpectedParam, "after the policy: want one ASAP transport"))
		}
	}
	return pol, end, nil
}

func be16[T string | []byte](s T, off int) int { return int(s[off])<<8 | int(s[off+1]) }
func be32(s string, off int) uint32 {
	return uint32(s[off])<<24 | uint32(s[off+1])<<16 | uint32(s[off+2])<<8 | uint32(s[off+3])
}
func pad4(n int) int { return (n + 3) &^ 3 }

// Encoded returns the whole parameter as it was viewed.
func (v PoolElementView) Encoded() string { return v.enc }

// ID is the PE identifier.
func (v PoolElementView) ID() uint32 { return be32(v.enc, peOffID) }

// Home is the home registrar's identifier.
func (v PoolElementView) Home() uint32 { return be32(v.enc, peOffHome) }

// Lifetime is the registration life in milliseconds.
func (v PoolElementView) Lifetime() uint32 { return be32(v.enc, peOffLifetime) }

// UserTransportKind is the parameter type of the user transport
// (ParamSCTPTransport, ParamTCPTransport, ...).
func (v PoolElementView) UserTransportKind() ParamType {
	return ParamType(be16(v.enc, peOffUser))
}

// PolicyType is the type of the member selection policy.
func (v PoolElementView) PolicyType() PolicyType {
	return PolicyType(be32(v.enc, int(v.policy)+4))
}

// PolicyParam is the encoded policy parameter, without padding.
func (v PoolElementView) PolicyParam() string { return v.enc[v.policy:v.end] }

// HasASAPTransport reports whether the element carries an ASAP transport.
func (v PoolElementView) HasASAPTransport() bool { return pad4(int(v.end)) < be16(v.enc, 2) }

// WithHome returns a view of a copy of the element with its home registrar
// replaced by home.
func (v PoolElementView) WithHome(home uint32) PoolElementView {
	b := make([]byte, len(v.enc))
	copy(b, v.enc)
	binary.BigEndian.PutUint32(b[peOffHome:], home)
	v.enc = string(b)
	return v
}

// Decode decodes the whole element.
func (v PoolElementView) Decode() (PoolElement, error) {
	b := []byte(v.enc)
	d := GetDecoder(b, nil, "asap")
	defer d.Release()
	r := d.Region(0, len(b))
	pe, err := r.PoolElement()
	if err == nil {
		err = r.AtEnd()
	}
	return pe, err
}

// appendWithoutASAP appends the element without its ASAP transport (the
// form PUs receive it in), padded.
func (v PoolElementView) appendWithoutASAP(dst []byte) []byte {
	end := int(v.end)
	dst = append(dst, byte(ParamPoolElement>>8), byte(ParamPoolElement), byte(end>>8), byte(end))
	dst = append(dst, v.enc[4:end]...)
	return appendZeros(dst, pad4(end)-end)
}

func appendZeros(b []byte, n int) []byte {
	for ; n > 0; n-- {
		b = append(b, 0)
	}
	return b
}
