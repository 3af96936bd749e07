package cli

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/schollz/progressbar/v3"
	ucli "github.com/urfave/cli/v2"

	"github.com/otabake/otabake/internal/atomicfile"
	"github.com/otabake/otabake/internal/bundle"
	"github.com/otabake/otabake/internal/chunker"
	"github.com/otabake/otabake/internal/project"
	"github.com/otabake/otabake/internal/sign"
)

func init() { register(bundleCommand) }

func bundleCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "bundle",
		Usage: "create, inspect, verify, sign and extract Rugix update bundles (.rugixb)",
		Description: "Rugix update bundles are what devices running rugix-ctrl install. otabake writes them\n" +
			"natively, byte-compatible with rugix-bundler: the same inputs give the same bundle hash.",
		Subcommands: []*ucli.Command{
			bundleCreateCommand(), bundleHashCommand(), bundleInspectCommand(), bundleVerifyCommand(),
			bundleExtractCommand(), bundleBlocksCommand(), bundleIndexCommand(), bundleDeltaCommand(),
			bundleSignCommand(), bundleAddSignatureCommand(), bundleSignedMetadataCommand(),
		},
	}
}

func oneArg(c *ucli.Context, args []string, what string) (string, error) {
	if len(args) != 1 {
		return "", usageError(c, "want exactly one argument, %s", what)
	}
	return args[0], nil
}

// withArgs makes run, which gets the command's positional arguments, cmd's action. Flags may
// come before or after the arguments, as for every command (see reorderArgs).
func withArgs(cmd *ucli.Command, run func(c *ucli.Context, args []string) error) *ucli.Command {
	cmd.Action = func(c *ucli.Context) error { return run(c, c.Args().Slice()) }
	return cmd
}

func bundleCreateCommand() *ucli.Command {
	return withArgs(&ucli.Command{
		Name:      "create",
		Usage:     "build a bundle from a rugix-bundler directory (rugix-bundle.toml and payloads/)",
		ArgsUsage: "DIR",
		Description: "Reads DIR/rugix-bundle.toml and DIR/payloads/ exactly like `rugix-bundler bundle DIR OUT`\n" +
			"and prints the bundle hash. Compression runs on all cores; the output does not depend on\n" +
			"the number of workers.\n\n" +
			"A slot payload without [payloads.block-encoding] gets chunker = \"casync-64\" (in the embedded\n" +
			"manifest too), with a warning: Rugix Ctrl >= 1.2 refuses bundles without a block index unless\n" +
			"installed with --insecure-allow-missing-block-index. --no-block-index writes the manifest as is.",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "output", Aliases: []string{"o"}, Required: true, Usage: "bundle file to write"},
			&ucli.BoolFlag{Name: "without-compression", Usage: "store blocks uncompressed (drops compression from every payload and the manifest)"},
			&ucli.BoolFlag{Name: "no-block-index", Usage: "do not add casync-64 block encoding to slot payloads that have none; Rugix Ctrl >= 1.2 refuses such bundles unless installed with --insecure-allow-missing-block-index"},
			&ucli.IntFlag{Name: "workers", Usage: "goroutines hashing and compressing blocks (default: all cores)"},
		},
	}, func(c *ucli.Context, args []string) error {
		dir, err := oneArg(c, args, "the bundle directory")
		if err != nil {
			return err
		}
		g := globals(c)
		opts := bundle.CreateOptions{Workers: c.Int("workers")}
		var bar *progressbar.ProgressBar
		barFor := -1
		if g.Progress {
			opts.Progress = func(p bundle.Progress) {
				if bar == nil || barFor != p.Payload {
					if bar != nil {
						bar.Finish()
					}
					barFor = p.Payload
					bar = progressbar.NewOptions64(p.Total, progressbar.OptionSetWriter(g.Stderr),
						progressbar.OptionSetDescription(fmt.Sprintf("payload %d/%d", p.Payload+1, p.Payloads)),
						progressbar.OptionShowBytes(true), progressbar.OptionClearOnFinish())
				}
				bar.Set64(p.Done)
			}
		}
		res, warnings, err := bundle.CreateFromDirWith(c.Context, dir, c.String("output"),
			bundle.DirOptions{WithoutCompression: c.Bool("without-compression"), NoBlockIndex: c.Bool("no-block-index")}, opts)
		if bar != nil {
			bar.Finish()
		}
		for _, w := range warnings {
			g.Log.Warn(w)
		}
		if err != nil {
			return err
		}
		if g.JSON {
			return printJSON(g.Stdout, res)
		}
		_, err = fmt.Fprintln(g.Stdout, res.Hash)
		return err
	})
}

