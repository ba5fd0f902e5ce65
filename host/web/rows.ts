// The rows the dashboard pushes the moment a hook changes a state, pure (host/web/server.ts).
import type { Effective } from "../attention/effective";
import { stateFields, type StatusRow } from "../attention/status";

/**
 * The last gathered rows with the state columns of `effective`, in its order (those who need you
 * first); undefined when an agent has no gathered row yet (then only a full gather will do).
 */
export function patchRows(
  rows: readonly StatusRow[],
  effective: readonly Effective[],
): StatusRow[] | undefined {
  const byName = new Map(rows.map((r) => [r.name, r]));
  const out: StatusRow[] = [];
  for (const e of effective) {
    const row = byName.get(e.name);
    if (!row) return undefined;
    out.push({ ...row, ...stateFields(e, { state: row.state, text: row.why }) });
    byName.delete(e.name);
  }
  return [...out, ...rows.filter((r) => byName.has(r.name))];
}
