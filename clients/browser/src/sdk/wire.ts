// The byte formats of the trust layer, the same strings the Python side builds in
// agent_relay.trust.wire (docs/signing.md). tests/vectors/*.json hold examples made by the
// Python implementation; test/vectors.test.mjs checks these functions against them.
import { sha256 } from "@noble/hashes/sha2.js";
import { b64encode, utf8 } from "./bytes";

export const SIG_SESSION = "x-vk-sig-session";
export const SIG_TS = "x-vk-sig-ts";
export const SIG_NONCE = "x-vk-sig-nonce";
export const SIG_SIGNATURE = "x-vk-sig-signature";
export const RESP_TS = "x-vk-resp-ts";
export const RESP_NONCE = "x-vk-resp-nonce";
export const RESP_SIGNATURE = "x-vk-resp-signature";
export const ACCEPT_STREAM_SIGNING = "x-vk-accept-signed-stream";
export const RESP_BODY_SIGNING = "x-vk-resp-body-signing";
export const STREAM_SIGNING_V1 = "chunked-v1";
export const HOST_TIME = "x-vk-host-time";
export const SIGNATURE_SIZE = 64;
export const CHUNK_HEADER_SIZE = 4;
export const MAX_CHUNK_PAYLOAD = 64 * 1024;
export const AUTH_PREFIX = "/api/relay-auth/server";

/** `H(body)`: base64 of the SHA-256 digest. */
export const bodyHash = (body: Uint8Array): string => b64encode(sha256(body));

export const requestMessage = (
  ts: number | string,
  method: string,
  pathAndQuery: string,
  sessionId: string,
  nonce: string,
  hBody: string,
): Uint8Array => utf8(`v1|${ts}|${method}|${pathAndQuery}|${sessionId}|${nonce}|${hBody}`);

/** For a streamed body `hBody` is the literal "chunked-v1". */
export const responseMessage = (
  respTs: number | string,
  status: number,
  pathAndQuery: string,
  sessionId: string,
  requestNonce: string,
  responseNonce: string,
  hBody: string,
): Uint8Array =>
  utf8(
    `v1|${respTs}|${status}|${pathAndQuery}|${sessionId}|${requestNonce}|${responseNonce}|${hBody}`,
  );

export const streamChunkMessage = (
  sessionId: string,
  requestNonce: string,
  responseNonce: string,
  seq: number,
  payload: Uint8Array,
): Uint8Array =>
  utf8(`v1|chunk|${sessionId}|${requestNonce}|${responseNonce}|${seq}|${bodyHash(payload)}`);

export const frameMessage = (
  sessionId: string,
  upgradeNonce: string,
  seq: number,
  msgType: string,
  payload: Uint8Array,
): Uint8Array => utf8(`v1|${sessionId}|${upgradeNonce}|${seq}|${msgType}|${bodyHash(payload)}`);

export const refreshMessage = (timestamp: number | string, nonce: string, clientId: string): Uint8Array =>
  utf8(`v1|refresh|${timestamp}|${nonce}|${clientId}`);

/** The WHATWG application/x-www-form-urlencoded serialisation (what the host re-encodes
 *  the query of a WebSocket upgrade to before checking its signature). */
export function formUrlencode(pairs: [string, string][]): string {
  return new URLSearchParams(pairs).toString();
}

/** What a client signs for an upgrade whose query holds `pairs` besides the four
 *  signature parameters. */
export const signedWsPath = (path: string, pairs: [string, string][]): string =>
  pairs.length ? `${path}?${formUrlencode(pairs)}` : path;

/** The path and query exactly as they go on the wire: parsed and re-serialised by the
 *  URL standard (so what we sign is what fetch sends). Refuses a fragment, or anything
 *  that does not start with a single '/'. */
export function canonicalPath(path: string): string {
  if (!path.startsWith("/") || path.includes("#") || path.length > 8000) {
    throw new TypeError(`a path must start with / and hold no fragment: ${JSON.stringify(path.slice(0, 100))}`);
  }
  const url = new URL(`http://host.invalid${path}`);
  return url.pathname + url.search;
}