func bundleHashCommand() *ucli.Command {
	return withArgs(&ucli.Command{
		Name:      "hash",
		Usage:     "print the bundle hash (reads only the header)",
		ArgsUsage: "FILE",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the hash to this file without a newline, as Rugix Bakery writes system.rugixb-hash"},
		},
	}, func(c *ucli.Context, args []string) error {
		path, err := oneArg(c, args, "the bundle file")
		if err != nil {
			return err
		}
		h, err := bundle.HashFile(path)
		if err != nil {
			return err
		}
		g := globals(c)
		if out := c.String("output"); out != "" {
			if err := atomicfile.WriteFile(out, []byte(h), 0o644); err != nil {
				return err
			}
			if g.JSON {
				return printJSON(g.Stdout, map[string]string{"hash": h, "output": out})
			}
			return nil
		}
		if g.JSON {
			return printJSON(g.Stdout, map[string]string{"hash": h})
		}
		_, err = fmt.Fprintln(g.Stdout, h)
		return err
	})
}

// inspectJSON is the --json shape of bundle inspect.
type inspectJSON struct {
	Hash          string            `json:"hash"`
	HashAlgorithm string            `json:"hashAlgorithm"`
	Size          int64             `json:"size"`
	Incremental   bool              `json:"incremental"`
	HeaderSize    int               `json:"headerSize"`
	Manifest      *string           `json:"manifest,omitempty"`
	Components    *inspectComps     `json:"components,omitempty"`
	Payloads      []inspectPayload  `json:"payloads"`
	Signatures    []inspectSigEntry `json:"signatures"`
	// Warnings say what today's Rugix Ctrl refuses (payloads without a block index).
	Warnings []string `json:"warnings"`
}

// inspectComps is the header's component metadata; the tags are reported because no
// published source gives their values.
type inspectComps struct {
	Tags  map[string]string `json:"tags"`
	Files []inspectCompFile `json:"files"`
}

type inspectCompFile struct {
	Path   string `json:"path"`
	Size   int    `json:"size"`
	SHA256 string `json:"sha256"`
	// Text is the file's content when it is UTF-8 text (component files are TOML or JSON).
	Text *string `json:"text,omitempty"`
}

type inspectPayload struct {
	Index         int           `json:"index"`
	Delivery      string        `json:"delivery"` // slot, execute, app-file or app-archive
	Slot          string        `json:"slot,omitempty"`
	Handler       []string      `json:"handler,omitempty"`
	App           string        `json:"app,omitempty"`
	Path          string        `json:"path,omitempty"`
	Mode          *uint32       `json:"mode,omitempty"`
	FileHash      string        `json:"fileHash"`
	HeaderHash    string        `json:"headerHash"`
	DataOffset    int64         `json:"dataOffset"`
	DataSize      int64         `json:"dataSize"`
	BlockEncoding *inspectBlock `json:"blockEncoding,omitempty"`
	DeltaEncoding any           `json:"deltaEncoding,omitempty"`
}

