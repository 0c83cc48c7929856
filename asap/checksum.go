package asap

// Checksum is the ENRP PE ("ownership") checksum of a set of PEs (RFC 5353
// section 2.3.1): the Internet checksum (RFC 1071) over, for each PE, its
// pool handle bytes padded to even length followed by its PE identifier as
// 4 bytes big-endian. It is kept as the unfolded sum of 16-bit words so
// that PEs can be added and removed incrementally; Value folds it.
//
// The zero value is the checksum of the empty set (Value 0xFFFF).
type Checksum uint64

// ChecksumTerm returns one PE's contribution to a Checksum.
func ChecksumTerm(handle PoolHandle, id uint32) uint64 {
	var sum uint64
	n := len(handle)
	for i := 0; i+1 < n; i += 2 {
		sum += uint64(handle[i])<<8 | uint64(handle[i+1])
	}
	if n%2 == 1 {
		sum += uint64(handle[n-1]) << 8 // padded with one zero byte
	}
	return sum + uint64(id>>16) + uint64(id&0xFFFF)
}

// Add includes a PE.
func (c *Checksum) Add(handle PoolHandle, id uint32) { *c += Checksum(ChecksumTerm(handle, id)) }

// Remove takes out a PE that was added before.
func (c *Checksum) Remove(handle PoolHandle, id uint32) { *c -= Checksum(ChecksumTerm(handle, id)) }

// Value is the 16-bit checksum as sent in the PE Checksum parameter.
func (c Checksum) Value() uint16 {
	s := uint64(c)
	for s > 0xFFFF {
		s = (s & 0xFFFF) + (s >> 16)
	}
	return ^uint16(s)
}
