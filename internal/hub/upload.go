package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/otabake/otabake/internal/ctxio"
)

// UploadOptions tune UploadFile.
type UploadOptions struct {
	// HTTPClient does the PUT to the presigned URL (default http.DefaultClient). It needs no
	// Hub credentials: the URL carries its own signature.
	HTTPClient *http.Client
	// Progress, if set, is called with the bytes sent so far and the total while uploading.
	Progress func(done, total int64)
	// Retry bounds the retries of the PUT (zero fields take the defaults).
	Retry RetryPolicy
}

// UploadResult describes what UploadFile did.
type UploadResult struct {
	AssetID string `json:"assetId"`
	Digest  Digest `json:"digest"`
	Size    int64  `json:"size"`
	// Created is true when the Hub registered a new asset, false when one with the same
	// digest already existed (deduplication).
	Created bool `json:"created"`
	// Uploaded is true when the bytes were sent; false when the Hub already had them.
	Uploaded bool `json:"uploaded"`
}

// Headers a verified upload URL must come with (spec §2.4). Without them the object store
// would accept an unverifiable object, so the upload is refused like the Nexigon CLI does.
var (
	requiredUploadHeaders  = []string{"x-amz-meta-nexigon-asset-id", "x-amz-meta-nexigon-digest", "if-none-match"}
	integrityUploadHeaders = []string{"x-amz-content-sha256", "x-amz-checksum-sha256"}
)

// UploadFile puts the file at path into a repository as a content-addressed asset, idempotently
// (spec §2.4): it hashes the file (SHA-256, one streaming pass), registers the asset, and sends
// the bytes only when the Hub does not have them yet. The PUT goes to the verified presigned URL
// with every header the Hub returned and is then finalized. Like nexigon-cli (nexigon/nexigon
// crates/libs/nexigon-common/src/repository_upload.rs: "hub did not provide a verified upload
// URL"), a Hub that offers only the legacy unverified url is refused: objects put there stay
// dangling. A Hub that implements BlobStore gets the file directly.
//
// The file must not change while this runs: its identity, size and modification time are
// compared before hashing, before every PUT attempt and at the end, so that the Hub can never
// record a digest that does not match the stored bytes.
func UploadFile(ctx context.Context, h Hub, repositoryID, path string, opts UploadOptions) (UploadResult, error) {
	fi, digest, err := hashFile(ctx, path)
	if err != nil {
		return UploadResult{}, err
	}
	res := UploadResult{Digest: digest, Size: fi.Size()}
	assetID, existed, err := h.CreateAsset(ctx, repositoryID, res.Size, digest)
	if err != nil {
		return res, fmt.Errorf("upload %s: create asset: %w", path, err)
	}
	res.AssetID, res.Created = assetID, !existed
	if existed {
		d, err := h.GetAssetDetails(ctx, assetID)
		if err != nil {
			return res, fmt.Errorf("upload %s: asset %s: %w", path, assetID, err)
		}
		if d.Size != res.Size || !sameDigest(d.Digest, digest) {
			return res, fmt.Errorf("upload %s: the Hub matched asset %s (%d bytes, %s) to a file of %d bytes with %s", path, assetID, d.Size, d.Digest, res.Size, digest)
		}
		if d.Status == AssetAvailable {
			return res, checkUnchanged(path, fi)
		}
		// A dangling asset may already have its bytes in storage (an earlier run died before
		// finalizing): finalizing verifies them without sending anything.
		var ae *ActionError
		err = h.FinalizeAssetUpload(ctx, assetID)
		if err == nil {
			return res, checkUnchanged(path, fi)
		}
		if !errors.As(err, &ae) {
			return res, fmt.Errorf("upload %s: finalize asset %s: %w", path, assetID, err)
		}
	}
	if bs, ok := h.(BlobStore); ok {
		if err := bs.PutBlobFile(ctx, assetID, path); err != nil {
			return res, fmt.Errorf("upload %s: store asset %s: %w", path, assetID, err)
		}
		if opts.Progress != nil {
			opts.Progress(res.Size, res.Size)
		}
		res.Uploaded = true
		return res, checkUnchanged(path, fi)
	}
	u, err := h.IssueAssetUploadURL(ctx, assetID)
	if err != nil {
		return res, fmt.Errorf("upload %s: issue upload URL for asset %s: %w", path, assetID, err)
	}
	if u.VerifiedURL == "" {
		return res, fmt.Errorf("upload %s: asset %s: %w", path, assetID, ErrNoVerifiedUpload)
	}
	if err := checkUploadHeaders(u.Headers); err != nil {
		return res, fmt.Errorf("upload %s: asset %s: %w", path, assetID, err)
	}
	if err := putFile(ctx, u.VerifiedURL, u.Headers, path, fi, opts); err != nil {
		return res, fmt.Errorf("upload %s: asset %s: %w", path, assetID, err)
	}
	res.Uploaded = true
	if err := checkUnchanged(path, fi); err != nil {
		return res, err
	}
	if err := h.FinalizeAssetUpload(ctx, assetID); err != nil {
		return res, fmt.Errorf("upload %s: finalize asset %s: %w", path, assetID, err)
	}
	return res, nil
}

