#!/bin/sh
# Downloads otabake-agent from the `url` parameter and verifies it against `sha256`.
#
# A `run` step: it runs on the Bakery build host, which has curl and wget, so the image needs
# neither. RUGIX_ROOT_DIR is the system root being built. Without `url` it does nothing and
# 01-install.sh takes the binary from the project.
set -eu

die() {
	echo "otabake-agent recipe: $*" >&2
	exit 1
}

url=${RECIPE_PARAM_URL:-}
if [ -z "$url" ]; then
	exit 0
fi
root=${RUGIX_ROOT_DIR:?RUGIX_ROOT_DIR is not set (Rugix Bakery sets it to the system root)}
root=${root%/}
# Presigned URLs carry credentials in the query: never print it.
shown=${url%%\?*}

want=$(printf '%s' "${RECIPE_PARAM_SHA256:-}" | tr 'A-F' 'a-f')
if [ -z "$want" ]; then
	die "parameter sha256 is required with url $shown: set it to the SHA-256 (64 hex digits) of the file"
fi
if [ ${#want} -ne 64 ] || [ -n "$(printf '%s' "$want" | tr -d '0-9a-f')" ]; then
	die "parameter sha256 '${RECIPE_PARAM_SHA256:-}' is not 64 hex digits"
fi

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
	die "parameter url '$shown' is not an http://, https:// or file:// URL"
	;;
esac

got=$(sha256sum "$part" | cut -d ' ' -f 1)
if [ "$got" != "$want" ]; then
	die "sha256 mismatch for $shown: want $want, got $got"
fi
chmod 0755 "$part"
mv -f "$part" "$root/usr/bin/otabake-agent"
