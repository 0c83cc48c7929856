//go:build !unix

package registrar

// raiseFileLimit has nothing to raise here.
func raiseFileLimit() (soft, hard uint64, err error) { return 0, 0, nil }

// fileLimit is the open file limit: unknown (0) here.
func fileLimit() uint64 { return 0 }
