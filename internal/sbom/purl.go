package sbom

import (
	"strings"
)

// PURL returns the package URL of p (https://github.com/package-url/purl-spec):
// pkg:deb/<os>/NAME@VERSION?arch=ARCH, pkg:apk/<os>/…, pkg:opkg/NAME@VERSION?arch=ARCH.
// osID is the os-release ID; deb defaults to "debian" and apk to "alpine".
func PURL(p Package, osID string) string {
	var b strings.Builder
	b.WriteString("pkg:" + string(p.Manager) + "/")
	switch p.Manager {
	case Dpkg, APK:
		ns := osID
		if ns == "" {
			ns = map[Manager]string{Dpkg: "debian", APK: "alpine"}[p.Manager]
		}
		b.WriteString(pathEscape(ns) + "/")
	}
	b.WriteString(pathEscape(p.Name))
	if p.Version != "" {
		b.WriteString("@" + pathEscape(p.Version))
	}
	if p.Architecture != "" {
		b.WriteString("?arch=" + pathEscape(p.Architecture))
	}
	return b.String()
}

// pathEscape percent-encodes everything except the purl spec's unreserved characters, so that
// "+" (deb revisions) and ":" (epochs) are unambiguous: 1:1.2.13+dfsg becomes 1%3A1.2.13%2Bdfsg.
func pathEscape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '.' || c == '-' || c == '_' || c == '~' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// legacyLicenses maps license names common in Yocto and OpenEmbedded recipes to SPDX ids.
var legacyLicenses = map[string]string{
	"GPLv2": "GPL-2.0-only", "GPLv2+": "GPL-2.0-or-later", "GPLv3": "GPL-3.0-only", "GPLv3+": "GPL-3.0-or-later",
	"LGPLv2": "LGPL-2.0-only", "LGPLv2+": "LGPL-2.0-or-later", "LGPLv2.1": "LGPL-2.1-only", "LGPLv2.1+": "LGPL-2.1-or-later",
	"LGPLv3": "LGPL-3.0-only", "LGPLv3+": "LGPL-3.0-or-later", "GPL-2.0": "GPL-2.0-only", "GPL-3.0": "GPL-3.0-only",
	"GPL-2.0+": "GPL-2.0-or-later", "GPL-3.0+": "GPL-3.0-or-later", "LGPL-2.1": "LGPL-2.1-only", "LGPL-2.1+": "LGPL-2.1-or-later",
	"BSD": "BSD-3-Clause", "PD": "LicenseRef-PD",
}

// licenseExpression turns a package manager's license field into an SPDX license expression:
// Yocto's "&" and "|" become AND and OR, apk's "AND"/"OR"/"WITH" are kept, legacy names are
// mapped. Anything else (free text, commas) is reported as not an expression.
func licenseExpression(s string) (string, bool) {
	s = strings.NewReplacer("&", " AND ", "|", " OR ", "(", " ( ", ")", " ) ").Replace(s)
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return "", false
	}
	out := make([]string, 0, len(fields))
	depth := 0
	wantID := true
	for _, f := range fields {
		switch {
		case f == "(":
			if !wantID {
				return "", false
			}
			depth++
			out = append(out, f)
		case f == ")":
			if wantID || depth == 0 {
				return "", false
			}
			depth--
			out = append(out, f)
		case f == "AND" || f == "OR" || f == "WITH" || f == "and" || f == "or":
			if wantID {
				return "", false
			}
			out = append(out, strings.ToUpper(f))
			wantID = true
		default:
			if !wantID || !licenseID(f) {
				return "", false
			}
			if m, ok := legacyLicenses[f]; ok {
				f = m
			}
			out = append(out, f)
			wantID = false
		}
	}
	if wantID || depth != 0 {
		return "", false
	}
	return strings.NewReplacer("( ", "(", " )", ")").Replace(strings.Join(out, " ")), true
}

func licenseID(s string) bool {
	for i, r := range s {
		ok := r == '.' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || (r == '+' && i == len(s)-1 && i > 0)
		if !ok {
			return false
		}
	}
	return s != ""
}
