// Package deploytest checks the deployment files that cannot run on CI (no Docker engine there): the
// compose file parses, names every service the README names, runs binaries that exist, and configures
// them only with variables the engine reads.
package deploytest

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Build       any               `yaml:"build"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Profiles    []string          `yaml:"profiles"`
		Healthcheck *struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
		DependsOn map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
	} `yaml:"services"`
}

func root(t *testing.T) string {
	t.Helper()
	dir, _ := os.Getwd()
	return filepath.Dir(dir)
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root(t), "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("docker-compose.yml does not parse: %v", err)
	}
	return c
}

func TestComposeNamesEveryServiceTheREADMENames(t *testing.T) {
	c := loadCompose(t)
	readme, err := os.ReadFile(filepath.Join(root(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	// The README's compose table lists services as `name` in its first column.
	m := regexp.MustCompile("(?m)^\\| `([a-z0-9-]+)` \\| compose service").FindAllStringSubmatch(string(readme), -1)
	if len(m) == 0 {
		t.Fatal("README.md has no compose service table")
	}
	named := map[string]bool{}
	for _, x := range m {
		named[x[1]] = true
		if _, ok := c.Services[x[1]]; !ok {
			t.Errorf("README names service %q that docker-compose.yml lacks", x[1])
		}
	}
	for name := range c.Services {
		if !named[name] {
			t.Errorf("docker-compose.yml has service %q the README does not describe", name)
		}
	}
	for _, want := range []string{"postgresql", "temporal", "temporal-ui", "worker", "webhook", "emulator"} {
		if _, ok := c.Services[want]; !ok {
			t.Errorf("production topology lacks %q", want)
		}
	}
	if p := c.Services["emulator"].Profiles; len(p) != 1 || p[0] != "dev" {
		t.Errorf("the emulator must only run in the dev profile, got %v", p)
	}
}

func TestComposeRunsRealBinariesWithKnownVariables(t *testing.T) {
	c := loadCompose(t)
	known := knownVariables(t)
	binaries := map[string]string{"worker": "worker", "webhook": "webhook", "starter": "starter", "emulator": "cmd/emulator"}
	for name, svc := range c.Services {
		if svc.Image != "saasengine:latest" {
			continue
		}
		if svc.Build == nil {
			t.Errorf("%s: engine services build the image from the Dockerfile", name)
		}
		if len(svc.Command) == 0 {
			t.Errorf("%s: no command", name)
			continue
		}
		dir, ok := binaries[svc.Command[0]]
		if !ok {
			t.Errorf("%s: runs %q, which the Dockerfile does not build", name, svc.Command[0])
			continue
		}
		if _, err := os.Stat(filepath.Join(root(t), dir, "main.go")); err != nil {
			t.Errorf("%s: %s has no main.go", name, dir)
		}
		for k := range svc.Environment {
			if !known[k] {
				t.Errorf("%s: sets %s, which no engine binary reads", name, k)
			}
		}
		if svc.Healthcheck == nil && !strings.HasPrefix(name, "temporal-") {
			t.Errorf("%s: no health check", name)
		}
	}
	for name, svc := range c.Services {
		for dep := range svc.DependsOn {
			if _, ok := c.Services[dep]; !ok {
				t.Errorf("%s depends on unknown service %s", name, dep)
			}
		}
	}
}

// knownVariables collects every environment variable name the Go sources read.
func knownVariables(t *testing.T) map[string]bool {
	t.Helper()
	re := regexp.MustCompile(`"([A-Z][A-Z0-9_]{2,})"`)
	known := map[string]bool{}
	err := filepath.WalkDir(root(t), func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "data") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			known[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return known
}
