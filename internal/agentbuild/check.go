package agentbuild

import (
	"debug/buildinfo"
	"debug/elf"
	"fmt"
)

// elfMachines is the ELF e_machine and class of each GOARCH the agent is built for.
var elfMachines = map[string]struct {
	machine elf.Machine
	class   elf.Class
}{
	"amd64":   {elf.EM_X86_64, elf.ELFCLASS64},
	"arm64":   {elf.EM_AARCH64, elf.ELFCLASS64},
	"arm":     {elf.EM_ARM, elf.ELFCLASS32},
	"386":     {elf.EM_386, elf.ELFCLASS32},
	"riscv64": {elf.EM_RISCV, elf.ELFCLASS64},
}

// Check inspects a built agent rather than trusting its name: an ELF executable for a's
// machine and class, statically linked (no PT_INTERP, no PT_DYNAMIC), position-dependent
// (ET_EXEC, not a PIE), and for ARM the GOARM level recorded in its Go build information. (Go's
// linker writes no .ARM.attributes section and the same e_flags for every GOARM, so the build
// information is where an ARMv6 build differs from an ARMv7 one.)
func Check(path string, a Arch) error {
	want, ok := elfMachines[a.GOARCH]
	if !ok {
		return fmt.Errorf("%s: no ELF machine known for GOARCH %s", path, a.GOARCH)
	}
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s: not an ELF file: %w", path, err)
	}
	defer f.Close()
	if f.Machine != want.machine || f.Class != want.class {
		return fmt.Errorf("%s: ELF machine %v class %v, want %v %v for %s", path, f.Machine, f.Class, want.machine, want.class, a.Name)
	}
	if f.Type != elf.ET_EXEC {
		return fmt.Errorf("%s: ELF type %v, want ET_EXEC (a static, non-PIE executable)", path, f.Type)
	}
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_INTERP:
			return fmt.Errorf("%s: dynamically linked (has a PT_INTERP program header)", path)
		case elf.PT_DYNAMIC:
			return fmt.Errorf("%s: has a PT_DYNAMIC segment, want a static executable", path)
		}
	}
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%s: no Go build information: %w", path, err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if settings["GOARCH"] != a.GOARCH || settings["CGO_ENABLED"] != "0" {
		return fmt.Errorf("%s: built with GOARCH=%s CGO_ENABLED=%s, want GOARCH=%s CGO_ENABLED=0", path, settings["GOARCH"], settings["CGO_ENABLED"], a.GOARCH)
	}
	if a.GOARM != "" && settings["GOARM"] != a.GOARM {
		return fmt.Errorf("%s: built with GOARM=%s, want GOARM=%s (%s)", path, settings["GOARM"], a.GOARM, a.Description)
	}
	return nil
}
