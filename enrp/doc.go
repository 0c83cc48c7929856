// Package enrp is a pure codec for the Endpoint Handlespace Redundancy
// Protocol (ENRP, RFC 5353), the protocol registrars speak among
// themselves. It reuses package asap's parameters (RFC 5354) and its
// decoding rules.
//
// # Basics
//
// Every ENRP message starts with the common header (type, flags, length)
// followed by the sender's and the receiver's server IDs (Header, embedded
// in every message struct). Pack/Append encode, Unpack decodes:
//
//	b, err := enrp.Pack(&enrp.ListRequest{Header: enrp.Header{Sender: 1}})
//	m, unrec, err := enrp.Unpack(b, nil)
//
// Unknown parameters follow their type's two upper bits exactly as in
// package asap; "skip and report" ones come back in the second result so a
// registrar can answer with an ENRP_ERROR. Errors are *asap.DecodeError
// (with Proto "enrp") naming the field path and byte offset, or
// *asap.UnknownMessageError.
//
// # RSPLIB
//
// RSPLIB registrars send Receiver ID 0 to peers they have not identified
// yet, never send ENRP_TAKEOVER_SERVER (a bug), and keep the offender's IDs
// in their ENRP_ERROR replies. The codec accepts all of this; what to make
// of it is the registrar's business.
//
// References: RFC 5353 (ENRP), RFC 5354 (parameters),
// draft-dreibholz-rserpool-enrp-takeover (the T flag of HANDLE_UPDATE).
package enrp
