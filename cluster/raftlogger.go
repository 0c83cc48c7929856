package cluster

import (
	"fmt"

	"github.com/hashicorp/go-hclog"
)

// raftLogger adapts raft's logging to what an operator should read: the
// election a registrar starts because it has not heard from any leader
// since it started (every single-node start, every new cluster) is the
// normal way to get one and logs at info; the same timeout after a leader
// was known (the leader went silent) stays a warning.
type raftLogger struct{ hclog.Logger }

func newRaftLogger(l hclog.Logger) hclog.Logger { return raftLogger{l} }

const electionTimeoutMsg = "heartbeat timeout reached, starting election"

func (l raftLogger) Warn(msg string, args ...any) { l.Log(hclog.Warn, msg, args...) }

func (l raftLogger) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Warn && msg == electionTimeoutMsg && argValue(args, "last-leader-addr") == "" {
		level = hclog.Info
		msg = "no raft leader known yet, starting election"
	}
	l.Logger.Log(level, msg, args...)
}

func (l raftLogger) With(args ...any) hclog.Logger  { return raftLogger{l.Logger.With(args...)} }
func (l raftLogger) Named(name string) hclog.Logger { return raftLogger{l.Logger.Named(name)} }
func (l raftLogger) ResetNamed(name string) hclog.Logger {
	return raftLogger{l.Logger.ResetNamed(name)}
}

// argValue is the value of key in hclog key/value pairs, as text ("" when
// absent).
func argValue(args []any, key string) string {
	for i := 0; i+1 < len(args); i += 2 {
		if k, ok := args[i].(string); ok && k == key && args[i+1] != nil {
			return fmt.Sprint(args[i+1])
		}
	}
	return ""
}
