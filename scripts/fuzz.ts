/**
 * The page-table fuzzer's long mode (scripts/ptfuzz.ts):
 *
 *   npm run fuzz -- --calls 1000000 --seed 7 [--session-ops 4000] [--session K]
 *
 * Prints progress, the figures at the end, and on a violation the seed, the session and the
 * shrunk sequence of operations (exit status 1).
 */
import { Command } from "commander";
import { guestPath } from "../test/support/guests.js";
import { formatOps, runFuzz } from "./ptfuzz.js";

const num =
  (what: string) =>
  (s: string): number => {
    const n = Number(s);
    if (!Number.isSafeInteger(n) || n < 0)
      throw new Error(`${what} must be a non-negative integer, not ${JSON.stringify(s)}`);
    return n;
  };

const cmd = new Command("fuzz")
  .description("structure-aware page-table fuzzer: an attacker and a victim domain, checks after every call")
  .option("--calls <n>", "operations to run in all", num("--calls"), 100000)
  .option("--seed <n>", "the run's seed", num("--seed"), 1)
  .option("--session-ops <n>", "operations per fresh machine", num("--session-ops"), 4000)
  .option("--session <k>", "run only session k of the seed (to reproduce it)", num("--session"))
  .option("--keep-going", "log every violation and go on (no shrinking; reproduce one with --session)")
  .option("--shrink-budget <n>", "replays allowed while shrinking", num("--shrink-budget"), 600)
  .parse();
const o = cmd.opts<{
  calls: number;
  seed: number;
  sessionOps: number;
  session?: number;
  shrinkBudget: number;
  keepGoing?: boolean;
}>();

const t0 = Date.now();
let last = t0;
const report = runFuzz(guestPath("fuzz_ptfuzz"), {
  calls: o.calls,
  seed: o.seed,
  sessionOps: o.sessionOps,
  session: o.session,
  shrinkBudget: o.shrinkBudget,
  keepGoing: o.keepGoing,
  log: (line) => console.log(line),
  progress: (calls, sessions) => {
    const now = Date.now();
    if (now - last < 10000) return;
    last = now;
    console.log(`${calls} calls, ${sessions} machines, ${((now - t0) / 1000).toFixed(0)} s`);
  },
});
const secs = (Date.now() - t0) / 1000;
console.log(
  `seed ${o.seed}: ${report.calls} calls on ${report.sessions} machines in ${secs.toFixed(1)} s ` +
    `(${Math.round(report.calls / secs)} calls/s)`,
);
for (const [k, n] of [...report.stats].sort()) console.log(`  ${k}: ${n}`);
if (report.found === 0) {
  console.log("no violation");
} else if (report.violation === null) {
  console.log(`${report.found} machines showed a violation (listed above)`);
  process.exitCode = 1;
} else {
  const v = report.violation;
  console.log(
    `VIOLATION seed ${v.seed} session ${v.session} (session seed ${v.sessionSeed}): ${v.violation.message}`,
  );
  console.log(`reproduce: npm run fuzz -- --seed ${v.seed} --session ${v.session}`);
  console.log(`shrunk to ${v.minimal.length} operations (${v.minimalViolation.message}):`);
  for (const line of formatOps(v.minimal)) console.log(line);
  process.exitCode = 1;
}
