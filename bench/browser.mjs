// Driven by bench/browser.py: in headless Chromium, on the signed relay's own origin, the
// browser SDK's verified relayFetch against a plain fetch through an unsigned relay to the
// same sample server. Prints one JSON line of raw figures; browser.py makes the ratios.
import { createRequire } from "node:module";
import { join } from "node:path";

const cfg = JSON.parse(process.argv[2]);
const require = createRequire(join(cfg.clientsDir, "package.json"));
const { chromium } = require("playwright-core");

const browser = await chromium.launch({ executablePath: cfg.chromium, args: ["--no-sandbox"] });
try {
  // The page fetches the unsigned relay too (another origin): the bench alone lifts the CSP.
  const page = await browser.newPage({ bypassCSP: true });
  await page.goto(cfg.relay + "/");
  const figures = await page.evaluate(async (cfg) => {
    const sdk = await import("/ui/sdk.js");
    const client = new sdk.RelayClient({ relayUrl: location.origin, token: () => cfg.token });
    await client.pair(cfg.hostId, cfg.code, { clientName: "bench", device: "chromium" });
    const plain = (path) => fetch(cfg.unsignedBase + path).then(async (r) => {
      await r.arrayBuffer();
      if (!r.ok) throw new Error(`unsigned ${path}: ${r.status}`);
    });
    const signed = (path) => client.relayFetch(cfg.hostId, path).then(async (r) => {
      await r.bytes();
      if (r.status !== 200) throw new Error(`signed ${path}: ${r.status}`);
    });
    const latency = async (call) => {
      for (let i = 0; i < 20; i++) await call("/api/whoami"); // warm up
      const times = [];
      for (let i = 0; i < cfg.sequential; i++) {
        const t = performance.now();
        await call("/api/whoami");
        times.push(performance.now() - t);
      }
      times.sort((a, b) => a - b);
      return { p50: times[times.length >> 1], p90: times[Math.floor(times.length * 0.9)] };
    };
    const throughput = async (call) => {
      let done = 0;
      const end = performance.now() + cfg.seconds * 1000;
      const worker = async () => {
        while (performance.now() < end) {
          await call("/api/whoami");
          done++;
        }
      };
      const t = performance.now();
      await Promise.all(Array.from({ length: cfg.concurrency }, worker));
      return done / ((performance.now() - t) / 1000);
    };
    const download = async (open) => {
      const t = performance.now();
      const body = await open();
      const reader = body.getReader();
      let bytes = 0;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        bytes += value.length;
      }
      if (bytes !== cfg.downloadBytes) throw new Error(`downloaded ${bytes} bytes`);
      return bytes / 1e6 / ((performance.now() - t) / 1000);
    };
    const blob = `/api/blob?size=${cfg.downloadBytes}`;
    return {
      unsignedLatency: await latency(plain),
      signedLatency: await latency(signed),
      unsignedRps: await throughput(plain),
      signedRps: await throughput(signed),
      unsignedMBps: await download(() => fetch(cfg.unsignedBase + blob).then((r) => r.body)),
      signedMBps: await download(() => client.relayFetch(cfg.hostId, blob).then((r) => r.body)),
    };
  }, cfg);
  console.log(JSON.stringify(figures));
} finally {
  await browser.close();
}
