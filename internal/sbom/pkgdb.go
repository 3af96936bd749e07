package sbom

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Manager names the package manager a package was found in; it selects the purl type.
type Manager string

// Package managers whose databases Generate reads.
const (
	Dpkg Manager = "deb"
	Opkg Manager = "opkg"
	APK  Manager = "apk"
)

// Package is one installed package as its database records it.
type Package struct {
	Manager      Manager
	Name         string
	Version      string
	Architecture string
	// Maintainer is the supplier, "Name <email>" as the database writes it.
	Maintainer string
	// License is the declared license as written by the package manager ("" when none).
	License  string
	Homepage string
	// Summary is the first line of the description.
	Summary string
	// Source names the source package when it differs from Name (dpkg "Source", apk origin).
	Source string
}

// maxLine bounds one database line so that a corrupt file cannot make the scanner grow
// without limit; real status files stay far below it.
const maxLine = 1 << 20

// ParseDpkgStatus reads a dpkg status file (var/lib/dpkg/status) and returns the packages whose
// status is "installed". Removed packages that left configuration files behind are skipped.
func ParseDpkgStatus(r io.Reader) ([]Package, error) {
	return parseControl(r, Dpkg)
}

// ParseOpkgStatus reads an opkg status file (var/lib/opkg/status or usr/lib/opkg/status), the
// same deb822-style format with an optional License field, as Yocto writes it.
func ParseOpkgStatus(r io.Reader) ([]Package, error) {
	return parseControl(r, Opkg)
}

// parseControl reads deb822-style stanzas separated by blank lines.
func parseControl(r io.Reader, m Manager) ([]Package, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	var pkgs []Package
	var cur Package
	var status string
	start, line := 0, 0
	inStanza := false
	lastKey := ""
	flush := func() error {
		if !inStanza {
			return nil
		}
		inStanza = false
		if cur.Name == "" {
			return fmt.Errorf("line %d: stanza without a Package field", start)
		}
		f := strings.Fields(status)
		if len(f) == 3 && f[2] == "installed" {
			pkgs = append(pkgs, cur)
		}
		cur, status = Package{Manager: m}, ""
		return nil
	}
	cur.Manager = m
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(text) == "" {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		if !inStanza {
			inStanza, start, lastKey = true, line, ""
		}
		if text[0] == ' ' || text[0] == '\t' {
			if lastKey == "" {
				return nil, fmt.Errorf("line %d: continuation line without a field", line)
			}
			continue // only the first line of multi-line fields is used
		}
		if text[0] == '#' {
			continue
		}
		key, val, ok := strings.Cut(text, ":")
		if !ok || key == "" || strings.ContainsAny(key, " \t") {
			return nil, fmt.Errorf("line %d: want \"Field: value\", got %q", line, truncate(text))
		}
		lastKey = key
		val = strings.TrimSpace(val)
		switch strings.ToLower(key) {
		case "package":
			cur.Name = val
		case "version":
			cur.Version = val
		case "architecture":
			cur.Architecture = val
		case "maintainer":
			cur.Maintainer = val
		case "license":
			cur.License = val
		case "homepage":
			cur.Homepage = val
		case "description":
			cur.Summary = val
		case "source":
			name, _, _ := strings.Cut(val, " ")
			cur.Source = name
		case "status":
			status = val
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("line %d: longer than %d bytes", line+1, maxLine)
		}
		return nil, fmt.Errorf("line %d: %w", line, err)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return pkgs, nil
}

// ParseAPKInstalled reads Alpine's lib/apk/db/installed: "X:value" lines, one blank-line
// separated stanza per package. Per-file records (F, R, a, M, Z) are skipped.
func ParseAPKInstalled(r io.Reader) ([]Package, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	var pkgs []Package
	cur := Package{Manager: APK}
	inStanza := false
	start, line := 0, 0
	flush := func() error {
		if !inStanza {
			return nil
		}
		inStanza = false
		if cur.Name == "" {
			return fmt.Errorf("line %d: package record without a P: line", start)
		}
		if cur.Source == cur.Name {
			cur.Source = ""
		}
		pkgs = append(pkgs, cur)
		cur = Package{Manager: APK}
		return nil
	}
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		if text == "" {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		if !inStanza {
			inStanza, start = true, line
		}
		if len(text) < 2 || text[1] != ':' {
			return nil, fmt.Errorf("line %d: want \"X:value\", got %q", line, truncate(text))
		}
		val := text[2:]
		switch text[0] {
		case 'P':
			cur.Name = val
		case 'V':
			cur.Version = val
		case 'A':
			cur.Architecture = val
		case 'm':
			cur.Maintainer = val
		case 'L':
			cur.License = val
		case 'U':
			cur.Homepage = val
		case 'T':
			cur.Summary = val
		case 'o':
			cur.Source = val
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("line %d: longer than %d bytes", line+1, maxLine)
		}
		return nil, fmt.Errorf("line %d: %w", line, err)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return pkgs, nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
