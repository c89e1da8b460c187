var __defProp = Object.defineProperty;
var __export = (target, all) => {
  for (var name in all)
    __defProp(target, name, { get: all[name], enumerable: true });
};

// src/sdk/bytes.ts
var bytes_exports = {};
__export(bytes_exports, {
  b64decode: () => b64decode,
  b64encode: () => b64encode,
  concat: () => concat,
  constantTimeEqual: () => constantTimeEqual,
  fromUtf8: () => fromUtf8,
  hex: () => hex,
  own: () => own,
  unhex: () => unhex,
  utf8: () => utf8
});
var encoder = new TextEncoder();
var decoder = new TextDecoder("utf-8", { fatal: true });
var utf8 = (text) => encoder.encode(text);
var fromUtf8 = (bytes) => decoder.decode(bytes);
function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
function b64encode(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 32768) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 32768));
  }
  return btoa(binary);
}
var B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
function b64decode(text, size) {
  if (!B64.test(text)) throw new Error("not base64");
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  if (size !== void 0 && out.length !== size) {
    throw new Error(`expected ${size} bytes, got ${out.length}`);
  }
  return out;
}
var hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
function unhex(text) {
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(text)) throw new Error("not hex");
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}
function constantTimeEqual(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}
var own = (bytes) => new Uint8Array(bytes);

// src/sdk/clock.ts
var MAX_UNVERIFIED_CORRECTION = 30;
var HostClock = class {
  constructor(clock, offset = 0, maxUnverified = MAX_UNVERIFIED_CORRECTION) {
    this.clock = clock;
    this.offset = offset;
    this.maxUnverified = maxUnverified;
  }
  clock;
  offset;
  maxUnverified;
  /** The host's time as we estimate it, in whole seconds. */
  now() {
    return Math.floor(this.clock() / 1e3 + this.offset);
  }
  /** Adopt the host time in `header` (unix seconds); false when unusable or not believed. */
  observe(header, verified) {
    if (header === null || header.length > 20 || !/^[0-9]+$/.test(header.trim())) return false;
    const offset = Number(header.trim()) - this.clock() / 1e3;
    if (!verified && Math.abs(offset) > this.maxUnverified) return false;
    this.offset = offset;
    return true;
  }
};

// src/sdk/errors.ts
var NotPaired = class extends Error {
  name = "NotPaired";
};
var PairingRevoked = class extends NotPaired {
  name = "PairingRevoked";
};
var HostOffline = class extends Error {
  name = "HostOffline";
};
var SignatureInvalid = class extends Error {
  name = "SignatureInvalid";
};
var Timeout = class extends Error {
  name = "Timeout";
};
var RelayRefused = class extends Error {
  name = "RelayRefused";
  status;
  reason;
  constructor(status, message, reason = "relay") {
    super(message);
    this.status = status;
    this.reason = reason;
  }
};
var PairingFailed = class extends Error {
  name = "PairingFailed";
  reason;
  constructor(reason, message) {
    super(message);
    this.reason = reason;
  }
};
var MayHaveRun = class extends Error {
  name = "MayHaveRun";
};

// src/sdk/frames.ts
var frames_exports = {};
__export(frames_exports, {
  FrameSigner: () => FrameSigner,
  FrameVerifier: () => FrameVerifier,
  MAX_ENVELOPE_SIZE: () => MAX_ENVELOPE_SIZE,
  MSG_TYPES: () => MSG_TYPES,
  closePayload: () => closePayload,
  parseClosePayload: () => parseClosePayload
});

// src/sdk/keys.ts
var keys_exports = {};
__export(keys_exports, {
  HostKey: () => HostKey,
  generateClientKey: () => generateClientKey,
  keySupport: () => keySupport,
  sign: () => sign
});

// node_modules/@noble/hashes/_u64.js
var U32_MASK64 = /* @__PURE__ */ (() => BigInt(2 ** 32 - 1))();
var _32n = /* @__PURE__ */ BigInt(32);
function fromBig(n, le = false) {
  if (le)
    return { h: Number(n & U32_MASK64), l: Number(n >> _32n & U32_MASK64) };
  return { h: Number(n >> _32n & U32_MASK64) | 0, l: Number(n & U32_MASK64) | 0 };
}
function split(lst, le = false) {
  const len = lst.length;
  let Ah = new Uint32Array(len);
  let Al = new Uint32Array(len);
  for (let i = 0; i < len; i++) {
    const { h, l } = fromBig(lst[i], le);
    [Ah[i], Al[i]] = [h, l];
  }
  return [Ah, Al];
}
var fromNumH = (n) => n / 2 ** 32 | 0;
var fromNumL = (n) => n >>> 0;
function setU64FromNum(view, byteOffset, n, isLE) {
  const h = fromNumH(n);
  const l = fromNumL(n);
  view.setUint32(byteOffset, isLE ? l : h, isLE);
  view.setUint32(byteOffset + 4, isLE ? h : l, isLE);
}
var shrSH = (h, _l, s) => h >>> s;
var shrSL = (h, l, s) => h << 32 - s | l >>> s;
var rotrSH = (h, l, s) => h >>> s | l << 32 - s;
var rotrSL = (h, l, s) => h << 32 - s | l >>> s;
var rotrBH = (h, l, s) => h << 64 - s | l >>> s - 32;
var rotrBL = (h, l, s) => h >>> s - 32 | l << 64 - s;
function add(Ah, Al, Bh, Bl) {
  const l = (Al >>> 0) + (Bl >>> 0);
  return { h: Ah + Bh + (l / 2 ** 32 | 0) | 0, l: l | 0 };
}
var add3L = (Al, Bl, Cl) => (Al >>> 0) + (Bl >>> 0) + (Cl >>> 0);
var add3H = (low, Ah, Bh, Ch) => Ah + Bh + Ch + (low / 2 ** 32 | 0) | 0;
var add4L = (Al, Bl, Cl, Dl) => (Al >>> 0) + (Bl >>> 0) + (Cl >>> 0) + (Dl >>> 0);
var add4H = (low, Ah, Bh, Ch, Dh) => Ah + Bh + Ch + Dh + (low / 2 ** 32 | 0) | 0;
var add5L = (Al, Bl, Cl, Dl, El) => (Al >>> 0) + (Bl >>> 0) + (Cl >>> 0) + (Dl >>> 0) + (El >>> 0);
var add5H = (low, Ah, Bh, Ch, Dh, Eh) => Ah + Bh + Ch + Dh + Eh + (low / 2 ** 32 | 0) | 0;

// node_modules/@noble/hashes/utils.js
function isBytes(a) {
  return a instanceof Uint8Array || ArrayBuffer.isView(a) && a.constructor.name === "Uint8Array" && "BYTES_PER_ELEMENT" in a && a.BYTES_PER_ELEMENT === 1;
}
var atitle = (title) => title ? `"${title}" ` : "";
function anumber(n, title = "") {
  if (typeof n !== "number")
    throw new TypeError(atitle(title) + "expected number, got " + typeof n);
  if (!Number.isSafeInteger(n) || n < 0)
    throw new RangeError(atitle(title) + "expected integer >= 0, got " + n);
  return n;
}
function abytes(value, length, title = "") {
  if (isBytes(value) && (length === void 0 || value.length === length))
    return value;
  if (length !== void 0)
    anumber(length, "length");
  const bytes = isBytes(value);
  const ofLen = length !== void 0 ? ` of length ${length}` : "";
  const got = bytes ? `length=${value.length}` : `type=${typeof value}`;
  const message = atitle(title) + "expected Uint8Array" + ofLen + ", got " + got;
  if (!bytes)
    throw new TypeError(message);
  throw new RangeError(message);
}
function ahash(h) {
  if (typeof h !== "function" || typeof h.create !== "function")
    throw new TypeError("expected hash wrapped by utils.createHasher");
  anumber(h.outputLen);
  anumber(h.blockLen);
  if (h.outputLen < 1 || h.blockLen < 1)
    throw new Error("hash blockLen / outputLen must be >= 1");
}
var aobject = (value, label) => {
  if (value === null || typeof value !== "object" || Array.isArray(value))
    throw new TypeError((label === "object" ? "" : `"${label}" `) + "expected object, got type=" + typeof value);
};
var aopts = (value, label) => {
  aobject(value, label);
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null)
    throw new TypeError(`"${label}" expected plain object`);
  if (Object.hasOwn(value, "__proto__"))
    throw new TypeError(`"${label}.__proto__" is not allowed`);
};
function aexists(instance, checkFinished = true) {
  if (instance.destroyed)
    throw new Error("hash was destroyed");
  if (checkFinished && instance.finished)
    throw new Error("digest() was already called");
}
function aoutput(out, instance) {
  abytes(out, void 0, "output");
  const min = instance.outputLen;
  if (!(out.length >= min)) {
    throw new RangeError('"output" expected length >= ' + min);
  }
}
function clean(...arrays) {
  for (let i = 0; i < arrays.length; i++) {
    arrays[i].fill(0);
  }
}
function createView(arr) {
  return new DataView(arr.buffer, arr.byteOffset, arr.byteLength);
}
function rotr(word, shift) {
  return word << 32 - shift | word >>> shift;
}
var hasHexBuiltin = /* @__PURE__ */ (() => (
  // @ts-ignore
  typeof Uint8Array.from([]).toHex === "function" && typeof Uint8Array.fromHex === "function"
))();
var hexes = /* @__PURE__ */ Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
function bytesToHex(bytes) {
  abytes(bytes);
  if (hasHexBuiltin)
    return bytes.toHex();
  let hex2 = "";
  for (let i = 0; i < bytes.length; i++) {
    hex2 += hexes[bytes[i]];
  }
  return hex2;
}
function asciiToBase16(ch) {
  return ch >= 48 && ch <= 57 ? ch - 48 : ch >= 65 && ch <= 70 ? ch - (65 - 10) : ch >= 97 && ch <= 102 ? ch - (97 - 10) : void 0;
}
function hexToBytes(hex2) {
  if (typeof hex2 !== "string")
    throw new TypeError("hex string expected, got " + typeof hex2);
  if (hasHexBuiltin) {
    try {
      return Uint8Array.fromHex(hex2);
    } catch (error) {
      if (error instanceof SyntaxError)
        throw new RangeError(error.message);
      throw error;
    }
  }
  const hl = hex2.length;
  const al = hl / 2;
  if (hl % 2)
    throw new RangeError("hex string expected, got unpadded hex of length " + hl);
  const array = new Uint8Array(al);
  for (let ai = 0, hi = 0; ai < al; ai++, hi += 2) {
    const n1 = asciiToBase16(hex2.charCodeAt(hi));
    const n2 = asciiToBase16(hex2.charCodeAt(hi + 1));
    if (n1 === void 0 || n2 === void 0) {
      const char = hex2[hi] + hex2[hi + 1];
      throw new RangeError('hex string expected, got non-hex character "' + char + '" at index ' + hi);
    }
    array[ai] = n1 * 16 + n2;
  }
  return array;
}
function concatBytes(...arrays) {
  let sum = 0;
  for (let i = 0; i < arrays.length; i++) {
    const a = arrays[i];
    abytes(a);
    sum += a.length;
  }
  const res = new Uint8Array(sum);
  for (let i = 0, pad = 0; i < arrays.length; i++) {
    const a = arrays[i];
    res.set(a, pad);
    pad += a.length;
  }
  return res;
}
function checkOpts(defaults, opts, title = "opts") {
  aopts(defaults, "defaults");
  if (opts !== void 0)
    aopts(opts, title);
  const merged = Object.assign(/* @__PURE__ */ Object.create(null), defaults, opts);
  return merged;
}
function createHasher(hashCons, info = {}) {
  if (typeof hashCons !== "function")
    throw new TypeError('"hashCons" expected function, got type=' + typeof hashCons);
  info = checkOpts({}, info, "info");
  const hashC = (msg, opts) => hashCons(opts).update(msg).digest();
  const tmp = hashCons(void 0);
  hashC.outputLen = tmp.outputLen;
  hashC.blockLen = tmp.blockLen;
  hashC.canXOF = tmp.canXOF;
  hashC.create = (opts) => hashCons(opts);
  Object.assign(hashC, info);
  return Object.freeze(hashC);
}
function randomBytes(bytesLength = 32) {
  anumber(bytesLength, "bytesLength");
  const cr = typeof globalThis === "object" ? globalThis.crypto : null;
  if (typeof cr?.getRandomValues !== "function")
    throw new Error("crypto.getRandomValues must be defined");
  if (bytesLength > 65536)
    throw new RangeError(`"bytesLength" expected <= 65536, got ${bytesLength}`);
  return cr.getRandomValues(new Uint8Array(bytesLength));
}
var oidNist = (suffix) => ({
  // Current NIST hashAlgs suffixes used here fit in one DER subidentifier octet.
  // Larger suffix values would need base-128 OID encoding and a different length byte.
  oid: Uint8Array.from([6, 9, 96, 134, 72, 1, 101, 3, 4, 2, suffix])
});

// node_modules/@noble/hashes/_md.js
function Chi(a, b, c) {
  return a & b ^ ~a & c;
}
function Maj(a, b, c) {
  return a & b ^ a & c ^ b & c;
}
var HashMD = class {
  blockLen;
  outputLen;
  canXOF = false;
  padOffset;
  isLE;
  // For partial updates less than block size
  buffer;
  view;
  finished = false;
  length = 0;
  pos = 0;
  destroyed = false;
  constructor(blockLen, outputLen, padOffset, isLE) {
    this.blockLen = blockLen;
    this.outputLen = outputLen;
    this.padOffset = padOffset;
    this.isLE = isLE;
    this.buffer = new Uint8Array(blockLen);
    this.view = createView(this.buffer);
  }
  update(data) {
    aexists(this);
    abytes(data);
    const { view, buffer, blockLen } = this;
    const len = data.length;
    let processed = false;
    for (let pos = 0; pos < len; ) {
      const take = Math.min(blockLen - this.pos, len - pos);
      if (take === blockLen) {
        const dataView = createView(data);
        for (; blockLen <= len - pos; pos += blockLen)
          this.process(dataView, pos);
        processed = true;
        continue;
      }
      buffer.set(pos === 0 && take === len ? data : data.subarray(pos, pos + take), this.pos);
      this.pos += take;
      pos += take;
      if (this.pos === blockLen) {
        this.process(view, 0);
        this.pos = 0;
        processed = true;
      }
    }
    this.length += data.length;
    if (processed)
      this.roundClean();
    return this;
  }
  digestInto(out) {
    aexists(this);
    aoutput(out, this);
    this.finished = true;
    const { buffer, view, blockLen, isLE } = this;
    let { pos } = this;
    buffer[pos++] = 128;
    buffer.fill(0, pos);
    if (this.padOffset > blockLen - pos) {
      this.process(view, 0);
      buffer.fill(0);
    }
    setU64FromNum(view, blockLen - 8, this.length * 8, isLE);
    this.process(view, 0);
    this.roundClean();
    const oview = out === buffer ? view : createView(out);
    const len = this.outputLen;
    const outLen = len / 4;
    const state = this.get();
    if (len % 4 || outLen > state.length)
      throw new Error("invalid outputLen");
    for (let i = 0; i < outLen; i++)
      oview.setUint32(4 * i, state[i], isLE);
  }
  digest() {
    const { buffer, outputLen } = this;
    this.digestInto(buffer);
    const res = buffer.slice(0, outputLen);
    this.destroy();
    return res;
  }
  _cloneIntoMeta(to) {
    const { buffer, length, finished, destroyed, pos } = this;
    to.destroyed = destroyed;
    to.finished = finished;
    to.length = length;
    to.pos = pos;
    if (pos)
      to.buffer.set(buffer);
    return to;
  }
  clone() {
    return this._cloneInto();
  }
};
var SHA256_IV = /* @__PURE__ */ Uint32Array.from([
  1779033703,
  3144134277,
  1013904242,
  2773480762,
  1359893119,
  2600822924,
  528734635,
  1541459225
]);
var SHA512_IV = /* @__PURE__ */ Uint32Array.from([
  1779033703,
  4089235720,
  3144134277,
  2227873595,
  1013904242,
  4271175723,
  2773480762,
  1595750129,
  1359893119,
  2917565137,
  2600822924,
  725511199,
  528734635,
  4215389547,
  1541459225,
  327033209
]);

