package local

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/otabake/otabake/internal/hub"
)

// TreeRepository is a repository with everything in it, as `otabake hub ls` shows it.
type TreeRepository struct {
	ID       string        `json:"repositoryId"`
	Name     string        `json:"name"`
	Packages []TreePackage `json:"packages"`
}

// TreePackage is a package with its versions, oldest first.
type TreePackage struct {
	ID       string        `json:"packageId"`
	Name     string        `json:"name"`
	Versions []TreeVersion `json:"versions"`
}

// TreeVersion is a version with its tags, metadata and attached assets.
type TreeVersion struct {
	ID        string             `json:"versionId"`
	Name      string             `json:"name,omitempty"`
	CreatedAt time.Time          `json:"createdAt"`
	Tags      []hub.VersionTag   `json:"tags"`
	Metadata  json.RawMessage    `json:"metadata,omitempty"`
	Assets    []hub.VersionAsset `json:"assets"`
}

// Tree lists the store below path: "" for everything, "R" for one repository, "R/P" for one
// package or "R/P/T" for one version (names or IDs, T a tag or version ID). Repositories and
// packages are sorted by name.
func (s *Store) Tree(ctx context.Context, path string) ([]TreeRepository, error) {
	var parts []string
	if p := strings.Trim(path, "/"); p != "" {
		parts = strings.Split(p, "/")
	}
	if len(parts) > 3 {
		return nil, fmt.Errorf("list %q: want [<repository>[/<package>[/<tag>]]]", path)
	}
	var out []TreeRepository
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var repos []*repoRec
		if len(parts) > 0 {
			r, err := lookupRepo(tx, parts[0])
			if err != nil {
				return err
			}
			if r == nil {
				return s.unknownRepository(parts[0])
			}
			repos = append(repos, r)
		} else {
			err := tx.Bucket(bRepos).ForEach(func(k, v []byte) error {
				r, err := get[repoRec](tx, bRepos, string(k))
				repos = append(repos, r)
				return err
			})
			if err != nil {
				return err
			}
			sort.Slice(repos, func(i, j int) bool { return repos[i].Name < repos[j].Name })
		}
		for _, r := range repos {
			tr := TreeRepository{ID: r.ID, Name: r.Name, Packages: []TreePackage{}}
			pkgs, err := s.treePackages(tx, r, parts)
			if err != nil {
				return err
			}
			for _, p := range pkgs {
				tp := TreePackage{ID: p.ID, Name: p.Name, Versions: []TreeVersion{}}
				var vs []*versionRec
				if len(parts) == 3 {
					v, err := lookupVersion(tx, p.ID, parts[2])
					if err != nil {
						return err
					}
					if v == nil {
						return hub.Errorf(hub.KindInvalid, "version %s not found", path)
					}
					vs = append(vs, v)
				} else if vs, err = packageVersions(tx, p.ID); err != nil {
					return err
				}
				for _, v := range vs {
					d, err := versionDetails(tx, v)
					if err != nil {
						return err
					}
					tp.Versions = append(tp.Versions, TreeVersion{ID: v.ID, Name: v.Name, CreatedAt: v.CreatedAt, Tags: d.Tags, Metadata: d.Metadata, Assets: d.Assets})
				}
				tr.Packages = append(tr.Packages, tp)
			}
			out = append(out, tr)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list local Hub %s: %w", s.dir, err)
	}
	return out, nil
}

func (s *Store) treePackages(tx *bolt.Tx, r *repoRec, parts []string) ([]*pkgRec, error) {
	if len(parts) > 1 {
		p, err := lookupPackage(tx, r.ID, parts[1])
		if err != nil {
			return nil, err
		}
		if p == nil {
			return nil, hub.Errorf(hub.KindInvalid, "package %s/%s not found", r.Name, parts[1])
		}
		return []*pkgRec{p}, nil
	}
	var pkgs []*pkgRec
	prefix := key(r.ID, "")
	c := tx.Bucket(bPackageNames).Cursor()
	for k, v := c.Seek(prefix); k != nil && strings.HasPrefix(string(k), string(prefix)); k, v = c.Next() {
		p, err := get[pkgRec](tx, bPackages, string(v))
		if err != nil {
			return nil, err
		}
		if p != nil {
			pkgs = append(pkgs, p)
		}
	}
	return pkgs, nil
}
