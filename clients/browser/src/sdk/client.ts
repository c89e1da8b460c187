// RelayClient: pair with a host, then reach it through the relay, trusting only what
// the host signed. The relay is used for a relay session (POST /v1/relay/create/{host}
// with the user's token) and for forwarding; everything that matters is checked end to
// end with the keys pairing left in the store.
//
// Retries follow the Python client (agent_relay.client.client), so a lying relay cannot
// get a request executed twice: a relay session that is gone is re-created and the
// SAME signed request (same nonce) is sent again, so a copy the relay did deliver is
// refused by the host as a replay; a host 401 leads to a new signing session and a
// freshly signed request only when the 401 carries a valid host signature, or the
// method is safe to repeat.
import { b64decode, b64encode, constantTimeEqual, own, utf8 } from "./bytes";
import { HostClock } from "./clock";
import {
  HostOffline,
  MayHaveRun,
  NotPaired,
  PairingFailed,
  PairingRevoked,
  RelayRefused,
  SignatureInvalid,
  Timeout,
} from "./errors";
import { FrameSigner, FrameVerifier, closePayload, parseClosePayload } from "./frames";
import { HostKey, generateClientKey, sign } from "./keys";
import { Spake2A, clientProof, confirmationKey, serverProof } from "./spake2";
import { type ChannelHeaders } from "./rtc/messages";
import { ChannelClosed, ChannelTimeout, DirectChannel, NegotiationFailed, NotDelivered } from "./rtc/peer";
import { dtlsFingerprints } from "./rtc/sdp";
import { ChannelWebSocket } from "./rtc/socket";
import { IndexedDbPairingStore, type Pairing, type PairingStore, type StoredPairing, publicPart } from "./store";
import { type SignedRequestInfo, StreamVerifier, parseHead, verifiedStream, verifyHead } from "./verify";
import * as wire from "./wire";

export interface RelayClientOptions {
  relayUrl: string;
  token: () => string | Promise<string>;
  fetch?: typeof fetch;
  /** Milliseconds since the epoch (Date.now). */
  now?: () => number;
  storage?: PairingStore;
  /** The WebSocket constructor (default: the global one; Node tests pass `ws`'s). */
  WebSocket?: WebSocketConstructor;
  /** Longest wait for an answer's head, ms (default 30 000). */
  timeoutMs?: number;
  /** Largest whole (not streamed) body held until it checks out (default 64 MiB). */
  maxBody?: number;
  /** The peer-to-peer upgrade over a WebRTC data channel (docs/webrtc.md). */
  webrtc?: WebRtcOptions;
}

export interface WebRtcOptions {
  /** Try the upgrade at all (default: when the browser has RTCPeerConnection). */
  enabled?: boolean;
  /** STUN/TURN servers; none by default (host candidates: a LAN, loopback). */
  iceServers?: RTCIceServer[];
  /** Longest wait for an answer's head over the channel before the same signed request
   *  goes through the relay, ms (default 20 000: under the host's 30 s clock window). */
  answerTimeoutMs?: number;
  /** ICE gathering bound, ms (default 5 000). */
  gatherMs?: number;
  /** The data channel opening after the answer, ms (default 10 000). */
  openMs?: number;
  /** After a failed negotiation, ms before the next try (default 5 minutes). */
  retryAfterFailureMs?: number;
  /** Largest message taken from the channel (default 1 MiB, the host's). */
  maxMessage?: number;
}

/** Which way a host's calls go, for a status line ("direct (WebRTC)" / "via relay"). */
export interface HostPath {
  path: "direct" | "relayed";
  /** The user asked for the relay only (forceRelayed). */
  forcedRelayed: boolean;
  /** Why the last upgrade or channel ended, if it did. */
  lastError: string | null;
  upgrades: number;
  /** The open channel's DTLS certificate was compared with the signed answer too. */
  certificateChecked: boolean;
}

export type WebSocketConstructor = new (url: string) => WebSocket;

export interface HostInfo {
  id: string;
  name: string;
  status: "online" | "offline";
  lastSeenAt: string | null;
  paired: boolean;
}

export interface VerifiedResponse {
  status: number;
  /** Only headers the host's signature covers (those it named in x-vk-resp-headers, and
   *  the signature's own). */
  headers: Headers;
  /** The way it came: over the WebRTC data channel, or through the relay. */
  readonly via: "direct" | "relayed";
  /** Everything else the relay passed on: NOT verified (the relay's own headers, or
   *  anything it added; show, never trust). */
  unverifiedHeaders: Headers;
  /** Verified bytes only: a whole body after its hash checked out, a chunked-v1 body
   *  record by record (the stream errors with SignatureInvalid on a bad record). */
  body: ReadableStream<Uint8Array> | null;
  streamed: boolean;
  verified: true;
  text(): Promise<string>;
  json(): Promise<unknown>;
  bytes(): Promise<Uint8Array>;
}

