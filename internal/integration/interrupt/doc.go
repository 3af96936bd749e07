// Package interrupt tests that the real otabake binary stops promptly on SIGTERM during the
// long operations of a release (build-release, bundle verify, bundle extract, upload-release)
// and leaves nothing partial behind: no temporary files, no half-written artifact or blob, and
// an unchanged .release-env. The package has no non-test code; this file only documents it.
package interrupt