type inspectBlock struct {
	Chunker       string  `json:"chunker"`
	HashAlgorithm string  `json:"hashAlgorithm"`
	Deduplicated  bool    `json:"deduplicated"`
	Compression   string  `json:"compression,omitempty"`
	Blocks        int64   `json:"blocks"`
	StoredBlocks  int64   `json:"storedBlocks"`
	UniqueBlocks  int64   `json:"uniqueBlocks"`
	DedupRatio    float64 `json:"dedupRatio"`
	// DecodedMin and DecodedMax bound the decoded size the block encoding declares.
	DecodedMin int64  `json:"decodedMin"`
	DecodedMax int64  `json:"decodedMax"`
	Error      string `json:"error,omitempty"`
}

type inspectSigEntry struct {
	Index   int      `json:"index"`
	Size    int      `json:"size"`
	Signers []string `json:"signers"`
}

func bundleInspectCommand() *ucli.Command {
	return withArgs(&ucli.Command{
		Name:      "inspect",
		Usage:     "show a bundle's header, manifest, payloads, block encodings and signatures",
		ArgsUsage: "FILE",
	}, func(c *ucli.Context, args []string) error {
		path, err := oneArg(c, args, "the bundle file")
		if err != nil {
			return err
		}
		b, err := bundle.Open(path)
		if err != nil {
			return err
		}
		defer b.Close()
		h := b.Header()
		out := inspectJSON{Hash: b.Hash(), HashAlgorithm: string(b.HashAlgorithm()), Size: b.Size(), Incremental: h.IsIncremental,
			HeaderSize: len(b.HeaderBytes()), Manifest: h.Manifest, Payloads: []inspectPayload{}, Signatures: []inspectSigEntry{}}
		alg := b.HashAlgorithm()
		for _, p := range b.Payloads() {
			ip := inspectPayload{Index: p.Index, Slot: p.Slot(), FileHash: bundle.Digest{Algorithm: alg, Sum: p.Entry.FileHash}.String(),
				HeaderHash: bundle.Digest{Algorithm: alg, Sum: p.Entry.HeaderHash}.String(), DataOffset: p.DataOffset, DataSize: p.DataSize}
			switch e := p.Entry; {
			case e.TypeSlot != nil:
				ip.Delivery = "slot"
			case e.TypeExecute != nil:
				ip.Delivery, ip.Handler = "execute", e.TypeExecute.Handler
			case e.TypeAppFile != nil:
				ip.Delivery, ip.App, ip.Path, ip.Mode = "app-file", e.TypeAppFile.App, e.TypeAppFile.Path, e.TypeAppFile.Mode
			case e.TypeAppArchive != nil:
				ip.Delivery, ip.App = "app-archive", e.TypeAppArchive.App
			}
			if p.Entry.DeltaEncoding != nil {
				ip.DeltaEncoding = p.Entry.DeltaEncoding
			}
			if be := p.Header.BlockEncoding; be != nil {
				ib := &inspectBlock{Chunker: be.Chunker, HashAlgorithm: be.HashAlgorithm, Deduplicated: be.Deduplicated}
				if be.Compression != nil {
					ib.Compression = *be.Compression
				}
				if t, err := b.BlockTable(p.Index); err != nil {
					ib.Error = err.Error()
				} else if ib.UniqueBlocks, err = t.UniqueBlocks(c.Context); err != nil {
					ib.Error = err.Error()
				} else {
					ib.Blocks, ib.StoredBlocks = t.Blocks, t.StoredBlocks
					if ib.Blocks > 0 {
						ib.DedupRatio = float64(ib.UniqueBlocks) / float64(ib.Blocks)
					}
					d, _ := b.DeclaredSize(p.Index)
					ib.DecodedMin, ib.DecodedMax = d.Min, d.Max
				}
				ip.BlockEncoding = ib
			}
			out.Payloads = append(out.Payloads, ip)
		}
		for i, der := range b.Signatures() {
			out.Signatures = append(out.Signatures, inspectSigEntry{Index: i, Size: len(der), Signers: bundle.CMSSigners(der)})
		}
		if cs := h.Components; cs != nil {
			out.Components = &inspectComps{Files: []inspectCompFile{}, Tags: map[string]string{
				"BUNDLE_HEADER_COMPONENTS": cs.Tag.String(), "BUNDLE_COMPONENTS_FILE": cs.FileTag.String(),
				"BUNDLE_COMPONENT_FILE_PATH": cs.PathTag.String(), "BUNDLE_COMPONENT_FILE_DATA": cs.DataTag.String()}}
			for _, f := range cs.Files {
				sum := sha256.Sum256(f.Data)
				cf := inspectCompFile{Path: f.Path, Size: len(f.Data), SHA256: hex.EncodeToString(sum[:])}
				if utf8.Valid(f.Data) {
					t := string(f.Data)
					cf.Text = &t
				}
				out.Components.Files = append(out.Components.Files, cf)
			}
		}
		out.Warnings = append([]string{}, b.Warnings()...)
		g := globals(c)
		if g.JSON {
			for _, m := range out.Warnings {
				g.Log.Warn(m)
			}
			return printJSON(g.Stdout, out)
		}
		w := bufio.NewWriter(g.Stdout)
		kind := "full"
		if out.Incremental {
			kind = "incremental"
		}
		fmt.Fprintf(w, "Bundle:      %s\nHash:        %s\nSize:        %d bytes (header %d bytes)\nUpdate type: %s\n", path, out.Hash, out.Size, out.HeaderSize, kind)
		if out.Manifest != nil {
			fmt.Fprintf(w, "Manifest:    %s\n", *out.Manifest)
		}
		if cs := out.Components; cs != nil {
			fmt.Fprintf(w, "Components:  %d files (tag %s)\n", len(cs.Files), cs.Tags["BUNDLE_HEADER_COMPONENTS"])
			for _, f := range cs.Files {
				fmt.Fprintf(w, "  %s: %d bytes, sha256 %s\n", f.Path, f.Size, f.SHA256)
			}
		}
		fmt.Fprintf(w, "Payloads:\n")
		for i, p := range out.Payloads {
			fmt.Fprintf(w, "  %d: %s file=%s\n", p.Index, b.Payloads()[i].Delivery(), p.FileHash)
			fmt.Fprintf(w, "     data: %d bytes at offset %d\n", p.DataSize, p.DataOffset)
			if be := p.BlockEncoding; be != nil {
				comp := "none"
				if be.Compression != "" {
					comp = be.Compression
				}
				fmt.Fprintf(w, "     blocks: %s %s, deduplicated=%t, compression=%s\n", be.Chunker, be.HashAlgorithm, be.Deduplicated, comp)
				if be.Error != "" {
					fmt.Fprintf(w, "     block table: %s\n", be.Error)
				} else {
					fmt.Fprintf(w, "     %d blocks, %d unique (ratio %.3f), %d stored\n", be.Blocks, be.UniqueBlocks, be.DedupRatio, be.StoredBlocks)
					fmt.Fprintf(w, "     decodes to %s\n", bundle.DeclaredSize{Min: be.DecodedMin, Max: be.DecodedMax})
				}
			}
		}
		if len(out.Signatures) == 0 {
			fmt.Fprintf(w, "Signatures:  none\n")
		} else {
			fmt.Fprintf(w, "Signatures:\n")
			for _, s := range out.Signatures {
				fmt.Fprintf(w, "  %d: CMS, %d bytes, signer %s\n", s.Index, s.Size, strings.Join(s.Signers, "; "))
			}
		}
		for _, m := range out.Warnings {
			fmt.Fprintf(w, "Warning:     %s\n", m)
		}
		return w.Flush()
	})
}

