package chunker

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestParseSpec(t *testing.T) {
	tests := []struct {
		in      string
		want    Spec
		wantErr string // substring of the error; "" means success
	}{
		{in: "casync-64", want: Spec{Casync, 64}},
		{in: "casync-1", want: Spec{Casync, 1}},
		{in: "casync-65535", want: Spec{Casync, 65535}},
		{in: "fixed-256", want: Spec{Fixed, 256}},
		{in: "fixed-1", want: Spec{Fixed, 1}},
		{in: "fixed-004", want: Spec{Fixed, 4}},
		{in: "", wantErr: "want casync-N or fixed-N"},
		{in: "casync", wantErr: "want casync-N or fixed-N"},
		{in: "casync64", wantErr: "want casync-N or fixed-N"},
		{in: "rabin-64", wantErr: `unknown kind "rabin"`},
		{in: "Casync-64", wantErr: `unknown kind "Casync"`},
		{in: "casync-", wantErr: `size "" is not a decimal number`},
		{in: "casync-x", wantErr: `size "x" is not a decimal number`},
		{in: "casync-+64", wantErr: `size "+64" is not a decimal number`},
		{in: "casync--64", wantErr: `size "-64" is not a decimal number`},
		{in: "casync-64 ", wantErr: `size "64 " is not a decimal number`},
		{in: "casync-6.4", wantErr: `size "6.4" is not a decimal number`},
		{in: "casync-64-1", wantErr: `size "64-1" is not a decimal number`},
		{in: "casync-0", wantErr: "out of range 1..65535"},
		{in: "fixed-0", wantErr: "out of range 1..65535"},
		{in: "fixed-65536", wantErr: "out of range 1..65535"},
		{in: "casync-99999999999999999999999", wantErr: "out of range 1..65535"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSpec(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSpec(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.in) {
					t.Errorf("error %q does not name the input %q", err, tt.in)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseSpec(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestSpecString(t *testing.T) {
	tests := []struct {
		spec Spec
		want string
	}{
		{Spec{Casync, 64}, "casync-64"},
		{Spec{Fixed, 4}, "fixed-4"},
		{Spec{Kind(7), 4}, "Kind(7)-4"},
	}
	for _, tt := range tests {
		if got := tt.spec.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.spec, got, tt.want)
		}
	}
}

func TestSpecValidate(t *testing.T) {
	for _, s := range []Spec{{}, {Casync, 0}, {Fixed, -1}, {Casync, MaxKiB + 1}, {Kind(3), 64}} {
		if err := s.Validate(); err == nil {
			t.Errorf("%#v.Validate() = nil, want error", s)
		}
	}
}

// The table of specs/rugix-bundle.md §3.1.
func TestSizesAndDiscriminator(t *testing.T) {
	tests := []struct {
		kib                 int
		min, avg, max, disc int
	}{
		{1, 256, 1024, 4096, 768},
		{4, 1024, 4096, 16384, 3075},
		{8, 2048, 8192, 32768, 6153},
		{16, 4096, 16384, 65536, 12318},
		{32, 8192, 32768, 131072, 24680},
		{64, 16384, 65536, 262144, 49535},
		{128, 32768, 131072, 524288, 99777},
		{256, 65536, 262144, 1048576, 202440},
		{512, 131072, 524288, 2097152, 416942},
		{1024, 262144, 1048576, 4194304, 886711},
	}
	for _, tt := range tests {
		s := Spec{Casync, tt.kib}
		if s.MinSize() != tt.min || s.AvgSize() != tt.avg || s.MaxSize() != tt.max {
			t.Errorf("%s sizes = %d/%d/%d, want %d/%d/%d", s, s.MinSize(), s.AvgSize(), s.MaxSize(), tt.min, tt.avg, tt.max)
		}
		if d := discriminator(tt.min, tt.avg, tt.max); d != uint32(tt.disc) {
			t.Errorf("%s discriminator = %d, want %d", s, d, tt.disc)
		}
		f := Spec{Fixed, tt.kib}
		if f.MinSize() != tt.avg || f.AvgSize() != tt.avg || f.MaxSize() != tt.avg {
			t.Errorf("%s sizes = %d/%d/%d, want all %d", f, f.MinSize(), f.AvgSize(), f.MaxSize(), tt.avg)
		}
	}
}

// Near N = 9106 KiB the denominator crosses zero: just below, the quotient exceeds u32 and
// saturates (then clamps to max); above, it is negative, the cast gives 0 and the clamp gives min.
// (The spec's "N >= 9324" is the byte count 9324566 divided by 1000; the KiB threshold is 9106.)
func TestDiscriminatorSaturates(t *testing.T) {
	tests := []struct {
		kib   int
		toMax bool
	}{{9000, true}, {9105, true}, {9107, false}, {9324, false}, {20000, false}, {MaxKiB, false}}
	for _, tt := range tests {
		s := Spec{Casync, tt.kib}
		want := uint32(s.MinSize())
		if tt.toMax {
			want = uint32(s.MaxSize())
		}
		if d := discriminator(s.MinSize(), s.AvgSize(), s.MaxSize()); d != want {
			t.Errorf("%s discriminator = %d, want %d", s, d, want)
		}
	}
}

// The multiply test must agree with h % d == d-1 everywhere; it can only go wrong next to
// multiples of d, so every h within 2 of every multiple is checked, plus random values.
func TestDivisorExact(t *testing.T) {
	ds := []uint32{256, 768, 3075, 12318, 49535, 202440, 886711, 1 << 20, 65535, 1<<31 - 1, 1<<31 - 2, 3 << 29}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		ds = append(ds, 256+rng.Uint32N(1<<31-256))
	}
	for _, d := range ds {
		v := newDivisor(d)
		check := func(h uint32) {
			if got, want := v.isCut(h), h%d == d-1; got != want {
				t.Fatalf("d=%d h=%d: isCut = %v, want %v", d, h, got, want)
			}
		}
		for k := uint64(0); k <= math.MaxUint32+1; k += uint64(d) {
			for delta := int64(-2); delta <= 2; delta++ {
				if h := int64(k) + delta; h >= 0 && h <= math.MaxUint32 {
					check(uint32(h))
				}
			}
		}
		for range 10000 {
			check(rng.Uint32())
		}
		check(math.MaxUint32)
	}
}

func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"casync-64", "fixed-256", "casync-0", "fixed-65536", "x-1", "casync-+1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		spec, err := ParseSpec(s)
		if err != nil {
			return
		}
		if err := spec.Validate(); err != nil {
			t.Fatalf("ParseSpec(%q) = %v, which does not validate: %v", s, spec, err)
		}
		again, err := ParseSpec(spec.String())
		if err != nil || again != spec {
			t.Fatalf("round trip of %q: %v, %v", spec.String(), again, err)
		}
		if !(spec.MinSize() > windowSize && spec.MinSize() <= spec.AvgSize() && spec.AvgSize() <= spec.MaxSize() && spec.MaxSize() <= math.MaxUint32/2) {
			t.Fatalf("%s: sizes %d/%d/%d violate Rugix's checks", spec, spec.MinSize(), spec.AvgSize(), spec.MaxSize())
		}
	})
}

func TestCheckBlockSize(t *testing.T) {
	for _, tt := range []struct {
		spec string
		ok   bool
	}{
		{"casync-64", true}, {"casync-8192", true}, {"casync-8193", false},
		{"fixed-32768", true}, {"fixed-32769", false}, {"fixed-65535", false},
	} {
		spec, err := ParseSpec(tt.spec)
		if err != nil {
			t.Fatal(err)
		}
		if err := spec.CheckBlockSize(); (err == nil) != tt.ok {
			t.Errorf("%s: CheckBlockSize = %v, want ok=%v", tt.spec, err, tt.ok)
		}
	}
}
