# otabake-release: turns an image into an otabake release.
#
#   inherit otabake-release        (in the image recipe, or IMAGE_CLASSES += "otabake-release")
#
# - do_rootfs bakes the release identity into IMAGE_ROOTFS with `otabake bake`:
#   /etc/rugix/system-build-info.json exactly as Rugix Bakery writes it, IMAGE_ID and
#   IMAGE_VERSION in os-release (and /etc/rugix/system.toml when OTABAKE_TARGET is set).
# - The image's os-release and system-build-info.json are deployed next to the image, where
#   `otabake build-release --backend yocto` checks the baked version.
# - An SPDX 2.3 SBOM of the installed packages is deployed as <image>.sbom.spdx.json.
# - After the rugixb image type (meta-rugix), in do_image_rugixb, the bundle is signed when
#   OTABAKE_SIGNING_KEY is set and its hash is written to <image>.rugixb.hash. Do not also list "rugixb.hash" in
#   IMAGE_FSTYPES: that conversion would write the same file with rugix-bundler.
#
# Every variable below may be set in local.conf, the distro configuration or kas.

# The system name ("name" in system-build-info.json, IMAGE_ID in os-release) and the release
# version. As in meta-nexigon's examples, an image without IMAGE_ID or IMAGE_VERSION still
# builds: the system name falls back to MACHINE (meta-nexigon's upload-release.sh does the
# same) and the version to "dev". Release builds pin IMAGE_VERSION (`otabake prepare-release`
# prints it), and `otabake upload-release` refuses an image whose baked version is not it.
OTABAKE_SYSTEM ??= "${@d.getVar('IMAGE_ID') or d.getVar('MACHINE')}"
OTABAKE_VERSION ??= "${@d.getVar('IMAGE_VERSION') or 'dev'}"
# Release id; empty means <system>@<version>, as Rugix Bakery does.
OTABAKE_RELEASE_ID ??= ""
# efi-grub, rpi-tryboot or rpi-uboot: also write Rugix Ctrl's /etc/rugix/system.toml. Leave
# empty when another recipe (rugix-system-conf) provides it.
OTABAKE_TARGET ??= ""
# Bundle signing: a PEM key file or KMS URI, its certificate and intermediate certificates
# (space-separated). A key password is read from OTABAKE_SIGNING_PASSWORD_FILE, never from a
# variable, so that it does not end up in BitBake's task scripts and logs.
OTABAKE_SIGNING_KEY ??= ""
OTABAKE_SIGNING_CERT ??= ""
OTABAKE_SIGNING_CHAIN ??= ""
OTABAKE_SIGNING_PASSWORD_FILE ??= ""
# Write the SBOM (1) or not (0).
OTABAKE_SBOM ??= "1"

OTABAKE_STAGE = "${WORKDIR}/otabake-bake"

# otabake comes from otabake-native where the series' Go builds it, else from the build host
# (conf/layer.conf: OTABAKE_NATIVE_FROM_SOURCE, HOSTTOOLS_NONFATAL); see the anonymous python.
do_rootfs[prefuncs] += "otabake_release_check"
do_rootfs[vardeps] += "OTABAKE_SYSTEM OTABAKE_VERSION OTABAKE_RELEASE_ID OTABAKE_TARGET OTABAKE_SBOM"
do_rootfs[cleandirs] += "${OTABAKE_STAGE}"

# otabake_need fails naming how to get otabake when it is not on PATH: on series whose Go is
# older than go.mod's, the class runs the build host's otabake.
otabake_need() {
	command -v otabake >/dev/null 2>&1 ||
		bbfatal "otabake-release: otabake is not on PATH. On this series otabake-native is not built (its Go ${OTABAKE_SERIES_GO} is older than the Go ${OTABAKE_NATIVE_GO} otabake needs): install otabake on the build host (go install -tags kms github.com/otabake/otabake/cmd/otabake@<commit of meta-otabake> with Go ${OTABAKE_NATIVE_GO}) and run bitbake with it on PATH"
}