func bundleVerifyCommand() *ucli.Command {
	return withArgs(&ucli.Command{
		Name:      "verify",
		Usage:     "check the header hash, signatures, payload header hashes, every block hash and every payload hash",
		ArgsUsage: "FILE",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "bundle-hash", Usage: "expected bundle hash (sha512-256:<hex>); a file holding it may be given as @FILE"},
			&ucli.StringSliceFlag{Name: "root-cert", Usage: "trusted root certificate (PEM); requires a valid signature (repeatable)"},
			maxPayloadSizeFlag("64GiB"),
		},
	}, func(c *ucli.Context, args []string) error {
		path, err := oneArg(c, args, "the bundle file")
		if err != nil {
			return err
		}
		opts := bundle.VerifyOptions{BundleHash: c.String("bundle-hash")}
		if opts.MaxPayloadSize, err = maxPayloadSize(c); err != nil {
			return err
		}
		if f, ok := strings.CutPrefix(opts.BundleHash, "@"); ok {
			data, err := os.ReadFile(f)
			if err != nil {
				return fmt.Errorf("--bundle-hash: %w", err)
			}
			opts.BundleHash = strings.TrimSpace(string(data))
		}
		if roots := c.StringSlice("root-cert"); len(roots) > 0 {
			if opts.Roots, err = sign.LoadCertPool(roots...); err != nil {
				return err
			}
		}
		b, err := bundle.Open(path)
		if err != nil {
			return err
		}
		defer b.Close()
		start := time.Now()
		rep, err := b.Verify(c.Context, opts)
		if err != nil {
			return err
		}
		g := globals(c)
		if g.JSON {
			for _, m := range rep.Warnings {
				g.Log.Warn(m)
			}
			return printJSON(g.Stdout, rep)
		}
		var blocks int
		var bytes int64
		for _, p := range rep.Payloads {
			blocks += p.Blocks
			bytes += p.FileSize
		}
		fmt.Fprintf(g.Stdout, "OK %s: %d payloads, %d blocks, %d bytes decoded in %s\n", rep.Hash, len(rep.Payloads), blocks, bytes, time.Since(start).Round(time.Millisecond))
		if rep.HashChecked {
			fmt.Fprintln(g.Stdout, "bundle hash matches")
		}
		for _, s := range rep.Signatures {
			switch {
			case s.Verified:
				fmt.Fprintf(g.Stdout, "signature %d: valid, signed by %s\n", s.Index, strings.Join(s.Signers, "; "))
			case s.Error != "":
				fmt.Fprintf(g.Stdout, "signature %d: rejected: %s\n", s.Index, s.Error)
			default:
				fmt.Fprintf(g.Stdout, "signature %d: not checked (no --root-cert), signer %s\n", s.Index, strings.Join(s.Signers, "; "))
			}
		}
		for _, m := range rep.Warnings {
			fmt.Fprintf(g.Stdout, "warning: %s\n", m)
		}
		return nil
	})
}

