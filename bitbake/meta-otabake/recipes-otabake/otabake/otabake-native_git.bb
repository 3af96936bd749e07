# otabake on the build host, for the otabake-release image class: baking the release
# identity into IMAGE_ROOTFS, bundle hashes, signatures and SBOMs.
#
# go.mod needs Go 1.26 (OTABAKE_NATIVE_GO), which oe-core ships from wrynose on. On older
# series (scarthgap: Go 1.22.12) this recipe is skipped with the reason below and the class
# runs the build host's otabake instead (conf/layer.conf, OTABAKE_NATIVE_FROM_SOURCE).
require otabake.inc

SUMMARY = "otabake: bake, hash, sign and describe Rugix update bundles on the build host"

# What the binary links (go list -tags=urfave_cli_no_docs,kms -deps ./cmd/otabake, and each
# module's license file): otabake and many modules under MIT; the AWS, Google Cloud, sigstore,
# OpenTelemetry and gRPC modules under Apache-2.0; golang.org/x/*, google/uuid, ulikunitz/xz,
# klauspost/compress and the Go standard library under BSD-3-Clause; pkg/browser under
# BSD-2-Clause; coder/websocket under ISC; hashicorp/* (the Vault KMS signer) under MPL-2.0.
LICENSE = "MIT & Apache-2.0 & BSD-2-Clause & BSD-3-Clause & ISC & MPL-2.0"
LIC_FILES_CHKSUM = "file://src/${GO_IMPORT}/LICENSE;md5=69d53d3332be57a153434421d500ff25 \
                    file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10 \
                    file://${COMMON_LICENSE_DIR}/BSD-2-Clause;md5=cb641bc04cda31daea161b1bc15da69f \
                    file://${COMMON_LICENSE_DIR}/BSD-3-Clause;md5=550794465ba0ec5312d6919e203a55f9 \
                    file://${COMMON_LICENSE_DIR}/ISC;md5=f3b90e78ea0cffb20bf5cca7947a896d \
                    file://${COMMON_LICENSE_DIR}/MPL-2.0;md5=815ca599c9df247a0c7f619bab123dad"

GO_INSTALL = "${GO_IMPORT}/cmd/otabake"
# As otabake is released (justfile): with the cloud KMS signers (kms, for an
# OTABAKE_SIGNING_KEY that is a KMS URI), and urfave/cli without its documentation generators.
OTABAKE_GOFLAGS:append = " -tags=urfave_cli_no_docs,kms"
OTABAKE_LDFLAGS = "-s -w -buildid= -X ${GO_IMPORT}/internal/cli.Version=${PV}"

inherit native

python () {
    if d.getVar('OTABAKE_NATIVE_FROM_SOURCE') != '1':
        raise bb.parse.SkipRecipe("otabake needs Go %s and this series' Go is %s: install otabake on the build host instead (with Go %s: go install -tags kms github.com/otabake/otabake/cmd/otabake@<commit of this layer>, then run bitbake with it on PATH); the otabake-release class uses it" % (d.getVar('OTABAKE_NATIVE_GO'), d.getVar('OTABAKE_SERIES_GO'), d.getVar('OTABAKE_NATIVE_GO')))
}

do_install() {
	install -d ${D}${bindir}
	install -m 0755 ${B}/${GO_BUILD_BINDIR}/otabake ${D}${bindir}/otabake
}
