//go:build unix

package registrar

import "syscall"

// raiseFileLimit raises the soft limit of open files to the hard limit
// (every PE association is a file descriptor; Go does the same at start
// since 1.19, this makes it explicit and reports it) and returns both.
func raiseFileLimit() (soft, hard uint64, err error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, 0, err
	}
	if l.Cur < l.Max {
		want := l
		want.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			return uint64(l.Cur), uint64(l.Max), err
		}
		l = want
	}
	return uint64(l.Cur), uint64(l.Max), nil
}

// fileLimit is the current (soft) open file limit, 0 when unknown.
func fileLimit() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	return uint64(lim.Cur)
}