// payloadIndex resolves --payload: a number, or a slot name.
func payloadIndex(b *bundle.Bundle, sel string) (int, error) {
	if n, err := strconv.Atoi(sel); err == nil {
		if n < 0 || n >= len(b.Payloads()) {
			return 0, fmt.Errorf("--payload %d: the bundle has %d payloads", n, len(b.Payloads()))
		}
		return n, nil
	}
	found := -1
	for _, p := range b.Payloads() {
		if p.Slot() == sel {
			if found >= 0 {
				return 0, fmt.Errorf("--payload %q: several payloads go to this slot; give an index", sel)
			}
			found = p.Index
		}
	}
	if found < 0 {
		return 0, fmt.Errorf("--payload %q: no payload goes to this slot", sel)
	}
	return found, nil
}

func bundleExtractCommand() *ucli.Command {
	return withArgs(&ucli.Command{
		Name:      "extract",
		Usage:     "decode one payload into a file, checking every block hash",
		ArgsUsage: "FILE",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "payload", Aliases: []string{"p"}, Required: true, Usage: "payload index or slot name"},
			&ucli.StringFlag{Name: "output", Aliases: []string{"o"}, Required: true, Usage: "file to write"},
			&ucli.StringFlag{Name: "bundle-hash", Usage: "expected bundle hash"},
			maxPayloadSizeFlag("the free space of the output's file system"),
		},
	}, func(c *ucli.Context, args []string) error {
		path, err := oneArg(c, args, "the bundle file")
		if err != nil {
			return err
		}
		b, err := bundle.Open(path)
		if err != nil {
			return err
		}
		defer b.Close()
		if want := c.String("bundle-hash"); want != "" {
			d, err := bundle.ParseDigest(want)
			if err != nil {
				return fmt.Errorf("--bundle-hash: %w", err)
			}
			if got := d.Algorithm.Sum(b.HeaderBytes()); string(got) != string(d.Sum) {
				return fmt.Errorf("invalid header hash: bundle is %s, expected %s", bundle.Digest{Algorithm: d.Algorithm, Sum: got}, d)
			}
		}
		i, err := payloadIndex(b, c.String("payload"))
		if err != nil {
			return err
		}
		limit, err := maxPayloadSize(c)
		if err != nil {
			return err
		}
		if free, err := bundle.FreeSpace(filepath.Dir(c.String("output"))); err == nil && (limit == 0 || free < limit) {
			limit = max(free, 1) // zero would mean the default
		}
		if _, err := b.CheckPayloadSize(c.Context, i, limit); err != nil {
			return err
		}
		out, err := atomicfile.Create(c.String("output"), 0o644)
		if err != nil {
			return err
		}
		defer out.Close()
		st, err := b.Extract(c.Context, i, out.File, bundle.ExtractOptions{MaxSize: limit})
		if err != nil {
			return err
		}
		if err := out.Commit(); err != nil {
			return err
		}
		g := globals(c)
		if g.JSON {
			return printJSON(g.Stdout, st)
		}
		fmt.Fprintf(g.Stdout, "payload %d: %d bytes, %d blocks (%d stored) -> %s\n", i, st.FileSize, st.Blocks, st.StoredBlocks, c.String("output"))
		return nil
	})
}

