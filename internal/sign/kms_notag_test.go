//go:build !kms

package sign

import (
	"context"
	"strings"
	"testing"
)

// TestKMSNeedsTag: a build without -tags kms refuses a KMS key with the way to get one.
func TestKMSNeedsTag(t *testing.T) {
	for _, ref := range []string{"awskms:///arn:aws:kms:eu-central-1:1:key/k", "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k", "azurekms://v.vault.azure.net/k", "hashivault://k"} {
		_, err := loadKMSKey(context.Background(), ref)
		if err == nil || !strings.Contains(err.Error(), "go build -tags kms") {
			t.Errorf("loadKMSKey(%s) = %v, want the -tags kms hint", ref, err)
		}
	}
}
