// Package project loads the configuration of an otabake project: otabake.toml, the .env file
// the release scripts source, the process environment, .nexigon-cli.toml, rugix-bakery.toml
// systems and command-line overrides, merged in one documented precedence order
// (flags > environment > .env > nexigon-cli configuration > otabake.toml > defaults) and validated
// once, so that a typo is an error naming the file and line instead of a device that never
// updates. Every resolved value remembers where it came from (see Config.Settings).
//
// The otabake.toml reference. Every key is optional; unknown keys and wrong types are errors
// naming the file and line.
//
//	[hub]
//	url = "https://eu.nexigon.cloud"  # "" or absent: the embedded local Hub in .otabake/hub
//	token_env = "NEXIGON_TOKEN"       # the variable the token is read from; tokens never go here
//	repository = "my-repo"
//	package = "my-package"
//	default_tag = "stable"            # the floating tag devices track
//
//	[release]
//	build_tag = "build-{time}-{commit}"       # pattern; BUILD_TAG pins the value instead
//	floating_tag = "latest-build-{branch}"    # pattern; FLOATING_TAG pins the value instead
//	source_date_epoch = 1700000000            # SOURCE_DATE_EPOCH wins
//
//	[systems.NAME]
//	target = "efi-grub"          # efi-grub | rpi-tryboot | rpi-uboot
//	architecture = "amd64"       # amd64 | arm64 | armhf
//	backend = "native"           # native | bakery | yocto; default: native with rootfs,
//	                             # yocto with yocto.machine, bakery for rugix-bakery.toml systems
//	engine = "rugix"             # rugix | rauc: the devices' update engine; default rugix.
//	                             # rauc: build-release writes system.raucb instead of system.rugixb,
//	                             # the image gets RAUC's layout, GRUB flow, system.conf and keyring
//	                             # (native: target efi-grub and signing are required; README "RAUC systems")
//	rauc = { compatible = "acme-gadget" }  # engine rauc: the bundle's and /etc/rauc/system.conf's
//	                             # compatible; default: the system name
//	rootfs = "rootfs/"           # native: a directory or tarball, relative to the project
//	boot = "bootfiles/"          # native: boot-partition files (Bakery's roots/boot), e.g. grub.cfg
//	sizes = { config = "256M", boot = "256M", system = "2G", total = "4G" }  # Bakery size syntax
//	bundle = { chunker = "casync-64", hash = "sha512-256", deduplicate = true, compression = "xz", xz_preset = 6 }
//	signing = { key = "keys/k.pem", cert = "keys/c.pem", chain = ["keys/ca.pem"], password_env = "KEY_PASSWORD" }
//	signing = { key = "keys/k.pem", cert = "keys/c.pem", roots = ["keys/ca.pem"] }  # roots baked into
//	                             # the image (/etc/rugix/ctrl.toml); default: the chain's self-signed root
//	signing = { insecure_unsigned = true }  # build-release builds a system devices cannot verify (warns)
//	use_bundle_hash = true       # devices pin the Hub's bundle hash (rugix-ctrl --bundle-hash)
//	yocto = { machine = "qemux86-64", image = "core-image-minimal", deploy_dir = "build/tmp/deploy/images/qemux86-64", image_id = "core-image-minimal" }
//	grub = { efi_binary = "grubx64.efi" }   # efi-grub only: a prebuilt GRUB EFI binary
//	grub = { efi_binary = "x.efi", prefer_mkimage = true }  # grub-mkimage when installed, else x.efi
//
// Environment and .env names: NEXIGON_HUB_URL, NEXIGON_TOKEN (or [hub] token_env),
// NEXIGON_REPOSITORY and NEXIGON_PACKAGE (with the Yocto names NEXIGON_OTA_REPOSITORY and
// NEXIGON_OTA_PACKAGE as fallbacks), BUILD_TAG, FLOATING_TAG and SOURCE_DATE_EPOCH.
// nexigon-cli's configuration (--nexigon-cli-config, else ./.nexigon-cli.toml, else
// ~/.nexigon/cli.toml; the first found) contributes hub-url below .env. The token has
// nexigon-cli's order instead (see resolveToken): --hub-token, OTABAKE_HUB_TOKEN, the
// nexigon-cli configuration's token, then NEXIGON_TOKEN only when it is a user or organization
// token; a deployment token is never used.
package project
