// Package hub defines the Nexigon Hub operations otabake and otabake-agent use, as one Go
// interface with three implementations: nexigon/ (the HTTP actions API of a real Hub, also used
// against `otabake hub serve`), local/ (the embedded store under .otabake/hub/) and the server/
// that exposes a local store over the same HTTP actions API.
//
// The request and response types carry the JSON names of the Hub's wire format (camelCase,
// optional fields omitted), so that the client and the server share one definition of every
// shape. Domain "not found" is a boolean result, not an error; errors the Hub reports are
// *ActionError.
package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Hub is everything the release pipeline and the device agent need from a Hub.
type Hub interface {
	Repositories
	Devices
}

// Repositories are the repository, package, version and asset actions (spec §2).
type Repositories interface {
	// ResolveRepository maps a repository name (slug) or repo_ ID to its ID.
	ResolveRepository(ctx context.Context, repository string) (repositoryID string, found bool, err error)
	// ResolvePackage maps <repository>/<package> (names or IDs) to IDs.
	ResolvePackage(ctx context.Context, repository, pkg string) (PackageRef, bool, error)
	// ResolveVersion maps <repository>/<package>/<tag> (tag or pkg_v_ ID) to IDs.
	ResolveVersion(ctx context.Context, p VersionPath) (VersionRef, bool, error)
	// ResolveVersionAsset maps <repository>/<package>/<tag>/<filename> to IDs.
	ResolveVersionAsset(ctx context.Context, p VersionPath, filename string) (VersionAssetRef, bool, error)
	// CreatePackage creates a package; existed reports NameAlreadyExists (packageID is then empty).
	CreatePackage(ctx context.Context, repositoryID, name string) (packageID string, existed bool, err error)
	// CreateVersion creates a version with tags and metadata. Tag conflicts are ActionErrors.
	CreateVersion(ctx context.Context, req CreateVersionRequest) (versionID string, err error)
	// TagVersion adds tags to a version with the semantics of spec §5.
	TagVersion(ctx context.Context, versionID string, tags []TagItem) error
	// UntagVersion removes tags from a version.
	UntagVersion(ctx context.Context, versionID string, tags []string) error
	// GetVersionDetails returns a version with its tags, metadata and assets.
	GetVersionDetails(ctx context.Context, versionID string) (*VersionDetails, error)
	// QueryVersions lists the versions of a package.
	QueryVersions(ctx context.Context, packageID string) ([]VersionSummary, error)
	// SetVersionMetadata replaces the metadata of a version.
	SetVersionMetadata(ctx context.Context, versionID string, metadata json.RawMessage) error
	// CreateAsset registers a blob by size and digest; existed reports AssetAlreadyExists.
	CreateAsset(ctx context.Context, repositoryID string, size int64, digest Digest) (assetID string, existed bool, err error)
	// GetAssetDetails returns the size, digest and status of an asset.
	GetAssetDetails(ctx context.Context, assetID string) (*AssetDetails, error)
	// IssueAssetUploadURL returns where to PUT the bytes of a dangling asset.
	IssueAssetUploadURL(ctx context.Context, assetID string) (*UploadURL, error)
	// FinalizeAssetUpload verifies an uploaded object and makes the asset Available. Idempotent.
	FinalizeAssetUpload(ctx context.Context, assetID string) error
	// AddVersionAsset attaches an asset under filename. added is false for FilenameAlreadyExists.
	AddVersionAsset(ctx context.Context, versionID, assetID, filename string, metadata json.RawMessage) (added bool, err error)
	// RemoveVersionAsset detaches filename from a version.
	RemoveVersionAsset(ctx context.Context, versionID, filename string) error
	// SetVersionAssetMetadata replaces the metadata of an attached asset.
	SetVersionAssetMetadata(ctx context.Context, versionID, filename string, metadata json.RawMessage) error
	// IssueAssetDownloadURL returns a URL that serves the asset's bytes (with Range support).
	IssueAssetDownloadURL(ctx context.Context, assetID, filename string) (string, error)
}

