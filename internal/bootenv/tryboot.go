package bootenv

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Autoboot returns the Raspberry Pi autoboot.txt that boots partition def normally and
// partition try when the firmware's one-shot tryboot flag is set. The text has no trailing
// newline, byte for byte what Rugix writes and compares, so that Ctrl's commit finds the file
// it expects.
func Autoboot(def, try int) []byte {
	return fmt.Appendf(nil, "[all]\ntryboot_a_b=1\nboot_partition=%d\n[tryboot]\nboot_partition=%d", def, try)
}

// AutobootDefault returns the boot_partition of the [all] section, which is the partition the
// device boots when no tryboot is pending (what Rugix Ctrl reports as the default group).
func AutobootDefault(data []byte) (int, error) {
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
			section = s[1 : len(s)-1]
			continue
		}
		if section != "all" {
			continue
		}
		if v, ok := strings.CutPrefix(s, "boot_partition="); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n < 1 {
				return 0, fmt.Errorf("autoboot.txt line %d: bad boot_partition %q", line, v)
			}
			return n, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("autoboot.txt: %w", err)
	}
	return 0, ErrNoBootPartition
}
