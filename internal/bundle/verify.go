package bundle

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/otabake/otabake/internal/bundle/stlv"
	"github.com/otabake/otabake/internal/sign"
)

// VerifyOptions select what Verify must establish beyond the bundle's internal consistency.
type VerifyOptions struct {
	// BundleHash, if set, must equal the hash of the header (any spelling ParseDigest accepts;
	// its algorithm is used, as rugix-ctrl does).
	BundleHash string
	// Roots, if set, requires at least one signature that verifies against them under
	// rugix-ctrl 1.x's rules (code-signing EKU or none).
	Roots *x509.CertPool
	// Now is the time certificates must be valid at; zero means time.Now().
	Now time.Time
	// MaxPayloadSize is the most decoded bytes any payload may declare; a payload declaring
	// more is refused before anything is decoded. Zero means DefaultMaxPayloadSize.
	MaxPayloadSize int64
}

// VerifyReport is what Verify found.
type VerifyReport struct {
	Hash        string
	HashChecked bool
	Signatures  []SignatureReport
	Payloads    []PayloadStats
	// Warnings say what today's Rugix Ctrl refuses although the bundle verifies (see
	// Bundle.Warnings): payloads without a block index.
	Warnings []string
}

// SignatureReport describes one embedded signature.
type SignatureReport struct {
	Index int
	// Signers are the subjects of the certificates that signed; without roots they are read
	// from the CMS but not trusted.
	Signers []string
	// Verified is true when the signature was checked against the roots and holds.
	Verified bool
	// Error says why a signature was rejected (empty if it was not checked or holds).
	Error string
}

// ErrVerification is wrapped by every Verify error that means "this bundle is not authentic
// or not intact" (as opposed to an I/O failure).
var ErrVerification = errors.New("bundle verification failed")

// Verify checks the bundle like rugix-ctrl installing it: the header hash against
// opts.BundleHash, the signatures against opts.Roots, every payload header hash, every block
// hash while streaming and every payload's file hash. Every payload's declared size is checked
// against opts.MaxPayloadSize before anything is decoded. Nothing is written anywhere; memory
// stays bounded by one block and the stored-block tables.
func (b *Bundle) Verify(ctx context.Context, opts VerifyOptions) (*VerifyReport, error) {
	rep := &VerifyReport{Hash: b.Hash(), Warnings: append([]string{}, b.Warnings()...)}
	if opts.BundleHash != "" {
		if err := b.CheckHash(opts.BundleHash); err != nil {
			return rep, err
		}
		rep.HashChecked = true
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	valid := 0
	var reasons []string
	for i, der := range b.signatures {
		sr := SignatureReport{Index: i, Signers: CMSSigners(der)}
		if opts.Roots != nil {
			if err := b.checkSignature(der, opts.Roots, now); err != nil {
				sr.Error = err.Error()
				reasons = append(reasons, fmt.Sprintf("signature %d: %v", i, err))
			} else {
				sr.Verified = true
				valid++
			}
		}
		rep.Signatures = append(rep.Signatures, sr)
	}
	if opts.Roots != nil && valid == 0 {
		if len(b.signatures) == 0 {
			return rep, fmt.Errorf("%w: the bundle has no signatures", ErrVerification)
		}
		return rep, fmt.Errorf("%w: no valid signature: %s", ErrVerification, joinReasons(reasons))
	}
	limit := limitOrDefault(opts.MaxPayloadSize)
	for i := range b.payloads {
		if _, err := b.CheckPayloadSize(ctx, i, limit); err != nil {
			if errors.Is(err, ErrPayloadTooLarge) || ctx.Err() != nil {
				return rep, err
			}
			return rep, fmt.Errorf("%w: %w", ErrVerification, err)
		}
	}
	for i := range b.payloads {
		st, err := b.decode(ctx, i, io.Discard, nil, limit)
		if err != nil {
			if ctx.Err() != nil {
				return rep, err
			}
			return rep, fmt.Errorf("%w: payload %d: %w", ErrVerification, i, err)
		}
		rep.Payloads = append(rep.Payloads, *st)
	}
	return rep, nil
}

// CheckHash checks the bundle hash, the hash of the header's bytes, against want (any spelling
// ParseDigest accepts; its algorithm is used, as rugix-ctrl does). An empty want checks nothing.
// A mismatch wraps ErrVerification. Verify, ExtractFile and the signature checks all compare
// the header this way.
func (b *Bundle) CheckHash(want string) error {
	if want == "" {
		return nil
	}
	d, err := ParseDigest(want)
	if err != nil {
		return fmt.Errorf("expected bundle hash: %w", err)
	}
	if got := b.headerDigest(d.Algorithm); !got.Equal(d) {
		return fmt.Errorf("%w: invalid header hash: header is %s, expected %s", ErrVerification, got, d)
	}
	return nil
}

// headerDigest is the hash of the header's bytes with alg: the bundle hash when alg is the
// bundle's algorithm.
func (b *Bundle) headerDigest(alg HashAlgorithm) Digest {
	return Digest{alg, alg.Sum(b.headerBytes)}
}

func joinReasons(r []string) string {
	var b bytes.Buffer
	for i, s := range r {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(s)
	}
	return b.String()
}

// checkSignature verifies one CMS signature and that it signs this bundle's header.
func (b *Bundle) checkSignature(der []byte, roots *x509.CertPool, now time.Time) error {
	v, err := sign.VerifyCMS(der, roots, now)
	if err != nil {
		return err
	}
	var md SignedMetadata
	if err := stlv.Unmarshal(v.Content, TagSignedMetadata, &md); err != nil {
		return fmt.Errorf("signed content is not Rugix signed metadata: %w", err)
	}
	d, err := ParseDigest(md.HeaderHash)
	if err != nil {
		return fmt.Errorf("signed metadata: %w", err)
	}
	if got := b.headerDigest(d.Algorithm); !got.Equal(d) {
		return fmt.Errorf("signature is for bundle %s, this header hashes to %s", d, got)
	}
	return nil
}

// CMSSigners lists the subjects of a CMS signature's signer certificates, without checking
// anything, for display.
func CMSSigners(der []byte) []string {
	certs, err := sign.SignerCertificates(der)
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(certs))
	for _, c := range certs {
		out = append(out, c.Subject.String())
	}
	return out
}