export interface RelayWebSocket {
  readonly readyState: number;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: (() => void) | null;
  onmessage: ((ev: { data: string | Uint8Array }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((err: Error) => void) | null;
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);
// Host 401 reasons a new signing session can cure.
const REFRESHABLE = new Set(["clock_skew", "unknown_session", "session_expired"]);
// Host reasons that mean "pair again".
const GONE = new Set(["client_revoked", "unknown_client"]);
const SESSION_MAX_AGE = 55 * 60 * 1000;
const SESSION_MAX_IDLE = 13 * 60 * 1000;
const SMALL_ANSWER = 64 * 1024;
// WebRTC: the host's signalling route, and routes that only ever go through the relay
// (the host refuses them over a channel: pairing, nested offers).
const OFFER_PATH = "/api/webrtc/offer";
// Bodies up to this go whole in the message (as the reference); larger ones stream over the
// channel where the host's hello offers "upload", and go through the relay where it does not.
const INLINE_UPLOAD = 256 * 1024;
const MAX_CHANNEL_UPLOAD = 512 * 1024;
const CODE = /^[A-Z0-9]{6}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export const REVOKED_REASON = "revoked by the host owner";

/** Trim, uppercase, drop spaces and dashes: a code as the user typed it. */
export function normalizeCode(input: string): string {
  return input.trim().toUpperCase().replace(/[\s-]+/g, "");
}

/** The relay's base URL as stored and compared: scheme and host lower case, no
 *  trailing slash (as the Python key store). */
export function normalizeRelayUrl(url: string): string {
  const parsed = new URL(url.trim());
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new TypeError(`the relay URL must be http(s), not ${url}`);
  }
  if (parsed.search || parsed.hash) throw new TypeError("the relay URL must not have a query or fragment");
  return `${parsed.protocol}//${parsed.host}${parsed.pathname.replace(/\/+$/, "")}`;
}

function checkUuid(value: string, what: string): string {
  const lower = value.trim().toLowerCase();
  if (!UUID.test(lower)) throw new TypeError(`${what} must be a UUID`);
  return lower;
}

interface ErrorFields {
  reason: string;
  message: string;
}

function errorFields(body: Uint8Array): ErrorFields {
  const text = new TextDecoder().decode(body);
  try {
    const doc: unknown = JSON.parse(text);
    if (typeof doc === "object" && doc !== null && !Array.isArray(doc)) {
      const d = doc as Record<string, unknown>;
      const message = d.message ?? d.error ?? "no details";
      return { reason: d.reason ? String(d.reason).slice(0, 64) : "unknown", message: String(message).slice(0, 500) };
    }
  } catch {
    /* not JSON */
  }
  return { reason: "unknown", message: text.slice(0, 200).trim() || "no details" };
}

async function readLimited(response: Response, limit: number): Promise<Uint8Array> {
  if (!response.body) return new Uint8Array(0);
  const reader = response.body.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > limit) {
        await reader.cancel();
        throw new RangeError(`the answer is larger than ${limit} bytes`);
      }
      parts.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

async function readSmall(response: Response): Promise<Uint8Array> {
  try {
    return await readLimited(response, SMALL_ANSWER);
  } catch {
    return new Uint8Array(0);
  }
}

/** A relay refusal of its own, turned into our error (never the host's data). */
function relayError(status: number, fields: ErrorFields): Error {
  const text = fields.message;
  if (status === 404 && /no active relay/i.test(text)) return new HostOffline("the host is offline (not connected to the relay)");
  if (status === 503 && /reconnecting/i.test(text)) return new HostOffline("the host is reconnecting to the relay");
  if (status === 502) return new HostOffline(`the relay could not reach the host: ${text}`);
  return new RelayRefused(status, `relay answered ${status}: ${text}`);
}

const looksLikeHost = (r: Response): boolean => r.headers.has(wire.HOST_TIME) || r.headers.has(wire.RESP_SIGNATURE);
const relaySessionGone = (r: Response): boolean => (r.status === 401 || r.status === 403) && !looksLikeHost(r);
const isRelayError = (status: number): boolean => [401, 403, 404, 429, 502, 503, 504].includes(status);

type BodyInit_ = RequestInit["body"];

async function bodyBytes(body: BodyInit_): Promise<{ bytes: Uint8Array; type?: string }> {
  if (body === undefined || body === null) return { bytes: new Uint8Array(0) };
  if (typeof body === "string") return { bytes: utf8(body), type: "text/plain;charset=UTF-8" };
  if (body instanceof Uint8Array) return { bytes: body };
  if (body instanceof ArrayBuffer) return { bytes: new Uint8Array(body) };
  if (ArrayBuffer.isView(body)) return { bytes: new Uint8Array(body.buffer, body.byteOffset, body.byteLength) };
  if (body instanceof URLSearchParams) {
    return { bytes: utf8(body.toString()), type: "application/x-www-form-urlencoded;charset=UTF-8" };
  }
  if (typeof Blob !== "undefined" && body instanceof Blob) {
    return { bytes: new Uint8Array(await body.arrayBuffer()), ...(body.type ? { type: body.type } : {}) };
  }
  throw new TypeError("relayFetch takes a string, bytes, Blob or URLSearchParams body (it signs the exact bytes)");
}

/** A verified answer whose signature covers its headers: the host verifies signed
 *  headers, so this pairing signs its requests' from now on (saved with the record). */
function learnSignedHeaders(record: StoredPairing, head: { hHeaders: string | null }): void {
  if (head.hHeaders !== null) record.signsHeaders = true;
}

interface SignedRequest extends SignedRequestInfo {
  ts: number;
  signatureB64: string;
  /** The request headers signed (x-vk-sig-headers); absent: signed the reference way. */
  headerNames?: string[];
}

/** The headers a signed request carries, through the relay or over a channel alike. */
function signedHeaders(signed: SignedRequest, userHeaders: Headers): Headers {
  const headers = new Headers(userHeaders);
  headers.set(wire.SIG_SESSION, signed.sessionId);
  headers.set(wire.SIG_TS, String(signed.ts));
  headers.set(wire.SIG_NONCE, signed.nonce);
  headers.set(wire.SIG_SIGNATURE, signed.signatureB64);
  headers.set(wire.ACCEPT_STREAM_SIGNING, "1");
  headers.set(wire.ACCEPT_SIGNED_HEADERS, "1");
  if (signed.headerNames) headers.set(wire.SIG_HEADERS, signed.headerNames.join(","));
  return headers;
}

function channelHeaders(headers: Headers): ChannelHeaders {
  const out: ChannelHeaders = {};
  headers.forEach((value, name) => {
    out[name] = [value];
  });
  return out;
}

interface PeerState {
  channel: DirectChannel | null;
  negotiating: Promise<boolean> | null;
  failedAt: number | null;
  forcedRelayed: boolean;
  lastError: string | null;
  upgrades: number;
}

class Verified implements VerifiedResponse {
  readonly verified = true as const;
  via: "direct" | "relayed" = "relayed";
  private used = false;

  constructor(
    readonly status: number,
    readonly headers: Headers,
    readonly unverifiedHeaders: Headers,
    readonly body: ReadableStream<Uint8Array> | null,
    readonly streamed: boolean,
  ) {}

  async bytes(): Promise<Uint8Array> {
    if (this.used) throw new TypeError("the body was already read");
    this.used = true;
    if (!this.body) return new Uint8Array(0);
    const reader = this.body.getReader();
    const parts: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value);
      size += value.length;
    }
    const out = new Uint8Array(size);
    let at = 0;
    for (const part of parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }

  async text(): Promise<string> {
    return new TextDecoder().decode(await this.bytes());
  }

  async json(): Promise<unknown> {
    return JSON.parse(await this.text());
  }
}

export class RelayClient {
  readonly relayUrl: string;
  private readonly token: () => string | Promise<string>;
  private readonly fetchImpl: typeof fetch;
  private readonly clockNow: () => number;
  private readonly store: PairingStore;
  private readonly WebSocketImpl: WebSocketConstructor | undefined;
  private readonly timeoutMs: number;
  private readonly maxBody: number;
  private readonly hostKeys = new Map<string, HostKey>();
  /** Counters a test (or a status line) can read. */
  readonly stats = { relaySessionCreations: 0, refreshes: 0, directCalls: 0, relayedCalls: 0, upgrades: 0, channelFallbacks: 0 };
  private readonly rtc: Required<Omit<WebRtcOptions, "enabled">> & { enabled: boolean };
  private readonly peers = new Map<string, PeerState>();
  private readonly pathListeners = new Set<(hostId: string, path: HostPath) => void>();

