// Bundles the browser code into the Python package's static directory, where the relay
// serves it and `pip install` ships it (no Node needed at run time). The output is
// committed; tests/browser/test_bundle.py rebuilds it and fails when it differs, so
// the build must be deterministic: no timestamps, no absolute paths, no banners that
// change, sorted inputs.
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const outdir = process.argv[2] ?? join(here, "..", "..", "src", "agent_relay", "web", "static");

// [source, output name]; an entry whose source is absent is skipped (src/ui/ is built
// on top of the SDK and may not exist in every checkout).
const ENTRIES = [
  ["src/sdk/index.ts", "sdk"],
  ["src/ui/remote.ts", "remote"],
];

const entryPoints = ENTRIES.filter(([src]) => existsSync(join(here, src))).map(([src, out]) => ({
  in: join(here, src),
  out,
}));

await esbuild.build({
  entryPoints,
  outdir,
  absWorkingDir: here,
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["es2022"],
  minify: false,
  sourcemap: false,
  legalComments: "inline",
  charset: "utf8",
  logLevel: "warning",
});
