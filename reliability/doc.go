// Package reliability holds no code: its tests prove, with checks that can
// fail, that kchat keeps every acknowledged message across crashes and disk
// trouble, converges after partitions and churn, and contains hostile peers.
// See docs/reliability.md for what each test attacks, the guarantee it
// checks, and how to run the long forms (KCHAT_LONG=1).
//
// Everything here runs on loopback only: hosts listen on 127.0.0.1 with no
// DHT, no mDNS and no port mapping.
package reliability
