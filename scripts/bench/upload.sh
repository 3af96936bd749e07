#!/usr/bin/env bash
# Benchmark: `otabake upload-release` of a 1 GiB artifact into the embedded local Hub and
# through `otabake hub serve`, as a ratio to `sha256sum FILE && cp FILE DEST` measured in the
# same run (what a minimal content-addressed store has to do at least). Target: ≤ 1.3× for the
# local Hub. Needs hyperfine (Debian package hyperfine). SIZE_MIB overrides the size.
set -euo pipefail
command -v hyperfine >/dev/null || { echo "hyperfine not found: apt-get install hyperfine" >&2; exit 1; }
root=$(cd "$(dirname "$0")/../.." && pwd)
size_mib=${SIZE_MIB:-1024}
work=$(mktemp -d "${TMPDIR:-/tmp}/otabake-bench-upload.XXXXXX")
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

echo "building otabake"
(cd "$root" && CGO_ENABLED=0 go build -trimpath -o "$work/otabake" ./cmd/otabake)
ob="$work/otabake"

proj="$work/project"
mkdir -p "$proj/build/bench"
cd "$proj"
git init -q && git -c user.email=b@b -c user.name=b commit -q --allow-empty -m bench
printf 'NEXIGON_REPOSITORY=bench\nNEXIGON_PACKAGE=os\n' > .env
printf '.otabake/\nbuild/\n.release-env\n' > .gitignore
git add .env .gitignore && git -c user.email=b@b -c user.name=b commit -q -m env
echo "writing a ${size_mib} MiB artifact"
head -c "$((size_mib << 20))" /dev/urandom > build/bench/system.img.xz
export BUILD_TAG=build-20260101000000-bench FLOATING_TAG=latest-build-bench
version=$BUILD_TAG
printf '{\n  "name": "bench",\n  "release": {\n    "id": "bench@%s",\n    "version": "%s"\n  }\n}' "$version" "$version" > build/bench/system-build-info.json
sync

reset_local="rm -rf $proj/.otabake && $ob -C $proj --no-progress hub init --repository bench --package os >/dev/null && $ob -C $proj prepare-release >/dev/null"
dest="$work/copy"

port=$((20000 + RANDOM % 20000))
token=bench-$RANDOM$RANDOM
remote_env="NEXIGON_HUB_URL=http://127.0.0.1:$port NEXIGON_TOKEN=$token"
# Each measured upload through hub serve starts from an empty served store, so that the bytes
# really travel (a second upload of the same digest is deduplicated and sends nothing).
cat > "$work/reset-serve.sh" <<SH
#!/usr/bin/env bash
set -euo pipefail
[ -f "$work/serve.pid" ] && kill "\$(cat "$work/serve.pid")" 2>/dev/null && sleep 0.2
rm -rf "$work/served" && mkdir -p "$work/served"
"$ob" -C "$work/served" hub init --repository bench --package os >/dev/null
setsid "$ob" -C "$work/served" hub serve --listen "127.0.0.1:$port" --token "$token" >"$work/serve.log" 2>&1 &
echo \$! > "$work/serve.pid"
for _ in \$(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
cd "$proj" && env $remote_env "$ob" prepare-release >/dev/null
sync
SH
chmod +x "$work/reset-serve.sh"

echo "running hyperfine (3 runs each)"
hyperfine --runs 3 --export-json "$work/local.json" \
  --prepare "rm -f $dest && sync" -n 'sha256sum && cp' "sha256sum build/bench/system.img.xz >/dev/null && cp build/bench/system.img.xz $dest" \
  --prepare "$reset_local && sync" -n 'upload-release (local Hub)' "$ob --no-progress upload-release"

hyperfine --runs 3 --export-json "$work/serve.json" \
  --prepare "rm -f $dest && sync" -n 'sha256sum && cp' "sha256sum build/bench/system.img.xz >/dev/null && cp build/bench/system.img.xz $dest" \
  --prepare "$work/reset-serve.sh" -n 'upload-release (hub serve)' "env $remote_env $ob --no-progress upload-release"
[ -f "$work/serve.pid" ] && server_pid=$(cat "$work/serve.pid")

ratio() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; print("%.2f" % (r[1]["mean"]/r[0]["mean"]))' "$1"; }
echo
echo "ratio upload-release (local Hub) / (sha256sum && cp): $(ratio "$work/local.json")  (target <= 1.3)"
echo "ratio upload-release (hub serve) / (sha256sum && cp): $(ratio "$work/serve.json")"
