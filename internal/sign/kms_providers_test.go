//go:build kms

package sign

import (
	"slices"
	"testing"

	"github.com/sigstore/sigstore/pkg/signature/kms"
)

// TestKMSProvidersRegistered: a build with -tags kms (released binaries) has every scheme
// otabake documents. .ci/run runs this package with the tag.
func TestKMSProvidersRegistered(t *testing.T) {
	registered := kms.SupportedProviders()
	for _, s := range KMSSchemes {
		if !slices.Contains(registered, s) {
			t.Errorf("KMS scheme %s not registered (have %q)", s, registered)
		}
	}
}
