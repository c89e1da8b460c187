// What an SDP answer says about the host's DTLS certificate (as agent_relay.webrtc.sdp).
// The answer is used only after its signature checked out, so these fingerprints are the
// host's; the browser's DTLS handshake then refuses any other certificate, and the SDK
// also compares the certificate it got (where the browser shows it) with them.

export const MAX_SDP = 64 * 1024;
const FINGERPRINT = /^a=fingerprint:(\S+) ([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})+)\s*$/;

export class SdpError extends Error {
  override name = "SdpError";
}

/** The `algorithm HEX:FINGERPRINT` pairs (algorithm lower case, hex upper case) of every
 *  `a=fingerprint` line. */
export function dtlsFingerprints(sdp: string): Set<string> {
  if (sdp.length > MAX_SDP) throw new SdpError("SDP too long");
  const found = new Set<string>();
  for (const line of sdp.split(/\r\n|\r|\n/)) {
    const match = FINGERPRINT.exec(line);
    if (match) found.add(`${(match[1] as string).toLowerCase()} ${(match[2] as string).toUpperCase()}`);
  }
  if (found.size === 0) throw new SdpError("SDP names no DTLS fingerprint");
  return found;
}