func maxPayloadSizeFlag(def string) ucli.Flag {
	return &ucli.StringFlag{Name: "max-payload-size", Usage: "refuse payloads that declare more decoded bytes than this (e.g. 16GiB; default: " + def + ")"}
}

// maxPayloadSize parses --max-payload-size; zero means not given.
func maxPayloadSize(c *ucli.Context) (int64, error) {
	v := c.String("max-payload-size")
	if v == "" {
		return 0, nil
	}
	n, err := project.ParseSize(v)
	if err != nil {
		return 0, fmt.Errorf("--max-payload-size: %w", err)
	}
	if n <= 0 {
		return 0, fmt.Errorf("--max-payload-size: want a positive size such as 16GiB, got %q", v)
	}
	return n, nil
}

func chunkerFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "chunker", Value: "casync-64", Usage: "casync-N or fixed-N (N in KiB)"},
		&ucli.StringFlag{Name: "hash", Value: "sha512-256", Usage: "block hash: sha512-256, sha256 or sha512"},
		&ucli.IntFlag{Name: "workers", Usage: "hashing goroutines (default: all cores)"},
	}
}

func parseChunkerFlags(c *ucli.Context) (chunker.Spec, bundle.HashAlgorithm, error) {
	spec, err := chunker.ParseSpec(c.String("chunker"))
	if err == nil {
		err = spec.Validate()
	}
	if err != nil {
		return spec, "", fmt.Errorf("--chunker: %w", err)
	}
	alg, err := bundle.ParseHashAlgorithm(c.String("hash"))
	if err != nil {
		return spec, "", fmt.Errorf("--hash: %w", err)
	}
	return spec, alg, nil
}

