package release

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/otabake/otabake/internal/hub"
)

// readRecord returns the otabake record of version metadata (hub.VersionRecord); malformed or
// absent gives zero. upload-release writes the system and its file list before it sends the
// first byte, so that promote-release can tell a complete version from a half-uploaded one from
// any checkout.
func readRecord(meta json.RawMessage) hub.VersionRecord {
	if rec := hub.ParseVersionMetadata(meta).Otabake; rec != nil {
		return *rec
	}
	return hub.VersionRecord{}
}

// mergeRecord returns meta with the systems of assets (system → filenames) added to the
// otabake record: the systems list becomes the sorted union, each uploaded system's file list
// is replaced, and every other key, of the metadata and of the record, is kept as it was.
// changed is false when meta already says all of it.
func mergeRecord(meta json.RawMessage, assets map[string][]string) (out json.RawMessage, changed bool, err error) {
	top := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(meta)) > 0 && !bytes.Equal(bytes.TrimSpace(meta), []byte("null")) {
		if err := json.Unmarshal(meta, &top); err != nil {
			return nil, false, fmt.Errorf("version metadata is not a JSON object: %w", err)
		}
	}
	rec := map[string]json.RawMessage{}
	if raw, ok := top[hub.MetaOtabake]; ok {
		if err := json.Unmarshal(raw, &rec); err != nil {
			return nil, false, fmt.Errorf("version metadata %q is not a JSON object: %w", hub.MetaOtabake, err)
		}
	}
	var systems []string
	if raw, ok := rec[hub.MetaSystems]; ok {
		if err := json.Unmarshal(raw, &systems); err != nil {
			return nil, false, fmt.Errorf("version metadata %s.%s is not a list of names: %w", hub.MetaOtabake, hub.MetaSystems, err)
		}
	}
	files := map[string][]string{}
	if raw, ok := rec[hub.MetaAssets]; ok {
		if err := json.Unmarshal(raw, &files); err != nil {
			return nil, false, fmt.Errorf("version metadata %s.%s is not a map of file lists: %w", hub.MetaOtabake, hub.MetaAssets, err)
		}
	}
	for s, names := range assets {
		if !slices.Contains(systems, s) {
			systems = append(systems, s)
			changed = true
		}
		names = slices.Clone(names)
		sort.Strings(names)
		if !slices.Equal(files[s], names) {
			files[s] = names
			changed = true
		}
	}
	if !changed {
		return meta, false, nil
	}
	sort.Strings(systems)
	if rec[hub.MetaSystems], err = json.Marshal(systems); err != nil {
		return nil, false, err
	}
	if rec[hub.MetaAssets], err = json.Marshal(files); err != nil {
		return nil, false, err
	}
	if top[hub.MetaOtabake], err = json.Marshal(rec); err != nil {
		return nil, false, err
	}
	out, err = json.Marshal(top)
	return out, true, err
}

// recordSystems merges the systems and file names of arts into the version's metadata. The
// Hub replaces metadata as a whole, so two uploads of different systems into one version can
// race; Upload calls this before and after sending, and the second call restores a lost entry.
func recordSystems(ctx context.Context, h hub.Hub, versionID string, arts []*Artifact) error {
	assets := map[string][]string{}
	for _, a := range arts {
		assets[a.System] = append(assets[a.System], a.Filename)
	}
	d, err := h.GetVersionDetails(ctx, versionID)
	if err != nil {
		return fmt.Errorf("version %s: %w", versionID, err)
	}
	meta, changed, err := mergeRecord(d.Metadata, assets)
	if err != nil {
		return fmt.Errorf("version %s: %w", versionID, err)
	}
	if !changed {
		return nil
	}
	if err := h.SetVersionMetadata(ctx, versionID, meta); err != nil {
		return fmt.Errorf("record the systems of version %s: %w", versionID, err)
	}
	return nil
}

// systemSuffixes are the file name endings upload-release gives a system's assets; an attached
// file with one of them names a system of the version even without an otabake record (a
// version uploaded by an older otabake or by hand).
var systemSuffixes = func() []string {
	s := []string{assetBundleHash, assetRugix, assetRauc, assetBuildInfo, assetSBOM}
	for _, ext := range ImageExts {
		s = append(s, assetImage+ext)
	}
	return s
}()

// assetSystem returns the system a file name belongs to by its suffix, or "".
func assetSystem(filename string) string {
	for _, suf := range systemSuffixes {
		if s, ok := strings.CutSuffix(filename, suf); ok && s != "" && !strings.Contains(s, "/") {
			return s
		}
	}
	return ""
}

// Completeness is what promote-release found out about a version's systems.
type Completeness struct {
	// Systems are the systems the version should have: the otabake record, the project's
	// configured systems and the systems its attached files name, sorted.
	Systems []string `json:"systems"`
	// Checked are the systems that were required to be complete.
	Checked []string `json:"checked"`
	// Problems lists, per system, what is missing or not yet Available.
	Problems map[string][]string `json:"problems,omitempty"`
}

// Complete reports whether every checked system is complete.
func (c *Completeness) Complete() bool { return len(c.Problems) == 0 }

