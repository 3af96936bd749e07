package bundle

// The structures of the format, in Rugix's field order (§1.5): Marshal writes fields in
// declaration order, so this order is part of the byte-exact contract with rugix-bundler.

// Header is the BUNDLE_HEADER segment. Its bytes are what the bundle hash covers.
type Header struct {
	// Manifest is the bundler's manifest as compact JSON; rugix-ctrl ignores it, but
	// rugix-bundler unpack needs it.
	Manifest      *string `stlv:"0x161aa242"`
	IsIncremental bool    `stlv:"0x20f3d16b"`
	HashAlgorithm string  `stlv:"0x5cb80dd6"`
	// Components is the header's component metadata (Rugix main branch, written between the
	// hash algorithm and the payload index). Its tags are not in any published source, so the
	// reader recognises it by position and shape (components.go) and the codec never sees it;
	// otabake does not write it.
	Components *Components
	Payloads   []PayloadEntry `stlv:"0x13737992"`
}

// PayloadEntry describes one payload in the header: where it goes and the hashes that tie its
// payload header and its decoded bytes to the bundle hash.
// The delivery types are, in upstream order (rugix/rugix
// crates/libs/rugix-bundle/src/format/mod.rs, PayloadEntry): slot, execute, and the Rugix
// Ctrl 1.1 app types app-file and app-archive. Exactly one is set.
type PayloadEntry struct {
	TypeSlot       *SlotType       `stlv:"0x45ca7e7e"`
	TypeExecute    *ExecuteType    `stlv:"0x3adf32f5"`
	TypeAppFile    *AppFileType    `stlv:"0x214c6e2b"` // PAYLOAD_ENTRY_TYPE_APP_FILE
	TypeAppArchive *AppArchiveType `stlv:"0x40a88630"` // PAYLOAD_ENTRY_TYPE_APP_ARCHIVE
	HeaderHash     []byte          `stlv:"0x5f6a60b1"`
	FileHash       []byte          `stlv:"0x0c8d1fd0"`
	DeltaEncoding  *DeltaEncoding  `stlv:"0x272cdf9f"`
}

// SlotType delivers a payload into a slot (or a boot-group alias such as "system").
type SlotType struct {
	Slot string `stlv:"0x1b231de7"`
}

// ExecuteType pipes a payload into a handler program; Handler is its argv.
type ExecuteType struct {
	Handler []string `stlv:"0x4b3836a2"`
}

// AppFileType (Rugix Ctrl 1.1, AppFilePayloadType in rugix/rugix
// crates/libs/rugix-bundle/src/format/mod.rs) writes the payload as one file of an app's new
// generation directory.
type AppFileType struct {
	App  string `stlv:"0x6b42b4a2"` // PAYLOAD_TYPE_APP_FILE_APP
	Path string `stlv:"0x2c4e33b4"` // PAYLOAD_TYPE_APP_FILE_PATH, relative to the generation
	// Mode is the file's Unix mode (PAYLOAD_TYPE_APP_FILE_MODE, Option<u32>). That tag's value
	// is not in any published source; the reader recognises it by position and shape
	// (components.go), so the codec never sees this field.
	Mode *uint32 `json:"mode,omitempty"`
}

// AppArchiveType (Rugix Ctrl 1.1, AppArchivePayloadType, same file) extracts the payload, a
// tar archive, into an app's new generation directory.
type AppArchiveType struct {
	App string `stlv:"0x3fa221ce"` // PAYLOAD_TYPE_APP_ARCHIVE_APP
}

// DeltaEncoding marks a static (xdelta) payload: the device patches a slot whose stored hash
// equals one of the input hashes and checks the result against OriginalHash.
type DeltaEncoding struct {
	Format       string               `stlv:"0x3b8aeb9a"`
	Inputs       []DeltaEncodingInput `stlv:"0x4e08b9f1"`
	OriginalHash string               `stlv:"0x64760e1c"`
}

// DeltaEncodingInput lists the acceptable hashes (digest text) of one delta input.
type DeltaEncodingInput struct {
	Hashes []string `stlv:"0x3a0d1307"`
}

// PayloadHeader is the PAYLOAD_HEADER segment in front of each payload's data.
type PayloadHeader struct {
	BlockEncoding *BlockEncodingHeader `stlv:"0x40ed9314"`
}

// BlockEncodingHeader is how a payload's data is split into blocks and stored. BlockHashes and
// BlockSizes are xz-compressed when Compression is set.
type BlockEncodingHeader struct {
	Chunker       string  `stlv:"0x55872cf8"`
	HashAlgorithm string  `stlv:"0x7f1f994b"`
	Deduplicated  bool    `stlv:"0x05902926"`
	Compression   *string `stlv:"0x783217c6"`
	BlockHashes   []byte  `stlv:"0x76b3d7a0"`
	BlockSizes    *[]byte `stlv:"0x27e5d3f2"` // absent for a fixed chunker without compression
}

// Signatures is the optional SIGNATURES segment between the header and the payloads.
type Signatures struct {
	CMS [][]byte `stlv:"0x9795498f"`
}

// SignedMetadata is the content every CMS signature signs: the bundle hash as digest text.
type SignedMetadata struct {
	HeaderHash string `stlv:"0x1f992dfc"`
}

// blockIndexWire is the on-device block index file (§3.6).
type blockIndexWire struct {
	Chunker       string `stlv:"0x5cdf21b0"`
	HashAlgorithm string `stlv:"0x1d92a080"`
	BlockHashes   []byte `stlv:"0x55e547d8"`
	BlockSizes    []byte `stlv:"0x4668c5ba"`
}
