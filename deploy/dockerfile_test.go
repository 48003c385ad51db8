package deploy

// The Dockerfile (read line by line: no kept Go parser for it is in
// go.mod), its .dockerignore, and the images every target runs.

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

func checkImages(b *bundle, p *problems) {
	type use struct{ where, image string }
	var uses []use
	for _, name := range sortedKeys(b.compose.Services) {
		s := b.compose.Services[name]
		if s.Image == "" {
			p.add("compose service %s: no image (a built service names its image too)", name)
			continue
		}
		uses = append(uses, use{"compose service " + name, s.Image})
	}
	for _, o := range b.k8s {
		switch o.Kind {
		case "Deployment", "DaemonSet", "StatefulSet":
		default:
			continue
		}
		pod := podTemplate(o).Spec
		for _, c := range append(pod.InitContainers, pod.Containers...) {
			uses = append(uses, use{fmt.Sprintf("%s container %s", o, c.Name), c.Image})
		}
	}
	for _, st := range dockerStages(b.dockerfile) {
		if !st.fromStage && st.image != "scratch" {
			uses = append(uses, use{"Dockerfile FROM", st.image})
		}
	}
	if len(uses) == 0 {
		p.add("no images found")
	}
	tags := map[string][]string{}
	for _, u := range uses {
		if u.image == "" {
			p.add("%s: no image", u.where)
			continue
		}
		_, tag, digest := imageTag(u.image)
		if digest == "" && (tag == "" || tag == "latest") {
			p.add("%s: image %s is not pinned: give it a version tag or a digest, never :latest", u.where, u.image)
		}
		if strings.Contains(u.image, "$") {
			p.add("%s: image %s is not a fixed name", u.where, u.image)
		}
		if _, ok := imageProgram(u.image); ok {
			tags[tag] = append(tags[tag], u.where)
		}
	}
	if len(tags) > 1 {
		p.add("Netview's images carry different tags: %v (one release everywhere)", tags)
	}
}

type dockerStage struct {
	image, name string
	fromStage   bool     // FROM an earlier stage
	parent      string   // that stage
	lines       []string // its instructions
}

func dockerStages(src string) []dockerStage {
	var stages []dockerStage
	names := map[string]bool{}
	src = strings.ReplaceAll(src, "\\\n", " ")
	for _, l := range strings.Split(src, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.Fields(l)
		if strings.EqualFold(f[0], "FROM") {
			var st dockerStage
			for _, w := range f[1:] {
				if !strings.HasPrefix(w, "--") {
					st.image = w
					break
				}
			}
			if i := len(f) - 2; i > 1 && strings.EqualFold(f[i], "AS") {
				st.name = f[i+1]
			}
			if names[st.image] {
				st.fromStage, st.parent = true, st.image
			}
			names[st.name] = true
			stages = append(stages, st)
			continue
		}
		if len(stages) > 0 {
			stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, l)
		}
	}
	return stages
}

// stageInstr returns the arguments of a stage's instructions named instr.
func stageInstr(st dockerStage, instr string) []string {
	var out []string
	for _, l := range st.lines {
		f := strings.Fields(l)
		if strings.EqualFold(f[0], instr) {
			out = append(out, strings.TrimSpace(l[len(f[0]):]))
		}
	}
	return out
}

