package registrar

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// Reloading a running registrar's configuration (SIGHUP in `registrar
// agent`): each key that can change live has an entry in reloadable; any
// other key that changed is reported as needing a restart. To make a key
// reloadable (TLS certificates, when they exist), add its entry: a
// function that applies the new value, safe to call while the registrar
// serves.

// ReloadReport says what a reload did.
type ReloadReport struct {
	// Changed are the keys applied live, as "key: old -> new".
	Changed []string
	// NeedRestart are the keys that changed but apply only at the next
	// start.
	NeedRestart []string
}

// reloadable are the keys applied live, each with its apply function.
// Keys that share an apply function (a limiter's rate and burst) run it
// once.
var reloadable = map[string]func(r *Registrar, next *Config){
	"log_level":         func(r *Registrar, next *Config) { r.log.SetLevel(hclog.LevelFromString(next.LogLevel)) },
	"resolution_rate":   reloadLimits,
	"resolution_burst":  reloadLimits,
	"unreachable_rate":  reloadLimits,
	"unreachable_burst": reloadLimits,
	"message_rate":      reloadLimits,
	"metrics_pool_top":  func(r *Registrar, next *Config) { r.metrics.poolTop.Store(int64(next.MetricsPoolTop)) },
	// The files themselves are read again at every reload (reloadFiles);
	// these entries let their names change too.
	"tls_cert_file":    func(*Registrar, *Config) {},
	"tls_key_file":     func(*Registrar, *Config) {},
	"tls_ca_file":      func(*Registrar, *Config) {},
	"http_tokens_file": func(*Registrar, *Config) {},
	"verify_outgoing": func(r *Registrar, next *Config) {
		if r.tls != nil {
			r.tls.SetVerifyOutgoing(next.VerifyOutgoing)
		}
	},
	"enrp_peer_networks": func(r *Registrar, next *Config) { r.trust.Store(newPeerTrust(next)) },
	"enrp_peers": func(r *Registrar, next *Config) {
		r.trust.Store(newPeerTrust(next))
		added, removed := r.peers.setStatic(next.ENRPPeers)
		r.log.Info("static ENRP peers changed", "added", added, "removed", removed)
		r.peers.poke()
	},
}

func reloadLimits(r *Registrar, next *Config) { r.limits.configure(*next) }

// reloadFiles reads the TLS files and the tokens file of next again (the
// same names or new ones) and uses them from now on: new TLS handshakes
// see the new certificates, sessions already established go on, and the
// next admin request is checked against the new tokens. Either all of
// them load or nothing changes. Turning TLS or tokens on or off needs a
// restart (the listeners and the safe defaults depend on it).
func (r *Registrar) reloadFiles(next *Config) error {
	if (r.tls != nil) != next.TLSEnabled() {
		return errors.New("TLS cannot be turned on or off by a reload (tls_cert_file): restart the registrar")
	}
	if (r.tokens.Load() != nil) != (next.HTTPTokensFile != "") {
		return errors.New("admin API tokens cannot be turned on or off by a reload (http_tokens_file): restart the registrar")
	}
	var toks *tokens
	if next.HTTPTokensFile != "" {
		var err error
		if toks, err = loadTokens(next.HTTPTokensFile); err != nil {
			return err
		}
	}
	if r.tls != nil {
		if err := r.tls.Reload(next.tlsFiles()); err != nil {
			return err
		}
	}
	if toks != nil {
		r.tokens.Store(toks)
	}
	return nil
}

// ReloadableKeys lists the keys Reload applies live, sorted.
func ReloadableKeys() []string {
	var ks []string
	for k := range reloadable {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// Config is the configuration as last applied: the start's, with the
// live keys of each reload since.
func (r *Registrar) Config() Config {
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	return r.applied
}

// Logger is the registrar's logger.
func (r *Registrar) Logger() hclog.Logger { return r.log }

// errNotRunning: Reload before Run opened the registrar.
var errNotRunning = errors.New("the registrar is not running")

// Reload applies next, a whole new configuration (the file and flags
// read again), to the running registrar: the reloadable keys change at
// once, every other changed key is listed as needing a restart (and
// keeps its old value until then). An invalid next changes nothing and
// returns every problem. It logs what changed and what needs a restart.
func (r *Registrar) Reload(next Config) (ReloadReport, error) {
	var rep ReloadReport
	if err := next.Validate(); err != nil {
		r.log.Error("configuration not reloaded: it is invalid", "error", strings.ReplaceAll(err.Error(), "\n", "; "))
		return rep, err
	}
	select {
	case <-r.ready:
	default:
		return rep, errNotRunning
	}
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	if err := r.reloadFiles(&next); err != nil {
		r.log.Error("configuration not reloaded", "error", err)
		return rep, err
	}
	old := r.applied
	ov, nv := reflect.ValueOf(old), reflect.ValueOf(next)
	seen := map[uintptr]bool{} // apply functions already queued
	var applies []func(*Registrar, *Config)
	cur := old
	cv := reflect.ValueOf(&cur).Elem()
	for _, key := range ConfigKeys() {
		i := configFields[key]
		if reflect.DeepEqual(ov.Field(i).Interface(), nv.Field(i).Interface()) {
			continue
		}
		apply, ok := reloadable[key]
		if !ok {
			rep.NeedRestart = append(rep.NeedRestart, key)
			continue
		}
		rep.Changed = append(rep.Changed, fmt.Sprintf("%s: %s -> %s", key, showValue(ov.Field(i)), showValue(nv.Field(i))))
		cv.Field(i).Set(nv.Field(i))
		if fn := reflect.ValueOf(apply).Pointer(); !seen[fn] {
			seen[fn] = true
			applies = append(applies, apply)
		}
	}
	r.applied = cur
	report := func() {
		switch {
		case len(rep.Changed) > 0:
			r.log.Info("configuration reloaded", "changed", rep.Changed)
		case len(rep.NeedRestart) == 0:
			r.log.Info("configuration reloaded: nothing changed")
		}
		if len(rep.NeedRestart) > 0 {
			r.log.Warn("configuration changes that apply only after a restart", "keys", rep.NeedRestart)
		}
	}
	// The report shows at the more verbose of the two log levels.
	quieter := hclog.LevelFromString(next.LogLevel) > hclog.LevelFromString(old.LogLevel)
	if quieter {
		report()
	}
	for _, apply := range applies {
		apply(r, &next)
	}
	if !quieter {
		report()
	}
	return rep, nil
}

// showValue formats a config value for the reload log.
func showValue(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case string:
		if x == "" {
			return `""`
		}
		return x
	case []string:
		return "[" + strings.Join(x, ",") + "]"
	case Duration:
		return x.D().String()
	}
	return fmt.Sprint(v.Interface())
}