// ErrNoVerifiedUpload is returned by UploadFile when the Hub's upload answer has no verifiedUrl.
var ErrNoVerifiedUpload = errors.New("the Hub offers no verified upload URL (verifiedUrl): it is older than Nexigon Hub's verified uploads (upload verification and FinalizeAssetUpload, 2026-07-27) and nexigon-cli refuses it too; update the Hub")

// hashFile returns the file's stat and SHA-256 digest, failing if it changes while hashed.
func hashFile(ctx context.Context, path string) (os.FileInfo, Digest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", fmt.Errorf("upload: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, "", fmt.Errorf("upload: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, "", fmt.Errorf("upload %s: not a regular file", path)
	}
	h := NewSHA256()
	n, err := io.Copy(h, ctxio.Reader(ctx, f))
	if err != nil {
		return nil, "", fmt.Errorf("upload %s: hash: %w", path, err)
	}
	if n != fi.Size() {
		return nil, "", fmt.Errorf("upload %s: file changed while hashing (read %d bytes, size was %d)", path, n, fi.Size())
	}
	if err := checkUnchanged(path, fi); err != nil {
		return nil, "", err
	}
	return fi, DigestOf(h), nil
}

// checkUnchanged fails if path is no longer the same file with the same size and mtime.
func checkUnchanged(path string, before os.FileInfo) error {
	now, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("upload %s: %w", path, err)
	}
	return sameFile(path, before, now)
}

func sameFile(path string, before, now os.FileInfo) error {
	if !os.SameFile(before, now) || now.Size() != before.Size() || !now.ModTime().Equal(before.ModTime()) {
		return fmt.Errorf("upload %s: file changed during upload (size %d→%d, mtime %s→%s)", path,
			before.Size(), now.Size(), before.ModTime().Format(time.RFC3339Nano), now.ModTime().Format(time.RFC3339Nano))
	}
	return nil
}

func checkUploadHeaders(h map[string]string) error {
	has := func(name string) bool {
		for k := range h {
			if strings.EqualFold(k, name) {
				return true
			}
		}
		return false
	}
	for _, name := range requiredUploadHeaders {
		if !has(name) {
			return fmt.Errorf("verified upload URL lacks the required header %s", name)
		}
	}
	for _, name := range integrityUploadHeaders {
		if has(name) {
			return nil
		}
	}
	return fmt.Errorf("verified upload URL lacks an integrity header (%s)", strings.Join(integrityUploadHeaders, " or "))
}

// putFile streams the file to a presigned URL, re-opening it for every attempt.
func putFile(ctx context.Context, target string, headers map[string]string, path string, fi os.FileInfo, opts UploadOptions) error {
	client := opts.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	shown := redactURL(target)
	return opts.Retry.Do(ctx, func(attempt int) error {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		if err := sameFile(path, fi, st); err != nil {
			return err
		}
		var body io.Reader = ctxio.Reader(ctx, f)
		if opts.Progress != nil {
			body = &progressReader{r: body, total: fi.Size(), fn: opts.Progress}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, target, body)
		if err != nil {
			return fmt.Errorf("PUT %s: %w", shown, scrubURLError(err))
		}
		req.ContentLength = fi.Size()
		if fi.Size() == 0 {
			req.Body = http.NoBody
		}
		for k, v := range headers {
			switch {
			case strings.EqualFold(k, "host"):
				req.Host = v
				continue
			case strings.EqualFold(k, "content-length"):
				// net/http writes req.ContentLength itself; a second header would be invalid.
				if v != strconv.FormatInt(fi.Size(), 10) {
					return fmt.Errorf("PUT %s: the Hub requires Content-Length %s for a file of %d bytes", shown, v, fi.Size())
				}
				continue
			}
			req.Header[k] = []string{v} // verbatim: the names are part of the signature
		}
		resp, err := client.Do(req)
		if err != nil {
			err = fmt.Errorf("PUT %s (attempt %d): %w", shown, attempt, scrubURLError(err))
			if ctx.Err() != nil {
				return err
			}
			return Retryable(err, 0)
		}
		defer resp.Body.Close()
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		switch {
		case resp.StatusCode >= 200 && resp.StatusCode <= 299:
			return nil
		case resp.StatusCode == http.StatusPreconditionFailed && headers != nil:
			// If-None-Match: * refused to overwrite: an earlier attempt whose answer was lost
			// already stored the object. Finalize verifies it.
			return nil
		}
		err = fmt.Errorf("PUT %s: HTTP %d: %q", shown, resp.StatusCode, msg)
		if RetryableStatus(resp.StatusCode) {
			return Retryable(err, ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()))
		}
		return err
	})
}