  constructor(opts: RelayClientOptions) {
    this.relayUrl = normalizeRelayUrl(opts.relayUrl);
    this.token = opts.token;
    const f = opts.fetch ?? globalThis.fetch;
    this.fetchImpl = (input, init) => f(input, init); // unbound window.fetch throws
    this.clockNow = opts.now ?? Date.now;
    this.store = opts.storage ?? new IndexedDbPairingStore();
    this.WebSocketImpl = opts.WebSocket ?? (globalThis.WebSocket as WebSocketConstructor | undefined);
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.maxBody = opts.maxBody ?? 64 * 1024 * 1024;
    const rtc = opts.webrtc ?? {};
    this.rtc = {
      enabled: rtc.enabled ?? typeof globalThis.RTCPeerConnection !== "undefined",
      iceServers: rtc.iceServers ?? [],
      answerTimeoutMs: rtc.answerTimeoutMs ?? 20_000,
      gatherMs: rtc.gatherMs ?? 5_000,
      openMs: rtc.openMs ?? 10_000,
      retryAfterFailureMs: rtc.retryAfterFailureMs ?? 5 * 60_000,
      maxMessage: rtc.maxMessage ?? 1 << 20,
    };
  }

  // ------------------------------------------------------------------ hosts, pairings

  /** The user's hosts (GET /v1/hosts with the token), each marked paired or not here. */
  async listHosts(): Promise<HostInfo[]> {
    const response = await this.send(`${this.relayUrl}/v1/hosts`, {
      headers: { authorization: `Bearer ${await this.token()}` },
    });
    const body = await readSmall(response).catch(() => new Uint8Array(0));
    if (response.status !== 200) throw new RelayRefused(response.status, `relay answered ${response.status}: ${errorFields(body).message}`);
    let hosts: unknown;
    try {
      hosts = (JSON.parse(new TextDecoder().decode(body)) as { hosts?: unknown }).hosts;
    } catch {
      hosts = undefined;
    }
    if (!Array.isArray(hosts)) throw new RelayRefused(response.status, "the relay's host list is not what the protocol says");
    const paired = new Set((await this.store.list(this.relayUrl)).map((p) => p.hostId));
    return hosts.map((h: Record<string, unknown>) => ({
      id: String(h.id),
      name: String(h.name ?? h.id),
      status: h.status === "online" ? ("online" as const) : ("offline" as const),
      lastSeenAt: typeof h.last_seen_at === "string" ? h.last_seen_at : null,
      paired: paired.has(String(h.id)),
    }));
  }

  async pairings(): Promise<Pairing[]> {
    return (await this.store.list(this.relayUrl)).map(publicPart);
  }

  async forget(hostId: string): Promise<void> {
    await this.store.delete(this.relayUrl, checkUuid(hostId, "host id"));
  }

  /** Pair with the host through the relay (SPAKE2 against the host's current code, then
   *  key confirmation); stores and returns the pairing. The code is never sent. */
  async pair(hostId: string, code: string, info?: { clientName?: string; device?: string }): Promise<Pairing> {
    hostId = checkUuid(hostId, "host id");
    const normalized = normalizeCode(code);
    if (!CODE.test(normalized)) throw new PairingFailed("bad_input", "a pairing code is 6 characters from A-Z and 0-9");
    const key = await generateClientKey();
    const clientId = crypto.randomUUID();
    const relaySession = await this.createRelaySession(hostId);
    const base = this.proxyBase(hostId, relaySession);
    const spake = new Spake2A(normalized);
    const started = await this.authCall(base, "spake2/start", { client_message_b64: b64encode(spake.message) });
    const enrollmentId = uuidField(started, "enrollment_id");
    let ck: Uint8Array;
    try {
      ck = confirmationKey(spake.finish(b64Field(started, "server_message_b64", 33)));
    } catch (err) {
      throw new PairingFailed("bad_answer", `the host's SPAKE2 message is invalid: ${(err as Error).message}`);
    }
    const clientName = info?.clientName ?? "agent-relay browser";
    const finished = await this.authCall(base, "spake2/finish", {
      enrollment_id: enrollmentId,
      client_id: clientId,
      client_name: clientName.slice(0, 256),
      client_browser: (globalThis.navigator?.userAgent ?? "agent-relay").slice(0, 256),
      client_os: "",
      client_device: (info?.device ?? "").slice(0, 256),
      public_key_b64: b64encode(key.publicKeyRaw),
      client_proof_b64: b64encode(clientProof(ck, enrollmentId, key.publicKeyRaw)),
    });
    const serverKey = b64Field(finished, "server_public_key_b64", 32);
    const proof = b64Field(finished, "server_proof_b64", 32);
    if (!constantTimeEqual(proof, serverProof(ck, enrollmentId, key.publicKeyRaw, serverKey))) {
      throw new PairingFailed(
        "host_proof",
        "the host's proof is wrong: the code did not match, or something between you and the host tampered with the pairing",
      );
    }
    const now = this.clockNow();
    const record: StoredPairing = {
      hostId,
      relayUrl: this.relayUrl,
      clientId,
      clientName,
      hostPublicKeyB64: b64encode(serverKey),
      signingSessionId: uuidField(finished, "signing_session_id"),
      keyKind: key.kind,
      pairedAt: new Date(now).toISOString(),
      privateKey: key.privateKey,
      publicKeyRaw: key.publicKeyRaw,
      sessionStartedAt: now,
      sessionUsedAt: now,
      relaySessionId: relaySession,
      clockOffset: 0,
    };
    await this.store.put(record);
    // One signed read (the host's client list, a route every host has): its verified
    // answer says whether the host checks signed headers, so the first real request
    // signs its own. Best effort: the pairing stands either way.
    await this.relayFetch(hostId, `${wire.AUTH_PREFIX}/clients`).then((r) => r.body?.cancel(), () => undefined);
    return publicPart(record);
  }

  // ------------------------------------------------------------------ HTTP

  /** One signed request to the host; the answer verified (see VerifiedResponse). */
  async relayFetch(hostId: string, path: string, init: RequestInit = {}): Promise<VerifiedResponse> {
    return this.hostFetch(hostId, path, init, true);
  }

