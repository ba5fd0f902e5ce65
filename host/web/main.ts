// `agentctl web` (agent-host.js web):
//   web                 the dashboard server in the foreground (what agent-host-web.service runs)
//   web --url           print http://127.0.0.1:PORT/#token=TOKEN (root: the token is root-only)
//   web --rotate-token  replace the token; pages holding the old one get 401 from the next request
import * as path from "path";
import { firstErrorOf, loadHostConf } from "../conf/conf";
import { UsageError } from "../agents/send";
import { Dashboard } from "./server";
import { dashboardUrl, ensureToken, writeToken } from "./token";

const USAGE = "usage: agentctl web [--url | --rotate-token]";

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
