// agent-relay's browser SDK: pair with a host once (SPAKE2: the code never leaves the
// page), then reach it through the relay with every request signed and every answer
// verified against the host's key. docs/browser-sdk.md describes it.
export {
  RelayClient,
  normalizeCode,
  normalizeRelayUrl,
  REVOKED_REASON,
  type HostInfo,
  type RelayClientOptions,
  type RelayWebSocket,
  type VerifiedResponse,
  type WebSocketConstructor,
} from "./client";
export { HostOffline, NotPaired, PairingFailed, PairingRevoked, RelayRefused, SignatureInvalid, Timeout } from "./errors";
export { keySupport } from "./keys";
export { IndexedDbPairingStore, type Pairing, type PairingStore, type StoredPairing } from "./store";

// The protocol pieces, for the shared-vector tests (test/) and for tools; not needed to
// use the SDK.
import * as bytes from "./bytes";
import * as frames from "./frames";
import * as keys from "./keys";
import * as spake2 from "./spake2";
import * as verify from "./verify";
import * as wire from "./wire";
export const protocol = { bytes, frames, keys, spake2, verify, wire };
