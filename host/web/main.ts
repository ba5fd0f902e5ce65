// `agentctl web` (agent-host.js web):
//   web                 the dashboard server in the foreground (what agent-host-web.service runs)
//   web --url           print http://127.0.0.1:PORT/#token=TOKEN (root: the token is root-only)
//   web --rotate-token  replace the token; pages holding the old one get 401 from the next request
import * as path from "path";
import { firstErrorOf, loadHostConf } from "../conf/conf";
import { UsageError } from "../agents/send";
import { faultLine } from "../agents/reconcile";
import { Dashboard } from "./server";
import { dashboardUrl, ensureToken, writeToken } from "./token";

const USAGE = "usage: agentctl web [--url | --rotate-token]";

/**
 * `agent-host.js web`, straight from host/main.ts rather than through host/commands.ts: the
 * server then loads only what it uses (no reconcile, monitor, notifier, https, autostop), which
 * keeps the long-running process ~0.7 MiB smaller (docs/dashboard.md, "Memory"). Errors end as
 * commands.ts ends them: a usage error, exit 2; any other fault in one line, exit 1.
 */
export async function webCommand(argv: string[]): Promise<number> {
  const log = (line: string): void => void process.stderr.write(`agentctl: ${line}\n`);
  try {
    return await webMain(argv, log);
  } catch (error) {
    if (error instanceof UsageError) {
      log(error.message);
      return 2;
    }
    const e = error as NodeJS.ErrnoException;
    const retry = `agentctl ${["web", ...argv].join(" ")}`;
    log(
      typeof e?.code === "string"
        ? faultLine(e, "", retry)
        : (e?.message ?? String(error)).replace(/\s*\n\s*/g, " "),
    );
    return 1;
  }
}

export async function webMain(argv: string[], log: (line: string) => void): Promise<number> {
  if (argv.length > 1 || (argv.length === 1 && !["--url", "--rotate-token"].includes(argv[0])))
    throw new UsageError(`web: unknown argument '${argv.join(" ")}'. ${USAGE}`);
  const conf = loadHostConf();
  const bad = firstErrorOf(conf, ["dashboardPort", "dashboardTokenFile", "tmuxSocket"]);
  if (bad) throw new UsageError(bad);
  if (typeof process.getuid === "function" && process.getuid() !== 0)
    throw new UsageError("web: run it as root (sudo agentctl web ...): the token is root-only");
  const port = conf.dashboardPort;
  const file = conf.dashboardTokenFile;
  if (argv[0] === "--url") {
    process.stdout.write(`${dashboardUrl(port, ensureToken(file))}\n`);
    return 0;
  }
  if (argv[0] === "--rotate-token") {
    writeToken(file);
    log(
      `web: a new token is in ${file}; pages with the old one get 401. Get the URL: sudo agentctl web --url`,
    );
    return 0;
  }
  ensureToken(file);
  // The recorder is this very bundle (on the VM /usr/local/lib/agent-host/agent-host.js, what the
  // managed hooks run), under the Node that runs this server.
  const recorder = [process.execPath, path.resolve(process.argv[1]), "hook"];
  const dashboard = new Dashboard({ conf, port, tokenFile: file, log, recorder });
  await dashboard.listen();
  log(
    `web: the dashboard listens on http://127.0.0.1:${port}/ (sudo agentctl web --url gives the link)`,
  );
  const stop = () => void dashboard.close().then(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  return new Promise<number>(() => undefined);
}
