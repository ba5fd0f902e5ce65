// The README's configuration table, generated from config-keys.ts (the one declaration of every
// key): `npm run docs:config` rewrites it between its markers, and tests/config-keys.test.ts
// fails when the README's text is not exactly what this renders.
import { readFileSync, writeFileSync } from "fs";
import * as path from "path";
import { CONFIG_KEY_TABLE, type ConfigKeySpec } from "../config-keys";

export const TABLE_BEGIN =
  "<!-- config-table: generated from config-keys.ts by `npm run docs:config`; edit that file -->";
export const TABLE_END = "<!-- config-table: end -->";

const README = path.join(__dirname, "..", "README.md");

/** The default cell: "required" (no default), "unset" (an optional ""), else the value. */
function defaultCell(spec: ConfigKeySpec): string {
  if (spec.default === undefined) return "required";
  if (spec.default === "") return "unset";
  return `\`${typeof spec.default === "string" ? spec.default : JSON.stringify(spec.default)}\``;
}

export function renderConfigTable(): string {
  const rows = Object.entries(CONFIG_KEY_TABLE).map(
    ([key, spec]: [string, ConfigKeySpec]) =>
      `| \`${key}\` | ${defaultCell(spec)} | ${spec.description.replace(/\|/g, "\\|")} |`,
  );
  return ["| key | default | description |", "| --- | --- | --- |", ...rows].join("\n");
}

/** The README's text between the markers (exclusive), or undefined when a marker is missing. */
export function readmeTable(readme: string): string | undefined {
  const begin = readme.indexOf(TABLE_BEGIN);
  const end = readme.indexOf(TABLE_END);
  if (begin === -1 || end < begin) return undefined;
  return readme.slice(begin + TABLE_BEGIN.length, end).trim();
}

function main(): void {
  const readme = readFileSync(README, "utf8");
  if (readmeTable(readme) === undefined) {
    throw new Error(`README.md lacks the markers ${TABLE_BEGIN} … ${TABLE_END}`);
  }
  const begin = readme.indexOf(TABLE_BEGIN) + TABLE_BEGIN.length;
  const end = readme.indexOf(TABLE_END);
  const next = `${readme.slice(0, begin)}\n${renderConfigTable()}\n${readme.slice(end)}`;
  if (next === readme) {
    process.stderr.write("README.md's configuration table is up to date\n");
    return;
  }
  writeFileSync(README, next);
  process.stderr.write("rewrote README.md's configuration table from config-keys.ts\n");
}

if (require.main === module) {
  try {
    main();
  } catch (error) {
    process.stderr.write(`docs:config: ${(error as Error).message}\n`);
    process.exit(1);
  }
}
