#!/bin/sh
# Disk image benchmark (just bench-image): builds an efi-grub image with otabake's native
# image code from a rootfs directory, without compression, then builds the same GPT layout
# from the same partition images with genimage, and prints the time per stage and the
# otabake/genimage ratio of the image assembly step.
# Usage: scripts/bench/image.sh [ROOTFS_DIR]
# Without ROOTFS_DIR, a rootfs of at least BENCH_ROOTFS_MIB MiB (default 1024) is copied from
# /usr into a temporary directory, with placeholder kernel and initrd files.
# Needs: go, genimage, e2fsprogs (mkfs.ext4, debugfs), grub-common + grub-efi-amd64-bin
# (grub-mkimage) unless the rootfs carries a GRUB EFI binary; uses python3 for the report.
set -eu

cd "$(dirname "$0")/../.."
for tool in genimage python3; do
	command -v "$tool" >/dev/null || { echo "$tool not found: apt-get install $tool" >&2; exit 1; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rootfs=${1:-}
if [ -z "$rootfs" ]; then
	rootfs=$tmp/rootfs
	want=$(( ${BENCH_ROOTFS_MIB:-1024} * 1024 ))
	mkdir -p "$rootfs/boot"
	# Whole files from /usr until the budget is reached, so the size is close to the target.
	find /usr/lib /usr/share /usr/bin /usr/libexec /usr/include /usr/sbin -xdev \( -type f -o -type l \) -printf '%s %p\n' 2>/dev/null |
		awk -v want="$want" '{ sum += $1 / 1024; print substr($0, index($0, " ") + 1); if (sum >= want) exit }' >"$tmp/files"
	tar -cf - -T "$tmp/files" 2>/dev/null | tar -xf - -C "$rootfs"
	head -c 8388608 /dev/urandom >"$rootfs/boot/vmlinuz-bench"
	head -c 33554432 /dev/urandom >"$rootfs/boot/initrd.img-bench"
	ln -s boot/vmlinuz-bench "$rootfs/vmlinuz"
	ln -s boot/initrd.img-bench "$rootfs/initrd.img"
fi
echo "rootfs: $rootfs ($(du -sh "$rootfs" | cut -f1))"

go test -c -o "$tmp/image.test" ./internal/image
out=$tmp/out
mkdir -p "$out"
start=$(date +%s.%N)
OTABAKE_BENCH_ROOTFS=$rootfs OTABAKE_BENCH_OUT=$out "$tmp/image.test" -test.run '^TestBenchImage$' -test.v >"$tmp/go.log" 2>&1 || { cat "$tmp/go.log" >&2; exit 1; }
end=$(date +%s.%N)

# The same layout from the same filesystem images, with genimage.
python3 - "$out/bench.json" >"$tmp/genimage.cfg" <<'PY'
import json, os, sys
b = json.load(open(sys.argv[1]))
names = {r: os.path.basename(b["parts"][k]) for r, k in (("config", "Config"), ("boot-a", "Boot"), ("system-a", "System"))}
print('image disk.img {\n  size = %d\n  hdimage {\n    partition-table-type = "gpt"\n    disk-uuid = "%s"\n  }' % (b["layout"]["diskSectors"] * 512, b["diskGUID"]))
for p in b["layout"]["partitions"]:
    print('  partition %s {\n    partition-type-uuid = "%s"\n    offset = %d\n    size = %d' % (p["role"], p["type"], p["start"] * 512, p["sectors"] * 512))
    if p["role"] in names:
        print('    image = "%s"' % names[p["role"]])
    print('  }')
print('}')
PY
mkdir -p "$tmp/g-root" "$tmp/g-tmp" "$tmp/g-out"
gstart=$(date +%s.%N)
genimage --config "$tmp/genimage.cfg" --rootpath "$tmp/g-root" --tmppath "$tmp/g-tmp" \
	--inputpath "$out/work" --outputpath "$tmp/g-out" >"$tmp/genimage.log" 2>&1 || { cat "$tmp/genimage.log" >&2; exit 1; }
gend=$(date +%s.%N)

python3 - "$out/bench.json" "$start" "$end" "$gstart" "$gend" "$out/system.img" "$tmp/g-out/disk.img" <<'PY'
import json, os, sys
b = json.load(open(sys.argv[1]))
start, end, gstart, gend = map(float, sys.argv[2:6])
ours, theirs = sys.argv[6], sys.argv[7]
print("rootfs bytes (lstat sum): %d" % b["rootfsBytes"])
print("disk image: %d bytes" % os.path.getsize(ours))
print("native build, time per stage:")
for s in b["order"]:
    print("  %-18s %8.2f s" % (s, b["stages"][s]))
print("  %-18s %8.2f s (including process start)" % ("total", end - start))
g = gend - gstart
a = b["stages"]["assemble"]
print("image step: otabake assemble %.2f s, genimage %.2f s" % (a, g))
print("otabake/genimage time ratio (image step): %.2f" % (a / g if g > 0 else float("nan")))
def data_blocks(p):
    return os.stat(p).st_blocks * 512
print("allocated bytes: otabake %d, genimage %d" % (data_blocks(ours), data_blocks(theirs)))
PY
