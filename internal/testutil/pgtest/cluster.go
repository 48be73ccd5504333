// Package pgtest gives tests a fresh PostgreSQL database each.
//
// The cluster comes from FLOWGATE_TEST_POSTGRES when set (a postgres://
// URL to a superuser on a throwaway cluster, which the test script starts
// once for every package with cmd/pgcluster). Otherwise the first DSN call
// in a test binary starts a private cluster from the PostgreSQL binaries on
// this machine, and Main stops it when the tests end.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrNoBinaries means initdb or pg_ctl could not be found.
var ErrNoBinaries = errors.New("pgtest: PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or under /usr/lib/postgresql/*/bin")

// Cluster is a running throwaway PostgreSQL cluster in Dir.
type Cluster struct {
	// Dir holds the data directory, the log and the unix socket.
	Dir string
	// DSN reaches the cluster's superuser "postgres" on its
	// "postgres" database over TCP; no password (trust auth).
	DSN string
	// Port is the TCP port on 127.0.0.1.
	Port int
	bin  string
	as   *account
}

// account is the unprivileged user the server runs as when we are root;
// PostgreSQL refuses to run as root.
type account struct {
	name     string
	uid, gid int
}

// FindBinaries returns the directory holding initdb and pg_ctl.
func FindBinaries() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "pg_ctl")); err == nil {
			return dir, nil
		}
	}
	// Debian and Ubuntu keep the server binaries off PATH; take the
	// newest version installed.
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	best, bestVer := "", -1
	for _, m := range matches {
		v, err := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(m))))
		if err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(m), "pg_ctl")); err == nil && v > bestVer {
			best, bestVer = filepath.Dir(m), v
		}
	}
	if best == "" {
		return "", ErrNoBinaries
	}
	return best, nil
}

// Start creates a cluster in dir (which must be empty or absent) and
// starts it on a free port of 127.0.0.1. Durability is switched off: it is
// for tests.
func Start(ctx context.Context, dir string) (*Cluster, error) {
	bin, err := FindBinaries()
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	if entries, err := os.ReadDir(dir); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	} else if len(entries) > 0 {
		return nil, fmt.Errorf("pgtest: %s is not empty", dir)
	}
	c := &Cluster{Dir: dir, bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("pgtest: running as root needs a \"postgres\" user to run the server as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.as = &account{name: u.Username, uid: uid, gid: gid}
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, fmt.Errorf("pgtest: %w", err)
		}
	}
	if out, err := c.run(ctx, "initdb", "-D", c.dataDir(), "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		return nil, fmt.Errorf("pgtest: initdb in %s: %w\n%s", dir, err, out)
	}
	// A port found free can be taken before the server binds it; try a
	// few.
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		opts := strings.Join([]string{
			"-p", strconv.Itoa(port),
			"-k", dir,
			"-c", "listen_addresses=127.0.0.1",
			"-c", "fsync=off",
			"-c", "synchronous_commit=off",
			"-c", "full_page_writes=off",
			"-c", "max_connections=300",
		}, " ")
		out, err := c.run(ctx, "pg_ctl", "-D", c.dataDir(), "-l", filepath.Join(dir, "postgres.log"),
			"-o", opts, "-w", "-t", "60", "start")
		if err == nil {
			c.Port = port
			c.DSN = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
			return c, nil
		}
		log, _ := os.ReadFile(filepath.Join(dir, "postgres.log"))
		lastErr = fmt.Errorf("pgtest: pg_ctl start: %w\n%s\n%s", err, out, log)
		if !strings.Contains(string(log), "could not bind") && !strings.Contains(string(log), "already in use") {
			break
		}
	}
	return nil, lastErr
}

// Stop stops the server (immediately: nothing in it is worth a clean
// shutdown) and removes its directory.
func (c *Cluster) Stop(ctx context.Context) error {
	return stop(ctx, c.Dir, c.bin, c.as)
}

// StopDir stops the cluster Start created in dir and removes dir. It
// refuses a directory that does not hold a cluster, so a wrong argument
// cannot delete anything else.
func StopDir(ctx context.Context, dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "data", "PG_VERSION")); err != nil {
		return fmt.Errorf("pgtest: %s does not hold a pgtest cluster: %w", dir, err)
	}
	bin, err := FindBinaries()
	if err != nil {
		return err
	}
	var as *account
	if os.Geteuid() == 0 {
		if st, err := os.Stat(dir); err == nil {
			if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Uid != 0 {
				as = &account{uid: int(sys.Uid), gid: int(sys.Gid)}
				if u, err := user.LookupId(strconv.Itoa(int(sys.Uid))); err == nil {
					as.name = u.Username
				}
			}
		}
	}
	return stop(ctx, dir, bin, as)
}

func stop(ctx context.Context, dir, bin string, as *account) error {
	c := &Cluster{Dir: dir, bin: bin, as: as}
	var errs []error
	if _, err := os.Stat(filepath.Join(c.dataDir(), "postmaster.pid")); err == nil {
		if out, err := c.run(ctx, "pg_ctl", "-D", c.dataDir(), "-m", "immediate", "-w", "-t", "60", "stop"); err != nil {
			errs = append(errs, fmt.Errorf("pgtest: pg_ctl stop: %w\n%s", err, out))
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, fmt.Errorf("pgtest: %w", err))
	}
	return errors.Join(errs...)
}

func (c *Cluster) dataDir() string { return filepath.Join(c.Dir, "data") }

// run runs one of the server binaries, as the postgres account when we
// are root.
func (c *Cluster) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, name), args...)
	if c.as != nil {
		// Credential rather than runuser/su: no PAM, no dependency on
		// util-linux, and the environment stays ours.
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(c.as.uid), Gid: uint32(c.as.gid)}}
		cmd.Dir = c.Dir
	}
	// The server must not inherit the test's stdout: go test waits for
	// every holder of that pipe to close it.
	cmd.Stdin = nil
	out, err := cmd.CombinedOutput()
	return out, err
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
