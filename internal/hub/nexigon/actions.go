package nexigon

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/otabake/otabake/internal/hub"
	"github.com/otabake/otabake/internal/nexid"
)

// Action names (spec §2, §3.2).
const (
	actResolveName         = "repositories_ResolveName"
	actResolvePackage      = "repositories_ResolvePackageByPath"
	actResolveVersion      = "repositories_ResolveVersionByPath"
	actResolveVersionAsset = "repositories_ResolveVersionAssetByPath"
	actCreatePackage       = "repositories_CreatePackage"
	actCreateVersion       = "repositories_CreateVersion"
	actTagVersion          = "repositories_TagVersion"
	actUntagVersion        = "repositories_UntagVersion"
	actGetVersionDetails   = "repositories_GetVersionDetails"
	actQueryVersions       = "repositories_QueryPackageVersions"
	actSetVersionMetadata  = "repositories_SetVersionMetadata"
	actCreateAsset         = "repositories_CreateAsset"
	actGetAssetDetails     = "repositories_GetAssetDetails"
	actIssueUploadURL      = "repositories_IssueAssetUploadUrl"
	actFinalizeUpload      = "repositories_FinalizeAssetUpload"
	actAddVersionAsset     = "repositories_AddVersionAsset"
	actRemoveVersionAsset  = "repositories_RemoveVersionAsset"
	actSetVersionAssetMeta = "repositories_SetVersionAssetMetadata"
	actIssueDownloadURL    = "repositories_IssueAssetDownloadUrl"
	actGetActor            = "actor_GetActor"
	actGetProperty         = "devices_GetProperty"
	actSetProperty         = "devices_SetProperty"
	actRemoveProperty      = "devices_RemoveProperty"
	actPublishEvents       = "devices_PublishEvents"
	actQueryEvents         = "devices_QueryEvents"
)

// tagged is the "result" tag of an internally tagged output (spec §1.4).
type tagged struct {
	Result string `json:"result"`
}

// unexpected is the error for a result tag the client does not know. Only a tag that looks
// like one (a variant name, letters only) is quoted: anything else from the Hub may be a secret.
func unexpected(action, result string) error {
	name := len(result) <= 64
	for i := 0; i < len(result) && name; i++ {
		c := result[i] | 0x20 // lower case
		name = 'a' <= c && c <= 'z'
	}
	if !name {
		return fmt.Errorf("%s: unexpected result (%d bytes, not a result name)", action, len(result))
	}
	return fmt.Errorf("%s: unexpected result %q", action, result)
}

// ResolveRepository implements hub.Repositories.
func (c *Client) ResolveRepository(ctx context.Context, repository string) (string, bool, error) {
	var out struct {
		tagged
		RepositoryID string `json:"repositoryId"`
	}
	if err := c.Invoke(ctx, actResolveName, struct {
		Repository string `json:"repository"`
	}{repository}, &out); err != nil {
		return "", false, err
	}
	switch out.Result {
	case "Found":
		if err := checkIDs(actResolveName, wantID("repositoryId", nexid.RepositoryID, out.RepositoryID)); err != nil {
			return "", false, err
		}
		return out.RepositoryID, true, nil
	case "NotFound":
		return "", false, nil
	}
	return "", false, unexpected(actResolveName, out.Result)
}

// ResolvePackage implements hub.Repositories.
func (c *Client) ResolvePackage(ctx context.Context, repository, pkg string) (hub.PackageRef, bool, error) {
	var out struct {
		tagged
		hub.PackageRef
	}
	if err := c.Invoke(ctx, actResolvePackage, struct {
		Repository string `json:"repository"`
		Package    string `json:"package"`
	}{repository, pkg}, &out); err != nil {
		return hub.PackageRef{}, false, err
	}
	switch out.Result {
	case "Found":
		if err := checkIDs(actResolvePackage,
			wantID("repositoryId", nexid.RepositoryID, out.RepositoryID),
			wantID("packageId", nexid.PackageID, out.PackageID)); err != nil {
			return hub.PackageRef{}, false, err
		}
		return out.PackageRef, true, nil
	case "NotFound":
		return hub.PackageRef{}, false, nil
	}
	return hub.PackageRef{}, false, unexpected(actResolvePackage, out.Result)
}

