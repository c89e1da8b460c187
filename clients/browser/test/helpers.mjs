// Shared by the Node tests: the SDK as it ships (the committed bundle), and the vectors
// the Python implementation made (tests/vectors/, see tests/vectors/generate.py).
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const ROOT = join(here, "..", "..", "..");
export const SDK_PATH = join(ROOT, "src", "agent_relay", "web", "static", "sdk.js");
export const sdk = await import(SDK_PATH);
export const vectors = (name) => JSON.parse(readFileSync(join(ROOT, "tests", "vectors", `${name}.json`), "utf8"));
export const b64 = (bytes) => Buffer.from(bytes).toString("base64");
export const unb64 = (text) => new Uint8Array(Buffer.from(text, "base64"));
export const hex = (bytes) => Buffer.from(bytes).toString("hex");
export const unhex = (text) => new Uint8Array(Buffer.from(text, "hex"));
export const utf8 = (text) => new TextEncoder().encode(text);
