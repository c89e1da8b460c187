// An independent SPAKE2 over the Ed25519 prime-order group, written from the maths of
// docs/protocol.md section 7 (and the key schedule the `spake2` package documents), on
// @noble/curves point arithmetic and @noble/hashes. It shares no code with the Python
// side; tests/spake2js/test_spake2_vectors.py drives it over JSON lines on stdin/stdout.
//
// Group G = <B>, the Ed25519 base point, prime order L. Encoding: RFC 8032 (y little
// endian, top bit = parity of x). Side bytes 'A' (0x41) and 'B' (0x42) prefix messages.
//
//   w   = OS2IP(HKDF-SHA256(ikm=pw, salt="", info="SPAKE2 pw", 48 bytes)) mod L
//   M,N = hash-to-point of seeds "M", "N": y0 = OS2IP(HKDF(seed, "", "SPAKE2 arbitrary
//         element", 48)) mod p; the first y = y0, y0+1, ... for which a point (x, y)
//         with x even exists; the element is 8*(x, y) (into the prime-order subgroup),
//         skipping the identity.
//   A:  x random, X* = x*B + w*M        B:  y random, Y* = y*B + w*N
//   K = x*(Y* - w*N) = y*(X* - w*M)
//   key = SHA256(SHA256(pw) | SHA256(idA) | SHA256(idB) | X* | Y* | K)
//
// A random scalar from 64 bytes of entropy is OS2IP(bytes) mod L (so the test can hand
// both implementations the same entropy and compare messages byte for byte).
//
// Pairing on top (docs/protocol.md section 7): ck = HKDF(key, "", "key-confirmation", 32);
// client proof = HMAC(ck, "vk-spake2-client-proof-v2" | enrollment uuid (16 bytes) |
// client public key); server proof = HMAC(ck, "vk-spake2-server-proof-v2" | enrollment
// uuid | client public key | server public key).

import { randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import { createInterface } from "node:readline";
import { ed25519 } from "@noble/curves/ed25519.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";

const Point = ed25519.Point;
const { p: P, n: L, d: D } = Point.CURVE();
const enc = new TextEncoder();
const ID_A = enc.encode("vibe-kanban-browser");
const ID_B = enc.encode("vibe-kanban-server");

const mod = (a, m) => ((a % m) + m) % m;
function powmod(base, exp, m) {
  let result = 1n;
  base = mod(base, m);
  while (exp > 0n) {
    if (exp & 1n) result = (result * base) % m;
    base = (base * base) % m;
    exp >>= 1n;
  }
  return result;
}
const inverse = (a) => powmod(a, P - 2n, P);
const bigFromBE = (bytes) => bytes.reduce((acc, b) => (acc << 8n) | BigInt(b), 0n);
const hex = (bytes) => Buffer.from(bytes).toString("hex");
const unhex = (text) => new Uint8Array(Buffer.from(text, "hex"));
const b64 = (bytes) => Buffer.from(bytes).toString("base64");
const unb64 = (text) => new Uint8Array(Buffer.from(text, "base64"));
const concat = (...parts) => {
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
};
const EMPTY = new Uint8Array(0);

// sqrt(u) mod p for p = 5 (mod 8): r = u^((p+3)/8); if r^2 = -u use r*sqrt(-1).
const SQRT_M1 = powmod(2n, (P - 1n) / 4n, P);
function sqrtOrNull(u) {
  let r = powmod(u, (P + 3n) / 8n, P);
  if (mod(r * r - u, P) !== 0n) r = mod(r * SQRT_M1, P);
  return mod(r * r - u, P) === 0n ? r : null;
}

function passwordScalar(pw) {
  return mod(bigFromBE(hkdf(sha256, pw, EMPTY, enc.encode("SPAKE2 pw"), 48)), L);
}

function arbitraryElement(seed) {
  const y0 = mod(bigFromBE(hkdf(sha256, seed, EMPTY, enc.encode("SPAKE2 arbitrary element"), 48)), P);
  for (let plus = 0n; ; plus++) {
    const y = mod(y0 + plus, P);
    const x2 = mod((y * y - 1n) * inverse(D * y * y + 1n), P);
    let x = sqrtOrNull(x2);
    if (x === null) continue;
    if (x & 1n) x = P - x; // the even root
    const point = Point.fromAffine({ x, y }).multiplyUnsafe(8n);
    if (point.is0()) continue;
    return point;
  }
}

const M = arbitraryElement(enc.encode("M"));
const N = arbitraryElement(enc.encode("N"));

function decodeElement(bytes) {
  const point = Point.fromBytes(bytes, false); // strict RFC 8032 decoding
  if (point.is0() || !point.isTorsionFree()) throw new Error("not an element of the group");
  return point;
}

function scalarFromEntropy(bytes) {
  const s = mod(bigFromBE(bytes), L);
  if (s === 0n) throw new Error("zero scalar");
  return s;
}

// One side of an exchange: { side: "A" | "B", pw, x, message }.
function start(side, pw, entropy) {
  const w = passwordScalar(pw);
  const secret = scalarFromEntropy(entropy);
  const blind = side === "A" ? M : N;
  const element = Point.BASE.multiply(secret).add(blind.multiply(w));
  const message = concat(enc.encode(side), element.toBytes());
  return { side, pw, w, secret, message };
}

function finish(state, inbound) {
  const other = state.side === "A" ? "B" : "A";
  if (inbound.length !== 33 || inbound[0] !== other.charCodeAt(0)) throw new Error("wrong side");
  const peer = decodeElement(inbound.subarray(1));
  const unblind = state.side === "A" ? N : M;
  const K = peer.subtract(unblind.multiply(state.w)).multiply(state.secret);
  const mine = state.message.subarray(1);
  const theirs = inbound.subarray(1);
  const [xMsg, yMsg] = state.side === "A" ? [mine, theirs] : [theirs, mine];
  const transcript = concat(sha256(state.pw), sha256(ID_A), sha256(ID_B), xMsg, yMsg, K.toBytes());
  return sha256(transcript);
}

function uuidBytes(text) {
  const clean = text.replace(/-/g, "");
  if (!/^[0-9a-f]{32}$/.test(clean)) throw new Error("not a uuid");
  return unhex(clean);
}

function proofs(key, enrollmentId, clientPublic, serverPublic) {
  const ck = hkdf(sha256, key, EMPTY, enc.encode("key-confirmation"), 32);
  const eid = uuidBytes(enrollmentId);
  return {
    ck,
    client: hmac(sha256, ck, concat(enc.encode("vk-spake2-client-proof-v2"), eid, clientPublic)),
    server: hmac(sha256, ck, concat(enc.encode("vk-spake2-server-proof-v2"), eid, clientPublic, serverPublic)),
  };
}

const states = new Map();
const entropyOf = (req) => (req.entropy_hex ? unhex(req.entropy_hex) : randomBytes(64));

const ops = {
  constants: () => ({ M: hex(M.toBytes()), N: hex(N.toBytes()), w_empty: passwordScalar(EMPTY).toString(16) }),
  start: (req) => {
    const state = start(req.side, enc.encode(req.password), entropyOf(req));
    const id = randomUUID();
    states.set(id, state);
    return { id, message_hex: hex(state.message) };
  },
  finish: (req) => {
    const state = states.get(req.id);
    states.delete(req.id);
    return { key_hex: hex(finish(state, unhex(req.peer_message_hex))) };
  },
  proofs: (req) => {
    const out = proofs(unhex(req.key_hex), req.enrollment_id, unhex(req.client_public_hex), unhex(req.server_public_hex));
    return { ck_hex: hex(out.ck), client_proof_hex: hex(out.client), server_proof_hex: hex(out.server) };
  },
  // The host's two pairing routes, as a host built on this code would answer them.
  host_start: (req) => {
    const state = start("B", enc.encode(req.code), entropyOf(req));
    const key = finish(state, unb64(req.client_message_b64));
    const enrollment_id = randomUUID();
    states.set(enrollment_id, { key });
    return { enrollment_id, server_message_b64: b64(state.message) };
  },
  host_finish: (req) => {
    const pending = states.get(req.enrollment_id);
    states.delete(req.enrollment_id); // single use, right or wrong
    if (!pending) return { error: "unknown enrollment" };
    const clientPublic = unb64(req.public_key_b64);
    const serverSecret = randomBytes(32);
    const serverPublic = ed25519.getPublicKey(serverSecret);
    const out = proofs(pending.key, req.enrollment_id, clientPublic, serverPublic);
    const given = unb64(req.client_proof_b64);
    if (given.length !== 32 || !timingSafeEqual(given, out.client)) return { error: "bad client proof" };
    return {
      signing_session_id: randomUUID(),
      server_public_key_b64: b64(serverPublic),
      server_proof_b64: b64(out.server),
    };
  },
};

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  let answer;
  try {
    const req = JSON.parse(line);
    answer = ops[req.op](req);
  } catch (err) {
    answer = { error: String(err && err.message ? err.message : err) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}
