package server

import (
	"bytes"
	"context"
	"encoding/json"

	"github.com/otabake/otabake/internal/hub"
)

// action runs one Hub action on its raw JSON input and returns the output to encode.
type action func(ctx context.Context, s *server, in []byte) (any, error)

// decode parses an action's input. Unknown fields are ignored and null stands for absent, as
// the Hub's sidex decoder does; an empty body is an empty object.
func decode[T any](in []byte) (T, error) {
	var v T
	if len(bytes.TrimSpace(in)) == 0 {
		return v, nil
	}
	if err := json.Unmarshal(in, &v); err != nil {
		return v, hub.Errorf(hub.KindInvalid, "invalid input: %v", err)
	}
	return v, nil
}

// handle adapts a typed action function to the action table.
func handle[In any](fn func(ctx context.Context, s *server, in In) (any, error)) action {
	return func(ctx context.Context, s *server, raw []byte) (any, error) {
		in, err := decode[In](raw)
		if err != nil {
			return nil, err
		}
		return fn(ctx, s, in)
	}
}

// required returns an Invalid error naming the first empty field.
func required(fields ...string) error {
	for i := 0; i+1 < len(fields); i += 2 {
		if fields[i+1] == "" {
			return hub.Errorf(hub.KindInvalid, "missing field %q", fields[i])
		}
	}
	return nil
}

type empty struct{}

type result struct {
	Result string `json:"result"`
}

var notFound = result{Result: "NotFound"}

// wireTag is AddTagItem as sent on the wire: reassign defaults to true when absent (spec §2.2).
type wireTag struct {
	Tag      string `json:"tag"`
	Locked   *bool  `json:"locked"`
	Reassign *bool  `json:"reassign"`
}

func tagItems(tags []wireTag) []hub.TagItem {
	out := make([]hub.TagItem, len(tags))
	for i, t := range tags {
		out[i] = hub.TagItem{Tag: t.Tag, Locked: t.Locked != nil && *t.Locked, Reassign: t.Reassign == nil || *t.Reassign}
	}
	return out
}

type versionIn struct {
	VersionID string          `json:"versionId"`
	Tags      []wireTag       `json:"tags"`
	Metadata  json.RawMessage `json:"metadata"`
}

type assetIn struct {
	AssetID  string `json:"assetId"`
	Filename string `json:"filename"`
}

type versionAssetIn struct {
	VersionID string          `json:"versionId"`
	AssetID   string          `json:"assetId"`
	Filename  string          `json:"filename"`
	Metadata  json.RawMessage `json:"metadata"`
}

type deviceIn struct {
	DeviceID        string          `json:"deviceId"`
	Name            string          `json:"name"`
	Value           json.RawMessage `json:"value"`
	Protected       bool            `json:"protected"`
	ExpectedVersion *uint64         `json:"expectedVersion"`
	Events          []hub.Event     `json:"events"`
	Limit           int             `json:"limit"`
}

