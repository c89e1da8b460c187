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
// Signed headers (ours): a request with SIG_HEADERS (the names it signs) has the digest of
// their canonical form in its signed string, and the host forwards only those; the answer
// names the headers the host signed in RESP_HEADERS, bound the same way.
export const SIG_HEADERS = "x-vk-sig-headers";
export const RESP_HEADERS = "x-vk-resp-headers";
// A client that reads RESP_HEADERS says so: the host then signs its answer's headers even
// to a request signed the reference way, and the client learns it verifies SIG_HEADERS.
export const ACCEPT_SIGNED_HEADERS = "x-vk-accept-signed-headers";
export const MAX_SIGNED_HEADERS = 64;
export const SIGNATURE_SIZE = 64;
export const CHUNK_HEADER_SIZE = 4;
export const MAX_CHUNK_PAYLOAD = 64 * 1024;
export const AUTH_PREFIX = "/api/relay-auth/server";

/** `H(body)`: base64 of the SHA-256 digest. */
export const bodyHash = (body: Uint8Array): string => b64encode(sha256(body));

/** `hHeaders`: the digest of the signed headers, for a request that carries SIG_HEADERS. */
export const requestMessage = (
  ts: number | string,
  method: string,
  pathAndQuery: string,
  sessionId: string,
  nonce: string,
  hBody: string,
  hHeaders: string | null = null,
): Uint8Array =>
  utf8(`v1|${ts}|${method}|${pathAndQuery}|${sessionId}|${nonce}|${hBody}${hHeaders === null ? "" : `|${hHeaders}`}`);

/** For a streamed body `hBody` is the literal "chunked-v1"; `hHeaders`: the digest of the
 *  headers named in RESP_HEADERS, when the answer has it. */
export const responseMessage = (
  respTs: number | string,
  status: number,
  pathAndQuery: string,
  sessionId: string,
  requestNonce: string,
  responseNonce: string,
  hBody: string,
  hHeaders: string | null = null,
): Uint8Array =>
  utf8(
    `v1|${respTs}|${status}|${pathAndQuery}|${sessionId}|${requestNonce}|${responseNonce}|${hBody}` +
      (hHeaders === null ? "" : `|${hHeaders}`),
  );

// The same sets as agent_relay.trust.wire (tests/vectors/headers.json checks both).
const HOP_BY_HOP = [
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "content-length",
];
/** Never signed in a request: the framing, and what the relay or the connector sets or
 *  strips on purpose (Host, Cookie, the forwarding headers, the signature's own). */
const UNSIGNED_REQUEST = new Set([
  ...HOP_BY_HOP,
  "host",
  "cookie",
  "forwarded",
  "x-forwarded-for",
  "x-forwarded-host",
  "x-forwarded-proto",
  "x-real-ip",
  "x-vk-relayed",
  SIG_SESSION,
  SIG_TS,
  SIG_NONCE,
  SIG_SIGNATURE,
  SIG_HEADERS,
]);
/** Never signed in an answer: the framing, the signature's own headers, what the relay
 *  replaces or adds (isolation headers, CORS, Vary, a dropped Set-Cookie) and what a
 *  proxy may set for itself (Date, Server, Via, Alt-Svc). */
const UNSIGNED_RESPONSE = new Set([
  ...HOP_BY_HOP,
  "date",
  "server",
  "via",
  "alt-svc",
  "set-cookie",
  "content-security-policy",
  "x-content-type-options",
  "cross-origin-resource-policy",
  "vary",
  RESP_TS,
  RESP_NONCE,
  RESP_SIGNATURE,
  RESP_HEADERS,
  RESP_BODY_SIGNING,
  HOST_TIME,
]);
export const signableRequestHeader = (name: string): boolean => !UNSIGNED_REQUEST.has(name);
export const signableResponseHeader = (name: string): boolean =>
  !UNSIGNED_RESPONSE.has(name) && !name.startsWith("access-control-");

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;

/** SIG_HEADERS or RESP_HEADERS read back: comma-separated lower-case names, each once.
 *  Throws TypeError on anything else. */
export function parseHeaderList(text: string): string[] {
  if (!text.trim()) return [];
  const names = text.split(",").map((part) => part.trim());
  if (names.length > MAX_SIGNED_HEADERS) throw new TypeError(`more than ${MAX_SIGNED_HEADERS} signed headers`);
  if (new Set(names).size !== names.length) throw new TypeError("a header is named twice");
  for (const name of names) {
    if (!TOKEN.test(name)) throw new TypeError(`not a lower-case header name: ${JSON.stringify(name.slice(0, 40))}`);
  }
  return names;
}

/** The signed form of the headers `names`: for each, in order, `name:value\n`, value
 *  being what `get` gives (a Headers' get: all values, trimmed, joined by ", "; "" when
 *  absent), as bytes (a header value is a byte string: each character one byte). */
export function canonicalHeaders(names: readonly string[], get: (name: string) => string | null): Uint8Array {
  let text = "";
  for (const name of names) text += `${name}:${get(name) ?? ""}\n`;
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0xff) throw new TypeError("a header value must be a byte string");
    out[i] = code;
  }
  return out;
}

/** `H(headers)`: base64 of the SHA-256 of canonicalHeaders. */
export const headersHash = (names: readonly string[], get: (name: string) => string | null): string =>
  bodyHash(canonicalHeaders(names, get));

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
