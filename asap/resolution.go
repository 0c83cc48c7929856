package asap

import "strconv"

// AppendHandleResolutionResponse appends an ASAP_HANDLE_RESOLUTION_RESPONSE
// for pool h built from encoded Pool Elements, without decoding them: the
// pool's policy parameter (that of pes[0], as RSPLIB answers) and the PEs
// in order, each without its ASAP transport (RFC 5352 section 2.2.6: what
// PUs receive). This is a registrar's fast path; Append of a
// HandleResolutionResponse writes the same bytes from decoded values.
//
// A message length is 16 bits: PEs that would take the message past
// DefaultMaxMessageSize are left out, so the answer carries as many of pes
// as fit (at least 49 PEs of a known policy fit, even with 64 IPv6 user
// addresses each). It returns the extended buffer and the number of PEs
// in it. An empty pes gives a response with neither policy nor PEs. The
// error is an *EncodeError for an empty pool handle, or when not even the
// pool handle, the policy and the first PE fit; dst is then returned
// unchanged.
func AppendHandleResolutionResponse(dst []byte, h PoolHandle, pes []PoolElementView) ([]byte, int, error) {
	start := len(dst)
	dst = append(dst, byte(TypeHandleResolutionResponse), 0, 0, 0)
	dst, err := AppendPoolHandle(dst, h)
	if err != nil {
		return dst[:start], 0, prefixEnc(err, "handle_resolution_response")
	}
	n := 0
	if len(pes) > 0 {
		pol := pes[0].PolicyParam()
		dst = append(dst, pol...)
		dst = appendZeros(dst, pad4(len(pol))-len(pol))
		for i := range pes {
			if len(dst)-start+pad4(int(pes[i].end)) > DefaultMaxMessageSize {
				break
			}
			dst = pes[i].appendWithoutASAP(dst)
			n++
		}
	}
	size := len(dst) - start
	if n == 0 && len(pes) > 0 {
		size += pad4(int(pes[0].end))
	}
	if size > DefaultMaxMessageSize {
		return dst[:start], 0, encErr("handle_resolution_response",
			"a response with the pool handle, the policy and the first pool element takes "+strconv.Itoa(size)+" bytes, more than 65535")
	}
	dst[start+2], dst[start+3] = byte(size>>8), byte(size)
	return dst, n, nil
}

// ReadHandleResolution reads b as an ASAP_HANDLE_RESOLUTION without
// allocating (lim nil = DefaultLimits): handle aliases b. ok is false for
// anything else: another message, or a handle resolution that Unpack
// refuses or answers with an ASAP_ERROR for unrecognized parameters;
// decode those with Unpack, which says what is wrong. When ok, Unpack
// gives the same *HandleResolution and no unrecognized parameters.
func ReadHandleResolution(b []byte, lim *Limits) (handle []byte, items uint32, hasItems, ok bool) {
	if len(b) < 4 || Type(b[0]) != TypeHandleResolution {
		return nil, 0, false, false
	}
	d := GetDecoder(b, lim, "asap")
	defer d.Release()
	n, err := CheckFrame(b, &d.Lim, 4, "asap")
	if err != nil {
		return nil, 0, false, false
	}
	r := d.Region(4, n)
	v, _, err := r.Expect(ParamPoolHandle)
	if err != nil || len(v) == 0 || len(v) > d.Lim.MaxPoolHandle {
		return nil, 0, false, false
	}
	t, found, err := r.Peek()
	if err != nil {
		return nil, 0, false, false
	}
	if found && t == ParamHandleResolutionOption {
		if items, err = r.HandleResolutionOption(); err != nil {
			return nil, 0, false, false
		}
		hasItems = true
	}
	if r.AtEnd() != nil || len(d.Unrec) > 0 {
		return nil, 0, false, false
	}
	return v, items, hasItems, true
}

// ReadHandleResolutionResponse reads b as an ASAP_HANDLE_RESOLUTION_RESPONSE
// that carries pool elements (or none) without allocating (lim nil =
// DefaultLimits): handle aliases b and pes is the number of Pool Element
// parameters. It checks the message's framing, the pool handle, the policy
// parameter and each Pool Element's framing (as ViewPoolElement does), not
// the PEs' inner fields. ok is false for anything else: another message, a
// response that carries an Operation Error, unrecognized parameters, or a
// response Unpack refuses for its framing; decode those with Unpack, which
// says what is wrong. A pool user's hot loop (rsp bench) uses it to count
// answers without decoding them.
func ReadHandleResolutionResponse(b []byte, lim *Limits) (handle []byte, pes int, ok bool) {
	if len(b) < 4 || Type(b[0]) != TypeHandleResolutionResponse {
		return nil, 0, false
	}
	d := GetDecoder(b, lim, "asap")
	defer d.Release()
	n, err := CheckFrame(b, &d.Lim, 4, "asap")
	if err != nil {
		return nil, 0, false
	}
	r := d.Region(4, n)
	handle, _, err = r.Expect(ParamPoolHandle)
	if err != nil || len(handle) == 0 || len(handle) > d.Lim.MaxPoolHandle {
		return nil, 0, false
	}
	t, found, err := r.Peek()
	if err != nil {
		return nil, 0, false
	}
	if found && t == ParamPolicy {
		if _, err := r.Policy(); err != nil {
			return nil, 0, false
		}
	}
	for {
		t, found, err := r.Peek()
		if err != nil || (found && t != ParamPoolElement) {
			return nil, 0, false
		}
		if !found {
			break
		}
		v, start, _ := r.Expect(ParamPoolElement)
		if _, err := CheckPoolElement(b[start : start+4+len(v)]); err != nil {
			return nil, 0, false
		}
		pes++
	}
	if len(d.Unrec) > 0 {
		return nil, 0, false
	}
	return handle, pes, true
}
