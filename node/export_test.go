package node

import "time"

// WithTrimmer sets the memory trimmer's quiet time and action (tests), and
// checked, called after each quiet-spell check.
func WithTrimmer(o Options, quiet time.Duration, free func(), checked func(indexed uint64, freed bool)) Options {
	o.trim = trimmer{quiet: quiet, free: free, checked: checked}
	return o
}
