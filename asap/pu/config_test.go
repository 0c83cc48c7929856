package pu_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rserpool-go/registrar/asap/pe"
	"github.com/rserpool-go/registrar/asap/pu"
)

// Ensure that the PE and PU configurations share one registrar-client
// configuration: the same type and defaults, its fields promoted, and
// validated under the names the documentation uses.
func TestConfig_RegistrarConfigSharedWithPE(t *testing.T) {
	pc, uc := pe.DefaultConfig(), pu.DefaultConfig()
	if !reflect.DeepEqual(pc.RegistrarConfig, uc.RegistrarConfig) {
		t.Fatalf("defaults differ: pe %+v, pu %+v", pc.RegistrarConfig, uc.RegistrarConfig)
	}
	if uc.RequestTimeout != pu.DefaultRequestTimeout || uc.AnnounceTimeout != pu.DefaultAnnounceTimeout ||
		uc.DialTimeout != pu.DefaultDialTimeout || uc.RequestRetries != pu.DefaultRequestRetries {
		t.Errorf("pu defaults %+v do not match pu's Default constants", uc.RegistrarConfig)
	}
	pc.Registrars = []string{"tcp:10.0.0.1:3863"}
	pc.RequestTimeout = 7 * time.Second
	uc.RegistrarConfig = pc.RegistrarConfig // one setting for a program that is both
	if uc.Registrars[0] != "tcp:10.0.0.1:3863" || uc.RequestTimeout != 7*time.Second {
		t.Errorf("pu config after sharing: %+v", uc.RegistrarConfig)
	}
	uc.Registrars = []string{"nohost"}
	uc.RequestRetries = -1
	err := uc.Validate()
	for _, want := range []string{"pu config: Registrars[0]", "pu config: RequestRetries -1"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want it to name %q", err, want)
		}
	}
}