// Devices are the device actions the agent uses (spec §3): identity, properties and events.
type Devices interface {
	// GetActor returns who the token (or socket) acts as.
	GetActor(ctx context.Context) (Actor, error)
	// GetProperty reads a device property; found is false for NotFound.
	GetProperty(ctx context.Context, deviceID, name string) (Property, bool, error)
	// SetProperty writes a device property.
	SetProperty(ctx context.Context, deviceID, name string, value json.RawMessage) error
	// RemoveProperty deletes a device property; removed is false when it did not exist.
	RemoveProperty(ctx context.Context, deviceID, name string) (removed bool, err error)
	// PublishEvents records device events.
	PublishEvents(ctx context.Context, deviceID string, events []Event) error
	// QueryEvents returns the newest events of a device, oldest first, at most limit (1..1000).
	QueryEvents(ctx context.Context, deviceID string, limit int) ([]Event, error)
}

// BlobStore is implemented by Hubs that can take and give asset bytes directly, without an
// HTTP round trip (the in-process local store). Upload and download helpers use it when present.
type BlobStore interface {
	// PutBlob stores the bytes of a dangling asset, checking size and digest, and finalizes it.
	PutBlob(ctx context.Context, assetID string, r io.Reader, size int64) error
	// PutBlobFile stores a file's bytes for an asset, possibly by cloning it; the caller has
	// already hashed the file.
	PutBlobFile(ctx context.Context, assetID, path string) error
	// OpenBlob opens the bytes of an Available asset.
	OpenBlob(ctx context.Context, assetID string) (io.ReadSeekCloser, int64, error)
}

// VersionPath is <repository>/<package>/<tag>, each a name or an ID.
type VersionPath struct {
	Repository string `json:"repository"`
	Package    string `json:"package"`
	Tag        string `json:"tag"`
}

// String returns the path in its slash form.
func (p VersionPath) String() string { return p.Repository + "/" + p.Package + "/" + p.Tag }

// ParseVersionPath parses "<repository>/<package>/<tag>".
func ParseVersionPath(s string) (VersionPath, error) {
	var parts [3]string
	n := 0
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '/' {
			if n == 3 {
				return VersionPath{}, fmt.Errorf("version path %q: want <repository>/<package>/<tag>", s)
			}
			parts[n] = s[start:i]
			n++
			start = i + 1
		}
	}
	if n != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return VersionPath{}, fmt.Errorf("version path %q: want <repository>/<package>/<tag>", s)
	}
	return VersionPath{Repository: parts[0], Package: parts[1], Tag: parts[2]}, nil
}

// PackageRef is the result of resolving a package path.
type PackageRef struct {
	RepositoryID string `json:"repositoryId"`
	PackageID    string `json:"packageId"`
}

// VersionRef is the result of resolving a version path.
type VersionRef struct {
	RepositoryID string `json:"repositoryId"`
	PackageID    string `json:"packageId"`
	VersionID    string `json:"versionId"`
}

// VersionAssetRef is the result of resolving an asset path.
type VersionAssetRef struct {
	RepositoryID string `json:"repositoryId"`
	PackageID    string `json:"packageId"`
	VersionID    string `json:"versionId"`
	AssetID      string `json:"assetId"`
}

// TagItem is AddTagItem: a tag to add, whether it is locked, and whether it may move from
// another version. The Hub defaults Reassign to true when absent; otabake always sends both.
type TagItem struct {
	Tag      string `json:"tag"`
	Locked   bool   `json:"locked"`
	Reassign bool   `json:"reassign"`
}

// CreateVersionRequest is repositories_CreateVersion's input.
type CreateVersionRequest struct {
	PackageID string          `json:"packageId"`
	Name      string          `json:"name,omitempty"`
	Tags      []TagItem       `json:"tags,omitempty"`
	Metadata  json.RawMessage `json:"metadata,omitempty"`
}

// VersionTag is a tag as listed on a version.
type VersionTag struct {
	Tag    string `json:"tag"`
	Locked bool   `json:"locked"`
}