func bundleBlocksCommand() *ucli.Command {
	return withArgs(&ucli.Command{
		Name:      "blocks",
		Usage:     "chunk a file and print one line per block: <offset> <size> <hash>",
		ArgsUsage: "FILE",
		Description: "Uses the same chunkers as bundles and device block indices; the boundaries and hashes\n" +
			"equal casync's chunk ids for the same sizes and digest.",
		Flags: chunkerFlags(),
	}, func(c *ucli.Context, args []string) error {
		path, err := oneArg(c, args, "the file to chunk")
		if err != nil {
			return err
		}
		spec, alg, err := parseChunkerFlags(c)
		if err != nil {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		g := globals(c)
		w := bufio.NewWriterSize(g.Stdout, 64<<10)
		line := make([]byte, 0, 256)
		err = bundle.HashBlocks(c.Context, spec, f, alg, c.Int("workers"), func(b chunker.BlockSum) error {
			line = strconv.AppendInt(line[:0], b.Offset, 10)
			line = append(line, ' ')
			line = strconv.AppendInt(line, b.Size, 10)
			line = append(line, ' ')
			line = hex.AppendEncode(line, b.Sum)
			line = append(line, '\n')
			_, err := w.Write(line)
			return err
		})
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return w.Flush()
	})
}

func bundleIndexCommand() *ucli.Command {
	return withArgs(&ucli.Command{
		Name:      "index",
		Usage:     "write the on-device block index of a slot image or device (rugix-ctrl slots create-index)",
		ArgsUsage: "FILE|DEVICE",
		Flags: append(chunkerFlags(),
			&ucli.StringFlag{Name: "output", Aliases: []string{"o"}, Required: true, Usage: "index file to write (rugix-ctrl names it <chunker>_<hash>.rugix-block-index)"}),
	}, func(c *ucli.Context, args []string) error {
		path, err := oneArg(c, args, "the slot image or device")
		if err != nil {
			return err
		}
		spec, alg, err := parseChunkerFlags(c)
		if err != nil {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		x, err := bundle.ComputeBlockIndex(c.Context, f, spec, alg, c.Int("workers"))
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		data, err := x.MarshalBinary()
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(c.String("output"), data, 0o644); err != nil {
			return err
		}
		g := globals(c)
		if g.JSON {
			return printJSON(g.Stdout, map[string]any{"output": c.String("output"), "blocks": x.Blocks(), "chunker": spec.String(), "hashAlgorithm": alg})
		}
		fmt.Fprintf(g.Stdout, "%d blocks (%s, %s) -> %s\n", x.Blocks(), spec, alg, c.String("output"))
		return nil
	})
}

func bundleDeltaCommand() *ucli.Command {
	return withArgs(&ucli.Command{
		Name:      "delta",
		Usage:     "estimate what a device holding the indexed data downloads of a bundle",
		ArgsUsage: "NEW.rugixb",
		Flags: []ucli.Flag{
			&ucli.StringSliceFlag{Name: "index", Required: true, Usage: "block index file of data the device holds (repeatable)"},
		},
	}, func(c *ucli.Context, args []string) error {
		path, err := oneArg(c, args, "the new bundle")
		if err != nil {
			return err
		}
		var indices []*bundle.BlockIndex
		for _, p := range c.StringSlice("index") {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			x, err := bundle.ReadBlockIndex(f)
			f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			indices = append(indices, x)
		}
		b, err := bundle.Open(path)
		if err != nil {
			return err
		}
		defer b.Close()
		ds, err := b.Delta(indices)
		if err != nil {
			return err
		}
		var total int64
		for _, d := range ds {
			total += d.DownloadBytes
		}
		overhead := b.Size()
		for _, p := range b.Payloads() {
			overhead -= p.DataSize
		}
		total += overhead
		ratio := float64(total) / float64(b.Size())
		g := globals(c)
		if g.JSON {
			return printJSON(g.Stdout, map[string]any{"payloads": ds, "downloadBytes": total, "bundleSize": b.Size(), "ratio": ratio})
		}
		for _, d := range ds {
			note := ""
			if !d.Reusable {
				note = " (no matching index: full download)"
			}
			fmt.Fprintf(g.Stdout, "payload %d: download %d of %d blocks, %d of %d bytes%s\n", d.Index, d.DownloadBlocks, d.Blocks, d.DownloadBytes, d.Bytes, note)
		}
		fmt.Fprintf(g.Stdout, "total: %d of %d bytes (ratio %.4f, headers included)\n", total, b.Size(), ratio)
		return nil
	})
}

func bundleSignCommand() *ucli.Command {
	return withArgs(&ucli.Command{
		Name:      "sign",
		Usage:     "add a CMS signature (the bundle hash does not change; signing again appends)",
		ArgsUsage: "FILE",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "key", Required: true, Usage: "signing key: PEM file or KMS URI (awskms://, gcpkms://, azurekms://, hashivault://)"},
			&ucli.StringFlag{Name: "cert", Required: true, Usage: "signer certificate (PEM); embedded in the signature"},
			&ucli.StringSliceFlag{Name: "chain", Usage: "intermediate certificates to embed (PEM, repeatable)"},
			&ucli.StringFlag{Name: "password-env", Value: "OTABAKE_KEY_PASSWORD", Usage: "environment variable holding the key's password"},
			&ucli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "signed bundle to write (default: replace FILE)"},
		},
	}, func(c *ucli.Context, args []string) error {
		path, err := oneArg(c, args, "the bundle file")
		if err != nil {
			return err
		}
		s, err := sign.LoadSigner(c.Context, c.String("key"), c.String("cert"), c.StringSlice("chain"), c.String("password-env"))
		if err != nil {
			return err
		}
		out := c.String("output")
		if out == "" {
			out = path
		}
		if err := bundle.Sign(c.Context, path, out, s); err != nil {
			return err
		}
		return reportSigned(c, out)
	})
}

