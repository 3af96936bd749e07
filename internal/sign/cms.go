package sign

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"
	"time"
)

// SignCMS signs content and returns a DER CMS ContentInfo of type SignedData
// with the content attached, the same structure as
// `openssl cms -sign -nosmimecap -nodetach -binary -outform DER`: signed
// attributes contentType, signingTime and messageDigest, SHA-256 (SHA-384 for
// P-384 keys), the signer certificate and chain embedded. The signature is
// made through s.Key, so KMS keys never leave the KMS.
//
// The output depends only on its inputs: signingTime is s.SigningTime (the
// release's time in a build; now when zero), and a local ECDSA key signs with
// RFC 6979's deterministic nonce, so building the same release twice gives the
// same bundle bytes. (RSA PKCS #1 v1.5 is deterministic anyway; a KMS signs as
// it does.)
//
// RSA signatures carry the sha256WithRSAEncryption algorithm identifier
// rather than OpenSSL's rsaEncryption: both OpenSSL and Rugix Ctrl 1.x accept
// it, while 1.x rejects rsaEncryption.
func (s *Signer) SignCMS(content []byte) ([]byte, error) {
	if s == nil || s.Key == nil || s.Cert == nil {
		return nil, errors.New("sign CMS: signer has no key or certificate")
	}
	hash := digestFor(s.Key.Public())
	digestAlg := pkix.AlgorithmIdentifier{Algorithm: digestOID(hash)}
	sigAlg, err := signatureOID(s.Key.Public(), hash)
	if err != nil {
		return nil, fmt.Errorf("sign CMS with certificate %q: %w", s.Cert.Subject.String(), err)
	}
	h := hash.New()
	h.Write(content)
	when := s.SigningTime
	if when.IsZero() {
		when = time.Now()
	}
	attrs, err := signedAttributes(h.Sum(nil), when.UTC().Truncate(time.Second))
	if err != nil {
		return nil, fmt.Errorf("sign CMS: %w", err)
	}
	// The signature covers the attributes encoded as a SET OF (RFC 5652 §5.4), not as the
	// [0] IMPLICIT field they are stored in.
	set, err := asn1.Marshal(struct {
		A []cmsAttribute `asn1:"set"`
	}{attrs})
	if err != nil {
		return nil, fmt.Errorf("sign CMS: encode attributes: %w", err)
	}
	var seq asn1.RawValue // the struct's SEQUENCE around the SET
	if _, err := asn1.Unmarshal(set, &seq); err != nil {
		return nil, fmt.Errorf("sign CMS: encode attributes: %w", err)
	}
	ah := hash.New()
	ah.Write(seq.Bytes)
	signature, err := s.Key.Sign(signingRand(s.Key), ah.Sum(nil), hash)
	if err != nil {
		return nil, fmt.Errorf("sign CMS with certificate %q: %w", s.Cert.Subject.String(), err)
	}

	var certs bytes.Buffer
	for _, c := range append([]*x509.Certificate{s.Cert}, s.Chain...) {
		certs.Write(c.Raw)
	}
	eContent, err := asn1.Marshal(content)
	if err != nil {
		return nil, fmt.Errorf("sign CMS: encode content: %w", err)
	}
	sd := cmsSignedData{
		Version:          1,
		DigestAlgorithms: []pkix.AlgorithmIdentifier{digestAlg},
		ContentInfo: cmsContentInfo{
			ContentType: oidData,
			Content:     asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: eContent},
		},
		Certificates: asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: certs.Bytes()},
		SignerInfos: []cmsSignerInfo{{
			Version: 1,
			IssuerAndSerialNumber: cmsIssuerAndSerial{
				IssuerName:   asn1.RawValue{FullBytes: s.Cert.RawIssuer},
				SerialNumber: s.Cert.SerialNumber,
			},
			DigestAlgorithm:           digestAlg,
			AuthenticatedAttributes:   attrs,
			DigestEncryptionAlgorithm: pkix.AlgorithmIdentifier{Algorithm: sigAlg},
			EncryptedDigest:           signature,
		}},
	}
	inner, err := asn1.Marshal(sd)
	if err != nil {
		return nil, fmt.Errorf("sign CMS: encode: %w", err)
	}
	der, err := asn1.Marshal(cmsContentInfo{
		ContentType: oidSignedData,
		Content:     asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: inner},
	})
	if err != nil {
		return nil, fmt.Errorf("sign CMS: encode: %w", err)
	}
	return der, nil
}

