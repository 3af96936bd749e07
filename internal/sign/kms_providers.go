//go:build !nokms

package sign

// The KMS providers register their URI schemes with sigstore's kms package.
// They pull in the AWS, Google Cloud, Azure and Vault SDKs (tens of MB of
// binary); `go build -tags nokms` leaves them out for builds that only sign
// with key files, and LoadSigner then says the scheme is not available.
import (
	_ "github.com/sigstore/sigstore/pkg/signature/kms/aws"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/azure"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/gcp"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/hashivault"
)
