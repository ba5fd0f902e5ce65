// config.ts's hostNamesFor: host 1 keeps the one-host stack's names exactly (its URNs and GCE
// names are a contract, tests/urns.test.ts); host N adds -N; a name GCE would refuse, or two
// hosts sharing a service account ID once cut to 30 characters, is refused before anything runs.
import { ConfigError, hostNamesFor, resourceNames } from "../config";

test("host 1 is the one-host stack; hosts 2 and 3 add -2 and -3", () => {
  const names = resourceNames("acme-agents", "dev");
  const hosts = hostNamesFor(names, 3);
  expect(hosts[0]).toEqual({ ...names, index: 1, label: "host-1", resource: "agent-host" });
  expect(hosts.slice(1)).toEqual([
    {
      index: 2,
      label: "host-2",
      resource: "agent-host-2",
      instance: "acme-agents-dev-2",
      dataDisk: "acme-agents-dev-2-data",
      serviceAccountId: "ah-dev-2",
    },
    {
      index: 3,
      label: "host-3",
      resource: "agent-host-3",
      instance: "acme-agents-dev-3",
      dataDisk: "acme-agents-dev-3-data",
      serviceAccountId: "ah-dev-3",
    },
  ]);
});

test("a long stack name: service account IDs are cut before the suffix and stay 30 characters", () => {
  const names = resourceNames("acme", "a-very-long-stack-name-for-tests");
  const hosts = hostNamesFor(names, 12);
  for (const h of hosts) expect(h.serviceAccountId.length).toBeLessThanOrEqual(30);
  expect(hosts[11].serviceAccountId).toBe("ah-a-very-long-stack-name-f-12");
  expect(new Set(hosts.map((h) => h.serviceAccountId)).size).toBe(12);
});

test("a VM name that would pass 50 characters with its suffix is refused, naming hostCount", () => {
  const names = resourceNames("acme-agents-project", "a-stack-name-of-thirty-chars-x");
  expect(names.instance.length).toBe(50);
  expect(() => hostNamesFor(names, 1)).not.toThrow();
  expect(() => hostNamesFor(names, 2)).toThrow(ConfigError);
  expect(() => hostNamesFor(names, 2)).toThrow(
    /^hostCount 2 names a VM "acme-agents-project-a-stack-name-of-thirty-chars-x-2"/,
  );
});

test("two hosts whose service account IDs would be the same once cut are refused", () => {
  // ah- + 27 characters ending in "-2": host 1's ID is host 2's once host 2's is cut for "-2".
  const names = resourceNames("acme", "aaaaaaaaaaaaaaaaaaaaaaaaa-2xyz");
  expect(names.serviceAccountId).toBe("ah-aaaaaaaaaaaaaaaaaaaaaaaaa-2");
  expect(() => hostNamesFor(names, 2)).toThrow(
    'hostCount 2 gives two hosts the service account ID "ah-aaaaaaaaaaaaaaaaaaaaaaaaa-2"',
  );
});
