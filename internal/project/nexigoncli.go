package project

import (
	"fmt"
	"os"
	"path/filepath"
)

// NexigonCLIHomeFile is where `nexigon-cli configure` writes its configuration, relative to the
// home directory (nexigon/nexigon crates/apps/nexigon-cli/src/main.rs, Cmd::Configure).
const NexigonCLIHomeFile = ".nexigon/cli.toml"

// nexigonCLIHomeName is how sources and messages name the home configuration.
const nexigonCLIHomeName = "~/" + NexigonCLIHomeFile

// readNexigonCLIConfig finds and reads the nexigon-cli configuration the way nexigon-cli's
// get_config_path does (nexigon/nexigon crates/apps/nexigon-cli/src/main.rs): the file given
// with --config (here --nexigon-cli-config), else ./.nexigon-cli.toml, else
// ~/.nexigon/cli.toml; the first file that exists is the whole configuration, its keys are not
// merged with the others'. otabake looks for .nexigon-cli.toml in the project directory, which
// is the working directory when the release scripts run, and takes the home directory from
// HOME of the environment Load sees.
func (l *loader) readNexigonCLIConfig() error {
	type candidate struct{ path, name, from string }
	var cands []candidate
	if p, ok := l.overrides[KeyNexigonCLIConfig]; ok && p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			return fmt.Errorf("flag --nexigon-cli-config: %w", err)
		}
		cands = append(cands, candidate{abs, p, "flag --nexigon-cli-config"})
	} else {
		cands = append(cands, candidate{filepath.Join(l.cfg.Dir, NexigonCLIFile), NexigonCLIFile, "project directory"})
		if home := l.env["HOME"]; home != "" {
			cands = append(cands, candidate{filepath.Join(home, NexigonCLIHomeFile), nexigonCLIHomeName, "home directory"})
		}
	}
	for i, c := range cands {
		data, ok, err := readSmallFile(c.path)
		if err != nil {
			return err
		}
		if !ok {
			if i == 0 && c.from == "flag --nexigon-cli-config" {
				return fmt.Errorf("flag --nexigon-cli-config: %s does not exist", c.path)
			}
			continue
		}
		var f struct {
			HubURL string `toml:"hub-url"`
			Token  string `toml:"token"`
		}
		// nexigon-cli owns this file; keys otabake does not use are its business.
		doc, err := decodeTOML(c.name, data, &f, false)
		if err != nil {
			return err
		}
		l.cliDoc = doc
		l.cliPath = c.path
		l.cli = map[string]string{}
		if doc.md.IsDefined("hub-url") {
			l.cli["hub-url"] = f.HubURL
		}
		if doc.md.IsDefined("token") {
			l.cli["token"] = f.Token
		}
		// nexigon-cli keeps the file private: it refuses anything but a regular file and
		// resets its mode to 0600 (crates/libs/nexigon-common/src/secure_file.rs read_private).
		if fi, err := os.Stat(c.path); err == nil && fi.Mode().Perm()&0o077 != 0 && doc.md.IsDefined("token") {
			l.warn(fmt.Sprintf("%s holds a token and is readable by other users (mode %04o): chmod 600 %s", c.name, fi.Mode().Perm(), c.path))
		}
		l.cfg.Files = append(l.cfg.Files, c.name)
		l.cliFrom = c.from
		return nil
	}
	return nil
}

func (l *loader) warn(msg string) { l.cfg.Warnings = append(l.cfg.Warnings, msg) }
