// OPT-IN repairs of yamux-js 0.2.0 gaps, loaded by peer.js only when YAMUX_JS_PATCHES=1.
// A run with these patches does NOT prove yamux-js: it exercises this peer's own logic
// and the parts of yamux-js that the patches leave alone (framing output, windows,
// ping, Go Away). The default (strict) run does not load this file.
//
// Repaired (line numbers in node_modules/yamux-js/lib/*.js):
// * remote FIN never reaches the reader (session.js:113-114, stream.js:127): push EOF.
// * remote RST never reaches the app (stream.js:144-147): destroy the stream with an error.
// * SYN frames lose their window delta / Data payload (session.js:92-93): apply them.
'use strict';

const { TYPES, FLAGS, STREAM_STATES } = require('yamux-js/lib/constants');

function install(session) {
  const original = session.handleStreamMessage;
  session.handleStreamMessage = function patchedHandleStreamMessage(hdr, payload, encoding) {
    const isSyn = hdr.flags == FLAGS.SYN; // the library's own test (session.js:92)
    const known = this.streams.get(hdr.streamID);
    original.call(this, hdr, payload, encoding);
    const stream = isSyn ? this.streams.get(hdr.streamID) : known;
    if (!stream) return;
    const id = hdr.streamID;

    if (isSyn) {
      if (hdr.type === TYPES.WindowUpdate) stream.sendWindow += hdr.length;
      else if (payload.length) {
        stream.push(payload, encoding);
        stream.updateRecvWindow(payload.length);
      }
      return;
    }

    if (hdr.flags & FLAGS.RST) {
      stream.state = STREAM_STATES.Reset;
      this.closeStream(id);
      stream.peerRemoteReset = true;
      const err = new Error('stream reset by remote');
      err.code = 'ERR_YAMUX_RESET';
      stream.destroy(err);
      return;
    }

    if (hdr.flags & FLAGS.FIN && !stream.peerRemoteFin) {
      stream.peerRemoteFin = true;
      if (!stream.destroyed) stream.push(null);
      if (stream.state === STREAM_STATES.LocalClose) {
        stream.state = STREAM_STATES.Closed;
        this.closeStream(id);
      } else {
        // Our FIN comes later (peer.js finish() calls this after Stream.close()).
        stream.peerAfterClose = () => this.closeStream(id);
      }
    }
  };
}

module.exports = { install };