// node_modules/@noble/hashes/sha2.js
var SHA256_K = /* @__PURE__ */ Uint32Array.from([
  1116352408,
  1899447441,
  3049323471,
  3921009573,
  961987163,
  1508970993,
  2453635748,
  2870763221,
  3624381080,
  310598401,
  607225278,
  1426881987,
  1925078388,
  2162078206,
  2614888103,
  3248222580,
  3835390401,
  4022224774,
  264347078,
  604807628,
  770255983,
  1249150122,
  1555081692,
  1996064986,
  2554220882,
  2821834349,
  2952996808,
  3210313671,
  3336571891,
  3584528711,
  113926993,
  338241895,
  666307205,
  773529912,
  1294757372,
  1396182291,
  1695183700,
  1986661051,
  2177026350,
  2456956037,
  2730485921,
  2820302411,
  3259730800,
  3345764771,
  3516065817,
  3600352804,
  4094571909,
  275423344,
  430227734,
  506948616,
  659060556,
  883997877,
  958139571,
  1322822218,
  1537002063,
  1747873779,
  1955562222,
  2024104815,
  2227730452,
  2361852424,
  2428436474,
  2756734187,
  3204031479,
  3329325298
]);
var SHA256_W = /* @__PURE__ */ new Uint32Array(64);
var SHA2_32B = class extends HashMD {
  // We cannot use array here since array allows indexing by variable
  // which means optimizer/compiler cannot use registers.
  // Numeric initializers matter: starting the fields as `undefined` changes
  // V8's field representation and makes sha256 3x slower (measured).
  A = 0;
  B = 0;
  C = 0;
  D = 0;
  E = 0;
  F = 0;
  G = 0;
  H = 0;
  constructor(outputLen, IV) {
    super(64, outputLen, 8, false);
    this.A = IV[0] | 0;
    this.B = IV[1] | 0;
    this.C = IV[2] | 0;
    this.D = IV[3] | 0;
    this.E = IV[4] | 0;
    this.F = IV[5] | 0;
    this.G = IV[6] | 0;
    this.H = IV[7] | 0;
  }
  get() {
    const { A, B, C, D, E, F, G, H } = this;
    return [A, B, C, D, E, F, G, H];
  }
  // prettier-ignore
  set(A, B, C, D, E, F, G, H) {
    this.A = A | 0;
    this.B = B | 0;
    this.C = C | 0;
    this.D = D | 0;
    this.E = E | 0;
    this.F = F | 0;
    this.G = G | 0;
    this.H = H | 0;
  }
  _cloneInto(to) {
    (to ||= new this.constructor()).set(...this.get());
    return this._cloneIntoMeta(to);
  }
  process(view, offset) {
    for (let i = 0; i < 16; i++, offset += 4)
      SHA256_W[i] = view.getUint32(offset, false);
    for (let i = 16; i < 64; i++) {
      const W15 = SHA256_W[i - 15];
      const W2 = SHA256_W[i - 2];
      const s0 = rotr(W15, 7) ^ rotr(W15, 18) ^ W15 >>> 3;
      const s1 = rotr(W2, 17) ^ rotr(W2, 19) ^ W2 >>> 10;
      SHA256_W[i] = s1 + SHA256_W[i - 7] + s0 + SHA256_W[i - 16] | 0;
    }
    let { A, B, C, D, E, F, G, H } = this;
    for (let i = 0; i < 64; i++) {
      const sigma1 = rotr(E, 6) ^ rotr(E, 11) ^ rotr(E, 25);
      const T1 = H + sigma1 + Chi(E, F, G) + SHA256_K[i] + SHA256_W[i] | 0;
      const sigma0 = rotr(A, 2) ^ rotr(A, 13) ^ rotr(A, 22);
      const T2 = sigma0 + Maj(A, B, C) | 0;
      H = G;
      G = F;
      F = E;
      E = D + T1 | 0;
      D = C;
      C = B;
      B = A;
      A = T1 + T2 | 0;
    }
    A = A + this.A | 0;
    B = B + this.B | 0;
    C = C + this.C | 0;
    D = D + this.D | 0;
    E = E + this.E | 0;
    F = F + this.F | 0;
    G = G + this.G | 0;
    H = H + this.H | 0;
    this.set(A, B, C, D, E, F, G, H);
  }
  roundClean() {
    clean(SHA256_W);
  }
  destroy() {
    this.destroyed = true;
    this.set(0, 0, 0, 0, 0, 0, 0, 0);
    clean(this.buffer);
  }
};
var _SHA256 = class extends SHA2_32B {
  constructor() {
    super(32, SHA256_IV);
  }
};
var K512 = /* @__PURE__ */ (() => split([
  "0x428a2f98d728ae22",
  "0x7137449123ef65cd",
  "0xb5c0fbcfec4d3b2f",
  "0xe9b5dba58189dbbc",
  "0x3956c25bf348b538",
  "0x59f111f1b605d019",
  "0x923f82a4af194f9b",
  "0xab1c5ed5da6d8118",
  "0xd807aa98a3030242",
  "0x12835b0145706fbe",
  "0x243185be4ee4b28c",
  "0x550c7dc3d5ffb4e2",
  "0x72be5d74f27b896f",
  "0x80deb1fe3b1696b1",
  "0x9bdc06a725c71235",
  "0xc19bf174cf692694",
  "0xe49b69c19ef14ad2",
  "0xefbe4786384f25e3",
  "0x0fc19dc68b8cd5b5",
  "0x240ca1cc77ac9c65",
  "0x2de92c6f592b0275",
  "0x4a7484aa6ea6e483",
  "0x5cb0a9dcbd41fbd4",
  "0x76f988da831153b5",
  "0x983e5152ee66dfab",
  "0xa831c66d2db43210",
  "0xb00327c898fb213f",
  "0xbf597fc7beef0ee4",
  "0xc6e00bf33da88fc2",
  "0xd5a79147930aa725",
  "0x06ca6351e003826f",
  "0x142929670a0e6e70",
  "0x27b70a8546d22ffc",
  "0x2e1b21385c26c926",
  "0x4d2c6dfc5ac42aed",
  "0x53380d139d95b3df",
  "0x650a73548baf63de",
  "0x766a0abb3c77b2a8",
  "0x81c2c92e47edaee6",
  "0x92722c851482353b",
  "0xa2bfe8a14cf10364",
  "0xa81a664bbc423001",
  "0xc24b8b70d0f89791",
  "0xc76c51a30654be30",
  "0xd192e819d6ef5218",
  "0xd69906245565a910",
  "0xf40e35855771202a",
  "0x106aa07032bbd1b8",
  "0x19a4c116b8d2d0c8",
  "0x1e376c085141ab53",
  "0x2748774cdf8eeb99",
  "0x34b0bcb5e19b48a8",
  "0x391c0cb3c5c95a63",
  "0x4ed8aa4ae3418acb",
  "0x5b9cca4f7763e373",
  "0x682e6ff3d6b2b8a3",
  "0x748f82ee5defb2fc",
  "0x78a5636f43172f60",
  "0x84c87814a1f0ab72",
  "0x8cc702081a6439ec",
  "0x90befffa23631e28",
  "0xa4506cebde82bde9",
  "0xbef9a3f7b2c67915",
  "0xc67178f2e372532b",
  "0xca273eceea26619c",
  "0xd186b8c721c0c207",
  "0xeada7dd6cde0eb1e",
  "0xf57d4f7fee6ed178",
  "0x06f067aa72176fba",
  "0x0a637dc5a2c898a6",
  "0x113f9804bef90dae",
  "0x1b710b35131c471b",
  "0x28db77f523047d84",
  "0x32caab7b40c72493",
  "0x3c9ebe0a15c9bebc",
  "0x431d67c49c100d4c",
  "0x4cc5d4becb3e42b6",
  "0x597f299cfc657e2a",
  "0x5fcb6fab3ad6faec",
  "0x6c44198c4a475817"
].map((n) => BigInt(n))))();
var SHA512_Kh = /* @__PURE__ */ (() => K512[0])();
var SHA512_Kl = /* @__PURE__ */ (() => K512[1])();
var SHA512_W_H = /* @__PURE__ */ new Uint32Array(80);
var SHA512_W_L = /* @__PURE__ */ new Uint32Array(80);
var SHA2_64B = class extends HashMD {
  // We cannot use array here since array allows indexing by variable
  // which means optimizer/compiler cannot use registers.
  // h -- high 32 bits, l -- low 32 bits
  // Numeric initializers matter: starting the fields as `undefined` changes
  // V8's field representation and slows hashing down (measured on sha256).
  Ah = 0;
  Al = 0;
  Bh = 0;
  Bl = 0;
  Ch = 0;
  Cl = 0;
  Dh = 0;
  Dl = 0;
  Eh = 0;
  El = 0;
  Fh = 0;
  Fl = 0;
  Gh = 0;
  Gl = 0;
  Hh = 0;
  Hl = 0;
  constructor(outputLen, IV) {
    super(128, outputLen, 16, false);
    this.Ah = IV[0] | 0;
    this.Al = IV[1] | 0;
    this.Bh = IV[2] | 0;
    this.Bl = IV[3] | 0;
    this.Ch = IV[4] | 0;
    this.Cl = IV[5] | 0;
    this.Dh = IV[6] | 0;
    this.Dl = IV[7] | 0;
    this.Eh = IV[8] | 0;
    this.El = IV[9] | 0;
    this.Fh = IV[10] | 0;
    this.Fl = IV[11] | 0;
    this.Gh = IV[12] | 0;
    this.Gl = IV[13] | 0;
    this.Hh = IV[14] | 0;
    this.Hl = IV[15] | 0;
  }
  // prettier-ignore
  get() {
    const { Ah, Al, Bh, Bl, Ch, Cl, Dh, Dl, Eh, El, Fh, Fl, Gh, Gl, Hh, Hl } = this;
    return [Ah, Al, Bh, Bl, Ch, Cl, Dh, Dl, Eh, El, Fh, Fl, Gh, Gl, Hh, Hl];
  }
  // prettier-ignore
  set(Ah, Al, Bh, Bl, Ch, Cl, Dh, Dl, Eh, El, Fh, Fl, Gh, Gl, Hh, Hl) {
    this.Ah = Ah | 0;
    this.Al = Al | 0;
    this.Bh = Bh | 0;
    this.Bl = Bl | 0;
    this.Ch = Ch | 0;
    this.Cl = Cl | 0;
    this.Dh = Dh | 0;
    this.Dl = Dl | 0;
    this.Eh = Eh | 0;
    this.El = El | 0;
    this.Fh = Fh | 0;
    this.Fl = Fl | 0;
    this.Gh = Gh | 0;
    this.Gl = Gl | 0;
    this.Hh = Hh | 0;
    this.Hl = Hl | 0;
  }
  _cloneInto(to) {
    (to ||= new this.constructor()).set(...this.get());
    return this._cloneIntoMeta(to);
  }
  process(view, offset) {
    for (let i = 0; i < 16; i++, offset += 4) {
      SHA512_W_H[i] = view.getUint32(offset);
      SHA512_W_L[i] = view.getUint32(offset += 4);
    }
    for (let i = 16; i < 80; i++) {
      const W15h = SHA512_W_H[i - 15] | 0;
      const W15l = SHA512_W_L[i - 15] | 0;
      const s0h = rotrSH(W15h, W15l, 1) ^ rotrSH(W15h, W15l, 8) ^ shrSH(W15h, W15l, 7);
      const s0l = rotrSL(W15h, W15l, 1) ^ rotrSL(W15h, W15l, 8) ^ shrSL(W15h, W15l, 7);
      const W2h = SHA512_W_H[i - 2] | 0;
      const W2l = SHA512_W_L[i - 2] | 0;
      const s1h = rotrSH(W2h, W2l, 19) ^ rotrBH(W2h, W2l, 61) ^ shrSH(W2h, W2l, 6);
      const s1l = rotrSL(W2h, W2l, 19) ^ rotrBL(W2h, W2l, 61) ^ shrSL(W2h, W2l, 6);
      const SUMl = add4L(s0l, s1l, SHA512_W_L[i - 7], SHA512_W_L[i - 16]);
      const SUMh = add4H(SUMl, s0h, s1h, SHA512_W_H[i - 7], SHA512_W_H[i - 16]);
      SHA512_W_H[i] = SUMh | 0;
      SHA512_W_L[i] = SUMl | 0;
    }
    let { Ah, Al, Bh, Bl, Ch, Cl, Dh, Dl, Eh, El, Fh, Fl, Gh, Gl, Hh, Hl } = this;
    for (let i = 0; i < 80; i++) {
      const sigma1h = rotrSH(Eh, El, 14) ^ rotrSH(Eh, El, 18) ^ rotrBH(Eh, El, 41);
      const sigma1l = rotrSL(Eh, El, 14) ^ rotrSL(Eh, El, 18) ^ rotrBL(Eh, El, 41);
      const CHIh = Eh & Fh ^ ~Eh & Gh;
      const CHIl = El & Fl ^ ~El & Gl;
      const T1ll = add5L(Hl, sigma1l, CHIl, SHA512_Kl[i], SHA512_W_L[i]);
      const T1h = add5H(T1ll, Hh, sigma1h, CHIh, SHA512_Kh[i], SHA512_W_H[i]);
      const T1l = T1ll | 0;
      const sigma0h = rotrSH(Ah, Al, 28) ^ rotrBH(Ah, Al, 34) ^ rotrBH(Ah, Al, 39);
      const sigma0l = rotrSL(Ah, Al, 28) ^ rotrBL(Ah, Al, 34) ^ rotrBL(Ah, Al, 39);
      const MAJh = Ah & Bh ^ Ah & Ch ^ Bh & Ch;
      const MAJl = Al & Bl ^ Al & Cl ^ Bl & Cl;
      Hh = Gh | 0;
      Hl = Gl | 0;
      Gh = Fh | 0;
      Gl = Fl | 0;
      Fh = Eh | 0;
      Fl = El | 0;
      ({ h: Eh, l: El } = add(Dh | 0, Dl | 0, T1h | 0, T1l | 0));
      Dh = Ch | 0;
      Dl = Cl | 0;
      Ch = Bh | 0;
      Cl = Bl | 0;
      Bh = Ah | 0;
      Bl = Al | 0;
      const All = add3L(T1l, sigma0l, MAJl);
      Ah = add3H(All, T1h, sigma0h, MAJh);
      Al = All | 0;
    }
    ({ h: Ah, l: Al } = add(this.Ah | 0, this.Al | 0, Ah | 0, Al | 0));
    ({ h: Bh, l: Bl } = add(this.Bh | 0, this.Bl | 0, Bh | 0, Bl | 0));
    ({ h: Ch, l: Cl } = add(this.Ch | 0, this.Cl | 0, Ch | 0, Cl | 0));
    ({ h: Dh, l: Dl } = add(this.Dh | 0, this.Dl | 0, Dh | 0, Dl | 0));
    ({ h: Eh, l: El } = add(this.Eh | 0, this.El | 0, Eh | 0, El | 0));
    ({ h: Fh, l: Fl } = add(this.Fh | 0, this.Fl | 0, Fh | 0, Fl | 0));
    ({ h: Gh, l: Gl } = add(this.Gh | 0, this.Gl | 0, Gh | 0, Gl | 0));
    ({ h: Hh, l: Hl } = add(this.Hh | 0, this.Hl | 0, Hh | 0, Hl | 0));
    this.set(Ah, Al, Bh, Bl, Ch, Cl, Dh, Dl, Eh, El, Fh, Fl, Gh, Gl, Hh, Hl);
  }
  roundClean() {
    clean(SHA512_W_H, SHA512_W_L);
  }
  destroy() {
    this.destroyed = true;
    clean(this.buffer);
    this.set(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
  }
};
var _SHA512 = class extends SHA2_64B {
  constructor() {
    super(64, SHA512_IV);
  }
};
var sha256 = /* @__PURE__ */ createHasher(
  () => new _SHA256(),
  /* @__PURE__ */ oidNist(1)
);
var sha512 = /* @__PURE__ */ createHasher(
  () => new _SHA512(),
  /* @__PURE__ */ oidNist(3)
);

// node_modules/@noble/curves/utils.js
/*! noble-curves - MIT License (c) 2022 Paul Miller (paulmillr.com) */
function aarray(item, title, inner = () => {
}) {
  if (!Array.isArray(item))
    throw new TypeError(`"${title}" expected array, got type=${typeof item}`);
  for (let i = 0; i < item.length; i++)
    inner(item[i], `${title}[${i}]`);
  return item;
}
var abytes2 = (value, length, title) => abytes(value, length, title);
var anumber2 = anumber;
function aobject2(value, title = "object") {
  if (value === null || typeof value !== "object" || Array.isArray(value))
    throw new TypeError(title === "object" ? "expected valid options object" : `"${title}" expected object, got type=${typeof value}`);
  return value;
}
function afunction(value, title) {
  if (typeof value !== "function")
    throw new TypeError(`"${title}" is invalid: expected function, got ${typeof value}`);
  return value;
}
var bytesToHex2 = bytesToHex;
var concatBytes2 = (...arrays) => concatBytes(...arrays);
var hexToBytes2 = (hex2) => hexToBytes(hex2);
var isBytes2 = isBytes;
var randomBytes2 = (bytesLength) => randomBytes(bytesLength);
var _0n = /* @__PURE__ */ BigInt(0);
var _1n = /* @__PURE__ */ BigInt(1);
var atitle2 = (title) => title ? `"${title}" ` : "";
function abool(value, title = "") {
  if (typeof value !== "boolean")
    throw new TypeError(atitle2(title) + "expected boolean, got type=" + typeof value);
  return value;
}
function abignumber(n) {
  if (typeof n === "bigint") {
    if (!isPosBig(n))
      throw new RangeError("positive bigint expected, got " + n);
  } else
    anumber2(n);
  return n;
}
function asafenumber(value, title = "") {
  if (typeof value !== "number") {
    const prefix = title && `"${title}" `;
    throw new TypeError(prefix + "expected number, got type=" + typeof value);
  }
  if (!Number.isSafeInteger(value)) {
    const prefix = title && `"${title}" `;
    throw new RangeError(prefix + "expected safe integer, got " + value);
  }
}
function hexToNumber(hex2) {
  if (typeof hex2 !== "string")
    throw new TypeError("hex string expected, got " + typeof hex2);
  return hex2 === "" ? _0n : BigInt("0x" + hex2);
}
function bytesToNumberBE(bytes) {
  return hexToNumber(bytesToHex(bytes));
}
function bytesToNumberLE(bytes) {
  return hexToNumber(bytesToHex(copyBytes(abytes(bytes)).reverse()));
}
function numberToBytesBE(n, len) {
  anumber(len);
  if (len === 0)
    throw new Error("zero output length is invalid");
  n = abignumber(n);
  const expectedLen = len * 2;
  const hex2 = n.toString(16);
  if (hex2.length > expectedLen)
    throw new RangeError("number is too large");
  return hexToBytes(hex2.padStart(expectedLen, "0"));
}
function numberToBytesLE(n, len) {
  return numberToBytesBE(n, len).reverse();
}
function copyBytes(bytes) {
  return Uint8Array.from(abytes2(bytes));
}
function isPosBig(n) {
  return typeof n === "bigint" && _0n <= n;
}
function inRange(n, min, max) {
  return isPosBig(n) && isPosBig(min) && isPosBig(max) && min <= n && n < max;
}
function aInRange(title, n, min, max) {
  if (!inRange(n, min, max))
    throw new RangeError("expected valid " + title + ": " + min + " <= n < " + max + ", got " + n);
}
function bitLen(n) {
  if (n < _0n)
    throw new Error("expected non-negative bigint, got " + n);
  return n === _0n ? 0 : n.toString(2).length;
}
var bitMask = (n) => {
  asafenumber(n, "n");
  return (_1n << BigInt(n)) - _1n;
};
function validateObject(object, fields = {}, optFields = {}, title = "object") {
  aobject2(object, title);
  aobject2(fields, "fields");
  aobject2(optFields, "optFields");
  function checkField(fieldName, expectedType, isOpt) {
    const label = title === "object" ? `param "${String(fieldName)}"` : `"${title}.${String(fieldName)}"`;
    const val = object[fieldName];
    if (!Object.hasOwn(object, fieldName) && (isOpt ? val !== void 0 : expectedType !== "function")) {
      throw new TypeError(`${label} is invalid: expected own property`);
    }
    if (isOpt && val === void 0)
      return;
    const current = typeof val;
    if (current !== expectedType || val === null)
      throw new TypeError(`${label} is invalid: expected ${expectedType}, got ${current}`);
  }
  const iter = (f, isOpt) => Object.entries(f).forEach(([k, v]) => checkField(k, v, isOpt));
  iter(fields, false);
  iter(optFields, true);
}

// node_modules/@noble/curves/abstract/modular.js
/*! noble-curves - MIT License (c) 2022 Paul Miller (paulmillr.com) */
var _0n2 = /* @__PURE__ */ BigInt(0);
var _1n2 = /* @__PURE__ */ BigInt(1);
var _2n = /* @__PURE__ */ BigInt(2);
var _3n = /* @__PURE__ */ BigInt(3);
var _4n = /* @__PURE__ */ BigInt(4);
var _5n = /* @__PURE__ */ BigInt(5);
var _7n = /* @__PURE__ */ BigInt(7);
var _8n = /* @__PURE__ */ BigInt(8);
var _9n = /* @__PURE__ */ BigInt(9);
var _15n = /* @__PURE__ */ BigInt(15);
var _16n = /* @__PURE__ */ BigInt(16);
var POW_WINDOWED_MIN = /* @__PURE__ */ BigInt("0x10000000000000000");
function mod(a, b) {
  if (b <= _0n2)
    throw new Error("mod: expected positive modulus, got " + b);
  const result = a % b;
  return result >= _0n2 ? result : b + result;
}
function pow(num, power, modulo) {
  if (modulo <= _1n2)
    throw new Error("pow: expected modulus > 1, got " + modulo);
  if (typeof power !== "bigint")
    throw new TypeError("invalid exponent: expected bigint, got " + typeof power);
  if (power < _0n2)
    throw new Error("invalid exponent, negatives unsupported");
  if (power === _0n2)
    return _1n2;
  if (power === _1n2)
    return num;
  let d = num % modulo;
  if (d < _0n2)
    d += modulo;
  if (power < POW_WINDOWED_MIN) {
    let p2 = _1n2;
    while (power > _0n2) {
      if (power & _1n2)
        p2 = p2 * d % modulo;
      d = d * d % modulo;
      power >>= _1n2;
    }
    return p2;
  }
  const digits = [];
  while (power > _0n2) {
    digits.push(Number(power & _15n));
    power >>= _4n;
  }
  const table = new Array(16);
  table[0] = _1n2;
  table[1] = d;
  for (let i = 2; i < 16; i++)
    table[i] = table[i - 1] * d % modulo;
  let p = table[digits[digits.length - 1]];
  for (let w = digits.length - 2; w >= 0; w--) {
    p = p * p % modulo;
    p = p * p % modulo;
    p = p * p % modulo;
    p = p * p % modulo;
    const digit = digits[w];
    if (digit !== 0)
      p = p * table[digit] % modulo;
  }
  return p;
}
function pow2(x, power, modulo) {
  if (modulo <= _1n2)
    throw new Error("pow2: expected modulus > 1, got " + modulo);
  if (power < _0n2)
    throw new Error("pow2: expected non-negative exponent, got " + power);
  let res = x;
  while (power-- > _0n2) {
    res *= res;
    res %= modulo;
  }
  return res;
}
function invert(number, modulo) {
  if (number === _0n2)
    throw new Error("invert: expected non-zero number");
  if (modulo <= _1n2)
    throw new Error("invert: expected modulus > 1, got " + modulo);
  let a = mod(number, modulo);
  let b = modulo;
  let x = _0n2, u = _1n2;
  while (a !== _0n2) {
    const q = b / a;
    const r = b - a * q;
    const m = x - u * q;
    b = a, a = r, x = u, u = m;
  }
  const gcd = b;
  if (gcd !== _1n2)
    throw new Error("invert: does not exist");
  return mod(x, modulo);
}
function assertIsSquare(Fp2, root, n) {
  const F = Fp2;
  if (!F.eql(F.sqr(root), n))
    throw new Error("Cannot find square root");
}
function aoddModulus(order, fnName) {
  if ((order & _1n2) === _0n2)
    throw new Error(fnName + ": expected odd modulus, got " + order);
}
function sqrt3mod4(Fp2, n) {
  const F = Fp2;
  const p1div4 = (F.ORDER + _1n2) / _4n;
  const root = F.pow(n, p1div4);
  assertIsSquare(F, root, n);
  return root;
}
function sqrt5mod8(Fp2, n) {
  const F = Fp2;
  const p5div8 = (F.ORDER - _5n) / _8n;
  const n2 = F.mul(n, _2n);
  const v = F.pow(n2, p5div8);
  const nv = F.mul(n, v);
  const i = F.mul(F.mul(nv, _2n), v);
  const root = F.mul(nv, F.sub(i, F.ONE));
  assertIsSquare(F, root, n);
  return root;
}
function sqrt9mod16(P) {
  const Fp_ = Field(P);
  const tn = tonelliShanks(P);
  const c1 = tn(Fp_, Fp_.neg(Fp_.ONE));
  const c2 = tn(Fp_, c1);
  const c3 = tn(Fp_, Fp_.neg(c1));
  const c4 = (P + _7n) / _16n;
  return ((Fp2, n) => {
    const F = Fp2;
    let tv1 = F.pow(n, c4);
    let tv2 = F.mul(tv1, c1);
    const tv3 = F.mul(tv1, c2);
    const tv4 = F.mul(tv1, c3);
    const e1 = F.eql(F.sqr(tv2), n);
    const e2 = F.eql(F.sqr(tv3), n);
    tv1 = F.cmov(tv1, tv2, e1);
    tv2 = F.cmov(tv4, tv3, e2);
    const e3 = F.eql(F.sqr(tv2), n);
    const root = F.cmov(tv1, tv2, e3);
    assertIsSquare(F, root, n);
    return root;
  });
}
function tonelliShanks(P) {
  if (P < _3n)
    throw new Error("sqrt is not defined for small field");
  aoddModulus(P, "tonelliShanks");
  let Q = P - _1n2;
  let S = 0;
  while (Q % _2n === _0n2) {
    Q /= _2n;
    S++;
  }
  let Z = _2n;
  const _Fp = Field(P);
  while (FpLegendre(_Fp, Z) === 1) {
    if (Z++ > 1e3)
      throw new Error("Cannot find square root: probably non-prime P");
  }
  if (S === 1)
    return sqrt3mod4;
  let cc = _Fp.pow(Z, Q);
  const Q1div2 = (Q + _1n2) / _2n;
  return function tonelliSlow(Fp2, n) {
    const F = Fp2;
    if (F.is0(n))
      return n;
    if (FpLegendre(F, n) !== 1)
      throw new Error("Cannot find square root");
    let M2 = S;
    let c = F.mul(F.ONE, cc);
    let t = F.pow(n, Q);
    let R = F.pow(n, Q1div2);
    while (!F.eql(t, F.ONE)) {
      if (F.is0(t))
        throw new Error("Cannot find square root: probably non-prime P");
      let i = 1;
      let t_tmp = F.sqr(t);
      while (!F.eql(t_tmp, F.ONE)) {
        i++;
        t_tmp = F.sqr(t_tmp);
        if (i === M2)
          throw new Error("Cannot find square root");
      }
      const exponent = _1n2 << BigInt(M2 - i - 1);
      const b = F.pow(c, exponent);
      M2 = i;
      c = F.sqr(b);
      t = F.mul(t, c);
      R = F.mul(R, b);
    }
    return R;
  };
}
function FpSqrt(P) {
  aoddModulus(P, "Fp.sqrt");
  if (P % _4n === _3n)
    return sqrt3mod4;
  if (P % _8n === _5n)
    return sqrt5mod8;
  if (P % _16n === _9n)
    return sqrt9mod16(P);
  return tonelliShanks(P);
}
var isNegativeLE = (num, modulo) => (mod(num, modulo) & _1n2) === _1n2;
var FIELD_FIELDS = [
  "create",
  "isValid",
  "is0",
  "neg",
  "inv",
  "sqrt",
  "sqr",
  "eql",
  "add",
  "sub",
  "mul",
  "pow",
  "div",
  "addN",
  "subN",
  "mulN",
  "sqrN"
];
function validateField(field) {
  aobject2(field, "field");
  if (typeof field.ORDER !== "bigint")
    throw new TypeError('param "ORDER" is invalid: expected bigint, got ' + typeof field.ORDER);
  asafenumber(field.BYTES, "BYTES");
  asafenumber(field.BITS, "BITS");
  for (const name of FIELD_FIELDS)
    afunction(field[name], "field." + name);
  if (field.BYTES < 1 || field.BITS < 1)
    throw new Error("invalid field: expected BYTES/BITS > 0");
  if (field.ORDER <= _1n2)
    throw new Error("invalid field: expected ORDER > 1, got " + field.ORDER);
  return field;
}
function FpInvertBatch(Fp2, nums, passZero = false) {
  validateField(Fp2);
  aarray(nums, "nums");
  abool(passZero, "passZero");
  const F = Fp2;
  const inverted = new Array(nums.length).fill(passZero ? F.ZERO : void 0);
  const multipliedAcc = nums.reduce((acc, num, i) => {
    if (F.is0(num))
      return acc;
    inverted[i] = acc;
    return F.mul(acc, num);
  }, F.ONE);
  const invertedAcc = F.inv(multipliedAcc);
  nums.reduceRight((acc, num, i) => {
    if (F.is0(num))
      return acc;
    inverted[i] = F.mul(acc, inverted[i]);
    return F.mul(acc, num);
  }, invertedAcc);
  return inverted;
}
function FpLegendre(Fp2, n) {
  validateField(Fp2);
  const F = Fp2;
  aoddModulus(F.ORDER, "FpLegendre");
  const p1mod2 = (F.ORDER - _1n2) / _2n;
  const powered = F.pow(n, p1mod2);
  const yes = F.eql(powered, F.ONE);
  const zero = F.eql(powered, F.ZERO);
  const no = F.eql(powered, F.neg(F.ONE));
  if (!yes && !zero && !no)
    throw new Error("invalid Legendre symbol result");
  return yes ? 1 : zero ? 0 : -1;
}
function nLength(n, nBitLength) {
  if (nBitLength !== void 0)
    anumber2(nBitLength);
  if (n <= _0n2)
    throw new Error("invalid n length: expected positive n, got " + n);
  if (nBitLength !== void 0 && nBitLength < 1)
    throw new Error("invalid n length: expected positive bit length, got " + nBitLength);
  const bits = bitLen(n);
  if (nBitLength !== void 0 && nBitLength < bits)
    throw new Error(`invalid n length: expected nBitLength (${nBitLength}) >= bitLen(n) (${bits})`);
  const _nBitLength = nBitLength !== void 0 ? nBitLength : bits;
  const nByteLength = Math.ceil(_nBitLength / 8);
  return { nBitLength: _nBitLength, nByteLength };
}
var FIELD_SQRT = /* @__PURE__ */ new WeakMap();
var _Field = class {
  ORDER;
  BITS;
  BYTES;
  isLE;
  ZERO = _0n2;
  ONE = _1n2;
  _lengths;
  _mod;
  constructor(ORDER, opts = {}) {
    if (ORDER <= _1n2)
      throw new Error("invalid field: expected ORDER > 1, got " + ORDER);
    let _nbitLength = void 0;
    this.isLE = false;
    if (opts != null && typeof opts === "object") {
      if (typeof opts.BITS === "number")
        _nbitLength = opts.BITS;
      if (typeof opts.sqrt === "function")
        Object.defineProperty(this, "sqrt", { value: opts.sqrt, enumerable: true });
      if (typeof opts.isLE === "boolean")
        this.isLE = opts.isLE;
      if (opts.allowedLengths)
        this._lengths = Object.freeze(opts.allowedLengths.slice());
      if (typeof opts.modFromBytes === "boolean")
        this._mod = opts.modFromBytes;
    }
    const { nBitLength, nByteLength } = nLength(ORDER, _nbitLength);
    if (nByteLength > 2048)
      throw new Error("invalid field: expected ORDER of <= 2048 bytes");
    this.ORDER = ORDER;
    this.BITS = nBitLength;
    this.BYTES = nByteLength;
    Object.freeze(this);
  }
  create(num) {
    return mod(num, this.ORDER);
  }
  isValid(num) {
    if (typeof num !== "bigint")
      throw new TypeError("invalid field element: expected bigint, got " + typeof num);
    return _0n2 <= num && num < this.ORDER;
  }
  is0(num) {
    return num === _0n2;
  }
  // is valid and invertible
  isValidNot0(num) {
    return !this.is0(num) && this.isValid(num);
  }
  isOdd(num) {
    return (num & _1n2) === _1n2;
  }
  neg(num) {
    return mod(-num, this.ORDER);
  }
  eql(lhs, rhs) {
    return lhs === rhs;
  }
  sqr(num) {
    return mod(num * num, this.ORDER);
  }
  add(lhs, rhs) {
    return mod(lhs + rhs, this.ORDER);
  }
  sub(lhs, rhs) {
    return mod(lhs - rhs, this.ORDER);
  }
  mul(lhs, rhs) {
    return mod(lhs * rhs, this.ORDER);
  }
  pow(num, power) {
    return pow(num, power, this.ORDER);
  }
  div(lhs, rhs) {
    return mod(lhs * invert(rhs, this.ORDER), this.ORDER);
  }
  // Same as above, but doesn't normalize
  sqrN(num) {
    return num * num;
  }
  addN(lhs, rhs) {
    return lhs + rhs;
  }
  subN(lhs, rhs) {
    return lhs - rhs;
  }
  mulN(lhs, rhs) {
    return lhs * rhs;
  }
  inv(num) {
    return invert(num, this.ORDER);
  }
  sqrt(num) {
    let sqrt = FIELD_SQRT.get(this);
    if (!sqrt)
      FIELD_SQRT.set(this, sqrt = FpSqrt(this.ORDER));
    return sqrt(this, num);
  }
  toBytes(num) {
    return this.isLE ? numberToBytesLE(num, this.BYTES) : numberToBytesBE(num, this.BYTES);
  }
  fromBytes(bytes, skipValidation = false) {
    abytes2(bytes);
    const { _lengths: allowedLengths, BYTES, isLE, ORDER, _mod: modFromBytes } = this;
    if (allowedLengths) {
      if (bytes.length < 1 || !allowedLengths.includes(bytes.length) || bytes.length > BYTES) {
        throw new Error("Field.fromBytes: expected " + allowedLengths + " bytes, got " + bytes.length);
      }
      const padded = new Uint8Array(BYTES);
      padded.set(bytes, isLE ? 0 : padded.length - bytes.length);
      bytes = padded;
    }
    if (bytes.length !== BYTES)
      throw new Error("Field.fromBytes: expected " + BYTES + " bytes, got " + bytes.length);
    let scalar = isLE ? bytesToNumberLE(bytes) : bytesToNumberBE(bytes);
    if (modFromBytes)
      scalar = mod(scalar, ORDER);
    if (!skipValidation) {
      if (!this.isValid(scalar))
        throw new Error("invalid field element: outside of range 0..ORDER");
    }
    return scalar;
  }
  // TODO: we don't need it here, move out to separate fn
  invertBatch(lst) {
    return FpInvertBatch(this, lst, true);
  }
  // We can't move this out because Fp6, Fp12 implement it
  // and it's unclear what to return in there.
  cmov(a, b, condition) {
    abool(condition, "condition");
    return condition ? b : a;
  }
};
function Field(ORDER, opts = {}) {
  Object.freeze(_Field.prototype);
  return new _Field(ORDER, opts);
}

// node_modules/@noble/curves/abstract/curve.js
/*! noble-curves - MIT License (c) 2022 Paul Miller (paulmillr.com) */
var _0n3 = /* @__PURE__ */ BigInt(0);
var _1n3 = /* @__PURE__ */ BigInt(1);
var _4n2 = /* @__PURE__ */ BigInt(4);
var BLIND_BYTES = 16;
var BLIND_BITS = 128;
var FW_WINDOW = 5;
var TABLE_BYTES_MAX = /* @__PURE__ */ (() => 2 ** 31)();
function validatePointCons(Point2) {
  const pc = Point2;
  if (typeof pc !== "function")
    throw new TypeError('"Point" expected constructor, got type=' + typeof Point2);
  afunction(pc.fromAffine, "Point.fromAffine");
  afunction(pc.fromBytes, "Point.fromBytes");
  afunction(pc.fromHex, "Point.fromHex");
  aobject2(pc.BASE, "Point.BASE");
  aobject2(pc.ZERO, "Point.ZERO");
  validateField(pc.Fp);
  validateField(pc.Fn);
}
function normalizeZ(c, points) {
  validatePointCons(c);
  validateMSMPoints(points, c);
  const invertedZs = FpInvertBatch(c.Fp, points.map((p) => p.Z));
  return points.map((p, i) => c.fromAffine(p.toAffine(invertedZs[i])));
}
function validateW(W, bits, min = 1) {
  if (!Number.isSafeInteger(W) || W < min || W > bits)
    throw new Error("invalid window size, expected [" + min + ".." + bits + "], got W=" + W);
}
function validateTableBytes(numPoints, fpBytes) {
  const bytes = numPoints * (4 * fpBytes + 128);
  if (bytes > TABLE_BYTES_MAX)
    throw new Error("invalid window size: table would need ~" + Math.ceil(bytes / 2 ** 20) + " MiB, max " + TABLE_BYTES_MAX / 2 ** 20 + " MiB");
}
function probeRandomBytes(randomBytes3, length) {
  if (randomBytes3 === void 0)
    return void 0;
  afunction(randomBytes3, "randomBytes");
  try {
    const probe = randomBytes3(length);
    if (!isBytes2(probe) || probe.length !== length)
      return void 0;
  } catch {
    return void 0;
  }
  return randomBytes3;
}
function validateMSMPoints(points, c) {
  aarray(points, "points");
  points.forEach((p, i) => {
    if (!(p instanceof c))
      throw new Error("invalid point at index " + i);
  });
}
function validateMSMScalars(scalars, field, maxScalar) {
  if (!Array.isArray(scalars))
    throw new Error("array of scalars expected");
  scalars.forEach((s, i) => {
    const ok = maxScalar === void 0 ? field.isValid(s) : isPosBig(s) && s < maxScalar;
    if (!ok)
      throw new Error("invalid scalar at index " + i);
  });
}
var pointWindowSizes = /* @__PURE__ */ new WeakMap();
function getWindowSize(P) {
  return pointWindowSizes.get(P) || 1;
}
function oddMultiples(p, size) {
  const dbl = p.double();
  const t = [p];
  for (let j = 1; j < size; j++)
    t.push(t[j - 1].add(dbl));
  return t;
}
function wnafDigits(n, W) {
  const size = 2 ** W;
  const half = size / 2;
  const mask = BigInt(size - 1);
  const d = [];
  while (n > _0n3) {
    let w = 0;
    if (n & _1n3) {
      w = Number(n & mask);
      if (w >= half)
        w -= size;
      n -= BigInt(w);
    }
    d.push(w);
    n >>= _1n3;
  }
  return d;
}
function signedWindowDigits(n, W, windows) {
  const size = 2 ** W;
  const half = size / 2;
  const mask = BigInt(size - 1);
  const shiftBy = BigInt(W);
  const d = [];
  for (let w = 0; w < windows; w++) {
    let v = Number(n & mask);
    n >>= shiftBy;
    if (v > half) {
      v -= size;
      n += _1n3;
    }
    d.push(v);
  }
  if (n !== _0n3)
    throw new Error("invalid wnaf");
  return d;
}
function wnafWalk(zero, tables, digits) {
  let max = 0;
  for (const d of digits)
    max = Math.max(max, d.length);
  let acc = zero;
  for (let bit = max - 1; bit >= 0; bit--) {
    if (bit !== max - 1)
      acc = acc.double();
    for (let i = 0; i < digits.length; i++) {
      const w = digits[i][bit];
      if (w) {
        const item = tables[i][Math.abs(w) - 1 >> 1];
        acc = acc.add(w < 0 ? item.negate() : item);
      }
    }
  }
  return acc;
}
var ScalarMultiplier = class {
  Point;
  BASE;
  ZERO;
  randomBytes;
  wnafPrecomputes = /* @__PURE__ */ new WeakMap();
  baseCanBeBlinded;
  bits;
  // Parametrized with a given Point class (not individual point)
  constructor(Point2, randomBytes3) {
    validatePointCons(Point2);
    this.randomBytes = probeRandomBytes(randomBytes3, BLIND_BYTES);
    this.Point = Point2;
    this.BASE = Point2.BASE;
    this.ZERO = Point2.ZERO;
    this.bits = Point2.Fn.BITS;
  }
  /**
   * Creates a signed fixed-window wNAF precomputation table: for every window w, the
   * multiples `[1..2^(W−1)]⋅2^(w⋅W)⋅P`, flattened. All doublings are baked into the table,
   * so cached multiplication is additions-only. `windows = ceil(bits/W) + 1`: the extra
   * window absorbs the final carry of signed-digit recoding.
   * For a 256-bit curve and W=6, the table is 44⋅32 = 1408 points.
   * @param point - Point instance
   * @param W - window size
   * @param bits - scalar bitlength the table must cover
   */
  buildWnafTable(point, W, bits) {
    const windows = Math.ceil(bits / W) + 1;
    const half = 2 ** (W - 1);
    const comp = [];
    let base = point;
    for (let w = 0; w < windows; w++) {
      let acc = base;
      for (let i = 0; i < half; i++) {
        comp.push(acc);
        acc = acc.add(base);
      }
      base = comp[comp.length - 1].double();
    }
    return { W, bits, windows, comp };
  }
  /**
   * Implements ec multiplication using precomputed signed fixed-window wNAF tables.
   * Constant-time: fixed window count with one table addition per window — zero digits feed
   * the fake accumulator — and no doublings; the lookup scans the whole window slice.
   * Scalar bounds are validated by the public entry points ({@link ScalarMultiplier.mulCT},
   * {@link ScalarMultiplier.mulCTBlinded}, {@link ScalarMultiplier.mulUnsafe});
   * signedWindowDigits throws if `n` exceeds the table.
   * @returns real and fake (for const-time) points
   */
  wnafCachedCT(precomputes, n) {
    const { W, windows, comp } = precomputes;
    const half = 2 ** (W - 1);
    const digits = signedWindowDigits(n, W, windows);
    let p = this.ZERO;
    let f = this.BASE;
    for (let w = 0; w < windows; w++) {
      const digit = digits[w];
      const start = w * half;
      const idx = Math.abs(digit) - 1;
      let sel = comp[start];
      for (let i = 1; i < half; i++)
        sel = i === idx ? comp[start + i] : sel;
      const neg = sel.negate();
      if (digit === 0)
        f = f.add(comp[start]);
      else
        p = p.add(digit < 0 ? neg : sel);
    }
    return { p, f };
  }
  // Cache key is point identity plus (W, bits); at most two entries exist per point (public-width
  // `Fn.BITS` and blinded `Fn.BITS + BLIND_BITS`). Callers must not reuse the same point with
  // incompatible `transform(...)` layouts and expect a separate cache entry.
  getWnafPrecomputes(W, point, bits, transform) {
    let entries = this.wnafPrecomputes.get(point);
    let comp = entries?.find((entry) => entry.W === W && entry.bits === bits);
    if (!comp) {
      comp = this.buildWnafTable(point, W, bits);
      if (typeof transform === "function")
        comp = { ...comp, comp: transform(comp.comp) };
      if (!entries) {
        entries = [];
        this.wnafPrecomputes.set(point, entries);
      }
      entries.push(comp);
    }
    return comp;
  }
  assertPoint(point) {
    if (!(point instanceof this.Point))
      throw new TypeError('"point" expected Point instance, got type=' + typeof point);
  }
  // Shared prologue of the constant-time entry points. Rejects scalar 0: in key/signature-style
  // callers a zero scalar means broken upstream plumbing, and concrete Points already reject it.
  // Uses inRange instead of Fn.isValidNot0: validateField() only certifies the arithmetic subset.
  validateMulInput(point, scalar) {
    this.assertPoint(point);
    if (!inRange(scalar, _1n3, this.Point.Fn.ORDER))
      throw new Error("invalid scalar");
  }
  // Constant-time dispatch shared by mulCT / mulCTBlinded. Un-precomputed points (W===1, e.g.
  // ECDH peer keys) skip building a throwaway cached table in favor of a small fixed-window
  // multiply. `n` must be < 2^bits.
  runCT(point, n, bits, transform) {
    const W = getWindowSize(point);
    if (W === 1)
      return this.fixedWindowCT(point, n, bits);
    return this.wnafCachedCT(this.getWnafPrecomputes(W, point, bits, transform), n);
  }
  mulCT(point, scalar, transform) {
    this.validateMulInput(point, scalar);
    return this.runCT(point, scalar, this.bits, transform);
  }
  mulCTBlinded(point, scalar, transform) {
    this.validateMulInput(point, scalar);
    if (this.randomBytes === void 0)
      throw new Error("randomBytes is required for scalar blinding");
    const bits = this.Point.Fn.BITS + BLIND_BITS;
    const blind = this.randomBytes(BLIND_BYTES);
    if (!isBytes2(blind) || blind.length !== BLIND_BYTES)
      throw new Error("randomBytes returned invalid byte array");
    blind[0] = blind[0] & 63 | 128;
    const n = scalar + bytesToNumberBE(blind) * this.Point.Fn.ORDER;
    return this.runCT(point, n, bits, transform);
  }
  /**
   * Constant-time multiplication `n*point` for an un-precomputed point, via a small fixed window.
   * A cached wNAF table only pays off when reused; a flat 2^FW_WINDOW table (`size-1` adds) is
   * far cheaper to build for a single use. The point-operation sequence is independent of `n`:
   * build the table, then per window exactly FW_WINDOW doublings, a data-oblivious scan over
   * every table entry, and one addition (adds the identity when the window digit is 0 — never
   * skipped).
   *
   * `n` must be `< 2^bits`. Assumes complete addition (adding the identity costs the same as any
   * add), which holds for the Weierstrass/Edwards point types used here. The table is left in
   * projective form (no normalizeZ): normalizing this small a table costs more than the
   * mixed-add savings it would buy for a single multiply.
   * @returns real point `p`; `f` duplicates it only to match {@link wnafCachedCT}'s return shape
   * (this path needs no fake accumulator — its op-count is already scalar-independent).
   */
  fixedWindowCT(point, n, bits) {
    const W = FW_WINDOW;
    const size = 1 << W;
    const mask = bitMask(W);
    const table = new Array(size);
    table[0] = this.ZERO;
    for (let i = 1; i < size; i++)
      table[i] = table[i - 1].add(point);
    const windows = Math.ceil(bits / W);
    let acc = this.ZERO;
    for (let window = windows - 1; window >= 0; window--) {
      if (window !== windows - 1)
        for (let d = 0; d < W; d++)
          acc = acc.double();
      const digit = Number(n >> BigInt(window * W) & mask);
      let sel = table[0];
      for (let i = 1; i < size; i++)
        sel = i === digit ? table[i] : sel;
      acc = acc.add(sel);
    }
    return { p: acc, f: acc };
  }
  shouldBlind(point, cofactor) {
    if (this.randomBytes === void 0)
      return false;
    if (cofactor === _1n3)
      return true;
    if (point !== this.BASE)
      return false;
    if (this.baseCanBeBlinded === void 0)
      this.baseCanBeBlinded = this.mulUnsafe(this.BASE, this.Point.Fn.ORDER).is0();
    return this.baseCanBeBlinded;
  }
  mulSecret(point, scalar, cofactor, transform) {
    return this.shouldBlind(point, cofactor) ? this.mulCTBlinded(point, scalar, transform) : this.mulCT(point, scalar, transform);
  }
  mulUnsafe(point, scalar, transform) {
    this.assertPoint(point);
    if (!isPosBig(scalar))
      throw new Error("invalid scalar");
    const W = getWindowSize(point);
    if (W === 1 || scalar >= this.Point.Fn.ORDER)
      return mulAddUnsafe(this.Point, [point], [scalar], true);
    const precomputes = this.getWnafPrecomputes(W, point, this.bits, transform);
    return this.wnafCachedCT(precomputes, scalar).p;
  }
  // Remembers the window size used for precomputed wNAF multiplication of the given point
  // and drops any previously built tables. Usually only the base point is precomputed.
  // W=1 resets the point to the un-precomputed (table-less) paths.
  // W is additionally capped so tables stay under ~2 GiB ({@link TABLE_BYTES_MAX}).
  setWindowSize(point, W) {
    this.assertPoint(point);
    validateW(W, this.bits);
    const windows = Math.ceil((this.bits + BLIND_BITS) / W) + 1;
    validateTableBytes(windows * 2 ** (W - 1), this.Point.Fp.BYTES);
    pointWindowSizes.set(point, W);
    this.wnafPrecomputes.delete(point);
  }
  // True when a window size is set: tables themselves are built lazily on first multiply.
  hasWindowSize(point) {
    return getWindowSize(point) !== 1;
  }
};
function mulAddUnsafe(c, points, scalars, allowOversized = false) {
  validatePointCons(c);
  validateMSMPoints(points, c);
  abool(allowOversized, "allowOversized");
  validateMSMScalars(scalars, c.Fn, allowOversized ? c.Fn.ORDER ** _4n2 : void 0);
  if (points.length !== scalars.length)
    throw new Error("arrays of points and scalars must have equal length");
  const tables = points.map((p) => oddMultiples(p, 4));
  const digits = scalars.map((n) => wnafDigits(n, 4));
  return wnafWalk(c.ZERO, tables, digits);
}
function createField(order, field, isLE) {
  if (field) {
    if (field.ORDER !== order)
      throw new Error("Field.ORDER must match order: Fp == p, Fn == n");
    validateField(field);
    return field;
  } else {
    return Field(order, { isLE });
  }
}
function createCurveFields(type, CURVE, curveOpts = {}, FpFnLE) {
  if (type !== "weierstrass" && type !== "edwards")
    throw new Error('expected curve type "weierstrass" or "edwards"');
  if (FpFnLE === void 0)
    FpFnLE = type === "edwards";
  if (!CURVE || typeof CURVE !== "object")
    throw new Error(`expected valid ${type} CURVE object`);
  validateObject(curveOpts);
  for (const p of ["p", "n", "h"]) {
    const val = CURVE[p];
    if (!(isPosBig(val) && val !== _0n3))
      throw new Error(`CURVE.${p} must be positive bigint`);
  }
  const Fp2 = createField(CURVE.p, curveOpts.Fp, FpFnLE);
  const Fn = createField(CURVE.n, curveOpts.Fn, FpFnLE);
  const _b = type === "weierstrass" ? "b" : "d";
  const params = ["Gx", "Gy", "a", _b];
  for (const p of params) {
    if (!Fp2.isValid(CURVE[p]))
      throw new Error(`CURVE.${p} must be valid field element of CURVE.Fp`);
  }
  CURVE = Object.freeze(Object.assign({}, CURVE));
  return { CURVE, Fp: Fp2, Fn };
}
function createKeygen(randomSecretKey, getPublicKey) {
  return function keygen(seed) {
    const secretKey = randomSecretKey(seed);
    return { secretKey, publicKey: getPublicKey(secretKey) };
  };
}

// node_modules/@noble/curves/abstract/edwards.js
/*! noble-curves - MIT License (c) 2022 Paul Miller (paulmillr.com) */
var _0n4 = /* @__PURE__ */ BigInt(0);
var _1n4 = /* @__PURE__ */ BigInt(1);
var _2n2 = /* @__PURE__ */ BigInt(2);
var _4n3 = /* @__PURE__ */ BigInt(4);
var _8n2 = /* @__PURE__ */ BigInt(8);
function isEdValidXY(Fp2, CURVE, x, y) {
  const x2 = Fp2.sqr(x);
  const y2 = Fp2.sqr(y);
  const left = Fp2.add(Fp2.mul(CURVE.a, x2), y2);
  const right = Fp2.add(Fp2.ONE, Fp2.mul(CURVE.d, Fp2.mul(x2, y2)));
  return Fp2.eql(left, right);
}
function edwards(params, extraOpts = {}) {
  validateObject(extraOpts, {}, {}, "extraOpts");
  const opts = extraOpts;
  const validated = createCurveFields("edwards", params, opts, opts.FpFnLE);
  const { Fp: Fp2, Fn } = validated;
  let CURVE = validated.CURVE;
  const { h: cofactor } = CURVE;
  if (FpLegendre(Fp2, CURVE.a) !== 1)
    throw new Error("edwards: CURVE.a must be a square in Fp for complete addition formulas");
  if (FpLegendre(Fp2, CURVE.d) !== -1)
    throw new Error("edwards: CURVE.d must be a non-square in Fp for complete addition formulas");
  validateObject(opts, {}, { uvRatio: "function", randomBytes: "function" });
  const randomBytes3 = opts.randomBytes === void 0 ? randomBytes2 : opts.randomBytes;
  const MASK = _2n2 << BigInt(Fp2.BYTES * 8) - _1n4;
  function isOdd(n) {
    if (!Fp2.isOdd)
      throw new Error("Field does not have .isOdd()");
    return Fp2.isOdd(n);
  }
  const uvRatio2 = opts.uvRatio === void 0 ? (u, v) => {
    try {
      return { isValid: true, value: Fp2.sqrt(Fp2.div(u, v)) };
    } catch (e) {
      return { isValid: false, value: _0n4 };
    }
  } : opts.uvRatio;
  if (!isEdValidXY(Fp2, CURVE, CURVE.Gx, CURVE.Gy))
    throw new Error("bad curve params: generator point");
  const mulA = Fp2.eql(CURVE.a, Fp2.neg(Fp2.ONE)) ? (x) => Fp2.neg(x) : Fp2.eql(CURVE.a, Fp2.ONE) ? (x) => x : (x) => Fp2.mul(CURVE.a, x);
  function acoord(title, n, banZero = false) {
    const min = banZero ? _1n4 : _0n4;
    aInRange("coordinate " + title, n, min, MASK);
    return n;
  }
  function aedpoint(other) {
    if (!(other instanceof Point2))
      throw new Error("EdwardsPoint expected");
  }
  class Point2 {
    static BASE = new Point2(CURVE.Gx, CURVE.Gy, Fp2.ONE, Fp2.mul(CURVE.Gx, CURVE.Gy));
    static ZERO = new Point2(Fp2.ZERO, Fp2.ONE, Fp2.ONE, Fp2.ZERO);
    static Fp = Fp2;
    static Fn = Fn;
    X;
    Y;
    Z;
    T;
    constructor(X, Y, Z, T) {
      this.X = acoord("x", X);
      this.Y = acoord("y", Y);
      this.Z = acoord("z", Z, true);
      this.T = acoord("t", T);
      Object.freeze(this);
    }
    static CURVE() {
      return CURVE;
    }
    /**
     * Create one extended Edwards point from affine coordinates.
     * Does NOT validate that the point is on-curve or torsion-free.
     * Use `.assertValidity()` on adversarial inputs.
     */
    static fromAffine(p) {
      if (p instanceof Point2)
        throw new Error("extended point not allowed");
      const { x, y } = p || {};
      acoord("x", x);
      acoord("y", y);
      return new Point2(x, y, Fp2.ONE, Fp2.mul(x, y));
    }
    // Uses algo from RFC8032 5.1.3.
    static fromBytes(bytes, zip215 = false) {
      const len = Fp2.BYTES;
      const { a, d } = CURVE;
      bytes = copyBytes(abytes2(bytes, len, "point"));
      abool(zip215, "zip215");
      const normed = copyBytes(bytes);
      const lastByte = bytes[len - 1];
      normed[len - 1] = lastByte & ~128;
      const y = bytesToNumberLE(normed);
      const max = zip215 ? MASK : Fp2.ORDER;
      aInRange("point.y", y, _0n4, max);
      const y2 = Fp2.sqr(y);
      const u = Fp2.sub(y2, Fp2.ONE);
      const v = Fp2.sub(Fp2.mulN(d, y2), a);
      let { isValid, value: x } = uvRatio2(u, v);
      if (!isValid)
        throw new Error("bad point: invalid y coordinate");
      const isXOdd = isOdd(x);
      const isLastByteOdd = (lastByte & 128) !== 0;
      if (!zip215 && Fp2.is0(x) && isLastByteOdd)
        throw new Error("bad point: x=0 and x_0=1");
      if (isLastByteOdd !== isXOdd)
        x = Fp2.neg(x);
      return Point2.fromAffine({ x, y });
    }
    static fromHex(hex2, zip215 = false) {
      return Point2.fromBytes(hexToBytes2(hex2), zip215);
    }
    get x() {
      return this.toAffine().x;
    }
    get y() {
      return this.toAffine().y;
    }
    precompute(windowSize = 6, isLazy = true) {
      wnaf.setWindowSize(this, windowSize);
      if (!isLazy)
        this.multiply(_2n2);
      return this;
    }
    // Useful in fromAffine() - not for fromBytes(), which always created valid points.
    assertValidity() {
      const p = this;
      const { a, d } = CURVE;
      if (p.is0())
        throw new Error("bad point: ZERO");
      const { X, Y, Z, T } = p;
      const X2 = Fp2.sqr(X);
      const Y2 = Fp2.sqr(Y);
      const Z2 = Fp2.sqr(Z);
      const Z4 = Fp2.sqr(Z2);
      const aX2 = Fp2.mul(X2, a);
      const left = Fp2.mul(Fp2.add(aX2, Y2), Z2);
      const right = Fp2.add(Z4, Fp2.mul(d, Fp2.mul(X2, Y2)));
      if (!Fp2.eql(left, right))
        throw new Error("bad point: equation left != right (1)");
      const XY = Fp2.mul(X, Y);
      const ZT = Fp2.mul(Z, T);
      if (!Fp2.eql(XY, ZT))
        throw new Error("bad point: equation left != right (2)");
    }
    // Compare one point to another.
    equals(other) {
      aedpoint(other);
      const { X: X1, Y: Y1, Z: Z1 } = this;
      const { X: X2, Y: Y2, Z: Z2 } = other;
      const X1Z2 = Fp2.mul(X1, Z2);
      const X2Z1 = Fp2.mul(X2, Z1);
      const Y1Z2 = Fp2.mul(Y1, Z2);
      const Y2Z1 = Fp2.mul(Y2, Z1);
      return Fp2.eql(X1Z2, X2Z1) && Fp2.eql(Y1Z2, Y2Z1);
    }
    is0() {
      return this.equals(Point2.ZERO);
    }
    negate() {
      return new Point2(Fp2.neg(this.X), this.Y, this.Z, Fp2.neg(this.T));
    }
    // Fast algo for doubling Extended Point.
    // https://hyperelliptic.org/EFD/g1p/auto-twisted-extended.html#doubling-dbl-2008-hwcd
    // Cost: 4M + 4S + 1*a + 6add + 1*2.
    double() {
      const { X: X1, Y: Y1, Z: Z1 } = this;
      const A = Fp2.sqr(X1);
      const B = Fp2.sqr(Y1);
      const C = Fp2.mul(Fp2.sqr(Z1), _2n2);
      const D = mulA(A);
      const x1y1 = Fp2.addN(X1, Y1);
      const E = Fp2.sub(Fp2.subN(Fp2.sqr(x1y1), A), B);
      const G = Fp2.addN(D, B);
      const F = Fp2.subN(G, C);
      const H = Fp2.subN(D, B);
      const X3 = Fp2.mul(E, F);
      const Y3 = Fp2.mul(G, H);
      const T3 = Fp2.mul(E, H);
      const Z3 = Fp2.mul(F, G);
      return new Point2(X3, Y3, Z3, T3);
    }
    // Fast algo for adding 2 Extended Points.
    // https://hyperelliptic.org/EFD/g1p/auto-twisted-extended.html#addition-add-2008-hwcd
    // Cost: 9M + 1*a + 1*d + 7add.
    add(other) {
      aedpoint(other);
      const { d } = CURVE;
      const { X: X1, Y: Y1, Z: Z1, T: T1 } = this;
      const { X: X2, Y: Y2, Z: Z2, T: T2 } = other;
      const A = Fp2.mul(X1, X2);
      const B = Fp2.mul(Y1, Y2);
      const C = Fp2.mul(Fp2.mulN(T1, d), T2);
      const D = Fp2.mul(Z1, Z2);
      const E = Fp2.sub(Fp2.subN(Fp2.mulN(Fp2.addN(X1, Y1), Fp2.addN(X2, Y2)), A), B);
      const F = Fp2.subN(D, C);
      const G = Fp2.addN(D, C);
      const H = Fp2.sub(B, mulA(A));
      const X3 = Fp2.mul(E, F);
      const Y3 = Fp2.mul(G, H);
      const T3 = Fp2.mul(E, H);
      const Z3 = Fp2.mul(F, G);
      return new Point2(X3, Y3, Z3, T3);
    }
    subtract(other) {
      aedpoint(other);
      return this.add(other.negate());
    }
    // Constant-time multiplication.
    multiply(scalar) {
      if (!Fn.isValidNot0(scalar))
        throw new RangeError("invalid scalar: expected 1 <= sc < curve.n");
      const { p, f } = wnaf.mulSecret(this, scalar, cofactor, normalize);
      return normalize([p, f])[0];
    }
    // Non-constant-time multiplication. Uses double-and-add algorithm.
    // It's faster, but should only be used when you don't care about
    // an exposed private key e.g. sig verification.
    // Keeps the same subgroup-scalar contract: 0 is allowed for public-scalar callers, but
    // n and larger values are rejected instead of being reduced mod n to the identity point.
    multiplyUnsafe(scalar) {
      if (!Fn.isValid(scalar))
        throw new RangeError("invalid scalar: expected 0 <= sc < curve.n");
      if (scalar === _0n4)
        return Point2.ZERO;
      if (this.is0() || scalar === _1n4)
        return this;
      return wnaf.mulUnsafe(this, scalar, normalize);
    }
    // Checks if point is of small order.
    // If you add something to small order point, you will have "dirty"
    // point with torsion component.
    // Clears cofactor and checks if the result is 0.
    isSmallOrder() {
      return this.clearCofactor().is0();
    }
    // Multiplies point by curve order and checks if the result is 0.
    // Returns `false` is the point is dirty.
    isTorsionFree() {
      return wnaf.mulUnsafe(this, CURVE.n).is0();
    }
    // Converts Extended point to default (x, y) coordinates.
    // Can accept precomputed Z^-1 - for example, from invertBatch.
    toAffine(invertedZ) {
      const p = this;
      let iz = invertedZ;
      if (iz != null && typeof iz !== "bigint")
        throw new TypeError('"invertedZ" expected bigint, got type=' + typeof iz);
      const { X, Y, Z } = p;
      const is0 = p.is0();
      if (iz == null)
        iz = is0 ? Fp2.create(_8n2) : Fp2.inv(Z);
      const x = Fp2.mul(X, iz);
      const y = Fp2.mul(Y, iz);
      const zz = Fp2.mul(Z, iz);
      if (is0)
        return { x: Fp2.ZERO, y: Fp2.ONE };
      if (!Fp2.eql(zz, Fp2.ONE))
        throw new Error("invZ was invalid");
      return { x, y };
    }
    clearCofactor() {
      if (cofactor === _1n4)
        return this;
      if (cofactor === _2n2)
        return this.double();
      if (cofactor === _4n3)
        return this.double().double();
      if (cofactor === _8n2)
        return this.double().double().double();
      return this.multiplyUnsafe(cofactor);
    }
    toBytes() {
      const { x, y } = this.toAffine();
      const bytes = Fp2.toBytes(y);
      bytes[bytes.length - 1] |= isOdd(x) ? 128 : 0;
      return bytes;
    }
    toHex() {
      return bytesToHex2(this.toBytes());
    }
    toString() {
      return `<Point ${this.is0() ? "ZERO" : this.toHex()}>`;
    }
  }
  const normalize = (points) => normalizeZ(Point2, points);
  const wnaf = new ScalarMultiplier(Point2, randomBytes3);
  if (wnaf.bits >= 6)
    Point2.BASE.precompute(6);
  Object.freeze(Point2.prototype);
  Object.freeze(Point2);
  return Point2;
}
function eddsa(Point2, cHash, eddsaOpts = {}) {
  validatePointCons(Point2);
  if (typeof cHash !== "function")
    throw new Error('"hash" function param is required');
  const hash = cHash;
  const opts = eddsaOpts;
  validateObject(opts, {}, {
    adjustScalarBytes: "function",
    randomBytes: "function",
    domain: "function",
    prehash: "function",
    zip215: "boolean",
    mapToCurve: "function",
    toMontgomery: "function",
    toMontgomerySecret: "function"
  });
  const { prehash } = opts;
  const { BASE, Fp: Fp2, Fn } = Point2;
  const outputLen = hash.outputLen;
  const expectedLen = 2 * Fp2.BYTES;
  if (outputLen !== void 0) {
    asafenumber(outputLen, "hash.outputLen");
    if (outputLen !== expectedLen)
      throw new Error(`hash.outputLen must be ${expectedLen}, got ${outputLen}`);
  }
  const randomBytes3 = opts.randomBytes === void 0 ? randomBytes2 : opts.randomBytes;
  const toMontgomery2 = opts.toMontgomery;
  const toMontgomerySecret2 = opts.toMontgomerySecret;
  const adjustScalarBytes2 = opts.adjustScalarBytes === void 0 ? (bytes) => bytes : opts.adjustScalarBytes;
  const domain = opts.domain === void 0 ? (data, ctx, phflag) => {
    abool(phflag, "phflag");
    if (ctx.length || phflag)
      throw new Error("Contexts/pre-hash are not supported");
    return data;
  } : opts.domain;
  function modN_LE(hash2) {
    return Fn.create(bytesToNumberLE(hash2));
  }
  function getPrivateScalar(key) {
    const len = lengths.secretKey;
    abytes2(key, lengths.secretKey, "secretKey");
    const hashed = abytes2(hash(key), 2 * len, "hashedSecretKey");
    const head = adjustScalarBytes2(hashed.slice(0, len));
    const prefix = hashed.slice(len, 2 * len);
    const scalar = modN_LE(head);
    return { head, prefix, scalar };
  }
  function getExtendedPublicKey(secretKey) {
    const { head, prefix, scalar } = getPrivateScalar(secretKey);
    const point = BASE.multiply(scalar);
    const pointBytes = point.toBytes();
    return { head, prefix, scalar, point, pointBytes };
  }
  function getPublicKey(secretKey) {
    return getExtendedPublicKey(secretKey).pointBytes;
  }
  function hashDomainToScalar(context = Uint8Array.of(), ...msgs) {
    const msg = concatBytes2(...msgs);
    return modN_LE(hash(domain(msg, abytes2(context, void 0, "context"), !!prehash)));
  }
  function sign2(msg, secretKey, options = {}) {
    validateObject(options, {}, {}, "options");
    msg = copyBytes(abytes2(msg, void 0, "message"));
    if (prehash)
      msg = prehash(msg);
    const { prefix, scalar, pointBytes } = getExtendedPublicKey(secretKey);
    const r = hashDomainToScalar(options.context, prefix, msg);
    const R = BASE.multiply(r).toBytes();
    const k = hashDomainToScalar(options.context, R, pointBytes, msg);
    const s = Fn.create(r + k * scalar);
    if (!Fn.isValid(s))
      throw new Error("sign failed: invalid s");
    const rs = concatBytes2(R, Fn.toBytes(s));
    return abytes2(rs, lengths.signature, "result");
  }
  const verifyOpts = {
    zip215: opts.zip215
  };
  function verify(sig, msg, publicKey, options = verifyOpts) {
    validateObject(options);
    const { context } = options;
    const zip215 = options.zip215 === void 0 ? !!verifyOpts.zip215 : options.zip215;
    const len = lengths.signature;
    sig = abytes2(sig, len, "signature");
    msg = abytes2(msg, void 0, "message");
    publicKey = abytes2(publicKey, lengths.publicKey, "publicKey");
    if (zip215 !== void 0)
      abool(zip215, "zip215");
    if (prehash)
      msg = prehash(msg);
    const mid = len / 2;
    const r = sig.subarray(0, mid);
    const s = bytesToNumberLE(sig.subarray(mid, len));
    let A, R, SB;
    try {
      A = Point2.fromBytes(publicKey, zip215);
      R = Point2.fromBytes(r, zip215);
      SB = BASE.multiplyUnsafe(s);
    } catch (error) {
      return false;
    }
    if (!zip215 && A.isSmallOrder())
      return false;
    const k = hashDomainToScalar(context, r, publicKey, msg);
    const RkA = R.add(A.multiplyUnsafe(k));
    return RkA.subtract(SB).clearCofactor().is0();
  }
  const _size = Fp2.BYTES;
  const lengths = {
    secretKey: _size,
    publicKey: _size,
    signature: 2 * _size,
    seed: _size
  };
  function randomSecretKey(seed) {
    seed = seed === void 0 ? randomBytes3(lengths.seed) : seed;
    return abytes2(seed, lengths.seed, "seed");
  }
  function isValidSecretKey(key) {
    return isBytes2(key) && key.length === lengths.secretKey;
  }
  function isValidPublicKey(key, zip215) {
    try {
      return !!Point2.fromBytes(key, zip215 === void 0 ? verifyOpts.zip215 : zip215);
    } catch (error) {
      return false;
    }
  }
  const utils = {
    getExtendedPublicKey,
    randomSecretKey,
    isValidSecretKey,
    isValidPublicKey,
    /** Converts an Edwards public key to a companion Montgomery public key. */
    toMontgomery(publicKey) {
      if (toMontgomery2 === void 0)
        throw new Error("Montgomery conversion is not supported for this curve");
      return toMontgomery2(Point2.fromBytes(publicKey));
    },
    toMontgomerySecret(secretKey) {
      if (toMontgomerySecret2 === void 0)
        throw new Error("Montgomery conversion is not supported for this curve");
      return toMontgomerySecret2(secretKey);
    }
  };
  Object.freeze(lengths);
  Object.freeze(utils);
  return Object.freeze({
    keygen: createKeygen(randomSecretKey, getPublicKey),
    getPublicKey,
    sign: sign2,
    verify,
    utils,
    Point: Point2,
    lengths
  });
}

// node_modules/@noble/curves/ed25519.js
/*! noble-curves - MIT License (c) 2022 Paul Miller (paulmillr.com) */
var _1n5 = /* @__PURE__ */ BigInt(1);
var _2n3 = /* @__PURE__ */ BigInt(2);
var _5n2 = /* @__PURE__ */ BigInt(5);
var _8n3 = /* @__PURE__ */ BigInt(8);
var ed25519_CURVE_p = /* @__PURE__ */ BigInt("0x7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffed");
var ed25519_CURVE = /* @__PURE__ */ (() => ({
  p: ed25519_CURVE_p,
  n: BigInt("0x1000000000000000000000000000000014def9dea2f79cd65812631a5cf5d3ed"),
  h: _8n3,
  a: BigInt("0x7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffec"),
  d: BigInt("0x52036cee2b6ffe738cc740797779e89800700a4d4141d8ab75eb4dca135978a3"),
  Gx: BigInt("0x216936d3cd6e53fec0a4e231fdd6dc5c692cc7609525a7b2c9562d608f25d51a"),
  Gy: BigInt("0x6666666666666666666666666666666666666666666666666666666666666658")
}))();
function ed25519_pow_2_252_3(x) {
  const _10n = BigInt(10), _20n = BigInt(20), _40n = BigInt(40), _80n = BigInt(80);
  const P = ed25519_CURVE_p;
  const x2 = x * x % P;
  const b2 = x2 * x % P;
  const b4 = pow2(b2, _2n3, P) * b2 % P;
  const b5 = pow2(b4, _1n5, P) * x % P;
  const b10 = pow2(b5, _5n2, P) * b5 % P;
  const b20 = pow2(b10, _10n, P) * b10 % P;
  const b40 = pow2(b20, _20n, P) * b20 % P;
  const b80 = pow2(b40, _40n, P) * b40 % P;
  const b160 = pow2(b80, _80n, P) * b80 % P;
  const b240 = pow2(b160, _80n, P) * b80 % P;
  const b250 = pow2(b240, _10n, P) * b10 % P;
  const pow_p_5_8 = pow2(b250, _2n3, P) * x % P;
  return { pow_p_5_8, b2 };
}
function adjustScalarBytes(bytes) {
  bytes[0] &= 248;
  bytes[31] &= 127;
  bytes[31] |= 64;
  return bytes;
}
var ED25519_SQRT_M1 = /* @__PURE__ */ BigInt("19681161376707505956807079304988542015446066515923890162744021073123829784752");
function uvRatio(u, v) {
  const P = ed25519_CURVE_p;
  const v3 = mod(v * v * v, P);
  const v7 = mod(v3 * v3 * v, P);
  const pow3 = ed25519_pow_2_252_3(u * v7).pow_p_5_8;
  let x = mod(u * v3 * pow3, P);
  const vx2 = mod(v * x * x, P);
  const root1 = x;
  const root2 = mod(x * ED25519_SQRT_M1, P);
  const useRoot1 = vx2 === u;
  const useRoot2 = vx2 === mod(-u, P);
  const noRoot = vx2 === mod(-u * ED25519_SQRT_M1, P);
  if (useRoot1)
    x = root1;
  if (useRoot2 || noRoot)
    x = root2;
  if (isNegativeLE(x, P))
    x = mod(-x, P);
  return { isValid: useRoot1 || useRoot2, value: x };
}
var ed25519_Point = /* @__PURE__ */ edwards(ed25519_CURVE, { uvRatio });
var Fp = /* @__PURE__ */ (() => ed25519_Point.Fp)();
function toMontgomery(point) {
  const { y } = point;
  return Fp.toBytes(Fp.div(_1n5 + y, _1n5 - y));
}
function toMontgomerySecret(secretKey) {
  const size = ed25519_Point.Fp.BYTES;
  abytes(secretKey, size);
  return adjustScalarBytes(sha512(secretKey.subarray(0, size))).subarray(0, size);
}
function ed(opts) {
  return eddsa(ed25519_Point, sha512, Object.assign({ adjustScalarBytes, toMontgomery, toMontgomerySecret, zip215: true }, opts));
}
var ed25519 = /* @__PURE__ */ ed({});

// src/sdk/keys.ts
var ED25519 = { name: "Ed25519" };
var support = null;
function keySupport() {
  support ??= (async () => {
    try {
      const pair = await crypto.subtle.generateKey(ED25519, false, ["sign", "verify"]);
      const probe = new Uint8Array([1]);
      const signature = await crypto.subtle.sign(ED25519, pair.privateKey, probe);
      return await crypto.subtle.verify(ED25519, pair.publicKey, signature, probe) ? "webcrypto" : "noble";
    } catch {
      return "noble";
    }
  })();
  return support;
}
async function generateClientKey(kind) {
  if ((kind ?? await keySupport()) === "webcrypto") {
    const pair = await crypto.subtle.generateKey(ED25519, false, ["sign", "verify"]);
    const publicKeyRaw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
    return { kind: "webcrypto", privateKey: pair.privateKey, publicKeyRaw };
  }
  const secret = ed25519.utils.randomSecretKey();
  return { kind: "noble", privateKey: secret, publicKeyRaw: ed25519.getPublicKey(secret) };
}
async function sign(key, message) {
  if (key instanceof Uint8Array) return ed25519.sign(message, key);
  return new Uint8Array(await crypto.subtle.sign(ED25519, key, own(message)));
}
var HostKey = class {
  constructor(raw) {
    this.raw = raw;
    if (raw.length !== 32) throw new Error("an Ed25519 public key is 32 bytes");
    this.webcrypto = keySupport().then(
      (kind) => kind === "webcrypto" ? crypto.subtle.importKey("raw", own(raw), ED25519, false, ["verify"]).catch(() => null) : null
    );
  }
  raw;
  webcrypto;
  async verify(signature, message) {
    if (signature.length !== 64) return false;
    const key = await this.webcrypto;
    if (key !== null) return crypto.subtle.verify(ED25519, key, own(signature), own(message));
    try {
      return ed25519.verify(signature, message, this.raw, { zip215: false });
    } catch {
      return false;
    }
  }
};

// src/sdk/wire.ts
var wire_exports = {};
__export(wire_exports, {
  ACCEPT_SIGNED_HEADERS: () => ACCEPT_SIGNED_HEADERS,
  ACCEPT_STREAM_SIGNING: () => ACCEPT_STREAM_SIGNING,
  AUTH_PREFIX: () => AUTH_PREFIX,
  CHUNK_HEADER_SIZE: () => CHUNK_HEADER_SIZE,
  HOST_TIME: () => HOST_TIME,
  MAX_CHUNK_PAYLOAD: () => MAX_CHUNK_PAYLOAD,
  MAX_SIGNED_HEADERS: () => MAX_SIGNED_HEADERS,
  RESP_BODY_SIGNING: () => RESP_BODY_SIGNING,
  RESP_HEADERS: () => RESP_HEADERS,
  RESP_NONCE: () => RESP_NONCE,
  RESP_SIGNATURE: () => RESP_SIGNATURE,
  RESP_TS: () => RESP_TS,
  SIGNATURE_SIZE: () => SIGNATURE_SIZE,
  SIG_HEADERS: () => SIG_HEADERS,
  SIG_NONCE: () => SIG_NONCE,
  SIG_SESSION: () => SIG_SESSION,
  SIG_SIGNATURE: () => SIG_SIGNATURE,
  SIG_TS: () => SIG_TS,
  STREAM_SIGNING_V1: () => STREAM_SIGNING_V1,
  bodyHash: () => bodyHash,
  canonicalHeaders: () => canonicalHeaders,
  canonicalPath: () => canonicalPath,
  formUrlencode: () => formUrlencode,
  frameMessage: () => frameMessage,
  headersHash: () => headersHash,
  parseHeaderList: () => parseHeaderList,
  refreshMessage: () => refreshMessage,
  requestMessage: () => requestMessage,
  responseMessage: () => responseMessage,
  signableRequestHeader: () => signableRequestHeader,
  signableResponseHeader: () => signableResponseHeader,
  signedWsPath: () => signedWsPath,
  streamChunkMessage: () => streamChunkMessage
});
var SIG_SESSION = "x-vk-sig-session";
var SIG_TS = "x-vk-sig-ts";
var SIG_NONCE = "x-vk-sig-nonce";
var SIG_SIGNATURE = "x-vk-sig-signature";
var RESP_TS = "x-vk-resp-ts";
var RESP_NONCE = "x-vk-resp-nonce";
var RESP_SIGNATURE = "x-vk-resp-signature";
var ACCEPT_STREAM_SIGNING = "x-vk-accept-signed-stream";
var RESP_BODY_SIGNING = "x-vk-resp-body-signing";
var STREAM_SIGNING_V1 = "chunked-v1";
var HOST_TIME = "x-vk-host-time";
var SIG_HEADERS = "x-vk-sig-headers";
var RESP_HEADERS = "x-vk-resp-headers";
var ACCEPT_SIGNED_HEADERS = "x-vk-accept-signed-headers";
var MAX_SIGNED_HEADERS = 64;
var SIGNATURE_SIZE = 64;
var CHUNK_HEADER_SIZE = 4;
var MAX_CHUNK_PAYLOAD = 64 * 1024;
var AUTH_PREFIX = "/api/relay-auth/server";
var bodyHash = (body) => b64encode(sha256(body));
var requestMessage = (ts, method, pathAndQuery, sessionId, nonce, hBody, hHeaders = null) => utf8(`v1|${ts}|${method}|${pathAndQuery}|${sessionId}|${nonce}|${hBody}${hHeaders === null ? "" : `|${hHeaders}`}`);
var responseMessage = (respTs, status, pathAndQuery, sessionId, requestNonce, responseNonce, hBody, hHeaders = null) => utf8(
  `v1|${respTs}|${status}|${pathAndQuery}|${sessionId}|${requestNonce}|${responseNonce}|${hBody}` + (hHeaders === null ? "" : `|${hHeaders}`)
);
var HOP_BY_HOP = [
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "content-length"
];
var UNSIGNED_REQUEST = /* @__PURE__ */ new Set([
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
  SIG_HEADERS
]);
var UNSIGNED_RESPONSE = /* @__PURE__ */ new Set([
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
  HOST_TIME
]);
var signableRequestHeader = (name) => !UNSIGNED_REQUEST.has(name);
var signableResponseHeader = (name) => !UNSIGNED_RESPONSE.has(name) && !name.startsWith("access-control-");
var TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
function parseHeaderList(text) {
  if (!text.trim()) return [];
  const names = text.split(",").map((part) => part.trim());
  if (names.length > MAX_SIGNED_HEADERS) throw new TypeError(`more than ${MAX_SIGNED_HEADERS} signed headers`);
  if (new Set(names).size !== names.length) throw new TypeError("a header is named twice");
  for (const name of names) {
    if (!TOKEN.test(name)) throw new TypeError(`not a lower-case header name: ${JSON.stringify(name.slice(0, 40))}`);
  }
  return names;
}
function canonicalHeaders(names, get) {
  let text = "";
  for (const name of names) text += `${name}:${get(name) ?? ""}
`;
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 255) throw new TypeError("a header value must be a byte string");
    out[i] = code;
  }
  return out;
}
var headersHash = (names, get) => bodyHash(canonicalHeaders(names, get));
var streamChunkMessage = (sessionId, requestNonce, responseNonce, seq, payload) => utf8(`v1|chunk|${sessionId}|${requestNonce}|${responseNonce}|${seq}|${bodyHash(payload)}`);
var frameMessage = (sessionId, upgradeNonce, seq, msgType, payload) => utf8(`v1|${sessionId}|${upgradeNonce}|${seq}|${msgType}|${bodyHash(payload)}`);
var refreshMessage = (timestamp, nonce, clientId) => utf8(`v1|refresh|${timestamp}|${nonce}|${clientId}`);
function formUrlencode(pairs) {
  return new URLSearchParams(pairs).toString();
}
var signedWsPath = (path2, pairs) => pairs.length ? `${path2}?${formUrlencode(pairs)}` : path2;
function canonicalPath(path2) {
  if (!path2.startsWith("/") || path2.includes("#") || path2.length > 8e3) {
    throw new TypeError(`a path must start with / and hold no fragment: ${JSON.stringify(path2.slice(0, 100))}`);
  }
  const url = new URL(`http://host.invalid${path2}`);
  return url.pathname + url.search;
}

