package cli

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	ucli "github.com/urfave/cli/v2"

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

// command declares a subcommand: its name, what its arguments are, what it does and its flags.
func command(name, argsUsage, usage string, flags ...ucli.Flag) *ucli.Command {
	return &ucli.Command{Name: name, ArgsUsage: argsUsage, Usage: usage, Flags: flags}
}

// withOneArg makes run cmd's action for a command that takes exactly one argument, what: run
// gets it (flags may come before or after it, see withArgs).
func withOneArg(cmd *ucli.Command, what string, run func(c *ucli.Context, arg string) error) *ucli.Command {
	return withArgs(cmd, func(c *ucli.Context, args []string) error {
		arg, err := oneArg(c, args, what)
		if err != nil {
			return err
		}
		return run(c, arg)
	})
}

// outputFlag is --output/-o, the file a command writes.
func outputFlag(required bool, usage string) ucli.Flag {
	return &ucli.StringFlag{Name: "output", Aliases: []string{"o"}, Required: required, Usage: usage}
}

// printJSONReport prints v as the command's JSON document and logs its warnings (on stderr,
// so that stdout stays one document).
func printJSONReport(g *Globals, v any, warnings []string) error {
	for _, m := range warnings {
		g.Log.Warn(m)
	}
	return printJSON(g.Stdout, v)
}

