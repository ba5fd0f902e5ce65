#!/usr/bin/env node
// `npm run agents` (docs/fleet.md): scripts/agents.ts, bundled by esbuild (the dependency the host
// bundle is built with, ~80 ms) into node_modules/.cache/agent-host/agents.js and run by plain
// Node. Through ts-node its start took about 1.1 s of every call, more than an SSH round trip and
// a host's `agentctl status` together (npm run bench:fleet).
"use strict";
const fs = require("fs");
const path = require("path");
const { buildSync } = require("esbuild");

const OUT = path.join(__dirname, "..", "node_modules/.cache/agent-host/agents.js");

const text = buildSync({
  entryPoints: [path.join(__dirname, "agents.ts")],
  bundle: true,
  platform: "node",
  target: "node18",
  write: false,
  logLevel: "warning",
}).outputFiles[0].text;
let current;
try {
  current = fs.readFileSync(OUT, "utf8");
} catch {
  current = undefined;
}
if (current !== text) {
  // Written whole, then renamed: two calls at once never run half a file.
  fs.mkdirSync(path.dirname(OUT), { recursive: true });
  const partial = `${OUT}.${process.pid}`;
  fs.writeFileSync(partial, text);
  fs.renameSync(partial, OUT);
}
require(OUT).cli(process.argv.slice(2));
