//go:build e2e && linux

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/otabake/otabake/internal/agent"
	"github.com/otabake/otabake/internal/bootenv"
	"github.com/otabake/otabake/internal/bundle"
	"github.com/otabake/otabake/internal/e2e/vmkit"
	"github.com/otabake/otabake/internal/gpt"
	"github.com/otabake/otabake/internal/hub/nexigon"
	"github.com/otabake/otabake/internal/image"
	"github.com/otabake/otabake/internal/nexid"
	"github.com/otabake/otabake/internal/sign"
	"github.com/otabake/otabake/internal/testkit"
	"github.com/otabake/otabake/internal/vm"
)

// Timeouts of the guest steps under software emulation on 2 cores (a boot through OVMF, GRUB
// and the kernel takes about 20 s there).
const (
	bootTimeout    = 4 * time.Minute
	commandTimeout = 2 * time.Minute
	installTimeout = 6 * time.Minute
)

// diskBytes is the size of the guest's (sparse) disk: room for Rugix Ctrl's default bootstrap
// layout, two 4 GiB system partitions after the boot partitions, and a data partition.
const diskBytes = 10 << 30

const (
	// deviceID is a DeviceId of the Hub's form (d_ + 22 base-58): the strict `hub serve`
	// refuses anything else.
	deviceID   = "d_E2EvmDevice1kNqRsTuVwX"
	repository = "e2e"
	pkg        = "system"
	system     = vmkit.VMSystem
)