// ResolveVersion implements hub.Repositories.
func (c *Client) ResolveVersion(ctx context.Context, p hub.VersionPath) (hub.VersionRef, bool, error) {
	var out struct {
		tagged
		hub.VersionRef
	}
	if err := c.Invoke(ctx, actResolveVersion, p, &out); err != nil {
		return hub.VersionRef{}, false, err
	}
	switch out.Result {
	case "Found":
		if err := checkIDs(actResolveVersion,
			wantID("repositoryId", nexid.RepositoryID, out.RepositoryID),
			wantID("packageId", nexid.PackageID, out.PackageID),
			wantID("versionId", nexid.PackageVersionID, out.VersionID)); err != nil {
			return hub.VersionRef{}, false, err
		}
		return out.VersionRef, true, nil
	case "NotFound":
		return hub.VersionRef{}, false, nil
	}
	return hub.VersionRef{}, false, unexpected(actResolveVersion, out.Result)
}

// ResolveVersionAsset implements hub.Repositories.
func (c *Client) ResolveVersionAsset(ctx context.Context, p hub.VersionPath, filename string) (hub.VersionAssetRef, bool, error) {
	var out struct {
		tagged
		hub.VersionAssetRef
	}
	if err := c.Invoke(ctx, actResolveVersionAsset, struct {
		hub.VersionPath
		Filename string `json:"filename"`
	}{p, filename}, &out); err != nil {
		return hub.VersionAssetRef{}, false, err
	}
	switch out.Result {
	case "Found":
		if err := checkIDs(actResolveVersionAsset,
			wantID("repositoryId", nexid.RepositoryID, out.RepositoryID),
			wantID("packageId", nexid.PackageID, out.PackageID),
			wantID("versionId", nexid.PackageVersionID, out.VersionID),
			wantID("assetId", nexid.RepositoryAssetID, out.AssetID)); err != nil {
			return hub.VersionAssetRef{}, false, err
		}
		return out.VersionAssetRef, true, nil
	case "NotFound":
		return hub.VersionAssetRef{}, false, nil
	}
	return hub.VersionAssetRef{}, false, unexpected(actResolveVersionAsset, out.Result)
}

// CreatePackage implements hub.Repositories.
func (c *Client) CreatePackage(ctx context.Context, repositoryID, name string) (string, bool, error) {
	var out struct {
		tagged
		PackageID string `json:"packageId"`
	}
	if err := c.Invoke(ctx, actCreatePackage, struct {
		RepositoryID string `json:"repositoryId"`
		Name         string `json:"name"`
	}{repositoryID, name}, &out); err != nil {
		return "", false, err
	}
	switch out.Result {
	case "Created":
		if err := checkIDs(actCreatePackage, wantID("packageId", nexid.PackageID, out.PackageID)); err != nil {
			return "", false, err
		}
		return out.PackageID, false, nil
	case "NameAlreadyExists":
		return "", true, nil
	}
	return "", false, unexpected(actCreatePackage, out.Result)
}

// CreateVersion implements hub.Repositories. It is not retried once the request may have
// reached the Hub; such errors wrap ErrOutcomeUnknown (see the package documentation).
func (c *Client) CreateVersion(ctx context.Context, req hub.CreateVersionRequest) (string, error) {
	var out struct {
		tagged
		VersionID string `json:"versionId"`
	}
	if err := c.Invoke(ctx, actCreateVersion, req, &out); err != nil {
		return "", err
	}
	if out.Result != "Created" {
		return "", unexpected(actCreateVersion, out.Result)
	}
	if err := checkIDs(actCreateVersion, wantID("versionId", nexid.PackageVersionID, out.VersionID)); err != nil {
		return "", err
	}
	return out.VersionID, nil
}

