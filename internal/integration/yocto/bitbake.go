// Package yocto checks the Yocto layer in bitbake/meta-otabake without BitBake: a small
// parser for the BitBake constructs the layer uses (assignments and their operators,
// overrides, inherit, include/require, export, addtask, shell and Python functions), and
// tests that run the layer's shell functions with the real otabake binary against scratch
// IMAGE_ROOTFS and deploy directories.
//
// The parser is deliberately stricter than BitBake: it accepts only what it understands, so
// a construct it does not know is an error rather than a silently skipped line.
package yocto

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// FuncKind tells how BitBake runs a function.
type FuncKind int

const (
	// Shell functions ("name() { … }") run with /bin/sh after BitBake expanded ${VAR}s.
	Shell FuncKind = iota
	// Python functions ("python name() { … }", "python () { … }") run inside BitBake.
	Python
	// Def is a top-level "def name(args):" helper, callable from inline ${@…} expressions.
	Def
)

// String names the kind as error messages and test output use it.
func (k FuncKind) String() string {
	switch k {
	case Shell:
		return "shell"
	case Python:
		return "python"
	default:
		return "def"
	}
}

// Function is a shell or Python function of a BitBake file.
type Function struct {
	// Name is the function name; "" for an anonymous "python () { … }".
	Name string
	Kind FuncKind
	// Body is the text between the header line and the closing "}" (for Def: the
	// indented lines after the header), without the header and the brace.
	Body string
	// Line is the 1-based line of the header.
	Line int
	// Params is the parameter list of a Def, without the parentheses.
	Params string
}

// Assignment is one variable (or variable flag) assignment.
type Assignment struct {
	// Name includes overrides, e.g. "FILES:${PN}" or "ROOTFS_POSTPROCESS_COMMAND:append".
	Name string
	// Flag is the variable flag in NAME[flag], or "".
	Flag string
	// Op is one of = ?= ??= := += =+ .= =.
	Op string
	// Value is the text between the quotes, with line continuations joined as BitBake does.
	Value  string
	Export bool
	Line   int
}

// Directive is a keyword line: inherit, include, require, export, unset, addtask, deltask,
// addhandler or EXPORT_FUNCTIONS.
type Directive struct {
	Keyword string
	Args    []string
	Line    int
}

// File is a parsed .bb, .bbappend, .bbclass, .inc or .conf file.
type File struct {
	Name        string
	Assignments []Assignment
	Functions   []Function
	Directives  []Directive
}

// Function returns the function called name (kind Shell or Python).
func (f *File) Function(name string) (Function, bool) {
	for _, fn := range f.Functions {
		if fn.Name == name && fn.Kind != Def {
			return fn, true
		}
	}
	return Function{}, false
}

// Values returns the values assigned to name (without flag) in file order.
func (f *File) Values(name string) []string {
	var vs []string
	for _, a := range f.Assignments {
		if a.Name == name && a.Flag == "" {
			vs = append(vs, a.Value)
		}
	}
	return vs
}

var (
	varNameRE  = `[A-Za-z0-9_${}\-+./~:]+`
	assignRE   = regexp.MustCompile(`^(export\s+)?(` + varNameRE + `)(?:\[([A-Za-z0-9_\-+.][A-Za-z0-9_\-+.@/]*)\])?\s*(\?\?=|\?=|:=|\+=|=\+|\.=|=\.|=)\s*(.*)$`)
	shellFnRE  = regexp.MustCompile(`^(?:fakeroot\s+)?(` + varNameRE + `)\s*\(\s*\)\s*\{\s*$`)
	pythonFnRE = regexp.MustCompile(`^(?:fakeroot\s+)?python\s*(` + varNameRE + `)?\s*\(\s*\)\s*\{\s*$`)
	defRE      = regexp.MustCompile(`^def\s+([A-Za-z_][A-Za-z0-9_]*)\s*\((.*)\)\s*:\s*(#.*)?$`)
	taskNameRE = regexp.MustCompile(`^[A-Za-z0-9_${}\-+.:]+$`)
	plainVarRE = regexp.MustCompile(`^` + varNameRE + `$`)
)

// keywords are the directive lines the parser knows, with their minimum argument count.
var keywords = map[string]int{
	"inherit": 1, "inherit_defer": 1, "include": 1, "require": 1, "include_all": 1,
	"export": 1, "unset": 1, "addtask": 1, "deltask": 1, "addhandler": 1, "EXPORT_FUNCTIONS": 1,
}

// maxErrors bounds the error list of one file.
const maxErrors = 50

// Parse checks src and returns what it holds. Every problem is reported as
// "name:line: what", all of them joined into one error; the File is returned either way.
func Parse(name string, src []byte) (*File, error) {
	p := &parser{f: &File{Name: name}, lines: strings.Split(strings.ReplaceAll(string(src), "\r\n", "\n"), "\n")}
	p.run()
	return p.f, errors.Join(p.errs...)
}

