package bootenv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
)

// ubootCRCSize is the little-endian CRC-32 in front of a (non-redundant) U-Boot environment.
const ubootCRCSize = 4

// EncodeUBootEnv returns a U-Boot environment file: a little-endian CRC-32 (IEEE) over the
// rest, each name=value terminated by a NUL, and one more NUL ending the list. That is byte
// for byte what "mkenvimage -s N" makes; with size 0, N is the exact length and nothing is
// padded, otherwise the rest up to size is filled with 0xff as mkenvimage does.
//
// Rugix's own writer omits the list-ending NUL (its bootpart.default.env is 15 bytes, ours
// 16). Rugix Ctrl skips empty entries and U-Boot's "env import -c" stops at the double NUL, so
// both read either form, but libubootenv (fw_printenv) only accepts the terminated one, which
// is why it is written here.
func EncodeUBootEnv(vars []Var, size int) ([]byte, error) {
	var b bytes.Buffer
	b.Write(make([]byte, ubootCRCSize))
	seen := make(map[string]bool, len(vars))
	for i, v := range vars {
		if v.Name == "" || strings.ContainsAny(v.Name, "=\x00") {
			return nil, fmt.Errorf("U-Boot env variable %d: invalid name %q", i, v.Name)
		}
		if strings.IndexByte(v.Value, 0) >= 0 {
			return nil, fmt.Errorf("U-Boot env variable %q: value contains NUL", v.Name)
		}
		if seen[v.Name] {
			return nil, fmt.Errorf("U-Boot env variable %q set twice", v.Name)
		}
		seen[v.Name] = true
		b.WriteString(v.Name)
		b.WriteByte('=')
		b.WriteString(v.Value)
		b.WriteByte(0)
	}
	b.WriteByte(0)
	if size > 0 {
		if b.Len() > size {
			return nil, fmt.Errorf("U-Boot env needs %d bytes, more than the environment size %d", b.Len(), size)
		}
		b.Write(bytes.Repeat([]byte{0xff}, size-b.Len()))
	}
	out := b.Bytes()
	binary.LittleEndian.PutUint32(out, crc32.ChecksumIEEE(out[ubootCRCSize:]))
	return out, nil
}

// DecodeUBootEnv checks the CRC-32 and returns the variables in file order. The list ends at
// an empty entry (the double NUL) or at the end of the data, so Rugix's unterminated files
// read as well.
func DecodeUBootEnv(data []byte) ([]Var, error) {
	if len(data) < ubootCRCSize {
		return nil, fmt.Errorf("U-Boot env: %d bytes, shorter than the 4-byte CRC", len(data))
	}
	want := binary.LittleEndian.Uint32(data)
	if got := crc32.ChecksumIEEE(data[ubootCRCSize:]); got != want {
		return nil, fmt.Errorf("U-Boot env: CRC-32 mismatch: header says %08x, data gives %08x", want, got)
	}
	var vars []Var
	p := ubootCRCSize
	for p < len(data) {
		end := bytes.IndexByte(data[p:], 0)
		if end < 0 {
			return nil, fmt.Errorf("U-Boot env: entry at offset %d is not NUL-terminated", p)
		}
		if end == 0 {
			break
		}
		entry := data[p : p+end]
		eq := bytes.IndexByte(entry, '=')
		if eq <= 0 {
			return nil, fmt.Errorf("U-Boot env: entry at offset %d is not name=value", p)
		}
		vars = append(vars, Var{Name: string(entry[:eq]), Value: string(entry[eq+1:])})
		p += end + 1
	}
	return vars, nil
}

// ErrNoBootPartition reports an autoboot.txt whose [all] section names no boot partition.
var ErrNoBootPartition = errors.New("autoboot.txt: no boot_partition in the [all] section")
