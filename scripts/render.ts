// npm run --silent render -- [--config Pulumi.<stack>.yaml] [--set key=value …]
// Prints the user-data the stack would send for that config (defaults for the rest), rendered by
// the same functions the Pulumi program calls. Notes go to stderr, the user-data to stdout.
import { readFileSync } from "fs";
import { parse } from "yaml";
import { ConfigError, parseConfig, type RawConfig } from "../config";
import { hostSettingsFor } from "../cloud-init/host-config";
import { renderUserData } from "../cloud-init/render";

/** Values that do not change the user-data but that the parser requires. */
const PLACEHOLDERS: Record<string, string> = {
  "gcp:project": "example-project",
  "gcp:zone": "europe-west1-b",
  "agent-host:sshSourceRanges": JSON.stringify(["203.0.113.0/24"]),
};

function qualify(key: string): string {
  return key.includes(":") ? key : `agent-host:${key}`;
}

/** A stack file's `config:` map as raw strings, the way the engine hands it over. */
export interface StackFileConfig {
  raw: Record<string, string>;
  /** Keys whose values are encrypted (`secure:`): unreadable here, rendered as unset. */
  encrypted: string[];
}

export function rawFromStackFile(text: string): StackFileConfig {
  const doc = (parse(text) ?? {}) as { config?: Record<string, unknown> };
  const result: StackFileConfig = { raw: {}, encrypted: [] };
  for (const [key, value] of Object.entries(doc.config ?? {})) {
    // Secrets never enter the user-data (they travel on the reconcile command's stdin), so an
    // encrypted value is left out rather than replaced by a stand-in the parser would refuse.
    if (value !== null && typeof value === "object" && "secure" in (value as object)) {
      result.encrypted.push(qualify(key));
      continue;
    }
    result.raw[qualify(key)] = typeof value === "string" ? value : JSON.stringify(value);
  }
  return result;
}

export function renderFromArgs(argv: string[]): string {
  const raw: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--config") {
      const file = rawFromStackFile(readFileSync(argv[++i] ?? "", "utf8"));
      Object.assign(raw, file.raw);
      for (const key of file.encrypted) {
        process.stderr.write(
          `note: ${key} is encrypted; rendered as unset (secrets never enter the user-data).\n`,
        );
      }
    } else if (arg === "--set") {
      const pair = argv[++i] ?? "";
      const eq = pair.indexOf("=");
      if (eq < 1) throw new ConfigError(`--set wants key=value; got ${JSON.stringify(pair)}`);
      raw[qualify(pair.slice(0, eq))] = pair.slice(eq + 1);
    } else {
      throw new ConfigError(
        `unknown argument ${JSON.stringify(arg)}; usage: npm run --silent render -- [--config FILE] [--set key=value …]`,
      );
    }
  }
  for (const [key, value] of Object.entries(PLACEHOLDERS)) {
    if (raw[key] === undefined) raw[key] = value;
  }
  const { config, warnings } = parseConfig(raw as RawConfig);
  for (const warning of warnings) process.stderr.write(`warning: ${warning}\n`);
  process.stderr.write(
    "note: the stack also adds its deploy key (generated at deploy time) to the admin user's keys.\n",
  );
  return renderUserData(hostSettingsFor(config, config.sshAuthorizedKeys));
}

if (require.main === module) {
  // `npm run render | head` closes the pipe early: that is the reader's choice, not an error.
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code === "EPIPE") process.exit(0);
    throw error;
  });
  try {
    process.stdout.write(renderFromArgs(process.argv.slice(2)));
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(2);
  }
}