// String is the problems in one line: "pi: no bundle (pi.rugixb or pi.raucb); efi: …".
func (c *Completeness) String() string {
	parts := make([]string, 0, len(c.Problems))
	for _, s := range c.Checked {
		if p := c.Problems[s]; len(p) > 0 {
			parts = append(parts, s+": "+strings.Join(p, ", "))
		}
	}
	return strings.Join(parts, "; ")
}

// CheckComplete checks d for the systems of the project (projectSystems) and of its own
// record. With only non-empty, just those systems are required; otherwise all of them. A
// system is complete when its bundle (<system>.rugixb or <system>.raucb) is attached, a Rugix
// bundle carries a well-formed rugix.bundleHash, every file upload-release recorded for it is
// attached, and each of its attached files is Available.
func CheckComplete(d *hub.VersionDetails, projectSystems, only []string) *Completeness {
	rec := readRecord(d.Metadata)
	known := map[string]bool{}
	for _, s := range rec.Systems {
		known[s] = true
	}
	for _, s := range projectSystems {
		known[s] = true
	}
	for _, a := range d.Assets {
		// A recorded file belongs to the system that recorded it, whatever its name says: a
		// Yocto system's files carry its image's IMAGE_ID.
		if s := assetSystem(a.Filename); s != "" && !recorded(rec, a.Filename) {
			known[s] = true
		}
	}
	c := &Completeness{Problems: map[string][]string{}}
	for s := range known {
		c.Systems = append(c.Systems, s)
	}
	sort.Strings(c.Systems)
	c.Checked = c.Systems
	if len(only) > 0 {
		c.Checked = slices.Clone(only)
		sort.Strings(c.Checked)
		c.Checked = slices.Compact(c.Checked)
	}
	for _, s := range c.Checked {
		var probs []string
		// The bundle is <s>.rugixb or <s>.raucb, or the one upload-release recorded for s
		// under the name its devices report (<IMAGE_ID>.rugixb).
		base := s
		for _, f := range rec.Assets[s] {
			if b, ok := strings.CutSuffix(f, assetRugix); ok {
				base = b
			} else if b, ok := strings.CutSuffix(f, assetRauc); ok {
				base = b
			}
		}
		rugix, hasRugix := d.Asset(base + assetRugix)
		_, hasRauc := d.Asset(base + assetRauc)
		switch {
		case !hasRugix && !hasRauc:
			probs = append(probs, fmt.Sprintf("no bundle (%s or %s)", base+assetRugix, base+assetRauc))
		case hasRugix:
			if err := checkBundleHashMeta(rugix.Metadata); err != nil {
				probs = append(probs, fmt.Sprintf("%s %v", base+assetRugix, err))
			}
		}
		for _, f := range rec.Assets[s] {
			if _, ok := d.Asset(f); !ok {
				probs = append(probs, f+" not attached")
			}
		}
		for _, a := range d.Assets {
			if (assetSystem(a.Filename) == s || slices.Contains(rec.Assets[s], a.Filename)) && a.Status != hub.AssetAvailable {
				probs = append(probs, fmt.Sprintf("%s is %s, not Available", a.Filename, statusName(a.Status)))
			}
		}
		if len(probs) > 0 {
			c.Problems[s] = probs
		}
	}
	if len(only) == 0 {
		// Files of no system (attached by hand) must be downloadable too.
		var probs []string
		for _, a := range d.Assets {
			if assetSystem(a.Filename) == "" && !recorded(rec, a.Filename) && a.Status != hub.AssetAvailable {
				probs = append(probs, fmt.Sprintf("%s is %s, not Available", a.Filename, statusName(a.Status)))
			}
		}
		if len(probs) > 0 {
			c.Problems[otherFiles] = probs
			c.Checked = append(slices.Clone(c.Checked), otherFiles)
		}
	}
	return c
}

// otherFiles is the Completeness key of attached files that belong to no system.
const otherFiles = "other files"

func recorded(rec hub.VersionRecord, filename string) bool {
	for _, fs := range rec.Assets {
		if slices.Contains(fs, filename) {
			return true
		}
	}
	return false
}

func statusName(s hub.AssetStatus) string {
	if s == "" {
		return "of unknown status"
	}
	return string(s)
}

// checkBundleHashMeta checks the rugix.bundleHash of a bundle's asset metadata: the hash
// devices with useBundleHash verify, "<algorithm>:<hex>" of the algorithm's length.
func checkBundleHashMeta(meta json.RawMessage) error {
	h := hub.ParseBundleAssetMetadata(meta).BundleHash()
	if h == "" {
		return fmt.Errorf("has no rugix.bundleHash metadata")
	}
	alg, hexPart, ok := strings.Cut(h, ":")
	size := map[string]int{"sha512-256": 32, "sha256": 32, "sha512": 64}[alg]
	if b, err := hex.DecodeString(hexPart); !ok || size == 0 || err != nil || len(b) != size {
		return fmt.Errorf("has a malformed rugix.bundleHash %q (want sha512-256:<64 hex digits>)", h)
	}
	return nil
}
