// agent-relay's browser SDK: pair with a host once (SPAKE2, the code never leaves the
// page), then reach it through the relay with every request signed and every answer
// verified against the host's key. SKELETON: the signatures are final, the bodies
// come in the next commits.

export interface PairingStore {
  get(relayUrl: string, hostId: string): Promise<StoredPairing | undefined>;
  put(record: StoredPairing): Promise<void>;
  delete(relayUrl: string, hostId: string): Promise<void>;
  list(relayUrl: string): Promise<StoredPairing[]>;
}

/** A pairing as kept in the store: the public part plus the client's key. */
export interface StoredPairing extends Pairing {
  privateKey: CryptoKey | Uint8Array;
  publicKeyRaw: Uint8Array;
  signingSessionIssuedAt: number;
}

export interface RelayClientOptions {
  relayUrl: string;
  token: () => string | Promise<string>;
  fetch?: typeof fetch;
  now?: () => number;
  storage?: PairingStore;
}

export interface HostInfo {
  id: string;
  name: string;
  status: "online" | "offline";
  lastSeenAt: string | null;
  paired: boolean;
}

export interface Pairing {
  hostId: string;
  relayUrl: string;
  clientId: string;
  clientName: string;
  hostPublicKeyB64: string;
  signingSessionId: string;
  keyKind: "webcrypto" | "noble";
  pairedAt: string;
}

export interface VerifiedResponse {
  status: number;
  /** Only the headers the host's signature covers. */
  headers: Headers;
  body: ReadableStream<Uint8Array> | null;
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

export class NotPaired extends Error {}
export class PairingRevoked extends Error {}
export class HostOffline extends Error {}
export class SignatureInvalid extends Error {}
export class Timeout extends Error {}
export class RelayRefused extends Error {
  status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}
export class PairingFailed extends Error {
  reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.reason = reason;
  }
}

const notYet = (): never => {
  throw new Error("not yet");
};

/** Trim, uppercase, drop spaces and dashes: a code as the user typed it. */
export function normalizeCode(input: string): string {
  return input.trim().toUpperCase().replace(/[\s-]/g, "");
}

export function keySupport(): Promise<"webcrypto" | "noble"> {
  return notYet();
}

export class RelayClient {
  constructor(opts: RelayClientOptions) {
    void opts;
  }
  listHosts(): Promise<HostInfo[]> {
    return notYet();
  }
  pair(hostId: string, code: string, info?: { clientName?: string; device?: string }): Promise<Pairing> {
    void hostId, code, info;
    return notYet();
  }
  pairings(): Promise<Pairing[]> {
    return notYet();
  }
  forget(hostId: string): Promise<void> {
    void hostId;
    return notYet();
  }
  relayFetch(hostId: string, path: string, init?: RequestInit): Promise<VerifiedResponse> {
    void hostId, path, init;
    return notYet();
  }
  relayWebSocket(hostId: string, path: string): RelayWebSocket {
    void hostId, path;
    return notYet();
  }
}