// VersionAsset is an asset attached to a version.
type VersionAsset struct {
	Filename string          `json:"filename"`
	AssetID  string          `json:"assetId"`
	Size     int64           `json:"size"`
	Digest   Digest          `json:"digest"`
	Status   AssetStatus     `json:"status"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
}

// VersionDetails is repositories_GetVersionDetails' output.
type VersionDetails struct {
	VersionID    string          `json:"versionId"`
	RepositoryID string          `json:"repositoryId"`
	PackageID    string          `json:"packageId"`
	Name         string          `json:"name,omitempty"`
	Assets       []VersionAsset  `json:"assets"`
	Tags         []VersionTag    `json:"tags"`
	Metadata     json.RawMessage `json:"metadata,omitempty"`
}

// Asset returns the attached asset with filename, if any.
func (d *VersionDetails) Asset(filename string) (VersionAsset, bool) {
	for _, a := range d.Assets {
		if a.Filename == filename {
			return a, true
		}
	}
	return VersionAsset{}, false
}

// VersionSummary is one entry of repositories_QueryPackageVersions.
type VersionSummary struct {
	VersionID string       `json:"versionId"`
	Name      string       `json:"name,omitempty"`
	CreatedAt time.Time    `json:"createdAt"`
	Tags      []VersionTag `json:"tags"`
}

// AssetStatus is the lifecycle state of an asset.
type AssetStatus string

// Asset states (spec §6).
const (
	AssetDangling  AssetStatus = "Dangling"
	AssetAvailable AssetStatus = "Available"
	AssetDeleting  AssetStatus = "Deleting"
)

// AssetDetails is repositories_GetAssetDetails' output.
type AssetDetails struct {
	AssetID        string      `json:"assetId"`
	Size           int64       `json:"size"`
	Digest         Digest      `json:"digest"`
	Status         AssetStatus `json:"status"`
	ReferenceCount int         `json:"referenceCount"`
}

// UploadURL is repositories_IssueAssetUploadUrl's output. New clients PUT to VerifiedURL with
// every header in Headers and then finalize; URL is the legacy unverified fallback.
type UploadURL struct {
	URL         string            `json:"url"`
	VerifiedURL string            `json:"verifiedUrl,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"`
}

// Actor is actor_GetActor's inner actor: Kind is Device, UserToken or OrganizationApiToken.
type Actor struct {
	Kind           string `json:"actor"`
	DeviceID       string `json:"deviceId,omitempty"`
	UserID         string `json:"userId,omitempty"`
	OrganizationID string `json:"organizationId,omitempty"`
	TokenID        string `json:"tokenId,omitempty"`
}

// Property is a device property as devices_GetProperty returns it.
type Property struct {
	Name        string          `json:"name"`
	Value       json.RawMessage `json:"value"`
	Protected   bool            `json:"protected"`
	Version     uint64          `json:"version"`
	LastUpdated time.Time       `json:"lastUpdated"`
}

// Severity is a device event severity (Trace, Debug, Info, Warning, Error, Critical).
type Severity string

// Event severities.
const (
	SeverityTrace    Severity = "Trace"
	SeverityDebug    Severity = "Debug"
	SeverityInfo     Severity = "Info"
	SeverityWarning  Severity = "Warning"
	SeverityError    Severity = "Error"
	SeverityCritical Severity = "Critical"
)

// Event is a DeviceEvent.
type Event struct {
	EventID    string                     `json:"eventId"`
	Category   string                     `json:"category,omitempty"`
	Severity   Severity                   `json:"severity"`
	Body       json.RawMessage            `json:"body"`
	Attributes map[string]json.RawMessage `json:"attributes"`
	EmittedAt  time.Time                  `json:"emittedAt"`
	ReceivedAt *time.Time                 `json:"receivedAt,omitempty"`
}

// ErrorKind is the kind of an ActionError.
type ErrorKind string

// ActionError kinds.
const (
	KindInvalid     ErrorKind = "Invalid"
	KindForbidden   ErrorKind = "Forbidden"
	KindInternal    ErrorKind = "Internal"
	KindRateLimited ErrorKind = "RateLimited"
)

// ActionError is an error the Hub returned for an action. Action and Status are filled in by
// clients (they are not part of the wire body).
type ActionError struct {
	Kind    ErrorKind `json:"kind"`
	Message string    `json:"message"`
	Action  string    `json:"-"`
	Status  int       `json:"-"`
}

func (e *ActionError) Error() string {
	if e.Action != "" {
		return fmt.Sprintf("%s: %s: %s", e.Action, e.Kind, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Kind, e.Message)
}

// Errorf returns an *ActionError of kind.
func Errorf(kind ErrorKind, format string, args ...any) *ActionError {
	return &ActionError{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// IsKind reports whether err is an *ActionError of kind.
func IsKind(err error, kind ErrorKind) bool {
	var ae *ActionError
	return errors.As(err, &ae) && ae.Kind == kind
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]*$`)

