//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otabake/otabake/internal/agent/engine"
	"github.com/otabake/otabake/internal/bootenv"
	"github.com/otabake/otabake/internal/bundle"
	"github.com/otabake/otabake/internal/gpt"
	"github.com/otabake/otabake/internal/testkit"
)

type sfdiskTable struct {
	PartitionTable struct {
		ID         string `json:"id"`
		LastLBA    uint64 `json:"lastlba"`
		Partitions []struct {
			Start uint64 `json:"start"`
			Size  uint64 `json:"size"`
			Type  string `json:"type"`
			UUID  string `json:"uuid"`
		} `json:"partitions"`
	} `json:"partitiontable"`
}

func TestRepartition(t *testing.T) {
	sfdisk := testkit.NeedTool(t, "sfdisk", "fdisk")
	d := newDevice(t, 80<<20, false)
	before := d.table(t)
	// The test runner may grow the image after the build, as qemu-img resize would.
	d.size += 16 << 20
	if err := os.Truncate(d.disk, d.size); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(d.disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tab, err := gpt.Read(f, d.size)
	if err != nil {
		t.Fatal(err)
	}
	// A layout whose system size is the image's system-a: system-a stays, system-b gets its size.
	grown, added, err := repartition(tab, d.size, defaultEFISchema(testSystemBytes))
	if err != nil {
		t.Fatal(err)
	}
	if len(grown) != 0 {
		t.Fatalf("grew %d partitions", len(grown))
	}
	if err := tab.Write(f, d.size); err != nil {
		t.Fatal(err)
	}
	if len(added) != 2 {
		t.Fatalf("added %d partitions", len(added))
	}

	out, err := exec.Command(sfdisk, "--verify", d.disk).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "No errors detected") || strings.Contains(string(out), "mismatch") {
		t.Fatalf("sfdisk --verify: %v\n%s", err, out)
	}
	js, err := exec.Command(sfdisk, "--json", d.disk).Output()
	if err != nil {
		t.Fatal(err)
	}
	var st sfdiskTable
	if err := json.Unmarshal(js, &st); err != nil {
		t.Fatal(err)
	}
	ps := st.PartitionTable.Partitions
	if len(ps) != 6 {
		t.Fatalf("sfdisk sees %d partitions", len(ps))
	}
	sysA, _ := before.Partition(partSystemA)
	lastLBA := uint64(d.size/512) - 1
	wantB := alignUp(sysA.Last + 1)
	wantD := alignUp(wantB + sysA.Sectors())
	want := []struct{ start, size uint64 }{
		{wantB, sysA.Sectors()},
		{wantD, lastLBA - 33 - wantD + 1},
	}
	for i, w := range want {
		p := ps[4+i]
		if p.Start != w.start || p.Size != w.size || p.Type != "0FC63DAF-8483-4772-8E79-3D69D8477DE4" || p.Start%2048 != 0 {
			t.Errorf("partition %d: sfdisk %+v, want start %d size %d", 5+i, p, w.start, w.size)
		}
		if !strings.EqualFold(p.UUID, added[i].UUID.String()) {
			t.Errorf("partition %d: UUID %s, added %s", 5+i, p.UUID, added[i].UUID)
		}
	}
	for i := 0; i < 4; i++ {
		old, _ := before.Partition(i + 1)
		if !strings.EqualFold(ps[i].UUID, old.UUID.String()) || ps[i].Start != old.First {
			t.Errorf("partition %d changed: %+v", i+1, ps[i])
		}
	}
	if !strings.EqualFold(st.PartitionTable.ID, before.DiskGUID.String()) {
		t.Errorf("disk GUID changed to %s", st.PartitionTable.ID)
	}
	// A second bootstrap (marker not yet deleted when power was cut) changes nothing.
	grown, again, err := repartition(tab, d.size, defaultEFISchema(testSystemBytes))
	if err != nil || len(again)+len(grown) != 0 {
		t.Fatalf("second repartition: %v, %d grown, %d added", err, len(grown), len(again))
	}
}