# otabake is a static Go binary, which pseudo cannot follow: files it wrote straight into
# IMAGE_ROOTFS would be unknown to pseudo and end up owned by the build user. So it bakes a
# staging copy of the files it owns, and the shell, which pseudo does follow, installs them.
otabake_bake_rootfs() {
	otabake_need
	stage="${OTABAKE_STAGE}"
	rm -rf "$stage"
	mkdir -p "$stage"
	for f in etc/os-release usr/lib/os-release etc/rugix/system-build-info.json etc/rugix/system.toml; do
		if [ -e "${IMAGE_ROOTFS}/$f" ] || [ -L "${IMAGE_ROOTFS}/$f" ]; then
			mkdir -p "$stage/$(dirname "$f")"
			cp -P "${IMAGE_ROOTFS}/$f" "$stage/$f"
		fi
	done

	release_id='${OTABAKE_RELEASE_ID}'
	target='${OTABAKE_TARGET}'
	otabake --no-progress bake --rootfs "$stage" \
		--system '${OTABAKE_SYSTEM}' --version '${OTABAKE_VERSION}' \
		${release_id:+--release-id "$release_id"} ${target:+--target "$target"} ||
		bbfatal "otabake-release: otabake bake failed for ${OTABAKE_SYSTEM} ${OTABAKE_VERSION}"

	(cd "$stage" && find . -type f) | while read -r f; do
		install -D -m 0644 "$stage/$f" "${IMAGE_ROOTFS}/${f#./}"
	done
	bbnote "otabake-release: baked ${OTABAKE_SYSTEM} ${OTABAKE_VERSION} into the rootfs"
}

# Runs while the package database is still in the rootfs: images without the
# package-management feature lose it before ROOTFS_POSTPROCESS_COMMAND.
otabake_write_sbom() {
	otabake_need
	sbom='${OTABAKE_SBOM}'
	case "$sbom" in
	0 | no | false | off) return 0 ;;
	esac
	release_id='${OTABAKE_RELEASE_ID}'
	otabake --no-progress sbom --rootfs "${IMAGE_ROOTFS}" \
		--system '${OTABAKE_SYSTEM}' --version '${OTABAKE_VERSION}' \
		${release_id:+--release-id "$release_id"} \
		--output "${IMGDEPLOYDIR}/${IMAGE_NAME}.sbom.spdx.json" ||
		bbfatal "otabake-release: otabake sbom failed for ${IMAGE_ROOTFS}"
	otabake_link "${IMAGE_NAME}.sbom.spdx.json" "${IMAGE_LINK_NAME}.sbom.spdx.json"
}

# Next to the image, so that release tooling reads IMAGE_ID and IMAGE_VERSION without
# opening the image.
otabake_deploy_release_info() {
	osr="${IMAGE_ROOTFS}/etc/os-release"
	if [ -L "$osr" ] || [ ! -e "$osr" ]; then
		osr="${IMAGE_ROOTFS}/usr/lib/os-release"
	fi
	[ -f "$osr" ] || bbfatal "otabake-release: ${IMAGE_ROOTFS} has no os-release"
	install -m 0644 "$osr" "${IMGDEPLOYDIR}/os-release"
	install -m 0644 "${IMAGE_ROOTFS}/etc/rugix/system-build-info.json" "${IMGDEPLOYDIR}/system-build-info.json"
}