// src/sdk/frames.ts
var MSG_TYPES = /* @__PURE__ */ new Set(["text", "binary", "ping", "pong", "close"]);
var MAX_ENVELOPE_SIZE = 16 * 1024 * 1024 + 4096;
function closePayload(code, reason = "") {
  const text = new TextEncoder().encode(reason);
  const out = new Uint8Array(2 + text.length);
  new DataView(out.buffer).setUint16(0, code, false);
  out.set(text, 2);
  return out;
}
function parseClosePayload(payload) {
  if (payload.length < 2) return { code: 1005, reason: "" };
  const code = new DataView(payload.buffer, payload.byteOffset, payload.byteLength).getUint16(0, false);
  return { code, reason: new TextDecoder().decode(payload.subarray(2)) };
}
var FrameSigner = class {
  constructor(key, sessionId, upgradeNonce) {
    this.key = key;
    this.sessionId = sessionId;
    this.upgradeNonce = upgradeNonce;
  }
  key;
  sessionId;
  upgradeNonce;
  seq = 0;
  /** The next envelope. Sequence numbers are taken in call order, so callers must send
   *  the envelopes in the order they asked for them. */
  async sign(msgType, payload) {
    if (!MSG_TYPES.has(msgType)) throw new Error(`unknown frame type ${msgType}`);
    const seq = ++this.seq;
    const signature = await sign(this.key, frameMessage(this.sessionId, this.upgradeNonce, seq, msgType, payload));
    return JSON.stringify({
      version: 1,
      seq,
      msg_type: msgType,
      payload_b64: b64encode(payload),
      signature_b64: b64encode(signature)
    });
  }
};
var FrameVerifier = class {
  constructor(key, sessionId, upgradeNonce) {
    this.key = key;
    this.sessionId = sessionId;
    this.upgradeNonce = upgradeNonce;
  }
  key;
  sessionId;
  upgradeNonce;
  seq = 0;
  /** The frame in `message`, checked; SignatureInvalid for anything else. Call in order. */
  async open(message) {
    if (message.length > MAX_ENVELOPE_SIZE) throw new SignatureInvalid("a WebSocket frame envelope is too large");
    let envelope;
    try {
      envelope = JSON.parse(typeof message === "string" ? message : new TextDecoder("utf-8", { fatal: true }).decode(message));
    } catch {
      throw new SignatureInvalid("a WebSocket frame is not a signed envelope");
    }
    if (typeof envelope !== "object" || envelope === null || Array.isArray(envelope)) {
      throw new SignatureInvalid("a WebSocket frame is not a signed envelope");
    }
    const e = envelope;
    const payloadB64 = e.payload_b64 ?? "";
    if (e.version !== 1) throw new SignatureInvalid(`unknown frame envelope version ${String(e.version).slice(0, 20)}`);
    if (typeof e.seq !== "number" || !Number.isSafeInteger(e.seq) || typeof e.msg_type !== "string" || !MSG_TYPES.has(e.msg_type) || typeof payloadB64 !== "string" || typeof e.signature_b64 !== "string") {
      throw new SignatureInvalid("a WebSocket frame envelope is malformed");
    }
    if (e.seq !== this.seq + 1) {
      throw new SignatureInvalid(
        `WebSocket frame ${e.seq} arrived where ${this.seq + 1} was due (dropped, reordered or replayed)`
      );
    }
    let payload;
    let signature;
    try {
      payload = b64decode(payloadB64);
      signature = b64decode(e.signature_b64, SIGNATURE_SIZE);
    } catch {
      throw new SignatureInvalid("a WebSocket frame envelope is malformed");
    }
    const signed = frameMessage(this.sessionId, this.upgradeNonce, e.seq, e.msg_type, payload);
    if (!await this.key.verify(signature, signed)) {
      throw new SignatureInvalid(`WebSocket frame ${e.seq}: the host's signature does not verify`);
    }
    this.seq = e.seq;
    return { msgType: e.msg_type, payload };
  }
};

