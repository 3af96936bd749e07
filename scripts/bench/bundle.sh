#!/bin/sh
# Bundle benchmarks against casync, all ratios measured in the same run with hyperfine:
#   (a) otabake bundle blocks --chunker casync-64  vs  casync digest (same chunk sizes, sha512-256)
#   (b) otabake bundle create with xz (preset 6)   vs  casync make --compression=xz (time and size)
#   (c) otabake bundle hash on a bundle of the image's size (reads only the header)
# The input is an ext4 image made with `mkfs.ext4 -d` from a copy of real directory trees.
#
# Usage: scripts/bench/bundle.sh            (1 GiB image)
#        BENCH_IMAGE_MIB=256 scripts/bench/bundle.sh
#        BENCH_ONLY=a scripts/bench/bundle.sh   (only part (a))
# Needs: go (with cgo and liblzma-dev for liblzma's xz), casync, e2fsprogs, hyperfine, python3.
set -eu

cd "$(dirname "$0")/../.."
for tool in casync:casync mkfs.ext4:e2fsprogs hyperfine:hyperfine python3:python3; do
	command -v "${tool%%:*}" >/dev/null || { echo "${tool%%:*} not found: apt-get install ${tool#*:}" >&2; exit 1; }
done

mib=${BENCH_IMAGE_MIB:-1024}
runs=${BENCH_RUNS:-3}
only=${BENCH_ONLY:-}
tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/otabake-bench-bundle.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

go build -o "$tmp/otabake" ./cmd/otabake
ota=$tmp/otabake

# A real directory tree filling about 70 % of the image.
want_kib=$((mib * 1024 * 7 / 10))
mkdir -p "$tmp/tree"
for src in /usr/share /usr/lib/x86_64-linux-gnu /usr/lib /usr/bin; do
	[ -d "$src" ] || continue
	have=$(du -sk "$tmp/tree" | cut -f1)
	[ "$have" -lt "$want_kib" ] || break
	for entry in "$src"/*; do
		have=$(du -sk "$tmp/tree" | cut -f1)
		[ "$have" -lt "$want_kib" ] || break
		size=$(du -sk "$entry" 2>/dev/null | cut -f1)
		[ "$((have + size))" -le "$want_kib" ] || continue
		dest="$tmp/tree/$(echo "$src" | tr / _)"
		mkdir -p "$dest"
		cp -a "$entry" "$dest/" 2>/dev/null || true
	done
done
img=$tmp/bundle/payloads/system.img
mkdir -p "$tmp/bundle/payloads"
mkfs.ext4 -q -F -d "$tmp/tree" "$img" "${mib}M"
rm -rf "$tmp/tree"
cat >"$tmp/bundle/rugix-bundle.toml" <<'EOF'
update-type = "full"
[[payloads]]
filename = "system.img"
delivery = { type = "slot", slot = "system" }
block-encoding = { chunker = "casync-64", deduplicate = true, compression = { type = "xz" } }
EOF
cat "$img" >/dev/null # warm the page cache for every tool
echo "image: ${mib} MiB ext4, $(du -sk "$img" | cut -f1) KiB allocated; $(nproc) cores"

ratio() { # ratio JSON: mean of command 1 / mean of command 0
	python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; print("%.3f" % (r[1]["mean"]/r[0]["mean"]))' "$1"
}

echo
echo "== (a) block hashes: casync digest vs otabake bundle blocks (target <= 0.6)"
hyperfine --warmup 1 --runs "$runs" --export-json "$tmp/a.json" \
	"casync digest --chunk-size=16384:65536:262144 --digest=sha512-256 $img" \
	"$ota bundle blocks --chunker casync-64 --hash sha512-256 $img >/dev/null"
echo "ratio (a): $(ratio "$tmp/a.json")"
[ "$only" != a ] || exit 0

echo
echo "== (b) xz bundle: casync make --compression=xz vs otabake bundle create (target <= 0.55 time, <= 1.05 size)"
hyperfine --runs 1 --export-json "$tmp/b.json" \
	--prepare "rm -rf $tmp/store $tmp/sys.caibx $tmp/sys.rugixb" \
	"casync make --compression=xz --chunk-size=16384:65536:262144 --digest=sha512-256 --store=$tmp/store $tmp/sys.caibx $img" \
	"$ota --no-progress bundle create $tmp/bundle -o $tmp/sys.rugixb"
# The last runs' outputs are still there (prepare runs before each command).
casync make --compression=xz --chunk-size=16384:65536:262144 --digest=sha512-256 --store="$tmp/store" "$tmp/sys.caibx" "$img" >/dev/null
casync_size=$(($(du -sbc "$tmp/store" | tail -1 | cut -f1) + $(stat -c %s "$tmp/sys.caibx")))
ota_size=$(stat -c %s "$tmp/sys.rugixb")
echo "ratio (b) time: $(ratio "$tmp/b.json")"
echo "ratio (b) size: $(python3 -c "print('%.3f' % ($ota_size / $casync_size))") (otabake $ota_size bytes, casync store+index $casync_size bytes)"

echo
echo "== (c) bundle hash of an uncompressed ${mib} MiB bundle (reads only the header; target <= 0.05 s beyond startup)"
"$ota" --no-progress bundle create "$tmp/bundle" -o "$tmp/big.rugixb" --without-compression >/dev/null
echo "bundle: $(stat -c %s "$tmp/big.rugixb") bytes"
hyperfine --warmup 3 --runs 20 -N --export-json "$tmp/c.json" \
	"$ota --version" \
	"$ota bundle hash $tmp/big.rugixb"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; print("(c) bundle hash: %.4f s, %.4f s beyond process startup" % (r[1]["mean"], r[1]["mean"]-r[0]["mean"]))' "$tmp/c.json"
