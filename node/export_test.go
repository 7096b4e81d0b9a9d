package node

import "time"

// WithTrimmer sets the memory trimmer's quiet time and action (tests).
func WithTrimmer(o Options, quiet time.Duration, free func()) Options {
	o.trim = trimmer{quiet: quiet, free: free}
	return o
}
