// The client's Ed25519 key and the host's public key. WebCrypto first: the client's
// private key is made non-extractable and the CryptoKey itself goes into IndexedDB, so
// no script (ours included) can ever read it out. Where a browser has no WebCrypto
// Ed25519, @noble/curves signs with a secret kept in IndexedDB ("noble": weaker, and the
// UI says so).
import { ed25519 } from "@noble/curves/ed25519.js";
import { own } from "./bytes";

export type KeyKind = "webcrypto" | "noble";

export interface ClientKey {
  kind: KeyKind;
  /** A non-extractable CryptoKey ("webcrypto") or the 32-byte secret ("noble"). */
  privateKey: CryptoKey | Uint8Array;
  publicKeyRaw: Uint8Array;
}

const ED25519 = { name: "Ed25519" } as const;
let support: Promise<KeyKind> | null = null;

/** Whether this browser makes Ed25519 keys with WebCrypto (else the noble fallback). */
export function keySupport(): Promise<KeyKind> {
  support ??= (async (): Promise<KeyKind> => {
    try {
      const pair = (await crypto.subtle.generateKey(ED25519, false, ["sign", "verify"])) as CryptoKeyPair;
      const probe = new Uint8Array([1]);
      const signature = await crypto.subtle.sign(ED25519, pair.privateKey, probe);
      return (await crypto.subtle.verify(ED25519, pair.publicKey, signature, probe)) ? "webcrypto" : "noble";
    } catch {
      return "noble";
    }
  })();
  return support;
}

export async function generateClientKey(kind?: KeyKind): Promise<ClientKey> {
  if ((kind ?? (await keySupport())) === "webcrypto") {
    const pair = (await crypto.subtle.generateKey(ED25519, false, ["sign", "verify"])) as CryptoKeyPair;
    const publicKeyRaw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
    return { kind: "webcrypto", privateKey: pair.privateKey, publicKeyRaw };
  }
  const secret = ed25519.utils.randomSecretKey();
  return { kind: "noble", privateKey: secret, publicKeyRaw: ed25519.getPublicKey(secret) };
}

export async function sign(key: CryptoKey | Uint8Array, message: Uint8Array): Promise<Uint8Array> {
  if (key instanceof Uint8Array) return ed25519.sign(message, key);
  return new Uint8Array(await crypto.subtle.sign(ED25519, key, own(message)));
}

/** The host's public key, checking signatures with WebCrypto where it can (fast, native)
 *  and @noble/curves elsewhere. */
export class HostKey {
  private webcrypto: Promise<CryptoKey | null>;

  constructor(readonly raw: Uint8Array) {
    if (raw.length !== 32) throw new Error("an Ed25519 public key is 32 bytes");
    this.webcrypto = keySupport().then((kind) =>
      kind === "webcrypto"
        ? crypto.subtle.importKey("raw", own(raw), ED25519, false, ["verify"]).catch(() => null)
        : null,
    );
  }

  async verify(signature: Uint8Array, message: Uint8Array): Promise<boolean> {
    if (signature.length !== 64) return false;
    const key = await this.webcrypto;
    if (key !== null) return crypto.subtle.verify(ED25519, key, own(signature), own(message));
    try {
      return ed25519.verify(signature, message, this.raw, { zip215: false });
    } catch {
      return false;
    }
  }
}