func TestRepartitionRefuses(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*gpt.Table) error
		size   func(int64) int64
		want   string
	}{
		// Rugix Ctrl's words for both (silitics/rugix v0.8.15 repart.rs, repart): the default
		// 4 GiB layout on the 80 MiB disk grows system-a to the end and leaves no room.
		{"disk too small", nil, nil, "insufficient space, cannot add partition 5"},
		{"wrong type", func(t *gpt.Table) error {
			p, _ := t.Partition(partBootB)
			p.Type = typeESP
			return t.SetPartition(p)
		}, nil, "partition types of partition 3 do not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDevice(t, 80<<20, false)
			tab := d.table(t)
			size := d.size
			if tt.size != nil {
				size = tt.size(size)
			}
			if tt.mutate != nil {
				if err := tt.mutate(tab); err != nil {
					t.Fatal(err)
				}
			}
			if _, _, err := repartition(tab, size, defaultEFISchema(defaultSystemSize)); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestInstallFromHTTP(t *testing.T) {
	testkit.NeedTool(t, "debugfs", "e2fsprogs")
	d := newDevice(t, 80<<20, true)
	bootImg, sysImg := payloadImages(t, d.dir)
	path, res := makeBundle(t, d.dir, bootImg, sysImg)
	srv := serveFile(t, path)
	tab := d.table(t)

	code, _, errs := d.run(t, "update", "install", "--bundle-hash", res.Hash, "--reboot", "no", srv.URL+"/update.rugixb")
	if code != 0 {
		t.Fatalf("install: %d\n%s", code, errs)
	}
	t.Logf("install of a %d-byte bundle took %d HTTP requests\n%s", res.Size, srv.requests.Load(), errs)
	if n := srv.requests.Load(); n > res.Size/(1<<20)+10 {
		t.Errorf("%d requests for %d bytes: read-ahead not working", n, res.Size)
	}

	sysB, _ := tab.Partition(partSystemB)
	want, err := os.ReadFile(sysImg)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.readDisk(t, sysB.Offset(), int64(len(want))); !bytes.Equal(got, want) {
		t.Fatal("system-b differs from the system payload")
	}
	sysA, _ := tab.Partition(partSystemA)
	if got := d.readDisk(t, sysA.Offset(), 1<<20); !bytes.Equal(got, make([]byte, 1<<20)) {
		t.Fatal("the active system-a was written")
	}

	bootB, _ := tab.Partition(partBootB)
	env, err := bootenv.DecodeGrubEnv(debugfsCat(t, d.disk, bootB.Offset(), bootEnvName))
	if err != nil {
		t.Fatal(err)
	}
	vars := bootenv.VarsMap(env)
	wantArgs := "ro init=/usr/bin/rugix-ctrl root=PARTUUID=" + sysB.UUID.String()
	if vars[varBootArgs] != wantArgs || vars["otabake_keep"] != "yes" || len(vars) != 2 {
		t.Fatalf("boot-b boot.grubenv: %q, want %s=%q and otabake_keep kept", vars, varBootArgs, wantArgs)
	}
	fsck := exec.Command("e2fsck", "-fn", d.disk+"?offset="+strconv.FormatInt(bootB.Offset(), 10))
	if out, err := fsck.CombinedOutput(); err != nil {
		t.Fatalf("boot-b filesystem after post-install: %v\n%s", err, out)
	}

	// system info now reports when the spare system slot was written.
	code, out, _ := d.run(t, "system", "info", "--json")
	if code != 0 {
		t.Fatal("system info failed")
	}
	st, err := engine.ParseRugixSystemInfo([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if st.SpareGroup != "b" || st.NeedsCommit || time.Since(st.SpareUpdatedAt) > time.Minute {
		t.Fatalf("after install: %+v", st)
	}

	// Booting b (as GRUB would after the spare reboot), committing it and installing again
	// goes into a.
	d.bootFrom(t, partSystemB)
	if code, _, errs := d.run(t, "system", "commit"); code != 0 {
		t.Fatalf("commit: %s", errs)
	}
	code, _, errs = d.run(t, "update", "install", "--bundle-hash", res.Hash, "--reboot", "no", path)
	if code != 0 {
		t.Fatalf("install from a file: %d\n%s", code, errs)
	}
	if got := d.readDisk(t, sysA.Offset(), int64(len(want))); !bytes.Equal(got, want) {
		t.Fatal("system-a differs from the system payload")
	}
	bootA, _ := tab.Partition(partBootA)
	env, err = bootenv.DecodeGrubEnv(debugfsCat(t, d.disk, bootA.Offset(), bootEnvName))
	if err != nil {
		t.Fatal(err)
	}
	if got := bootenv.VarsMap(env)[varBootArgs]; got != "ro init=/usr/bin/rugix-ctrl root=PARTUUID="+sysA.UUID.String() {
		t.Fatalf("boot-a bootargs %q", got)
	}
}

func TestInstallRefuses(t *testing.T) {
	d := newDevice(t, 80<<20, true)
	bootImg, sysImg := payloadImages(t, d.dir)
	path, res := makeBundle(t, d.dir, bootImg, sysImg)
	b, err := bundle.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var sysPayload bundle.PayloadInfo
	for _, p := range b.Payloads() {
		if p.Slot() == "system" {
			sysPayload = p
		}
	}
	b.Close()
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	corrupt := bytes.Clone(good)
	corrupt[sysPayload.DataOffset+sysPayload.DataSize/2] ^= 0x55
	corruptPath := path + ".corrupt"
	if err := os.WriteFile(corruptPath, corrupt, 0o644); err != nil {
		t.Fatal(err)
	}
	tab := d.table(t)
	sysB, _ := tab.Partition(partSystemB)
	bootB, _ := tab.Partition(partBootB)

	tests := []struct {
		name string
		args []string
		want []string
		// untouched is true when nothing may have been written at all.
		untouched bool
	}{
		{"block hash", []string{"--bundle-hash", res.Hash, corruptPath},
			[]string{"install refused:", "payload 1", "system-b", "invalid block hash of block"}, false},
		{"bundle hash", []string{"--bundle-hash", "sha512-256:" + strings.Repeat("00", 32), path},
			[]string{"install refused:", "invalid header hash"}, true},
		{"malformed hash", []string{"--bundle-hash", "nonsense", path}, []string{"install refused:", "--bundle-hash"}, true},
		{"missing file", []string{"--bundle-hash", res.Hash, path + ".missing"}, []string{"install refused:", "open bundle"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d2 := newDevice(t, 80<<20, true)
			code, _, errs := d2.run(t, append([]string{"update", "install", "--reboot", "no"}, tt.args...)...)
			if code != exitFailed {
				t.Fatalf("exit %d, want 1\n%s", code, errs)
			}
			last := errs[strings.LastIndex(strings.TrimSuffix(errs, "\n"), "\n")+1:]
			t.Log(last)
			for _, w := range tt.want {
				if !strings.Contains(last, w) {
					t.Errorf("last line %q lacks %q", last, w)
				}
			}
			if tt.untouched {
				for _, p := range []gpt.Partition{sysB, bootB} {
					if got := d2.readDisk(t, p.Offset(), p.Bytes()); !bytes.Equal(got, make([]byte, p.Bytes())) {
						t.Errorf("partition %d written although the install was refused up front", p.Number)
					}
				}
			}
			if code, out, _ := d2.run(t, "system", "info", "--json"); code != 0 || strings.Contains(out, "updatedAt") {
				t.Errorf("a refused install must not mark a slot updated: %s", out)
			}
		})
	}
}

func TestHTTPReaderAt(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 300000) // 4.8 MB
	tmp := t.TempDir() + "/blob"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	srv := serveFile(t, tmp)
	r, err := newHTTPReaderAt(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if r.Size() != int64(len(data)) {
		t.Fatalf("size %d", r.Size())
	}
	reads := []struct {
		off, n int64
		eof    bool
	}{
		{0, 10, false}, {5, 100, false}, {1<<20 - 3, 10, false}, {int64(len(data)) - 5, 10, true},
		{100, 3 << 20, false}, {int64(len(data)), 1, true},
	}
	for _, rd := range reads {
		p := make([]byte, rd.n)
		n, err := r.ReadAt(p, rd.off)
		wantN := min(rd.n, max(0, int64(len(data))-rd.off))
		if int64(n) != wantN || (err != nil) != rd.eof || !bytes.Equal(p[:n], data[rd.off:rd.off+wantN]) {
			t.Errorf("ReadAt(%d, %d) = %d, %v", rd.n, rd.off, n, err)
		}
	}

	// Sequential small reads cost one request per MiB.
	before := srv.requests.Load()
	p := make([]byte, 4096)
	for off := int64(0); off < int64(len(data)); off += 4096 {
		if _, err := r.ReadAt(p, off); err != nil && off+4096 <= int64(len(data)) {
			t.Fatal(err)
		}
	}
	if n := srv.requests.Load() - before; n > int64(len(data))/readAhead+2 {
		t.Errorf("%d requests for a sequential read", n)
	}

	// No Range support: a clear error. A transient failure: retried.
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(data[:100]) }))
	defer plain.Close()
	if _, err := newHTTPReaderAt(context.Background(), plain.URL); err == nil || !strings.Contains(err.Error(), "206") {
		t.Errorf("server without Range: %v", err)
	}
	var calls atomic.Int64
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		http.ServeContent(w, r, "b", time.Time{}, bytes.NewReader(data))
	}))
	defer flaky.Close()
	if fr, err := newHTTPReaderAt(context.Background(), flaky.URL); err != nil || fr.Size() != int64(len(data)) {
		t.Errorf("flaky server: %v", err)
	}
}

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in               string
		start, end, size int64
		bad              bool
	}{
		{"bytes 0-0/100", 0, 0, 100, false},
		{"bytes 10-19/20", 10, 19, 20, false},
		{"bytes */100", 0, 0, 0, true},
		{"bytes 10-5/100", 0, 0, 0, true},
		{"bytes 0-99/50", 0, 0, 0, true},
		{"items 0-1/2", 0, 0, 0, true},
	}
	for _, tt := range tests {
		s, e, n, err := parseContentRange(tt.in)
		if (err != nil) != tt.bad || (!tt.bad && (s != tt.start || e != tt.end || n != tt.size)) {
			t.Errorf("parseContentRange(%q) = %d %d %d %v", tt.in, s, e, n, err)
		}
	}
}

