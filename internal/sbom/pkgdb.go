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
	var pkgs []Package
	cur := Package{Manager: m}
	var status, lastKey string
	field := func(line int, text string) error {
		if text[0] == ' ' || text[0] == '\t' {
			if lastKey == "" {
				return fmt.Errorf("line %d: continuation line without a field", line)
			}
			return nil // only the first line of multi-line fields is used
		}
		if text[0] == '#' {
			return nil
		}
		key, val, ok := strings.Cut(text, ":")
		if !ok || key == "" || strings.ContainsAny(key, " \t") {
			return fmt.Errorf("line %d: want \"Field: value\", got %q", line, truncate(text))
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
		return nil
	}
	end := func(start int) error {
		if cur.Name == "" {
			return fmt.Errorf("line %d: stanza without a Package field", start)
		}
		f := strings.Fields(status)
		if len(f) == 3 && f[2] == "installed" {
			pkgs = append(pkgs, cur)
		}
		cur, status, lastKey = Package{Manager: m}, "", ""
		return nil
	}
	blank := func(text string) bool { return strings.TrimSpace(text) == "" }
	if err := readStanzas(r, blank, field, end); err != nil {
		return nil, err
	}
	return pkgs, nil
}

// ParseAPKInstalled reads Alpine's lib/apk/db/installed: "X:value" lines, one blank-line
// separated stanza per package. Per-file records (F, R, a, M, Z) are skipped.
func ParseAPKInstalled(r io.Reader) ([]Package, error) {
	var pkgs []Package
	cur := Package{Manager: APK}
	field := func(line int, text string) error {
		if len(text) < 2 || text[1] != ':' {
			return fmt.Errorf("line %d: want \"X:value\", got %q", line, truncate(text))
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
		return nil
	}
	end := func(start int) error {
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
	blank := func(text string) bool { return text == "" }
	if err := readStanzas(r, blank, field, end); err != nil {
		return nil, err
	}
	return pkgs, nil
}

// readStanzas reads r's lines (without a trailing \r) as stanzas separated by the lines blank
// reports: it calls field with each other line and its number, and end after each stanza with
// the number of its first line. A line longer than maxLine is an error.
func readStanzas(r io.Reader, blank func(text string) bool, field func(line int, text string) error, end func(start int) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	start, line := 0, 0
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		if blank(text) {
			if start > 0 {
				if err := end(start); err != nil {
					return err
				}
				start = 0
			}
			continue
		}
		if start == 0 {
			start = line
		}
		if err := field(line, text); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("line %d: longer than %d bytes", line+1, maxLine)
		}
		return fmt.Errorf("line %d: %w", line, err)
	}
	if start > 0 {
		return end(start)
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