// The CMS structures SignCMS writes (RFC 5652), in the shapes OpenSSL writes them.
type (
	cmsContentInfo struct {
		ContentType asn1.ObjectIdentifier
		Content     asn1.RawValue
	}
	cmsSignedData struct {
		Version          int
		DigestAlgorithms []pkix.AlgorithmIdentifier `asn1:"set"`
		ContentInfo      cmsContentInfo
		Certificates     asn1.RawValue
		SignerInfos      []cmsSignerInfo `asn1:"set"`
	}
	cmsSignerInfo struct {
		Version                   int
		IssuerAndSerialNumber     cmsIssuerAndSerial
		DigestAlgorithm           pkix.AlgorithmIdentifier
		AuthenticatedAttributes   []cmsAttribute `asn1:"optional,omitempty,tag:0"`
		DigestEncryptionAlgorithm pkix.AlgorithmIdentifier
		EncryptedDigest           []byte
	}
	cmsIssuerAndSerial struct {
		IssuerName   asn1.RawValue
		SerialNumber *big.Int
	}
	cmsAttribute struct {
		Type  asn1.ObjectIdentifier
		Value asn1.RawValue `asn1:"set"`
	}
)

// oidSigningTime is the signingTime attribute (RFC 5652 §11.3); the other OIDs are verify.go's.
var oidSigningTime = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 5}

// signedAttributes are contentType, signingTime and messageDigest, in DER's SET OF order
// (sorted by their encodings), as OpenSSL writes them.
func signedAttributes(digest []byte, when time.Time) ([]cmsAttribute, error) {
	values := []struct {
		oid asn1.ObjectIdentifier
		v   any
	}{
		{oidContentType, oidData},
		{oidSigningTime, when},
		{oidMessageDigest, digest},
	}
	attrs := make([]cmsAttribute, 0, len(values))
	encoded := make(map[string][]byte, len(values))
	for _, a := range values {
		v, err := asn1.Marshal(a.v)
		if err != nil {
			return nil, fmt.Errorf("encode attribute %v: %w", a.oid, err)
		}
		attr := cmsAttribute{Type: a.oid, Value: asn1.RawValue{Tag: asn1.TagSet, IsCompound: true, Bytes: v}}
		enc, err := asn1.Marshal(attr)
		if err != nil {
			return nil, fmt.Errorf("encode attribute %v: %w", a.oid, err)
		}
		attrs = append(attrs, attr)
		encoded[a.oid.String()] = enc
	}
	slices.SortFunc(attrs, func(a, b cmsAttribute) int {
		return bytes.Compare(encoded[a.Type.String()], encoded[b.Type.String()])
	})
	return attrs, nil
}

// signingRand is the randomness handed to the key: none for a local ECDSA key, which then
// signs deterministically (RFC 6979, crypto/ecdsa); crypto/rand for anything else.
func signingRand(key crypto.Signer) io.Reader {
	if _, ok := key.(*ecdsa.PrivateKey); ok {
		return nil
	}
	return rand.Reader
}

// signatureOID is the signatureAlgorithm of the SignerInfo for key and hash.
func signatureOID(pub crypto.PublicKey, hash crypto.Hash) (asn1.ObjectIdentifier, error) {
	switch pub.(type) {
	case *ecdsa.PublicKey:
		if hash == crypto.SHA384 {
			return oidECDSASHA384, nil
		}
		return oidECDSASHA256, nil
	case *rsa.PublicKey:
		if hash == crypto.SHA384 {
			return oidSHA384WithRSA, nil
		}
		return oidSHA256WithRSA, nil
	}
	return nil, fmt.Errorf("unsupported key type %T", pub)
}

func digestOID(h crypto.Hash) asn1.ObjectIdentifier {
	if h == crypto.SHA384 {
		return oidSHA384
	}
	return oidSHA256
}