// src/sdk/spake2.ts
var spake2_exports = {};
__export(spake2_exports, {
  ENTROPY_SIZE: () => ENTROPY_SIZE,
  ID_A: () => ID_A,
  ID_B: () => ID_B,
  MESSAGE_SIZE: () => MESSAGE_SIZE,
  Spake2A: () => Spake2A,
  clientProof: () => clientProof,
  confirmationKey: () => confirmationKey,
  passwordScalar: () => passwordScalar,
  serverProof: () => serverProof
});

// node_modules/@noble/hashes/hmac.js
var _HMAC = class {
  oHash;
  iHash;
  blockLen;
  outputLen;
  canXOF = false;
  finished = false;
  destroyed = false;
  constructor(hash, key) {
    ahash(hash);
    abytes(key, void 0, "key");
    this.iHash = hash.create();
    if (typeof this.iHash.update !== "function")
      throw new Error("expected Hash instance");
    this.blockLen = this.iHash.blockLen;
    this.outputLen = this.iHash.outputLen;
    const blockLen = this.blockLen;
    const pad = new Uint8Array(blockLen);
    pad.set(key.length > blockLen ? hash.create().update(key).digest() : key);
    for (let i = 0; i < pad.length; i++)
      pad[i] ^= 54;
    this.iHash.update(pad);
    this.oHash = hash.create();
    for (let i = 0; i < pad.length; i++)
      pad[i] ^= 54 ^ 92;
    this.oHash.update(pad);
    clean(pad);
  }
  update(buf) {
    aexists(this);
    this.iHash.update(buf);
    return this;
  }
  digestInto(out) {
    aexists(this);
    aoutput(out, this);
    this.finished = true;
    const buf = out.subarray(0, this.outputLen);
    this.iHash.digestInto(buf);
    this.oHash.update(buf);
    this.oHash.digestInto(buf);
    this.destroy();
  }
  digest() {
    const out = new Uint8Array(this.oHash.outputLen);
    this.digestInto(out);
    return out;
  }
  _cloneInto(to) {
    to ||= Object.create(Object.getPrototypeOf(this), {});
    const { oHash, iHash, finished, destroyed, blockLen, outputLen, canXOF } = this;
    to = to;
    to.finished = finished;
    to.destroyed = destroyed;
    to.blockLen = blockLen;
    to.outputLen = outputLen;
    to.canXOF = canXOF;
    to.oHash = oHash._cloneInto(to.oHash);
    to.iHash = iHash._cloneInto(to.iHash);
    return to;
  }
  clone() {
    return this._cloneInto();
  }
  destroy() {
    this.destroyed = true;
    this.oHash.destroy();
    this.iHash.destroy();
  }
};
var hmac = /* @__PURE__ */ (() => {
  const hmac_ = ((hash, key, message) => new _HMAC(hash, key).update(message).digest());
  hmac_.create = (hash, key) => new _HMAC(hash, key);
  return hmac_;
})();

