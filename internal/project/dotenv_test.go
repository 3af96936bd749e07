package project

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseDotEnv(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []DotEnvEntry
	}{
		{"empty", "", nil},
		{"comments and blanks", "# c\n\n   # indented\n\t\nA=1\n", []DotEnvEntry{{"A", "1", 5}}},
		{"double quotes", `NEXIGON_HUB_URL="https://eu.nexigon.cloud"`, []DotEnvEntry{{"NEXIGON_HUB_URL", "https://eu.nexigon.cloud", 1}}},
		{"single quotes literal", `A='x $HOME "y" \n'`, []DotEnvEntry{{"A", `x $HOME "y" \n`, 1}}},
		{"double quote escapes", `A="a\"b\\c\$d\e"`, []DotEnvEntry{{"A", `a"b\c$d\e`, 1}}},
		{"export prefix", "export A=1\nexport\tB='2'", []DotEnvEntry{{"A", "1", 1}, {"B", "2", 2}}},
		{"variable named export", "exportX=1", []DotEnvEntry{{"exportX", "1", 1}}},
		{"empty values", "A=\nB=\"\"\nC=''", []DotEnvEntry{{"A", "", 1}, {"B", "", 2}, {"C", "", 3}}},
		{"trailing comment", "A=1 # one\nB='x' # two", []DotEnvEntry{{"A", "1", 1}, {"B", "x", 2}}},
		{"hash inside word", "A=a#b\nB=#c", []DotEnvEntry{{"A", "a#b", 1}, {"B", "#c", 2}}},
		{"concatenated quotes", `A=ab'c d'"e"`, []DotEnvEntry{{"A", "abc de", 1}}},
		{"backslash escape unquoted", `A=a\ b`, []DotEnvEntry{{"A", "a b", 1}}},
		{"crlf", "A=1\r\nB=2\r\n", []DotEnvEntry{{"A", "1", 1}, {"B", "2", 2}}},
		{"equals in value", "A=b=c", []DotEnvEntry{{"A", "b=c", 1}}},
		{"later wins is kept in order", "A=1\nA=2", []DotEnvEntry{{"A", "1", 1}, {"A", "2", 2}}},
		{"trailing whitespace", "A=1   \t", []DotEnvEntry{{"A", "1", 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDotEnv(".env", strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseDotEnvErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"no equals", "A=1\nJUSTTEXT\n", ".env:2: want KEY=VALUE"},
		{"space before equals", "A =1", ".env:1: A: no spaces allowed around '='"},
		{"space after equals", "A= 1", ".env:1: A: unquoted space"},
		{"unquoted space", "A=b c", ".env:1: A: unquoted space"},
		{"unterminated double", "\n\nA=\"abc", ".env:3: A: unterminated double quote"},
		{"unterminated single", "A='abc", ".env:1: A: unterminated single quote"},
		{"expansion", "A=$HOME/x", ".env:1: A: shell expansion ($) is not supported"},
		{"expansion in double quotes", `A="${HOME}"`, ".env:1: A: shell expansion ($) is not supported"},
		{"command substitution", "A=`date`", ".env:1: A: shell expansion (`)"},
		{"bad name", "1A=x", `.env:1: invalid variable name "1A"`},
		{"dash in name", "MY-VAR=x", `.env:1: invalid variable name "MY-VAR"`},
		{"operator", "A=b;c", `.env:1: A: shell operator ';'`},
		{"trailing backslash", `A=b\`, ".env:1: A: trailing backslash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseDotEnv(".env", strings.NewReader(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestParseDotEnvTooLarge(t *testing.T) {
	_, err := ParseDotEnv(".env", strings.NewReader(strings.Repeat("#", maxDotEnvSize+1)))
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("err = %v", err)
	}
}

func FuzzParseDotEnv(f *testing.F) {
	for _, s := range []string{"A=1\n", "export B='x y'\n# c\n", `C="a\"b"`, "D=$x", "E", "F=a b", "G='", "H=\"\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		entries, err := ParseDotEnv("f", strings.NewReader(in))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f:") && !strings.HasPrefix(err.Error(), "read f") {
				t.Fatalf("error without location: %v", err)
			}
			return
		}
		for _, e := range entries {
			if !validEnvName(e.Key) || e.Line < 1 {
				t.Fatalf("bad entry %+v", e)
			}
		}
	})
}
