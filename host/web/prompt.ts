// Which dialog an agent's pane shows, and the one key that answers it, pure. Read from the real
// Claude Code 2.1.331 in tmux against the Messages-API stand-in (the browser suite,
// tests/dashboard.test.ts, drives each of these for real):
//
//   permission (Bash):                     question (AskUserQuestion):
//    Do you want to proceed?                ☐ DB
//    ❯ 1. Yes                               Which db?
//      2. Yes, and always allow access …    ❯ 1. Postgres
//      3. Yes, and switch to auto mode …         rel
//      4. No                                  2. SQLite
//                                                emb
//    Esc to cancel · Tab to amend             3. Type something.
//                                             ────────
//                                             4. Chat about this
//                                            Enter to select · ↑/↓ to navigate · Esc to cancel
//
// A question of several parts (one AskUserQuestion with two questions) shows its parts one after
// the other, each as above, a digit moving on to the next; then a review with no footer at all:
//
//   ←  ☒ Database  ☒ Cache  ✔ Submit  →
//   Review your answers
//    ● Which database for …?
//      → Postgres
//    ● Which cache for …?
//      → Memcached
//   ❯ 1. Submit answers
//     2. Cancel
//
// A question that takes several options (multiSelect) boxes them, and a digit ticks or unticks
// its option; Right moves on (to its next part, or to the review above, the only way to submit):
//
//   ←  ☐ Database  ✔ Submit  →
//   Which database?
//   ❯ 1. [✔] Postgres
//            relational
//     2. [ ] SQLite
//            embedded
//     3. [ ] Type something
//        Submit
//   ────────
//     4. Chat about this
//   Enter to select · ↑/↓ to navigate · Esc to cancel
//
// A digit picks its option at once (no Enter): "1" runs the tool, the digit of "No" refuses it
// (as Esc does: "Interrupted · What should Claude do instead?"), a question's digit answers it
// ("Which db? → SQLite" in the tool result; on the review, 1 sends every part's answer). "Type
// something." opens text input instead of answering, so it is not offered. "Chat about this" takes
// no digit: the cursor goes to it (↑/↓, one line at a time) and Enter picks it. It declines the
// question and tells the model "The user wants to clarify these questions … Start by asking them
// what they would like to clarify", and the agent is idle again, for the lead's next message.

export interface PromptOption {
  n: number;
  label: string;
  /** A question that takes several options: whether this one is ticked. */
  checked?: boolean;
}

export interface Prompt {
  kind: "permission" | "question";
  options: PromptOption[];
  /** A question that takes several options: digits tick them, "next" moves on. */
  multiSelect?: boolean;
  /** A question's "Chat about this": its number, which no digit picks (see above). */
  chat?: number;
  /** A question's option the cursor (❯) is on; none when it is on a line without a number. */
  cursor?: number;
}

const OPTION_RE = /^\s*(❯\s*)?([1-9])\.\s+(\S.*?)\s*$/;
const FOOTER_RE = /Esc to cancel/;
const CHAT = "Chat about this";
const NOT_ANSWERS = new Set(["Type something.", "Type something", CHAT]);
/** An option of a question that takes several: "[ ] label" or "[✔] label". */
const BOX_RE = /^\[( |✔)\]\s+(\S.*)$/;
/** The key that moves a question that takes several options on (a tmux key name, not text). */
export const NEXT_KEY = "Right";
/** The keys that take the cursor to "Chat about this" and pick it (tmux key names, not text). */
const CHAT_KEYS = ["Down", "Up", "Enter"];
/** The tmux key names the dashboard sends; any other key goes as literal text (keyArgs). */
const KEY_NAMES = new Set<string>([NEXT_KEY, ...CHAT_KEYS]);
/** The review of a question of several parts: this heading, then exactly these two options. */
const REVIEW_RE = /^\s*Review your answers\s*$/;
const REVIEW_OPTIONS = ["Submit answers", "Cancel"];

/**
 * The last run of options numbered 1, 2, 3 … in `lines` (a reply above may hold a list too), and
 * the option of that run the cursor (❯) is on.
 */
function lastRun(lines: readonly string[]): { run: PromptOption[]; cursor?: number } {
  let run: PromptOption[] = [];
  let cursor: number | undefined;
  for (const line of lines) {
    const m = OPTION_RE.exec(line);
    if (!m) continue;
    const n = Number(m[2]);
    if (n === 1) [run, cursor] = [[{ n, label: m[3] }], undefined];
    else if (run.length > 0 && n === run[run.length - 1].n + 1) run.push({ n, label: m[3] });
    else continue;
    if (m[1]) cursor = n;
  }
  return { run, cursor };
}