func TestPatchBootArgs(t *testing.T) {
	big, err := bootenv.EncodeGrubEnv([]bootenv.Var{{Name: "a", Value: "1"}}, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		old  []byte
		want []bootenv.Var
		size int
	}{
		{"missing file", nil, []bootenv.Var{{Name: varBootArgs, Value: "new"}}, 1024},
		{"keeps others and size", big, []bootenv.Var{{Name: "a", Value: "1"}, {Name: varBootArgs, Value: "new"}}, 2048},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := patchBootArgs(tt.old, "new")
			if err != nil {
				t.Fatal(err)
			}
			vars, err := bootenv.DecodeGrubEnv(got)
			if err != nil || len(got) != tt.size {
				t.Fatalf("%d bytes, %v", len(got), err)
			}
			if len(vars) != len(tt.want) {
				t.Fatalf("got %q", vars)
			}
			for i := range vars {
				if vars[i] != tt.want[i] {
					t.Fatalf("got %q, want %q", vars, tt.want)
				}
			}
		})
	}
	if _, err := patchBootArgs([]byte("not an env"), "x"); err == nil {
		t.Fatal("garbage accepted")
	}
}

// TestRepartitionDefaultLayout: Rugix Ctrl's default layout (4 GiB systems) on a 10 GiB disk
// grows system-a to 4 GiB, adds a 4 GiB system-b 2048-aligned after it and data on the rest;
// the partitions before system-a stay as they are.
func TestRepartitionDefaultLayout(t *testing.T) {
	d := newDevice(t, 80<<20, false)
	before := d.table(t)
	size := int64(10 << 30)
	if err := os.Truncate(d.disk, size); err != nil {
		t.Fatal(err)
	}
	tab := d.table(t)
	schema, err := loadBootstrapSchema(filepath.Join(t.TempDir(), "bootstrapping.toml"))
	if err != nil {
		t.Fatal(err)
	}
	grown, added, err := repartition(tab, size, schema)
	if err != nil {
		t.Fatal(err)
	}
	sysA, _ := before.Partition(partSystemA)
	if len(grown) != 1 || grown[0].Number != partSystemA || grown[0].First != sysA.First || grown[0].Bytes() != 4<<30 {
		t.Fatalf("grown %+v, want system-a at LBA %d grown to 4 GiB", grown, sysA.First)
	}
	lastUsable := uint64(size/gpt.SectorSize) - 34
	bStart := alignUp(sysA.First + (4<<30)/gpt.SectorSize)
	dStart := alignUp(bStart + (4<<30)/gpt.SectorSize)
	if len(added) != 2 || added[0].Number != partSystemB || added[0].First != bStart || added[0].Bytes() != 4<<30 ||
		added[1].Number != partData || added[1].First != dStart || added[1].Last != lastUsable {
		t.Fatalf("added %+v, want system-b of 4 GiB at %d and data from %d to %d", added, bStart, dStart, lastUsable)
	}
	for n := partConfig; n < partSystemA; n++ {
		b, _ := before.Partition(n)
		a, _ := tab.Partition(n)
		if a != b {
			t.Errorf("partition %d changed: %+v → %+v", n, b, a)
		}
	}
	if g, a, err := repartition(tab, size, schema); err != nil || len(g)+len(a) != 0 {
		t.Fatalf("second repartition: %v, %d grown, %d added", err, len(g), len(a))
	}
}

