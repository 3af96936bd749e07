package image

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/otabake/otabake/internal/gpt"
)

// Identifiers are the values that make a disk image unique. Bakery leaves them to sfdisk and
// mkfs, which randomise them; otabake derives them from the system name and release id, so
// that rebuilding a release gives the same bytes while two releases never share a PARTUUID.
type Identifiers struct {
	// DiskGUID is the GPT disk GUID.
	DiskGUID gpt.GUID
	// MBRDiskID is the MBR disk signature; the RPi root= device is PARTUUID=<%08X>-05.
	MBRDiskID uint32
	seed      [32]byte
}

// DeriveIdentifiers computes the identifiers of a release from SHA-256 over a domain string,
// the system name and the release id. Every derived UUID is a version 8 (custom) UUID.
func DeriveIdentifiers(system, releaseID string) Identifiers {
	id := Identifiers{seed: sha256.Sum256([]byte("otabake image identifiers v1\x00" + system + "\x00" + releaseID))}
	id.DiskGUID = id.uuid("disk", 0)
	b := id.derive("mbr-disk-id", 0)
	id.MBRDiskID = binary.BigEndian.Uint32(b[:4])
	if id.MBRDiskID == 0 {
		// Zero means "no signature" to some tools; any fixed non-zero value will do.
		id.MBRDiskID = 0x6f746162
	}
	return id
}

func (id Identifiers) derive(purpose string, n int) [32]byte {
	h := sha256.New()
	h.Write(id.seed[:])
	fmt.Fprintf(h, "\x00%s\x00%d", purpose, n)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func (id Identifiers) uuid(purpose string, n int) gpt.GUID {
	b := id.derive(purpose, n)
	var u gpt.GUID
	copy(u[:], b[:16])
	u[6] = u[6]&0x0f | 0x80 // version 8
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	return u
}

// PartitionGUID returns the GPT unique partition GUID of partition n.
func (id Identifiers) PartitionGUID(n int) gpt.GUID { return id.uuid("partition", n) }

// FATSerial returns the volume serial of a FAT filesystem in partition n.
func (id Identifiers) FATSerial(n int) uint32 {
	b := id.derive("fat-serial", n)
	return binary.BigEndian.Uint32(b[:4])
}

// Ext4UUID returns the filesystem UUID of an ext4 filesystem in partition n.
func (id Identifiers) Ext4UUID(n int) gpt.GUID { return id.uuid("ext4-uuid", n) }

// Ext4HashSeed returns the htree hash seed of an ext4 filesystem in partition n.
func (id Identifiers) Ext4HashSeed(n int) gpt.GUID { return id.uuid("ext4-hash-seed", n) }

// RootDevice returns the root= value the boot configuration passes to the kernel for the
// system-a partition: PARTUUID=<lower-case GUID> on GPT, PARTUUID=<DISKID>-<NN> on MBR.
func (id Identifiers) RootDevice(l Layout) (string, error) {
	p, ok := l.ByRole(RoleSystemA)
	if !ok {
		return "", fmt.Errorf("layout has no system-a partition")
	}
	if l.Table == GPT {
		return "PARTUUID=" + id.PartitionGUID(p.Number).String(), nil
	}
	return fmt.Sprintf("PARTUUID=%08X-%02d", id.MBRDiskID, p.Number), nil
}
