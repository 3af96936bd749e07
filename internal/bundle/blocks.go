package bundle

import (
	"context"
	"io"

	"github.com/otabake/otabake/internal/chunker"
)

// HashBlocks chunks r with spec and calls fn with every block's alg digest in stream order, from
// the calling goroutine (chunker.HashBlocks). SHA-512/256, the default, takes the chunker's
// eight-lane path, which is several times faster on CPUs with AVX-512.
func HashBlocks(ctx context.Context, spec chunker.Spec, r io.Reader, alg HashAlgorithm, workers int, fn func(chunker.BlockSum) error) error {
	if alg == SHA512_256 {
		return chunker.HashBlocksSHA512_256(ctx, spec, r, workers, fn)
	}
	return chunker.HashBlocks(ctx, spec, r, alg.New, workers, fn)
}
