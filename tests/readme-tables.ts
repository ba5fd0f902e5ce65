// The README's markdown tables, read one way by every suite that checks them (readme.test.ts,
// config-keys.test.ts).

/** Rows of the markdown table that follows `## <heading>`: the first cell (backticks dropped) → every cell. */
export function tableRows(readme: string, heading: string): Map<string, string[]> {
  const start = readme.indexOf(`\n## ${heading}\n`);
  if (start === -1) throw new Error(`README.md has no "## ${heading}" section`);
  const section = readme.slice(start + 1).split(/\n## /)[0];
  const rows = section.split("\n").filter((line) => /^\| `[^`]+` \|/.test(line));
  return new Map(
    rows.map((line) => {
      const cells = line.split(" | ").map((cell) => cell.replace(/^\| |\|$/g, "").trim());
      return [cells[0].replace(/`/g, ""), cells];
    }),
  );
}

/** Rows of the markdown table that follows `## <heading>`: first cell → second cell. */
export function tableAfter(readme: string, heading: string): Map<string, string> {
  return new Map([...tableRows(readme, heading)].map(([key, cells]) => [key, cells[1]]));
}

/** A configuration table's default cell as Pulumi.yaml would hold it; undefined for required or unset. */
export function readmeDefault(cell: string): unknown {
  if (cell === "required" || cell === "unset") return undefined;
  const text = cell.replace(/`/g, "");
  if (/^-?\d+$/.test(text)) return Number(text);
  if (text === "true" || text === "false") return text === "true";
  if (text === "[]") return [];
  return text;
}
