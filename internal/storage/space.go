package storage

import (
	"errors"
	"fmt"
	"syscall"
)

// ErrDiskFull is returned when the data dir's file system has less free
// space than the store needs to write safely.
var ErrDiskFull = errors.New("not enough free disk space")

// Reserve is the free space kept for the store. Badger writes through
// memory-mapped, sparse files (the memtable's write-ahead log, new tables);
// when the file system cannot back a page the process dies of SIGBUS instead
// of getting ENOSPC. Refusing writes while less than Reserve is free turns a
// full disk into an error message, before anything half-written: one memtable
// file, one flushed table and a compaction's output fit in it.
const Reserve = 48 << 20

// CheckSpace returns ErrDiskFull (wrapped, with the figures) if the file
// system holding dir has less than Reserve bytes free. The feed store checks
// it before every write.
func CheckSpace(dir string) error { return CheckFree(dir, Reserve) }

// IndexReserve is the free space below which derived data (the views'
// index rows, read markers) is no longer written. It is lower than Reserve,
// so the index rows of every entry the feed store accepted still fit after
// the store has stopped taking new entries.
const IndexReserve = Reserve / 2

// CheckFree returns ErrDiskFull (wrapped, with the figures) if the file
// system holding dir has less than need bytes free.
func CheckFree(dir string, need uint64) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return fmt.Errorf("check free space of %s: %w", dir, err)
	}
	free := st.Bavail * uint64(st.Bsize)
	if free < need {
		return fmt.Errorf("%w: %.1f MiB free on the disk of %s, kchat keeps %d MiB free to write its store safely (no space left on device)",
			ErrDiskFull, float64(free)/(1<<20), dir, need>>20)
	}
	return nil
}
