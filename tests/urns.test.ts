// The stack's URNs are a contract: the engine finds a resource's state by its URN (the parent's
// type chain, the type and the name: tests/engine/urn.ts), so a rename or a move out of a
// component without an alias makes the next `up` create a second resource of the same GCE name,
// which GCE refuses, and delete the first. Pinned here; a change to this list needs an alias in
// the program (`aliases: [...]`), and then the second test shows the state still matches.
import { BASE_CONFIG, runProgram } from "./harness";
import { LifecycleEngine, type StateEntry } from "./engine/lifecycle";
import { urnName, urnType } from "./engine/urn";

jest.setTimeout(120_000);

const STACK = "urn:pulumi:dev::agent-host::";
const HOST = "agent-host:host:AgentHost";
const FLEET = "agent-host:fleet:AgentFleet";

/** Every URN of the default configuration, as the engine names them. */
const PINNED = [
  `${STACK}${HOST}::agent-host`,
  `${STACK}tls:index/privateKey:PrivateKey::deploy-key`,
  `${STACK}${HOST}$gcp:compute/address:Address::agent-host-ip`,
  `${STACK}${HOST}$gcp:compute/resourcePolicy:ResourcePolicy::agent-host-snapshots`,
  `${STACK}${HOST}$gcp:serviceaccount/account:Account::agent-host-sa`,
  `${STACK}${HOST}$gcp:compute/disk:Disk::agent-host-data`,
  `${STACK}${HOST}$gcp:compute/firewall:Firewall::agent-host-ssh`,
  `${STACK}${HOST}$gcp:compute/diskResourcePolicyAttachment:DiskResourcePolicyAttachment::agent-host-data-snapshots`,
  `${STACK}${HOST}$gcp:compute/instance:Instance::agent-host-vm`,
  `${STACK}${FLEET}::agent-host`,
  `${STACK}${FLEET}$command:remote:Command::agent-host-reconcile`,
  // The VM's SSH host key, pinned at creation, and its check (issue 23).
  `${STACK}${FLEET}$command:local:Command::agent-host-hostkey`,
  `${STACK}${FLEET}$command:local:Command::agent-host-hostkey-check`,
  // Whatever answers for the VM must prove the pinned key before the reconcile connects.
  `${STACK}${FLEET}$command:local:Command::agent-host-hostkey-probe`,
];

/** What Vertex AI and work hours add. */
const PINNED_OPTIONAL = [
  `${STACK}${HOST}$gcp:projects/iAMMember:IAMMember::agent-host-aiplatform-user`,
  `${STACK}${HOST}$gcp:compute/resourcePolicy:ResourcePolicy::agent-host-work-hours`,
  `${STACK}${HOST}$gcp:projects/iAMCustomRole:IAMCustomRole::agent-host-start-stop`,
  `${STACK}${HOST}$gcp:compute/instanceIAMMember:InstanceIAMMember::agent-host-schedule-agent`,
];

const sorted = (urns: string[]) => [...urns].sort();

test("the default configuration registers exactly the pinned URNs", async () => {
  const run = await runProgram({ ...BASE_CONFIG });
  expect(sorted(run.resources.map((r) => r.urn))).toEqual(sorted(PINNED));
});

test("Vertex AI and work hours add exactly the pinned URNs", async () => {
  const run = await runProgram({
    ...BASE_CONFIG,
    "agent-host:claudeProvider": "vertex",
    "agent-host:workHoursStart": "08:00",
    "agent-host:workHoursStop": "19:00",
    "agent-host:workTimeZone": "Europe/Berlin",
  });
  expect(sorted(run.resources.map((r) => r.urn))).toEqual(sorted([...PINNED, ...PINNED_OPTIONAL]));
});

/**
 * The state as the release that pinned PINNED wrote it: each entry of `engine`'s state under the
 * pinned URN of the same resource (the only pinned URN of its type, else the one of its type and
 * name), with parents and dependencies renamed alike.
 */
function asPinnedRelease(engine: LifecycleEngine): void {
  const pinnedFor = (entry: StateEntry): string => {
    const ofType = PINNED.filter((urn) => urnType(urn) === entry.type);
    if (ofType.length === 1) return ofType[0];
    return ofType.find((urn) => urnName(urn) === entry.name) ?? entry.urn;
  };
  const renamed = new Map([...engine.state.values()].map((e) => [e.urn, pinnedFor(e)]));
  const rename = (urn: string) => renamed.get(urn) ?? urn;
  engine.state = new Map(
    [...engine.state.values()].map((entry) => {
      const urn = rename(entry.urn);
      return [
        urn,
        {
          ...entry,
          urn,
          name: urnName(urn),
          parent: entry.parent && rename(entry.parent),
          dependencies: entry.dependencies.map(rename),
          deletedWith: entry.deletedWith && rename(entry.deletedWith),
        },
      ];
    }),
  );
}

test("an up over a stack the pinned release deployed changes nothing: every resource is found by its URN or an alias", async () => {
  const engine = new LifecycleEngine();
  try {
    const config = { ...BASE_CONFIG, "agent-host:agentCount": "10" };
    const first = await engine.up(config);
    expect(first.error).toBeUndefined();
    asPinnedRelease(engine);
    expect(sorted([...engine.state.keys()])).toEqual(sorted(PINNED));
    const next = await engine.up(config);
    // A URN that moved without an alias: a create of the new one, refused by GCE for a named
    // object ("already exists"), or a second object beside the first for an unnamed one.
    expect(next.error).toBeUndefined();
    expect(next.steps).toEqual([]);
  } finally {
    engine.dispose();
  }
});
