// Work hours: the optional start/stop schedule of the VM, parsed from four config keys and turned
// into the unix-cron lines of a GCE instance schedule (compute.ResourcePolicy
// instanceSchedulePolicy). Pure: no Pulumi import; config.ts calls parseWorkHours, the AgentHost
// component gets the WorkSchedule.
import { ConfigError } from "./config-error";

/** Day names as the config takes them, in cron's order (0 = Sunday). */
export const WEEKDAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"] as const;

export const WORK_HOURS_DEFAULTS = {
  workHoursStart: "",
  workHoursStop: "",
  workDays: "Mon-Fri",
  workTimeZone: "UTC",
} as const;

export interface WorkSchedule {
  /** "HH:MM" the VM starts on each work day; undefined: the schedule never starts it. */
  start?: string;
  /** "HH:MM" the VM stops; undefined: the schedule never stops it. */
  stop?: string;
  /** Work days, cron numbering (0 = Sunday), ascending, no duplicates. */
  days: number[];
  /** IANA time zone the times are in. */
  timeZone: string;
}

export interface ScheduleCrons {
  vmStartSchedule?: string;
  vmStopSchedule?: string;
}

const show = (value: string) => JSON.stringify(value);

function parseTime(key: string, raw: string | undefined): string | undefined {
  const text = raw?.trim();
  if (!text) return undefined;
  const match = /^([01]?\d|2[0-3]):([0-5]\d)$/.exec(text);
  if (!match) {
    throw new ConfigError(
      `${key} must be a time of day as HH:MM (24-hour clock, e.g. 08:30 or 19:00); got ${show(text)}. Run: pulumi config set ${key} ${key === "workHoursStart" ? "08:00" : "19:00"}`,
    );
  }
  return `${match[1].padStart(2, "0")}:${match[2]}`;
}

/**
 * "Mon-Fri", "Mon,Wed,Fri", "Sun-Thu" or a mix ("Mon-Wed,Fri"); names are three letters, any case.
 * A range may wrap the week end ("Fri-Mon").
 */
export function parseWorkDays(raw: string): number[] {
  const fix = `Use three-letter day names, ranges and commas, e.g. Mon-Fri or Mon,Wed,Fri. Run: pulumi config set workDays Mon-Fri`;
  const index = (name: string): number => {
    const i = WEEKDAYS.findIndex((d) => d.toLowerCase() === name.trim().toLowerCase());
    if (i < 0)
      throw new ConfigError(
        `workDays has ${show(name.trim())}, not a day name; got ${show(raw)}. ${fix}`,
      );
    return i;
  };
  const text = raw.trim();
  if (!text) throw new ConfigError(`workDays is empty; the VM would never start or stop. ${fix}`);
  const days = new Set<number>();
  for (const part of text.split(",")) {
    const bounds = part.split("-");
    if (bounds.length > 2 || bounds.some((b) => b.trim() === "")) {
      throw new ConfigError(
        `workDays must be day names, ranges and commas; got ${show(raw)}. ${fix}`,
      );
    }
    const first = index(bounds[0]);
    const last = bounds.length === 2 ? index(bounds[1]) : first;
    for (let d = first, n = 0; n < 7; d = (d + 1) % 7, n++) {
      days.add(d);
      if (d === last) break;
    }
  }
  return [...days].sort((a, b) => a - b);
}

/**
 * Whether GCE (which takes IANA tz database names) would accept the zone, judged by Node's ICU
 * copy of the same database. Returns the canonical spelling when only the case differs.
 */
export function checkTimeZone(zone: string): { valid: boolean; suggestion?: string } {
  if (!/^[A-Za-z][A-Za-z0-9_+\-/]*$/.test(zone)) return { valid: false };
  let resolved: string;
  try {
    resolved = new Intl.DateTimeFormat("en-US", { timeZone: zone }).resolvedOptions().timeZone;
  } catch {
    return { valid: false };
  }
  if (resolved !== zone && resolved.toLowerCase() === zone.toLowerCase()) {
    return { valid: false, suggestion: resolved };
  }
  return { valid: true };
}

/** Reads the four work-hour keys; undefined when neither time is set (no schedule). */
export function parseWorkHours(
  get: (key: keyof typeof WORK_HOURS_DEFAULTS) => string | undefined,
): WorkSchedule | undefined {
  const start = parseTime("workHoursStart", get("workHoursStart"));
  const stop = parseTime("workHoursStop", get("workHoursStop"));
  const days = parseWorkDays(get("workDays")?.trim() || WORK_HOURS_DEFAULTS.workDays);
  const timeZone = get("workTimeZone")?.trim() || WORK_HOURS_DEFAULTS.workTimeZone;
  const zone = checkTimeZone(timeZone);
  if (!zone.valid) {
    throw new ConfigError(
      `workTimeZone must be an IANA time zone name such as Europe/Berlin or America/New_York; got ${show(timeZone)}.${zone.suggestion ? ` Did you mean ${zone.suggestion}?` : ""} Run: pulumi config set workTimeZone ${zone.suggestion ?? "Europe/Berlin"}`,
    );
  }
  if (start === undefined && stop === undefined) return undefined;
  if (start !== undefined && start === stop) {
    throw new ConfigError(
      `workHoursStart and workHoursStop are both ${start}; the VM would start and stop at once. Run: pulumi config set workHoursStop 19:00`,
    );
  }
  return { start, stop, days, timeZone };
}

/** Compact cron day list: 1-5 for Mon-Fri, 0,6 for the weekend. */
function cronDays(days: readonly number[]): string {
  if (days.length === 7) return "*";
  const parts: string[] = [];
  for (let i = 0; i < days.length;) {
    let j = i;
    while (j + 1 < days.length && days[j + 1] === days[j] + 1) j++;
    parts.push(j - i >= 2 ? `${days[i]}-${days[j]}` : days.slice(i, j + 1).join(","));
    i = j + 1;
  }
  return parts.join(",");
}

const cron = (time: string, days: readonly number[]) => {
  const [hours, minutes] = time.split(":").map(Number);
  return `${minutes} ${hours} * * ${cronDays(days)}`;
};

/**
 * The instance schedule's cron lines. A stop earlier than the start ends a night shift: it fires
 * the morning after each work day.
 */
export function scheduleCrons(schedule: WorkSchedule): ScheduleCrons {
  const { start, stop, days } = schedule;
  const overnight = start !== undefined && stop !== undefined && stop < start;
  const stopDays = overnight
    ? [...new Set(days.map((d) => (d + 1) % 7))].sort((a, b) => a - b)
    : days;
  return {
    ...(start !== undefined ? { vmStartSchedule: cron(start, days) } : {}),
    ...(stop !== undefined ? { vmStopSchedule: cron(stop, stopDays) } : {}),
  };
}