// actions is every action the server answers (spec §7's checklist and a few more).
var actions = map[string]action{
	"actor_GetActor": handle(func(ctx context.Context, s *server, _ empty) (any, error) {
		a, err := s.store.GetActor(ctx)
		if err != nil {
			return nil, err
		}
		return struct {
			Actor hub.Actor `json:"actor"`
		}{s.actor(a)}, nil
	}),

	"repositories_ResolveName": handle(func(ctx context.Context, s *server, in hub.VersionPath) (any, error) {
		if err := required("repository", in.Repository); err != nil {
			return nil, err
		}
		id, ok, err := s.store.ResolveRepository(ctx, in.Repository)
		if err != nil || !ok {
			return notFound, err
		}
		return map[string]string{"result": "Found", "repositoryId": id}, nil
	}),
	"repositories_ResolvePackageByPath": handle(func(ctx context.Context, s *server, in hub.VersionPath) (any, error) {
		if err := required("repository", in.Repository, "package", in.Package); err != nil {
			return nil, err
		}
		ref, ok, err := s.store.ResolvePackage(ctx, in.Repository, in.Package)
		if err != nil || !ok {
			return notFound, err
		}
		return struct {
			result
			hub.PackageRef
		}{result{"Found"}, ref}, nil
	}),
	"repositories_ResolveVersionByPath": handle(func(ctx context.Context, s *server, in hub.VersionPath) (any, error) {
		if err := required("repository", in.Repository, "package", in.Package, "tag", in.Tag); err != nil {
			return nil, err
		}
		ref, ok, err := s.store.ResolveVersion(ctx, in)
		if err != nil || !ok {
			return notFound, err
		}
		return struct {
			result
			hub.VersionRef
		}{result{"Found"}, ref}, nil
	}),
	"repositories_ResolveVersionAssetByPath": handle(func(ctx context.Context, s *server, in struct {
		hub.VersionPath
		Filename string `json:"filename"`
	}) (any, error) {
		if err := required("repository", in.Repository, "package", in.Package, "tag", in.Tag, "filename", in.Filename); err != nil {
			return nil, err
		}
		ref, ok, err := s.store.ResolveVersionAsset(ctx, in.VersionPath, in.Filename)
		if err != nil || !ok {
			return notFound, err
		}
		return struct {
			result
			hub.VersionAssetRef
		}{result{"Found"}, ref}, nil
	}),

	"repositories_CreatePackage": handle(func(ctx context.Context, s *server, in struct {
		RepositoryID string `json:"repositoryId"`
		Name         string `json:"name"`
	}) (any, error) {
		if err := required("repositoryId", in.RepositoryID, "name", in.Name); err != nil {
			return nil, err
		}
		id, existed, err := s.store.CreatePackage(ctx, in.RepositoryID, in.Name)
		if err != nil {
			return nil, err
		}
		if existed {
			return result{"NameAlreadyExists"}, nil
		}
		return map[string]string{"result": "Created", "packageId": id}, nil
	}),
	"repositories_CreateVersion": handle(func(ctx context.Context, s *server, in struct {
		PackageID string          `json:"packageId"`
		Name      string          `json:"name"`
		Tags      []wireTag       `json:"tags"`
		Metadata  json.RawMessage `json:"metadata"`
	}) (any, error) {
		if err := required("packageId", in.PackageID); err != nil {
			return nil, err
		}
		id, err := s.store.CreateVersion(ctx, hub.CreateVersionRequest{PackageID: in.PackageID, Name: in.Name, Tags: tagItems(in.Tags), Metadata: in.Metadata})
		if err != nil {
			return nil, err
		}
		return map[string]string{"result": "Created", "versionId": id}, nil
	}),
	"repositories_GetVersionDetails": handle(func(ctx context.Context, s *server, in versionIn) (any, error) {
		if err := required("versionId", in.VersionID); err != nil {
			return nil, err
		}
		return s.store.GetVersionDetails(ctx, in.VersionID)
	}),
	"repositories_QueryPackageVersions": handle(func(ctx context.Context, s *server, in struct {
		PackageID string `json:"packageId"`
	}) (any, error) {
		if err := required("packageId", in.PackageID); err != nil {
			return nil, err
		}
		vs, err := s.store.QueryVersions(ctx, in.PackageID)
		if err != nil {
			return nil, err
		}
		return struct {
			Versions []hub.VersionSummary `json:"versions"`
		}{vs}, nil
	}),
	"repositories_TagVersion": handle(func(ctx context.Context, s *server, in versionIn) (any, error) {
		if err := required("versionId", in.VersionID); err != nil {
			return nil, err
		}
		return empty{}, s.store.TagVersion(ctx, in.VersionID, tagItems(in.Tags))
	}),
	"repositories_UntagVersion": handle(func(ctx context.Context, s *server, in versionIn) (any, error) {
		if err := required("versionId", in.VersionID); err != nil {
			return nil, err
		}
		tags := make([]string, len(in.Tags))
		for i, t := range in.Tags {
			tags[i] = t.Tag
		}
		return empty{}, s.store.UntagVersion(ctx, in.VersionID, tags)
	}),
	"repositories_SetVersionMetadata": handle(func(ctx context.Context, s *server, in versionIn) (any, error) {
		if err := required("versionId", in.VersionID); err != nil {
			return nil, err
		}
		return empty{}, s.store.SetVersionMetadata(ctx, in.VersionID, in.Metadata)
	}),
	"repositories_DeleteVersion": handle(func(ctx context.Context, s *server, in versionIn) (any, error) {
		if err := required("versionId", in.VersionID); err != nil {
			return nil, err
		}
		return empty{}, s.store.DeleteVersion(ctx, in.VersionID)
	}),

	"repositories_CreateAsset": handle(func(ctx context.Context, s *server, in struct {
		RepositoryID string     `json:"repositoryId"`
		Size         *int64     `json:"size"`
		Digest       hub.Digest `json:"digest"`
	}) (any, error) {
		if err := required("repositoryId", in.RepositoryID, "digest", string(in.Digest)); err != nil {
			return nil, err
		}
		if in.Size == nil {
			return nil, hub.Errorf(hub.KindInvalid, "missing field %q", "size")
		}
		id, existed, err := s.store.CreateAsset(ctx, in.RepositoryID, *in.Size, in.Digest)
		if err != nil {
			return nil, err
		}
		res := "Created"
		if existed {
			res = "AssetAlreadyExists"
		}
		return map[string]string{"result": res, "assetId": id}, nil
	}),
	"repositories_GetAssetDetails": handle(func(ctx context.Context, s *server, in assetIn) (any, error) {
		if err := required("assetId", in.AssetID); err != nil {
			return nil, err
		}
		return s.store.GetAssetDetails(ctx, in.AssetID)
	}),
	"repositories_IssueAssetUploadUrl": handle(func(ctx context.Context, s *server, in assetIn) (any, error) {
		if err := required("assetId", in.AssetID); err != nil {
			return nil, err
		}
		return s.issueUploadURL(ctx, in.AssetID)
	}),
	"repositories_FinalizeAssetUpload": handle(func(ctx context.Context, s *server, in assetIn) (any, error) {
		if err := required("assetId", in.AssetID); err != nil {
			return nil, err
		}
		return empty{}, s.store.FinalizeAssetUpload(ctx, in.AssetID)
	}),
	"repositories_IssueAssetDownloadUrl": handle(func(ctx context.Context, s *server, in assetIn) (any, error) {
		if err := required("assetId", in.AssetID); err != nil {
			return nil, err
		}
		u, err := s.issueDownloadURL(ctx, in.AssetID, in.Filename)
		if err != nil {
			return nil, err
		}
		return map[string]string{"url": u}, nil
	}),
	"repositories_AddVersionAsset": handle(func(ctx context.Context, s *server, in versionAssetIn) (any, error) {
		if err := required("versionId", in.VersionID, "assetId", in.AssetID, "filename", in.Filename); err != nil {
			return nil, err
		}
		added, err := s.store.AddVersionAsset(ctx, in.VersionID, in.AssetID, in.Filename, in.Metadata)
		if err != nil {
			return nil, err
		}
		if !added {
			return result{"FilenameAlreadyExists"}, nil
		}
		return result{"Added"}, nil
	}),
	"repositories_RemoveVersionAsset": handle(func(ctx context.Context, s *server, in versionAssetIn) (any, error) {
		if err := required("versionId", in.VersionID, "filename", in.Filename); err != nil {
			return nil, err
		}
		return empty{}, s.store.RemoveVersionAsset(ctx, in.VersionID, in.Filename)
	}),
	"repositories_SetVersionAssetMetadata": handle(func(ctx context.Context, s *server, in versionAssetIn) (any, error) {
		if err := required("versionId", in.VersionID, "filename", in.Filename); err != nil {
			return nil, err
		}
		return empty{}, s.store.SetVersionAssetMetadata(ctx, in.VersionID, in.Filename, in.Metadata)
	}),

	"devices_GetProperty": handle(func(ctx context.Context, s *server, in deviceIn) (any, error) {
		if err := required("deviceId", in.DeviceID, "name", in.Name); err != nil {
			return nil, err
		}
		p, ok, err := s.store.GetProperty(ctx, in.DeviceID, in.Name)
		if err != nil || !ok {
			return notFound, err
		}
		return struct {
			result
			hub.Property
		}{result{"Found"}, p}, nil
	}),
	"devices_SetProperty": handle(func(ctx context.Context, s *server, in deviceIn) (any, error) {
		if err := required("deviceId", in.DeviceID, "name", in.Name); err != nil {
			return nil, err
		}
		if len(in.Value) == 0 {
			return nil, hub.Errorf(hub.KindInvalid, "missing field %q", "value")
		}
		res, cur, err := s.store.SetPropertyIf(ctx, in.DeviceID, in.Name, in.Value, in.Protected, in.ExpectedVersion)
		if err != nil {
			return nil, err
		}
		if res == "VersionConflict" {
			return map[string]any{"result": res, "currentVersion": cur}, nil
		}
		return result{string(res)}, nil
	}),
	"devices_RemoveProperty": handle(func(ctx context.Context, s *server, in deviceIn) (any, error) {
		if err := required("deviceId", in.DeviceID, "name", in.Name); err != nil {
			return nil, err
		}
		removed, err := s.store.RemoveProperty(ctx, in.DeviceID, in.Name)
		if err != nil || !removed {
			return notFound, err
		}
		return result{"Removed"}, nil
	}),
	"devices_QueryProperties": handle(func(ctx context.Context, s *server, in deviceIn) (any, error) {
		if err := required("deviceId", in.DeviceID); err != nil {
			return nil, err
		}
		props, err := s.store.QueryProperties(ctx, in.DeviceID)
		if err != nil {
			return nil, err
		}
		return struct {
			Properties map[string]hub.Property `json:"properties"`
		}{props}, nil
	}),
	"devices_PublishEvents": handle(func(ctx context.Context, s *server, in deviceIn) (any, error) {
		if err := required("deviceId", in.DeviceID); err != nil {
			return nil, err
		}
		return empty{}, s.store.PublishEvents(ctx, in.DeviceID, in.Events)
	}),
	"devices_QueryEvents": handle(func(ctx context.Context, s *server, in deviceIn) (any, error) {
		if err := required("deviceId", in.DeviceID); err != nil {
			return nil, err
		}
		evs, err := s.store.QueryEvents(ctx, in.DeviceID, in.Limit)
		if err != nil {
			return nil, err
		}
		return struct {
			Events []hub.Event `json:"events"`
		}{evs}, nil
	}),
}
