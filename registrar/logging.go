package registrar

import (
	"io"
	"os"

	"github.com/hashicorp/go-hclog"
	"gopkg.in/natefinch/lumberjack.v2"
)

// newLogger builds the registrar's logger from the configuration: to
// standard error, or to LogFile rotated by size (lumberjack). The closer
// closes the log file (nil for standard error).
func newLogger(cfg Config) (hclog.Logger, io.Closer) {
	var out io.Writer = os.Stderr
	var closer io.Closer
	if cfg.LogFile != "" {
		lj := &lumberjack.Logger{Filename: cfg.LogFile, MaxSize: cfg.LogFileMaxSize, MaxBackups: cfg.LogFileMaxBackups}
		out, closer = lj, lj
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:       "registrar",
		Level:      hclog.LevelFromString(cfg.LogLevel),
		JSONFormat: cfg.LogJSON,
		Output:     out,
	}), closer
}
