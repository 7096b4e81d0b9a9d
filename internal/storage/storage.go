// Package storage opens the one Badger database a kchat data dir holds, with
// options fit for a chat program: small memory, logs through log/slog.
//
// Each package that keeps state in it owns a key prefix (feed: "f", views:
// "v") and never reads another's keys.
package storage

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
)

// MemoryLimit is the Go heap's soft limit a kchat process sets unless
// GOMEMLIMIT says otherwise (debug.SetMemoryLimit): a chat program should
// stay small; the GC works harder near the limit instead of letting a big
// sync double the heap. Benchmarks that stand for a kchat process set it too.
const MemoryLimit = 128 << 20

// ErrLocked is returned when another process holds the data dir.
var ErrLocked = errors.New("data dir is in use by another kchat process")

// options are Badger's options for a kchat store in dir.
func options(dir string, log *slog.Logger) badger.Options {
	return badger.DefaultOptions(dir).
		// Not WithLoggingLevel: it replaces the logger with Badger's own,
		// which writes to stderr (the terminal, under the UI).
		WithLogger(badgerLogger{log.With("lib", "badger")}).
		// Memory: Badger's defaults (64 MB memtables x5, 256 MB block cache)
		// are for databases, not a chat client that idles for days.
		WithMemTableSize(8 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithBlockCacheSize(8 << 20).
		WithIndexCacheSize(4 << 20).
		WithValueLogFileSize(64 << 20).
		WithNumCompactors(2).
		WithCompactL0OnClose(false).
		// Own appends call DB.Sync before they are acknowledged; replicated
		// batches can be fetched again, so they are not synced one by one.
		WithSyncWrites(false).
		WithDetectConflicts(false)
}

// Open opens (creating if needed) the Badger database in dir. It refuses
// with ErrDiskFull when less than Reserve is free: opening creates a
// memtable file, written through mmap (see Reserve).
func Open(dir string, log *slog.Logger) (*badger.DB, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := options(dir, log)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	if err := CheckSpace(dir); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	db, err := badger.Open(opts)
	for tries := 0; err != nil && tries < 3; tries++ {
		// Badger creates a memtable or value log file and then sizes it;
		// a crash in between leaves a file its next open refuses as "new"
		// (Badger v4.9.6: "while opening fid: N err: Create a new file",
		// or `Open existing file: ".../N.vlog" err: Create a new file`).
		// Such a file holds nothing: remove it and open again.
		if !removeNewFile(dir, err, log) {
			break
		}
		db, err = badger.Open(opts)
	}
	return opened(db, dir, err)
}

// OpenReadOnly opens the existing database in dir without writing to it:
// no memtable is created, no compaction runs, and every write fails. It
// needs no free space, so a user whose disk is full can still read their
// history. Other read-only opens may share the dir; a writer may not.
func OpenReadOnly(dir string, log *slog.Logger) (*badger.DB, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if _, err := os.Stat(filepath.Join(dir, badger.ManifestFilename)); err != nil {
		return nil, fmt.Errorf("open store %s read-only: %w", dir, err)
	}
	db, err := badger.Open(options(dir, log).WithReadOnly(true))
	return opened(db, dir, err)
}

func opened(db *badger.DB, dir string, err error) (*badger.DB, error) {
	if err != nil {
		if strings.Contains(err.Error(), "Cannot acquire directory lock") {
			return nil, fmt.Errorf("open store %s: %w", dir, ErrLocked)
		}
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	return db, nil
}

// Badger retries a memtable flush that fails (its directory was deleted, its
// disk is gone) forever, and then DB.Close never returns. It reports each
// failure to its logger; the process counts them, so that a bounded shutdown
// can tell "cannot be flushed" from "slow".
var (
	flushFailures  atomic.Int64
	lastFlushError atomic.Pointer[string]
)

// FlushFailures returns how many memtable flushes failed in this process,
// and the last failure's message.
func FlushFailures() (int64, string) {
	n := flushFailures.Load()
	if p := lastFlushError.Load(); p != nil {
		return n, *p
	}
	return n, ""
}

// badgerLogger adapts Badger's printf logger to slog.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(f, a...))
	if strings.HasPrefix(f, "error flushing memtable") {
		flushFailures.Add(1)
		lastFlushError.Store(&msg)
	}
	b.l.Error(msg)
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn(strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (b badgerLogger) Infof(f string, a ...any) {
	b.l.Debug(strings.TrimSpace(fmt.Sprintf(f, a...))) // routine (compactions...): --debug only
}
func (b badgerLogger) Debugf(f string, a ...any) {
	b.l.Debug(strings.TrimSpace(fmt.Sprintf(f, a...)))
}

// newFiles: how Badger names a memtable or value log file that it found
// empty at open (refusing it as "new"), and that file's name by number.
var newFiles = []struct {
	re   *regexp.Regexp
	name string
}{
	{regexp.MustCompile(`while opening fid: (\d+) err: Create a new file`), "%05d.mem"},
	{regexp.MustCompile(`Open existing file: "[^"]*?(\d+)\.vlog" err: Create a new file`), "%06d.vlog"},
}

// removeNewFile removes the memtable or value log file that a failed open
// named as new (it was empty when the open began), and reports whether it
// did.
func removeNewFile(dir string, openErr error, log *slog.Logger) bool {
	for _, nf := range newFiles {
		m := nf.re.FindStringSubmatch(openErr.Error())
		if m == nil {
			continue
		}
		fid, err := strconv.Atoi(m[1])
		if err != nil {
			return false
		}
		file := filepath.Join(dir, fmt.Sprintf(nf.name, fid))
		if err := os.Remove(file); err != nil {
			return false
		}
		log.Warn("removed an empty store file left by a crash", "file", file)
		return true
	}
	return false
}
