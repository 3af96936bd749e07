//go:build kms

package sign

// The KMS providers register their URI schemes with sigstore's kms package. They pull in the
// AWS, Google Cloud, Azure and Vault SDKs: tens of MB of binary and, on a fresh machine, most
// of the first build's time. So they are compiled in only with `-tags kms`, which the released
// binaries, `just build` and the CI templates use; `go run ./cmd/otabake` on a fresh clone
// starts without compiling them, and LoadSigner then says how to get them.
import (
	_ "github.com/sigstore/sigstore/pkg/signature/kms/aws"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/azure"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/gcp"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/hashivault"
)