func checkDockerfile(b *bundle, p *problems) {
	stages := dockerStages(b.dockerfile)
	byName := map[string]dockerStage{}
	for _, st := range stages {
		byName[st.name] = st
	}
	// The Go toolchain image is at least go.mod's version.
	gomod, err := os.ReadFile(filepath.Join(b.repo, "go.mod"))
	if err != nil {
		p.add("%v", err)
		return
	}
	want := regexp.MustCompile(`(?m)^go (\d+\.\d+(?:\.\d+)?)`).FindStringSubmatch(string(gomod))
	foundGo := false
	for _, st := range stages {
		repo, tag, _ := imageTag(st.image)
		if repo != "golang" {
			continue
		}
		foundGo = true
		v := regexp.MustCompile(`^\d+\.\d+(?:\.\d+)?`).FindString(tag)
		if want == nil || v == "" || versionLess(v, want[1]) {
			p.add("Dockerfile builds with %s, but go.mod wants go %v", st.image, want)
		}
	}
	if !foundGo {
		p.add("Dockerfile: no golang build stage")
	}
	// It builds the three programs, from packages that exist.
	build := ""
	for _, st := range stages {
		for _, r := range stageInstr(st, "RUN") {
			if strings.Contains(r, "go build") {
				build += r + "\n"
			}
		}
	}
	for _, prog := range []program{progIngest, progQuery, progSensor} {
		pkg := "./cmd/" + string(prog)
		if !strings.Contains(build, pkg) {
			p.add("Dockerfile: go build does not build %s", pkg)
		}
		if _, err := os.Stat(filepath.Join(b.repo, pkg, "main.go")); err != nil {
			p.add("Dockerfile builds %s, which does not exist: %v", pkg, err)
		}
		st, ok := byName[strings.TrimPrefix(string(prog), "netview-")]
		if !ok {
			p.add("Dockerfile: no stage %q for %s", strings.TrimPrefix(string(prog), "netview-"), prog)
			continue
		}
		ep := strings.Join(stageInstr(st, "ENTRYPOINT"), " ")
		if !strings.Contains(ep, string(prog)) {
			p.add("Dockerfile stage %s: ENTRYPOINT %q does not run %s", st.name, ep, prog)
		}
		user := stageUser(stages, st)
		switch prog {
		case progSensor:
		default:
			if user == "" || user == "0" || user == "root" || strings.HasPrefix(user, "0:") || strings.HasPrefix(user, "root:") {
				p.add("Dockerfile stage %s: runs as %q; %s needs no root", st.name, user, prog)
			}
			port := addrPort(flagDefault(prog, map[program]string{progIngest: "ingest.addr", progQuery: "query.addr"}[prog]))
			if e := strings.Join(stageInstr(st, "EXPOSE"), " "); !strings.Contains(e, port) {
				p.add("Dockerfile stage %s: EXPOSE %q, want the program's port %s", st.name, e, port)
			}
		}
	}
	// Compose builds targets that exist, from this Dockerfile.
	for _, name := range sortedKeys(b.compose.Services) {
		s := b.compose.Services[name]
		if s.Build == nil {
			continue
		}
		// Paths relative to the repository root: compose.yaml is in deploy/compose.
		bctx := b.composeRel(s.Build.Context)
		ctx := filepath.Join("deploy", "compose", bctx)
		if ctx != "." {
			p.add("compose service %s: build context %s is not the repository root", name, bctx)
		}
		df := s.Build.Dockerfile
		if filepath.IsAbs(df) {
			df, _ = filepath.Rel(s.Build.Context, df)
		}
		if filepath.Join(ctx, df) != filepath.Join("deploy", "Dockerfile") {
			p.add("compose service %s builds %s in %s, not deploy/Dockerfile", name, df, bctx)
		}
		st, ok := byName[s.Build.Target]
		if !ok {
			p.add("compose service %s: build target %q is not a stage of the Dockerfile", name, s.Build.Target)
			continue
		}
		if prog, ok := imageProgram(s.Image); ok && !strings.Contains(strings.Join(stageInstr(st, "ENTRYPOINT"), " "), string(prog)) {
			p.add("compose service %s: image %s is built from stage %s, which does not run %s", name, s.Image, st.name, prog)
		}
	}
	// The context leaves out the engine library cache and build output.
	ignored := map[string]bool{}
	for _, l := range strings.Split(b.dockerignore, "\n") {
		ignored[strings.Trim(strings.TrimSpace(l), "/")] = true
	}
	for _, must := range []string{".cache", "bin", "data", ".git"} {
		if !ignored[must] {
			p.add("Dockerfile.dockerignore does not leave out %s (the build context would carry it)", must)
		}
	}
}

// stageUser is the USER a stage ends with, inherited from its parent stages.
func stageUser(stages []dockerStage, st dockerStage) string {
	if us := stageInstr(st, "USER"); len(us) > 0 {
		return us[len(us)-1]
	}
	if st.fromStage {
		for _, s := range stages {
			if s.name == st.parent {
				return stageUser(stages, s)
			}
		}
	}
	return ""
}

func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) || i < len(pb); i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}