// TagVersion implements hub.Repositories.
func (c *Client) TagVersion(ctx context.Context, versionID string, tags []hub.TagItem) error {
	return c.Invoke(ctx, actTagVersion, struct {
		VersionID string        `json:"versionId"`
		Tags      []hub.TagItem `json:"tags"`
	}{versionID, nonNil(tags)}, nil)
}

// UntagVersion implements hub.Repositories.
func (c *Client) UntagVersion(ctx context.Context, versionID string, tags []string) error {
	type item struct {
		Tag string `json:"tag"`
	}
	items := make([]item, len(tags))
	for i, t := range tags {
		items[i] = item{t}
	}
	return c.Invoke(ctx, actUntagVersion, struct {
		VersionID string `json:"versionId"`
		Tags      []item `json:"tags"`
	}{versionID, items}, nil)
}

type versionIDInput struct {
	VersionID string `json:"versionId"`
}

// GetVersionDetails implements hub.Repositories.
func (c *Client) GetVersionDetails(ctx context.Context, versionID string) (*hub.VersionDetails, error) {
	var out hub.VersionDetails
	if err := c.Invoke(ctx, actGetVersionDetails, versionIDInput{versionID}, &out); err != nil {
		return nil, err
	}
	ids := make([]idField, 0, 3+len(out.Assets))
	ids = append(ids,
		wantID("versionId", nexid.PackageVersionID, out.VersionID),
		wantID("repositoryId", nexid.RepositoryID, out.RepositoryID),
		wantID("packageId", nexid.PackageID, out.PackageID))
	for i, a := range out.Assets {
		ids = append(ids, wantID(at("assets", i, "assetId"), nexid.RepositoryAssetID, a.AssetID))
	}
	if err := checkIDs(actGetVersionDetails, ids...); err != nil {
		return nil, err
	}
	return &out, nil
}

// QueryVersions implements hub.Repositories.
func (c *Client) QueryVersions(ctx context.Context, packageID string) ([]hub.VersionSummary, error) {
	var out struct {
		Versions []hub.VersionSummary `json:"versions"`
	}
	if err := c.Invoke(ctx, actQueryVersions, struct {
		PackageID string `json:"packageId"`
	}{packageID}, &out); err != nil {
		return nil, err
	}
	ids := make([]idField, len(out.Versions))
	for i, v := range out.Versions {
		ids[i] = wantID(at("versions", i, "versionId"), nexid.PackageVersionID, v.VersionID)
	}
	if err := checkIDs(actQueryVersions, ids...); err != nil {
		return nil, err
	}
	return out.Versions, nil
}

// SetVersionMetadata implements hub.Repositories.
func (c *Client) SetVersionMetadata(ctx context.Context, versionID string, metadata json.RawMessage) error {
	return c.Invoke(ctx, actSetVersionMetadata, struct {
		VersionID string          `json:"versionId"`
		Metadata  json.RawMessage `json:"metadata"`
	}{versionID, jsonOrEmptyObject(metadata)}, nil)
}

// CreateAsset implements hub.Repositories.
func (c *Client) CreateAsset(ctx context.Context, repositoryID string, size int64, digest hub.Digest) (string, bool, error) {
	var out struct {
		tagged
		AssetID string `json:"assetId"`
	}
	if err := c.Invoke(ctx, actCreateAsset, struct {
		RepositoryID string     `json:"repositoryId"`
		Size         int64      `json:"size"`
		Digest       hub.Digest `json:"digest"`
	}{repositoryID, size, digest}, &out); err != nil {
		return "", false, err
	}
	var existed bool
	switch out.Result {
	case "Created":
	case "AssetAlreadyExists":
		existed = true
	default:
		return "", false, unexpected(actCreateAsset, out.Result)
	}
	if err := checkIDs(actCreateAsset, wantID("assetId", nexid.RepositoryAssetID, out.AssetID)); err != nil {
		return "", false, err
	}
	return out.AssetID, existed, nil
}

type assetIDInput struct {
	AssetID string `json:"assetId"`
}