// ValidName checks a repository, package, tag or property name: 1..max characters of
// [a-zA-Z0-9][a-zA-Z0-9._-]*. It returns an Invalid ActionError naming what was checked.
// The rule is the Hub's: `#[validate({ 1 <= _.size <= 128 })]` and
// `#[validate({ matches(_, "^[a-zA-Z0-9][a-zA-Z0-9._-]*$") })]` on repository, package and
// tag fields (AddTagItem.tag, code "format:tag") in nexigon/nexigon
// crates/libs/nexigon-api/schemas/repositories.sidex. It admits no control character, no '/'
// and no name starting with '.', so no "..".
func ValidName(what, s string, max int) error {
	if len(s) < 1 || len(s) > max || !nameRE.MatchString(s) {
		return Errorf(KindInvalid, "invalid %s %q: want 1..%d characters of [a-zA-Z0-9._-], starting with a letter or digit", what, s, max)
	}
	return nil
}

// ValidFilename checks an asset filename. The Hub's own rule is only the length:
// `#[validate({ 1 <= _.size <= 256 })]` on every filename field of
// nexigon/nexigon crates/libs/nexigon-api/schemas/repositories.sidex (AddPackageVersionAsset,
// AddPackageAsset, RemovePackageAsset, ...). Slashes are legitimate: filenames such as
// x86_64-unknown-linux-gnu/nexigon-agent are published, and asset paths split on '/' with
// empty components refused (nexigon/nexigon crates/libs/nexigon-common/src/lib.rs,
// parse_asset_path; spec §2.0). The local Hub is stricter than the Hub where a name could
// only do harm - anything it accepts the Hub accepts too:
func ValidFilename(s string) error {
	// Hub: 1..256 bytes (repositories.sidex, "Filename must be between 1 and 256 characters.").
	if len(s) < 1 || len(s) > 256 {
		return Errorf(KindInvalid, "invalid filename %q: want 1..256 characters", s)
	}
	// Local Hub: valid UTF-8, so that what is stored is what every client prints.
	if !utf8.ValidString(s) {
		return Errorf(KindInvalid, "invalid filename %q: not valid UTF-8", s)
	}
	for _, r := range s {
		// Local Hub: no control characters (NUL, newline, ESC, DEL, C1): they forge terminal
		// output and log lines and truncate C strings.
		if unicode.IsControl(r) {
			return Errorf(KindInvalid, "invalid filename %q: control character %U", s, r)
		}
		// Local Hub: no backslash, the Windows path separator.
		if r == '\\' {
			return Errorf(KindInvalid, "invalid filename %q: backslash", s)
		}
	}
	for _, c := range strings.Split(s, "/") {
		switch c {
		// Hub: empty components are refused (parse_asset_path), so no leading, trailing or
		// doubled '/'.
		case "":
			return Errorf(KindInvalid, "invalid filename %q: empty path component", s)
		// Local Hub: "." and ".." components would escape or alias directories wherever a
		// client stores assets by filename.
		case ".", "..":
			return Errorf(KindInvalid, "invalid filename %q: %q path component", s, c)
		}
	}
	return nil
}
