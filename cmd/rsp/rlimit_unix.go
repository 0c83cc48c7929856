//go:build unix

package main

import "syscall"

// openFileLimit is the process's open file limit (Go raises the soft
// limit to the hard one at start), 0 when unknown.
func openFileLimit() uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	return uint64(l.Cur)
}