// GetAssetDetails implements hub.Repositories.
func (c *Client) GetAssetDetails(ctx context.Context, assetID string) (*hub.AssetDetails, error) {
	var out hub.AssetDetails
	if err := c.Invoke(ctx, actGetAssetDetails, assetIDInput{assetID}, &out); err != nil {
		return nil, err
	}
	if err := checkIDs(actGetAssetDetails, wantID("assetId", nexid.RepositoryAssetID, out.AssetID)); err != nil {
		return nil, err
	}
	if out.Size < 0 {
		return nil, fmt.Errorf("%s: response has a negative size", actGetAssetDetails)
	}
	return &out, nil
}

// IssueAssetUploadURL implements hub.Repositories.
func (c *Client) IssueAssetUploadURL(ctx context.Context, assetID string) (*hub.UploadURL, error) {
	var out hub.UploadURL
	if err := c.Invoke(ctx, actIssueUploadURL, assetIDInput{assetID}, &out); err != nil {
		return nil, err
	}
	if out.URL == "" && out.VerifiedURL == "" {
		return nil, fmt.Errorf("%s: response has neither url nor verifiedUrl", actIssueUploadURL)
	}
	return &out, nil
}

// FinalizeAssetUpload implements hub.Repositories.
func (c *Client) FinalizeAssetUpload(ctx context.Context, assetID string) error {
	return c.Invoke(ctx, actFinalizeUpload, assetIDInput{assetID}, nil)
}

// AddVersionAsset implements hub.Repositories.
func (c *Client) AddVersionAsset(ctx context.Context, versionID, assetID, filename string, metadata json.RawMessage) (bool, error) {
	var out tagged
	if err := c.Invoke(ctx, actAddVersionAsset, struct {
		VersionID string          `json:"versionId"`
		AssetID   string          `json:"assetId"`
		Filename  string          `json:"filename"`
		Metadata  json.RawMessage `json:"metadata,omitempty"`
	}{versionID, assetID, filename, metadata}, &out); err != nil {
		return false, err
	}
	switch out.Result {
	case "Added":
		return true, nil
	case "FilenameAlreadyExists":
		return false, nil
	}
	return false, unexpected(actAddVersionAsset, out.Result)
}

// RemoveVersionAsset implements hub.Repositories.
func (c *Client) RemoveVersionAsset(ctx context.Context, versionID, filename string) error {
	return c.Invoke(ctx, actRemoveVersionAsset, struct {
		VersionID string `json:"versionId"`
		Filename  string `json:"filename"`
	}{versionID, filename}, nil)
}

// SetVersionAssetMetadata implements hub.Repositories.
func (c *Client) SetVersionAssetMetadata(ctx context.Context, versionID, filename string, metadata json.RawMessage) error {
	return c.Invoke(ctx, actSetVersionAssetMeta, struct {
		VersionID string          `json:"versionId"`
		Filename  string          `json:"filename"`
		Metadata  json.RawMessage `json:"metadata"`
	}{versionID, filename, jsonOrEmptyObject(metadata)}, nil)
}

// IssueAssetDownloadURL implements hub.Repositories. filename is optional.
func (c *Client) IssueAssetDownloadURL(ctx context.Context, assetID, filename string) (string, error) {
	var out struct {
		URL string `json:"url"`
	}
	if err := c.Invoke(ctx, actIssueDownloadURL, struct {
		AssetID  string `json:"assetId"`
		Filename string `json:"filename,omitempty"`
	}{assetID, filename}, &out); err != nil {
		return "", err
	}
	if out.URL == "" {
		return "", fmt.Errorf("%s: response has no url", actIssueDownloadURL)
	}
	return out.URL, nil
}

// GetActor implements hub.Devices.
func (c *Client) GetActor(ctx context.Context) (hub.Actor, error) {
	var out struct {
		Actor hub.Actor `json:"actor"`
	}
	if err := c.Invoke(ctx, actGetActor, struct{}{}, &out); err != nil {
		return hub.Actor{}, err
	}
	if out.Actor.Kind == "" {
		return hub.Actor{}, fmt.Errorf("%s: response has no actor", actGetActor)
	}
	if err := checkIDs(actGetActor, actorIDs(out.Actor)...); err != nil {
		return hub.Actor{}, err
	}
	return out.Actor, nil
}