func bundleCreateCommand() *ucli.Command {
	cmd := command("create", "DIR", "build a bundle from a rugix-bundler directory (rugix-bundle.toml and payloads/)",
		outputFlag(true, "bundle file to write"),
		&ucli.BoolFlag{Name: "without-compression", Usage: "store blocks uncompressed (drops compression from every payload and the manifest)"},
		&ucli.BoolFlag{Name: "no-block-index", Usage: "do not add casync-64 block encoding to slot payloads that have none; Rugix Ctrl >= 1.2 refuses such bundles unless installed with --insecure-allow-missing-block-index"},
		&ucli.IntFlag{Name: "workers", Usage: "goroutines hashing and compressing blocks (default: all cores)"})
	cmd.Description = "Reads DIR/rugix-bundle.toml and DIR/payloads/ exactly like `rugix-bundler bundle DIR OUT`\n" +
		"and prints the bundle hash. Compression runs on all cores; the output does not depend on\n" +
		"the number of workers.\n\n" +
		"A slot payload without [payloads.block-encoding] gets chunker = \"casync-64\" (in the embedded\n" +
		"manifest too), with a warning: Rugix Ctrl >= 1.2 refuses bundles without a block index unless\n" +
		"installed with --insecure-allow-missing-block-index. --no-block-index writes the manifest as is."
	return withOneArg(cmd, "the bundle directory", func(c *ucli.Context, dir string) error {
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
	cmd := command("hash", "FILE", "print the bundle hash (reads only the header)",
		outputFlag(false, "write the hash to this file without a newline, as Rugix Bakery writes system.rugixb-hash"))
	return withOneArg(cmd, "the bundle file", func(c *ucli.Context, path string) error {
		g := globals(c)
		if out := c.String("output"); out != "" {
			h, err := bundle.WriteHashFile(path, out)
			if err != nil {
				return err
			}
			if g.JSON {
				return printJSON(g.Stdout, map[string]string{"hash": h, "output": out})
			}
			return nil
		}
		h, err := bundle.HashFile(path)
		if err != nil {
			return err
		}
		if g.JSON {
			return printJSON(g.Stdout, map[string]string{"hash": h})
		}
		_, err = fmt.Fprintln(g.Stdout, h)
		return err
	})
}

func bundleInspectCommand() *ucli.Command {
	cmd := command("inspect", "FILE", "show a bundle's header, manifest, payloads, block encodings and signatures")
	return withOneArg(cmd, "the bundle file", func(c *ucli.Context, path string) error {
		out, err := bundle.InspectFile(c.Context, path)
		if err != nil {
			return err
		}
		g := globals(c)
		if g.JSON {
			return printJSONReport(g, out, out.Warnings)
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
		for _, p := range out.Payloads {
			fmt.Fprintf(w, "  %d: %s file=%s\n", p.Index, p.Describe, p.FileHash)
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
	cmd := command("verify", "FILE", "check the header hash, signatures, payload header hashes, every block hash and every payload hash",
		&ucli.StringFlag{Name: "bundle-hash", Usage: "expected bundle hash (sha512-256:<hex>); a file holding it may be given as @FILE"},
		&ucli.StringSliceFlag{Name: "root-cert", Usage: "trusted root certificate (PEM); requires a valid signature (repeatable)"},
		maxPayloadSizeFlag("64GiB"))
	return withOneArg(cmd, "the bundle file", func(c *ucli.Context, path string) error {
		var opts bundle.VerifyOptions
		var err error
		if opts.MaxPayloadSize, err = maxPayloadSize(c); err != nil {
			return err
		}
		if opts.BundleHash, err = bundle.ReadExpectedHash(c.String("bundle-hash")); err != nil {
			return fmt.Errorf("--bundle-hash: %w", err)
		}
		if roots := c.StringSlice("root-cert"); len(roots) > 0 {
			if opts.Roots, err = sign.LoadCertPool(roots...); err != nil {
				return err
			}
		}
		start := time.Now()
		rep, err := bundle.VerifyFile(c.Context, path, opts)
		if err != nil {
			return err
		}
		g := globals(c)
		if g.JSON {
			return printJSONReport(g, rep, rep.Warnings)
		}
		blocks, bytes := rep.Totals()
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

func bundleExtractCommand() *ucli.Command {
	cmd := command("extract", "FILE", "decode one payload into a file, checking every block hash",
		&ucli.StringFlag{Name: "payload", Aliases: []string{"p"}, Required: true, Usage: "payload index or slot name"},
		outputFlag(true, "file to write"),
		&ucli.StringFlag{Name: "bundle-hash", Usage: "expected bundle hash"},
		&ucli.StringFlag{Name: "source", Usage: "for a static-delta payload: the old payload the patch applies to (writes the new payload; default: write the patch)"},
		maxPayloadSizeFlag("the free space of the output's file system"))
	return withOneArg(cmd, "the bundle file", func(c *ucli.Context, path string) error {
		limit, err := maxPayloadSize(c)
		if err != nil {
			return err
		}
		i, st, err := bundle.ExtractFile(c.Context, path, c.String("output"),
			bundle.ExtractFileOptions{Payload: c.String("payload"), BundleHash: c.String("bundle-hash"), MaxSize: limit, Source: c.String("source")})
		if err != nil {
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
	cmd := command("blocks", "FILE", "chunk a file and print one line per block: <offset> <size> <hash>", chunkerFlags()...)
	cmd.Description = "Uses the same chunkers as bundles and device block indices; the boundaries and hashes\n" +
		"equal casync's chunk ids for the same sizes and digest."
	return withOneArg(cmd, "the file to chunk", func(c *ucli.Context, path string) error {
		spec, alg, err := parseChunkerFlags(c)
		if err != nil {
			return err
		}
		g := globals(c)
		w := bufio.NewWriterSize(g.Stdout, 64<<10)
		line := make([]byte, 0, 256)
		err = bundle.HashFileBlocks(c.Context, spec, path, alg, c.Int("workers"), func(b chunker.BlockSum) error {
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
			return err
		}
		return w.Flush()
	})
}

func bundleIndexCommand() *ucli.Command {
	cmd := command("index", "FILE|DEVICE", "write the on-device block index of a slot image or device (rugix-ctrl slots create-index)",
		append(chunkerFlags(), outputFlag(true, "index file to write (rugix-ctrl names it <chunker>_<hash>.rugix-block-index)"))...)
	return withOneArg(cmd, "the slot image or device", func(c *ucli.Context, path string) error {
		spec, alg, err := parseChunkerFlags(c)
		if err != nil {
			return err
		}
		x, err := bundle.WriteBlockIndexFile(c.Context, path, c.String("output"), spec, alg, c.Int("workers"))
		if err != nil {
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
	return &ucli.Command{
		Name:        "delta",
		Usage:       "static delta bundles (create) and dynamic delta estimates (estimate)",
		Subcommands: []*ucli.Command{bundleDeltaCreateCommand(), bundleDeltaEstimateCommand()},
	}
}

func bundleDeltaCreateCommand() *ucli.Command {
	cmd := command("create", "OLD.rugixb NEW.rugixb", "write a static delta bundle: xdelta3 patches of NEW's slot payloads against OLD's (like rugix-bundler delta)",
		outputFlag(true, "delta bundle to write"),
		&ucli.StringSliceFlag{Name: "slot", Usage: "slot pair NEW[:OLD] to patch (repeatable; default: system and boot:system, as rugix-bundler)"},
		&ucli.BoolFlag{Name: "without-compression", Usage: "store the patch blocks uncompressed"},
		&ucli.StringFlag{Name: "key", Usage: "sign the delta bundle with this key: PEM file or KMS URI (with --cert)"},
		&ucli.StringFlag{Name: "cert", Usage: "signer certificate (PEM) for --key"},
		&ucli.StringSliceFlag{Name: "chain", Usage: "intermediate certificates to embed (PEM, repeatable)"},
		&ucli.StringFlag{Name: "password-env", Value: "OTABAKE_KEY_PASSWORD", Usage: "environment variable holding the key's password"},
		&ucli.IntFlag{Name: "workers", Usage: "goroutines hashing and compressing blocks (default: all cores)"},
		maxPayloadSizeFlag("64GiB"))
	cmd.Description = "For each slot pair, the payload of NEW going to slot NEW is replaced by an xdelta3 patch\n" +
		"against the payload of OLD going to slot OLD (<file>.xdelta, fixed-256 blocks with xz, and a\n" +
		"delta encoding naming the old payload's hash as input and the new payload's as original), as\n" +
		"`rugix-bundler delta OLD NEW OUT` writes it. A device installs it with rugix-ctrl >= 0.8.12\n" +
		"when a slot's stored hash equals the input hash; it needs xdelta3. The default pairs are\n" +
		"system and boot:system (the boot payload against the old system, whose hash the device keeps);\n" +
		"default pairs missing from the bundles are left out."
	return withArgs(cmd, func(c *ucli.Context, args []string) error {
		if len(args) != 2 {
			return usageError(c, "want the old and the new bundle")
		}
		var slots []bundle.DeltaSlot
		for _, v := range c.StringSlice("slot") {
			s, err := bundle.ParseDeltaSlot(v)
			if err != nil {
				return usageError(c, "--slot: %v", err)
			}
			slots = append(slots, s)
		}
		limit, err := maxPayloadSize(c)
		if err != nil {
			return err
		}
		opts := bundle.DeltaOptions{Slots: slots, WithoutCompression: c.Bool("without-compression"),
			Create: bundle.CreateOptions{Workers: c.Int("workers")}, MaxPayloadSize: limit}
		if c.String("key") != "" || c.String("cert") != "" {
			if c.String("key") == "" || c.String("cert") == "" {
				return usageError(c, "--key and --cert go together")
			}
			s, err := sign.LoadSigner(c.Context, c.String("key"), c.String("cert"), c.StringSlice("chain"), c.String("password-env"))
			if err != nil {
				return err
			}
			opts.Signer = s
		}
		r, err := bundle.CreateDeltaFile(c.Context, args[0], args[1], c.String("output"), opts)
		if err != nil {
			return err
		}
		g := globals(c)
		if g.JSON {
			return printJSON(g.Stdout, r)
		}
		for _, p := range r.Payloads {
			fmt.Fprintf(g.Stdout, "payload %d %s (%s): %d -> %d bytes patch against %s\n", p.Payload, p.Filename, p.Slot, p.NewSize, p.DataSize, p.InputHash)
		}
		fmt.Fprintf(g.Stdout, "%s: %s, %d bytes (full bundle %d bytes, ratio %.4f), %d signature(s)\n", r.Output, r.Hash, r.Size, r.NewSize, float64(r.Size)/float64(r.NewSize), r.Signatures)
		return nil
	})
}

func bundleDeltaEstimateCommand() *ucli.Command {
	cmd := command("estimate", "NEW.rugixb", "estimate what a device holding the indexed data downloads of a bundle (dynamic delta)",
		&ucli.StringSliceFlag{Name: "index", Required: true, Usage: "block index file of data the device holds (repeatable)"})
	return withOneArg(cmd, "the new bundle", func(c *ucli.Context, path string) error {
		r, err := bundle.DeltaFile(path, c.StringSlice("index"))
		if err != nil {
			return err
		}
		g := globals(c)
		if g.JSON {
			return printJSON(g.Stdout, r)
		}
		for _, d := range r.Payloads {
			note := ""
			if !d.Reusable {
				note = " (no matching index: full download)"
			}
			fmt.Fprintf(g.Stdout, "payload %d: download %d of %d blocks, %d of %d bytes%s\n", d.Index, d.DownloadBlocks, d.Blocks, d.DownloadBytes, d.Bytes, note)
		}
		fmt.Fprintf(g.Stdout, "total: %d of %d bytes (ratio %.4f, headers included)\n", r.DownloadBytes, r.BundleSize, r.Ratio)
		return nil
	})
}

func bundleSignCommand() *ucli.Command {
	cmd := command("sign", "FILE", "add a CMS signature (the bundle hash does not change; signing again appends)",
		&ucli.StringFlag{Name: "key", Required: true, Usage: "signing key: PEM file or KMS URI (awskms://, gcpkms://, azurekms://, hashivault://)"},
		&ucli.StringFlag{Name: "cert", Required: true, Usage: "signer certificate (PEM); embedded in the signature"},
		&ucli.StringSliceFlag{Name: "chain", Usage: "intermediate certificates to embed (PEM, repeatable)"},
		&ucli.StringFlag{Name: "password-env", Value: "OTABAKE_KEY_PASSWORD", Usage: "environment variable holding the key's password"},
		signedOutputFlag())
	return withOneArg(cmd, "the bundle file", func(c *ucli.Context, path string) error {
		s, err := sign.LoadSigner(c.Context, c.String("key"), c.String("cert"), c.StringSlice("chain"), c.String("password-env"))
		if err != nil {
			return err
		}
		res, err := bundle.SignFile(c.Context, path, signedOutput(c, path), s)
		if err != nil {
			return err
		}
		return reportSigned(c, res)
	})
}

// signedOutputFlag is the --output of sign and add-signature; signedOutput reads it.
func signedOutputFlag() ucli.Flag {
	return outputFlag(false, "signed bundle to write (default: replace FILE)")
}

// signedOutput is where sign and add-signature write the signed bundle: --output, or in place.
func signedOutput(c *ucli.Context, path string) string {
	if out := c.String("output"); out != "" {
		return out
	}
	return path
}

// reportSigned prints what sign and add-signature wrote.
func reportSigned(c *ucli.Context, r *bundle.SignedFile) error {
	g := globals(c)
	if g.JSON {
		return printJSON(g.Stdout, r)
	}
	_, err := fmt.Fprintf(g.Stdout, "%s: %s, %d signature(s)\n", r.Output, r.Hash, r.Signatures)
	return err
}

func bundleAddSignatureCommand() *ucli.Command {
	cmd := command("add-signature", "FILE SIGNATURE", "add an externally made DER CMS signature of the signed metadata (see signed-metadata)",
		signedOutputFlag())
	return withArgs(cmd, func(c *ucli.Context, args []string) error {
		if len(args) != 2 {
			return usageError(c, "want the bundle file and the signature file")
		}
		res, err := bundle.AddSignatureFile(c.Context, args[0], args[1], signedOutput(c, args[0]))
		if err != nil {
			return err
		}
		return reportSigned(c, res)
	})
}

func bundleSignedMetadataCommand() *ucli.Command {
	cmd := command("signed-metadata", "FILE", "write the bytes a signature must sign (like rugix-bundler signatures prepare)",
		outputFlag(true, "file to write"))
	return withOneArg(cmd, "the bundle file", func(c *ucli.Context, path string) error {
		return bundle.WriteSignedMetadata(path, c.String("output"))
	})
}
