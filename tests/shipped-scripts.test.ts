// The shell scripts ship without their comments (cloud-init/files.ts, shippedScript). Proof that
// each one is still the same program: bash parses the source and the shipped text, each as the
// body of a function, and prints them back with `declare -f` (its own rendering of the parsed
// code: comments gone, strings and here-documents kept). The two must be identical.
import { spawnSync } from "child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import * as path from "path";
import { HOST_FILES, readHostFiles, shippedScript } from "../cloud-init/files";

const dir = mkdtempSync(path.join(tmpdir(), "shipped-scripts-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** What bash makes of `text`: the parsed program, printed back. */
function parsed(text: string): string {
  const file = path.join(dir, "script");
  writeFileSync(file, `shipped_script_body() {\n${text}\n}\ndeclare -f shipped_script_body\n`);
  const r = spawnSync("bash", [file], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`bash could not parse it: ${r.stderr}`);
  return r.stdout;
}

const scripts = readHostFiles().filter((f) => f.content.startsWith("#!/usr/bin/env bash\n"));

test("every bash script among the host files is stripped (else the list below is empty)", () => {
  expect(scripts.map((f) => f.source).sort()).toEqual(
    HOST_FILES.filter((f) =>
      readFileSync(path.join(__dirname, "../cloud-init", f.source), "utf8").startsWith(
        "#!/usr/bin/env bash\n",
      ),
    )
      .map((f) => f.source)
      .sort(),
  );
  expect(scripts.length).toBeGreaterThanOrEqual(9);
});

test.each(scripts.map((f) => [f.source, f] as const))(
  "%s ships as the same program as its source, without its comments",
  (source, shipped) => {
    const original = readFileSync(path.join(__dirname, "../cloud-init", source), "utf8");
    expect(shipped.content.length).toBeLessThan(original.length);
    expect(parsed(shipped.content)).toBe(parsed(original));
  },
);

describe("shippedScript", () => {
  it("keeps here-documents, strings and a shebang; drops comments and blank lines", () => {
    const src = [
      "#!/usr/bin/env bash",
      "# a comment",
      "",
      "cat <<'EOF'",
      "# data, not a comment",
      "",
      "EOF",
      "  # indented comment",
      "echo '# not a comment' # trailing",
      "cat <<-END",
      "\t# tabbed data",
      "\tEND",
      "echo done",
      "",
    ].join("\n");
    expect(shippedScript(src)).toBe(
      [
        "#!/usr/bin/env bash",
        "cat <<'EOF'",
        "# data, not a comment",
        "",
        "EOF",
        "echo '# not a comment' # trailing",
        "cat <<-END",
        "\t# tabbed data",
        "\tEND",
        "echo done",
        "",
      ].join("\n"),
    );
    expect(parsed(shippedScript(src))).toBe(parsed(src));
  });

  it("leaves files that are not bash scripts as they are", () => {
    const unit = "# a unit\n[Service]\nExecStart=/bin/true\n";
    expect(shippedScript(unit)).toBe(unit);
  });
});
