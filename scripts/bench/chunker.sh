#!/bin/sh
# Compares otabake's pipelined casync-64 chunking + sha512-256 block hashing (chunker.HashBlocks)
# with `casync digest` on the same file. Usage: scripts/bench/chunker.sh [FILE]
# Without FILE, a 256 MiB file of random data is created in a temporary directory.
# Needs: go, casync (Debian package casync); uses hyperfine if installed.
set -eu

cd "$(dirname "$0")/../.."
command -v casync >/dev/null || { echo "casync not found: apt-get install casync" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
file=${1:-}
if [ -z "$file" ]; then
	file=$tmp/input.bin
	head -c 268435456 /dev/urandom >"$file"
fi
cat "$file" >/dev/null # warm the page cache for both tools

casync_cmd="casync digest --chunk-size=16384:65536:262144 --digest=sha512-256 $file"
go test -c -o "$tmp/chunker.test" ./internal/chunker
go_cmd="env CHUNKER_BENCH_FILE=$file $tmp/chunker.test -test.run ^\$ -test.bench ^BenchmarkHashBlocksFile\$ -test.benchtime 1x"

if command -v hyperfine >/dev/null; then
	hyperfine --warmup 1 --runs 5 --export-json "$tmp/h.json" "$casync_cmd" "$go_cmd"
	python3 - "$tmp/h.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
print("otabake/casync time ratio: %.2f" % (r[1]["median"] / r[0]["median"]))
PY
else
	start=$(date +%s.%N); $casync_cmd >/dev/null; mid=$(date +%s.%N); $go_cmd >/dev/null; end=$(date +%s.%N)
	echo "casync: $(echo "$mid - $start" | bc) s, otabake: $(echo "$end - $mid" | bc) s"
	echo "otabake/casync time ratio: $(echo "scale=2; ($end - $mid) / ($mid - $start)" | bc)"
fi
