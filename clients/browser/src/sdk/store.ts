// Where pairings live: IndexedDB in a browser (the client's CryptoKey is stored as the
// object itself: structured clone keeps it non-extractable), or any PairingStore.
import type { KeyKind } from "./keys";

/** A pairing as the UI sees it (no key material). */
export interface Pairing {
  hostId: string;
  relayUrl: string;
  clientId: string;
  clientName: string;
  hostPublicKeyB64: string;
  signingSessionId: string;
  keyKind: KeyKind;
  pairedAt: string;
}

/** A pairing as kept in the store: the public part, the client's key, and the state
 *  the client carries between page loads. */
export interface StoredPairing extends Pairing {
  privateKey: CryptoKey | Uint8Array;
  publicKeyRaw: Uint8Array;
  /** When the signing session began and was last used (ms since the epoch), so it is
   *  renewed before the host's 1 h / 15 min limits rather than after a refusal. */
  sessionStartedAt: number;
  sessionUsedAt: number;
  relaySessionId: string | null;
  /** Host clock minus ours, in seconds, as last learned. */
  clockOffset: number;
  /** The host verifies signed headers: one of its answers, signature checked, named its
   *  own (x-vk-resp-headers). From then on every request signs its headers; never reset.
   *  Absent (a record from before) or false: requests are signed the reference way. */
  signsHeaders?: boolean;
}

export interface PairingStore {
  get(relayUrl: string, hostId: string): Promise<StoredPairing | undefined>;
  put(record: StoredPairing): Promise<void>;
  delete(relayUrl: string, hostId: string): Promise<void>;
  list(relayUrl: string): Promise<StoredPairing[]>;
}

export const publicPart = (record: StoredPairing): Pairing => ({
  hostId: record.hostId,
  relayUrl: record.relayUrl,
  clientId: record.clientId,
  clientName: record.clientName,
  hostPublicKeyB64: record.hostPublicKeyB64,
  signingSessionId: record.signingSessionId,
  keyKind: record.keyKind,
  pairedAt: record.pairedAt,
});

const DB_NAME = "agent-relay";
const DB_VERSION = 1;
const STORE = "pairings";

function promised<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error("IndexedDB request failed"));
  });
}

/** The default store: one IndexedDB database, records keyed by [relayUrl, hostId]. If
 *  the user clears site data the pairings are gone, and the client says "pair again". */
export class IndexedDbPairingStore implements PairingStore {
  private db: Promise<IDBDatabase> | null = null;

  constructor(
    private readonly factory: IDBFactory = globalThis.indexedDB,
    private readonly name = DB_NAME,
  ) {}

  private open(): Promise<IDBDatabase> {
    this.db ??= new Promise<IDBDatabase>((resolve, reject) => {
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
        // Another tab deleting or upgrading the database: let it, and reopen next time.
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
      request.onblocked = () => undefined;
    });
    return this.db;
  }

  private async tx<T>(mode: IDBTransactionMode, run: (store: IDBObjectStore) => IDBRequest<T>): Promise<T> {
    const db = await this.open();
    const transaction = db.transaction(STORE, mode);
    const result = promised(run(transaction.objectStore(STORE)));
    await new Promise<void>((resolve, reject) => {
      transaction.oncomplete = () => resolve();
      transaction.onerror = () => reject(transaction.error ?? new Error("IndexedDB transaction failed"));
      transaction.onabort = () => reject(transaction.error ?? new Error("IndexedDB transaction aborted"));
    });
    return result;
  }

  async get(relayUrl: string, hostId: string): Promise<StoredPairing | undefined> {
    return (await this.tx("readonly", (s) => s.get([relayUrl, hostId]))) as StoredPairing | undefined;
  }

  async put(record: StoredPairing): Promise<void> {
    await this.tx("readwrite", (s) => s.put(record));
  }

  async delete(relayUrl: string, hostId: string): Promise<void> {
    await this.tx("readwrite", (s) => s.delete([relayUrl, hostId]));
  }

  async list(relayUrl: string): Promise<StoredPairing[]> {
    const all = (await this.tx("readonly", (s) => s.getAll())) as StoredPairing[];
    return all.filter((record) => record.relayUrl === relayUrl);
  }
}
