package bootenv

import (
	"reflect"
	"testing"
)

// FuzzDecodeGrubEnv feeds arbitrary bytes to the GRUB env parser: it must never panic, and
// whatever it accepts must survive an encode/decode round trip unchanged.
func FuzzDecodeGrubEnv(f *testing.F) {
	for _, tc := range grubCases {
		b, _ := EncodeGrubEnv(tc.vars, 0)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		vars, err := DecodeGrubEnv(data)
		if err != nil {
			return
		}
		b, err := EncodeGrubEnv(vars, len(data)+1024)
		if err != nil {
			return // duplicate names or names GRUB itself would not set
		}
		again, err := DecodeGrubEnv(b)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if len(vars) != 0 && !reflect.DeepEqual(again, vars) {
			t.Fatalf("round trip changed %q to %q", vars, again)
		}
	})
}

// FuzzDecodeUBootEnv does the same for U-Boot environment files.
func FuzzDecodeUBootEnv(f *testing.F) {
	for _, vars := range [][]Var{{{"bootpart", "2"}}, {{"boot_spare", "1"}}, {{"a", ""}, {"b", "x=y"}}} {
		b, _ := EncodeUBootEnv(vars, 0)
		f.Add(b)
		b, _ = EncodeUBootEnv(vars, 64)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		vars, err := DecodeUBootEnv(data)
		if err != nil {
			return
		}
		b, err := EncodeUBootEnv(vars, 0)
		if err != nil {
			return
		}
		again, err := DecodeUBootEnv(b)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if len(vars) != 0 && !reflect.DeepEqual(again, vars) {
			t.Fatalf("round trip changed %q to %q", vars, again)
		}
	})
}

// FuzzAutobootDefault checks the autoboot.txt reader never panics.
func FuzzAutobootDefault(f *testing.F) {
	f.Add(Autoboot(2, 3))
	f.Add([]byte("[all]\nboot_partition=x"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if n, err := AutobootDefault(data); err == nil && n < 1 {
			t.Fatalf("accepted partition %d", n)
		}
	})
}
