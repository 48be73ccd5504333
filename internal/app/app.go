// Package app is Flowgate's composition root: it turns a resolved
// configuration into an open key ring and store (App), which the admin
// commands use, and into the whole server (Server: the parts of `flowgate
// serve` wired together, and the configuration's declared objects applied).
// Both start here, so they see the same database the same way.
package app

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/credential"
	"github.com/flowgate/flowgate/internal/keyring"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/backend"
)

// App is an open database with the key ring that seals its secrets.
type App struct {
	Config *config.Config
	Ring   *keyring.Ring
	// Store is the open database; its OpenQueue builds the job queue a
	// server's flow engine works.
	Store  backend.Store
	Hasher *credential.Hasher
	Logger *slog.Logger
	// Audit records the changes a command makes (who did what); the
	// caller sets it (NewServer makes one that registers its metrics with
	// the HTTP server). Close flushes it before closing the store.
	Audit *audit.Writer
}

// canaryName is a secret every database holds, sealed with the key ring of
// its first start. Opening it at every start tells a wrong or lost key apart
// from a working one before anything is written with the wrong key.
const canaryName = "flowgate.keyring-check"

// Open opens an existing database for an admin command: one that does not
// exist, or was never migrated, is an error that says so (store.ErrNoDatabase)
// and nothing is created, neither the database nor a secret key. Otherwise it
// is OpenOrCreate.
func Open(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*App, error) {
	return open(ctx, cfg, logger, false)
}

// OpenOrCreate resolves the key ring, opens (and migrates) the store,
// creating the database when it does not exist, and checks that the key ring
// is the one the database was sealed with. A key it generates is written to
// disk only once the database has opened, so a start that fails leaves
// nothing behind. Only `serve` and `migrate` create databases.
func OpenOrCreate(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*App, error) {
	return open(ctx, cfg, logger, true)
}

// OpenAsIs is Open for a command that only reads and must change nothing
// (`flowgate config check`): migrations a newer binary brings are not
// applied either.
func OpenAsIs(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*App, error) {
	return openWith(ctx, cfg, logger, false, true)
}

func open(ctx context.Context, cfg *config.Config, logger *slog.Logger, create bool) (*App, error) {
	return openWith(ctx, cfg, logger, create, false)
}

func openWith(ctx context.Context, cfg *config.Config, logger *slog.Logger, create, noMigrate bool) (*App, error) {
	ring, newKey, err := resolveRing(cfg)
	if err != nil {
		return nil, err
	}
	st, err := backend.Open(ctx, cfg.Database, store.Options{Sealer: ring, MustExist: !create, NoMigrate: noMigrate})
	if errors.Is(err, store.ErrNoDatabase) {
		return nil, fmt.Errorf("%w: `flowgate migrate` (or `flowgate serve`) creates it; or name the right one with --database or --config", err)
	}
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*App, error) {
		_ = st.Close()
		return nil, err
	}
	fresh, err := checkCanary(ctx, st)
	if err != nil {
		if newKey != nil {
			return fail(fmt.Errorf("this database's secrets are sealed with a key, but the key file %s is missing: restore it or set FLOWGATE_SECRET_KEY", newKey.path))
		}
		return fail(err)
	}
	if newKey != nil {
		if !fresh {
			return fail(fmt.Errorf("internal: sealed database without key file %s", newKey.path))
		}
		if err := keyring.WriteFile(newKey.path, newKey.text); err != nil {
			return fail(fmt.Errorf("secret key: %w", err))
		}
		msg := "no FLOWGATE_SECRET_KEY or secrets.key_file: generated a secret key; back it up, without it the encrypted secrets are lost"
		if _, ok := cfg.DatabaseIsSQLite(); !ok {
			msg += "; every server on this PostgreSQL database needs this same key"
		}
		logger.Warn(msg, "key_file", newKey.path)
	}
	hasher, err := credential.NewHasher(credential.DefaultArgon2())
	if err != nil {
		return fail(err)
	}
	releaseHashMemory()
	return &App{Config: cfg, Ring: ring, Store: st, Hasher: hasher, Logger: logger}, nil
}

