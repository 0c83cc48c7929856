package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/rserpool-go/registrar/asap"
	"github.com/rserpool-go/registrar/asap/pu"
)

// Flags and helpers shared by serve, resolve and connect.

// defaultRegistrar is the agent's default ASAP address.
const defaultRegistrar = "tcp:127.0.0.1:3863"

// registrarFlags are the flags that find registrars.
type registrarFlags struct {
	registrars string
	announce   string
	ifname     string
	logLevel   string
	logJSON    bool
	tls        tlsFlags
}

func (r *registrarFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&r.registrars, "registrar", defaultRegistrar, "registrar ASAP addresses, [tcp:|tls:|sctp:]host:port[,...]; empty to use announces only")
	r.tls.bind(fs)
	fs.StringVar(&r.announce, "announce", "", "ASAP SERVER_ANNOUNCE multicast group:port to learn registrars from, or off (default: 239.0.0.50:3863 when -registrar is empty, else off)")
	fs.StringVar(&r.ifname, "announce-interface", "", "interface to hear announces on (default: routing decides)")
	fs.StringVar(&r.logLevel, "log-level", "info", "log level: trace, debug, info, warn, error")
	fs.BoolVar(&r.logJSON, "log-json", false, "write logs as JSON")
}

// list splits the -registrar value.
func (r *registrarFlags) list() []string {
	var out []string
	for _, s := range strings.Split(r.registrars, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// logger builds the command's logger on w (stderr).
func (r *registrarFlags) logger(name string, w io.Writer) (hclog.Logger, error) {
	lvl := hclog.LevelFromString(r.logLevel)
	if lvl == hclog.NoLevel {
		return nil, fmt.Errorf("-log-level %q: want trace, debug, info, warn or error", r.logLevel)
	}
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: lvl, JSONFormat: r.logJSON, Output: w}), nil
}

// userConfig is a pool user configuration from the flags.
func (r *registrarFlags) userConfig(log hclog.Logger) (pu.Config, error) {
	cfg := pu.DefaultConfig()
	cfg.Registrars = r.list()
	cfg.Announce = r.announce
	cfg.AnnounceInterface = r.ifname
	cfg.Logger = log
	var err error
	cfg.TLS, err = r.tls.config()
	return cfg, err
}

// explain adds what to do to errors about finding registrars.
func explain(err error) string {
	if errors.Is(err, pu.ErrNoRegistrar) {
		return err.Error() + " (set -registrar, or -announce to hear registrar announces)"
	}
	return err.Error()
}

// policyFields names the values of each policy, in the order a -policy
// flag gives them.
var policyFields = map[asap.PolicyType][]string{
	asap.PolicyRoundRobin:                             nil,
	asap.PolicyWeightedRoundRobin:                     {"weight"},
	asap.PolicyRandom:                                 nil,
	asap.PolicyWeightedRandom:                         {"weight"},
	asap.PolicyPriority:                               {"priority"},
	asap.PolicyLeastUsed:                              {"load"},
	asap.PolicyLeastUsedDegradation:                   {"load", "degradation"},
	asap.PolicyPriorityLeastUsed:                      {"load", "degradation"},
	asap.PolicyRandomizedLeastUsed:                    {"load"},
	asap.PolicyRandomizedPriorityLeastUsed:            {"load", "degradation"},
	asap.PolicyRandomizedLeastUsedDegradation:         {"load", "degradation"},
	asap.PolicyPriorityLeastUsedDegradation:           {"load", "degradation"},
	asap.PolicyRandomizedPriorityLeastUsedDegradation: {"load", "degradation"},
	asap.PolicyWeightedRandomDPF:                      {"weight", "weight-dpf", "distance"},
	asap.PolicyLeastUsedDPF:                           {"load", "load-dpf", "distance"},
	asap.PolicyLeastUsedDegradationDPF:                {"load", "degradation", "load-dpf", "distance"},
	asap.PolicyPriorityLeastUsedDPF:                   {"load", "degradation", "load-dpf", "distance"},
	asap.PolicyPriorityLeastUsedDegradationDPF:        {"load", "degradation", "load-dpf", "distance"},
}