  private async hostFetch(hostId: string, path: string, init: RequestInit, mayGoDirect: boolean): Promise<VerifiedResponse> {
    hostId = checkUuid(hostId, "host id");
    const method = (init.method ?? "GET").toUpperCase();
    const pathAndQuery = wire.canonicalPath(path);
    const { bytes: body, type } = await bodyBytes(init.body);
    const headers = new Headers(init.headers);
    if (type && !headers.has("content-type")) headers.set("content-type", type);
    headers.set(wire.ACCEPT_STREAM_SIGNING, "1");
    headers.set(wire.ACCEPT_SIGNED_HEADERS, "1");
    let record = await this.load(hostId);
    record = await this.renewIfStale(record);
    const channel = mayGoDirect ? await this.channelFor(hostId, pathAndQuery, body) : null;
    if (channel) {
      const answer = await this.fetchDirect(record, channel, method, pathAndQuery, body, headers, init.signal ?? null);
      if (answer) return answer;
    }
    const answer = await this.fetchRelayed(record, method, pathAndQuery, body, headers, init.signal ?? null);
    this.stats.relayedCalls += 1;
    if (mayGoDirect) this.upgradeSoon(hostId); // after the first verified relayed answer
    return answer;
  }

  private async fetchRelayed(
    record: StoredPairing,
    method: string,
    pathAndQuery: string,
    body: Uint8Array,
    headers: Headers,
    signal: AbortSignal | null,
  ): Promise<VerifiedResponse> {
    let refreshed = false;
    for (;;) {
      // Headers are signed only for a host known to verify them (a reference host would
      // refuse the extra field): learned from its first verified answer, kept for good.
      const signed = await this.signRequest(record, method, pathAndQuery, body, record.signsHeaders ? headers : undefined);
      const response = await this.sendSigned(record, method, signed, body, headers, signal);
      if (response.status !== 401 || !looksLikeHost(response)) return this.checkAnswer(record, signed, response);
      const refusal = await this.readRefusal(record, signed, response);
      if (GONE.has(refusal.reason)) throw await this.revoked(record, refusal.reason);
      if (refreshed || !REFRESHABLE.has(refusal.reason)) {
        throw new RelayRefused(401, `the host refused the request (${refusal.reason}): ${refusal.message}`, refusal.reason);
      }
      if (!refusal.verified && !SAFE_METHODS.has(method)) {
        throw new RelayRefused(
          401,
          `${refusal.message} (not retried: the refusal carries no host signature, so it may not come from the host; send it again)`,
          refusal.reason,
        );
      }
      record = await this.refresh(record);
      refreshed = true;
    }
  }

  /** `headers`: those the request will carry, to sign them (the host then passes on
   *  only them); none (a WebSocket upgrade, which cannot carry headers): the reference way. */
  private async signRequest(
    record: StoredPairing,
    method: string,
    pathAndQuery: string,
    body: Uint8Array,
    headers?: Headers,
  ): Promise<SignedRequest> {
    const ts = this.clock(record).now();
    const nonce = crypto.randomUUID();
    const sessionId = record.signingSessionId;
    let headerNames: string[] | undefined;
    let hHeaders: string | null = null;
    if (headers) {
      headerNames = [...headers.keys()].filter(wire.signableRequestHeader);
      if (headerNames.length > wire.MAX_SIGNED_HEADERS) throw new TypeError(`more than ${wire.MAX_SIGNED_HEADERS} headers to sign`);
      hHeaders = wire.headersHash(headerNames, (name) => headers.get(name));
    }
    const message = wire.requestMessage(ts, method, pathAndQuery, sessionId, nonce, wire.bodyHash(body), hHeaders);
    const signature = await sign(record.privateKey, message);
    return { sessionId, nonce, pathAndQuery, ts, signatureB64: b64encode(signature), ...(headerNames ? { headerNames } : {}) };
  }

  private async sendSigned(
    record: StoredPairing,
    method: string,
    signed: SignedRequest,
    body: Uint8Array,
    userHeaders: Headers,
    signal: AbortSignal | null,
  ): Promise<Response> {
    const headers = signedHeaders(signed, userHeaders);
    for (let attempt = 0; ; attempt++) {
      const session = await this.relaySession(record);
      const init: RequestInit = { method, headers, redirect: "manual", cache: "no-store", signal };
      if (body.length || !SAFE_METHODS.has(method)) init.body = own(body);
      const response = await this.send(this.proxyBase(record.hostId, session) + signed.pathAndQuery, init);
      record.sessionUsedAt = this.clockNow();
      if (attempt === 0 && relaySessionGone(response)) {
        await response.body?.cancel().catch(() => undefined);
        record.relaySessionId = null;
        await this.store.put(record);
        continue; // the very same signed request again
      }
      return response;
    }
  }