// node_modules/@noble/hashes/hkdf.js
var HKDF_COUNTER = /* @__PURE__ */ Uint8Array.of(0);
var EMPTY_BUFFER = /* @__PURE__ */ Uint8Array.of();
function expand(hash, prk, info, length = 32, _recycled) {
  ahash(hash);
  anumber(length, "length");
  abytes(prk, void 0, "prk");
  const olen = hash.outputLen;
  if (prk.length < olen)
    throw new Error('"prk" must be at least HashLen octets');
  if (length > 255 * olen)
    throw new Error("Length must be <= 255*HashLen");
  const blocks = Math.ceil(length / olen);
  if (info === void 0)
    info = EMPTY_BUFFER;
  else
    abytes(info, void 0, "info");
  if (!blocks) {
    if (_recycled)
      clean(prk);
    return new Uint8Array();
  }
  const okm = _recycled && blocks === 1 ? prk : new Uint8Array(blocks * olen);
  const { iHash, oHash } = hmac.create(hash, prk);
  const T = _recycled ? prk : new Uint8Array(olen);
  const worker = blocks > 1 ? _recycled?.iHash || hash.create() : void 0;
  for (let counter = 0; counter < blocks - 1; counter++) {
    HKDF_COUNTER[0] = counter + 1;
    const iWork = iHash._cloneInto(worker);
    if (counter)
      iWork.update(T);
    iWork.update(info).update(HKDF_COUNTER).digestInto(T);
    oHash._cloneInto(worker).update(T).digestInto(T);
    okm.set(T, olen * counter);
  }
  HKDF_COUNTER[0] = blocks;
  if (blocks > 1)
    iHash.update(T);
  iHash.update(info).update(HKDF_COUNTER).digestInto(T);
  oHash.update(T).digestInto(T);
  okm.set(T, olen * (blocks - 1));
  iHash.destroy();
  oHash.destroy();
  worker?.destroy();
  if (T !== okm)
    clean(T);
  clean(HKDF_COUNTER);
  if (length === okm.length)
    return okm;
  const res = okm.slice(0, length);
  clean(okm);
  return res;
}
var hkdf = (hash, ikm, salt, info, length) => {
  ahash(hash);
  if (salt === void 0)
    salt = new Uint8Array(hash.outputLen);
  const HMAC = hmac.create(hash, salt).update(ikm);
  return expand(hash, HMAC.digest(), info, length, HMAC);
};

// src/sdk/spake2.ts
var Point = ed25519.Point;
var L = Point.CURVE().n;
var EMPTY = new Uint8Array(0);
var ID_A = utf8("vibe-kanban-browser");
var ID_B = utf8("vibe-kanban-server");
var MESSAGE_SIZE = 33;
var ENTROPY_SIZE = 64;
var M = Point.fromHex("15cfd18e385952982b6a8f8c7854963b58e34388c8e6dae891db756481a02312");
var N = Point.fromHex("f04f2e7eb734b2a8f8b472eaf9c3c632576ac64aea650b496a8a20ff00e583c3");
var bigFromBE = (bytes) => bytes.reduce((acc, b) => acc << 8n | BigInt(b), 0n);
var mod2 = (a, m) => (a % m + m) % m;
var passwordScalar = (pw) => mod2(bigFromBE(hkdf(sha256, pw, EMPTY, utf8("SPAKE2 pw"), 48)), L);
var Spake2A = class {
  message;
  pw;
  w;
  x;
  used = false;
  constructor(code, entropy) {
    this.pw = utf8(code);
    this.w = passwordScalar(this.pw);
    const random = entropy ?? crypto.getRandomValues(new Uint8Array(ENTROPY_SIZE));
    if (random.length !== ENTROPY_SIZE) throw new Error(`SPAKE2 needs ${ENTROPY_SIZE} bytes of entropy`);
    this.x = mod2(bigFromBE(random), L);
    if (this.x === 0n) throw new Error("zero scalar");
    const element = Point.BASE.multiply(this.x).add(M.multiply(this.w));
    this.message = concat(utf8("A"), element.toBytes());
  }
  /** The shared key from the host's message; throws on a malformed or wrong-side one. */
  finish(inbound) {
    if (this.used) throw new Error("finish() was already called");
    this.used = true;
    if (inbound.length !== MESSAGE_SIZE || inbound[0] !== 66) {
      throw new Error("the host's SPAKE2 message is not side B's 33 bytes");
    }
    const peer = Point.fromBytes(inbound.subarray(1), false);
    if (peer.is0() || !peer.isTorsionFree()) throw new Error("the host's SPAKE2 element is not in the group");
    const K = peer.subtract(N.multiply(this.w)).multiply(this.x);
    return sha256(
      concat(sha256(this.pw), sha256(ID_A), sha256(ID_B), this.message.subarray(1), inbound.subarray(1), K.toBytes())
    );
  }
};
var confirmationKey = (sharedKey) => hkdf(sha256, sharedKey, EMPTY, utf8("key-confirmation"), 32);
function uuidBytes(id2) {
  const clean2 = id2.toLowerCase().replace(/-/g, "");
  if (!/^[0-9a-f]{32}$/.test(clean2)) throw new Error("not a UUID");
  return unhex(clean2);
}
var clientProof = (ck, enrollmentId, clientPublic) => hmac(sha256, ck, concat(utf8("vk-spake2-client-proof-v2"), uuidBytes(enrollmentId), clientPublic));
var serverProof = (ck, enrollmentId, clientPublic, serverPublic) => hmac(
  sha256,
  ck,
  concat(utf8("vk-spake2-server-proof-v2"), uuidBytes(enrollmentId), clientPublic, serverPublic)
);

// src/sdk/rtc/messages.ts
var messages_exports = {};
__export(messages_exports, {
  EXTENSIONS: () => EXTENSIONS,
  MAX_HEADERS: () => MAX_HEADERS,
  MAX_ID: () => MAX_ID,
  MAX_PATH: () => MAX_PATH,
  METHODS: () => METHODS,
  MessageError: () => MessageError,
  WS_MSG_TYPES: () => WS_MSG_TYPES,
  decodeMessage: () => decodeMessage,
  encodeMessage: () => encodeMessage
});
var METHODS = /* @__PURE__ */ new Set(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]);
var WS_MSG_TYPES = /* @__PURE__ */ new Set(["text", "binary", "ping", "pong", "close"]);
var EXTENSIONS = /* @__PURE__ */ new Set(["stream", "upload", "cancel"]);
var MAX_ID = 64;
var MAX_PATH = 8192;
var MAX_HEADERS = 100;
var MessageError = class extends Error {
  name = "MessageError";
};
function str(obj, name, limit, optional = false) {
  const value = obj[name];
  if ((value === void 0 || value === null) && optional) return null;
  if (typeof value !== "string") throw new MessageError(`${name} must be a string`);
  if ([...value].length > limit) throw new MessageError(`${name} too long`);
  return value;
}
function id(obj, name = "id") {
  const value = str(obj, name, MAX_ID);
  if (!value) throw new MessageError(`${name} is empty`);
  return value;
}
function int(obj, name, low, high, optional = false) {
  const value = obj[name];
  if ((value === void 0 || value === null) && optional) return null;
  if (typeof value !== "number" || !Number.isInteger(value) || value < low || value > high) {
    throw new MessageError(`${name} must be an integer in ${low}..${high}`);
  }
  return value;
}
function b64(obj, name) {
  const value = obj[name];
  if (value === void 0 || value === null) return new Uint8Array(0);
  if (typeof value !== "string") throw new MessageError(`${name} must be a string`);
  try {
    return b64decode(value);
  } catch {
    throw new MessageError(`${name} is not base64`);
  }
}
function flag(obj, name) {
  const value = Object.hasOwn(obj, name) ? obj[name] : false;
  if (typeof value !== "boolean") throw new MessageError(`${name} must be a boolean`);
  return value;
}
var ASCII = /^[\x00-\x7f]*$/;
function headers(obj, name = "headers") {
  const value = obj[name];
  if (value === void 0 || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value) || Object.keys(value).length > MAX_HEADERS) {
    throw new MessageError(`${name} must be an object of at most ${MAX_HEADERS} names`);
  }
  const out = /* @__PURE__ */ Object.create(null);
  for (const [key, values] of Object.entries(value)) {
    if (!key || key.length > 256 || !ASCII.test(key)) throw new MessageError("bad header name");
    if (!Array.isArray(values) || values.length > MAX_HEADERS) throw new MessageError("header values must be a list of strings");
    for (const one of values) {
      if (typeof one !== "string" || [...one].length > MAX_PATH || one.includes("\r") || one.includes("\n")) {
        throw new MessageError("header values must be a list of strings");
      }
    }
    (out[key.toLowerCase()] ??= []).push(...values);
  }
  return out;
}
function path(obj) {
  const value = str(obj, "path", MAX_PATH);
  if (!value.startsWith("/") || !ASCII.test(value) || /[ \r\n\t]/.test(value)) {
    throw new MessageError("path must be an absolute path and query");
  }
  return value;
}
var DECODERS = {
  http_request(obj) {
    const method = str(obj, "method", 16);
    if (!method || !/^[A-Za-z]+$/.test(method)) throw new MessageError("bad method");
    return { type: "http_request", id: id(obj), method: method.toUpperCase(), path: path(obj), headers: headers(obj), body: b64(obj, "body_b64"), stream: flag(obj, "stream"), upload: flag(obj, "upload") };
  },
  http_response(obj) {
    return { type: "http_response", id: id(obj), status: int(obj, "status", 100, 999), headers: headers(obj), body: b64(obj, "body_b64"), stream: flag(obj, "stream") };
  },
  ws_open(obj) {
    return { type: "ws_open", conn_id: id(obj, "conn_id"), path: path(obj), protocols: str(obj, "protocols", 1024, true), headers: headers(obj) };
  },
  ws_opened(obj) {
    return { type: "ws_opened", conn_id: id(obj, "conn_id"), selected_protocol: str(obj, "selected_protocol", 256, true) };
  },
  ws_frame(obj) {
    const msgType = str(obj, "msg_type", 16);
    if (!WS_MSG_TYPES.has(msgType)) throw new MessageError("bad msg_type");
    return { type: "ws_frame", conn_id: id(obj, "conn_id"), msg_type: msgType, payload: b64(obj, "payload_b64") };
  },
  ws_close(obj) {
    return { type: "ws_close", conn_id: id(obj, "conn_id"), code: int(obj, "code", 1e3, 4999, true), reason: str(obj, "reason", 123, true) };
  },
  ws_error(obj) {
    return { type: "ws_error", conn_id: id(obj, "conn_id"), error: str(obj, "error", 1024) };
  },
  hello(obj) {
    const value = obj.extensions;
    if (!Array.isArray(value) || value.length > 16 || !value.every((v) => typeof v === "string")) {
      throw new MessageError("extensions must be a list of strings");
    }
    return { type: "hello", extensions: new Set(value.filter((v) => EXTENSIONS.has(v))) };
  },
  body(obj) {
    return { type: "body", id: id(obj), data: b64(obj, "data_b64") };
  },
  body_end(obj) {
    return { type: "body_end", id: id(obj), error: str(obj, "error", 1024, true) };
  },
  credit(obj) {
    return { type: "credit", id: id(obj), bytes: int(obj, "bytes", 1, 2 ** 30) };
  },
  cancel(obj) {
    return { type: "cancel", id: id(obj), reason: str(obj, "reason", 1024, true) };
  }
};
function decodeMessage(data) {
  let obj;
  try {
    obj = JSON.parse(fromUtf8(data));
  } catch {
    throw new MessageError("not UTF-8 JSON");
  }
  if (typeof obj !== "object" || obj === null || Array.isArray(obj)) throw new MessageError("not a JSON object");
  const kind = obj.type;
  const decoder2 = typeof kind === "string" && Object.hasOwn(DECODERS, kind) ? DECODERS[kind] : void 0;
  if (!decoder2) throw new MessageError("unknown message type");
  return decoder2(obj);
}
function encodeMessage(message) {
  let obj;
  switch (message.type) {
    case "http_request":
      obj = { type: message.type, id: message.id, method: message.method, path: message.path, headers: message.headers };
      if (message.body.length) obj.body_b64 = b64encode(message.body);
      if (message.stream) obj.stream = true;
      if (message.upload) obj.upload = true;
      break;
    case "http_response":
      obj = { type: message.type, id: message.id, status: message.status, headers: message.headers };
      if (message.body.length) obj.body_b64 = b64encode(message.body);
      if (message.stream) obj.stream = true;
      break;
    case "ws_open":
      obj = { type: message.type, conn_id: message.conn_id, path: message.path };
      if (message.protocols) obj.protocols = message.protocols;
      if (Object.keys(message.headers).length) obj.headers = message.headers;
      break;
    case "ws_opened":
      obj = { type: message.type, conn_id: message.conn_id };
      if (message.selected_protocol) obj.selected_protocol = message.selected_protocol;
      break;
    case "ws_frame":
      obj = { type: message.type, conn_id: message.conn_id, msg_type: message.msg_type };
      if (message.payload.length) obj.payload_b64 = b64encode(message.payload);
      break;
    case "ws_close":
      obj = { type: message.type, conn_id: message.conn_id };
      if (message.code !== null) obj.code = message.code;
      if (message.reason) obj.reason = message.reason;
      break;
    case "ws_error":
      obj = { type: message.type, conn_id: message.conn_id, error: message.error };
      break;
    case "hello":
      obj = { type: message.type, extensions: [...message.extensions].sort() };
      break;
    case "body":
      obj = { type: message.type, id: message.id, data_b64: b64encode(message.data) };
      break;
    case "body_end":
      obj = { type: message.type, id: message.id };
      if (message.error) obj.error = message.error;
      break;
    case "credit":
      obj = { type: message.type, id: message.id, bytes: message.bytes };
      break;
    case "cancel":
      obj = { type: message.type, id: message.id };
      if (message.reason) obj.reason = message.reason;
      break;
  }
  return utf8(JSON.stringify(obj));
}

