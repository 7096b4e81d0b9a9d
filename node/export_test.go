package node

import (
	"net"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/kchat-p2p/kchat/feed"
)

// WithTrimmer sets the memory trimmer's quiet time and action (tests), and
// checked, called after each quiet-spell check.
func WithTrimmer(o Options, quiet time.Duration, free func(), checked func(indexed uint64, freed bool)) Options {
	o.trim = trimmer{quiet: quiet, free: free, checked: checked}
	return o
}

// SetMeshRotateForTest sets how often meshes rotate (nodes opened after
// the call), and returns a function restoring it.
func SetMeshRotateForTest(d time.Duration) (restore func()) {
	old := meshRotate
	meshRotate = d
	return func() { meshRotate = old }
}

// SetPeerUIDForTest makes the control client see every server as run by
// uid u, and returns a function restoring the real check.
func SetPeerUIDForTest(u uint32) (restore func()) {
	old := peerUID
	peerUID = func(*net.UnixConn) (uint32, error) { return u, nil }
	return func() { peerUID = old }
}

// SetMeshDialFaultForTest makes nodes opened after the call ask f before
// each mesh dial, failing the dial with f's error, and returns a function
// restoring the default.
func SetMeshDialFaultForTest(f func(peer.ID) error) (restore func()) {
	old := meshDialFault
	meshDialFault = f
	return func() { meshDialFault = old }
}

// MeshDialedForTest hands n's mesh the outcome err of a mesh dial to p for
// ch, and reports whether the mesh then holds p off.
func MeshDialedForTest(n *Node, ch feed.DiscoveryID, p peer.ID, err error) (heldOff bool) {
	n.net.meshDialed(ch, p, err)
	return n.net.heldOff(ch, p)
}
