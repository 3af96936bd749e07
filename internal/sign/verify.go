package sign

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// Errors VerifyCMS wraps, so callers (and the CLI's exit codes) can tell the
// kinds of failure apart without matching text.
var (
	// ErrMalformed: the input is not a well-formed CMS SignedData.
	ErrMalformed = errors.New("malformed CMS")
	// ErrUntrusted: the signer's chain does not lead to any of the roots.
	ErrUntrusted = errors.New("untrusted certificate chain")
	// ErrExpired: a certificate in the chain is outside its validity period.
	ErrExpired = errors.New("certificate outside its validity period")
	// ErrKeyUsage: a certificate's (extended) key usage forbids code signing.
	ErrKeyUsage = errors.New("certificate not valid for code signing")
	// ErrDigestMismatch: the content does not match the signed digest.
	ErrDigestMismatch = errors.New("content digest mismatch")
	// ErrBadSignature: the signature value does not verify, or uses an
	// algorithm Rugix Ctrl does not accept.
	ErrBadSignature = errors.New("bad signature")
)

// maxSignerInfos bounds the work one CMS can ask of the verifier.
const maxSignerInfos = 64

// MalformedError locates a structural fault in CMS input.
type MalformedError struct {
	Offset int // byte offset of the offending TLV, -1 if unknown
	Reason string
}

func (e *MalformedError) Error() string {
	if e.Offset < 0 {
		return "malformed CMS: " + e.Reason
	}
	return fmt.Sprintf("malformed CMS at offset %d: %s", e.Offset, e.Reason)
}

// Is makes errors.Is(err, ErrMalformed) hold for every MalformedError.
func (e *MalformedError) Is(target error) bool { return target == ErrMalformed }

// Verified is the result of a successful VerifyCMS.
type Verified struct {
	// Content is the attached (encapsulated) content that was signed.
	Content []byte
	// Signers are the certificates of the signer infos that verified.
	Signers []*x509.Certificate
}

var (
	oidData          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedData    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidContentType   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidMessageDigest = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}

	oidSHA256 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}

	oidRSAEncryption = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidRSAPSS        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidSHA256WithRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidSHA384WithRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidSHA512WithRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidMGF1          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}
	oidECDSASHA256   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSASHA384   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidEd25519       = asn1.ObjectIdentifier{1, 3, 101, 112}
)

type contentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"explicit,optional,tag:0"`
}

type signedData struct {
	Version          int
	DigestAlgorithms []pkix.AlgorithmIdentifier `asn1:"set"`
	EncapContentInfo encapContentInfo
	Certificates     asn1.RawValue `asn1:"optional,tag:0"`
	CRLs             asn1.RawValue `asn1:"optional,tag:1"`
	SignerInfos      []signerInfo  `asn1:"set"`
}

type encapContentInfo struct {
	EContentType asn1.ObjectIdentifier
	EContent     asn1.RawValue `asn1:"explicit,optional,tag:0"`
}

type signerInfo struct {
	Version            int
	SID                asn1.RawValue
	DigestAlgorithm    pkix.AlgorithmIdentifier
	SignedAttrs        asn1.RawValue `asn1:"optional,tag:0"`
	SignatureAlgorithm pkix.AlgorithmIdentifier
	Signature          []byte
	UnsignedAttrs      asn1.RawValue `asn1:"optional,tag:1"`
}

type issuerAndSerial struct {
	Issuer asn1.RawValue
	Serial *big.Int
}

type attribute struct {
	Type   asn1.ObjectIdentifier
	Values []asn1.RawValue `asn1:"set"`
}

type pssParams struct {
	Hash         pkix.AlgorithmIdentifier `asn1:"explicit,optional,tag:0"`
	MGF          pkix.AlgorithmIdentifier `asn1:"explicit,optional,tag:1"`
	SaltLength   int                      `asn1:"explicit,optional,tag:2,default:20"`
	TrailerField int                      `asn1:"explicit,optional,tag:3,default:1"`
}

// VerifyCMS checks a DER CMS SignedData the way Rugix Ctrl 1.x does and
// returns the attached content.
//
// The policy: eContent and the signer certificate must be embedded; at least
// one signer info must verify; its certificate must chain to one of roots at
// time now through the embedded intermediates; every certificate below the
// root that has an extended key usage must list codeSigning; the signer's
// key usage, if present, must include digitalSignature; a CA certificate
// cannot sign; the signer's digest must be listed in digestAlgorithms; signed
// attributes must hold a matching contentType and messageDigest. The
// signing-time attribute is a claim of the signer and is not trusted.
//
// der is untrusted: malformed input gives an error, never a panic.
func VerifyCMS(der []byte, roots *x509.CertPool, now time.Time) (*Verified, error) {
	if roots == nil {
		// x509 would fall back to the system roots, which must never
		// decide what a device installs.
		return nil, errors.New("verify CMS: no trusted root certificates given")
	}
	p, err := parseCMS(der)
	if err != nil {
		return nil, err
	}
	sd, content, certs := &p.sd, p.content, p.certs

	v := &Verified{Content: content}
	var errs []error
	for i := range sd.SignerInfos {
		cert, err := verifySigner(sd, &sd.SignerInfos[i], content, certs, roots, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("signer %d: %w", i, err))
			continue
		}
		v.Signers = append(v.Signers, cert)
	}
	if len(v.Signers) == 0 {
		if len(errs) == 1 {
			return nil, fmt.Errorf("verify CMS: %w", errs[0])
		}
		return nil, fmt.Errorf("verify CMS: none of %d signers verified: %w", len(errs), errors.Join(errs...))
	}
	return v, nil
}

// parsedCMS is a structurally checked SignedData, nothing verified yet.
type parsedCMS struct {
	sd      signedData
	content []byte
	certs   []*x509.Certificate
}

// parseCMS decodes der as a DER ContentInfo holding a SignedData with
// attached content, embedded certificates and 1 to maxSignerInfos signers.
func parseCMS(der []byte) (*parsedCMS, error) {
	if len(der) == 0 {
		return nil, &MalformedError{Offset: 0, Reason: "input is empty"}
	}
	if err := checkDER(der); err != nil {
		return nil, err
	}
	var ci contentInfo
	if _, err := asn1.Unmarshal(der, &ci); err != nil {
		return nil, &MalformedError{Offset: -1, Reason: "ContentInfo: " + asn1Reason(err)}
	}
	if !ci.ContentType.Equal(oidSignedData) {
		return nil, &MalformedError{Offset: -1, Reason: fmt.Sprintf("content type is %v, not id-signedData", ci.ContentType)}
	}
	if len(ci.Content.FullBytes) == 0 {
		return nil, &MalformedError{Offset: -1, Reason: "SignedData content is missing"}
	}
	p := &parsedCMS{}
	sd := &p.sd
	if rest, err := asn1.Unmarshal(ci.Content.Bytes, sd); err != nil {
		return nil, &MalformedError{Offset: -1, Reason: "SignedData: " + asn1Reason(err)}
	} else if len(rest) != 0 {
		return nil, &MalformedError{Offset: -1, Reason: "trailing bytes after SignedData"}
	}
	var err error
	if p.content, err = encapsulatedContent(&sd.EncapContentInfo); err != nil {
		return nil, err
	}
	if p.certs, err = embeddedCertificates(sd.Certificates); err != nil {
		return nil, err
	}
	if len(sd.SignerInfos) == 0 {
		return nil, &MalformedError{Offset: -1, Reason: "no signer infos"}
	}
	if len(sd.SignerInfos) > maxSignerInfos {
		// Each signer costs a chain verification; real bundles carry one
		// or two.
		return nil, &MalformedError{Offset: -1, Reason: fmt.Sprintf("%d signer infos, more than the %d accepted", len(sd.SignerInfos), maxSignerInfos)}
	}
	return p, nil
}

// SignerCertificates returns the embedded certificates the signer infos of
// a CMS signature name, without verifying anything: for listing who signed
// a bundle. der is untrusted and parsed as strictly as by VerifyCMS.
func SignerCertificates(der []byte) ([]*x509.Certificate, error) {
	p, err := parseCMS(der)
	if err != nil {
		return nil, err
	}
	out := make([]*x509.Certificate, 0, len(p.sd.SignerInfos))
	for _, si := range p.sd.SignerInfos {
		c, err := findSignerCert(si.SID, p.certs)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// AttachedContent returns the content a CMS signature carries (for a Rugix bundle, its signed
// metadata), without verifying anything: for checking that a signature made elsewhere belongs
// to a bundle before adding it. der is untrusted and parsed as strictly as by VerifyCMS.
func AttachedContent(der []byte) ([]byte, error) {
	p, err := parseCMS(der)
	if err != nil {
		return nil, err
	}
	return p.content, nil
}

func encapsulatedContent(eci *encapContentInfo) ([]byte, error) {
	if len(eci.EContent.FullBytes) == 0 {
		return nil, &MalformedError{Offset: -1, Reason: "no content attached (detached signature); Rugix needs -nodetach"}
	}
	var content []byte
	rest, err := asn1.Unmarshal(eci.EContent.Bytes, &content)
	if err != nil {
		return nil, &MalformedError{Offset: -1, Reason: "eContent is not an OCTET STRING: " + asn1Reason(err)}
	}
	if len(rest) != 0 {
		return nil, &MalformedError{Offset: -1, Reason: "trailing bytes after eContent"}
	}
	return content, nil
}

// embeddedCertificates parses the certificates field, skipping the other
// CertificateChoices (attribute certificates and the like) as Rugix does.
func embeddedCertificates(raw asn1.RawValue) ([]*x509.Certificate, error) {
	if len(raw.FullBytes) == 0 {
		return nil, &MalformedError{Offset: -1, Reason: "no certificates embedded; the signer certificate must be included"}
	}
	var certs []*x509.Certificate
	for rest, n := raw.Bytes, 0; len(rest) > 0; n++ {
		var rv asn1.RawValue
		var err error
		rest, err = asn1.Unmarshal(rest, &rv)
		if err != nil {
			return nil, &MalformedError{Offset: -1, Reason: fmt.Sprintf("embedded certificate %d: %s", n, asn1Reason(err))}
		}
		if rv.Class != asn1.ClassUniversal || rv.Tag != asn1.TagSequence {
			continue
		}
		c, err := x509.ParseCertificate(rv.FullBytes)
		if err != nil {
			return nil, &MalformedError{Offset: -1, Reason: fmt.Sprintf("embedded certificate %d: %v", n, err)}
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, &MalformedError{Offset: -1, Reason: "no X.509 certificates embedded; the signer certificate must be included"}
	}
	return certs, nil
}

func verifySigner(sd *signedData, si *signerInfo, content []byte, certs []*x509.Certificate, roots *x509.CertPool, now time.Time) (*x509.Certificate, error) {
	cert, err := findSignerCert(si.SID, certs)
	if err != nil {
		return nil, err
	}
	name := certName(cert)
	if err := checkSignerCert(cert); err != nil {
		return nil, err
	}
	if err := verifyChain(cert, certs, roots, now); err != nil {
		return nil, err
	}
	listed := false
	for _, a := range sd.DigestAlgorithms {
		if a.Algorithm.Equal(si.DigestAlgorithm.Algorithm) {
			listed = true
			break
		}
	}
	if !listed {
		return nil, &MalformedError{Offset: -1, Reason: fmt.Sprintf("signer digest algorithm %v is not listed in digestAlgorithms", si.DigestAlgorithm.Algorithm)}
	}

	signed := content
	if len(si.SignedAttrs.FullBytes) == 0 {
		if !sd.EncapContentInfo.EContentType.Equal(oidData) {
			return nil, &MalformedError{Offset: -1, Reason: "signed attributes are required when the content type is not id-data"}
		}
	} else {
		h, err := digestHash(si.DigestAlgorithm.Algorithm)
		if err != nil {
			return nil, err
		}
		if err := checkSignedAttrs(si.SignedAttrs.Bytes, sd.EncapContentInfo.EContentType, h, content); err != nil {
			return nil, err
		}
		// The signature covers the attributes as a SET, not as the
		// [0] IMPLICIT they are stored with.
		signed = bytes.Clone(si.SignedAttrs.FullBytes)
		signed[0] = 0x31
	}
	if err := checkSignature(cert, si, signed); err != nil {
		return nil, fmt.Errorf("certificate %s: %w", name, err)
	}
	return cert, nil
}

func findSignerCert(sid asn1.RawValue, certs []*x509.Certificate) (*x509.Certificate, error) {
	switch {
	case sid.Class == asn1.ClassUniversal && sid.Tag == asn1.TagSequence:
		var ias issuerAndSerial
		if rest, err := asn1.Unmarshal(sid.FullBytes, &ias); err != nil || len(rest) != 0 || ias.Serial == nil {
			return nil, &MalformedError{Offset: -1, Reason: "signer identifier: bad issuerAndSerialNumber"}
		}
		for _, c := range certs {
			if c.SerialNumber.Cmp(ias.Serial) == 0 && bytes.Equal(c.RawIssuer, ias.Issuer.FullBytes) {
				return c, nil
			}
		}
		return nil, fmt.Errorf("%w: signer certificate (serial %s) is not embedded", ErrUntrusted, ias.Serial)
	case sid.Class == asn1.ClassContextSpecific && sid.Tag == 0:
		for _, c := range certs {
			if len(c.SubjectKeyId) > 0 && bytes.Equal(c.SubjectKeyId, sid.Bytes) {
				return c, nil
			}
		}
		return nil, fmt.Errorf("%w: signer certificate (subject key id %x) is not embedded", ErrUntrusted, sid.Bytes)
	default:
		return nil, &MalformedError{Offset: -1, Reason: "signer identifier has an unknown form"}
	}
}

// checkSignerCert applies the end-entity rules of Rugix Ctrl 1.x (webpki).
func checkSignerCert(c *x509.Certificate) error {
	if c.BasicConstraintsValid && c.IsCA {
		return fmt.Errorf("%w: signer certificate %s is a CA certificate; sign with a separate end-entity certificate", ErrKeyUsage, certName(c))
	}
	if c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return fmt.Errorf("%w: signer certificate %s has a key usage without digitalSignature", ErrKeyUsage, certName(c))
	}
	return checkEKU(c)
}

// checkEKU enforces "codeSigning if an EKU is present". Unlike crypto/x509,
// webpki gives anyExtendedKeyUsage no special meaning, so neither do we.
func checkEKU(c *x509.Certificate) error {
	if len(c.ExtKeyUsage) == 0 && len(c.UnknownExtKeyUsage) == 0 {
		return nil
	}
	for _, u := range c.ExtKeyUsage {
		if u == x509.ExtKeyUsageCodeSigning {
			return nil
		}
	}
	return fmt.Errorf("%w: certificate %s has extended key usage %s without codeSigning, which Rugix Ctrl 1.x requires when the extension is present",
		ErrKeyUsage, certName(c), ekuNames(c))
}

func verifyChain(leaf *x509.Certificate, certs []*x509.Certificate, roots *x509.CertPool, now time.Time) error {
	if now.After(leaf.NotAfter) {
		return fmt.Errorf("%w: signer certificate %s expired at %s (verification time %s)",
			ErrExpired, certName(leaf), leaf.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return fmt.Errorf("%w: signer certificate %s is not valid before %s (verification time %s)",
			ErrExpired, certName(leaf), leaf.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	inter := x509.NewCertPool()
	for _, c := range certs {
		if c != leaf && c.BasicConstraintsValid && c.IsCA {
			inter.AddCert(c)
		}
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	})
	if err != nil {
		return chainError(leaf, now, err)
	}
	// crypto/x509 lets anyExtendedKeyUsage stand for codeSigning on
	// intermediates; webpki does not. Accept a chain only if every
	// certificate below its root passes the strict check.
	var strictErr error
	for _, chain := range chains {
		strictErr = nil
		for _, c := range chain[:len(chain)-1] {
			if err := checkEKU(c); err != nil {
				strictErr = err
				break
			}
		}
		if strictErr == nil {
			return nil
		}
	}
	return strictErr
}

func chainError(leaf *x509.Certificate, now time.Time, err error) error {
	var ua x509.UnknownAuthorityError
	var inv x509.CertificateInvalidError
	switch {
	case errors.As(err, &ua):
		issuer := leaf.Issuer.String()
		if ua.Cert != nil {
			issuer = ua.Cert.Issuer.String()
		}
		return fmt.Errorf("%w: certificate chain of %s does not lead to a trusted root (issuer %q is neither a given root nor an embedded intermediate)",
			ErrUntrusted, certName(leaf), issuer)
	case errors.As(err, &inv):
		c := inv.Cert
		switch inv.Reason {
		case x509.Expired:
			if c != nil && now.After(c.NotAfter) {
				return fmt.Errorf("%w: certificate %s in the chain expired at %s (verification time %s)",
					ErrExpired, certName(c), c.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
			}
			if c != nil {
				return fmt.Errorf("%w: certificate %s in the chain is not valid before %s (verification time %s)",
					ErrExpired, certName(c), c.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
			}
			return fmt.Errorf("%w: %v", ErrExpired, err)
		case x509.IncompatibleUsage:
			return fmt.Errorf("%w: a certificate in the chain of %s does not allow codeSigning: %v", ErrKeyUsage, certName(leaf), err)
		case x509.NotAuthorizedToSign:
			return fmt.Errorf("%w: an issuer in the chain of %s is not a CA: %v", ErrUntrusted, certName(leaf), err)
		}
	}
	return fmt.Errorf("%w: verify chain of %s: %v", ErrUntrusted, certName(leaf), err)
}

func digestHash(oid asn1.ObjectIdentifier) (crypto.Hash, error) {
	switch {
	case oid.Equal(oidSHA256):
		return crypto.SHA256, nil
	case oid.Equal(oidSHA384):
		return crypto.SHA384, nil
	case oid.Equal(oidSHA512):
		return crypto.SHA512, nil
	}
	return 0, fmt.Errorf("%w: unsupported digest algorithm %v (want SHA-256, SHA-384 or SHA-512)", ErrBadSignature, oid)
}

func checkSignedAttrs(raw []byte, eContentType asn1.ObjectIdentifier, h crypto.Hash, content []byte) error {
	var gotType, gotDigest bool
	for rest := raw; len(rest) > 0; {
		var a attribute
		var err error
		rest, err = asn1.Unmarshal(rest, &a)
		if err != nil {
			return &MalformedError{Offset: -1, Reason: "signed attribute: " + asn1Reason(err)}
		}
		switch {
		case a.Type.Equal(oidContentType):
			if gotType {
				return &MalformedError{Offset: -1, Reason: "content-type attribute appears twice"}
			}
			gotType = true
			if len(a.Values) != 1 {
				return &MalformedError{Offset: -1, Reason: fmt.Sprintf("content-type attribute has %d values, want 1", len(a.Values))}
			}
			var ct asn1.ObjectIdentifier
			if r, err := asn1.Unmarshal(a.Values[0].FullBytes, &ct); err != nil || len(r) != 0 {
				return &MalformedError{Offset: -1, Reason: "content-type attribute is not an OID"}
			}
			if !ct.Equal(eContentType) {
				return fmt.Errorf("%w: content-type attribute %v differs from the content type %v", ErrDigestMismatch, ct, eContentType)
			}
		case a.Type.Equal(oidMessageDigest):
			if gotDigest {
				return &MalformedError{Offset: -1, Reason: "message-digest attribute appears twice"}
			}
			gotDigest = true
			if len(a.Values) != 1 {
				return &MalformedError{Offset: -1, Reason: fmt.Sprintf("message-digest attribute has %d values, want 1", len(a.Values))}
			}
			var want []byte
			if r, err := asn1.Unmarshal(a.Values[0].FullBytes, &want); err != nil || len(r) != 0 {
				return &MalformedError{Offset: -1, Reason: "message-digest attribute is not an OCTET STRING"}
			}
			hh := h.New()
			hh.Write(content)
			if got := hh.Sum(nil); !bytes.Equal(got, want) {
				return fmt.Errorf("%w: the content's %v digest is %x, the signature says %x", ErrDigestMismatch, h, got, want)
			}
		}
	}
	if !gotType {
		return &MalformedError{Offset: -1, Reason: "content-type attribute missing from signed attributes"}
	}
	if !gotDigest {
		return &MalformedError{Offset: -1, Reason: "message-digest attribute missing from signed attributes"}
	}
	return nil
}

// checkSignature verifies the signature value with the algorithms Rugix Ctrl
// 1.x accepts: ECDSA P-256/SHA-256 and P-384/SHA-384, RSA PKCS#1 v1.5 with
// an explicit SHA-2 OID, RSA-PSS, Ed25519.
func checkSignature(cert *x509.Certificate, si *signerInfo, signed []byte) error {
	alg := si.SignatureAlgorithm.Algorithm
	switch pub := cert.PublicKey.(type) {
	case *ecdsa.PublicKey:
		var h crypto.Hash
		switch {
		case pub.Curve == elliptic.P256() && alg.Equal(oidECDSASHA256):
			h = crypto.SHA256
		case pub.Curve == elliptic.P384() && alg.Equal(oidECDSASHA384):
			h = crypto.SHA384
		default:
			return fmt.Errorf("%w: ECDSA %s key with signature algorithm %v; Rugix Ctrl 1.x accepts P-256 with ecdsa-with-SHA256 and P-384 with ecdsa-with-SHA384",
				ErrBadSignature, pub.Curve.Params().Name, alg)
		}
		if !ecdsa.VerifyASN1(pub, hashOf(h, signed), si.Signature) {
			return fmt.Errorf("%w: ECDSA signature does not verify", ErrBadSignature)
		}
		return nil
	case *rsa.PublicKey:
		if bits := pub.N.BitLen(); bits < 2048 || bits > 8192 {
			return fmt.Errorf("%w: RSA key of %d bits; Rugix Ctrl 1.x accepts 2048 to 8192", ErrBadSignature, bits)
		}
		var h crypto.Hash
		pss := false
		switch {
		case alg.Equal(oidSHA256WithRSA):
			h = crypto.SHA256
		case alg.Equal(oidSHA384WithRSA):
			h = crypto.SHA384
		case alg.Equal(oidSHA512WithRSA):
			h = crypto.SHA512
		case alg.Equal(oidRSAPSS):
			var err error
			if h, err = pssHash(si.SignatureAlgorithm.Parameters.FullBytes); err != nil {
				return err
			}
			pss = true
		case alg.Equal(oidRSAEncryption):
			return fmt.Errorf("%w: RSA signature algorithm is rsaEncryption (as `openssl cms` writes it); Rugix Ctrl 1.x accepts only sha256/384/512WithRSAEncryption or RSASSA-PSS", ErrBadSignature)
		default:
			return fmt.Errorf("%w: unsupported RSA signature algorithm %v", ErrBadSignature, alg)
		}
		var err error
		if pss {
			err = rsa.VerifyPSS(pub, h, hashOf(h, signed), si.Signature, &rsa.PSSOptions{SaltLength: h.Size(), Hash: h})
		} else {
			err = rsa.VerifyPKCS1v15(pub, h, hashOf(h, signed), si.Signature)
		}
		if err != nil {
			return fmt.Errorf("%w: RSA signature does not verify", ErrBadSignature)
		}
		return nil
	case ed25519.PublicKey:
		if !alg.Equal(oidEd25519) {
			return fmt.Errorf("%w: Ed25519 key with signature algorithm %v", ErrBadSignature, alg)
		}
		if !ed25519.Verify(pub, signed, si.Signature) {
			return fmt.Errorf("%w: Ed25519 signature does not verify", ErrBadSignature)
		}
		return nil
	default:
		return fmt.Errorf("%w: unsupported public key type %T", ErrBadSignature, cert.PublicKey)
	}
}

// pssHash reads RSASSA-PSS parameters, accepting only what Rugix Ctrl 1.x
// does: SHA-2 hash, MGF1 with the same hash, salt length = hash length.
func pssHash(params []byte) (crypto.Hash, error) {
	if len(params) == 0 {
		return 0, fmt.Errorf("%w: RSASSA-PSS parameters missing", ErrBadSignature)
	}
	var p pssParams
	if rest, err := asn1.Unmarshal(params, &p); err != nil || len(rest) != 0 {
		return 0, &MalformedError{Offset: -1, Reason: "bad RSASSA-PSS parameters"}
	}
	h, err := digestHash(p.Hash.Algorithm)
	if err != nil {
		return 0, fmt.Errorf("RSASSA-PSS hash: %w", err)
	}
	if !p.MGF.Algorithm.Equal(oidMGF1) {
		return 0, fmt.Errorf("%w: RSASSA-PSS mask generation is %v, not MGF1", ErrBadSignature, p.MGF.Algorithm)
	}
	var mgfHash pkix.AlgorithmIdentifier
	if rest, err := asn1.Unmarshal(p.MGF.Parameters.FullBytes, &mgfHash); err != nil || len(rest) != 0 || !mgfHash.Algorithm.Equal(p.Hash.Algorithm) {
		return 0, fmt.Errorf("%w: RSASSA-PSS MGF1 hash differs from the message hash", ErrBadSignature)
	}
	if p.SaltLength != h.Size() || p.TrailerField != 1 {
		return 0, fmt.Errorf("%w: RSASSA-PSS salt length %d or trailer %d not accepted (want %d and 1)", ErrBadSignature, p.SaltLength, p.TrailerField, h.Size())
	}
	return h, nil
}

// asn1Reason shortens encoding/asn1 errors, which append a dump of the Go
// struct tag parameters that means nothing to the reader.
func asn1Reason(err error) string {
	msg := strings.TrimPrefix(err.Error(), "asn1: ")
	if i := strings.Index(msg, " {optional:"); i >= 0 {
		rest := msg[i:]
		msg = msg[:i]
		if j := strings.LastIndex(rest, "} "); j >= 0 {
			msg += " in " + rest[j+2:]
		}
	}
	return msg
}

func hashOf(h crypto.Hash, b []byte) []byte {
	hh := h.New()
	hh.Write(b)
	return hh.Sum(nil)
}

// certName names a certificate in errors: its subject, or its serial number
// when the subject is empty.
func certName(c *x509.Certificate) string {
	if s := c.Subject.String(); s != "" {
		return fmt.Sprintf("%q", s)
	}
	return "with serial " + c.SerialNumber.String()
}

func ekuNames(c *x509.Certificate) string {
	names := make([]string, 0, len(c.ExtKeyUsage)+len(c.UnknownExtKeyUsage))
	for _, u := range c.ExtKeyUsage {
		names = append(names, ekuName(u))
	}
	for _, u := range c.UnknownExtKeyUsage {
		names = append(names, u.String())
	}
	return "[" + strings.Join(names, ", ") + "]"
}

func ekuName(u x509.ExtKeyUsage) string {
	switch u {
	case x509.ExtKeyUsageAny:
		return "anyExtendedKeyUsage"
	case x509.ExtKeyUsageServerAuth:
		return "serverAuth"
	case x509.ExtKeyUsageClientAuth:
		return "clientAuth"
	case x509.ExtKeyUsageCodeSigning:
		return "codeSigning"
	case x509.ExtKeyUsageEmailProtection:
		return "emailProtection"
	case x509.ExtKeyUsageTimeStamping:
		return "timeStamping"
	case x509.ExtKeyUsageOCSPSigning:
		return "OCSPSigning"
	default:
		return fmt.Sprintf("eku(%d)", int(u))
	}
}