type propertyInput struct {
	DeviceID string `json:"deviceId"`
	Name     string `json:"name"`
}

// GetProperty implements hub.Devices.
func (c *Client) GetProperty(ctx context.Context, deviceID, name string) (hub.Property, bool, error) {
	var out struct {
		tagged
		hub.Property
	}
	if err := c.Invoke(ctx, actGetProperty, propertyInput{deviceID, name}, &out); err != nil {
		return hub.Property{}, false, err
	}
	switch out.Result {
	case "Found":
		return out.Property, true, nil
	case "NotFound":
		return hub.Property{}, false, nil
	}
	return hub.Property{}, false, unexpected(actGetProperty, out.Result)
}

// SetProperty implements hub.Devices.
func (c *Client) SetProperty(ctx context.Context, deviceID, name string, value json.RawMessage) error {
	if !json.Valid(value) {
		return fmt.Errorf("%s %s: value is not valid JSON", actSetProperty, name)
	}
	var out struct {
		tagged
		CurrentVersion uint64 `json:"currentVersion"`
	}
	if err := c.Invoke(ctx, actSetProperty, struct {
		propertyInput
		Value json.RawMessage `json:"value"`
	}{propertyInput{deviceID, name}, value}, &out); err != nil {
		return err
	}
	switch out.Result {
	case "Set":
		return nil
	case "VersionConflict":
		return fmt.Errorf("%s %s: version conflict (current version %d)", actSetProperty, name, out.CurrentVersion)
	}
	return unexpected(actSetProperty, out.Result)
}

// RemoveProperty implements hub.Devices.
func (c *Client) RemoveProperty(ctx context.Context, deviceID, name string) (bool, error) {
	var out tagged
	if err := c.Invoke(ctx, actRemoveProperty, propertyInput{deviceID, name}, &out); err != nil {
		return false, err
	}
	switch out.Result {
	case "Removed":
		return true, nil
	case "NotFound":
		return false, nil
	}
	return false, unexpected(actRemoveProperty, out.Result)
}

// PublishEvents implements hub.Devices. Like CreateVersion, it is not retried once the
// request may have reached the Hub, so that events are not recorded twice.
func (c *Client) PublishEvents(ctx context.Context, deviceID string, events []hub.Event) error {
	return c.Invoke(ctx, actPublishEvents, struct {
		DeviceID string      `json:"deviceId"`
		Events   []hub.Event `json:"events"`
	}{deviceID, nonNil(events)}, nil)
}

// QueryEvents implements hub.Devices. The output shape {"events":[…]} is inferred (spec §1.1
// names only the limit).
func (c *Client) QueryEvents(ctx context.Context, deviceID string, limit int) ([]hub.Event, error) {
	if limit < 1 || limit > 1000 {
		return nil, fmt.Errorf("%s: limit %d out of range 1..1000", actQueryEvents, limit)
	}
	var out struct {
		Events []hub.Event `json:"events"`
	}
	if err := c.Invoke(ctx, actQueryEvents, struct {
		DeviceID string `json:"deviceId"`
		Limit    int    `json:"limit"`
	}{deviceID, limit}, &out); err != nil {
		return nil, err
	}
	ids := make([]idField, len(out.Events))
	for i, e := range out.Events {
		ids[i] = wantID(at("events", i, "eventId"), nexid.DeviceEventID, e.EventID)
	}
	if err := checkIDs(actQueryEvents, ids...); err != nil {
		return nil, err
	}
	return out.Events, nil
}

// nonNil makes a nil slice marshal as [] rather than null, for required list fields.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// jsonOrEmptyObject sends {} for a required metadata field the caller left empty.
func jsonOrEmptyObject(m json.RawMessage) json.RawMessage {
	if len(m) == 0 {
		return json.RawMessage("{}")
	}
	return m
}
