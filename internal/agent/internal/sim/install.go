package sim

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/otabake/otabake/internal/bundle"
)

// FetchAndVerify downloads a bundle URL (or opens a path) and verifies it with otabake's
// bundle reader, as rugix-ctrl would before writing anything. It returns the bundle hash.
func FetchAndVerify(ctx context.Context, src, bundleHash string) (string, error) {
	path := src
	if len(src) > 4 && src[:4] == "http" {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
		if err != nil {
			return "", err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", fmt.Errorf("download bundle: %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("download bundle: HTTP %s", resp.Status)
		}
		f, err := os.CreateTemp("", "sim-bundle-*")
		if err != nil {
			return "", err
		}
		defer os.Remove(f.Name())
		defer f.Close()
		if _, err := io.Copy(f, resp.Body); err != nil {
			return "", fmt.Errorf("download bundle: %w", err)
		}
		path = f.Name()
	}
	b, err := bundle.Open(path)
	if err != nil {
		return "", fmt.Errorf("invalid bundle: %w", err)
	}
	defer b.Close()
	if _, err := b.Verify(ctx, bundle.VerifyOptions{BundleHash: bundleHash}); err != nil {
		return "", err
	}
	return b.Hash(), nil
}
