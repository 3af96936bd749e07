package sign

import (
	"context"
	"crypto"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/sigstore/sigstore/pkg/signature/kms"
)

// KMSSchemes lists the key URI schemes LoadSigner understands besides PEM
// files, for help texts and error messages.
var KMSSchemes = []string{"awskms://", "gcpkms://", "azurekms://", "hashivault://"}

// loadKMSKey opens a KMS key through sigstore. Schemes are checked here
// first: sigstore would otherwise fall back to executing a
// "sigstore-kms-<scheme>" plugin from $PATH, which is not something a typo in
// a key reference should do.
func loadKMSKey(ctx context.Context, ref string) (crypto.Signer, error) {
	scheme := ref[:strings.Index(ref, "://")+3]
	registered := kms.SupportedProviders()
	if !slices.Contains(registered, scheme) {
		if slices.Contains(KMSSchemes, scheme) {
			var avail []string
			for _, s := range KMSSchemes {
				if slices.Contains(registered, s) {
					avail = append(avail, s)
				}
			}
			if len(avail) == 0 {
				return nil, fmt.Errorf("signing key %s: this otabake was built without KMS providers: use a released otabake binary, or build it with `go build -tags kms ./cmd/otabake` (`go install -tags kms …`); or sign with a PEM key file", ref)
			}
			return nil, fmt.Errorf("signing key %s: KMS scheme %s is not available in this build (available: %s)", ref, scheme, strings.Join(avail, ", "))
		}
		return nil, fmt.Errorf("signing key %s: unsupported scheme %s (use a PEM file path or one of %s)",
			ref, scheme, strings.Join(KMSSchemes, ", "))
	}
	sv, err := kms.Get(ctx, ref, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: open KMS key: %w", ref, err)
	}
	var (
		mu      sync.Mutex
		pubErr  error
		errFunc = func(err error) { mu.Lock(); pubErr = err; mu.Unlock() }
	)
	signer, _, err := sv.CryptoSigner(ctx, errFunc)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: open KMS signer: %w", ref, err)
	}
	// Fetch the public key once now: CryptoSigner reports failures of
	// Public() only through errFunc, and a KMS that cannot even return the
	// public key will not sign either.
	pub := signer.Public()
	mu.Lock()
	defer mu.Unlock()
	if pubErr != nil || pub == nil {
		if pubErr == nil {
			pubErr = fmt.Errorf("KMS returned no public key")
		}
		return nil, fmt.Errorf("signing key %s: fetch public key: %w", ref, pubErr)
	}
	return &kmsSigner{Signer: signer, pub: pub}, nil
}

// kmsSigner caches the public key so that Public() does not make a KMS
// round trip each time it is asked.
type kmsSigner struct {
	crypto.Signer
	pub crypto.PublicKey
}

func (k *kmsSigner) Public() crypto.PublicKey { return k.pub }
