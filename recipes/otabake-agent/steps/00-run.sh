#!/bin/sh
# Downloads the released otabake-agent-<arch> of the `version` parameter and checks it against
# the SHA-256 pinned for that version (files/releases/<version>.sha256, or the `sha256sums`
# parameter). With source = "local" it does nothing and 01-install.sh takes the project's build.
#
# A `run` step: it runs on the Bakery build host, which has curl or wget, so the image needs
# neither. RUGIX_ROOT_DIR is the system root being built.
set -eu

die() {
	echo "otabake-agent recipe: $*" >&2
	exit 1
}

source=${RECIPE_PARAM_SOURCE:-}
case $source in
local) exit 0 ;;
release) ;;
*) die "parameter source '$source' is not release or local" ;;
esac

root=${RUGIX_ROOT_DIR:?RUGIX_ROOT_DIR is not set (Rugix Bakery sets it to the system root)}
root=${root%/}
arch=${RUGIX_ARCH:?RUGIX_ARCH is not set (Rugix Bakery sets it)}
case $arch in
amd64 | arm64 | armv7 | armhf) ;;
*) die "no otabake-agent release for architecture '$arch' (RUGIX_ARCH): releases are built for amd64, arm64, armv7 and armhf (ARMv6 hard-float)" ;;
esac
name="otabake-agent-$arch"

version=${RECIPE_PARAM_VERSION:-}
case $version in
'' | *[!A-Za-z0-9._+-]*) die "parameter version '$version' is not a release version such as 0.1.0" ;;
esac

# The pinned checksums: the parameter, or the file this recipe ships for the version.
sums=${RECIPE_PARAM_SHA256SUMS:-}
if [ -z "$sums" ]; then
	pinned="${RECIPE_DIR:?RECIPE_DIR is not set (Rugix Bakery sets it)}/files/releases/$version.sha256"
	if [ ! -f "$pinned" ]; then
		known=""
		for f in "$RECIPE_DIR"/files/releases/*.sha256; do
			[ -f "$f" ] || continue
			f=${f##*/}
			known="$known ${f%.sha256}"
		done
		known=${known# }
		die "this recipe pins no checksums for otabake-agent $version (pinned: ${known:-none}): set the sha256sums parameter to that release's SHA256SUMS, or use source = \"local\""
	fi
	sums=$(cat "$pinned")
fi
want=$(printf '%s\n' "$sums" | awk -v n="$name" '$2 == n || $2 == "*" n { print tolower($1) }')
if [ -z "$want" ]; then
	die "the checksums for otabake-agent $version list no $name"
fi
if [ "$(printf '%s\n' "$want" | wc -l)" -ne 1 ] || [ ${#want} -ne 64 ] || [ -n "$(printf '%s' "$want" | tr -d '0-9a-f')" ]; then
	die "the checksums for otabake-agent $version give no single 64-hex-digit SHA-256 for $name"
fi

base=${RECIPE_PARAM_BASE_URL:-}
while :; do
	case $base in
	*"{version}"*) base="${base%%\{version\}*}$version${base#*\{version\}}" ;;
	*) break ;;
	esac
done
# A mirror's URL may carry credentials in its query: it goes after the file name, and it is
# never printed.
query=""
case $base in
*\?*) query="?${base#*\?}" base=${base%%\?*} ;;
esac
base=${base%/}
url="$base/$name$query"
shown="$base/$name"

mkdir -p "$root/usr/bin"
part="$root/usr/bin/.otabake-agent.part"
trap 'rm -f "$part"' EXIT

case $url in
file://*)
	cp "${url#file://}" "$part" || die "cannot read $shown"
	;;
http://* | https://*)
	if command -v curl >/dev/null 2>&1; then
		curl -fsSL --retry 3 -o "$part" "$url" || die "download of $shown failed"
	elif command -v wget >/dev/null 2>&1; then
		wget -q -O "$part" "$url" || die "download of $shown failed"
	else
		die "cannot download $shown: neither curl nor wget is installed on the build host"
	fi
	;;
*)
	die "parameter base_url '$base' is not an http://, https:// or file:// URL"
	;;
esac

got=$(sha256sum "$part" | cut -d ' ' -f 1)
if [ "$got" != "$want" ]; then
	die "sha256 mismatch for $shown: want $want (pinned for $version), got $got"
fi
chmod 0755 "$part"
mv -f "$part" "$root/usr/bin/otabake-agent"
