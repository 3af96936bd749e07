package sign

import (
	"crypto"
	"encoding/asn1"
	"errors"
	"fmt"

	"github.com/smallstep/pkcs7"
)

// SignCMS signs content and returns a DER CMS ContentInfo of type SignedData
// with the content attached, the same structure as
// `openssl cms -sign -nosmimecap -nodetach -binary -outform DER`: signed
// attributes contentType, signingTime and messageDigest, SHA-256 (SHA-384 for
// P-384 keys), the signer certificate and chain embedded. The signature is
// made through s.Key, so KMS keys never leave the KMS.
//
// RSA signatures carry the sha256WithRSAEncryption algorithm identifier
// rather than OpenSSL's rsaEncryption: both OpenSSL and Rugix Ctrl 1.x accept
// it, while 1.x rejects rsaEncryption.
func (s *Signer) SignCMS(content []byte) ([]byte, error) {
	if s == nil || s.Key == nil || s.Cert == nil {
		return nil, errors.New("sign CMS: signer has no key or certificate")
	}
	sd, err := pkcs7.NewSignedData(content)
	if err != nil {
		return nil, fmt.Errorf("sign CMS: %w", err)
	}
	sd.SetDigestAlgorithm(digestOID(digestFor(s.Key.Public())))
	// AddSigner (not AddSignerChain): the chain is embedded as is, in any
	// order, like openssl's -certfile, and the signer is identified by the
	// issuer recorded in its own certificate.
	if err := sd.AddSigner(s.Cert, s.Key, pkcs7.SignerInfoConfig{}); err != nil {
		return nil, fmt.Errorf("sign CMS with certificate %q: %w", s.Cert.Subject.String(), err)
	}
	for _, c := range s.Chain {
		sd.AddCertificate(c)
	}
	der, err := sd.Finish()
	if err != nil {
		return nil, fmt.Errorf("sign CMS: encode: %w", err)
	}
	return der, nil
}

func digestOID(h crypto.Hash) asn1.ObjectIdentifier {
	switch h {
	case crypto.SHA384:
		return pkcs7.OIDDigestAlgorithmSHA384
	case crypto.SHA512:
		return pkcs7.OIDDigestAlgorithmSHA512
	default:
		return pkcs7.OIDDigestAlgorithmSHA256
	}
}
