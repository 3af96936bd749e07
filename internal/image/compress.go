package image

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/otabake/otabake/internal/atomicfile"
	"github.com/otabake/otabake/internal/ctxio"
	"github.com/otabake/otabake/internal/tool"
)

// xzChunkSize is the input size of each independent xz stream. It equals what xz -T0 uses at
// its default level (three times the 8 MiB dictionary), which keeps the ratio close to a
// single-threaded xz while letting every core work on its own chunk.
const xzChunkSize = 24 << 20

// CompressXZ compresses the file in to out as a sequence of independent xz streams of
// xzChunkSize input bytes each, compressed by one xz process per chunk (Debian package
// xz-utils) on workers goroutines (0 means one per CPU) and written in order. Concatenated streams are valid .xz (xz -d and xz -t accept them, as they
// accept the output of xz -T0), and the output depends only on the input, not on the worker
// count. All-zero chunks, which dominate sparse disk images, are compressed once and reused.
func CompressXZ(ctx context.Context, in, out string, workers int) error {
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	xzBin, err := tool.Find("xz", "xz-utils")
	if err != nil {
		return fmt.Errorf("compress xz: %w", err)
	}
	src, err := os.Open(in)
	if err != nil {
		return fmt.Errorf("compress xz: %w", err)
	}
	defer src.Close()
	dst, err := atomicfile.Create(out, 0o644)
	if err != nil {
		return fmt.Errorf("compress xz: %w", err)
	}
	defer dst.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		data []byte
		err  error
	}
	type job struct {
		buf  []byte
		zero bool
		res  chan result
	}
	pool := make(chan []byte, workers+1)
	for range cap(pool) {
		pool <- make([]byte, xzChunkSize)
	}
	var (
		zeroOnce   sync.Once
		zeroStream []byte
		zeroErr    error
	)
	jobs := make(chan job)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				var r result
				if j.zero {
					zeroOnce.Do(func() { zeroStream, zeroErr = xzStream(ctx, xzBin, j.buf) })
					r = result{zeroStream, zeroErr}
				} else {
					r.data, r.err = xzStream(ctx, xzBin, j.buf)
				}
				pool <- j.buf[:cap(j.buf)]
				j.res <- r
			}
		}()
	}
	// pending carries each chunk's result channel in input order, bounding the chunks in flight.
	pending := make(chan chan result, workers)
	readErr := make(chan error, 1)
	go func() {
		defer close(pending)
		defer func() { close(jobs); wg.Wait() }()
		for {
			var buf []byte
			select {
			case buf = <-pool:
			case <-ctx.Done():
				readErr <- ctx.Err()
				return
			}
			n, err := io.ReadFull(src, buf)
			if n == 0 && (err == io.EOF || err == io.ErrUnexpectedEOF) {
				readErr <- nil
				return
			}
			if err != nil && err != io.ErrUnexpectedEOF {
				readErr <- fmt.Errorf("read %s: %w", in, err)
				return
			}
			j := job{buf: buf[:n], zero: n == xzChunkSize && IsZero(buf), res: make(chan result, 1)}
			select {
			case pending <- j.res:
			case <-ctx.Done():
				readErr <- ctx.Err()
				return
			}
			select {
			case jobs <- j:
			case <-ctx.Done():
				readErr <- ctx.Err()
				return
			}
		}
	}()
	bw := bufio.NewWriterSize(dst, 1<<20)
	var werr error
	for res := range pending {
		var r result
		select {
		case r = <-res:
		case <-ctx.Done():
			r.err = ctx.Err()
		}
		if werr != nil {
			continue
		}
		if r.err != nil {
			werr = fmt.Errorf("compress xz %s: %w", in, r.err)
			cancel()
			continue
		}
		if _, err := bw.Write(r.data); err != nil {
			werr = fmt.Errorf("write %s: %w", out, err)
			cancel()
		}
	}
	if err := <-readErr; werr == nil && err != nil {
		werr = fmt.Errorf("compress xz: %w", err)
	}
	if werr != nil {
		return werr
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	return dst.Commit()
}

// IsZero reports whether b holds only zero bytes: the holes of sparse images, which copies and
// block maps skip.
func IsZero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// xzStream compresses one chunk into a complete xz stream with xz-utils at its default
// preset (-6: 8 MiB dictionary, CRC-64). liblzma is an order of magnitude faster than the
// pure-Go LZMA encoders, and xz is the standard tool of the field for .img.xz.
func xzStream(ctx context.Context, xzBin string, p []byte) ([]byte, error) {
	var out bytes.Buffer
	out.Grow(len(p)/4 + 4096)
	_, err := tool.Run(ctx, tool.Cmd{Path: xzBin, Args: []string{"--format=xz", "--check=crc64", "-6", "-T1", "-c"},
		Stdin: bytes.NewReader(p), Stdout: &out, MaxStderr: 4096})
	if err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// CompressZstd compresses the file in to out as zstd with klauspost/compress on workers
// goroutines (0 means one per CPU), the fast alternative to xz for CI artefacts.
func CompressZstd(ctx context.Context, in, out string, workers int) error {
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	src, err := os.Open(in)
	if err != nil {
		return fmt.Errorf("compress zstd: %w", err)
	}
	defer src.Close()
	dst, err := atomicfile.Create(out, 0o644)
	if err != nil {
		return fmt.Errorf("compress zstd: %w", err)
	}
	defer dst.Close()
	enc, err := zstd.NewWriter(dst, zstd.WithEncoderConcurrency(workers), zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return fmt.Errorf("compress zstd: %w", err)
	}
	if _, err := io.Copy(enc, ctxio.Reader(ctx, src)); err != nil {
		enc.Close()
		return fmt.Errorf("compress zstd %s: %w", in, err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("compress zstd %s: %w", in, err)
	}
	return dst.Commit()
}

// Compression is the format of the distributed disk image (build-release
// --image-compression): the one place its names are defined.
type Compression string

// Image compressions. xz is the field's standard for .img.xz; zst is the fast alternative for
// CI artefacts; none leaves system.img as it is.
const (
	CompressionXZ   Compression = "xz"
	CompressionZstd Compression = "zst"
	CompressionNone Compression = "none"
)

// ParseCompression checks a compression name; "" is the default, xz.
func ParseCompression(s string) (Compression, error) {
	switch c := Compression(s); c {
	case "":
		return CompressionXZ, nil
	case CompressionXZ, CompressionZstd, CompressionNone:
		return c, nil
	}
	return "", fmt.Errorf("image compression %q: want xz, zst or none", s)
}

// Compress compresses the image at in next to it (in + ".xz" or in + ".zst") on workers
// goroutines and returns the output path; CompressionNone returns in unchanged.
func (c Compression) Compress(ctx context.Context, in string, workers int) (string, error) {
	switch c {
	case CompressionXZ:
		return in + ".xz", CompressXZ(ctx, in, in+".xz", workers)
	case CompressionZstd:
		return in + ".zst", CompressZstd(ctx, in, in+".zst", workers)
	case CompressionNone:
		return in, nil
	}
	return "", fmt.Errorf("unknown image compression %q (use xz, zst or none)", string(c))
}
