// Package bundle reads, writes, verifies and signs Rugix update bundles (.rugixb), the files a
// device running rugix-ctrl downloads and installs. The format is specified byte by byte in
// specs/rugix-bundle.md; this package follows rugix-bundler so that the same inputs give the
// same bundle hash, and byte-identical bundles when compression is off.
//
// A bundle is one STLV stream (package stlv): the header, which lists every payload with the
// hash of its payload header and of its decoded file, optional CMS signatures, then the
// payloads, each a payload header (the block encoding with every block's hash) and the stored
// data. The bundle hash is the hash of the header's bytes and authenticates everything else
// transitively, so signing only signs that hash.
//
// Writing: Create (from a Spec built in Go) and CreateFromDir (from a rugix-bundler directory
// with rugix-bundle.toml and payloads/). Reading: Open or NewReader index a bundle by reading
// only its headers; Verify streams every block; ExtractPayload decodes a payload. HashFile reads
// only the header. Sign and AddSignature insert signatures without changing the hash.
// ComputeBlockIndex and the BlockIndex type produce the on-device index files used for delta
// updates, and Delta estimates what a device holding such indices would download (dynamic
// deltas). CreateDeltaFile writes static delta bundles as rugix-bundler delta does: xdelta3
// patches of slot payloads against an old bundle's (delta.go); ExtractFile with a Source applies
// such a patch.
//
// The otabake bundle commands each call one function of this package that works on files by
// path and returns the command's result (files.go, inspect.go): InspectFile, VerifyFile,
// ExtractFile, DeltaFile, CreateDeltaFile, HashFileBlocks, WriteBlockIndexFile, WriteHashFile,
// WriteSignedMetadata, SignFile and AddSignatureFile. Bundle.CheckHash is the one check of a
// header against an expected bundle hash, used by Verify and ExtractFile alike.
//
// Compression is xz per stored block. With cgo the blocks are made by liblzma's easy encoder
// with a CRC64 check, the encoder rugix-bundler uses through Rust's xz2, so compressed blocks
// are byte-identical to Rugix's too; building needs liblzma-dev. Without cgo a pure-Go encoder
// (github.com/ulikunitz/xz) writes valid but larger, slower-made streams.
package bundle