type parser struct {
	f     *File
	lines []string
	i     int // index of the next line
	errs  []error
}

func (p *parser) errorf(line int, format string, args ...any) {
	if len(p.errs) == maxErrors {
		p.errs = append(p.errs, fmt.Errorf("%s: too many errors", p.f.Name))
	}
	if len(p.errs) > maxErrors {
		return
	}
	p.errs = append(p.errs, fmt.Errorf("%s:%d: %s", p.f.Name, line, fmt.Sprintf(format, args...)))
}

func (p *parser) run() {
	for p.i < len(p.lines) {
		start := p.i + 1
		raw := p.lines[p.i]
		p.i++
		trimmed := strings.TrimSpace(raw)
		switch {
		case trimmed == "":
			continue
		case strings.HasPrefix(trimmed, "#"):
			if strings.HasSuffix(trimmed, `\`) {
				p.errorf(start, "comment ends with a backslash: BitBake would continue it into the next line")
			}
			continue
		}
		if m := pythonFnRE.FindStringSubmatch(trimmed); m != nil && raw == strings.TrimLeft(raw, " \t") {
			p.function(start, m[1], Python)
			continue
		}
		if m := shellFnRE.FindStringSubmatch(trimmed); m != nil && raw == strings.TrimLeft(raw, " \t") {
			p.function(start, m[1], Shell)
			continue
		}
		if m := defRE.FindStringSubmatch(raw); m != nil {
			p.def(start, m[1], m[2])
			continue
		}
		if raw != strings.TrimLeft(raw, " \t") {
			p.errorf(start, "unexpected indented line outside a function: %q", trimmed)
			continue
		}
		logical := p.continued(start, raw)
		p.statement(start, logical)
	}
}

// continued joins backslash-continued lines as BitBake does (the backslash and the newline go).
func (p *parser) continued(start int, line string) string {
	var b strings.Builder
	for strings.HasSuffix(line, `\`) {
		b.WriteString(strings.TrimSuffix(line, `\`))
		if p.i >= len(p.lines) {
			p.errorf(start, "line continuation at the end of the file")
			return b.String()
		}
		line = p.lines[p.i]
		p.i++
	}
	b.WriteString(line)
	return b.String()
}

func (p *parser) statement(line int, s string) {
	if m := assignRE.FindStringSubmatch(s); m != nil {
		p.assignment(line, m)
		return
	}
	fields := strings.Fields(s)
	min, ok := keywords[fields[0]]
	if !ok {
		p.errorf(line, "unknown construct: %q", s)
		return
	}
	args := fields[1:]
	if len(args) < min {
		p.errorf(line, "%s needs an argument", fields[0])
		return
	}
	switch fields[0] {
	case "include", "require", "include_all":
		if len(args) != 1 {
			p.errorf(line, "%s takes one file, got %d words", fields[0], len(args))
		}
	case "export", "unset":
		for _, a := range args {
			if !plainVarRE.MatchString(strings.TrimSuffix(a, "]")) {
				p.errorf(line, "%s: bad variable name %q", fields[0], a)
			}
		}
	case "addtask", "deltask":
		p.addtask(line, fields[0], args)
	}
	for _, a := range args {
		p.checkExpansions(line, a)
	}
	p.f.Directives = append(p.f.Directives, Directive{Keyword: fields[0], Args: args, Line: line})
}

func (p *parser) addtask(line int, kw string, args []string) {
	if !taskNameRE.MatchString(args[0]) || args[0] == "before" || args[0] == "after" {
		p.errorf(line, "%s: bad task name %q", kw, args[0])
		return
	}
	if kw == "deltask" {
		if len(args) != 1 {
			p.errorf(line, "deltask takes one task, got %q", strings.Join(args, " "))
		}
		return
	}
	seen := map[string]bool{}
	for i := 1; i < len(args); {
		k := args[i]
		if k != "before" && k != "after" {
			p.errorf(line, "addtask %s: want before or after, got %q", args[0], k)
			return
		}
		if seen[k] {
			p.errorf(line, "addtask %s: %s given twice", args[0], k)
		}
		seen[k] = true
		i++
		n := 0
		for ; i < len(args) && args[i] != "before" && args[i] != "after"; i++ {
			if !taskNameRE.MatchString(args[i]) {
				p.errorf(line, "addtask %s: bad task name %q", args[0], args[i])
			}
			n++
		}
		if n == 0 {
			p.errorf(line, "addtask %s: %s names no task", args[0], k)
		}
	}
}

func (p *parser) assignment(line int, m []string) {
	a := Assignment{Export: m[1] != "", Name: m[2], Flag: m[3], Op: m[4], Line: line}
	rest := strings.TrimRight(m[5], " \t")
	if len(rest) < 2 || (rest[0] != '"' && rest[0] != '\'') || rest[len(rest)-1] != rest[0] {
		p.errorf(line, "%s %s: the value must be one quoted string, got %s", a.Name, a.Op, rest)
		return
	}
	q := rest[0]
	a.Value = rest[1 : len(rest)-1]
	for i := 0; i < len(a.Value); i++ {
		switch a.Value[i] {
		case '\\':
			i++
		case q:
			p.errorf(line, "%s: unbalanced quotes: %c inside a %c-quoted value", a.Name, q, q)
			return
		}
	}
	if strings.ContainsRune(a.Name, '$') {
		p.checkExpansions(line, a.Name)
	}
	p.checkExpansions(line, a.Value)
	p.f.Assignments = append(p.f.Assignments, a)
}

// checkExpansions checks that every ${ is closed and that inline Python ${@…} has balanced
// brackets and quotes.
func (p *parser) checkExpansions(line int, s string) {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch {
		case strings.HasPrefix(s[i:], "${@"):
			end, err := pythonExprEnd(s, i+3)
			if err != nil {
				p.errorf(line, "inline Python at column %d: %v", i+1, err)
				return
			}
			i = end
		case strings.HasPrefix(s[i:], "${"):
			depth++
			i++
		case s[i] == '}' && depth > 0:
			depth--
		}
	}
	if depth > 0 {
		p.errorf(line, "unbalanced braces: %d ${ not closed in %q", depth, s)
	}
}

// pythonExprEnd returns the index of the "}" closing an inline Python expression that
// starts at i.
func pythonExprEnd(s string, i int) (int, error) {
	var stack []byte
	for ; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\'', '"':
			j := i + 1
			for ; j < len(s) && s[j] != c; j++ {
				if s[j] == '\\' {
					j++
				}
			}
			if j >= len(s) {
				return 0, fmt.Errorf("unterminated %c string", c)
			}
			i = j
		case '(', '[', '{':
			stack = append(stack, c)
		case ')', ']', '}':
			if len(stack) == 0 {
				if c == '}' {
					return i, nil
				}
				return 0, fmt.Errorf("unbalanced %c", c)
			}
			if open := stack[len(stack)-1]; open != map[byte]byte{')': '(', ']': '[', '}': '{'}[c] {
				return 0, fmt.Errorf("%c closes %c", c, open)
			}
			stack = stack[:len(stack)-1]
		}
	}
	return 0, errors.New("unterminated ${@")
}

// function reads a brace-delimited function body up to a "}" alone at the start of a line.
func (p *parser) function(line int, name string, kind FuncKind) {
	var body []string
	for p.i < len(p.lines) {
		l := p.lines[p.i]
		p.i++
		if strings.TrimRight(l, " \t") == "}" {
			fn := Function{Name: name, Kind: kind, Body: strings.Join(body, "\n"), Line: line}
			if kind == Shell {
				p.bodyError(line, "shell function "+name, checkShell(fn.Body))
			} else {
				p.bodyError(line, "python function "+name, checkPython(fn.Body, true))
			}
			if strings.ContainsRune(name, '$') {
				p.checkExpansions(line, name)
			}
			p.f.Functions = append(p.f.Functions, fn)
			return
		}
		body = append(body, l)
	}
	p.errorf(line, "function %s: no closing } at the start of a line", name)
}

var bodyLineRE = regexp.MustCompile(`^line (\d+): `)

// bodyError reports err of a function body whose header is on line header, turning the
// body-relative "line N: " of the checkers into the file's line.
func (p *parser) bodyError(header int, what string, err error) {
	if err == nil {
		return
	}
	msg := err.Error()
	line := header
	if m := bodyLineRE.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		line += n
		msg = msg[len(m[0]):]
	}
	p.errorf(line, "%s: %s", what, msg)
}

// def reads a top-level Python def: the header and the indented (or blank) lines after it.
func (p *parser) def(line int, name, params string) {
	var body []string
	for p.i < len(p.lines) {
		l := p.lines[p.i]
		if strings.TrimSpace(l) != "" && l == strings.TrimLeft(l, " \t") {
			break
		}
		body = append(body, l)
		p.i++
	}
	for len(body) > 0 && strings.TrimSpace(body[len(body)-1]) == "" {
		body = body[:len(body)-1]
	}
	fn := Function{Name: name, Kind: Def, Body: strings.Join(body, "\n"), Line: line, Params: params}
	if len(body) == 0 {
		p.errorf(line, "def %s has no body", name)
	} else {
		p.bodyError(line, "def "+name, checkPython(fn.Body, true))
	}
	p.f.Functions = append(p.f.Functions, fn)
}