// fraction reports the fields that are fractions of 0xFFFFFFFF.
func fraction(field string) bool {
	switch field {
	case "load", "degradation", "load-dpf", "weight-dpf":
		return true
	}
	return false
}

// parsePolicy reads "name[:value[:value...]]": rr, wrr:5, lu, lu:25%,
// lud:0.5:10%, pri:3, wrand-dpf:10:0.1:20. Fractions (load, degradation,
// DPF) are written as a percentage ("25%") or a decimal ("0.25"); a plain
// integer is the raw 32-bit value. Weights default to 1.
func parsePolicy(s string) (asap.Policy, error) {
	parts := strings.Split(s, ":")
	t, ok := asap.ParsePolicyType(parts[0])
	fields, known := policyFields[t]
	if !ok || !known {
		return asap.Policy{}, fmt.Errorf("policy %q: unknown; use rr, wrr:W, rand, wrand:W, pri:P, lu[:LOAD], lud[:LOAD[:DEG]], plu, rlu, rplu, rlud, plud, rplud, wrand-dpf[:W[:WDPF[:DIST]]], lu-dpf, lud-dpf, plu-dpf, plud-dpf", parts[0])
	}
	vals := parts[1:]
	if len(vals) > len(fields) {
		return asap.Policy{}, fmt.Errorf("policy %q: %s takes at most %d values (%s)", s, t, len(fields), strings.Join(fields, ":"))
	}
	p := asap.Policy{Type: t}
	for _, f := range fields {
		if f == "weight" {
			p.Weight = 1
		}
	}
	for i, v := range vals {
		f := fields[i]
		n, err := parseValue(v, fraction(f))
		if err != nil {
			return asap.Policy{}, fmt.Errorf("policy %q: %s %q: %v", s, f, v, err)
		}
		*policyField(&p, f) = n
	}
	return p, nil
}

// policyField is the value of p that policyFields names f.
func policyField(p *asap.Policy, f string) *uint32 {
	switch f {
	case "weight":
		return &p.Weight
	case "priority":
		return &p.Priority
	case "load":
		return &p.Load
	case "degradation":
		return &p.LoadDegradation
	case "load-dpf":
		return &p.LoadDPF
	case "weight-dpf":
		return &p.WeightDPF
	case "distance":
		return &p.Distance
	}
	panic("rsp: unknown policy field " + f)
}

// parseValue reads a 32-bit value; for fractions also "25%" and "0.25".
func parseValue(v string, frac bool) (uint32, error) {
	if frac && (strings.HasSuffix(v, "%") || strings.Contains(v, ".")) {
		f, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
		if strings.HasSuffix(v, "%") {
			f /= 100
		}
		if err != nil || f < 0 || f > 1 {
			return 0, errors.New("want a fraction between 0 and 1 (0.25 or 25%) or a 32-bit integer")
		}
		return uint32(f*0xFFFFFFFF + 0.5), nil
	}
	n, err := strconv.ParseUint(v, 0, 32)
	if err != nil {
		return 0, errors.New("want a 32-bit unsigned integer")
	}
	return uint32(n), nil
}

// policyString formats a policy with its values: "lu load=25%".
func policyString(p asap.Policy) string {
	var b strings.Builder
	b.WriteString(p.Type.String())
	for _, f := range policyFields[p.Type] {
		v := *policyField(&p, f)
		if fraction(f) {
			fmt.Fprintf(&b, " %s=%.4g%%", f, float64(v)*100/0xFFFFFFFF)
		} else {
			fmt.Fprintf(&b, " %s=%d", f, v)
		}
	}
	return b.String()
}

// parseID reads a PE identifier, decimal or 0x-hex.
func parseID(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 0, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not a 32-bit number (decimal or 0x-hex)", s)
	}
	return uint32(n), nil
}