// Close writes the audit events still queued, then closes the store.
func (a *App) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return errors.Join(a.Audit.Close(ctx), a.Store.Close())
}

// releaseHashMemory gives back the 19 MiB block an argon2id hash made at
// start-up (the decoy hash, a bootstrap password, each declared user's)
// before the next one is made: left to the collector, two or three of them
// live at once and the server's peak memory is set by its first second.
func releaseHashMemory() { debug.FreeOSMemory() }

// pendingKey is a generated key not yet written to disk.
type pendingKey struct{ path, text string }

// resolveRing takes FLOWGATE_SECRET_KEY, else secrets.key_file, else the
// default key file: beside the SQLite database, or in the working directory
// for PostgreSQL (where every server must then be given the same file). When
// the default file does not exist a key is generated and returned as
// pending.
func resolveRing(cfg *config.Config) (*keyring.Ring, *pendingKey, error) {
	if cfg.Secrets.Key != "" {
		r, err := keyring.Parse(cfg.Secrets.Key)
		if err != nil {
			return nil, nil, fmt.Errorf("FLOWGATE_SECRET_KEY: %w", err)
		}
		return r, nil, nil
	}
	if cfg.Secrets.KeyFile != "" {
		r, err := keyring.LoadFile(cfg.Secrets.KeyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("secrets.key_file: %w", err)
		}
		return r, nil, nil
	}
	path := "flowgate.key"
	if dbPath, ok := cfg.DatabaseIsSQLite(); ok {
		path = filepath.Join(filepath.Dir(dbPath), "flowgate.key")
	}
	r, err := keyring.LoadFile(path)
	if err == nil {
		return r, nil, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("secret key: %w", err)
	}
	text, err := keyring.Generate()
	if err != nil {
		return nil, nil, err
	}
	r, err = keyring.Parse(text)
	if err != nil {
		return nil, nil, err
	}
	return r, &pendingKey{path: path, text: text}, nil
}

// checkCanary opens the key-check secret, or writes it into a database that
// has none yet; fresh reports the latter.
func checkCanary(ctx context.Context, st store.Store) (fresh bool, err error) {
	_, err = st.GetSecret(ctx, canaryName)
	if errors.Is(err, store.ErrNotFound) {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return false, fmt.Errorf("key check: %w", err)
		}
		if err := st.PutSecret(ctx, canaryName, b); err != nil {
			return false, fmt.Errorf("key check: %w", err)
		}
		return true, nil
	}
	if errors.Is(err, keyring.ErrDecrypt) {
		return false, errors.New("the secret key does not open this database's secrets: it was sealed with another FLOWGATE_SECRET_KEY / secrets.key_file (to rotate, list the new key first and keep the old one after it)")
	}
	if err != nil {
		return false, fmt.Errorf("key check: %w", err)
	}
	return false, nil
}

// Bootstrap creates the user "admin" with a random password when the
// database has no users and the configuration declares none. It returns the
// password, which the caller shows once and never logs; "" when nothing was
// created.
func (a *App) Bootstrap(ctx context.Context) (string, error) {
	if len(a.Config.Users) > 0 {
		return "", nil
	}
	n, err := a.Store.CountUsers(ctx)
	if err != nil {
		return "", fmt.Errorf("bootstrap: %w", err)
	}
	if n > 0 {
		return "", nil
	}
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("bootstrap: %w", err)
	}
	password := base64.RawURLEncoding.EncodeToString(b)
	hash, err := a.Hasher.Hash(password)
	if err != nil {
		return "", fmt.Errorf("bootstrap: %w", err)
	}
	releaseHashMemory()
	now := time.Now().UTC()
	err = a.Store.CreateUser(ctx, store.User{Username: "admin", PasswordHash: hash, Name: "Administrator", Roles: []string{"admin"}, CreatedAt: now, UpdatedAt: now})
	if errors.Is(err, store.ErrConflict) {
		// Another server on the same database bootstrapped first.
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("bootstrap: %w", err)
	}
	return password, nil
}
