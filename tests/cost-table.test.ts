// docs/cost.md's monthly costs ("Paying only for agents at work") follow from its own price table:
// VM hours × the hourly price, plus the disks, plus the address (running hours at the running
// rate, the rest of the 730-hour month at the stopped rate). A changed price without the sums
// (or the reverse) fails here.
import { readFileSync } from "fs";
import * as path from "path";

const doc = readFileSync(path.join(__dirname, "..", "docs", "cost.md"), "utf8");
const section = doc.startsWith("# Paying only for agents at work\n") ? doc : undefined;
const HOURS_PER_MONTH = 730;

const dollars = (cell: string) => {
  const m = /\$(\d+(?:\.\d+)?)/.exec(cell);
  if (!m) throw new Error(`no price in ${cell}`);
  return Number(m[1]);
};
const rows = (re: RegExp) =>
  (section ?? "")
    .split("\n")
    .filter((l) => re.test(l))
    .map((l) => l.split(" | ").map((c) => c.replace(/^\| |\s*\|$/g, "").trim()));

test("the section and both tables are there", () => {
  expect(section).toBeDefined();
  expect(rows(/^\| `e2-standard-8`, (on-demand|Spot) \|/)).toHaveLength(2);
  expect(rows(/^\| (always on|work hours only|auto-stop, typical day)/)).toHaveLength(3);
});

test("every monthly cost is hours × price + disks + address", () => {
  const price = (label: RegExp) => dollars(rows(label)[0][1]);
  const onDemand = price(/^\| `e2-standard-8`, on-demand \|/);
  const spot = price(/^\| `e2-standard-8`, Spot \|/);
  const disks = dollars(rows(/^\| `pd-balanced` disks/)[0][1].split(":")[1]);
  const ipRunning = price(/^\| static external IPv4, VM running \|/);
  const ipStopped = price(/^\| static external IPv4, VM stopped/);
  const month = (hours: number, rate: number) =>
    hours * rate + disks + hours * ipRunning + (HOURS_PER_MONTH - hours) * ipStopped;
  for (const [, hoursCell, onDemandCell, spotCell] of rows(
    /^\| (always on|work hours only|auto-stop, typical day)/,
  )) {
    const hours = Number(hoursCell);
    expect(dollars(onDemandCell)).toBeCloseTo(month(hours, onDemand), 1);
    expect(dollars(spotCell)).toBeCloseTo(month(hours, spot), 1);
  }
});

test("the hours are what the text says: always, 11 h × 21.7 work days, 9 h × 21.7 days", () => {
  const hours = rows(/^\| (always on|work hours only|auto-stop, typical day)/).map((r) =>
    Number(r[1]),
  );
  expect(hours).toEqual([HOURS_PER_MONTH, 11 * 21.7, 9 * 21.7].map((h) => Math.round(h * 10) / 10));
});

test("the price table says where and when its prices are from", () => {
  expect(section).toMatch(/us-central1/);
  expect(section).toMatch(/June 2025/);
});