// requireTools skips, loudly, when a host tool the boot proof needs is missing; .ci/run installs
// all of them.
func requireTools(t *testing.T) {
	t.Helper()
	testkit.NeedTools(t, "the boot proof did not run",
		testkit.Tool{Name: "qemu-system-x86_64", Package: "qemu-system-x86"},
		testkit.Tool{Name: "/usr/share/OVMF/OVMF_CODE_4M.fd", Package: "ovmf"},
		testkit.Tool{Name: "grub-mkimage", Package: "grub-common"},
		testkit.Tool{Name: "/usr/lib/grub/x86_64-efi/linux.mod", Package: "grub-efi-amd64-bin"},
		testkit.Tool{Name: vmkit.DefaultBusybox, Package: "busybox-static"},
		testkit.Tool{Name: "mkfs.ext4", Package: "e2fsprogs"},
		testkit.Tool{Name: "dpkg-deb", Package: "dpkg"},
	)
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// project is the otabake project the test releases from.
type project struct {
	t       *testing.T
	dir     string
	otabake string
	env     []string
}

func (p *project) run(ctx context.Context, args ...string) string {
	p.t.Helper()
	cmd := exec.CommandContext(ctx, p.otabake, append([]string{"--project-dir", p.dir}, args...)...)
	cmd.Env = append(os.Environ(), p.env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		p.t.Fatalf("otabake %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

func (p *project) git(args ...string) {
	p.t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid"}, args...)...)
	cmd.Dir = p.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		p.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// commit records a change so that prepare-release names a new version.
func (p *project) commit(label string) {
	p.t.Helper()
	if err := os.WriteFile(filepath.Join(p.dir, "release.txt"), []byte(label+"\n"), 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.git("add", "-A")
	p.git("commit", "-qm", label)
}

func (p *project) version() string {
	p.t.Helper()
	data, err := os.ReadFile(filepath.Join(p.dir, ".release-env"))
	if err != nil {
		p.t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^VERSION=(\S+)`).FindSubmatch(data)
	if m == nil {
		p.t.Fatalf(".release-env has no VERSION:\n%s", data)
	}
	return string(m[1])
}

// release builds, uploads and promotes a new version to the tag the device follows.
func (p *project) release(ctx context.Context, label string) string {
	p.t.Helper()
	p.commit(label)
	start := time.Now()
	p.run(ctx, "prepare-release")
	p.run(ctx, "build-release", "--backend", "native", "--image-compression", "none", system)
	p.run(ctx, "upload-release")
	p.run(ctx, "promote-release", "--tag", "stable")
	v := p.version()
	p.t.Logf("released %s as %s (%s)", label, v, time.Since(start).Round(time.Second))
	return v
}

// machine is one QEMU process: a power cycle of the device.
type machine struct {
	t    *testing.T
	proc *vm.Process
	con  *vm.Console
	log  *os.File
	done chan error
}

func powerOn(ctx context.Context, t *testing.T, cfg vm.Config, logPath string) *machine {
	t.Helper()
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	stdinR, stdinW := io.Pipe()
	stdoutR, stdoutW := io.Pipe()
	// A host whose /dev/kvm opens but cannot run the guest (QEMU 7.2 on AMD EPYC cloud VMs)
	// boots with software emulation instead.
	p, err := cfg.Start(context.Background(), vm.StartOptions{
		Stdio:      vm.Stdio{Stdin: stdinR, Stdout: stdoutW, Stderr: log},
		OnFallback: func(reason string) { t.Logf("KVM not usable, booting with TCG: %s", reason) },
	})
	if err != nil {
		t.Fatalf("start QEMU: %v", err)
	}
	m := &machine{t: t, proc: p, con: vm.NewConsole(stdoutR, stdinW, log), log: log, done: make(chan error, 1)}
	go func() {
		err := p.Wait()
		stdoutW.Close() // the console sees the end of the serial line
		m.done <- err
	}()
	t.Cleanup(func() { m.kill() })
	return m
}

func (m *machine) kill() {
	select {
	case <-m.proc.Done():
	default:
		m.proc.Kill()
		select {
		case <-m.done:
		case <-time.After(10 * time.Second):
		}
	}
	m.log.Close()
}

// powerOff shuts the guest down and waits for QEMU to exit.
func (m *machine) powerOff(ctx context.Context) {
	m.t.Helper()
	m.con.Send("poweroff -f\n")
	select {
	case <-m.done:
	case <-time.After(60 * time.Second):
		m.t.Fatalf("QEMU did not exit after poweroff; last output:\n%s", m.con.Tail(20))
	}
	m.log.Close()
}

// sh runs a command in the guest and fails the test on a non-zero status.
func (m *machine) sh(ctx context.Context, cmd string, timeout time.Duration) string {
	m.t.Helper()
	out, status, err := m.con.Run(ctx, cmd, timeout)
	if err != nil {
		m.t.Fatal(err)
	}
	if status != 0 {
		m.t.Fatalf("guest: %s: exit status %d\n%s", cmd, status, out)
	}
	return out
}

// boot is what the test learns about one boot of the guest.
type boot struct {
	n            int
	rootPARTUUID string
	slot         string // a or b, from the root partition's PARTUUID
	active       string // rugix-ctrl's activeGroup
	defaultGroup string
	version      string // system-build-info.json imageVersion... from the mounted root
}

func (b boot) String() string {
	return fmt.Sprintf("boot %d: slot %s (root PARTUUID=%s), rugix-ctrl active %s default %s, version %s",
		b.n, b.slot, b.rootPARTUUID, b.active, b.defaultGroup, b.version)
}

var readyRE = regexp.MustCompile(regexp.QuoteMeta(vmkit.ReadyMarker))

// waitBoot waits for the guest to be up and reports which slot it booted.
func (m *machine) waitBoot(ctx context.Context, n int, disk string) boot {
	m.t.Helper()
	if _, err := m.con.Expect(ctx, readyRE, bootTimeout); err != nil {
		m.t.Fatalf("boot %d: %v", n, err)
	}
	// The shell may print its prompt after the ready line; a no-op command syncs with it.
	m.sh(ctx, "true", commandTimeout)
	b := boot{n: n}
	cmdline := m.sh(ctx, "cat /proc/cmdline", commandTimeout)
	if mm := regexp.MustCompile(`root=PARTUUID=(\S+)`).FindStringSubmatch(cmdline); mm != nil {
		b.rootPARTUUID = strings.ToLower(mm[1])
	} else {
		m.t.Fatalf("boot %d: no root=PARTUUID= in /proc/cmdline: %q", n, cmdline)
	}
	if !strings.Contains(cmdline, "init=/usr/bin/rugix-ctrl") {
		m.t.Errorf("boot %d: kernel command line lacks init=/usr/bin/rugix-ctrl: %q", n, cmdline)
	}
	parts := readGPT(m.t, disk)
	for _, p := range parts {
		if p.UUID.String() == b.rootPARTUUID {
			switch p.Number {
			case 4:
				b.slot = "a"
			case 5:
				b.slot = "b"
			default:
				m.t.Fatalf("boot %d: root is partition %d, not a system partition", n, p.Number)
			}
		}
	}
	if b.slot == "" {
		m.t.Fatalf("boot %d: root PARTUUID %s is no partition of the disk", n, b.rootPARTUUID)
	}
	var info struct {
		Boot struct {
			ActiveGroup, DefaultGroup string
		}
	}
	if err := json.Unmarshal([]byte(m.sh(ctx, "rugix-ctrl system info --json 2>/dev/null", commandTimeout)), &info); err != nil {
		m.t.Fatalf("boot %d: rugix-ctrl system info: %v", n, err)
	}
	b.active, b.defaultGroup = info.Boot.ActiveGroup, info.Boot.DefaultGroup
	var bi struct{ Release struct{ Version string } }
	if err := json.Unmarshal([]byte(m.sh(ctx, "cat /etc/rugix/system-build-info.json", commandTimeout)), &bi); err != nil {
		m.t.Fatalf("boot %d: build info: %v", n, err)
	}
	b.version = bi.Release.Version
	if b.active != b.slot {
		m.t.Errorf("boot %d: rugix-ctrl says active group %s, the root partition is slot %s", n, b.active, b.slot)
	}
	m.t.Log(b)
	return b
}

func readGPT(t *testing.T, disk string) []gpt.Partition {
	t.Helper()
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	table, err := gpt.Read(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	return table.Partitions()
}

// hubStatus reads dev.nexigon.ota.status as the device published it.
func hubStatus(ctx context.Context, t *testing.T, c *nexigon.Client) agent.Status {
	t.Helper()
	p, ok, err := c.GetProperty(ctx, deviceID, agent.StatusProperty)
	if err != nil || !ok {
		t.Fatalf("Hub status property: found=%v err=%v", ok, err)
	}
	var s agent.Status
	if err := json.Unmarshal(p.Value, &s); err != nil {
		t.Fatalf("Hub status property %s: %v", p.Value, err)
	}
	errText := ""
	if s.LastError != nil {
		errText = *s.LastError
	}
	t.Logf("status: state %s, currentVersion %s, lastError %q", s.State, s.CurrentVersion, errText)
	return s
}

func TestBootAndOTACycle(t *testing.T) {
	requireTools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 14*time.Minute)
	defer cancel()
	start := time.Now()
	root := testkit.RepoRoot(t)
	logs := filepath.Join(root, "build", "e2e")
	os.RemoveAll(logs)
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("serial logs kept in %s", logs)
		} else {
			os.RemoveAll(logs)
		}
	})
	work := t.TempDir()

	// Host side: otabake, and the project with its guest (kernel, initramfs, busybox, agent,
	// rugix-ctrl stand-in), whose agent reaches `hub serve` on the host as 10.0.2.2.
	otabake := testkit.BuildOtabake(t, work)
	port := freePort(t)
	// An organization API token: `hub serve` and the build side take only user and
	// organization tokens, as Nexigon Hub and nexigon-cli do.
	token := nexid.OrganizationAPIToken.New()
	hostURL := "http://127.0.0.1:" + strconv.Itoa(port)
	p := &project{t: t, dir: filepath.Join(work, "project"), otabake: otabake,
		env: []string{"NEXIGON_HUB_URL=" + hostURL, "NEXIGON_TOKEN=" + token}}
	realCtrl, strict := realRugixCtrl(t)
	// Signed bundles and a trusted root baked into the image: what Rugix Ctrl 1.x needs to
	// install anything without --bundle-hash.
	vmp, err := vmkit.WriteProject(ctx, p.dir, vmkit.ProjectOptions{
		ModuleDir: root, CacheDir: filepath.Join(root, ".otabake", "cache", "kernel"),
		HubPort: port, HubToken: token, DeviceID: deviceID, Repository: repository, Package: pkg,
		SigningCA: "e2e", RugixCtrl: realCtrl,
	})
	if err != nil {
		t.Fatal(err)
	}
	// A second CA the device does not trust, for the first deliberate breakage.
	untrusted, err := vmkit.WriteTestCA(filepath.Join(p.dir, "keys"), "untrusted")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kernel %s, %d modules in the initramfs, guest programs built (%s)", vmp.Kernel.Version, len(vmp.Modules), time.Since(start).Round(time.Second))
	p.git("init", "-q", "-b", "main")
	p.commit("initial")
	localEnv := p.env
	p.env = nil // hub init works on the local Hub directory, before the server holds it
	p.run(ctx, "hub", "init", "--repository", repository, "--package", pkg)
	p.env = localEnv
	serve := exec.Command(otabake, "--project-dir", p.dir, "--log-level", "debug", "hub", "serve", "--listen", "127.0.0.1:"+strconv.Itoa(port), "--token", token)
	serveLog, _ := os.Create(filepath.Join(logs, "hub-serve.log"))
	serve.Stdout, serve.Stderr = serveLog, serveLog
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { serve.Process.Kill(); serve.Wait(); serveLog.Close() })
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			c.Close()
			break
		}
		if i > 100 {
			t.Fatal("hub serve did not start listening")
		}
		time.Sleep(100 * time.Millisecond)
	}
	hubClient, err := nexigon.New(hostURL, token)
	if err != nil {
		t.Fatal(err)
	}

	// v1: the image the device is flashed with.
	v1 := p.release(ctx, "v1")
	disk := filepath.Join(work, "disk.img")
	if err := vm.CopySparse(filepath.Join(p.dir, "build", system, "system.img"), disk); err != nil {
		t.Fatal(err)
	}
	// The image is flashed to a larger disk, as on a device. Without
	// /etc/rugix/bootstrapping.toml (Rugix Bakery writes none; rugix-images.md §6.2) Rugix Ctrl
	// bootstraps its default layout with 4 GiB system partitions: it grows system-a to 4 GiB and
	// adds a 4 GiB system-b and data on the rest (silitics/rugix v0.8.15
	// crates/apps/rugix-ctrl/src/init.rs, bootstrap: DefaultLayoutConfig::new(
	// NumBytes::gibibytes(4)); crates/libs/rugix-common/src/disk/repart.rs,
	// generic_efi_partition_schema), and refuses a disk without room for them ("insufficient
	// space, cannot add partition 5"). The file stays sparse.
	if err := os.Truncate(disk, diskBytes); err != nil {
		t.Fatal(err)
	}
	cfg := vm.Config{Disk: disk, Arch: "amd64", MemoryMiB: 512, CPUs: 2, VarsFile: filepath.Join(work, "OVMF_VARS.fd")}
	power := 0
	on := func() *machine {
		power++
		return powerOn(ctx, t, cfg, filepath.Join(logs, fmt.Sprintf("serial-%d.log", power)))
	}
	expectBoot := func(b boot, slot, version, dflt string) {
		t.Helper()
		if b.slot != slot || b.version != version || b.defaultGroup != dflt {
			t.Fatalf("%v; want slot %s, version %s, default group %s", b, slot, version, dflt)
		}
	}
	check := func(m *machine, want string) agent.Status {
		t.Helper()
		out, status, err := m.con.Run(ctx, "otabake-agent check --json", installTimeout)
		if err != nil {
			t.Fatal(err)
		}
		s := hubStatus(ctx, t, hubClient)
		if s.State != want {
			t.Fatalf("agent check exit %d: status %q, want %q\n%s", status, s.State, want, out)
		}
		return s
	}

	m := on()
	b := m.waitBoot(ctx, 1, disk)
	expectBoot(b, "a", v1, "a")
	t.Logf("guest: %s", strings.TrimSpace(m.sh(ctx, "rugix-ctrl --version", commandTimeout)))
	ctrlTOML := m.sh(ctx, "cat /etc/rugix/ctrl.toml", commandTimeout)
	if !strings.Contains(ctrlTOML, "[signatures]") || !strings.Contains(ctrlTOML, "/etc/rugix/root.crt") {
		t.Fatalf("the image's /etc/rugix/ctrl.toml names no trust root:\n%s", ctrlTOML)
	}
	if got := m.sh(ctx, "cat /etc/rugix/root.crt", commandTimeout); !sameCert(t, got, vmp.CA.Root) {
		t.Fatalf("/etc/rugix/root.crt in the image is not the project's root %s:\n%s", vmp.CA.Root, got)
	}
	t.Log("the image trusts the project's root: /etc/rugix/ctrl.toml [signatures] roots = /etc/rugix/root.crt")
	if s := check(m, "completed"); s.CurrentVersion != v1 {
		t.Fatalf("currentVersion %s, want %s", s.CurrentVersion, v1)
	}

	// v2: download with range requests, install to slot B, spare reboot, commit.
	v2 := p.release(ctx, "v2")
	m.con.Send("otabake-agent check --json\n")
	b = m.waitBoot(ctx, 2, disk)
	expectBoot(b, "b", v2, "a")
	ranges := rangeRequests(t, serveLog.Name())
	if realCtrl == "" && ranges < 2 {
		t.Errorf("the bundle was fetched with %d range requests, want several", ranges)
	}
	if s := check(m, "completed"); s.CurrentVersion != v2 {
		t.Fatalf("currentVersion %s, want %s", s.CurrentVersion, v2)
	}
	m.powerOff(ctx)
	m = on() // cold boot: stays on the committed slot
	b = m.waitBoot(ctx, 3, disk)
	expectBoot(b, "b", v2, "b")

	// v3: installed and booted once, never committed; the watchdog rolls it back.
	if realCtrl != "" {
		// Rugix Ctrl 0.8.x fetches with range requests only when a slot has a stored block index
		// (silitics/rugix v0.8.15 crates/apps/rugix-ctrl/src/cli.rs, install_update_stream:
		// HttpSource::new(image, … && has_indices)); it creates none itself, and its docs have
		// the installer create them for the active slots first (www/docs/ctrl/delta-updates.mdx,
		// "Dynamic Delta Updates"), with the parameters of the bundle's block index.
		idx := time.Now()
		for _, slot := range []string{"boot-b", "system-b"} {
			m.sh(ctx, "rugix-ctrl slots create-index "+slot+" casync-64 sha512-256", installTimeout)
		}
		t.Logf("real rugix-ctrl: created casync-64 sha512-256 block indices of boot-b and system-b (%s), as delta-updates.mdx has the installer do", time.Since(idx).Round(time.Second))
	}
	v3 := p.release(ctx, "v3")
	m.con.Send("otabake-agent check --json\n")
	b = m.waitBoot(ctx, 4, disk)
	expectBoot(b, "a", v3, "b")
	if n := rangeRequests(t, serveLog.Name()); n-ranges < 2 {
		t.Errorf("the v3 bundle was fetched with %d range requests, want several", n-ranges)
	}
	m.con.Send("otabake-agent watchdog --json\n")
	b = m.waitBoot(ctx, 5, disk)
	expectBoot(b, "b", v2, "b")
	s := check(m, "failed")
	if s.LastError == nil || !strings.Contains(*s.LastError, "rolled back") || s.CurrentVersion != v2 {
		t.Fatalf("after the rollback: %+v, want failed, \"rolled back\", currentVersion %s", s, v2)
	}

	tomlPath := filepath.Join(p.dir, "otabake.toml")
	trustedTOML, err := os.ReadFile(tomlPath)
	if err != nil {
		t.Fatal(err)
	}
	boots := 5
	// refused installs one release through the agent, which must fail with want in its error
	// (when set), then reboots and checks the device is still on its committed slot b, v2.
	refused := func(what, want string) {
		t.Helper()
		p.run(ctx, "upload-release")
		p.run(ctx, "promote-release", "--tag", "stable")
		out, status, err := m.con.Run(ctx, "otabake-agent check --json --ignore-backoff", installTimeout)
		if err != nil {
			t.Fatal(err)
		}
		s := hubStatus(ctx, t, hubClient)
		lastErr := ""
		if s.LastError != nil {
			lastErr = *s.LastError
		}
		if status == 0 || s.State != "failed" || !strings.Contains(lastErr, want) {
			t.Fatalf("%s: agent exit %d, status %s, lastError %q; want failed with %q\n%s", what, status, s.State, lastErr, want, out)
		}
		m.sh(ctx, "sync", commandTimeout)
		m.con.Send("reboot\n")
		boots++
		b := m.waitBoot(ctx, boots, disk)
		expectBoot(b, "b", v2, "b")
		t.Logf("REFUSED %s: %s; after reboot the device is on slot %s (default %s), version %s", what, lastErr, b.slot, b.defaultGroup, b.version)
	}

	// Deliberate breakage 1: a bundle signed by a CA the device does not trust (the project
	// switches to the untrusted CA's signer) is refused.
	untrustedTOML := strings.NewReplacer("keys/e2e-", "keys/untrusted-").Replace(string(trustedTOML))
	if err := os.WriteFile(tomlPath, []byte(untrustedTOML), 0o644); err != nil {
		t.Fatal(err)
	}
	p.commit("v5-untrusted-ca")
	p.run(ctx, "prepare-release")
	p.run(ctx, "build-release", "--backend", "native", "--image-compression", "none", system)
	t.Logf("built %s signed by %s", p.version(), untrusted.Cert)
	refused("bundle signed by an untrusted CA", map[bool]string{true: "bundle verification failed, refusing to install update", false: ""}[strict])
	if err := os.WriteFile(tomlPath, trustedTOML, 0o644); err != nil {
		t.Fatal(err)
	}

	// Deliberate breakage 2: a bundle signed by the trusted CA whose payloads carry no block
	// index is refused by Rugix Ctrl >= 1.2 (0.8.x has no such rule).
	if strict {
		p.commit("v6-no-block-index")
		p.run(ctx, "prepare-release")
		p.run(ctx, "build-release", "--backend", "native", "--image-compression", "none", system)
		withoutBlockIndex(ctx, t, filepath.Join(p.dir, "build", system), vmp.CA)
		refused("bundle without a block index", "does not have a block index, refusing to install")
	} else {
		t.Logf("SKIP the block-index refusal: %s is Rugix Ctrl 0.8.x, which installs bundles without a block index (the rule came with 1.2.0)", realCtrl)
	}

	// Deliberate breakage 3: a bundle whose system payload is corrupted is refused by its
	// block hashes and the device keeps booting its committed slot.
	if realCtrl != "" {
		// With slot-b's block index Rugix Ctrl 0.8.x downloads only the blocks it lacks and
		// copies the others from system-b, and the corrupted block is one it has (the release
		// differs from v2 in a few blocks): the bundle installs, rightly. Without indices it
		// streams the whole bundle and checks every block (silitics/rugix v0.8.15 slot_db.rs,
		// db_dir and get_stored_indices).
		m.sh(ctx, "rm -f /run/rugix/mounts/data/rugix/slots/*/*.rugix-block-index", commandTimeout)
		t.Log("real rugix-ctrl: removed the slot block indices, so that the corrupted bundle is streamed in full")
	}
	// Stored blocks without compression, so that the flipped byte reaches the hash check
	// instead of failing xz's own integrity check first.
	if err := os.WriteFile(tomlPath, append(trustedTOML, "\n[systems.vm.bundle]\ncompression = \"none\"\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	p.commit("v4-corrupt")
	p.run(ctx, "prepare-release")
	p.run(ctx, "build-release", "--backend", "native", "--image-compression", "none", system)
	corruptSystemPayload(t, filepath.Join(p.dir, "build", system, "system.rugixb"))
	p.run(ctx, "upload-release")
	p.run(ctx, "promote-release", "--tag", "stable")
	out, status, err := m.con.Run(ctx, "otabake-agent check --json --ignore-backoff", installTimeout)
	if err != nil {
		t.Fatal(err)
	}
	s = hubStatus(ctx, t, hubClient)
	if status == 0 || s.State != "failed" || s.LastError == nil || !strings.Contains(strings.ToLower(*s.LastError), "hash") {
		t.Fatalf("corrupted bundle: agent exit %d, status %+v; want failed with a block hash error\n%s", status, s, out)
	}
	m.sh(ctx, "sync", commandTimeout)
	m.con.Send("reboot\n")
	boots++
	b = m.waitBoot(ctx, boots, disk)
	expectBoot(b, "b", v2, "b")

	// Deliberate breakage 4: a primary.grubenv that does not match its .sha1 (a torn write) is
	// ignored by GRUB, which boots secondary.grubenv's slot b. Rugix Ctrl reads the primary
	// environment alone, unchecked (silitics/rugix v0.8.15 boot_flows/mod.rs, GrubEfi
	// get_default), so it reports the torn value, default group a.
	m.powerOff(ctx)
	tornPrimary(t, disk)
	m = on()
	boots++
	b = m.waitBoot(ctx, boots, disk)
	expectBoot(b, "b", v2, "a")
	if !strings.Contains(m.con.Output(), "/rugpi/primary.grubenv: HASH MISMATCH") {
		t.Errorf("GRUB did not report the primary env's hash mismatch on boot %d", boots)
	}
	m.powerOff(ctx)
	t.Logf("boot proof passed in %s with %s: %d boots, 1 rollback, every broken release refused", time.Since(start).Round(time.Second), ctrlName(realCtrl), boots)
}

// corruptSystemPayload flips one byte in the middle of the stored data of the system payload.
func corruptSystemPayload(t *testing.T, path string) {
	t.Helper()
	b, err := bundle.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var off int64 = -1
	for _, p := range b.Payloads() {
		if p.Slot() == "system" {
			off = p.DataOffset + p.DataSize/2
		}
	}
	b.Close()
	if off < 0 {
		t.Fatal("bundle has no system payload")
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var one [1]byte
	f.ReadAt(one[:], off)
	one[0] ^= 0x5a
	if _, err := f.WriteAt(one[:], off); err != nil {
		t.Fatal(err)
	}
	t.Logf("corrupted %s at offset %d (system payload data)", filepath.Base(path), off)
}

// tornPrimary writes rugpi_bootpart=2 into primary.grubenv without updating its .sha1.
func tornPrimary(t *testing.T, disk string) {
	t.Helper()
	parts := readGPT(t, disk)
	env, err := bootenv.EncodeGrubEnv([]bootenv.Var{{Name: "rugpi_bootpart", Value: "2"}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := image.ReplaceFATFile(f, parts[0].Offset(), parts[0].Bytes(), "rugpi/primary.grubenv", env); err != nil {
		t.Fatal(err)
	}
	t.Log("primary.grubenv now says rugpi_bootpart=2 and no longer matches primary.grubenv.sha1")
}

// rangeRequests counts the blob downloads with a Range header that `hub serve` answered with
// 206 Partial Content, from its debug log.
func rangeRequests(t *testing.T, log string) int {
	t.Helper()
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, "method=GET") && strings.Contains(line, "/api/v1/blobs/") && strings.Contains(line, "status=206") && strings.Contains(line, "range=") {
			n++
		}
	}
	t.Logf("hub serve answered %d range requests for blobs so far", n)
	return n
}

// TestRunQuickstart: `otabake run` boots the quickstart's EFI image through OVMF and real GRUB;
// --spare takes the (empty) spare boot partition once, GRUB falls back to the default group on
// the next boot, and --snapshot leaves the image file as built.
func TestRunQuickstart(t *testing.T) {
	requireTools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	root := testkit.RepoRoot(t)
	work := t.TempDir()
	otabake := testkit.BuildOtabake(t, work)
	p := &project{t: t, dir: filepath.Join(work, "quickstart"), otabake: otabake}
	cp := exec.Command("cp", "-r", filepath.Join(root, "examples", "quickstart"), p.dir)
	if out, err := cp.CombinedOutput(); err != nil {
		t.Fatalf("copy quickstart: %v\n%s", err, out)
	}
	os.RemoveAll(filepath.Join(p.dir, "build"))
	os.RemoveAll(filepath.Join(p.dir, ".otabake"))
	p.git("init", "-q", "-b", "main")
	p.commit("quickstart")
	p.run(ctx, "release", "quickstart-efi-amd64")
	img := filepath.Join(p.dir, "build", "quickstart-efi-amd64", "system.img")
	before, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, otabake, "--project-dir", p.dir, "run", "--snapshot", "--spare", "--ssh-port", "0", "quickstart-efi-amd64")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	console := strings.ReplaceAll(out.String(), "\r", "")
	logPath := filepath.Join(root, "build", "e2e", "run-quickstart.log")
	if err != nil {
		os.MkdirAll(filepath.Dir(logPath), 0o755)
		os.WriteFile(logPath, out.Bytes(), 0o644)
		t.Fatalf("otabake run: %v (console in %s)\n%s", err, logPath, vm.LastLines(console, 30))
	}
	spare := strings.Index(console, "no bootable second stage on partition 3")
	dflt := strings.LastIndex(console, "GRUB chose boot partition 2")
	if spare < 0 || dflt < spare || !strings.Contains(console, "Welcome to GRUB") {
		t.Fatalf("want a spare boot of partition 3, then the default partition 2; console:\n%s", vm.LastLines(console, 30))
	}
	after, err := os.ReadFile(img)
	if err != nil || !bytes.Equal(before, after) {
		t.Errorf("--snapshot changed %s", img)
	}
	t.Log("otabake run quickstart-efi-amd64 --snapshot --spare: OVMF → GRUB → spare boot of partition 3 (empty) → reboot → partition 2; image unchanged")
}

// realRugixCtrl returns the real rugix-ctrl binary named by OTABAKE_E2E_RUGIX_CTRL (empty: the
// stand-in) and whether it enforces the Rugix Ctrl 1.x rules (the stand-in does; a real binary
// does from 1.2 on, which its --version tells).
func realRugixCtrl(t *testing.T) (string, bool) {
	t.Helper()
	bin := os.Getenv("OTABAKE_E2E_RUGIX_CTRL")
	if bin == "" {
		return "", true
	}
	bin, err := filepath.Abs(bin)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("OTABAKE_E2E_RUGIX_CTRL=%s: --version: %v\n%s", bin, err, out)
	}
	m := regexp.MustCompile(`(\d+)\.(\d+)\.(\d+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("OTABAKE_E2E_RUGIX_CTRL=%s: no version in %q", bin, out)
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	t.Logf("using the real %s (%s) instead of the stand-in", bin, strings.TrimSpace(string(out)))
	return bin, major > 1 || (major == 1 && minor >= 2)
}

func ctrlName(real string) string {
	if real == "" {
		return "the rugix-ctrl stand-in"
	}
	return "the real " + real
}

// sameCert reports whether the PEM text got holds the certificate of the PEM file want.
func sameCert(t *testing.T, got, want string) bool {
	t.Helper()
	w, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	norm := func(s string) string { return strings.Join(strings.Fields(strings.ReplaceAll(s, "\r", "")), "") }
	return norm(got) == norm(string(w))
}

// withoutBlockIndex rewrites dir/system.rugixb with the same payloads stored without a block
// index, signed by ca's signer, and rewrites system.rugixb-hash.
func withoutBlockIndex(ctx context.Context, t *testing.T, dir string, ca *vmkit.TestCA) {
	t.Helper()
	path := filepath.Join(dir, "system.rugixb")
	b, err := bundle.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	var spec bundle.Spec
	for _, pl := range b.Payloads() {
		f, err := os.Create(filepath.Join(tmp, fmt.Sprintf("payload-%d.img", pl.Index)))
		if err != nil {
			t.Fatal(err)
		}
		_, err = b.Extract(ctx, pl.Index, f, bundle.ExtractOptions{})
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatalf("extract payload %d of %s: %v", pl.Index, path, err)
		}
		spec.Payloads = append(spec.Payloads, bundle.Payload{Slot: pl.Slot(), Path: f.Name()})
	}
	b.Close()
	unsigned := filepath.Join(tmp, "unsigned.rugixb")
	if _, err := bundle.Create(ctx, unsigned, spec, bundle.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	signer, err := sign.LoadSigner(ctx, ca.Key, ca.Cert, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := bundle.Sign(ctx, unsigned, path, signer); err != nil {
		t.Fatal(err)
	}
	nb, err := bundle.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer nb.Close()
	for _, pl := range nb.Payloads() {
		if pl.Header.BlockEncoding != nil {
			t.Fatalf("payload %d of the rewritten bundle still has a block index", pl.Index)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "system.rugixb-hash"), []byte(nb.Hash()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("rewrote %s without block indices, signed by %s: %s", path, ca.Cert, nb.Hash())
}
