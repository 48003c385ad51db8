package deploy

// systemd: deploy/systemd/netview-sensor.service, read by a small unit
// file parser (no Go parser of unit files is kept in go.mod), and
// systemd/install.sh; systemd-analyze when it is installed.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// unit is a unit file: section -> key -> values in order (a key may repeat).
type unit map[string]map[string][]string

func parseUnit(src string) (unit, error) {
	u := unit{}
	section := ""
	lines := strings.Split(src, "\n")
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		for strings.HasSuffix(l, "\\") && i+1 < len(lines) {
			i++
			l = strings.TrimSuffix(l, "\\") + " " + strings.TrimSpace(lines[i])
		}
		switch {
		case l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";"):
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			section = l[1 : len(l)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok || section == "" {
				return nil, fmt.Errorf("line %d: %q is not key=value in a section", i+1, l)
			}
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			u[section][k] = append(u[section][k], v)
		}
	}
	return u, nil
}

// last is the effective value of a key that is set once or overridden.
func (u unit) last(section, key string) string {
	vs := u[section][key]
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// expandUnitEnv expands ${VAR} (one word) and $VAR (split on white space)
// in an ExecStart= line as systemd does, with the EnvironmentFile's values.
func expandUnitEnv(words []string, env map[string]string) ([]string, []string) {
	var out, missing []string
	for _, w := range words {
		if strings.HasPrefix(w, "$") && !strings.HasPrefix(w, "${") {
			v, ok := env[w[1:]]
			if !ok {
				missing = append(missing, w[1:])
			}
			out = append(out, strings.Fields(v)...)
			continue
		}
		w = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`).ReplaceAllStringFunc(w, func(m string) string {
			name := m[2 : len(m)-1]
			v, ok := env[name]
			if !ok {
				missing = append(missing, name)
			}
			return v
		})
		out = append(out, w)
	}
	return out, missing
}

func checkSystemd(b *bundle, p *problems) {
	u := b.unit
	if u == nil {
		return
	}
	svc := "Service"
	caps := strings.Fields(u.last(svc, "CapabilityBoundingSet"))
	var names []string
	for _, c := range caps {
		names = append(names, strings.TrimPrefix(c, "CAP_"))
	}
	if !sameSet(names, sensorCaps) || !sameSet(names, b.daemonSetCaps()) {
		p.add("unit: CapabilityBoundingSet %v, want the DaemonSet's %v", caps, sensorCaps)
	}
	if amb := strings.Fields(u.last(svc, "AmbientCapabilities")); len(amb) > 0 && !sameSet(amb, caps) {
		p.add("unit: AmbientCapabilities %v beyond the bounding set", amb)
	}
	if user := u.last(svc, "User"); user != "" && user != "root" && u.last(svc, "AmbientCapabilities") == "" {
		p.add("unit: runs as %s without AmbientCapabilities: it would have no capability", user)
	}
	want := map[string][]string{
		"NoNewPrivileges": {"yes", "true"},
		"ProtectSystem":   {"strict"},
		// read-only: rootless Podman's stores are under /home (yes and
		// tmpfs hide them, and the containers' names with them).
		"ProtectHome": {"read-only"},
		// net: joining named namespaces (setns) is the one use; yes
		// forbids it, and no other kind is needed.
		"RestrictNamespaces":    {"net"},
		"PrivateTmp":            {"yes", "true"},
		"ProtectKernelTunables": {"yes", "true"},
		"ProtectKernelModules":  {"yes", "true"},
		"ProtectControlGroups":  {"yes", "true"},
		"RestrictSUIDSGID":      {"yes", "true"},
		"Restart":               {"always", "on-failure"},
	}
	for _, k := range sortedKeys(want) {
		if !contains(want[k], u.last(svc, k)) {
			p.add("unit: %s=%q, want one of %v", k, u.last(svc, k), want[k])
		}
	}
	// What would blind the sensor.
	for k, bad := range map[string][]string{
		"PrivateNetwork": {"yes", "true"},
		"PrivateUsers":   {"yes", "true"},
		"ProtectProc":    {"invisible", "noaccess", "ptraceable"},
		"ProcSubset":     {"pid"},
		"PrivatePIDs":    {"yes", "true"},
	} {
		if contains(bad, u.last(svc, k)) {
			p.add("unit: %s=%s hides the host's sockets or processes from the sensor", k, u.last(svc, k))
		}
	}
	fam := strings.Fields(strings.Join(u[svc]["RestrictAddressFamilies"], " "))
	for _, f := range []string{"AF_NETLINK", "AF_INET", "AF_INET6"} {
		if len(fam) > 0 && (!contains(fam, f) || strings.HasPrefix(fam[0], "~")) {
			p.add("unit: RestrictAddressFamilies %v does not allow %s", fam, f)
		}
	}
	if len(fam) == 0 {
		p.add("unit: no RestrictAddressFamilies")
	}
	if u.last("Install", "WantedBy") != "multi-user.target" {
		p.add("unit: WantedBy=%q, want multi-user.target", u.last("Install", "WantedBy"))
	}

	// ExecStart: the binary install.sh installs, real flags, the token file
	// install.sh writes, the state folder systemd makes.
	exec := strings.Fields(u.last(svc, "ExecStart"))
	if len(exec) == 0 {
		p.add("unit: no ExecStart")
		return
	}
	args, missing := expandUnitEnv(exec[1:], b.unitEnv)
	if len(missing) > 0 {
		p.add("unit: ExecStart uses $%v, which install.sh's %s does not set", missing, u.last(svc, "EnvironmentFile"))
	}
	fs, err := parseFlags(progSensor, args)
	if err != nil {
		p.add("unit: ExecStart: %v", err)
		return
	}
	if b.installRoot != "" {
		if st, err := os.Stat(filepath.Join(b.installRoot, exec[0])); err != nil || st.Mode().Perm() != 0o755 {
			p.add("unit: ExecStart runs %s, which install.sh does not install (mode 0755)", exec[0])
		}
		if ef := strings.TrimPrefix(u.last(svc, "EnvironmentFile"), "-"); ef != "" {
			if _, err := os.Stat(filepath.Join(b.installRoot, ef)); err != nil {
				p.add("unit: EnvironmentFile %s is not written by install.sh", ef)
			}
		}
		tf := val(fs, "sensor.enroll-secret-file")
		st, err := os.Stat(filepath.Join(b.installRoot, tf))
		if err != nil || st.Mode().Perm() != 0o600 {
			p.add("unit: --sensor.enroll-secret-file=%s is not the 0600 file install.sh writes", tf)
		} else if tok, _ := os.ReadFile(filepath.Join(b.installRoot, tf)); strings.TrimSpace(string(tok)) != installToken {
			p.add("unit: install.sh wrote %q into %s, not the enrollment secret it was given", tok, tf)
		}
		ca := val(fs, "sensor.ca-file")
		st, err = os.Stat(filepath.Join(b.installRoot, ca))
		if ca == "" || err != nil || st.Mode().Perm() != 0o644 {
			p.add("unit: --sensor.ca-file=%q is not the 0644 CA file install.sh installs from its --ca-file", ca)
		} else if got, _ := os.ReadFile(filepath.Join(b.installRoot, ca)); string(got) != installCA {
			p.add("unit: install.sh wrote another CA into %s than it was given", ca)
		}
		if val(fs, "sensor.ingest") != installIngest {
			p.add("unit: --sensor.ingest expands to %q, not the URL given to install.sh", val(fs, "sensor.ingest"))
		}
	}
	if sd := u.last(svc, "StateDirectory"); sd == "" || val(fs, "sensor.state") != "/var/lib/"+sd {
		p.add("unit: --sensor.state=%s is not StateDirectory=%s (/var/lib/%s), the one writable folder under ProtectSystem=strict", val(fs, "sensor.state"), sd, sd)
	}
	if val(fs, "sensor.proc") != "/proc" {
		p.add("unit: --sensor.proc=%s turns netlink flow tracking off", val(fs, "sensor.proc"))
	}
	checkSensorSecrets(p, "unit", fs)
	checkEBPF(p, "unit", fs, names)
	checkSystemdAnalyze(b, p, exec[0])
}

// readEnvFile reads KEY=VALUE lines: systemd's EnvironmentFile (Compose's
// .env is compose-go's to read: composeEnv).
func readEnvFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			return nil, fmt.Errorf("%s: %q is not KEY=VALUE", path, l)
		}
		env[k] = strings.Trim(v, `"'`)
	}
	return env, nil
}

// checkSystemdAnalyze runs systemd-analyze verify and security on the unit
// when the tool is here.
func checkSystemdAnalyze(b *bundle, p *problems, binary string) {
	tool, src, ok := toolAndFile(b, "systemd-analyze", "systemd/netview-sensor.service")
	if !ok {
		return
	}
	// verify wants the binary to exist; /bin/true stands in.
	text := []byte(strings.ReplaceAll(string(src), binary, "/bin/true"))
	work, out, err := memoRun("verify", [][]byte{text}, func(work string) (string, error) {
		unitPath := filepath.Join(work, "netview-sensor.service")
		if err := os.WriteFile(unitPath, text, 0o644); err != nil {
			return "", err
		}
		return runCmd(work, nil, tool, "verify", "--man=no", unitPath)
	})
	if err != nil || strings.TrimSpace(out) != "" {
		p.add("systemd-analyze verify: %v\n%s", err, out)
	}
	_, out, err = memoRun("security", [][]byte{text}, func(string) (string, error) {
		return runCmd(work, nil, tool, "security", "--offline=true", "--no-pager", filepath.Join(work, "netview-sensor.service"))
	})
	m := regexp.MustCompile(`Overall exposure level for \S+: (\d+\.\d+)`).FindStringSubmatch(out)
	if err != nil || m == nil {
		p.add("systemd-analyze security: %v\n%s", err, out)
		return
	}
	if score, _ := strconv.ParseFloat(m[1], 64); score > 3.5 {
		p.add("systemd-analyze security: exposure %s, above 3.5: the unit lost hardening", m[1])
	}
}

// TestInstallScript: deploy/systemd/install.sh is valid bash, refuses to
// change the system without root, installs into a DESTDIR, twice to the
// same result, and a dry run changes nothing; it installs a CA file and a
// pin only for an https URL, and moves the token of an older install to
// the enrollment secret.
func TestInstallScript(t *testing.T) {
	script := filepath.Join(deployDir(t), "systemd", "install.sh")
	if out, err := runCmd(".", nil, "bash", "-n", script); err != nil {
		t.Fatalf("bash -n: %v\n%s", err, out)
	}
	head, _ := os.ReadFile(script)
	if !strings.Contains(string(head), "\nset -euo pipefail\n") {
		t.Error("install.sh does not set -euo pipefail")
	}

	t.Run("refuses without root", func(t *testing.T) {
		args := []string{"--ingest", installIngest}
		var out string
		var err error
		if os.Geteuid() == 0 {
			setpriv, lerr := exec.LookPath("setpriv")
			if lerr != nil {
				t.Skip("running as root without setpriv to become another user")
			}
			// A copy nobody can read, in a folder nobody can enter otherwise.
			dir, _ := os.MkdirTemp("", "install")
			defer os.RemoveAll(dir)
			os.Chmod(dir, 0o755)
			cp := filepath.Join(dir, "install.sh")
			os.WriteFile(cp, head, 0o755)
			out, err = runCmd(dir, nil, setpriv, append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "bash", cp}, args...)...)
		} else {
			out, err = runCmd(".", nil, "bash", append([]string{script}, args...)...)
		}
		if err == nil || !strings.Contains(out, "must run as root") {
			t.Errorf("ran without root: %v\n%s", err, out)
		}
	})

	work := t.TempDir()
	bin := filepath.Join(work, "netview-sensor")
	tok := filepath.Join(work, "token")
	os.WriteFile(bin, []byte("#!/bin/sh\necho stand-in\n"), 0o755)
	os.WriteFile(tok, []byte("# the sensor's token\n  first-token  \nsecond-token\n"), 0o644)
	root := filepath.Join(work, "root")
	install := func(extra ...string) (string, error) {
		return runCmd(work, nil, "bash", append([]string{script, "--destdir", root, "--binary", bin}, extra...)...)
	}

	ca := filepath.Join(work, "ca.crt")
	os.WriteFile(ca, []byte(installCA), 0o644)
	pin := strings.Repeat("ab", 32)

	t.Run("refuses without a secret or URL the first time", func(t *testing.T) {
		if out, err := install("--ingest", installIngest); err == nil || !strings.Contains(out, "no enrollment secret") {
			t.Errorf("installed without an enrollment secret: %v\n%s", err, out)
		}
		if out, err := install("--enroll-secret-file", tok); err == nil || !strings.Contains(out, "--ingest") {
			t.Errorf("installed without an ingest URL: %v\n%s", err, out)
		}
		if out, err := install("--ingest", "ftp://x", "--enroll-secret-file", tok); err == nil {
			t.Errorf("installed with an ftp:// URL:\n%s", out)
		}
		if out, err := install("--ingest", "http://ingest.example.net/v1/heartbeat", "--enroll-secret-file", tok, "--ca-file", ca); err == nil || !strings.Contains(out, "https://") {
			t.Errorf("installed a CA file for an http:// URL (the sensor would refuse it): %v\n%s", err, out)
		}
		if out, err := install("--ingest", installIngest, "--enroll-secret-file", tok, "--ca-file", tok); err == nil || !strings.Contains(out, "no PEM certificate") {
			t.Errorf("installed a CA file without a certificate: %v\n%s", err, out)
		}
		if out, err := install("--ingest", installIngest, "--enroll-secret-file", tok, "--pin-sha256", "abc"); err == nil {
			t.Errorf("installed a pin that is not a SHA-256:\n%s", out)
		}
		if _, err := os.Stat(root); err == nil {
			t.Error("a refused install left files")
		}
	})

	t.Run("dry run changes nothing", func(t *testing.T) {
		out, err := install("--dry-run", "--ingest", installIngest, "--enroll-secret-file", tok)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if _, err := os.Stat(root); err == nil {
			t.Errorf("the dry run wrote %s", root)
		}
		if !strings.Contains(out, "+ install -m 0600") || strings.Contains(out, "first-token") {
			t.Errorf("the dry run should show the commands, never the token:\n%s", out)
		}
	})

	if out, err := install("--ingest", installIngest, "--token-file", tok, "--ca-file", ca, "--pin-sha256", pin); err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	first := snapshot(t, root)
	want := map[string]string{
		"usr/local/bin/netview-sensor":                                      "-rwxr-xr-x",
		"etc/systemd/system/netview-sensor.service":                         "-rw-r--r--",
		"etc/netview/sensor.env":                                            "-rw-r--r--",
		"etc/netview/sensor.enroll-secret":                                  "-rw-------",
		"etc/netview/ingest-ca.crt":                                         "-rw-r--r--",
		"etc/systemd/system/multi-user.target.wants/netview-sensor.service": "L/etc/systemd/system/netview-sensor.service",
	}
	for path, mode := range want {
		if got := first[path]; !strings.HasPrefix(got, mode) {
			t.Errorf("%s: %q, want %s", path, got, mode)
		}
	}
	unitSrc, _ := os.ReadFile(filepath.Join(deployDir(t), "systemd", "netview-sensor.service"))
	if got, _ := os.ReadFile(filepath.Join(root, "etc/systemd/system/netview-sensor.service")); string(got) != string(unitSrc) {
		t.Error("the installed unit differs from deploy/systemd/netview-sensor.service")
	}
	binSrc, _ := os.ReadFile(bin)
	if got, _ := os.ReadFile(filepath.Join(root, "usr/local/bin/netview-sensor")); string(got) != string(binSrc) {
		t.Error("the installed binary differs from the one given")
	}
	if got, _ := os.ReadFile(filepath.Join(root, "etc/netview/sensor.enroll-secret")); string(got) != "first-token\n" {
		t.Errorf("secret file holds %q, want the file's first line", got)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "etc/netview/ingest-ca.crt")); string(got) != installCA {
		t.Errorf("CA file holds %q, want the one given", got)
	}
	if env, _ := readEnvFile(filepath.Join(root, "etc/netview/sensor.env")); env["NETVIEW_SENSOR_ARGS"] != "--sensor.flavor=standard --sensor.ca-file=/etc/netview/ingest-ca.crt --sensor.pin-sha256="+pin {
		t.Errorf("NETVIEW_SENSOR_ARGS=%q, want the flavor, CA file and pin", env["NETVIEW_SENSOR_ARGS"])
	}

	t.Run("again: nothing changes", func(t *testing.T) {
		out, err := install()
		if err != nil {
			t.Fatalf("second install (settings kept): %v\n%s", err, out)
		}
		if again := snapshot(t, root); fmt.Sprint(again) != fmt.Sprint(first) {
			t.Errorf("a second install changed the tree:\n%v\n%v", first, again)
		}
		if strings.Count(out, "unchanged") != 5 {
			t.Errorf("a second install should leave all five files alone:\n%s", out)
		}
	})

	t.Run("a new secret and flavor replace the old, the URL and TLS settings stay", func(t *testing.T) {
		out, err := runCmd(work, []string{"NETVIEW_SENSOR_ENROLL_SECRET=second"}, "bash", script, "--destdir", root, "--binary", bin, "--flavor", "telecom")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		env, _ := readEnvFile(filepath.Join(root, "etc/netview/sensor.env"))
		tokNow, _ := os.ReadFile(filepath.Join(root, "etc/netview/sensor.enroll-secret"))
		if string(tokNow) != "second\n" || env["NETVIEW_SENSOR_INGEST"] != installIngest ||
			env["NETVIEW_SENSOR_ARGS"] != "--sensor.flavor=telecom --sensor.ca-file=/etc/netview/ingest-ca.crt --sensor.pin-sha256="+pin {
			t.Errorf("secret %q, env %v", tokNow, env)
		}
		if st, _ := os.Stat(filepath.Join(root, "etc/netview/sensor.enroll-secret")); st.Mode().Perm() != 0o600 {
			t.Errorf("secret mode %v after replacing it", st.Mode())
		}
	})

	t.Run("an install from before enrollment keeps its token as the secret", func(t *testing.T) {
		old := filepath.Join(work, "old")
		os.MkdirAll(filepath.Join(old, "etc/netview"), 0o755)
		os.WriteFile(filepath.Join(old, "etc/netview/sensor.env"), []byte("NETVIEW_SENSOR_INGEST="+installIngest+"\nNETVIEW_SENSOR_ARGS=--sensor.flavor=standard\n"), 0o644)
		os.WriteFile(filepath.Join(old, "etc/netview/sensor.token"), []byte("old-token\n"), 0o600)
		out, err := runCmd(work, nil, "bash", script, "--destdir", old, "--binary", bin)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if got, _ := os.ReadFile(filepath.Join(old, "etc/netview/sensor.enroll-secret")); string(got) != "old-token\n" {
			t.Errorf("enrollment secret %q, want the old token", got)
		}
		if _, err := os.Stat(filepath.Join(old, "etc/netview/sensor.token")); err == nil {
			t.Error("the old token file is still there")
		}
	})
}
