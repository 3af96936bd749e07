// Package ctxio makes long copies cancellable: io.Copy has no context, so gigabyte copies of
// images, bundles and blobs read through Reader, which fails with the context's error as soon
// as the context ends.
package ctxio

import (
	"context"
	"io"
)

// Reader returns r reading only while ctx is live. It checks the context before every Read,
// which is cheap next to the large reads these copies make.
func Reader(ctx context.Context, r io.Reader) io.Reader { return reader{ctx, r} }

type reader struct {
	ctx context.Context
	r   io.Reader
}

func (c reader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