func TestLoadBootstrapSchema(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "bootstrapping.toml")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sys := func(s []schemaPartition) int64 { return s[3].size }
	if s, err := loadBootstrapSchema(filepath.Join(dir, "missing.toml")); err != nil || len(s) != 6 || sys(s) != 4<<30 || !s[5].ext4 || s[5].label != "data" {
		t.Errorf("no file: %+v, %v; want the default layout with 4 GiB systems", s, err)
	}
	if s, err := loadBootstrapSchema(write("[layout]\ntype = \"default\"\nsystem-size = \"1GiB\"\n")); err != nil || len(s) != 6 || sys(s) != 1<<30 {
		t.Errorf("default 1GiB: %+v, %v", s, err)
	}
	if s, err := loadBootstrapSchema(write("layout = { type = \"default\", system-size = \"512M\" }\n")); err != nil || sys(s) != 512<<20 {
		t.Errorf("inline default 512M: %+v, %v", s, err)
	}
	for _, body := range []string{"[layout]\ntype = \"none\"\n", "disabled = true\n"} {
		if s, err := loadBootstrapSchema(write(body)); err != nil || s != nil {
			t.Errorf("%q: %+v, %v; want no layout", body, s, err)
		}
	}
	s, err := loadBootstrapSchema(write(`[layout]
type = "gpt"
partitions = [
    { name = "EFI", size = "256MiB", type = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" },
    { name = "boot-a", size = "256MiB" },
    { name = "boot-b", size = "256MiB" },
    { name = "system-a", size = "6GiB" },
    { name = "system-b", size = "6GiB" },
    { name = "data", filesystem = { type = "ext4" } },
]
`))
	if err != nil || len(s) != 6 || s[0].typ != typeESP || s[1].typ != gpt.TypeLinux || sys(s) != 6<<30 || s[5].size != 0 || !s[5].ext4 {
		t.Errorf("gpt layout: %+v, %v", s, err)
	}
	for body, want := range map[string]string{
		"[layout]\ntype = \"mbr\"\npartitions = []\n":                    "partition table types do not match",
		"[layout]\ntype = \"default\"\n":                                 "missing field `system-size`",
		"[layout]\ntype = \"default\"\nsystem-size = \"4 lightyears\"\n": "unable to parse",
	} {
		if _, err := loadBootstrapSchema(write(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", body, err, want)
		}
	}
}