func reportSigned(c *ucli.Context, out string) error {
	b, err := bundle.Open(out)
	if err != nil {
		return err
	}
	defer b.Close()
	g := globals(c)
	if g.JSON {
		return printJSON(g.Stdout, map[string]any{"output": out, "hash": b.Hash(), "signatures": len(b.Signatures())})
	}
	fmt.Fprintf(g.Stdout, "%s: %s, %d signature(s)\n", out, b.Hash(), len(b.Signatures()))
	return nil
}

func bundleAddSignatureCommand() *ucli.Command {
	return withArgs(&ucli.Command{
		Name:      "add-signature",
		Usage:     "add an externally made DER CMS signature of the signed metadata (see signed-metadata)",
		ArgsUsage: "FILE SIGNATURE",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "signed bundle to write (default: replace FILE)"},
		},
	}, func(c *ucli.Context, args []string) error {
		if len(args) != 2 {
			return usageError(c, "want the bundle file and the signature file")
		}
		path := args[0]
		der, err := readLimited(args[1], bundle.SignaturesSizeLimit)
		if err != nil {
			return err
		}
		out := c.String("output")
		if out == "" {
			out = path
		}
		if err := bundle.AddSignature(c.Context, path, out, der); err != nil {
			return err
		}
		return reportSigned(c, out)
	})
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return data, nil
}

func bundleSignedMetadataCommand() *ucli.Command {
	return withArgs(&ucli.Command{
		Name:      "signed-metadata",
		Usage:     "write the bytes a signature must sign (like rugix-bundler signatures prepare)",
		ArgsUsage: "FILE",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "output", Aliases: []string{"o"}, Required: true, Usage: "file to write"},
		},
	}, func(c *ucli.Context, args []string) error {
		path, err := oneArg(c, args, "the bundle file")
		if err != nil {
			return err
		}
		h, err := bundle.HashFile(path)
		if err != nil {
			return err
		}
		d, err := bundle.ParseDigest(h)
		if err != nil {
			return errors.New("internal: bundle hash does not parse")
		}
		return atomicfile.WriteFile(c.String("output"), bundle.SignedMetadataFor(d), 0o644)
	})
}
