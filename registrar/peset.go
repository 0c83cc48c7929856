package registrar

// peSet is a set of PEs, as a connection keeps those registered through
// it (max_pes_per_connection): a slice while small, a map beyond. Most
// connections carry one PE (RSPLIB's PEs each have an association of
// their own), and a map for one PE cost about 260 bytes per connection.
type peSet struct {
	small []peKey
	large map[peKey]struct{}
}

// peSetSmall is the most a peSet holds in its slice.
const peSetSmall = 8

func (s *peSet) has(k peKey) bool {
	if s.large != nil {
		_, ok := s.large[k]
		return ok
	}
	for _, e := range s.small {
		if e == k {
			return true
		}
	}
	return false
}

func (s *peSet) len() int {
	if s.large != nil {
		return len(s.large)
	}
	return len(s.small)
}

func (s *peSet) add(k peKey) {
	switch {
	case s.large != nil:
		s.large[k] = struct{}{}
	case s.has(k):
	case len(s.small) < peSetSmall:
		s.small = append(s.small, k)
	default:
		s.large = make(map[peKey]struct{}, 2*peSetSmall)
		for _, e := range s.small {
			s.large[e] = struct{}{}
		}
		s.large[k] = struct{}{}
		s.small = nil
	}
}

func (s *peSet) remove(k peKey) {
	if s.large != nil {
		delete(s.large, k)
		return
	}
	for i, e := range s.small {
		if e == k {
			last := len(s.small) - 1
			s.small[i] = s.small[last]
			s.small[last] = peKey{}
			s.small = s.small[:last]
			return
		}
	}
}
