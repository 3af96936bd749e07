// Package release is the release pipeline of otabake: the four steps users run, and Run,
// which chains them for `otabake release`.
//
//   - NewIdentity and Prepare (prepare-release) make the release's identity (version
//     build-<UTC time>-<short commit>, its time, the floating tag) from the git work tree,
//     create or reuse the Hub version with {"imageVersion": VERSION}, and pin the identity in
//     .release-env (envfile.go) so that every later step, in any process, uses the same one.
//   - Build (build-release) produces build/<system>/ (SystemDir names its files) with the
//     system's backend: native (native.go: stage and bake the rootfs, SBOM, partition and disk
//     images, Rugix bundle, signature, hash, bmap, compression), bakery (./run-bakery, then the
//     files Bakery does not write) or yocto (collect a BitBake deploy directory). Every time
//     written into an artifact is the build's one time (BuildTimeOf), so two builds of a pinned
//     release are byte-identical.
//   - Upload (upload-release) checks that the baked version is the pinned one and attaches every
//     file of build/<system>/ to the Hub version, content-addressed and idempotently, with the
//     typed metadata of hub (bundle hash, SBOM relations, version).
//   - Promote (promote-release) moves a floating tag to the pinned version once it holds every
//     system (CheckComplete).
//
// The Hub is hub.Hub: a Nexigon Hub, or the embedded local Hub under .otabake/hub when none is
// configured (OpenHub). Domain code here never prints: progress goes through callbacks and
// results are returned for internal/cli to print.
package release
