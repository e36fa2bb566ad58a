// Package standalone keeps the repository standing alone: no Go file may name a path outside it, so a clone
// anywhere builds and passes its tests with nothing beside it.
package standalone

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestNoGoFileNamesAPathOutsideTheRepository(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	found, err := outsidePaths(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		t.Errorf("%s: names a path outside the repository; put what it needs inside the repository", f)
	}
}

// TestCheckerCanFail runs the check on two small trees in testdata: one whose files name places outside
// their root in each way the check knows (want.txt lists them), and one whose look-alikes stay inside.
func TestCheckerCanFail(t *testing.T) {
	outsideTree := fromTemplates(t, filepath.Join("testdata", "outside"))
	found, err := outsidePaths(outsideTree)
	if err != nil {
		t.Fatal(err)
	}
	// The expected findings are in a file: spelled here, they would be findings in this file.
	b, err := os.ReadFile(filepath.Join("testdata", "outside", "want.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Split(strings.TrimSpace(strings.ReplaceAll(string(b), "{{S}}", sharedWord)), "\n")
	if !slices.Equal(found, want) {
		t.Errorf("found\n  %s\nwant\n  %s", strings.Join(found, "\n  "), strings.Join(want, "\n  "))
	}

	found, err = outsidePaths(filepath.Join("testdata", "inside"))
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 0 {
		t.Errorf("paths inside the root flagged:\n  %s", strings.Join(found, "\n  "))
	}
}

// sharedWord is the folder beside the checkout that the outside tree's files climb to. The tree is kept
// as templates (*.go.tmpl, with {{S}} for it) so that no Go file of the repository names a place outside
// it, not even this check's own bad examples.
var sharedWord = strings.Join([]string{"sha", "red"}, "")

// fromTemplates writes the templates under dir as Go files into a new folder and returns it.
func fromTemplates(t *testing.T, dir string) string {
	t.Helper()
	out := t.TempDir()
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go.tmpl") {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		dst := filepath.Join(out, strings.TrimSuffix(rel, ".tmpl"))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, []byte(strings.ReplaceAll(string(b), "{{S}}", sharedWord)), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// repoRoot is the nearest folder at or above the working directory (a test's package folder) holding go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod at or above the working directory")
		}
		dir = parent
	}
}

// machineRoots are top-level folders whose paths name a place on one machine, never a file in a clone.
var machineRoots = []string{"work", "home", "Users", "root", "tmp", "mnt", "media", "srv", "opt"}

// pathToken picks the path-like words out of a string literal or a comment.
var pathToken = regexp.MustCompile("[^\\s\"'`=,;()<>\\[\\]{}]+")

// outsidePaths lists, as "file:line: what", every place a Go file under root names a path outside root:
// a relative path that climbs above root from the file's folder (where its test runs), an absolute path on
// the machine, a home-relative path, or a ".." joined onto a base the check cannot see. It skips hidden
// folders, testdata (never compiled) and the local state the binaries write (data/, artifacts/).
func outsidePaths(root string) ([]string, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	var found []string
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" ||
				filepath.Dir(path) == root && (name == "data" || name == "artifacts")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := fileOutsidePaths(root, path)
		found = append(found, f...)
		return err
	})
	return found, err
}

func fileOutsidePaths(root, path string) ([]string, error) {
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, path, nil, parser.ParseComments|parser.SkipObjectResolution)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	rel, err := filepath.Rel(root, path)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	var found []string
	report := func(pos token.Pos, what string) {
		found = append(found, fmt.Sprintf("%s:%d: %s", filepath.ToSlash(rel), fset.Position(pos).Line, what))
	}
	check := func(pos token.Pos, text string) {
		for _, word := range pathToken.FindAllString(text, -1) {
			if outside(root, dir, word) {
				report(pos, strconv.Quote(word))
			}
		}
	}
	// Literals already judged as part of a Join, so each place is reported once.
	judged := map[*ast.BasicLit]bool{}
	ast.Inspect(file, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			if isJoin(n) {
				joinOutsidePaths(root, dir, n, judged, report)
			}
		case *ast.BasicLit:
			if n.Kind == token.STRING && !judged[n] {
				if s, err := strconv.Unquote(n.Value); err == nil {
					check(n.Pos(), s)
				}
			}
		}
		return true
	})
	for _, group := range file.Comments {
		for _, c := range group.List {
			check(c.Pos(), c.Text)
		}
	}
	return found, nil
}

// joinOutsidePaths judges filepath.Join/path.Join as one path: its leading literal arguments are a path from
// the file's folder; a ".." after any argument that is not a literal climbs from a base the check cannot see,
// which is reported, since nothing should climb from a computed folder.
func joinOutsidePaths(root, dir string, call *ast.CallExpr, judged map[*ast.BasicLit]bool, report func(token.Pos, string)) {
	var lead []string
	computed := false
	for _, arg := range call.Args {
		lit, ok := arg.(*ast.BasicLit)
		var s string
		if ok && lit.Kind == token.STRING {
			var err error
			if s, err = strconv.Unquote(lit.Value); err != nil {
				ok = false
			}
		} else {
			ok = false
		}
		if !ok {
			computed = true
			continue
		}
		judged[lit] = true
		switch {
		case !computed:
			lead = append(lead, s)
		case slices.Contains(strings.Split(filepath.ToSlash(s), "/"), ".."):
			report(lit.Pos(), strconv.Quote(s)+" after a base the check cannot see")
		}
	}
	if len(lead) > 0 && outside(root, dir, filepath.Join(lead...)) {
		report(call.Args[0].Pos(), strconv.Quote(filepath.ToSlash(filepath.Join(lead...))))
	}
}

func isJoin(call *ast.CallExpr) bool {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != "Join" {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return ok && (pkg.Name == "filepath" || pkg.Name == "path")
}

// outside reports whether word, a path as written in a file in dir, names a place outside root.
func outside(root, dir, word string) bool {
	slashed := filepath.ToSlash(word)
	if strings.HasPrefix(slashed, "~/") && len(slashed) > 2 {
		return true
	}
	if strings.HasPrefix(slashed, "/") {
		first, _, _ := strings.Cut(strings.TrimPrefix(slashed, "/"), "/")
		return slices.Contains(machineRoots, first) || first == topFolder(root)
	}
	if !slices.Contains(strings.Split(slashed, "/"), "..") {
		return false
	}
	rel, err := filepath.Rel(root, filepath.Join(dir, word))
	return err != nil || rel == ".." || strings.HasPrefix(filepath.ToSlash(rel), "../")
}

// topFolder is the first folder of root's absolute path: wherever the clone is, absolute paths into its
// machine's tree are caught too.
func topFolder(root string) string {
	first, _, _ := strings.Cut(strings.TrimPrefix(filepath.ToSlash(root), "/"), "/")
	return first
}