// src/sdk/rtc/chunking.ts
var chunking_exports = {};
__export(chunking_exports, {
  CHUNK_PAYLOAD: () => CHUNK_PAYLOAD,
  ChunkError: () => ChunkError,
  LAST: () => LAST,
  MORE: () => MORE,
  Reassembler: () => Reassembler,
  splitMessage: () => splitMessage
});
var CHUNK_PAYLOAD = 61440;
var MORE = 6;
var LAST = 7;
var ChunkError = class extends Error {
  name = "ChunkError";
};
function splitMessage(message, chunkPayload = CHUNK_PAYLOAD) {
  if (!(chunkPayload > 0 && chunkPayload <= CHUNK_PAYLOAD)) throw new RangeError(`chunkPayload must be in 1..${CHUNK_PAYLOAD}`);
  const chunks = [];
  for (let start = 0; ; start += chunkPayload) {
    const stop = start + chunkPayload;
    const last = stop >= message.length;
    const part = message.subarray(start, last ? message.length : stop);
    const chunk = new Uint8Array(part.length + 1);
    chunk[0] = last ? LAST : MORE;
    chunk.set(part, 1);
    chunks.push(chunk);
    if (last) return chunks;
  }
}
var Reassembler = class {
  constructor(maxMessage) {
    this.maxMessage = maxMessage;
  }
  maxMessage;
  parts = [];
  size = 0;
  get pending() {
    return this.size;
  }
  /** The complete message `chunk` ends, or null while more are to come. */
  feed(chunk) {
    if (chunk.length === 0) throw new ChunkError("empty chunk (no header byte)");
    if (chunk.length - 1 > CHUNK_PAYLOAD) throw new ChunkError(`chunk over ${CHUNK_PAYLOAD} payload bytes`);
    this.size += chunk.length - 1;
    if (this.size > this.maxMessage) throw new ChunkError(`message over ${this.maxMessage} bytes`);
    this.parts.push(chunk.subarray(1));
    if (!(chunk[0] & 1)) return null;
    const message = new Uint8Array(this.size);
    let at = 0;
    for (const part of this.parts) {
      message.set(part, at);
      at += part.length;
    }
    this.parts = [];
    this.size = 0;
    return message;
  }
};

// src/sdk/rtc/peer.ts
var CHANNEL_LABEL = "relay";
var CHUNK_BODY = 32 * 1024;
var HIGH_WATER = 1 << 20;
var ChannelClosed = class extends Error {
  name = "ChannelClosed";
};
var NotDelivered = class extends ChannelClosed {
  name = "NotDelivered";
};
var ChannelTimeout = class extends Error {
  name = "ChannelTimeout";
};
var NegotiationFailed = class extends Error {
  name = "NegotiationFailed";
};
var DirectChannel = class _DirectChannel {
  constructor(pc, channel, limits) {
    this.pc = pc;
    this.channel = channel;
    this.limits = limits;
    this.joiner = new Reassembler(limits.maxMessage);
    channel.binaryType = "arraybuffer";
    channel.bufferedAmountLowThreshold = HIGH_WATER / 2;
    channel.onmessage = (event) => this.onChunk(event.data);
    channel.onclose = () => this.ended("the data channel closed");
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "failed" || pc.connectionState === "closed") this.ended(`the peer connection ${pc.connectionState}`);
    };
  }
  pc;
  channel;
  limits;
  joiner;
  pending = /* @__PURE__ */ new Map();
  bodies = /* @__PURE__ */ new Map();
  sockets = /* @__PURE__ */ new Map();
  credits = /* @__PURE__ */ new Map();
  sending = Promise.resolve();
  /** The extensions the host's hello named (none until it answers ours). */
  hostExtensions = /* @__PURE__ */ new Set();
  helloArrived = () => void 0;
  hello = new Promise((resolve) => this.helloArrived = resolve);
  closedReason = null;
  /** The handshake's certificate was compared with the signed answer's fingerprints
   *  (false where the browser does not show it: its own check against the SDP stands). */
  certificateChecked = false;
  closeListeners = [];
  /** A peer connection, its channel and the complete offer SDP (candidates gathered for
   *  at most `limits.gatherMs`; whatever came by then is offered). */
  static async offer(iceServers, limits) {
    if (typeof RTCPeerConnection === "undefined") throw new NegotiationFailed("this browser has no WebRTC");
    const pc = new RTCPeerConnection({ iceServers });
    try {
      const dc = pc.createDataChannel(CHANNEL_LABEL, { ordered: true });
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc, limits.gatherMs);
      const sdp = pc.localDescription?.sdp ?? "";
      if (!/^a=candidate:/m.test(sdp)) throw new NegotiationFailed("no ICE candidate gathered in time");
      return { channel: new _DirectChannel(pc, dc, limits), sdp };
    } catch (err) {
      pc.close();
      throw err instanceof NegotiationFailed ? err : new NegotiationFailed(`cannot make an offer: ${err.message}`);
    }
  }
  /** Use an answer whose signature the caller has checked: its DTLS fingerprints are the
   *  host's. Waits for the channel to open, then checks the certificate the handshake
   *  presented against them too (where the browser shows it). */
  async accept(answerSdp, fingerprints) {
    try {
      await this.pc.setRemoteDescription({ type: "answer", sdp: answerSdp });
    } catch (err) {
      throw new NegotiationFailed(`the browser refused the answer: ${err.message}`);
    }
    await this.opened();
    await this.checkCertificate(fingerprints);
    await this.send({ type: "hello", extensions: EXTENSIONS });
  }
  /** Whether the host's hello named `extension`, waiting at most `waitMs` for it. */
  async offers(extension, waitMs = 2e3) {
    if (!this.hostExtensions.has(extension) && this.closedReason === null) {
      let timer;
      await Promise.race([this.hello, new Promise((resolve) => timer = setTimeout(resolve, waitMs))]);
      clearTimeout(timer);
    }
    return this.hostExtensions.has(extension);
  }
  /** Tell the host a call is given up (it stops its local request), where it said it can. */
  cancel(id2) {
    if (this.isOpen && this.hostExtensions.has("cancel")) this.send({ type: "cancel", id: id2, reason: null }).catch(() => void 0);
  }
  opened() {
    if (this.channel.readyState === "open") return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new NegotiationFailed("the data channel did not open in time")), this.limits.openMs);
      this.channel.addEventListener("open", () => {
        clearTimeout(timer);
        resolve();
      });
      this.onClose((reason) => {
        clearTimeout(timer);
        reject(new NegotiationFailed(reason));
      });
    });
  }
  async checkCertificate(fingerprints) {
    const transport = this.pc.sctp?.transport;
    const certificates = transport?.getRemoteCertificates?.() ?? [];
    const first = certificates[0];
    if (!first) return;
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", first));
    const hex2 = Array.from(digest, (b) => b.toString(16).padStart(2, "0").toUpperCase()).join(":");
    if (!fingerprints.has(`sha-256 ${hex2}`)) {
      this.close("the host's DTLS certificate is not the one its signed answer names");
      throw new NegotiationFailed("the host's DTLS certificate is not the one its signed answer names");
    }
    this.certificateChecked = true;
  }
  get isOpen() {
    return this.closedReason === null && this.channel.readyState === "open";
  }
  get reason() {
    return this.closedReason;
  }
  onClose(listener) {
    if (this.closedReason !== null) listener(this.closedReason);
    else this.closeListeners.push(listener);
  }
  close(reason = "closed by this page") {
    this.ended(reason);
  }
  ended(reason) {
    if (this.closedReason !== null) return;
    this.closedReason = reason;
    try {
      this.channel.close();
    } catch {
    }
    this.pc.close();
    const err = new ChannelClosed(`WebRTC: ${reason}`);
    for (const waiter of this.pending.values()) waiter.reject(err);
    this.pending.clear();
    for (const body of this.bodies.values()) {
      try {
        body.error(err);
      } catch {
      }
    }
    this.bodies.clear();
    for (const credit of this.credits.values()) credit.wake();
    for (const deliver of [...this.sockets.values()]) deliver({ type: "ws_close", conn_id: "", code: 1006, reason: "WebRTC disconnected" });
    this.sockets.clear();
    for (const listener of this.closeListeners.splice(0)) listener(reason);
  }
  // --------------------------------------------------------------- receiving
  onChunk(data) {
    if (this.closedReason !== null) return;
    let message;
    try {
      const chunk = typeof data === "string" ? new TextEncoder().encode(data) : new Uint8Array(data);
      const joined = this.joiner.feed(chunk);
      if (joined === null) return;
      message = decodeMessage(joined);
    } catch (err) {
      if (err instanceof ChunkError || err instanceof MessageError) {
        this.close(`bad message from the host: ${err.message}`);
        return;
      }
      throw err;
    }
    this.dispatch(message);
  }
  dispatch(message) {
    switch (message.type) {
      case "http_response": {
        const waiter = this.pending.get(message.id);
        if (!waiter) return;
        this.pending.delete(message.id);
        try {
          waiter.resolve(this.response(message, waiter.signal));
        } catch (err) {
          waiter.reject(err);
        }
        return;
      }
      case "body": {
        const body = this.bodies.get(message.id);
        if (!body) return;
        body.enqueue(message.data);
        if ((body.desiredSize ?? 0) < 0) this.close("a streamed body was not read fast enough");
        return;
      }
      case "body_end": {
        const body = this.bodies.get(message.id);
        if (!body) return;
        this.bodies.delete(message.id);
        if (message.error) body.error(new ChannelClosed(`the host could not finish the body: ${message.error}`));
        else body.close();
        return;
      }
      case "credit": {
        const credit = this.credits.get(message.id);
        if (!credit) return;
        credit.available += message.bytes;
        credit.wake();
        return;
      }
      case "hello":
        this.hostExtensions = message.extensions;
        this.helloArrived();
        return;
      case "cancel": {
        const err = new ChannelClosed(`the host cancelled the answer: ${message.reason ?? "no reason given"}`);
        const waiter = this.pending.get(message.id);
        if (waiter) {
          this.pending.delete(message.id);
          waiter.reject(err);
        }
        const body = this.bodies.get(message.id);
        if (body) {
          this.bodies.delete(message.id);
          body.error(err);
        }
        return;
      }
      case "ws_opened":
      case "ws_frame":
      case "ws_close":
      case "ws_error":
        this.sockets.get(message.conn_id)?.(message);
        return;
      default:
        return;
    }
  }
  /** The answer as a Response, for RelayClient to check like a relayed one. */
  response(message, signal) {
    const headers2 = new Headers();
    for (const [name, values] of Object.entries(message.headers)) {
      for (const value of values) {
        try {
          headers2.append(name, value);
        } catch {
        }
      }
    }
    if (message.status < 200 || message.status > 599) {
      throw new ChannelClosed(`the host answered with status ${message.status} over WebRTC`);
    }
    const nullBody = message.status === 204 || message.status === 205 || message.status === 304;
    let body = null;
    if (message.stream) {
      const id2 = message.id;
      body = new ReadableStream(
        {
          start: (controller) => {
            this.bodies.set(id2, controller);
            signal?.addEventListener(
              "abort",
              () => {
                if (this.bodies.get(id2) !== controller) return;
                this.bodies.delete(id2);
                this.cancel(id2);
                controller.error(signal.reason instanceof Error ? signal.reason : new DOMException("aborted", "AbortError"));
              },
              { once: true }
            );
          },
          cancel: () => {
            if (this.bodies.delete(id2)) this.cancel(id2);
          }
        },
        new CountQueuingStrategy({ highWaterMark: this.limits.maxQueue })
      );
    } else if (message.body.length && !nullBody) {
      body = new Uint8Array(message.body);
    }
    return new Response(nullBody ? null : body, { status: message.status, headers: headers2 });
  }
  // --------------------------------------------------------------- sending
  /** Send one message (its chunks in order; messages in call order), pausing while the
   *  channel's buffer is over the high-water mark. */
  send(message) {
    const chunks = splitMessage(encodeMessage(message));
    const done = this.sending.then(async () => {
      for (const chunk of chunks) {
        if (!this.isOpen) throw new ChannelClosed(`WebRTC: ${this.closedReason ?? "the data channel is not open"}`);
        if (this.channel.bufferedAmount > HIGH_WATER) await this.drained();
        this.channel.send(new Uint8Array(chunk));
      }
    });
    this.sending = done.catch(() => void 0);
    return done;
  }
  drained() {
    return new Promise((resolve) => {
      const done = () => {
        this.channel.removeEventListener("bufferedamountlow", done);
        resolve();
      };
      this.channel.addEventListener("bufferedamountlow", done);
      this.onClose(done);
    });
  }
  /** One http_request; the answer's head (a Response) or ChannelTimeout/ChannelClosed.
   *  `upload`: the body streams in body messages, never more than the host's credit
   *  ahead (NotDelivered when it does not get to its end); the wait for the head starts
   *  once it is all out. A call given up (aborted, timed out) is cancelled on the host. */
  fetch(request, headTimeoutMs, signal, upload = false) {
    const id2 = crypto.randomUUID();
    return new Promise((resolve, reject) => {
      let timer;
      const startTimer = () => {
        timer = setTimeout(() => {
          this.pending.delete(id2);
          this.cancel(id2);
          reject(new ChannelTimeout(`no answer over WebRTC within ${headTimeoutMs} ms`));
        }, headTimeoutMs);
      };
      const abort = () => {
        clearTimeout(timer);
        if (this.pending.delete(id2)) this.cancel(id2);
        this.credits.get(id2)?.wake();
        reject(signal?.reason instanceof Error ? signal.reason : new DOMException("aborted", "AbortError"));
      };
      if (signal?.aborted) return abort();
      signal?.addEventListener("abort", abort, { once: true });
      const settled = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", abort);
        this.credits.get(id2)?.wake();
      };
      this.pending.set(id2, {
        signal,
        resolve: (response) => {
          settled();
          resolve(response);
        },
        reject: (err) => {
          settled();
          reject(err);
        }
      });
      const fail = (err) => {
        const waiter = this.pending.get(id2);
        if (!waiter) return;
        this.pending.delete(id2);
        waiter.reject(err);
      };
      if (!upload) {
        startTimer();
        this.send({ type: "http_request", id: id2, ...request, stream: true, upload: false }).catch(fail);
        return;
      }
      const credit = { available: 0, wake: () => void 0 };
      this.credits.set(id2, credit);
      this.send({ type: "http_request", id: id2, ...request, body: new Uint8Array(0), stream: true, upload: true }).then(() => this.sendBody(id2, request.body, credit, headTimeoutMs)).then((complete) => {
        if (complete && this.pending.has(id2)) startTimer();
      }).catch((err) => {
        this.cancel(id2);
        fail(err instanceof NotDelivered ? err : new NotDelivered(`WebRTC: the upload broke off: ${err.message}`));
      }).finally(() => this.credits.delete(id2));
    });
  }
  /** The body in body messages within the host's credit; false when the call ended first
   *  (an early answer, an abort), true once body_end is out. */
  async sendBody(id2, body, credit, waitMs) {
    for (let start = 0; start < body.length; start += CHUNK_BODY) {
      const piece = body.subarray(start, Math.min(start + CHUNK_BODY, body.length));
      while (credit.available < piece.length) {
        if (!this.pending.has(id2)) return false;
        if (!this.isOpen) throw new NotDelivered(`WebRTC: ${this.closedReason ?? "the data channel closed"}`);
        const more = await new Promise((resolve) => {
          const timer = setTimeout(() => resolve(false), waitMs);
          credit.wake = () => {
            clearTimeout(timer);
            resolve(true);
          };
        });
        if (!more) throw new NotDelivered(`WebRTC: no credit from the host within ${waitMs} ms`);
      }
      if (!this.pending.has(id2)) return false;
      credit.available -= piece.length;
      await this.send({ type: "body", id: id2, data: piece.slice() });
    }
    if (!this.pending.has(id2)) return false;
    await this.send({ type: "body_end", id: id2, error: null });
    return true;
  }
  /** Register a WebSocket's message handler; returns its conn_id and a remover. */
  socket(deliver) {
    const connId = crypto.randomUUID();
    if (this.closedReason !== null) {
      queueMicrotask(() => deliver({ type: "ws_close", conn_id: connId, code: 1006, reason: "WebRTC disconnected" }));
    } else {
      this.sockets.set(connId, deliver);
    }
    return { connId, remove: () => this.sockets.delete(connId) };
  }
};
function gathered(pc, ms) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

// src/sdk/rtc/sdp.ts
var sdp_exports = {};
__export(sdp_exports, {
  MAX_SDP: () => MAX_SDP,
  SdpError: () => SdpError,
  dtlsFingerprints: () => dtlsFingerprints
});
var MAX_SDP = 64 * 1024;
var FINGERPRINT = /^a=fingerprint:(\S+) ([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})+)\s*$/;
var SdpError = class extends Error {
  name = "SdpError";
};
function dtlsFingerprints(sdp) {
  if (sdp.length > MAX_SDP) throw new SdpError("SDP too long");
  const found = /* @__PURE__ */ new Set();
  for (const line of sdp.split(/\r\n|\r|\n/)) {
    const match = FINGERPRINT.exec(line);
    if (match) found.add(`${match[1].toLowerCase()} ${match[2].toUpperCase()}`);
  }
  if (found.size === 0) throw new SdpError("SDP names no DTLS fingerprint");
  return found;
}

// src/sdk/rtc/socket.ts
var CONNECTING = 0;
var OPEN = 1;
var CLOSED = 3;
var ChannelWebSocket = class {
  constructor(channel, prepare, fallback, openTimeoutMs) {
    this.channel = channel;
    this.fallback = fallback;
    this.openTimeoutMs = openTimeoutMs;
    void this.open(prepare);
  }
  channel;
  fallback;
  openTimeoutMs;
  onopen = null;
  onmessage = null;
  onclose = null;
  onerror = null;
  /** "direct" once open over the channel, "relayed" once it fell back. */
  path = null;
  state = CONNECTING;
  inner = null;
  connId = "";
  remove = () => void 0;
  get readyState() {
    return this.inner ? this.inner.readyState : this.state;
  }
  async open(prepare) {
    let prepared;
    try {
      prepared = await prepare();
    } catch {
      this.toRelay();
      return;
    }
    if (this.state !== CONNECTING) return;
    let timer;
    const registered = this.channel.socket((message) => {
      switch (message.type) {
        case "ws_opened":
          if (this.state !== CONNECTING) return;
          clearTimeout(timer);
          this.state = OPEN;
          this.path = "direct";
          this.onopen?.();
          return;
        case "ws_frame":
          if (this.state !== OPEN) return;
          if (message.msg_type === "text") this.onmessage?.({ data: new TextDecoder().decode(message.payload) });
          else if (message.msg_type === "binary") this.onmessage?.({ data: message.payload });
          return;
        case "ws_close":
        case "ws_error":
          clearTimeout(timer);
          if (this.state === CONNECTING) {
            this.toRelay();
            return;
          }
          if (message.type === "ws_error") this.onerror?.(new Error(message.error));
          this.finish(message.type === "ws_close" ? message.code ?? 1005 : 1006, message.type === "ws_close" ? message.reason ?? "" : message.error);
          return;
      }
    });
    this.connId = registered.connId;
    this.remove = registered.remove;
    timer = setTimeout(() => {
      if (this.state === CONNECTING) this.toRelay();
    }, this.openTimeoutMs);
    this.channel.send({ type: "ws_open", conn_id: this.connId, path: prepared.path, protocols: null, headers: prepared.headers }).catch(() => {
      clearTimeout(timer);
      if (this.state === CONNECTING) this.toRelay();
    });
  }
  toRelay() {
    this.remove();
    if (this.state !== CONNECTING || this.inner) return;
    const inner = this.fallback();
    this.inner = inner;
    this.path = "relayed";
    inner.onopen = () => this.onopen?.();
    inner.onmessage = (ev) => this.onmessage?.(ev);
    inner.onclose = (ev) => this.onclose?.(ev);
    inner.onerror = (err) => this.onerror?.(err);
  }
  finish(code, reason) {
    if (this.state === CLOSED) return;
    this.state = CLOSED;
    this.remove();
    this.onclose?.({ code, reason });
  }
  send(data) {
    if (this.inner) return this.inner.send(data);
    if (this.state !== OPEN) throw new Error("the WebSocket is not open");
    const frame = typeof data === "string" ? { type: "ws_frame", conn_id: this.connId, msg_type: "text", payload: utf8(data) } : { type: "ws_frame", conn_id: this.connId, msg_type: "binary", payload: data };
    this.channel.send(frame).catch((err) => {
      this.onerror?.(err);
      this.finish(1006, "WebRTC disconnected");
    });
  }
  close(code = 1e3, reason = "") {
    if (this.inner) return this.inner.close(code, reason);
    if (this.state === CLOSED) return;
    const wasOpen = this.state === OPEN;
    if (wasOpen || this.connId) {
      this.channel.send({ type: "ws_close", conn_id: this.connId, code, reason: reason || null }).catch(() => void 0);
    }
    this.finish(code, reason);
  }
};

