package store

// ReplaceAll replaces the whole handlespace with the PEs fill passes to
// put, recording index as the last applied raft index (0 leaves it as it
// is). It is all or nothing: fill runs first and may fail (a snapshot that
// does not verify), and every PE must pass Check against the new
// handlespace (a PE with the same handle and ID as an earlier one
// replaces it); only then is the new handlespace written to a new file
// beside the store's, made durable and swapped in with the in-memory
// index. On an error nothing changes in memory; an I/O failure during the
// swap leaves the store faulted (see Fault) until the file is rewritten.
// A successful ReplaceAll ends a fault: the new file holds everything.
// Readers that open a bbolt transaction during the swap get
// ErrNoFile (or bbolt's ErrDatabaseNotOpen, if they found the old file
// just before it closed); in-memory reads see the old handlespace, then
// the new one.
func (s *Store) ReplaceAll(index uint64, fill func(put func(PE) error) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.flush(); err != nil && s.Fault() == nil {
		return err
	} // a fault: the new file replaces everything anyway
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	return s.replaceBulk(index, fill)
}
