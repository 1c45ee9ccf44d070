package isostore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// registerDir is one directory images may be registered from, as configured and resolved.
type registerDir struct {
	given string // absolute and clean, as the operator wrote it
	real  string // with every symlink resolved
}

// resolveRegisterDirs checks the directories AddPath may register images from.
func resolveRegisterDirs(dirs []string) ([]registerDir, error) {
	var out []registerDir
	for _, d := range dirs {
		abs, err := filepath.Abs(d)
		if err != nil {
			return nil, fmt.Errorf("register dir %s: %w", d, err)
		}
		real, err := filepath.EvalSymlinks(abs)
		if err != nil {
			return nil, fmt.Errorf("register dir %s: %w", d, err)
		}
		st, err := os.Stat(real)
		if err != nil {
			return nil, fmt.Errorf("register dir %s: %w", d, err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("register dir %s: not a directory", d)
		}
		out = append(out, registerDir{given: abs, real: real})
	}
	return out, nil
}

// within returns p relative to dir when p is dir or below it (by path, not by prefix:
// /srv/isos-old is not below /srv/isos).
func within(dir, p string) (string, bool) {
	rel, err := filepath.Rel(dir, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", false
	}
	return rel, true
}

// RegisterDirs returns the directories images may be registered from (as configured).
func (s *Store) RegisterDirs() []string {
	var out []string
	for _, d := range s.registerDirs {
		out = append(out, d.given)
	}
	return out
}

// openRegistered opens the image at p for AddPath, only when it lies below one of the register
// directories once every symlink is resolved, and returns it with that resolved path (the one
// to record and serve from).
//
// The check and the open must name the same file, though anything with write access to the
// directory could swap a component for a symlink in between. So the open does not trust the
// checked path: it walks from the register directory with os.Root (openat; a symlink that leads
// out of the directory is refused at every step) with O_NOFOLLOW on the last component, and
// the file it got is then asked for its own path (/proc/self/fd) and checked again.
func (s *Store) openRegistered(p string) (*os.File, string, error) {
	if len(s.registerDirs) == 0 {
		return nil, "", ErrRegisterOff
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return nil, "", err
	}
	var dir registerDir
	var rel string
	ok := false
	for _, d := range s.registerDirs {
		if rel, ok = within(d.real, real); ok {
			dir = d
			break
		}
	}
	if !ok {
		where := p
		if real != p {
			where = fmt.Sprintf("%s (which resolves to %s)", p, real)
		}
		return nil, "", fmt.Errorf("%w: %s is outside %s", ErrNotAllowed, where, strings.Join(s.RegisterDirs(), ", "))
	}
	f, err := openBelow(dir.real, rel, real)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", p, err)
	}
	return f, real, nil
}

// openBelow opens dir/rel, which was checked to be the file real, without following any symlink
// out of dir, and makes sure the file it opened is still real.
func openBelow(dir, rel, real string) (*os.File, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	f, err := root.OpenFile(rel, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: it changed while it was checked: %v", ErrNotAllowed, err)
	}
	if got, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd()))); err == nil && got != real {
		f.Close()
		return nil, fmt.Errorf("%w: it changed while it was checked (now %s)", ErrNotAllowed, got)
	}
	return f, nil
}
