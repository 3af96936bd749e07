package vm

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/otabake/otabake/internal/bootenv"
	"github.com/otabake/otabake/internal/gpt"
	"github.com/otabake/otabake/internal/image"
)

// CopySparse copies the disk image src to dst without writing its all-zero blocks, so a
// throwaway copy of a mostly empty multi-gigabyte image costs what its data costs. dst is
// created new (an existing file is an error: nothing a user had is overwritten).
func CopySparse(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		out.Close()
		if !ok {
			os.Remove(dst)
		}
	}()
	const block = 1 << 20
	buf := make([]byte, block)
	for off := int64(0); off < st.Size(); off += block {
		n, err := io.ReadFull(in, buf)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read %s at offset %d: %w", src, off, err)
		}
		if !image.IsZero(buf[:n]) {
			if _, err := out.WriteAt(buf[:n], off); err != nil {
				return fmt.Errorf("write %s: %w", dst, err)
			}
		}
	}
	if err := out.Truncate(st.Size()); err != nil {
		return err
	}
	ok = true
	return out.Close()
}

// ArmSpareBoot sets rugpi_boot_spare=true in the config partition of an efi-grub disk image,
// as `rugix-ctrl system reboot --spare` would: GRUB's first stage boots the other boot group
// once, resets the flag and the next boot is the default group again.
func ArmSpareBoot(disk string) error {
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	table, err := gpt.Read(f, st.Size())
	if err != nil {
		return fmt.Errorf("%s: %w (only efi-grub images with a GPT can boot the spare group)", disk, err)
	}
	cfg, ok := table.Partition(1)
	if !ok || cfg.Type != gpt.MustParseGUID(image.TypeESP) {
		return fmt.Errorf("%s: partition 1 is not an EFI system partition (config partition of an efi-grub image)", disk)
	}
	env, err := bootenv.EncodeGrubEnv([]bootenv.Var{{Name: "rugpi_boot_spare", Value: "true"}}, 0)
	if err != nil {
		return err
	}
	if err := image.ReplaceFATFile(f, cfg.Offset(), cfg.Bytes(), "rugpi/boot_spare.grubenv", env); err != nil {
		return fmt.Errorf("%s: arm the spare boot: %w", disk, err)
	}
	return f.Sync()
}

// RunDir is where `otabake run` keeps per-system machine state (the UEFI variable store) next
// to the image: build/<system>/.run.
func RunDir(image string) string { return filepath.Join(filepath.Dir(image), ".run") }
