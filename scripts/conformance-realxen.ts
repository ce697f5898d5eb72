/**
 * The comparison run (issue 17): every March conformance guest on tsxen (as a domU, as in
 * test/guests.test.ts) and on real Xen (as dom0, under QEMU: scripts/realxen.ts), check by
 * check. Each disagreement must be classified in docs/realxen-table.md; the run fails on an
 * unclassified one and on a "tsxen wrong" one, and names table rows that matched nothing.
 *
 *   TSXEN_REALXEN=/path/to/xen npm run conformance:realxen [-- conf_ldt conf_sched_op ...]
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { launchDomain } from "../src/tools/launch.js";
import { Hypervisor } from "../src/xen/hypervisor.js";
import { buildGuests } from "../test/support/guests.js";
import { realXenPath, runOnRealXen } from "./realxen.js";

export const CLASSES = [
  "tsxen wrong",
  "real Xen bug",
  "dom0 vs domU",
  "emulator artefact",
  "guest expectation wrong",
] as const;
type Class = (typeof CLASSES)[number];

export interface TableRow {
  guest: string;
  /** A check name, or a prefix ending in `*`. */
  check: string;
  cls: Class;
  why: string;
}

/** Guests whose command line names their own domain id (dom0 there, domain 1 on tsxen). */
const REALXEN_CMDLINE: Record<string, string> = { conf_grant_table: "self=0" };

/** The table's rows: `| guest | check | class | why |`, after the header and its rule. */
export function parseTable(md: string): TableRow[] {
  const rows: TableRow[] = [];
  for (const [i, line] of md.split("\n").entries()) {
    const m = /^\|\s*(conf_\w+)\s*\|\s*`?([^|`]+?)`?\s*\|\s*([^|]+?)\s*\|\s*(.*?)\s*\|\s*$/.exec(line);
    if (!m) continue;
    if (!(CLASSES as readonly string[]).includes(m[3]))
      throw new Error(`docs/realxen-table.md line ${i + 1}: unknown class "${m[3]}"`);
    rows.push({ guest: m[1], check: m[2], cls: m[3] as Class, why: m[4] });
  }
  return rows;
}

type Outcome = { kind: "PASS" | "FAIL" | "SKIP"; line: string };

/** Each check's outcome in a console, by name: PASS, FAIL, or SKIP (privileged, CHECK_UNPRIV). */
export function outcomes(text: string): Map<string, Outcome> {
  const out = new Map<string, Outcome>();
  for (const m of text.matchAll(/^(PASS|FAIL|SKIP) ([^\s:]+).*$/gm))
    out.set(m[2], { kind: m[1] as Outcome["kind"], line: m[0] });
  return out;
}

/** A guest's console on tsxen: a domU, privileged for conf_*_priv (as in test/guests.test.ts). */
function onTsxen(path: string): string {
  const chunks: Uint8Array[] = [];
  const hv = new Hypervisor({ memoryMiB: 64, onConsole: (_d, b) => void chunks.push(b.slice()) });
  const privileged = /_priv\.elf$/.test(path);
  launchDomain(hv, { name: "conf", image: readFileSync(path), memoryMiB: 16, privileged });
  hv.run(5e9);
  return Buffer.concat(chunks).toString("latin1");
}

const matches = (row: TableRow, guest: string, check: string): boolean =>
  row.guest === guest &&
  (row.check.endsWith("*") ? check.startsWith(row.check.slice(0, -1)) : row.check === check);

async function main(only: string[]): Promise<number> {
  const xen = realXenPath();
  const root = fileURLToPath(new URL("../..", import.meta.url));
  const table = parseTable(readFileSync(join(root, "docs", "realxen-table.md"), "utf8"));
  const used = new Set<TableRow>();
  const dir = buildGuests();
  const guests = readdirSync(dir)
    .filter((f) => /^conf_\w+\.elf$/.test(f))
    .map((f) => f.replace(/\.elf$/, ""))
    .filter((g) => only.length === 0 || only.includes(g))
    .sort();
  let agreeAll = 0;
  let bad = 0;
  const byClass = new Map<string, number>();
  for (const g of guests) {
    const path = join(dir, `${g}.elf`);
    const ts = outcomes(onTsxen(path));
    // One QEMU at a time: it is CPU-heavy on a shared machine.
    const run = await runOnRealXen(xen, path, { cmdline: REALXEN_CMDLINE[g], timeoutMs: 90_000 });
    const rx = outcomes(run.guest);
    const names = [...new Set([...ts.keys(), ...rx.keys()])];
    const disagree = names.filter((n) => ts.get(n)?.kind !== rx.get(n)?.kind);
    agreeAll += names.length - disagree.length;
    console.log(
      `${g}: ${names.length - disagree.length} agree, ${disagree.length} disagree (real Xen: ${run.end})`,
    );
    for (const n of disagree) {
      // A check the guest itself skipped as dom0 (CHECK_UNPRIV) needs no row.
      const row = table.find((r) => matches(r, g, n));
      // (tsxen absent: a check printed only when it fails, such as conf_dom0_op_unpriv's cmd_N.)
      const declared = rx.get(n)?.kind === "SKIP" && ts.get(n)?.kind !== "FAIL";
      const cls = declared ? "dom0 vs domU (skipped by the guest)" : (row?.cls ?? "UNCLASSIFIED");
      if (row && !declared) used.add(row);
      if (!declared && (!row || row.cls === "tsxen wrong")) bad++;
      byClass.set(cls, (byClass.get(cls) ?? 0) + 1);
      console.log(
        `  ${n}: tsxen ${ts.get(n)?.kind ?? "absent"}, real Xen ${rx.get(n)?.kind ?? "absent"} -> ${cls}`,
      );
      if (rx.get(n)?.kind === "FAIL") console.log(`    real Xen: ${rx.get(n)?.line}`);
    }
  }
  console.log(`\n${agreeAll} checks agree; disagreements by class:`);
  for (const [c, n] of [...byClass].sort()) console.log(`  ${c}: ${n}`);
  const stale = table.filter((r) => !used.has(r) && guests.includes(r.guest));
  // Not an error: under TCG some timing checks fail on one run and hold on the next.
  for (const r of stale) console.log(`table row matched no disagreement this run: ${r.guest} ${r.check}`);
  if (bad > 0) console.log(`${bad} disagreement(s) unclassified or "tsxen wrong"`);
  return bad > 0 ? 1 : 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (rc) => process.exit(rc),
    (e: Error) => {
      process.stderr.write(`conformance:realxen: ${e.message}\n`);
      process.exit(1);
    },
  );
}
