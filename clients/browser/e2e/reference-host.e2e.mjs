// The SDK against a host that checks the reference's signed string only (the connector
// with AGENT_RELAY_SIGNED_HEADERS=0, started by tests/browser/test_sdk_e2e.py): it never
// names signed answer headers, so the SDK never learns to sign its own, and every
// request, signed the reference way, passes.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import { IDBFactory } from "fake-indexeddb";
import WebSocket from "ws";
import { SDK_PATH } from "../test/helpers.mjs";

const sdk = await import(SDK_PATH);
const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} is not set (run through tests/browser/test_sdk_e2e.py)`);
  return value;
};
const RELAY = env("AR_RELAY_URL");
const TOKEN = env("AR_TOKEN");
const HOST = env("AR_HOST_ID");
const CODE = env("AR_CODE");
const BLOB_SIZE = Number(env("AR_BLOB_SIZE"));
const BLOB_SHA256 = env("AR_BLOB_SHA256");

const storage = new sdk.IndexedDbPairingStore(new IDBFactory());
const client = new sdk.RelayClient({ relayUrl: RELAY, token: () => TOKEN, storage, WebSocket });

test("pair, then signed requests the reference way keep passing", async () => {
  await client.pair(HOST, CODE, { clientName: "node e2e (reference host)" });
  for (let i = 0; i < 2; i++) {
    const listed = await client.relayFetch(HOST, "/api/workspaces");
    assert.equal(listed.status, 200);
    assert.equal(listed.verified, true);
    assert.equal(listed.unverifiedHeaders.has("x-vk-resp-headers"), false);
    assert.equal(listed.headers.has("content-type"), false, "the host signed no answer header");
    const created = await client.relayFetch(HOST, "/api/workspaces", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: `reference ${i}` }),
    });
    assert.equal(created.status, 201);
    assert.equal((await created.json()).name, `reference ${i}`);
  }
  const blob = await client.relayFetch(HOST, `/api/blob?size=${BLOB_SIZE}`);
  assert.equal(blob.streamed, true);
  const parts = [];
  for await (const part of blob.body) parts.push(Buffer.from(part));
  assert.equal(createHash("sha256").update(Buffer.concat(parts)).digest("hex"), BLOB_SHA256);
  assert.ok(!(await storage.get(RELAY, HOST)).signsHeaders, "never learned from a host without them");
});