/**
 * The review of a question of several parts, which has no footer: its two options must be the
 * pane's last lines, under the heading "Review your answers" (the input box and its footer stand
 * below anything the model writes, so a reply cannot end the pane this way).
 */
function review(lines: readonly string[]): Prompt | undefined {
  const tail = lines.slice(-REVIEW_OPTIONS.length).map((l) => OPTION_RE.exec(l));
  if (tail.some((m, k) => m?.[2] !== String(k + 1) || m?.[3] !== REVIEW_OPTIONS[k]))
    return undefined;
  if (!lines.slice(0, -REVIEW_OPTIONS.length).some((l) => REVIEW_RE.test(l))) return undefined;
  return { kind: "question", options: REVIEW_OPTIONS.map((label, k) => ({ n: k + 1, label })) };
}

/**
 * The dialog at the bottom of a pane, or undefined when none shows: the last run of options
 * numbered 1, 2, 3 … above Claude Code's footer ("Esc to cancel"), or a question's review.
 */
export function parsePrompt(pane: string): Prompt | undefined {
  const lines = pane.replace(/\s+$/, "").split("\n");
  const footer = lines.map((l) => FOOTER_RE.test(l)).lastIndexOf(true);
  if (footer < 0) return review(lines);
  const { run, cursor } = lastRun(lines.slice(0, footer));
  if (run.length < 2) return undefined;
  if (run[0].label === "Yes" && run.some((o) => o.label === "No"))
    return { kind: "permission", options: run };
  const chat = run.find((o) => o.label === CHAT)?.n;
  return { ...question(run), ...(chat === undefined ? {} : { chat, cursor }) };
}

/** A question's options: the boxed ones of a question that takes several, or the plain ones. */
function question(run: readonly PromptOption[]): Prompt {
  const boxed = run.map((o) => ({ o, m: BOX_RE.exec(o.label) }));
  const answers = boxed.filter(({ o }) => !NOT_ANSWERS.has(o.label));
  if (answers.length > 0 && answers.every(({ m }) => m)) {
    const options = boxed.flatMap(({ o, m }) =>
      m && !NOT_ANSWERS.has(m[2]) ? [{ n: o.n, label: m[2], checked: m[1] === "✔" }] : [],
    );
    return { kind: "question", options, multiSelect: true };
  }
  return { kind: "question", options: run.filter((o) => !NOT_ANSWERS.has(o.label)) };
}

export type AnswerAction = "approve" | "deny" | "option" | "next" | "chat";

/** send-keys' arguments for a key answerKey chose: a digit as a literal key, KEY_NAMES by name. */
export const keyArgs = (key: string): string[] => (KEY_NAMES.has(key) ? [key] : ["-l", key]);

/** The key to send for an answer, or why it cannot be given to this prompt. */
export function answerKey(
  prompt: Prompt | undefined,
  action: AnswerAction,
  option?: number,
): { key: string } | { refused: string } {
  if (!prompt) return { refused: "no dialog shows in its pane" };
  if (action === "approve" || action === "deny") {
    if (prompt.kind !== "permission")
      return { refused: "its dialog is a question, not a permission; pick an option" };
    const label = action === "approve" ? "Yes" : "No";
    const o = prompt.options.find((x) => x.label === label);
    return o ? { key: String(o.n) } : { refused: `its dialog has no '${label}' option` };
  }
  if (prompt.kind !== "question")
    return { refused: "its dialog asks for a permission; approve or deny it" };
  if (action === "chat") {
    if (prompt.chat === undefined) return { refused: `its question has no '${CHAT}'` };
    // One step at a time: the caller sends it, reads the pane again, and asks for the next.
    if (prompt.cursor === prompt.chat) return { key: "Enter" };
    return { key: prompt.cursor !== undefined && prompt.cursor > prompt.chat ? "Up" : "Down" };
  }
  if (action === "next")
    return prompt.multiSelect
      ? { key: NEXT_KEY }
      : { refused: "its question takes one option, and picking it moves on; pick an option" };
  const o = prompt.options.find((x) => x.n === option);
  return o
    ? { key: String(o.n) }
    : {
        refused: `its question has no option ${option ?? "?"} (options: ${prompt.options.map((x) => x.n).join(", ")})`,
      };
}
