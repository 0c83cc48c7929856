package cluster

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/memberlist"
)

// The gossip keyring: the keys memberlist decrypts with, one of them
// (the primary) the one it encrypts with. Rotating a key without
// downtime is three steps done on every registrar in turn: install the
// new key (all of them then read both), use it (they encrypt with it),
// remove the old one. The keyring is kept in the data dir (keyring.json,
// 0600), so a restarted registrar has the keys in use, whatever its
// encrypt setting says.

// ErrNoEncryption: the keyring needs gossip encryption (encrypt) on.
var ErrNoEncryption = errors.New("gossip encryption is off: start the registrars with an encrypt key to use a keyring")

// KeyInfo describes one key of the keyring without giving it away.
type KeyInfo struct {
	// Fingerprint is the first 8 bytes of the key's SHA-256, in hex.
	Fingerprint string `json:"fingerprint"`
	Primary     bool   `json:"primary"`
}

// Fingerprint is a key's fingerprint (see KeyInfo).
func Fingerprint(key []byte) string {
	h := sha256.Sum256(key)
	return hex.EncodeToString(h[:8])
}

// keyringFile is where the keyring is kept.
func (m *Membership) keyringFile() string {
	if m.cfg.DataDir == "" {
		return ""
	}
	return filepath.Join(m.cfg.DataDir, "keyring.json")
}

// openKeyring makes the keyring memberlist uses: the saved one, else the
// configured key alone (nil: no encryption).
func (m *Membership) openKeyring() (*memberlist.Keyring, error) {
	if f := m.keyringFile(); f != "" {
		b, err := os.ReadFile(f)
		switch {
		case err == nil:
			var enc []string
			if err := json.Unmarshal(b, &enc); err != nil || len(enc) == 0 {
				return nil, fmt.Errorf("gossip keyring %s: not a list of base64 keys (remove it to start from encrypt)", f)
			}
			var keys [][]byte
			for _, e := range enc {
				k, err := ParseEncryptKey(e)
				if err != nil || len(k) == 0 {
					return nil, fmt.Errorf("gossip keyring %s: %v", f, err)
				}
				keys = append(keys, k)
			}
			if len(m.cfg.EncryptKey) > 0 && Fingerprint(m.cfg.EncryptKey) != Fingerprint(keys[0]) {
				m.log.Info("gossip keyring from the data dir in use; the encrypt setting is not its primary key", "file", f)
			}
			return memberlist.NewKeyring(keys[1:], keys[0])
		case !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("gossip keyring: %w", err)
		}
	}
	if len(m.cfg.EncryptKey) == 0 {
		return nil, nil
	}
	return memberlist.NewKeyring(nil, m.cfg.EncryptKey)
}

// saveKeyring writes the keyring, primary first (temp file, rename).
func (m *Membership) saveKeyring() error {
	f := m.keyringFile()
	if f == "" {
		return nil
	}
	keys := m.keyring.GetKeys()
	enc := make([]string, len(keys))
	for i, k := range keys {
		enc[i] = base64.StdEncoding.EncodeToString(k)
	}
	b, _ := json.Marshal(enc)
	tmp := f + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("save the gossip keyring: %w", err)
	}
	return os.Rename(tmp, f)
}

// Keys lists the keyring (primary first).
func (m *Membership) Keys() ([]KeyInfo, error) {
	if m.keyring == nil {
		return nil, ErrNoEncryption
	}
	var out []KeyInfo
	for i, k := range m.keyring.GetKeys() {
		out = append(out, KeyInfo{Fingerprint: Fingerprint(k), Primary: i == 0})
	}
	return out, nil
}

// KeyOp is a keyring change.
type KeyOp string

// The keyring changes.
const (
	KeyInstall KeyOp = "install" // add a key: decrypt with it too
	KeyUse     KeyOp = "use"     // make an installed key the primary
	KeyRemove  KeyOp = "remove"  // drop a key that is not the primary
)

// ChangeKey applies op with the base64 key to this registrar's keyring
// and saves it.
func (m *Membership) ChangeKey(op KeyOp, b64 string) error {
	if m.keyring == nil {
		return ErrNoEncryption
	}
	key, err := ParseEncryptKey(b64)
	if err != nil {
		return err
	}
	if len(key) == 0 {
		return errors.New("no key given")
	}
	m.keyMu.Lock()
	defer m.keyMu.Unlock()
	switch op {
	case KeyInstall:
		err = m.keyring.AddKey(key)
	case KeyUse:
		err = m.keyring.UseKey(key)
	case KeyRemove:
		err = m.keyring.RemoveKey(key)
	default:
		return fmt.Errorf("keyring: %q is not install, use or remove", op)
	}
	if err != nil {
		return fmt.Errorf("keyring %s %s: %w", op, Fingerprint(key), err)
	}
	m.log.Info("gossip keyring changed", "op", string(op), "key", Fingerprint(key))
	return m.saveKeyring()
}