// src/sdk/store.ts
var publicPart = (record) => ({
  hostId: record.hostId,
  relayUrl: record.relayUrl,
  clientId: record.clientId,
  clientName: record.clientName,
  hostPublicKeyB64: record.hostPublicKeyB64,
  signingSessionId: record.signingSessionId,
  keyKind: record.keyKind,
  pairedAt: record.pairedAt
});
var DB_NAME = "agent-relay";
var DB_VERSION = 1;
var STORE = "pairings";
function promised(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error("IndexedDB request failed"));
  });
}
var IndexedDbPairingStore = class {
  constructor(factory = globalThis.indexedDB, name = DB_NAME) {
    this.factory = factory;
    this.name = name;
  }
  factory;
  name;
  db = null;
  open() {
    this.db ??= new Promise((resolve, reject) => {
      if (!this.factory) {
        reject(new Error("this browser has no IndexedDB"));
        return;
      }
      const request = this.factory.open(this.name, DB_VERSION);
      request.onupgradeneeded = () => {
        request.result.createObjectStore(STORE, { keyPath: ["relayUrl", "hostId"] });
      };
      request.onsuccess = () => {
        const db = request.result;
        db.onversionchange = () => {
          db.close();
          this.db = null;
        };
        db.onclose = () => {
          this.db = null;
        };
        resolve(db);
      };
      request.onerror = () => {
        this.db = null;
        reject(request.error ?? new Error("cannot open IndexedDB"));
      };
      request.onblocked = () => void 0;
    });
    return this.db;
  }
  async tx(mode, run) {
    const db = await this.open();
    const transaction = db.transaction(STORE, mode);
    const result = promised(run(transaction.objectStore(STORE)));
    await new Promise((resolve, reject) => {
      transaction.oncomplete = () => resolve();
      transaction.onerror = () => reject(transaction.error ?? new Error("IndexedDB transaction failed"));
      transaction.onabort = () => reject(transaction.error ?? new Error("IndexedDB transaction aborted"));
    });
    return result;
  }
  async get(relayUrl, hostId) {
    return await this.tx("readonly", (s) => s.get([relayUrl, hostId]));
  }
  async put(record) {
    await this.tx("readwrite", (s) => s.put(record));
  }
  async delete(relayUrl, hostId) {
    await this.tx("readwrite", (s) => s.delete([relayUrl, hostId]));
  }
  async list(relayUrl) {
    const all = await this.tx("readonly", (s) => s.getAll());
    return all.filter((record) => record.relayUrl === relayUrl);
  }
};

