// Package asap is a pure codec for the Aggregate Server Access Protocol
// (ASAP, RFC 5352) and for the parameters that ASAP and ENRP share
// (RFC 5354), including the member selection policies of RFC 5356 and the
// RSPLIB extensions.
//
// The package does no I/O: bytes go in, typed values come out, and back.
// It imports no sockets, files, clocks or loggers (a test enforces this).
//
// # Basics
//
// Every message type has a struct (Registration, HandleResolution, ...)
// that implements Message. Append and Pack encode one; Unpack decodes one:
//
//	b, err := asap.Pack(&asap.HandleResolution{PoolHandle: "echo"})
//	m, unrec, err := asap.Unpack(b, nil)
//
// Encoding always produces RFC-clean output: lengths that include the final
// padding, zero padding bytes, unassigned flag bits zero. Decoding accepts
// the forms RSPLIB sends (a message length without the final padding, a
// business card that repeats its pool handle) and is strict otherwise.
//
// # Encoded Pool Elements
//
// A registrar keeps PEs as their encoded Pool Element parameters.
// ViewPoolElement gives a PoolElementView of one: its fields read in
// place, a copy with a new home registrar (WithHome), the policy
// parameter. AppendHandleResolutionResponse builds a whole
// ASAP_HANDLE_RESOLUTION_RESPONSE from views, without decoding, with as
// many PEs as fit in one message. Code outside this package and enrp uses
// these instead of byte offsets.
//
// # Unknown parameters
//
// The two upper bits of a parameter type say what a receiver that does not
// understand it must do (RFC 5354 section 2, the same scheme as SCTP):
//
//	00 - Stop processing this message and discard it, do not process
//	     any further parameters within it.
//	01 - Stop processing this message and discard it, do not process any
//	     further parameters within it, and report the unrecognized
//	     parameter in an 'Unrecognized Parameter' error.
//	10 - Skip this parameter and continue processing.
//	11 - Skip this parameter and continue processing, but report the
//	     unrecognized parameter in an 'Unrecognized Parameter' error.
//
// Unpack follows them. "Skip and report" parameters come back as the
// []Unrecognized result, so a server can answer with an ASAP_ERROR while
// still acting on the message. The "stop" cases return a *DecodeError: its
// Report method says whether the peer should be told, and its Cause method
// gives the Operation Error cause to send. A known parameter in a place
// where the message does not allow it is treated the same way when its type
// says "skip", and is an Invalid Values error otherwise.
//
// # Errors
//
// Decoding errors are *DecodeError values that name the field path and the
// byte offset, for example
//
//	asap: registration.pool_element.user_transport.address[1] at offset 40: truncated
//
// and wrap a sentinel (ErrTruncated, ErrBadLength, ...) for errors.Is. An
// unknown message type gives an *UnknownMessageError. No input makes the
// decoder panic; the fuzz tests check this.
//
// # Caveats
//
// Decoded values never alias the input: byte slices (cookies, cause
// information, unrecognized parameters) are copied, so the caller may reuse
// its buffer.
//
// # To add a new parameter type
//
//  1. Add its ParamType constant to params.go (only append to the list; the
//     values are part of the protocol) and a name in paramNames.
//  2. Mark it known in isKnownParam.
//  3. Add a Reader method that parses it and an append function.
//  4. Use both in the messages that carry it, add table vectors in
//     testdata and a case to the tshark conformance test.
//
// References: RFC 5352 (ASAP), RFC 5354 (parameters), RFC 5356 (policies),
// draft-dreibholz-rserpool-asap-hropt (Handle Resolution Option 0x803F).
package asap
