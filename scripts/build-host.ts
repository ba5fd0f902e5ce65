// `npm run build:host`: writes the host bundle (cloud-init/host-bundle.ts) to
// cloud-init/host/agent-host.js, where the suites that run it for real, the benchmarks and a
// developer's `node cloud-init/host/agent-host.js …` find it. `npm test`, `npm run test:system`
// (tests/global-setup.ts) and `npm run deploy` run it first; the Pulumi program builds the bundle
// in memory itself, so a bare `pulumi up` ships the current sources too. The file is gitignored.
import { chmodSync, readFileSync, writeFileSync } from "fs";
import * as path from "path";
import { BUNDLE_PATH, buildHostBundle } from "../cloud-init/host-bundle";

/** Writes the bundle when it differs from what is on disk; returns what it did. */
export function writeHostBundle(): string {
  const text = buildHostBundle();
  const where = path.relative(process.cwd(), BUNDLE_PATH) || BUNDLE_PATH;
  let current: string | undefined;
  try {
    current = readFileSync(BUNDLE_PATH, "utf8");
  } catch {
    // not built yet
  }
  if (current === text) {
    chmodSync(BUNDLE_PATH, 0o755);
    return `${where} is up to date`;
  }
  writeFileSync(BUNDLE_PATH, text, { mode: 0o755 });
  chmodSync(BUNDLE_PATH, 0o755);
  return `wrote ${where} (${Buffer.byteLength(text)} bytes)`;
}

if (require.main === module) {
  try {
    process.stderr.write(`${writeHostBundle()}\n`);
  } catch (error) {
    process.stderr.write(`build:host: ${(error as Error).message}\n`);
    process.exit(1);
  }
}