// src/sdk/verify.ts
var verify_exports = {};
__export(verify_exports, {
  MAX_NONCE_LENGTH: () => MAX_NONCE_LENGTH,
  StreamVerifier: () => StreamVerifier,
  parseHead: () => parseHead,
  verifiedStream: () => verifiedStream,
  verifyHead: () => verifyHead
});
var MAX_NONCE_LENGTH = 128;
function parseHead(status, headers2, signsHeaders = false) {
  const ts = headers2.get(RESP_TS);
  const responseNonce = headers2.get(RESP_NONCE);
  const signatureB64 = headers2.get(RESP_SIGNATURE);
  if (ts === null || responseNonce === null || signatureB64 === null) {
    throw new SignatureInvalid(`the answer (${status}) carries no host signature`);
  }
  if (!/^[0-9]{1,20}$/.test(ts)) throw new SignatureInvalid("the answer's signature timestamp is malformed");
  if (responseNonce.length === 0 || responseNonce.length > MAX_NONCE_LENGTH || responseNonce.includes("|") || !/^[\x20-\x7e]+$/.test(responseNonce)) {
    throw new SignatureInvalid("the answer's nonce is malformed");
  }
  let signature;
  try {
    signature = b64decode(signatureB64, SIGNATURE_SIZE);
  } catch {
    throw new SignatureInvalid("the answer's signature is malformed");
  }
  const mode = headers2.get(RESP_BODY_SIGNING);
  if (mode !== null && mode !== STREAM_SIGNING_V1) {
    throw new SignatureInvalid(`unknown response body signing ${JSON.stringify(mode.slice(0, 40))}`);
  }
  const signedHeaders2 = new Headers();
  for (const name of [RESP_TS, RESP_NONCE, RESP_SIGNATURE, RESP_BODY_SIGNING]) {
    const value = headers2.get(name);
    if (value !== null) signedHeaders2.set(name, value);
  }
  let hHeaders = null;
  const listed = headers2.get(RESP_HEADERS);
  if (listed === null && signsHeaders) throw new SignatureInvalid(`the answer (${status}) does not sign its headers`);
  if (listed !== null) {
    let names;
    try {
      names = parseHeaderList(listed);
    } catch (err) {
      throw new SignatureInvalid(`the answer's ${RESP_HEADERS}: ${err.message}`);
    }
    try {
      hHeaders = headersHash(names, (name) => headers2.get(name));
    } catch {
      throw new SignatureInvalid("the answer's headers are not byte strings");
    }
    for (const name of names) {
      const value = headers2.get(name);
      if (value !== null) signedHeaders2.set(name, value);
    }
  }
  return { status, ts, responseNonce, signature, streamed: mode !== null, signedHeaders: signedHeaders2, hHeaders };
}
async function verifyHead(key, request, head, hBody) {
  const message = responseMessage(
    head.ts,
    head.status,
    request.pathAndQuery,
    request.sessionId,
    request.nonce,
    head.responseNonce,
    hBody,
    head.hHeaders
  );
  if (!await key.verify(head.signature, message)) {
    throw new SignatureInvalid(`answer (${head.status}): the host's signature does not verify`);
  }
}
var StreamVerifier = class {
  constructor(key, request, responseNonce, maxPayload = MAX_CHUNK_PAYLOAD) {
    this.key = key;
    this.request = request;
    this.responseNonce = responseNonce;
    this.maxPayload = maxPayload;
  }
  key;
  request;
  responseNonce;
  maxPayload;
  buffer = new Uint8Array(0);
  seq = 0;
  done = false;
  async feed(data) {
    if (this.done) {
      if (data.length) throw new SignatureInvalid("data after the final record of a signed body");
      return [];
    }
    this.buffer = this.buffer.length ? concat(this.buffer, data) : data.slice();
    const payloads = [];
    const header = CHUNK_HEADER_SIZE;
    while (this.buffer.length >= header) {
      const view = new DataView(this.buffer.buffer, this.buffer.byteOffset, this.buffer.byteLength);
      const length = view.getUint32(0, false);
      if (length > this.maxPayload) throw new SignatureInvalid(`a signed body record claims ${length} bytes`);
      const end = header + length + SIGNATURE_SIZE;
      if (this.buffer.length < end) break;
      const payload = this.buffer.slice(header, header + length);
      const signature = this.buffer.subarray(header + length, end);
      this.seq += 1;
      const message = streamChunkMessage(
        this.request.sessionId,
        this.request.nonce,
        this.responseNonce,
        this.seq,
        payload
      );
      if (!await this.key.verify(signature, message)) {
        throw new SignatureInvalid(`body record ${this.seq}: the host's signature does not verify`);
      }
      this.buffer = this.buffer.subarray(end);
      if (payload.length === 0) {
        this.done = true;
        if (this.buffer.length) throw new SignatureInvalid("data after the final record of a signed body");
        break;
      }
      payloads.push(payload);
    }
    return payloads;
  }
  finish() {
    if (!this.done) throw new SignatureInvalid("the signed body was cut short (no final record)");
  }
};
function verifiedStream(source, verifier, onError = (err) => err) {
  const reader = source.getReader();
  return new ReadableStream({
    async pull(controller) {
      for (; ; ) {
        let chunk;
        try {
          chunk = await reader.read();
        } catch (err) {
          controller.error(onError(err));
          return;
        }
        try {
          if (chunk.done) {
            verifier.finish();
            controller.close();
            return;
          }
          const payloads = await verifier.feed(chunk.value);
          for (const payload of payloads) controller.enqueue(payload);
          if (payloads.length || verifier.done) {
            if (verifier.done) {
              const rest = await reader.read().catch(() => ({ done: true, value: void 0 }));
              if (!rest.done && rest.value && rest.value.length) await verifier.feed(rest.value);
              verifier.finish();
              controller.close();
              reader.cancel().catch(() => void 0);
            }
            return;
          }
        } catch (err) {
          reader.cancel().catch(() => void 0);
          controller.error(err);
          return;
        }
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    }
  });
}

// src/sdk/client.ts
var SAFE_METHODS = /* @__PURE__ */ new Set(["GET", "HEAD", "OPTIONS"]);
var REFRESHABLE = /* @__PURE__ */ new Set(["clock_skew", "unknown_session", "session_expired"]);
var GONE = /* @__PURE__ */ new Set(["client_revoked", "unknown_client"]);
var SESSION_MAX_AGE = 55 * 60 * 1e3;
var SESSION_MAX_IDLE = 13 * 60 * 1e3;
var SMALL_ANSWER = 64 * 1024;
var OFFER_PATH = "/api/webrtc/offer";
var INLINE_UPLOAD = 256 * 1024;
var MAX_CHANNEL_UPLOAD = 512 * 1024;
var CODE = /^[A-Z0-9]{6}$/;
var UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
var REVOKED_REASON = "revoked by the host owner";
function normalizeCode(input) {
  return input.trim().toUpperCase().replace(/[\s-]+/g, "");
}
function normalizeRelayUrl(url) {
  const parsed = new URL(url.trim());
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new TypeError(`the relay URL must be http(s), not ${url}`);
  }
  if (parsed.search || parsed.hash) throw new TypeError("the relay URL must not have a query or fragment");
  return `${parsed.protocol}//${parsed.host}${parsed.pathname.replace(/\/+$/, "")}`;
}
function checkUuid(value, what) {
  const lower = value.trim().toLowerCase();
  if (!UUID.test(lower)) throw new TypeError(`${what} must be a UUID`);
  return lower;
}
function errorFields(body) {
  const text = new TextDecoder().decode(body);
  try {
    const doc = JSON.parse(text);
    if (typeof doc === "object" && doc !== null && !Array.isArray(doc)) {
      const d = doc;
      const message = d.message ?? d.error ?? "no details";
      return { reason: d.reason ? String(d.reason).slice(0, 64) : "unknown", message: String(message).slice(0, 500) };
    }
  } catch {
  }
  return { reason: "unknown", message: text.slice(0, 200).trim() || "no details" };
}
async function readLimited(response, limit) {
  if (!response.body) return new Uint8Array(0);
  const reader = response.body.getReader();
  const parts = [];
  let size = 0;
  try {
    for (; ; ) {
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
async function readSmall(response) {
  try {
    return await readLimited(response, SMALL_ANSWER);
  } catch {
    return new Uint8Array(0);
  }
}
function relayError(status, fields) {
  const text = fields.message;
  if (status === 404 && /no active relay/i.test(text)) return new HostOffline("the host is offline (not connected to the relay)");
  if (status === 503 && /reconnecting/i.test(text)) return new HostOffline("the host is reconnecting to the relay");
  if (status === 502) return new HostOffline(`the relay could not reach the host: ${text}`);
  return new RelayRefused(status, `relay answered ${status}: ${text}`);
}
var looksLikeHost = (r) => r.headers.has(HOST_TIME) || r.headers.has(RESP_SIGNATURE);
var relaySessionGone = (r) => (r.status === 401 || r.status === 403) && !looksLikeHost(r);
var isRelayError = (status) => [401, 403, 404, 429, 502, 503, 504].includes(status);
async function bodyBytes(body) {
  if (body === void 0 || body === null) return { bytes: new Uint8Array(0) };
  if (typeof body === "string") return { bytes: utf8(body), type: "text/plain;charset=UTF-8" };
  if (body instanceof Uint8Array) return { bytes: body };
  if (body instanceof ArrayBuffer) return { bytes: new Uint8Array(body) };
  if (ArrayBuffer.isView(body)) return { bytes: new Uint8Array(body.buffer, body.byteOffset, body.byteLength) };
  if (body instanceof URLSearchParams) {
    return { bytes: utf8(body.toString()), type: "application/x-www-form-urlencoded;charset=UTF-8" };
  }
  if (typeof Blob !== "undefined" && body instanceof Blob) {
    return { bytes: new Uint8Array(await body.arrayBuffer()), ...body.type ? { type: body.type } : {} };
  }
  throw new TypeError("relayFetch takes a string, bytes, Blob or URLSearchParams body (it signs the exact bytes)");
}
function learnSignedHeaders(record, head) {
  if (head.hHeaders !== null) record.signsHeaders = true;
}
function signedHeaders(signed, userHeaders) {
  const headers2 = new Headers(userHeaders);
  headers2.set(SIG_SESSION, signed.sessionId);
  headers2.set(SIG_TS, String(signed.ts));
  headers2.set(SIG_NONCE, signed.nonce);
  headers2.set(SIG_SIGNATURE, signed.signatureB64);
  headers2.set(ACCEPT_STREAM_SIGNING, "1");
  headers2.set(ACCEPT_SIGNED_HEADERS, "1");
  if (signed.headerNames) headers2.set(SIG_HEADERS, signed.headerNames.join(","));
  return headers2;
}
function channelHeaders(headers2) {
  const out = {};
  headers2.forEach((value, name) => {
    out[name] = [value];
  });
  return out;
}
var Verified = class {
  constructor(status, headers2, unverifiedHeaders, body, streamed) {
    this.status = status;
    this.headers = headers2;
    this.unverifiedHeaders = unverifiedHeaders;
    this.body = body;
    this.streamed = streamed;
  }
  status;
  headers;
  unverifiedHeaders;
  body;
  streamed;
  verified = true;
  via = "relayed";
  used = false;
  async bytes() {
    if (this.used) throw new TypeError("the body was already read");
    this.used = true;
    if (!this.body) return new Uint8Array(0);
    const reader = this.body.getReader();
    const parts = [];
    let size = 0;
    for (; ; ) {
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
  async text() {
    return new TextDecoder().decode(await this.bytes());
  }
  async json() {
    return JSON.parse(await this.text());
  }
};
var RelayClient = class {
  relayUrl;
  token;
  fetchImpl;
  clockNow;
  store;
  WebSocketImpl;
  timeoutMs;
  maxBody;
  hostKeys = /* @__PURE__ */ new Map();
  /** Counters a test (or a status line) can read. */
  stats = { relaySessionCreations: 0, refreshes: 0, directCalls: 0, relayedCalls: 0, upgrades: 0, channelFallbacks: 0 };
  rtc;
  peers = /* @__PURE__ */ new Map();
  pathListeners = /* @__PURE__ */ new Set();
  constructor(opts) {
    this.relayUrl = normalizeRelayUrl(opts.relayUrl);
    this.token = opts.token;
    const f = opts.fetch ?? globalThis.fetch;
    this.fetchImpl = (input, init) => f(input, init);
    this.clockNow = opts.now ?? Date.now;
    this.store = opts.storage ?? new IndexedDbPairingStore();
    this.WebSocketImpl = opts.WebSocket ?? globalThis.WebSocket;
    this.timeoutMs = opts.timeoutMs ?? 3e4;
    this.maxBody = opts.maxBody ?? 64 * 1024 * 1024;
    const rtc = opts.webrtc ?? {};
    this.rtc = {
      enabled: rtc.enabled ?? typeof globalThis.RTCPeerConnection !== "undefined",
      iceServers: rtc.iceServers ?? [],
      answerTimeoutMs: rtc.answerTimeoutMs ?? 2e4,
      gatherMs: rtc.gatherMs ?? 5e3,
      openMs: rtc.openMs ?? 1e4,
      retryAfterFailureMs: rtc.retryAfterFailureMs ?? 5 * 6e4,
      maxMessage: rtc.maxMessage ?? 1 << 20
    };
  }
  // ------------------------------------------------------------------ hosts, pairings
  /** The user's hosts (GET /v1/hosts with the token), each marked paired or not here. */
  async listHosts() {
    const response = await this.send(`${this.relayUrl}/v1/hosts`, {
      headers: { authorization: `Bearer ${await this.token()}` }
    });
    const body = await readSmall(response).catch(() => new Uint8Array(0));
    if (response.status !== 200) throw new RelayRefused(response.status, `relay answered ${response.status}: ${errorFields(body).message}`);
    let hosts;
    try {
      hosts = JSON.parse(new TextDecoder().decode(body)).hosts;
    } catch {
      hosts = void 0;
    }
    if (!Array.isArray(hosts)) throw new RelayRefused(response.status, "the relay's host list is not what the protocol says");
    const paired = new Set((await this.store.list(this.relayUrl)).map((p) => p.hostId));
    return hosts.map((h) => ({
      id: String(h.id),
      name: String(h.name ?? h.id),
      status: h.status === "online" ? "online" : "offline",
      lastSeenAt: typeof h.last_seen_at === "string" ? h.last_seen_at : null,
      paired: paired.has(String(h.id))
    }));
  }
  async pairings() {
    return (await this.store.list(this.relayUrl)).map(publicPart);
  }
  async forget(hostId) {
    await this.store.delete(this.relayUrl, checkUuid(hostId, "host id"));
  }
  /** Pair with the host through the relay (SPAKE2 against the host's current code, then
   *  key confirmation); stores and returns the pairing. The code is never sent. */
  async pair(hostId, code, info) {
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
    let ck;
    try {
      ck = confirmationKey(spake.finish(b64Field(started, "server_message_b64", 33)));
    } catch (err) {
      throw new PairingFailed("bad_answer", `the host's SPAKE2 message is invalid: ${err.message}`);
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
      client_proof_b64: b64encode(clientProof(ck, enrollmentId, key.publicKeyRaw))
    });
    const serverKey = b64Field(finished, "server_public_key_b64", 32);
    const proof = b64Field(finished, "server_proof_b64", 32);
    if (!constantTimeEqual(proof, serverProof(ck, enrollmentId, key.publicKeyRaw, serverKey))) {
      throw new PairingFailed(
        "host_proof",
        "the host's proof is wrong: the code did not match, or something between you and the host tampered with the pairing"
      );
    }
    const now = this.clockNow();
    const record = {
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
      clockOffset: 0
    };
    await this.store.put(record);
    await this.relayFetch(hostId, `${AUTH_PREFIX}/clients`).then((r) => r.body?.cancel(), () => void 0);
    return publicPart(record);
  }
  // ------------------------------------------------------------------ HTTP
  /** One signed request to the host; the answer verified (see VerifiedResponse). */
  async relayFetch(hostId, path2, init = {}) {
    return this.hostFetch(hostId, path2, init, true);
  }
  async hostFetch(hostId, path2, init, mayGoDirect) {
    hostId = checkUuid(hostId, "host id");
    const method = (init.method ?? "GET").toUpperCase();
    const pathAndQuery = canonicalPath(path2);
    const { bytes: body, type } = await bodyBytes(init.body);
    const headers2 = new Headers(init.headers);
    if (type && !headers2.has("content-type")) headers2.set("content-type", type);
    headers2.set(ACCEPT_STREAM_SIGNING, "1");
    headers2.set(ACCEPT_SIGNED_HEADERS, "1");
    let record = await this.load(hostId);
    record = await this.renewIfStale(record);
    const channel = mayGoDirect ? await this.channelFor(hostId, pathAndQuery, body) : null;
    if (channel) {
      const answer2 = await this.fetchDirect(record, channel, method, pathAndQuery, body, headers2, init.signal ?? null);
      if (answer2) return answer2;
    }
    const answer = await this.fetchRelayed(record, method, pathAndQuery, body, headers2, init.signal ?? null);
    this.stats.relayedCalls += 1;
    if (mayGoDirect) this.upgradeSoon(hostId);
    return answer;
  }
  async fetchRelayed(record, method, pathAndQuery, body, headers2, signal) {
    let refreshed = false;
    for (; ; ) {
      const signed = await this.signRequest(record, method, pathAndQuery, body, record.signsHeaders ? headers2 : void 0);
      const response = await this.sendSigned(record, method, signed, body, headers2, signal);
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
          refusal.reason
        );
      }
      record = await this.refresh(record);
      refreshed = true;
    }
  }
  /** `headers`: those the request will carry, to sign them (the host then passes on
   *  only them); none (a WebSocket upgrade, which cannot carry headers): the reference way. */
  async signRequest(record, method, pathAndQuery, body, headers2) {
    const ts = this.clock(record).now();
    const nonce = crypto.randomUUID();
    const sessionId = record.signingSessionId;
    let headerNames;
    let hHeaders = null;
    if (headers2) {
      headerNames = [...headers2.keys()].filter(signableRequestHeader);
      if (headerNames.length > MAX_SIGNED_HEADERS) throw new TypeError(`more than ${MAX_SIGNED_HEADERS} headers to sign`);
      hHeaders = headersHash(headerNames, (name) => headers2.get(name));
    }
    const message = requestMessage(ts, method, pathAndQuery, sessionId, nonce, bodyHash(body), hHeaders);
    const signature = await sign(record.privateKey, message);
    return { sessionId, nonce, pathAndQuery, ts, signatureB64: b64encode(signature), ...headerNames ? { headerNames } : {} };
  }
  async sendSigned(record, method, signed, body, userHeaders, signal) {
    const headers2 = signedHeaders(signed, userHeaders);
    for (let attempt = 0; ; attempt++) {
      const session = await this.relaySession(record);
      const init = { method, headers: headers2, redirect: "manual", cache: "no-store", signal };
      if (body.length || !SAFE_METHODS.has(method)) init.body = own(body);
      const response = await this.send(this.proxyBase(record.hostId, session) + signed.pathAndQuery, init);
      record.sessionUsedAt = this.clockNow();
      if (attempt === 0 && relaySessionGone(response)) {
        await response.body?.cancel().catch(() => void 0);
        record.relaySessionId = null;
        await this.store.put(record);
        continue;
      }
      return response;
    }
  }
  async checkAnswer(record, signed, response) {
    if (!response.headers.has(RESP_SIGNATURE) && isRelayError(response.status)) {
      throw relayError(response.status, errorFields(await readSmall(response)));
    }
    let head;
    try {
      head = parseHead(response.status, response.headers, signed.headerNames !== void 0);
    } catch (err) {
      await response.body?.cancel().catch(() => void 0);
      throw err;
    }
    const key = this.hostKey(record);
    const unverified = new Headers(response.headers);
    for (const name of head.signedHeaders.keys()) unverified.delete(name);
    if (head.streamed) {
      try {
        await verifyHead(key, signed, head, STREAM_SIGNING_V1);
        learnSignedHeaders(record, head);
      } catch (err) {
        await response.body?.cancel().catch(() => void 0);
        throw err;
      }
      const verifier = new StreamVerifier(key, signed, head.responseNonce);
      const source = response.body ?? new ReadableStream({ start: (c) => c.close() });
      const body2 = verifiedStream(
        source,
        verifier,
        (err) => err instanceof Error && err.name === "AbortError" ? new Timeout("the answer stopped (aborted)") : err
      );
      await this.store.put(record);
      return new Verified(head.status, head.signedHeaders, unverified, body2, true);
    }
    let bytes;
    try {
      bytes = await readLimited(response, this.maxBody);
    } catch (err) {
      if (err instanceof RangeError) throw new RelayRefused(response.status, `${err.message} and not streamed`, "too_large");
      throw this.networkError(err);
    }
    await verifyHead(key, signed, head, bodyHash(bytes));
    learnSignedHeaders(record, head);
    await this.store.put(record);
    const nullBody = response.status === 204 || response.status === 304 || bytes.length === 0;
    const body = nullBody ? null : new ReadableStream({
      start(controller) {
        controller.enqueue(bytes);
        controller.close();
      }
    });
    return new Verified(head.status, head.signedHeaders, unverified, body, false);
  }
  async readRefusal(record, signed, response) {
    const body = await readSmall(response);
    let verified = false;
    try {
      const head = parseHead(401, response.headers, signed.headerNames !== void 0);
      if (!head.streamed) {
        await verifyHead(this.hostKey(record), signed, head, bodyHash(body));
        verified = true;
        learnSignedHeaders(record, head);
      }
    } catch {
      verified = false;
    }
    this.observeHostTime(record, response.headers.get(HOST_TIME), verified);
    return { ...errorFields(body), verified };
  }
  // ------------------------------------------------------------------ WebRTC
  /** Which way this host's calls go now. */
  hostPath(hostId) {
    const peer = this.peers.get(hostId);
    return {
      path: peer?.channel?.isOpen ? "direct" : "relayed",
      forcedRelayed: peer?.forcedRelayed ?? false,
      lastError: peer?.lastError ?? null,
      upgrades: peer?.upgrades ?? 0,
      certificateChecked: Boolean(peer?.channel?.isOpen && peer.channel.certificateChecked)
    };
  }
  /** Be told when a host's path changes; returns the unsubscribe function. */
  onPathChange(listener) {
    this.pathListeners.add(listener);
    return () => this.pathListeners.delete(listener);
  }
  /** The relay only for this host (true), or the upgrade allowed again (false). */
  forceRelayed(hostId, relayedOnly) {
    const peer = this.peer(checkUuid(hostId, "host id"));
    peer.forcedRelayed = relayedOnly;
    if (relayedOnly) peer.channel?.close("the relay was chosen");
    else peer.failedAt = null;
    this.pathChanged(hostId);
  }
  /** Drop the host's channel: calls go through the relay, and the next one (a channel
   *  that worked and dropped) tries the upgrade again at once. */
  closeChannel(hostId, reason = "closed by this page") {
    this.peers.get(hostId)?.channel?.close(reason);
  }
  /** Try the upgrade now (after a failure, only once retryAfterFailureMs passed);
   *  resolves true when a channel is open. Never throws for a failed negotiation. */
  upgrade(hostId) {
    hostId = checkUuid(hostId, "host id");
    const peer = this.peer(hostId);
    if (peer.channel?.isOpen) return Promise.resolve(true);
    if (peer.negotiating) return peer.negotiating;
    if (!this.rtc.enabled || peer.forcedRelayed) return Promise.resolve(false);
    if (peer.failedAt !== null && this.clockNow() - peer.failedAt < this.rtc.retryAfterFailureMs) return Promise.resolve(false);
    peer.negotiating = this.negotiate(hostId, peer).then(() => true).catch((err) => {
      peer.lastError = `${err?.name ?? "Error"}: ${err?.message ?? String(err)}`;
      peer.failedAt = this.clockNow();
      return false;
    }).finally(() => {
      peer.negotiating = null;
      this.pathChanged(hostId);
    });
    return peer.negotiating;
  }
  peer(hostId) {
    let peer = this.peers.get(hostId);
    if (!peer) {
      peer = { channel: null, negotiating: null, failedAt: null, forcedRelayed: false, lastError: null, upgrades: 0 };
      this.peers.set(hostId, peer);
    }
    return peer;
  }
  pathChanged(hostId) {
    const path2 = this.hostPath(hostId);
    for (const listener of this.pathListeners) {
      try {
        listener(hostId, path2);
      } catch {
      }
    }
  }
  upgradeSoon(hostId) {
    if (!this.rtc.enabled) return;
    void this.upgrade(hostId);
  }
  /** The open channel a call (or WebSocket) to `pathAndQuery` may take, or null. */
  openChannel(hostId, pathAndQuery) {
    const peer = this.peers.get(hostId);
    const channel = peer?.channel;
    if (!peer || !channel?.isOpen || peer.forcedRelayed) return null;
    const route = pathAndQuery.split("?")[0];
    if (route.startsWith(AUTH_PREFIX) || route === OFFER_PATH) return null;
    return channel;
  }
  /** The channel a call to `pathAndQuery` with `body` may take, or null: the relay then. */
  async channelFor(hostId, pathAndQuery, body) {
    const channel = this.openChannel(hostId, pathAndQuery);
    if (channel && body.length > MAX_CHANNEL_UPLOAD && !await channel.offers("upload")) return null;
    return channel;
  }
  /** The offer, signed and sent through the relay; its answer verified like every answer
   *  (so the DTLS fingerprints in it are the host's) before the browser uses it. */
  async negotiate(hostId, peer) {
    const { channel, sdp } = await DirectChannel.offer(this.rtc.iceServers, {
      gatherMs: this.rtc.gatherMs,
      openMs: this.rtc.openMs,
      maxMessage: this.rtc.maxMessage,
      maxQueue: 64
    });
    try {
      const offerId = crypto.randomUUID();
      const answer = await this.hostFetch(
        hostId,
        OFFER_PATH,
        { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ sdp, session_id: offerId }) },
        false
      );
      if (answer.status !== 200) throw new NegotiationFailed(`the host refused the offer (${answer.status})`);
      let doc;
      try {
        doc = await answer.json();
      } catch {
        throw new NegotiationFailed("the answer is not JSON");
      }
      const data = doc?.data;
      if (doc.success !== true || typeof data !== "object" || data === null) {
        throw new NegotiationFailed("the answer is not a success envelope");
      }
      if (data.session_id !== offerId || typeof data.sdp !== "string") throw new NegotiationFailed("the answer is for another offer");
      let fingerprints;
      try {
        fingerprints = dtlsFingerprints(data.sdp);
      } catch (err) {
        throw new NegotiationFailed(`bad answer: ${err.message}`);
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
      this.pathChanged(hostId);
    });
  }
  /** One call over the channel, signed and checked exactly like a relayed one. Null: the
   *  host refused it before running it (an unsigned 401/403: a stale signing session,
   *  say), so the relay path may sign it anew. No answer in time, or the channel failed:
   *  the SAME signed request goes through the relay, and a host that had run it refuses
   *  it as a replay (MayHaveRun) instead of running it twice. */
  async fetchDirect(record, channel, method, pathAndQuery, body, headers2, signal) {
    const signed = await this.signRequest(record, method, pathAndQuery, body);
    const sent = channelHeaders(signedHeaders(signed, headers2));
    const upload = body.length > INLINE_UPLOAD && channel.hostExtensions.has("upload");
    let response;
    try {
      response = await channel.fetch({ method, path: signed.pathAndQuery, headers: sent, body }, this.rtc.answerTimeoutMs, signal, upload);
    } catch (err) {
      if (!(err instanceof ChannelTimeout || err instanceof ChannelClosed)) throw err;
      this.stats.channelFallbacks += 1;
      if (err instanceof NotDelivered) return null;
      if (err instanceof ChannelTimeout) channel.close(err.message);
      const relayed = await this.sendSigned(record, method, signed, body, headers2, signal);
      if (relayed.status === 401 && looksLikeHost(relayed)) {
        const refusal = await this.readRefusal(record, signed, relayed);
        if (refusal.reason === "replayed_nonce") {
          throw new MayHaveRun(
            `${method} ${pathAndQuery}: no answer over WebRTC in time and the host had this call already: it may have run (it was not run twice)`
          );
        }
        throw new RelayRefused(401, `the host refused the request (${refusal.reason}): ${refusal.message}`, refusal.reason);
      }
      this.stats.relayedCalls += 1;
      return this.checkAnswer(record, signed, relayed);
    }
    record.sessionUsedAt = this.clockNow();
    if ((response.status === 401 || response.status === 403) && !response.headers.has(RESP_SIGNATURE)) {
      const fields = errorFields(await readSmall(response));
      if (fields.reason === "wrong_session") channel.close("the channel belongs to an older signing session");
      return null;
    }
    const answer = await this.checkAnswer(record, signed, response);
    answer.via = "direct";
    this.stats.directCalls += 1;
    return answer;
  }
  // ------------------------------------------------------------------ signing sessions
  /** A new signing session for this client (POST signing-session/refresh). */
  async refresh(record) {
    for (let attempt = 0; ; attempt++) {
      const ts = this.clock(record).now();
      const nonce = crypto.randomUUID();
      const signature = await sign(record.privateKey, refreshMessage(ts, nonce, record.clientId));
      const payload = { client_id: record.clientId, timestamp: String(ts), nonce, signature_b64: b64encode(signature) };
      const session = await this.relaySession(record);
      const response = await this.send(`${this.proxyBase(record.hostId, session)}${AUTH_PREFIX}/signing-session/refresh`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(payload)
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
      this.observeHostTime(record, response.headers.get(HOST_TIME), false);
      if (attempt === 0 && fields.reason === "clock_skew") continue;
      if (GONE.has(fields.reason)) throw await this.revoked(record, fields.reason);
      throw new RelayRefused(response.status, `the host refused a new signing session (${fields.reason}): ${fields.message}`, fields.reason);
    }
  }
  async renewIfStale(record) {
    const now = this.clockNow();
    if (now - record.sessionStartedAt > SESSION_MAX_AGE || now - record.sessionUsedAt > SESSION_MAX_IDLE) {
      return this.refresh(record);
    }
    return record;
  }
  /** The host revoked or forgot this client: drop the pairing, say "pair again". */
  async revoked(record, reason) {
    await this.store.delete(record.relayUrl, record.hostId);
    return new PairingRevoked(
      reason === "client_revoked" ? `this browser was ${REVOKED_REASON}: pair again` : "the host no longer knows this browser: pair again"
    );
  }
  clock(record) {
    return new HostClock(this.clockNow, record.clockOffset);
  }
  observeHostTime(record, header, verified) {
    const clock = this.clock(record);
    if (clock.observe(header, verified)) record.clockOffset = clock.offset;
  }
  // ------------------------------------------------------------------ relay session
  async load(hostId) {
    let record;
    try {
      record = await this.store.get(this.relayUrl, hostId);
    } catch (err) {
      throw new NotPaired(`the pairing store cannot be read (${err.message}): pair again`);
    }
    if (!record || !record.privateKey || !record.hostPublicKeyB64) {
      throw new NotPaired("this browser is not paired with that host: pair first");
    }
    return record;
  }
  hostKey(record) {
    let key = this.hostKeys.get(record.hostPublicKeyB64);
    if (!key) {
      key = new HostKey(b64decode(record.hostPublicKeyB64, 32));
      this.hostKeys.set(record.hostPublicKeyB64, key);
    }
    return key;
  }
  async relaySession(record) {
    if (record.relaySessionId === null) {
      record.relaySessionId = await this.createRelaySession(record.hostId);
      await this.store.put(record);
    }
    return record.relaySessionId;
  }
  async createRelaySession(hostId) {
    const response = await this.send(`${this.relayUrl}/v1/relay/create/${hostId}`, {
      method: "POST",
      headers: { authorization: `Bearer ${await this.token()}` }
    });
    const body = await readSmall(response);
    if (response.status !== 200) throw relayError(response.status, errorFields(body));
    this.stats.relaySessionCreations += 1;
    try {
      const doc = JSON.parse(new TextDecoder().decode(body));
      return checkUuid(String(doc.session_id), "session id");
    } catch {
      throw new RelayRefused(200, "the relay's create answer has no session_id");
    }
  }
  proxyBase(hostId, relaySession) {
    return `${this.relayUrl}/v1/relay/h/${hostId}/s/${relaySession}`;
  }
  /** POST to one of the host's unsigned pairing routes; the `data` of its answer. */
  async authCall(base, route, payload) {
    const response = await this.send(`${base}${AUTH_PREFIX}/${route}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(payload)
    });
    const body = await readSmall(response);
    if (response.status !== 200) {
      const fields = errorFields(body);
      if (fields.reason === "unknown" && !response.headers.has(HOST_TIME)) throw relayError(response.status, fields);
      throw new PairingFailed(fields.reason, `the host refused pairing (${fields.reason}): ${fields.message}`);
    }
    return dataOf(body, route);
  }
  /** fetch with a timeout on the answer's head only (a stream may then run for as long
   *  as it runs; the caller's signal still ends it); failures as our errors. */
  async send(url, init) {
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
  networkError(err) {
    if (err instanceof Error && (err.name === "AbortError" || err.name === "TimeoutError")) return err;
    if (err instanceof SignatureInvalid || err instanceof Timeout) return err;
    return new RelayRefused(0, `cannot reach the relay: ${err?.message ?? String(err)}`, "network");
  }
  // ------------------------------------------------------------------ WebSocket
  /** A WebSocket to the host whose every frame is signed both ways. */
  relayWebSocket(hostId, path2) {
    hostId = checkUuid(hostId, "host id");
    const relayed = () => new SignedRelayWebSocket(this, hostId, path2);
    const channel = this.openChannel(hostId, canonicalPath(path2));
    if (!channel) return relayed();
    return new ChannelWebSocket(channel, () => this.prepareChannelWebSocket(hostId, path2), relayed, this.rtc.answerTimeoutMs);
  }
  /** The signature headers of an upgrade over the channel (GET path, empty body), signed
   *  over the same path a relayed upgrade signs. */
  async prepareChannelWebSocket(hostId, path2) {
    const [pathOnly, query = ""] = splitOnce(canonicalPath(path2), "?");
    const signedPath = signedWsPath(pathOnly, [...new URLSearchParams(query)]);
    const record = await this.renewIfStale(await this.load(hostId));
    const signed = await this.signRequest(record, "GET", signedPath, new Uint8Array(0));
    record.sessionUsedAt = this.clockNow();
    await this.store.put(record);
    return { path: signedPath, headers: channelHeaders(signedHeaders(signed, new Headers())) };
  }
  /** @internal The upgrade URL and the frame signer and verifier for it. */
  async _prepareWebSocket(hostId, path2, refresh) {
    const Impl = this.WebSocketImpl;
    if (!Impl) throw new TypeError("no WebSocket implementation (pass options.WebSocket)");
    const canonical = canonicalPath(path2);
    const [pathOnly, query = ""] = splitOnce(canonical, "?");
    const pairs = [...new URLSearchParams(query)];
    let record = await this.load(hostId);
    record = refresh ? await this.refresh(record) : await this.renewIfStale(record);
    const signed = await this.signRequest(record, "GET", signedWsPath(pathOnly, pairs), new Uint8Array(0));
    const all = [
      ...pairs,
      [SIG_SESSION, signed.sessionId],
      [SIG_TS, String(signed.ts)],
      [SIG_NONCE, signed.nonce],
      [SIG_SIGNATURE, signed.signatureB64]
    ];
    const session = await this.relaySession(record);
    const url = this.proxyBase(hostId, session).replace(/^http/, "ws") + pathOnly + "?" + formUrlencode(all);
    record.sessionUsedAt = this.clockNow();
    await this.store.put(record);
    return {
      url,
      signer: new FrameSigner(record.privateKey, signed.sessionId, signed.nonce),
      verifier: new FrameVerifier(this.hostKey(record), signed.sessionId, signed.nonce),
      record,
      Impl
    };
  }
  /** @internal */
  async _revokedLocally(record) {
    await this.store.delete(record.relayUrl, record.hostId);
  }
};
function splitOnce(text, sep) {
  const at = text.indexOf(sep);
  return at < 0 ? [text] : [text.slice(0, at), text.slice(at + 1)];
}
function dataOf(body, route) {
  try {
    const doc = JSON.parse(new TextDecoder().decode(body));
    if (doc.success === true && typeof doc.data === "object" && doc.data !== null) return doc.data;
  } catch {
  }
  throw new PairingFailed("bad_answer", `the host's ${route} answer is not what the protocol says`);
}
function uuidField(data, name) {
  const value = data[name];
  if (typeof value !== "string" || !UUID.test(value.toLowerCase())) {
    throw new PairingFailed("bad_answer", `the host's answer lacks a valid ${name}`);
  }
  return value.toLowerCase();
}
function b64Field(data, name, size) {
  const value = data[name];
  try {
    if (typeof value !== "string") throw new Error("missing");
    return b64decode(value, size);
  } catch (err) {
    throw new PairingFailed("bad_answer", `the host's answer has a bad ${name}: ${err.message}`);
  }
}
var CONNECTING2 = 0;
var OPEN2 = 1;
var CLOSING = 2;
var CLOSED2 = 3;
var SignedRelayWebSocket = class {
  constructor(client, hostId, path2) {
    this.client = client;
    this.hostId = hostId;
    this.path = path2;
    void this.connect(false);
  }
  client;
  hostId;
  path;
  onopen = null;
  onmessage = null;
  onclose = null;
  onerror = null;
  state = CONNECTING2;
  socket = null;
  signer = null;
  verifier = null;
  record = null;
  incoming = Promise.resolve();
  outgoing = Promise.resolve();
  hostClose = null;
  failed = null;
  closedReported = false;
  get readyState() {
    return this.state;
  }
  async connect(refresh) {
    let prepared;
    try {
      prepared = await this.client._prepareWebSocket(this.hostId, this.path, refresh);
    } catch (err) {
      this.fail(err, err instanceof PairingRevoked ? REVOKED_REASON : err.message);
      return;
    }
    if (this.state !== CONNECTING2) return;
    this.signer = prepared.signer;
    this.verifier = prepared.verifier;
    this.record = prepared.record;
    const socket = new prepared.Impl(prepared.url);
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
      if (this.state !== CONNECTING2) return;
      this.state = OPEN2;
      this.onopen?.();
    };
    socket.onmessage = (event) => {
      const data = event.data;
      const message = typeof data === "string" ? data : new Uint8Array(data);
      this.incoming = this.incoming.then(() => this.receive(message));
    };
    socket.onerror = () => void 0;
    socket.onclose = (event) => {
      if (!opened && !refresh && this.state === CONNECTING2) {
        void this.connect(true);
        return;
      }
      this.incoming = this.incoming.then(() => this.ended(event.code, event.reason));
    };
  }
  async receive(message) {
    if (this.state === CLOSED2 || this.failed || !this.verifier) return;
    let frame;
    try {
      frame = await this.verifier.open(message);
    } catch (err) {
      this.abort(err);
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
        if (revoked && this.record) await this.client._revokedLocally(this.record).catch(() => void 0);
        this.state = CLOSING;
        closeQuietly(this.socket, validCloseCode(code), "");
        break;
      }
    }
  }
  ended(code, reason) {
    if (this.closedReported) return;
    this.closedReported = true;
    this.state = CLOSED2;
    const final = this.failed ?? this.hostClose ?? (this.closingByUs ? { code, reason } : { code: 1006, reason: `the WebSocket ended without the host's signed close frame (${code}${reason ? " " + reason : ""})` });
    this.onclose?.(final);
  }
  closingByUs = false;
  /** A bad frame: tell onerror, close with 1008, report that reason. */
  abort(err) {
    this.failed = { code: 1008, reason: err.message };
    this.onerror?.(err);
    this.state = CLOSING;
    closeQuietly(this.socket, 1008, "frame verification failed");
  }
  fail(err, reason) {
    this.failed = { code: 1008, reason };
    this.onerror?.(err);
    this.ended(1008, reason);
  }
  queue(msgType, payload) {
    const signer = this.signer;
    const socket = this.socket;
    if (!signer || !socket) return;
    const envelope = signer.sign(msgType, payload);
    this.outgoing = this.outgoing.then(async () => {
      const text = await envelope;
      if (socket.readyState === OPEN2) socket.send(text);
    });
  }
  send(data) {
    if (this.state !== OPEN2) throw new Error("the WebSocket is not open");
    if (typeof data === "string") this.queue("text", utf8(data));
    else this.queue("binary", data);
  }
  close(code = 1e3, reason = "") {
    if (this.state === CLOSING || this.state === CLOSED2) return;
    this.closingByUs = true;
    if (this.state === CONNECTING2) {
      this.state = CLOSED2;
      closeQuietly(this.socket, 1e3, "");
      this.ended(code, reason);
      return;
    }
    this.state = CLOSING;
    this.queue("close", closePayload(code, reason));
    const socket = this.socket;
    this.outgoing = this.outgoing.then(() => closeQuietly(socket, code, reason));
  }
};
function closeQuietly(socket, code, reason) {
  if (!socket) return;
  try {
    socket.close(code, reason);
  } catch {
    try {
      socket.close(1e3);
    } catch {
    }
  }
}
var validCloseCode = (code) => code === 1e3 || code >= 3e3 && code <= 4999 ? code : 1e3;

// src/sdk/index.ts
var protocol = { bytes: bytes_exports, frames: frames_exports, keys: keys_exports, spake2: spake2_exports, verify: verify_exports, wire: wire_exports, rtc: { chunking: chunking_exports, messages: messages_exports, sdp: sdp_exports } };
export {
  ChannelClosed,
  HostOffline,
  IndexedDbPairingStore,
  MayHaveRun,
  NotPaired,
  PairingFailed,
  PairingRevoked,
  REVOKED_REASON,
  RelayClient,
  RelayRefused,
  SignatureInvalid,
  Timeout,
  keySupport,
  normalizeCode,
  normalizeRelayUrl,
  protocol
};
