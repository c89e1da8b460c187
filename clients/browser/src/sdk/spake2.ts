// SPAKE2 side A over the Ed25519 group, byte-compatible with the Python `spake2`
// package (SPAKE2_A with idA "vibe-kanban-browser", idB "vibe-kanban-server"), and the
// pairing's key confirmation (HKDF "key-confirmation", HMAC proofs). The code stays
// here: only the 33-byte message leaves.
//
//   w  = OS2IP(HKDF-SHA256(ikm=code, salt="", info="SPAKE2 pw", 48 bytes)) mod L
//   X* = x*B + w*M,  message = "A" | X*
//   K  = x*(Y* - w*N)
//   key = SHA256(SHA256(code) | SHA256(idA) | SHA256(idB) | X* | Y* | K)
// x is OS2IP(64 random bytes) mod L, as the Python package draws it (so fixed entropy
// gives the same message in both: tests/vectors/spake2.json).
import { ed25519 } from "@noble/curves/ed25519.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { concat, unhex, utf8 } from "./bytes";

const Point = ed25519.Point;
const L = Point.CURVE().n;
const EMPTY = new Uint8Array(0);
export const ID_A = utf8("vibe-kanban-browser");
export const ID_B = utf8("vibe-kanban-server");
export const MESSAGE_SIZE = 33;
export const ENTROPY_SIZE = 64;

// The package's blinding elements, hashed to the group from the seeds "M" and "N"
// (tests/spake2js derives them from the seeds independently).
const M = Point.fromHex("15cfd18e385952982b6a8f8c7854963b58e34388c8e6dae891db756481a02312");
const N = Point.fromHex("f04f2e7eb734b2a8f8b472eaf9c3c632576ac64aea650b496a8a20ff00e583c3");

const bigFromBE = (bytes: Uint8Array): bigint =>
  bytes.reduce((acc, b) => (acc << 8n) | BigInt(b), 0n);
const mod = (a: bigint, m: bigint): bigint => ((a % m) + m) % m;

export const passwordScalar = (pw: Uint8Array): bigint =>
  mod(bigFromBE(hkdf(sha256, pw, EMPTY, utf8("SPAKE2 pw"), 48)), L);

export class Spake2A {
  readonly message: Uint8Array;
  private readonly pw: Uint8Array;
  private readonly w: bigint;
  private readonly x: bigint;
  private used = false;

  constructor(code: string, entropy?: Uint8Array) {
    this.pw = utf8(code);
    this.w = passwordScalar(this.pw);
    const random = entropy ?? crypto.getRandomValues(new Uint8Array(ENTROPY_SIZE));
    if (random.length !== ENTROPY_SIZE) throw new Error(`SPAKE2 needs ${ENTROPY_SIZE} bytes of entropy`);
    this.x = mod(bigFromBE(random), L);
    if (this.x === 0n) throw new Error("zero scalar");
    const element = Point.BASE.multiply(this.x).add(M.multiply(this.w));
    this.message = concat(utf8("A"), element.toBytes());
  }

  /** The shared key from the host's message; throws on a malformed or wrong-side one. */
  finish(inbound: Uint8Array): Uint8Array {
    if (this.used) throw new Error("finish() was already called");
    this.used = true;
    if (inbound.length !== MESSAGE_SIZE || inbound[0] !== 0x42) {
      throw new Error("the host's SPAKE2 message is not side B's 33 bytes");
    }
    const peer = Point.fromBytes(inbound.subarray(1), false);
    if (peer.is0() || !peer.isTorsionFree()) throw new Error("the host's SPAKE2 element is not in the group");
    const K = peer.subtract(N.multiply(this.w)).multiply(this.x);
    return sha256(
      concat(sha256(this.pw), sha256(ID_A), sha256(ID_B), this.message.subarray(1), inbound.subarray(1), K.toBytes()),
    );
  }
}

export const confirmationKey = (sharedKey: Uint8Array): Uint8Array =>
  hkdf(sha256, sharedKey, EMPTY, utf8("key-confirmation"), 32);

function uuidBytes(id: string): Uint8Array {
  const clean = id.toLowerCase().replace(/-/g, "");
  if (!/^[0-9a-f]{32}$/.test(clean)) throw new Error("not a UUID");
  return unhex(clean);
}

export const clientProof = (ck: Uint8Array, enrollmentId: string, clientPublic: Uint8Array): Uint8Array =>
  hmac(sha256, ck, concat(utf8("vk-spake2-client-proof-v2"), uuidBytes(enrollmentId), clientPublic));

export const serverProof = (
  ck: Uint8Array,
  enrollmentId: string,
  clientPublic: Uint8Array,
  serverPublic: Uint8Array,
): Uint8Array =>
  hmac(
    sha256,
    ck,
    concat(utf8("vk-spake2-server-proof-v2"), uuidBytes(enrollmentId), clientPublic, serverPublic),
  );