# Signs the bundle when a key is configured (signing leaves the bundle hash unchanged), then
# writes the hash devices pin, without a newline, as rugix-bundler hash prints it.
otabake_finish_bundle() {
	otabake_need
	bundle="${IMGDEPLOYDIR}/${IMAGE_NAME}.rugixb"
	[ -f "$bundle" ] || bbfatal "otabake-release: $bundle was not built (is rugixb in IMAGE_FSTYPES?)"

	key='${OTABAKE_SIGNING_KEY}'
	if [ -n "$key" ]; then
		cert='${OTABAKE_SIGNING_CERT}'
		[ -n "$cert" ] || bbfatal "otabake-release: OTABAKE_SIGNING_KEY is set but OTABAKE_SIGNING_CERT is not"
		chain=""
		for c in ${OTABAKE_SIGNING_CHAIN}; do
			chain="$chain --chain $c"
		done
		password_file='${OTABAKE_SIGNING_PASSWORD_FILE}'
		if [ -n "$password_file" ]; then
			[ -r "$password_file" ] || bbfatal "otabake-release: OTABAKE_SIGNING_PASSWORD_FILE $password_file is not readable"
			# bitbake -v traces shell tasks (set -x): never trace the password.
			case $- in
			*x*) xtrace=1 && set +x ;;
			*) xtrace="" ;;
			esac
			OTABAKE_KEY_PASSWORD=$(cat "$password_file")
			export OTABAKE_KEY_PASSWORD
			if [ -n "$xtrace" ]; then set -x; fi
		fi
		# shellcheck disable=SC2086 # chain is a list of flags
		otabake --no-progress bundle sign "$bundle" --key "$key" --cert "$cert" $chain ||
			bbfatal "otabake-release: signing $bundle failed"
		unset OTABAKE_KEY_PASSWORD
		bbnote "otabake-release: signed $bundle"
	fi

	otabake --no-progress bundle hash "$bundle" --output "$bundle.hash" ||
		bbfatal "otabake-release: hashing $bundle failed"
	otabake_link "${IMAGE_NAME}.rugixb.hash" "${IMAGE_LINK_NAME}.rugixb.hash"
}

# otabake_link NAME LINK points the unversioned LINK at NAME in IMGDEPLOYDIR, as BitBake
# does for image types.
otabake_link() {
	if [ -n "$2" ] && [ "$1" != "$2" ]; then
		ln -sfn "$1" "${IMGDEPLOYDIR}/$2"
	fi
}

ROOTFS_POSTINSTALL_COMMAND += "otabake_write_sbom"
ROOTFS_POSTPROCESS_COMMAND += "otabake_bake_rootfs"
IMAGE_POSTPROCESS_COMMAND += "otabake_deploy_release_info"

# Right after meta-rugix's IMAGE_CMD:rugixb wrote the bundle, in the same task, so that the
# order holds however IMAGE_FSTYPES came to include rugixb. For images without the rugixb
# type these flags name a task that does not exist and do nothing.
do_image_rugixb[postfuncs] += "otabake_finish_bundle"
do_image_rugixb[vardeps] += "OTABAKE_SIGNING_KEY OTABAKE_SIGNING_CERT OTABAKE_SIGNING_CHAIN OTABAKE_SIGNING_PASSWORD_FILE"

# Checked when the image task runs, not at parse time: `bitbake -p` and every other image of
# the build parse whatever these variables hold.
python otabake_release_check() {
    for name in ("OTABAKE_SYSTEM", "OTABAKE_VERSION"):
        if not (d.getVar(name) or "").strip():
            bb.fatal("otabake-release: %s is empty for %s" % (name, d.getVar("PN")))
    if not (d.getVar("IMAGE_VERSION") or "").strip() and d.getVar("OTABAKE_VERSION") == "dev":
        bb.note("otabake-release: IMAGE_VERSION is not set, %s is baked as version dev (release builds set IMAGE_VERSION to the version otabake prepare-release pins)" % d.getVar("PN"))
    # The shell functions single-quote these values.
    for name in ("OTABAKE_SYSTEM", "OTABAKE_VERSION", "OTABAKE_RELEASE_ID", "OTABAKE_TARGET", "OTABAKE_SIGNING_KEY", "OTABAKE_SIGNING_CERT", "OTABAKE_SIGNING_PASSWORD_FILE"):
        value = d.getVar(name) or ""
        if "'" in value or "\n" in value:
            bb.fatal("otabake-release: %s must not contain quotes or newlines: %r" % (name, value))
    if d.getVar("OTABAKE_SIGNING_KEY") and not d.getVar("OTABAKE_SIGNING_CERT"):
        bb.fatal("otabake-release: OTABAKE_SIGNING_KEY is set but OTABAKE_SIGNING_CERT is not")
}
do_image_rugixb[prefuncs] += "otabake_release_check"

python () {
    if d.getVar("OTABAKE_NATIVE_FROM_SOURCE") == "1":
        for task in ("do_rootfs", "do_image_rugixb"):
            d.appendVarFlag(task, "depends", " otabake-native:do_populate_sysroot")
}
