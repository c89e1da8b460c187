// agent-relay's browser SDK: pair with a host once (SPAKE2: the code never leaves the
// page), then reach it through the relay with every request signed and every answer
// verified against the host's key. docs/browser-sdk.md describes it.
export {
  RelayClient,
  normalizeCode,
  normalizeRelayUrl,
  REVOKED_REASON,
  type HostInfo,
  type HostPath,
  type RelayClientOptions,
  type RelayWebSocket,
  type VerifiedResponse,
  type WebRtcOptions,
  type WebSocketConstructor,
} from "./client";
export { HostOffline, MayHaveRun, NotPaired, PairingFailed, PairingRevoked, RelayRefused, SignatureInvalid, Timeout } from "./errors";
export { keySupport } from "./keys";
export { ChannelClosed } from "./rtc/peer";
export { IndexedDbPairingStore, type Pairing, type PairingStore, type StoredPairing } from "./store";

// The protocol pieces, for the shared-vector tests (test/) and for tools; not needed to
// use the SDK.
import * as bytes from "./bytes";
import * as frames from "./frames";
import * as keys from "./keys";
import * as chunking from "./rtc/chunking";
import * as messages from "./rtc/messages";
import * as sdp from "./rtc/sdp";
import * as spake2 from "./spake2";
import * as verify from "./verify";
import * as wire from "./wire";
export const protocol = { bytes, frames, keys, spake2, verify, wire, rtc: { chunking, messages, sdp } };
