# otabake on the build host, for the otabake-release image class: baking the release
# identity into IMAGE_ROOTFS, bundle hashes, signatures and SBOMs.
require otabake.inc

SUMMARY = "otabake: bake, hash, sign and describe Rugix update bundles on the build host"

GO_INSTALL = "${GO_IMPORT}/cmd/otabake"

inherit native

do_install() {
	install -d ${D}${bindir}
	install -m 0755 ${B}/${GO_BUILD_BINDIR}/otabake ${D}${bindir}/otabake
}
