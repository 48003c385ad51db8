package deploy

// YAML through node and the npm package yaml.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// yamlScript turns every document of the YAML on stdin into JSON, refusing
// documents with errors or warnings (duplicate keys, bad indentation...).
// Kubernetes reads YAML 1.1 (so 0440 is octal and merge keys work), Compose
// YAML 1.2 with merge keys; argv[1] says which.
const yamlScript = `
const YAML = require(process.env.NETVIEW_NODE_MODULES + '/yaml');
let src = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (c) => { src += c; });
process.stdin.on('end', () => {
  const version = process.argv[1];
  const docs = YAML.parseAllDocuments(src, { version, merge: true, uniqueKeys: true, prettyErrors: true });
  const out = [];
  for (const d of [].concat(docs)) {
    const bad = [].concat(d.errors || [], d.warnings || []);
    if (bad.length) {
      process.stderr.write(bad.map((e) => e.message).join('\n') + '\n');
      process.exit(2);
    }
    const v = d.toJS({ maxAliasCount: 1000 });
    if (v !== null && v !== undefined) out.push(v);
  }
  process.stdout.write(JSON.stringify(out));
});
`

// nodeModules returns $NETVIEW_NODE_MODULES, or skips the test without it.
func nodeModules(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("NETVIEW_NODE_MODULES")
	if dir == "" {
		t.Skip("NETVIEW_NODE_MODULES is not set: the YAML checks need node and the npm package yaml " +
			"(make installs yaml@2.9.1 into .cache/node/node_modules and sets NETVIEW_NODE_MODULES; " +
			"by hand: npm install --prefix .cache/node yaml@2.9.1 && export NETVIEW_NODE_MODULES=$PWD/.cache/node/node_modules)")
	}
	return dir
}

var (
	yamlMu    sync.Mutex
	yamlCache = map[[32]byte][]json.RawMessage{}
	yamlOnce  sync.Once
	yamlSetup error
)

// checkYAMLTool fails the test when NETVIEW_NODE_MODULES is set but node or
// the package cannot be used: a broken setup must not pass as a skip.
func checkYAMLTool(t testing.TB) {
	t.Helper()
	nodeModules(t)
	yamlOnce.Do(func() {
		if _, err := exec.LookPath("node"); err != nil {
			yamlSetup = fmt.Errorf("NETVIEW_NODE_MODULES is set but node is not on PATH: %w", err)
			return
		}
		docs, err := parseYAML("1.2", []byte("a: [1, {b: c}]\n---\nd: e\n"))
		if err != nil {
			yamlSetup = fmt.Errorf("NETVIEW_NODE_MODULES=%s: cannot parse YAML with it: %w", os.Getenv("NETVIEW_NODE_MODULES"), err)
			return
		}
		if len(docs) != 2 || string(docs[0]) != `{"a":[1,{"b":"c"}]}` {
			yamlSetup = fmt.Errorf("NETVIEW_NODE_MODULES=%s: yaml parsed a test document wrongly: %s", os.Getenv("NETVIEW_NODE_MODULES"), docs)
		}
	})
	if yamlSetup != nil {
		t.Fatal(yamlSetup)
	}
}

// parseYAML returns every document of src as JSON.
func parseYAML(version string, src []byte) ([]json.RawMessage, error) {
	key := sha256.Sum256(append([]byte(version+"\x00"), src...))
	yamlMu.Lock()
	docs, ok := yamlCache[key]
	yamlMu.Unlock()
	if ok {
		return docs, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "-e", yamlScript, version)
	cmd.Stdin = bytes.NewReader(src)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	if err := json.Unmarshal(stdout.Bytes(), &docs); err != nil {
		return nil, fmt.Errorf("node's output: %w", err)
	}
	yamlMu.Lock()
	yamlCache[key] = docs
	yamlMu.Unlock()
	return docs, nil
}
