// The strace log reader behind the secret-leak checks (tests/fixtures/exec-trace.ts), on lines
// strace 6.1 printed on this machine (`strace -f -e trace=execve,clone… -s 4096 -v`).
import { parseStrace, secretExposures, underProgram } from "./fixtures/exec-trace";

const KEY = "sk-ant-api03-TRACECANARY";
const LOG = [
  `100 execve("/usr/bin/sudo", ["sudo", "-n", "/usr/local/lib/agent-host/apply"], ["PATH=/usr/bin", "A=x\\"y\\\\z"]) = 0`,
  `100 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f) = 101`,
  `101 execve("/usr/local/lib/agent-host/agent-wrapper", ["agent-wrapper", "1"], ["PATH=/usr/bin"]) = 0`,
  `101 execve("/opt/claude", ["claude", "--resume", "abc"], ["ANTHROPIC_API_KEY=${KEY}", "B=tab\\there"] <unfinished ...>`,
  `102 <... clone resumed>, child_tidptr=0x7f) = 103`,
  `101 <... execve resumed>) = 0`,
  `101 clone3({flags=CLONE_VM|CLONE_VFORK, exit_signal=SIGCHLD, stack=0x7f, stack_size=0x9000}, 88) = 104`,
  `104 execve("/bin/bash", ["bash", "-c", "echo \\"hi\\""], ["ANTHROPIC_API_KEY=${KEY}"]) = 0`,
  `100 +++ exited with 0 +++`,
].join("\n");

describe("parseStrace", () => {
  it("reads each exec's path, argv and environment, C escapes undone, and who forked it", () => {
    const execs = parseStrace(LOG);
    expect(execs.map((e) => [e.pid, e.path, e.argv, e.parent])).toEqual([
      [100, "/usr/bin/sudo", ["sudo", "-n", "/usr/local/lib/agent-host/apply"], undefined],
      [101, "/usr/local/lib/agent-host/agent-wrapper", ["agent-wrapper", "1"], 100],
      [101, "/opt/claude", ["claude", "--resume", "abc"], 100],
      [104, "/bin/bash", ["bash", "-c", 'echo "hi"'], 101],
    ]);
    expect(execs[0].env).toEqual(["PATH=/usr/bin", 'A=x"y\\z']);
    expect(execs[2].env).toEqual([`ANTHROPIC_API_KEY=${KEY}`, "B=tab\there"]);
  });
});

describe("secretExposures", () => {
  it("follows the fork chain through processes that never exec (a shell's subshells)", () => {
    const log = [
      `101 execve("/opt/claude", ["claude"], ["ANTHROPIC_API_KEY=${KEY}"]) = 0`,
      `101 clone(child_stack=NULL, flags=SIGCHLD) = 102`,
      `102 clone(child_stack=NULL, flags=SIGCHLD <unfinished ...>`,
      `102 <... clone resumed>, child_tidptr=0x7f) = 103`,
      `103 execve("/usr/bin/sort", ["sort"], ["ANTHROPIC_API_KEY=${KEY}"]) = 0`,
    ].join("\n");
    const execs = parseStrace(log);
    expect(execs[1].ancestors).toEqual([102, 101]);
    expect(secretExposures(execs, [KEY], underProgram("/opt/claude"))).toEqual([]);
  });

  it("allows the key only in the environment of the agent's claude and what it starts", () => {
    const execs = parseStrace(LOG);
    expect(secretExposures(execs, [KEY], underProgram("/opt/claude"))).toEqual([]);
    // Seen from another program's point of view, both are exposures.
    expect(secretExposures(execs, [KEY], underProgram("/opt/other"))).toEqual([
      "pid 101 /opt/claude: environment ANTHROPIC_API_KEY holds a secret",
      "pid 104 /bin/bash: environment ANTHROPIC_API_KEY holds a secret",
    ]);
  });

  it("counts setpriv before claude in one process as claude's own; flags the wrapper that forked it, and any argv", () => {
    const log = [
      `100 execve("/usr/local/lib/agent-host/agent-wrapper", ["agent-wrapper", "1"], ["K=${KEY}"]) = 0`,
      `100 clone(child_stack=NULL, flags=SIGCHLD) = 101`,
      `101 execve("/usr/bin/setpriv", ["setpriv", "--reuid=2000", "/opt/claude"], ["ANTHROPIC_API_KEY=${KEY}"]) = 0`,
      `101 execve("/opt/claude", ["claude", "--api-key", "${KEY}"], ["ANTHROPIC_API_KEY=${KEY}"]) = 0`,
    ].join("\n");
    expect(secretExposures(parseStrace(log), [KEY], underProgram("/opt/claude"))).toEqual([
      "pid 100 /usr/local/lib/agent-host/agent-wrapper: environment K holds a secret",
      "pid 101 /opt/claude: argv[2] holds a secret",
    ]);
  });
});
