package interop

import (
	_ "unsafe" // for go:linkname

	"github.com/hashicorp/yamux"
)

// hashicorp/yamux v0.1.2 has no public way to reset a stream: Stream.Close
// sends FIN, and RST is only sent internally (backlog overflow, streams
// arriving after our Go Away, and the StreamCloseTimeout expiry handler).
// That expiry handler, (*Stream).closeTimeout, is exactly a reset: it marks
// the stream closed locally, drops it from the session and sends a
// WindowUpdate frame with the RST flag. We call it directly.
//
//go:linkname streamCloseTimeout github.com/hashicorp/yamux.(*Stream).closeTimeout
func streamCloseTimeout(s *yamux.Stream)

// Reset aborts st: the other side sees RST, local reads and writes stop.
func Reset(st *yamux.Stream) { streamCloseTimeout(st) }