// redactURL drops the query (the presigned signature) and user info of a URL for messages.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

// scrubURLError unwraps a *url.Error, whose message would carry the URL and its signature;
// callers name the redacted URL themselves.
func scrubURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

type progressReader struct {
	r     io.Reader
	done  int64
	total int64
	fn    func(done, total int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.done += int64(n)
		p.fn(p.done, p.total)
	}
	return n, err
}

func sameDigest(a, b Digest) bool {
	na, err1 := ParseDigest(string(a))
	nb, err2 := ParseDigest(string(b))
	return err1 == nil && err2 == nil && na == nb
}

// AttachAsset attaches an uploaded asset to a version under filename, idempotently: when the
// filename is already taken by an asset with the same digest it succeeds with added=false
// (a re-run of upload-release); when it holds different bytes it fails, naming the filename
// and both digests, because silently keeping either would ship the wrong artifact.
func AttachAsset(ctx context.Context, h Hub, versionID, assetID string, digest Digest, filename string, metadata json.RawMessage) (bool, error) {
	added, err := h.AddVersionAsset(ctx, versionID, assetID, filename, metadata)
	if err != nil {
		return false, fmt.Errorf("attach %s to version %s: %w", filename, versionID, err)
	}
	if added {
		return true, nil
	}
	d, err := h.GetVersionDetails(ctx, versionID)
	if err != nil {
		return false, fmt.Errorf("attach %s to version %s: %w", filename, versionID, err)
	}
	a, ok := d.Asset(filename)
	if !ok {
		return false, fmt.Errorf("attach %s to version %s: the Hub reported the filename taken but does not list it", filename, versionID)
	}
	if !sameDigest(a.Digest, digest) {
		return false, fmt.Errorf("attach %s to version %s: the filename already holds %s, not %s", filename, versionID, a.Digest, digest)
	}
	return false, nil
}

// Download writes the bytes of an Available asset to w and checks them against the asset's
// size and digest. It reads a BlobStore directly; otherwise it fetches a download URL
// (http, https or file). client may be nil for http.DefaultClient.
func Download(ctx context.Context, h Hub, assetID string, w io.Writer, client *http.Client) (int64, error) {
	d, err := h.GetAssetDetails(ctx, assetID)
	if err != nil {
		return 0, fmt.Errorf("download asset %s: %w", assetID, err)
	}
	var r io.ReadCloser
	if bs, ok := h.(BlobStore); ok {
		rc, _, err := bs.OpenBlob(ctx, assetID)
		if err != nil {
			return 0, fmt.Errorf("download asset %s: %w", assetID, err)
		}
		r = rc
	} else {
		raw, err := h.IssueAssetDownloadURL(ctx, assetID, "")
		if err != nil {
			return 0, fmt.Errorf("download asset %s: %w", assetID, err)
		}
		if r, err = openURL(ctx, raw, client); err != nil {
			return 0, fmt.Errorf("download asset %s: %w", assetID, err)
		}
	}
	defer r.Close()
	hs := NewSHA256()
	n, err := io.Copy(io.MultiWriter(w, hs), io.LimitReader(ctxio.Reader(ctx, r), d.Size+1))
	if err != nil {
		return n, fmt.Errorf("download asset %s: %w", assetID, err)
	}
	if n != d.Size {
		return n, fmt.Errorf("download asset %s: got %d bytes, want %d", assetID, n, d.Size)
	}
	if got := DigestOf(hs); d.Digest.Algorithm() == "sha256" && !sameDigest(got, d.Digest) {
		return n, fmt.Errorf("download asset %s: digest %s, want %s", assetID, got, d.Digest)
	}
	return n, nil
}

func openURL(ctx context.Context, raw string, client *http.Client) (io.ReadCloser, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("download URL: %w", err)
	}
	switch u.Scheme {
	case "file":
		return os.Open(u.Path)
	case "http", "https":
	default:
		return nil, fmt.Errorf("download URL %s: unsupported scheme", redactURL(raw))
	}
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", redactURL(raw), scrubURLError(err))
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", redactURL(raw), scrubURLError(err))
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: HTTP %d: %q", redactURL(raw), resp.StatusCode, msg)
	}
	return resp.Body, nil
}
