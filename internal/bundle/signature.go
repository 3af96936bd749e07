package bundle

import (
	"context"
	"fmt"
	"io"

	"github.com/otabake/otabake/internal/atomicfile"
	"github.com/otabake/otabake/internal/bundle/stlv"
	"github.com/otabake/otabake/internal/ctxio"
	"github.com/otabake/otabake/internal/sign"
)

// SignedMetadataFor returns the content a Rugix signature signs for a bundle hash: the
// SIGNED_METADATA segment holding the hash's text form (90 bytes for SHA-512/256), the same
// bytes `rugix-bundler signatures prepare` writes.
func SignedMetadataFor(hash Digest) []byte {
	b, err := stlv.Marshal(TagSignedMetadata, &SignedMetadata{HeaderHash: hash.String()})
	if err != nil {
		panic(err) // a fixed struct of one string cannot fail to encode
	}
	return b
}

// SignedMetadata returns the content a signature of this bundle must sign.
func (b *Bundle) SignedMetadata() []byte { return SignedMetadataFor(b.hash) }

// CMSSigner makes an attached DER CMS SignedData over content; *sign.Signer implements it.
type CMSSigner interface {
	SignCMS(content []byte) ([]byte, error)
}

// Sign signs the bundle at inPath with s and writes the signed bundle to outPath (which may
// equal inPath) atomically. Existing signatures are kept and the new one appended; the bundle
// hash does not change.
func Sign(ctx context.Context, inPath, outPath string, s CMSSigner) error {
	b, err := Open(inPath)
	if err != nil {
		return err
	}
	defer b.Close()
	der, err := s.SignCMS(b.SignedMetadata())
	if err != nil {
		return err
	}
	return b.writeWithSignature(ctx, outPath, der)
}

// AddSignature appends an externally made signature (for example from `openssl cms -sign`)
// to the bundle at inPath and writes the result to outPath atomically. The signature must be
// a CMS SignedData whose attached content is this bundle's signed metadata; its trust is not
// checked here (Verify does that against roots).
func AddSignature(ctx context.Context, inPath, outPath string, der []byte) error {
	b, err := Open(inPath)
	if err != nil {
		return err
	}
	defer b.Close()
	content, err := sign.AttachedContent(der)
	if err != nil {
		return fmt.Errorf("signature: not a CMS SignedData with attached content: %w", err)
	}
	var md SignedMetadata
	if err := stlv.Unmarshal(content, TagSignedMetadata, &md); err != nil {
		return fmt.Errorf("signature: attached content is not Rugix signed metadata: %w", err)
	}
	if d, err := ParseDigest(md.HeaderHash); err != nil || !b.headerDigest(d.Algorithm).Equal(d) {
		return fmt.Errorf("signature: signs bundle hash %q, this bundle is %s", md.HeaderHash, b.hash)
	}
	return b.writeWithSignature(ctx, outPath, der)
}

// writeWithSignature writes the bundle with der appended to its signatures: root start and
// header as stored, the new SIGNATURES segment, then everything from the start of PAYLOADS
// verbatim (as rugix-bundler's add_bundle_signature does).
func (b *Bundle) writeWithSignature(ctx context.Context, outPath string, der []byte) error {
	sigs := Signatures{CMS: append(append([][]byte(nil), b.signatures...), der)}
	seg, err := stlv.Marshal(TagSignatures, &sigs)
	if err != nil {
		return fmt.Errorf("encode signatures: %w", err)
	}
	if len(seg) >= SignaturesSizeLimit {
		return fmt.Errorf("signatures segment of %d bytes exceeds rugix-ctrl's limit of %d bytes", len(seg), SignaturesSizeLimit)
	}
	out, err := atomicfile.Create(outPath, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	head := stlv.AppendStart(nil, TagBundle)
	head = append(head, b.headerBytes...)
	head = append(head, seg...)
	if _, err := out.Write(head); err != nil {
		return fmt.Errorf("write %s: %w", outPath, err)
	}
	rest := io.NewSectionReader(b.r, b.payloadsOffset, b.size-b.payloadsOffset)
	if _, err := io.Copy(out, ctxio.Reader(ctx, rest)); err != nil {
		return fmt.Errorf("write %s: %w", outPath, err)
	}
	return out.Commit()
}
