package gpt_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otabake/otabake/internal/gpt"
	"github.com/otabake/otabake/internal/image"
	"github.com/otabake/otabake/internal/testkit"
)

// sfdiskDump is the part of `sfdisk --json` the tests compare.
type sfdiskDump struct {
	PartitionTable struct {
		Label      string `json:"label"`
		ID         string `json:"id"`
		LastLBA    uint64 `json:"lastlba"`
		Partitions []struct {
			Node  string `json:"node"`
			Start uint64 `json:"start"`
			Size  uint64 `json:"size"`
			Type  string `json:"type"`
			UUID  string `json:"uuid"`
		} `json:"partitions"`
	} `json:"partitiontable"`
}

func sfdiskJSON(t *testing.T, img string) sfdiskDump {
	t.Helper()
	sfdisk := testkit.NeedTool(t, "sfdisk", "fdisk")
	out, err := exec.Command(sfdisk, "--json", img).Output()
	if err != nil {
		t.Fatalf("sfdisk --json %s: %v", img, err)
	}
	var d sfdiskDump
	if err := json.Unmarshal(out, &d); err != nil {
		t.Fatalf("parse sfdisk --json: %v\n%s", err, out)
	}
	return d
}

// efiGrubImage writes a sparse disk image with the partition table otabake builds for efi-grub
// and returns its path, size and the layout.
func efiGrubImage(t *testing.T, diskBytes int64) (string, int64, image.Layout) {
	t.Helper()
	tgt, err := image.TargetByName("efi-grub", "amd64")
	if err != nil {
		t.Fatal(err)
	}
	l, err := image.Plan(tgt, image.Sizes{Config: 8 << 20, BootA: 8 << 20, BootB: 8 << 20, System: 32 << 20, Image: diskBytes}, 0)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(l.DiskBytes()); err != nil {
		t.Fatal(err)
	}
	if err := image.WriteTable(f, l, image.DeriveIdentifiers("guest-test", "r1")); err != nil {
		t.Fatal(err)
	}
	return path, l.DiskBytes(), l
}

func TestReadMatchesSfdisk(t *testing.T) {
	path, size, l := efiGrubImage(t, 128<<20)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tab, err := gpt.Read(f, size)
	if err != nil {
		t.Fatal(err)
	}
	d := sfdiskJSON(t, path)
	if got, want := tab.DiskGUID.String(), strings.ToLower(d.PartitionTable.ID); got != want {
		t.Errorf("disk GUID %s, sfdisk says %s", got, want)
	}
	ps := tab.Partitions()
	if len(ps) != len(d.PartitionTable.Partitions) || len(ps) != len(l.Partitions) {
		t.Fatalf("%d partitions, sfdisk %d, layout %d", len(ps), len(d.PartitionTable.Partitions), len(l.Partitions))
	}
	for i, p := range ps {
		sp := d.PartitionTable.Partitions[i]
		if p.UUID.String() != strings.ToLower(sp.UUID) || !strings.EqualFold(p.Type.String(), sp.Type) ||
			p.First != sp.Start || p.Sectors() != sp.Size || p.Number != l.Partitions[i].Number {
			t.Errorf("partition %d: got %+v, sfdisk %+v", p.Number, p, sp)
		}
		got, ok := tab.FindUUID(p.UUID)
		if !ok || got.Number != p.Number {
			t.Errorf("FindUUID(%s) = %d, %v", p.UUID, got.Number, ok)
		}
	}
}

func TestReadRejects(t *testing.T) {
	path, size, _ := efiGrubImage(t, 0)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(b []byte)
		noGPT  bool
		substr string
	}{
		{"no signature", func(b []byte) { copy(b[512:], "NOT PART") }, true, "signature"},
		{"header crc", func(b []byte) { b[512+40]++ }, false, "header CRC"},
		{"entries crc", func(b []byte) { b[1024+32]++ }, false, "entry array CRC"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := append([]byte(nil), good...)
			tt.mutate(b)
			_, err := gpt.Read(strings.NewReader(string(b)), size)
			if err == nil || !strings.Contains(err.Error(), tt.substr) || errors.Is(err, gpt.ErrNoGPT) != tt.noGPT {
				t.Fatalf("err = %v, want %q (gpt.ErrNoGPT %v)", err, tt.substr, tt.noGPT)
			}
		})
	}
}

func TestWriteRoundTripAndSfdiskVerify(t *testing.T) {
	path, size, _ := efiGrubImage(t, 128<<20)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Grow the image as qemu-img resize would: the backup table must move to the new end.
	size += 64 << 20
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	tab, err := gpt.Read(f, size)
	if err != nil {
		t.Fatal(err)
	}
	if err := tab.Fit(size); err != nil {
		t.Fatal(err)
	}
	u, err := gpt.NewRandomGUID()
	if err != nil {
		t.Fatal(err)
	}
	p4, _ := tab.Partition(4)
	np := gpt.Partition{Number: 5, Type: gpt.TypeLinux, UUID: u, First: (p4.Last + 1 + 2047) / 2048 * 2048, Last: tab.LastUsable, Name: "extra"}
	if err := tab.SetPartition(np); err != nil {
		t.Fatal(err)
	}
	if err := tab.SetPartition(gpt.Partition{Number: 6, Type: gpt.TypeLinux, UUID: u, First: np.First, Last: np.First}); err == nil {
		t.Fatal("overlapping partition accepted")
	}
	if err := tab.Write(f, size); err != nil {
		t.Fatal(err)
	}
	back, err := gpt.Read(f, size)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := back.Partition(5); !ok || got != np {
		t.Fatalf("partition 5 read back as %+v, want %+v", got, np)
	}
	sfdisk := testkit.NeedTool(t, "sfdisk", "fdisk")
	out, err := exec.Command(sfdisk, "--verify", path).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "No errors detected") || strings.Contains(string(out), "mismatch") ||
		strings.Contains(strings.ToLower(string(out)), "warning") {
		t.Fatalf("sfdisk --verify: %v\n%s", err, out)
	}
	d := sfdiskJSON(t, path)
	if d.PartitionTable.LastLBA != tab.LastUsable {
		t.Errorf("sfdisk lastlba %d, want %d", d.PartitionTable.LastLBA, tab.LastUsable)
	}
}

func TestGUIDText(t *testing.T) {
	tests := []struct {
		in, want string
		bad      bool
	}{
		{"0FC63DAF-8483-4772-8E79-3D69D8477DE4", "0fc63daf-8483-4772-8e79-3d69d8477de4", false},
		{"0fc63daf-8483-4772-8e79-3d69d8477de4", "0fc63daf-8483-4772-8e79-3d69d8477de4", false},
		{"0fc63daf84834772-8e79-3d69d8477de4", "", true},
		{"zfc63daf-8483-4772-8e79-3d69d8477de4", "", true},
	}
	for _, tt := range tests {
		g, err := gpt.ParseGUID(tt.in)
		if (err != nil) != tt.bad || (!tt.bad && g.String() != tt.want) {
			t.Errorf("gpt.ParseGUID(%q) = %s, %v", tt.in, g, err)
		}
	}
	// The on-disk form swaps the first three fields.
	tab, err := gpt.New(1<<20, gpt.GUID{}, 34)
	if err != nil {
		t.Fatal(err)
	}
	if err := tab.SetPartition(gpt.Partition{Number: 1, Type: gpt.TypeLinux, First: 34, Last: 40}); err != nil {
		t.Fatal(err)
	}
	if want := []byte{0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4}; !bytes.Equal(tab.Entries[:16], want) {
		t.Errorf("on-disk type GUID % x, want % x", tab.Entries[:16], want)
	}
}