  private async checkAnswer(record: StoredPairing, signed: SignedRequest, response: Response): Promise<VerifiedResponse> {
    if (!response.headers.has(wire.RESP_SIGNATURE) && isRelayError(response.status)) {
      throw relayError(response.status, errorFields(await readSmall(response)));
    }
    let head;
    try {
      head = parseHead(response.status, response.headers, signed.headerNames !== undefined);
    } catch (err) {
      await response.body?.cancel().catch(() => undefined);
      throw err;
    }
    const key = this.hostKey(record);
    const unverified = new Headers(response.headers);
    for (const name of head.signedHeaders.keys()) unverified.delete(name);
    if (head.streamed) {
      try {
        await verifyHead(key, signed, head, wire.STREAM_SIGNING_V1);
        learnSignedHeaders(record, head);
      } catch (err) {
        await response.body?.cancel().catch(() => undefined);
        throw err;
      }
      const verifier = new StreamVerifier(key, signed, head.responseNonce);
      const source = response.body ?? new ReadableStream<Uint8Array>({ start: (c) => c.close() });
      const body = verifiedStream(source, verifier, (err) =>
        err instanceof Error && err.name === "AbortError" ? new Timeout("the answer stopped (aborted)") : err,
      );
      await this.store.put(record);
      return new Verified(head.status, head.signedHeaders, unverified, body, true);
    }
    let bytes: Uint8Array;
    try {
      bytes = await readLimited(response, this.maxBody);
    } catch (err) {
      if (err instanceof RangeError) throw new RelayRefused(response.status, `${err.message} and not streamed`, "too_large");
      throw this.networkError(err);
    }
    await verifyHead(key, signed, head, wire.bodyHash(bytes));
    learnSignedHeaders(record, head);
    await this.store.put(record);
    const nullBody = response.status === 204 || response.status === 304 || bytes.length === 0;
    const body = nullBody
      ? null
      : new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(bytes);
            controller.close();
          },
        });
    return new Verified(head.status, head.signedHeaders, unverified, body, false);
  }

  private async readRefusal(
    record: StoredPairing,
    signed: SignedRequest,
    response: Response,
  ): Promise<{ reason: string; message: string; verified: boolean }> {
    const body = await readSmall(response);
    let verified = false;
    try {
      const head = parseHead(401, response.headers, signed.headerNames !== undefined);
      if (!head.streamed) {
        await verifyHead(this.hostKey(record), signed, head, wire.bodyHash(body));
        verified = true;
        learnSignedHeaders(record, head);
      }
    } catch {
      verified = false;
    }
    this.observeHostTime(record, response.headers.get(wire.HOST_TIME), verified);
    return { ...errorFields(body), verified };
  }

  // ------------------------------------------------------------------ WebRTC

  /** Which way this host's calls go now. */
  hostPath(hostId: string): HostPath {
    const peer = this.peers.get(hostId);
    return {
      path: peer?.channel?.isOpen ? "direct" : "relayed",
      forcedRelayed: peer?.forcedRelayed ?? false,
      lastError: peer?.lastError ?? null,
      upgrades: peer?.upgrades ?? 0,
      certificateChecked: Boolean(peer?.channel?.isOpen && peer.channel.certificateChecked),
    };
  }

  /** Be told when a host's path changes; returns the unsubscribe function. */
  onPathChange(listener: (hostId: string, path: HostPath) => void): () => void {
    this.pathListeners.add(listener);
    return () => this.pathListeners.delete(listener);
  }

  /** The relay only for this host (true), or the upgrade allowed again (false). */
  forceRelayed(hostId: string, relayedOnly: boolean): void {
    const peer = this.peer(checkUuid(hostId, "host id"));
    peer.forcedRelayed = relayedOnly;
    if (relayedOnly) peer.channel?.close("the relay was chosen");
    else peer.failedAt = null;
    this.pathChanged(hostId);
  }

  /** Drop the host's channel: calls go through the relay, and the next one (a channel
   *  that worked and dropped) tries the upgrade again at once. */
  closeChannel(hostId: string, reason = "closed by this page"): void {
    this.peers.get(hostId)?.channel?.close(reason);
  }

  /** Try the upgrade now (after a failure, only once retryAfterFailureMs passed);
   *  resolves true when a channel is open. Never throws for a failed negotiation. */
  upgrade(hostId: string): Promise<boolean> {
    hostId = checkUuid(hostId, "host id");
    const peer = this.peer(hostId);
    if (peer.channel?.isOpen) return Promise.resolve(true);
    if (peer.negotiating) return peer.negotiating;
    if (!this.rtc.enabled || peer.forcedRelayed) return Promise.resolve(false);
    if (peer.failedAt !== null && this.clockNow() - peer.failedAt < this.rtc.retryAfterFailureMs) return Promise.resolve(false);
    peer.negotiating = this.negotiate(hostId, peer)
      .then(() => true)
      .catch((err: unknown) => {
        peer.lastError = `${(err as Error)?.name ?? "Error"}: ${(err as Error)?.message ?? String(err)}`;
        peer.failedAt = this.clockNow();
        return false;
      })
      .finally(() => {
        peer.negotiating = null;
        this.pathChanged(hostId);
      });
    return peer.negotiating;
  }

  private peer(hostId: string): PeerState {
    let peer = this.peers.get(hostId);
    if (!peer) {
      peer = { channel: null, negotiating: null, failedAt: null, forcedRelayed: false, lastError: null, upgrades: 0 };
      this.peers.set(hostId, peer);
    }
    return peer;
  }

  private pathChanged(hostId: string): void {
    const path = this.hostPath(hostId);
    for (const listener of this.pathListeners) {
      try {
        listener(hostId, path);
      } catch {
        /* a listener's own problem */
      }
    }
  }

  private upgradeSoon(hostId: string): void {
    if (!this.rtc.enabled) return;
    void this.upgrade(hostId);
  }

  /** The open channel a call (or WebSocket) to `pathAndQuery` may take, or null. */
  private openChannel(hostId: string, pathAndQuery: string): DirectChannel | null {
    const peer = this.peers.get(hostId);
    const channel = peer?.channel;
    if (!peer || !channel?.isOpen || peer.forcedRelayed) return null;
    const route = pathAndQuery.split("?")[0] as string;
    if (route.startsWith(wire.AUTH_PREFIX) || route === OFFER_PATH) return null;
    return channel;
  }

  /** The channel a call to `pathAndQuery` with `body` may take, or null: the relay then. */
  private async channelFor(hostId: string, pathAndQuery: string, body: Uint8Array): Promise<DirectChannel | null> {
    const channel = this.openChannel(hostId, pathAndQuery);
    if (channel && body.length > MAX_CHANNEL_UPLOAD && !(await channel.offers("upload"))) return null;
    return channel;
  }

  /** The offer, signed and sent through the relay; its answer verified like every answer
   *  (so the DTLS fingerprints in it are the host's) before the browser uses it. */
  private async negotiate(hostId: string, peer: PeerState): Promise<void> {
    const { channel, sdp } = await DirectChannel.offer(this.rtc.iceServers, {
      gatherMs: this.rtc.gatherMs,
      openMs: this.rtc.openMs,
      maxMessage: this.rtc.maxMessage,
      maxQueue: 64,
    });
    try {
      const offerId = crypto.randomUUID();
      const answer = await this.hostFetch(
        hostId,
        OFFER_PATH,
        { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ sdp, session_id: offerId }) },
        false,
      );
      if (answer.status !== 200) throw new NegotiationFailed(`the host refused the offer (${answer.status})`);
      let doc: unknown;
      try {
        doc = await answer.json();
      } catch {
        throw new NegotiationFailed("the answer is not JSON");
      }
      const data = (doc as { success?: unknown; data?: unknown } | null)?.data as { sdp?: unknown; session_id?: unknown } | undefined;
      if ((doc as { success?: unknown }).success !== true || typeof data !== "object" || data === null) {
        throw new NegotiationFailed("the answer is not a success envelope");
      }
      if (data.session_id !== offerId || typeof data.sdp !== "string") throw new NegotiationFailed("the answer is for another offer");
      let fingerprints: Set<string>;
      try {
        fingerprints = dtlsFingerprints(data.sdp);
      } catch (err) {
        throw new NegotiationFailed(`bad answer: ${(err as Error).message}`);
      }
      await channel.accept(data.sdp, fingerprints);
    } catch (err) {
      channel.close("the upgrade failed");
      throw err;
    }
    peer.channel = channel;
    peer.failedAt = null;
    peer.lastError = null;
    peer.upgrades += 1;
    this.stats.upgrades += 1;
    channel.onClose((reason) => {
      if (peer.channel === channel) peer.channel = null;
      peer.lastError = reason;
      this.pathChanged(hostId); // it worked and dropped: the next relayed call retries at once
    });
  }

  /** One call over the channel, signed and checked exactly like a relayed one. Null: the
   *  host refused it before running it (an unsigned 401/403: a stale signing session,
   *  say), so the relay path may sign it anew. No answer in time, or the channel failed:
   *  the SAME signed request goes through the relay, and a host that had run it refuses
   *  it as a replay (MayHaveRun) instead of running it twice. */
  private async fetchDirect(
    record: StoredPairing,
    channel: DirectChannel,
    method: string,
    pathAndQuery: string,
    body: Uint8Array,
    headers: Headers,
    signal: AbortSignal | null,
  ): Promise<VerifiedResponse | null> {
    const signed = await this.signRequest(record, method, pathAndQuery, body);
    const sent = channelHeaders(signedHeaders(signed, headers));
    const upload = body.length > INLINE_UPLOAD && channel.hostExtensions.has("upload");
    let response: Response;
    try {
      response = await channel.fetch({ method, path: signed.pathAndQuery, headers: sent, body }, this.rtc.answerTimeoutMs, signal, upload);
    } catch (err) {
      if (!(err instanceof ChannelTimeout || err instanceof ChannelClosed)) throw err;
      this.stats.channelFallbacks += 1;
      // An upload that never got to its end cannot have run: the relay, signed anew.
      if (err instanceof NotDelivered) return null;
      if (err instanceof ChannelTimeout) channel.close(err.message);
      const relayed = await this.sendSigned(record, method, signed, body, headers, signal);
      if (relayed.status === 401 && looksLikeHost(relayed)) {
        const refusal = await this.readRefusal(record, signed, relayed);
        if (refusal.reason === "replayed_nonce") {
          throw new MayHaveRun(
            `${method} ${pathAndQuery}: no answer over WebRTC in time and the host had this call already: it may have run (it was not run twice)`,
          );
        }
        throw new RelayRefused(401, `the host refused the request (${refusal.reason}): ${refusal.message}`, refusal.reason);
      }
      this.stats.relayedCalls += 1;
      return this.checkAnswer(record, signed, relayed);
    }
    record.sessionUsedAt = this.clockNow();
    if ((response.status === 401 || response.status === 403) && !response.headers.has(wire.RESP_SIGNATURE)) {
      const fields = errorFields(await readSmall(response));
      if (fields.reason === "wrong_session") channel.close("the channel belongs to an older signing session");
      return null;
    }
    const answer = (await this.checkAnswer(record, signed, response)) as Verified;
    answer.via = "direct";
    this.stats.directCalls += 1;
    return answer;
  }

  // ------------------------------------------------------------------ signing sessions

  /** A new signing session for this client (POST signing-session/refresh). */
  private async refresh(record: StoredPairing): Promise<StoredPairing> {
    for (let attempt = 0; ; attempt++) {
      const ts = this.clock(record).now();
      const nonce = crypto.randomUUID();
      const signature = await sign(record.privateKey, wire.refreshMessage(ts, nonce, record.clientId));
      const payload = { client_id: record.clientId, timestamp: String(ts), nonce, signature_b64: b64encode(signature) };
      const session = await this.relaySession(record);
      const response = await this.send(`${this.proxyBase(record.hostId, session)}${wire.AUTH_PREFIX}/signing-session/refresh`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(payload),
      });
      const body = await readSmall(response);
      if (response.status === 200) {
        const data = dataOf(body, "signing-session/refresh");
        record.signingSessionId = uuidField(data, "signing_session_id");
        record.sessionStartedAt = record.sessionUsedAt = this.clockNow();
        this.stats.refreshes += 1;
        await this.store.put(record);
        return record;
      }
      const fields = errorFields(body);
      if (attempt === 0 && relaySessionGone(response)) {
        record.relaySessionId = null;
        continue;
      }
      if (!looksLikeHost(response) && fields.reason === "unknown") throw relayError(response.status, fields);
      this.observeHostTime(record, response.headers.get(wire.HOST_TIME), false);
      if (attempt === 0 && fields.reason === "clock_skew") continue;
      if (GONE.has(fields.reason)) throw await this.revoked(record, fields.reason);
      throw new RelayRefused(response.status, `the host refused a new signing session (${fields.reason}): ${fields.message}`, fields.reason);
    }
  }

  private async renewIfStale(record: StoredPairing): Promise<StoredPairing> {
    const now = this.clockNow();
    if (now - record.sessionStartedAt > SESSION_MAX_AGE || now - record.sessionUsedAt > SESSION_MAX_IDLE) {
      return this.refresh(record);
    }
    return record;
  }

  /** The host revoked or forgot this client: drop the pairing, say "pair again". */
  private async revoked(record: StoredPairing, reason: string): Promise<PairingRevoked> {
    await this.store.delete(record.relayUrl, record.hostId);
    return new PairingRevoked(
      reason === "client_revoked"
        ? `this browser was ${REVOKED_REASON}: pair again`
        : "the host no longer knows this browser: pair again",
    );
  }

  private clock(record: StoredPairing): HostClock {
    return new HostClock(this.clockNow, record.clockOffset);
  }

  private observeHostTime(record: StoredPairing, header: string | null, verified: boolean): void {
    const clock = this.clock(record);
    if (clock.observe(header, verified)) record.clockOffset = clock.offset;
  }

  // ------------------------------------------------------------------ relay session

  private async load(hostId: string): Promise<StoredPairing> {
    let record: StoredPairing | undefined;
    try {
      record = await this.store.get(this.relayUrl, hostId);
    } catch (err) {
      throw new NotPaired(`the pairing store cannot be read (${(err as Error).message}): pair again`);
    }
    if (!record || !record.privateKey || !record.hostPublicKeyB64) {
      throw new NotPaired("this browser is not paired with that host: pair first");
    }
    return record;
  }

  private hostKey(record: StoredPairing): HostKey {
    let key = this.hostKeys.get(record.hostPublicKeyB64);
    if (!key) {
      key = new HostKey(b64decode(record.hostPublicKeyB64, 32));
      this.hostKeys.set(record.hostPublicKeyB64, key);
    }
    return key;
  }

  private async relaySession(record: StoredPairing): Promise<string> {
    if (record.relaySessionId === null) {
      record.relaySessionId = await this.createRelaySession(record.hostId);
      await this.store.put(record);
    }
    return record.relaySessionId;
  }

  private async createRelaySession(hostId: string): Promise<string> {
    const response = await this.send(`${this.relayUrl}/v1/relay/create/${hostId}`, {
      method: "POST",
      headers: { authorization: `Bearer ${await this.token()}` },
    });
    const body = await readSmall(response);
    if (response.status !== 200) throw relayError(response.status, errorFields(body));
    this.stats.relaySessionCreations += 1;
    try {
      const doc = JSON.parse(new TextDecoder().decode(body)) as { session_id?: unknown };
      return checkUuid(String(doc.session_id), "session id");
    } catch {
      throw new RelayRefused(200, "the relay's create answer has no session_id");
    }
  }

  private proxyBase(hostId: string, relaySession: string): string {
    return `${this.relayUrl}/v1/relay/h/${hostId}/s/${relaySession}`;
  }

  /** POST to one of the host's unsigned pairing routes; the `data` of its answer. */
  private async authCall(base: string, route: string, payload: Record<string, unknown>): Promise<Record<string, unknown>> {
    const response = await this.send(`${base}${wire.AUTH_PREFIX}/${route}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(payload),
    });
    const body = await readSmall(response);
    if (response.status !== 200) {
      const fields = errorFields(body);
      if (fields.reason === "unknown" && !response.headers.has(wire.HOST_TIME)) throw relayError(response.status, fields);
      throw new PairingFailed(fields.reason, `the host refused pairing (${fields.reason}): ${fields.message}`);
    }
    return dataOf(body, route);
  }

  /** fetch with a timeout on the answer's head only (a stream may then run for as long
   *  as it runs; the caller's signal still ends it); failures as our errors. */
  private async send(url: string, init: RequestInit): Promise<Response> {
    const controller = new AbortController();
    const outer = init.signal;
    const forward = () => controller.abort(outer?.reason);
    if (outer) {
      if (outer.aborted) forward();
      else outer.addEventListener("abort", forward, { once: true });
    }
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.timeoutMs);
    try {
      const response = await this.fetchImpl(url, { ...init, signal: controller.signal });
      if (response.type === "opaqueredirect") {
        throw new RelayRefused(0, "the host answered with a redirect, which a page cannot read: ask for the target path", "redirect");
      }
      return response;
    } catch (err) {
      if (timedOut) throw new Timeout(`no answer from the relay within ${this.timeoutMs} ms`);
      throw this.networkError(err);
    } finally {
      clearTimeout(timer);
    }
  }

  private networkError(err: unknown): Error {
    if (err instanceof Error && (err.name === "AbortError" || err.name === "TimeoutError")) return err;
    if (err instanceof SignatureInvalid || err instanceof Timeout) return err;
    return new RelayRefused(0, `cannot reach the relay: ${(err as Error)?.message ?? String(err)}`, "network");
  }

  // ------------------------------------------------------------------ WebSocket

  /** A WebSocket to the host whose every frame is signed both ways. */
  relayWebSocket(hostId: string, path: string): RelayWebSocket {
    hostId = checkUuid(hostId, "host id");
    const relayed = () => new SignedRelayWebSocket(this, hostId, path);
    const channel = this.openChannel(hostId, wire.canonicalPath(path));
    if (!channel) return relayed();
    return new ChannelWebSocket(channel, () => this.prepareChannelWebSocket(hostId, path), relayed, this.rtc.answerTimeoutMs);
  }

  /** The signature headers of an upgrade over the channel (GET path, empty body), signed
   *  over the same path a relayed upgrade signs. */
  private async prepareChannelWebSocket(hostId: string, path: string): Promise<{ path: string; headers: ChannelHeaders }> {
    const [pathOnly, query = ""] = splitOnce(wire.canonicalPath(path), "?");
    const signedPath = wire.signedWsPath(pathOnly, [...new URLSearchParams(query)] as [string, string][]);
    const record = await this.renewIfStale(await this.load(hostId));
    const signed = await this.signRequest(record, "GET", signedPath, new Uint8Array(0));
    record.sessionUsedAt = this.clockNow();
    await this.store.put(record);
    return { path: signedPath, headers: channelHeaders(signedHeaders(signed, new Headers())) };
  }

  /** @internal The upgrade URL and the frame signer and verifier for it. */
  async _prepareWebSocket(
    hostId: string,
    path: string,
    refresh: boolean,
  ): Promise<{ url: string; signer: FrameSigner; verifier: FrameVerifier; record: StoredPairing; Impl: WebSocketConstructor }> {
    const Impl = this.WebSocketImpl;
    if (!Impl) throw new TypeError("no WebSocket implementation (pass options.WebSocket)");
    const canonical = wire.canonicalPath(path);
    const [pathOnly, query = ""] = splitOnce(canonical, "?");
    const pairs = [...new URLSearchParams(query)] as [string, string][];
    let record = await this.load(hostId);
    record = refresh ? await this.refresh(record) : await this.renewIfStale(record);
    const signed = await this.signRequest(record, "GET", wire.signedWsPath(pathOnly, pairs), new Uint8Array(0));
    const all: [string, string][] = [
      ...pairs,
      [wire.SIG_SESSION, signed.sessionId],
      [wire.SIG_TS, String(signed.ts)],
      [wire.SIG_NONCE, signed.nonce],
      [wire.SIG_SIGNATURE, signed.signatureB64],
    ];
    const session = await this.relaySession(record);
    const url = this.proxyBase(hostId, session).replace(/^http/, "ws") + pathOnly + "?" + wire.formUrlencode(all);
    record.sessionUsedAt = this.clockNow();
    await this.store.put(record);
    return {
      url,
      signer: new FrameSigner(record.privateKey, signed.sessionId, signed.nonce),
      verifier: new FrameVerifier(this.hostKey(record), signed.sessionId, signed.nonce),
      record,
      Impl,
    };
  }

  /** @internal */
  async _revokedLocally(record: StoredPairing): Promise<void> {
    await this.store.delete(record.relayUrl, record.hostId);
  }
}

function splitOnce(text: string, sep: string): [string, string?] {
  const at = text.indexOf(sep);
  return at < 0 ? [text] : [text.slice(0, at), text.slice(at + 1)];
}

function dataOf(body: Uint8Array, route: string): Record<string, unknown> {
  try {
    const doc = JSON.parse(new TextDecoder().decode(body)) as Record<string, unknown>;
    if (doc.success === true && typeof doc.data === "object" && doc.data !== null) return doc.data as Record<string, unknown>;
  } catch {
    /* fall through */
  }
  throw new PairingFailed("bad_answer", `the host's ${route} answer is not what the protocol says`);
}

function uuidField(data: Record<string, unknown>, name: string): string {
  const value = data[name];
  if (typeof value !== "string" || !UUID.test(value.toLowerCase())) {
    throw new PairingFailed("bad_answer", `the host's answer lacks a valid ${name}`);
  }
  return value.toLowerCase();
}

function b64Field(data: Record<string, unknown>, name: string, size: number): Uint8Array {
  const value = data[name];
  try {
    if (typeof value !== "string") throw new Error("missing");
    return b64decode(value, size);
  } catch (err) {
    throw new PairingFailed("bad_answer", `the host's answer has a bad ${name}: ${(err as Error).message}`);
  }
}

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

/** The WebSocket-like object relayWebSocket returns. Incoming envelopes are checked in
 *  order (a promise chain), outgoing ones signed and sent in call order. A browser does
 *  not tell why an upgrade failed, so a failed upgrade is tried once more after a new
 *  signing session (which also tells a revoked client: PairingRevoked, and a gone relay
 *  session: re-created). */
class SignedRelayWebSocket implements RelayWebSocket {
  onopen: (() => void) | null = null;
  onmessage: ((ev: { data: string | Uint8Array }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((err: Error) => void) | null = null;
  private state = CONNECTING;
  private socket: WebSocket | null = null;
  private signer: FrameSigner | null = null;
  private verifier: FrameVerifier | null = null;
  private record: StoredPairing | null = null;
  private incoming: Promise<void> = Promise.resolve();
  private outgoing: Promise<void> = Promise.resolve();
  private hostClose: { code: number; reason: string } | null = null;
  private failed: { code: number; reason: string } | null = null;
  private closedReported = false;

  constructor(
    private readonly client: RelayClient,
    private readonly hostId: string,
    private readonly path: string,
  ) {
    void this.connect(false);
  }

  get readyState(): number {
    return this.state;
  }

  private async connect(refresh: boolean): Promise<void> {
    let prepared;
    try {
      prepared = await this.client._prepareWebSocket(this.hostId, this.path, refresh);
    } catch (err) {
      this.fail(err as Error, err instanceof PairingRevoked ? REVOKED_REASON : (err as Error).message);
      return;
    }
    if (this.state !== CONNECTING) return; // closed meanwhile
    this.signer = prepared.signer;
    this.verifier = prepared.verifier;
    this.record = prepared.record;
    const socket = new prepared.Impl(prepared.url);
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
      if (this.state !== CONNECTING) return;
      this.state = OPEN;
      this.onopen?.();
    };
    socket.onmessage = (event: MessageEvent) => {
      const data: unknown = event.data;
      const message = typeof data === "string" ? data : new Uint8Array(data as ArrayBuffer);
      this.incoming = this.incoming.then(() => this.receive(message));
    };
    socket.onerror = () => undefined; // onclose follows and says more
    socket.onclose = (event: CloseEvent) => {
      if (!opened && !refresh && this.state === CONNECTING) {
        void this.connect(true);
        return;
      }
      this.incoming = this.incoming.then(() => this.ended(event.code, event.reason));
    };
  }

  private async receive(message: string | Uint8Array): Promise<void> {
    if (this.state === CLOSED || this.failed || !this.verifier) return;
    let frame;
    try {
      frame = await this.verifier.open(message);
    } catch (err) {
      this.abort(err as Error);
      return;
    }
    switch (frame.msgType) {
      case "text":
        this.onmessage?.({ data: new TextDecoder().decode(frame.payload) });
        break;
      case "binary":
        this.onmessage?.({ data: frame.payload });
        break;
      case "ping":
        this.queue("pong", frame.payload);
        break;
      case "close": {
        const { code, reason } = parseClosePayload(frame.payload);
        const revoked = code === 1008 && /revoked/i.test(reason);
        this.hostClose = { code, reason: revoked ? REVOKED_REASON : reason };
        if (revoked && this.record) await this.client._revokedLocally(this.record).catch(() => undefined);
        this.state = CLOSING;
        closeQuietly(this.socket, validCloseCode(code), "");
        break;
      }
    }
  }

  private ended(code: number, reason: string): void {
    if (this.closedReported) return;
    this.closedReported = true;
    this.state = CLOSED;
    const final =
      this.failed ??
      this.hostClose ??
      (this.closingByUs ? { code, reason } : { code: 1006, reason: `the WebSocket ended without the host's signed close frame (${code}${reason ? " " + reason : ""})` });
    this.onclose?.(final);
  }

  private closingByUs = false;

  /** A bad frame: tell onerror, close with 1008, report that reason. */
  private abort(err: Error): void {
    this.failed = { code: 1008, reason: err.message };
    this.onerror?.(err);
    this.state = CLOSING;
    closeQuietly(this.socket, 1008, "frame verification failed");
  }

  private fail(err: Error, reason: string): void {
    this.failed = { code: 1008, reason };
    this.onerror?.(err);
    this.ended(1008, reason);
  }

  private queue(msgType: string, payload: Uint8Array): void {
    const signer = this.signer;
    const socket = this.socket;
    if (!signer || !socket) return;
    const envelope = signer.sign(msgType, payload); // takes its seq now, in call order
    this.outgoing = this.outgoing.then(async () => {
      const text = await envelope;
      if (socket.readyState === OPEN) socket.send(text);
    });
  }

  send(data: string | Uint8Array): void {
    if (this.state !== OPEN) throw new Error("the WebSocket is not open");
    if (typeof data === "string") this.queue("text", utf8(data));
    else this.queue("binary", data);
  }

  close(code = 1000, reason = ""): void {
    if (this.state === CLOSING || this.state === CLOSED) return;
    this.closingByUs = true;
    if (this.state === CONNECTING) {
      this.state = CLOSED;
      closeQuietly(this.socket, 1000, "");
      this.ended(code, reason);
      return;
    }
    this.state = CLOSING;
    this.queue("close", closePayload(code, reason));
    const socket = this.socket;
    this.outgoing = this.outgoing.then(() => closeQuietly(socket, code, reason));
  }
}

/** Close a socket whatever the code: browsers refuse codes other than 1000 and
 *  3000-4999 from a page (and reasons over 123 bytes), so fall back to a plain 1000. */
function closeQuietly(socket: WebSocket | null, code: number, reason: string): void {
  if (!socket) return;
  try {
    socket.close(code, reason);
  } catch {
    try {
      socket.close(1000);
    } catch {
      /* already closed */
    }
  }
}

const validCloseCode = (code: number): number => (code === 1000 || (code >= 3000 && code <= 4999) ? code : 1000);
