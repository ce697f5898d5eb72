/**
 * Exit benchmark (issue 16): the wall-clock round trip of each kind of exit, measured on the
 * whole stack (CPU, hypervisor, builder) with guests/bench/exits.c, which loops each kind
 * and brackets each loop with console lines this script timestamps: a null hypercall, a
 * multicall of N entries, mmu_update of N entries, a page fault bounced to the guest, an
 * event sent to itself and taken in its upcall, a privileged instruction emulated, a ring-3
 * int 0x80 through the fast trap gate (no exit: delivered inside the CPU's run).
 * Not a timed test: it prints figures (the first round cold, the others steady, as ranges).
 *
 *   npm run bench:exits [-- --n N] [-- --batch N] [-- --rounds R] [-- --only KIND]
 *
 * Profile with `node --cpu-prof dist/bench/exits-bench.js`.
 */
import { readFileSync } from "node:fs";
import { launchDomain } from "../src/tools/launch.js";
import { Hypervisor } from "../src/xen/hypervisor.js";
import { guestPath } from "../test/support/guests.js";
import { failer, readWhole, type WholeLimits } from "./args.js";

interface Options {
  n: number;
  batch: number;
  rounds: number;
  /** One kind only (for a profile), or null for all. */
  only: string | null;
}

const fail = failer("exits-bench");

const KINDS: Record<string, string> = {
  null_hypercall: "null hypercall (xen_version)",
  multicall: "multicall",
  mmu_update: "mmu_update",
  page_fault: "#PF bounced to the guest",
  event_upcall: "event send + upcall",
  priv_op: "privileged insn (mov cr0)",
  fast_trap: "ring-3 int 0x80 (fast trap) + iret",
};

function parseArgs(argv: string[]): Options {
  const opts: Options = { n: 20000, batch: 16, rounds: 4, only: null };
  const limits: WholeLimits<"n" | "batch" | "rounds"> = {
    "--n": ["n", 1, 10_000_000],
    "--batch": ["batch", 1, 64],
    "--rounds": ["rounds", 1, 100],
  };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--only") {
      const kind = argv[++i];
      if (!(kind in KINDS))
        fail(`--only needs one of ${Object.keys(KINDS).join(", ")}, got ${JSON.stringify(kind)}`);
      opts.only = kind;
      continue;
    }
    i = readWhole(
      opts,
      limits,
      argv,
      i,
      fail,
      `unknown option ${JSON.stringify(argv[i])}; options: --n N, --batch 1..64, --rounds R, --only KIND`,
    );
  }
  return opts;
}

/** One timed loop of one kind. */
interface Sample {
  kind: string;
  /** Round trips (hypercalls, faults, upcalls...) in the loop. */
  n: number;
  /** Entries per round trip (multicall, mmu_update), else 1. */
  items: number;
  ns: number;
  /** Process CPU time (user + system): steadier than wall time on a shared machine. */
  cpuNs: number;
  instructions: number;
}

function main(): void {
  const opts = parseArgs(process.argv.slice(2));
  const image = readFileSync(guestPath("bench_exits"));
  const samples: Sample[] = [];
  let console = "";
  let line = "";
  let begun: { kind: string; t: number; cpu: NodeJS.CpuUsage; retired: number } | null = null;
  const hv = new Hypervisor({
    memoryMiB: 64,
    onConsole: (_d, bytes) => {
      const now = performance.now();
      line += Buffer.from(bytes).toString("latin1");
      let nl = line.indexOf("\n");
      while (nl >= 0) {
        const text = line.slice(0, nl);
        line = line.slice(nl + 1);
        console += `${text}\n`;
        const b = /^BENCH (\w+) begin$/.exec(text);
        const e = /^BENCH (\w+) end n=(\d+) items=(\d+)$/.exec(text);
        if (b) begun = { kind: b[1], t: now, cpu: process.cpuUsage(), retired: hv.cpu.retiredTotal };
        else if (e && begun?.kind === e[1]) {
          const used = process.cpuUsage(begun.cpu);
          samples.push({
            cpuNs: (used.user + used.system) * 1e3,
            kind: e[1],
            n: Number(e[2]),
            items: Number(e[3]),
            ns: (now - begun.t) * 1e6,
            instructions: hv.cpu.retiredTotal - begun.retired,
          });
          begun = null;
        }
        nl = line.indexOf("\n");
      }
    },
  });
  launchDomain(hv, {
    name: "bench-exits",
    image,
    memoryMiB: 16,
    cmdline: `n=${opts.n} batch=${opts.batch} rounds=${opts.rounds}${opts.only ? ` only=${opts.only}` : ""}`,
  });
  const t0 = performance.now();
  const result = hv.run(3600e9);
  const wall = (performance.now() - t0) / 1000;
  if (result.kind !== "shutdown" || /BENCH FAIL/.test(console) || !/BENCH done failures=0/.test(console)) {
    fail(`the guest did not finish cleanly (${result.kind}):\n${console.slice(-2000)}`);
  }

  const range = (xs: number[]) => {
    if (xs.length === 0) return "-";
    const lo = Math.min(...xs);
    const hi = Math.max(...xs);
    return lo.toFixed(0) === hi.toFixed(0) ? lo.toFixed(0) : `${lo.toFixed(0)}-${hi.toFixed(0)}`;
  };
  const out = [
    `tsxen exit round trips: guests/bench/exits.c, ${opts.n} per kind (batches of ${opts.batch}), ${opts.rounds} rounds, ${wall.toFixed(1)} s wall`,
    "",
    `  ${"kind".padEnd(34)}${"cold ns".padStart(10)}${"steady ns".padStart(14)}${"ns/entry".padStart(12)}${"CPU ns".padStart(14)}${"guest insns".padStart(13)}`,
  ];
  for (const kind of Object.keys(KINDS)) {
    const s = samples.filter((x) => x.kind === kind);
    if (s.length === 0) continue;
    const per = s.map((x) => x.ns / x.n);
    const steady = per.slice(1);
    const items = s[0].items;
    const label = items > 1 ? `${KINDS[kind]} of ${items}` : KINDS[kind];
    out.push(
      `  ${label.padEnd(34)}${per[0].toFixed(0).padStart(10)}${range(steady).padStart(14)}` +
        `${(items > 1 ? range(steady.map((x) => x / items)) : "").padStart(12)}` +
        `${range(s.slice(1).map((x) => x.cpuNs / x.n)).padStart(14)}` +
        `${(s[0].instructions / s[0].n).toFixed(0).padStart(13)}`,
    );
  }
  out.push(
    "",
    "  ns: wall-clock per round trip (the guest's loop and handler included); cold: the first round;",
    "  steady: the range over the other rounds; CPU ns: the same by process CPU time (V8's compiler",
    "  threads included). guest insns: instructions the guest retires per",
    "  round trip, its own loop, stubs and handlers (the hypervisor's work runs on the host).",
  );
  process.stdout.write(`${out.join("\n")}\n`);
}

main();
