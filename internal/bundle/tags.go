package bundle

import "github.com/otabake/otabake/internal/bundle/stlv"

// Tags of the bundle format (specs/rugix-bundle.md §1.2). Only the two signature tags are
// optional; a reader must reject any other unknown tag.
const (
	TagBundle                     stlv.Tag = 0x6b50741c
	TagBundleHeader               stlv.Tag = 0x49af6433
	TagBundleHeaderManifest       stlv.Tag = 0x161aa242
	TagBundleHeaderIsIncremental  stlv.Tag = 0x20f3d16b
	TagBundleHeaderHashAlgorithm  stlv.Tag = 0x5cb80dd6
	TagBundleHeaderPayloadIndex   stlv.Tag = 0x13737992
	TagPayloadEntryTypeSlot       stlv.Tag = 0x45ca7e7e
	TagPayloadTypeSlotSlot        stlv.Tag = 0x1b231de7
	TagPayloadEntryTypeExecute    stlv.Tag = 0x3adf32f5
	TagPayloadTypeExecuteHandler  stlv.Tag = 0x4b3836a2
	TagPayloadEntryHeaderHash     stlv.Tag = 0x5f6a60b1
	TagPayloadEntryFileHash       stlv.Tag = 0x0c8d1fd0
	TagPayloadEntryDeltaEncoding  stlv.Tag = 0x272cdf9f
	TagDeltaEncodingFormat        stlv.Tag = 0x3b8aeb9a
	TagDeltaEncodingInput         stlv.Tag = 0x4e08b9f1
	TagDeltaEncodingInputHash     stlv.Tag = 0x3a0d1307
	TagDeltaEncodingOriginalHash  stlv.Tag = 0x64760e1c
	TagSignatures                 stlv.Tag = 0xa83936f1
	TagSignaturesCMSSignature     stlv.Tag = 0x9795498f
	TagPayloads                   stlv.Tag = 0x01f38fba
	TagPayload                    stlv.Tag = 0x490cafaf
	TagPayloadHeader              stlv.Tag = 0x0959ca75
	TagPayloadHeaderBlockEncoding stlv.Tag = 0x40ed9314
	TagBlockEncodingChunker       stlv.Tag = 0x55872cf8
	TagBlockEncodingHashAlgorithm stlv.Tag = 0x7f1f994b
	TagBlockEncodingDeduplicated  stlv.Tag = 0x05902926
	TagBlockEncodingCompression   stlv.Tag = 0x783217c6
	TagBlockEncodingBlockHashes   stlv.Tag = 0x76b3d7a0
	TagBlockEncodingBlockSizes    stlv.Tag = 0x27e5d3f2
	TagPayloadData                stlv.Tag = 0x42fd641a
	TagBlockIndex                 stlv.Tag = 0x1ae50c8e
	TagBlockIndexChunker          stlv.Tag = 0x5cdf21b0
	TagBlockIndexHashAlgorithm    stlv.Tag = 0x1d92a080
	TagBlockIndexBlockHashes      stlv.Tag = 0x55e547d8
	TagBlockIndexBlockSizes       stlv.Tag = 0x4668c5ba
	TagSignedMetadata             stlv.Tag = 0x61d0871e
	TagSignedMetadataHeaderHash   stlv.Tag = 0x1f992dfc
)

// Tags of the app payload types of Rugix Ctrl 1.1 (app bundles). The structures are those of
// rugix/rugix crates/libs/rugix-bundle/src/format/mod.rs (AppFilePayloadType,
// AppArchivePayloadType); the values are those of crates/libs/rugix-bundle/src/format/tags.rs,
// read from the 1.1-era copy Interested-Deving-1896/rugix@26e4a26 (rugix/rugix's own tags.rs
// is not in any index read). All are required tags, so a 0.8 reader rejects app bundles.
const (
	TagPayloadEntryTypeAppFile    stlv.Tag = 0x214c6e2b // PAYLOAD_ENTRY_TYPE_APP_FILE
	TagPayloadTypeAppFileApp      stlv.Tag = 0x6b42b4a2 // PAYLOAD_TYPE_APP_FILE_APP
	TagPayloadTypeAppFilePath     stlv.Tag = 0x2c4e33b4 // PAYLOAD_TYPE_APP_FILE_PATH
	TagPayloadEntryTypeAppArchive stlv.Tag = 0x40a88630 // PAYLOAD_ENTRY_TYPE_APP_ARCHIVE
	TagPayloadTypeAppArchiveApp   stlv.Tag = 0x3fa221ce // PAYLOAD_TYPE_APP_ARCHIVE_APP
)

// Not known: the values of BUNDLE_HEADER_COMPONENTS, BUNDLE_COMPONENTS_FILE,
// BUNDLE_COMPONENT_FILE_PATH, BUNDLE_COMPONENT_FILE_DATA (the header's component metadata,
// rugix/rugix crates/libs/rugix-bundle/src/format/mod.rs, BundleHeader.components, Rugix main
// branch) and PAYLOAD_TYPE_APP_FILE_MODE (AppFilePayloadType.mode, same file). No source
// read publishes them; components.go recognises those atoms by where upstream's encoder
// writes them and by their shape, and reports the tags it found.

// Size limits of rugix-ctrl's reader (§1.8). A bundle we write must stay below them, and our
// reader enforces them so that hostile lengths cannot exhaust memory.
const (
	HeaderSizeLimit        = 128 << 10
	PayloadHeaderSizeLimit = 32 << 20
	SignaturesSizeLimit    = 32 << 20
)

// Magic is how every bundle starts: the start of BUNDLE followed by the start of BUNDLE_HEADER.
// rugix-ctrl 0.8 sniffs it to tell bundles from raw images.
var Magic = []byte{0x6b, 0x50, 0x74, 0x1c, 0x40, 0x49, 0xaf, 0x64, 0x33, 0x40}
