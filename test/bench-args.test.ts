/**
 * The benchmarks' option parsing (bench/args.ts, and how bench:exits and bench:scale use it):
 * a bad option is a usage error (exit 2) that names the option and what it takes, before any
 * work is done.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { readWhole, type WholeLimits } from "../bench/args.js";

const BENCH = fileURLToPath(new URL("../bench/", import.meta.url));

/** A bench script with args: its exit code and stderr (bounded: a usage error is at once). */
function bench(name: string, ...args: string[]): { code: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [`${BENCH}${name}.js`, ...args], {
    encoding: "utf8",
    timeout: 30_000,
  });
  return { code: r.status, stderr: r.stderr };
}

describe("bench options", () => {
  it("readWhole takes a whole number in range, refusing anything else with the flag's range named", () => {
    const limits: WholeLimits<"n" | "tick"> = { "--n": ["n", 1, 64], "--tick": ["tick", 0, 10] };
    const read = (...argv: string[]): { opts: Record<"n" | "tick", number>; next: number } => {
      const opts = { n: 16, tick: 5 };
      const next = readWhole(
        opts,
        limits,
        argv,
        0,
        (m) => {
          throw new Error(m);
        },
        "unknown",
      );
      return { opts, next };
    };
    assert.deepEqual(read("--n", "64"), { opts: { n: 64, tick: 5 }, next: 1 });
    assert.deepEqual(read("--tick", "0"), { opts: { n: 16, tick: 0 }, next: 1 });
    assert.throws(() => read("--n", "65"), { message: '--n needs a whole number in 1..64, got "65"' });
    assert.throws(() => read("--n", "0"), { message: '--n needs a whole number in 1..64, got "0"' });
    assert.throws(() => read("--n", "2.5"), { message: '--n needs a whole number in 1..64, got "2.5"' });
    assert.throws(() => read("--n"), { message: "--n needs a whole number in 1..64" });
    // Number() reads these as numbers; an option does not.
    for (const text of ["", " 5", "0x10", "1e1", "-0"])
      assert.throws(() => read("--tick", text), {
        message: `--tick needs a whole number in 0..10, got ${JSON.stringify(text)}`,
      });
    assert.throws(() => read("--m", "1"), { message: "unknown" });
  });

  it("bench:exits and bench:scale exit 2 with the message on a bad option", () => {
    const cases: Array<[string, string[], string]> = [
      ["exits-bench", ["--batch", "65"], 'exits-bench: --batch needs a whole number in 1..64, got "65"'],
      ["exits-bench", ["--rounds"], "exits-bench: --rounds needs a whole number in 1..100"],
      [
        "exits-bench",
        ["--fast"],
        'exits-bench: unknown option "--fast"; options: --n N, --batch 1..64, --rounds R, --only KIND',
      ],
      [
        "exits-bench",
        ["--only", "nap"],
        'exits-bench: --only needs one of null_hypercall, multicall, mmu_update, page_fault, event_upcall, priv_op, fast_trap, got "nap"',
      ],
      ["scale-bench", ["--tick-ms", ""], 'scale-bench: --tick-ms needs a whole number in 0..10000, got ""'],
      [
        "scale-bench",
        ["--domains", "1001"],
        'scale-bench: --domains needs a whole number in 1..1000, got "1001"',
      ],
      ["scale-bench", ["--profile"], "scale-bench: --profile needs a directory"],
      [
        "scale-bench",
        ["--evict", "1025"],
        'scale-bench: --evict needs a whole number in 0..1024, got "1025"',
      ],
      ["scale-bench", ["--pace", "slow"], "scale-bench: --pace is realtime or fast"],
    ];
    for (const [name, args, message] of cases)
      assert.deepEqual(
        bench(name, ...args),
        { code: 2, stderr: `${message}\n` },
        `${name} ${args.join(" ")}`,
      );
  });
});
