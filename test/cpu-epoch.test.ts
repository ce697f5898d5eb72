/**
 * The Cpu's retired-instruction counters stay small integers (issue 16). `retired` and
 * `blockInsns` count from an epoch that run() moves at its start once either reaches
 * `rebaseAt` (2^30; tests lower it), the counts before it kept in double fields: a count V8
 * held as a small integer that passed 2^31 (a few seconds of XenLinux) made the field a double,
 * which retired the Cpu's shape and deoptimized the run loop and ten other functions once a
 * process. Pinned here: runs with the epoch moved every 100 instructions give the states,
 * retired totals, exits, the fault, stored TSC values and block counts of runs that never
 * move it, interpreted and in JS and wasm blocks, in slices ending anywhere, the moves counted;
 * a hypervisor's virtual time, every vcpu's CPU time and memory are the same with the epoch moved
 * every 10,000 or 100 instructions; and a Cpu whose counts start just below 2^31 runs past it with
 * its shape unchanged (a child node with --allow-natives-syntax asks %HaveSameMap of it and
 * a fresh Cpu, as test/scale-doubles does). Mutations (dist copy), each failing it: run()
 * without the move; the move without retiredBase's += (totals); without blockInsns' fold
 * (block counts, the moves counted); the move only on retired's condition (shape); after runStop
 * is set (the runs' ends); retiredTotal's setter moving retired instead of the base; the
 * hypervisor's nowCycles on cpu.retired (virtual time; in syncClock its clock goes back and
 * the run never ends); the default TSC without retiredBase; the Cpu's or the hypervisor's
 * constructor without storeAsDoubles (the last case).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { type Cpu, MAX_BUDGET, REBASE_AT } from "../src/cpu/cpu.js";
import { ESP, Exit } from "../src/cpu/regs.js";
import { launchDomain } from "../src/tools/launch.js";
import { Hypervisor } from "../src/xen/hypervisor.js";
import { le32 as d } from "./helpers/bytes.js";
import { type CpuState, runSlice, type Variant, variantCpu } from "./helpers/cpu-state.js";
import { guestPath } from "./support/guests.js";

const CODE = 0x1000;
const DATA = 0x4000;
const N = 500;

/**
 * N passes of: rep nop; rdtsc; the TSC's halves stored at [edi]; dec ecx; 1000 / ecx (div):
 * the last pass divides by 0, a #DE inside the loop's block once it is compiled.
 */
function program(): number[] {
  const body = [
    [0xf3, 0x90], // rep nop
    [0x0f, 0x31], // rdtsc
    [0x89, 0x07], // mov [edi], eax
    [0x89, 0x57, 0x04], // mov [edi+4], edx
    [0x83, 0xc7, 0x08], // add edi, 8
    [0x49], // dec ecx
    [0xb8, ...d(1000)], // mov eax, 1000
    [0x31, 0xd2], // xor edx, edx
    [0xf7, 0xf1], // div ecx
  ].flat();
  return [0xb9, ...d(N), 0xbf, ...d(DATA), ...body, 0xeb, -(body.length + 2) & 0xff];
}

interface Run {
  states: CpuState[];
  tsc: number[];
  blockInsns: number;
  rebases: number;
  /** The largest epoch counts seen after a slice. */
  maxRetired: number;
  maxBlockInsns: number;
}

function run(variant: Variant, slice: number, rebaseAt: number): Run {
  const cpu = variantCpu(variant, 1 << 20, 2);
  cpu.mem8.set(program(), CODE);
  cpu.eip = CODE;
  cpu.regs[ESP] = 0x8000;
  cpu.rebaseAt = rebaseAt;
  const states: CpuState[] = [];
  let maxRetired = 0;
  let maxBlockInsns = 0;
  for (let i = 0; i < 100_000; i++) {
    const s = runSlice(cpu, slice);
    states.push(s);
    maxRetired = Math.max(maxRetired, cpu.retired);
    maxBlockInsns = Math.max(maxBlockInsns, cpu.blockInsns);
    if (s.exit !== Exit.Budget) break;
  }
  const tsc = Array.from(new Int32Array(cpu.mem8.buffer, DATA, N * 2));
  return { states, tsc, blockInsns: cpu.blockInsnsTotal, rebases: cpu.rebases, maxRetired, maxBlockInsns };
}

/** The moves run() makes in these slices: one at a run's start once the epoch's count reached `at`. */
function expectedMoves(states: CpuState[], at: number): number {
  let moves = 0;
  let epoch = 0;
  let before = 0;
  for (const s of states) {
    if (epoch >= at) {
      moves++;
      epoch = 0;
    }
    epoch += s.retired - before;
    before = s.retired;
  }
  return moves;
}

describe("cpu: the retired counters' epoch", () => {
  for (const variant of ["interp", "js", "wasm", "chain"] as const) {
    it(`${variant}: moved every 100 instructions, the same run as never moved`, () => {
      for (const slice of [7, 13, 1000]) {
        const a = run(variant, slice, REBASE_AT);
        const b = run(variant, slice, 100);
        const last = a.states[a.states.length - 1];
        assert.equal(last.exit, Exit.Exception, `slice ${slice}: the loop ends in its fault`);
        assert.equal(last.vector, 0, `slice ${slice}: #DE`);
        assert.equal(last.retired, 2 + (N - 1) * 10 + 8, `slice ${slice}: retired up to the div`);
        assert.equal(a.rebases, 0);
        assert.deepEqual(b.states, a.states, `${variant}, slice ${slice}: states and retired totals`);
        assert.deepEqual(b.tsc, a.tsc, `${variant}, slice ${slice}: stored TSCs`);
        assert.equal(b.blockInsns, a.blockInsns, `${variant}, slice ${slice}: instructions in blocks`);
        if (variant !== "interp" && slice >= 1000)
          assert.ok(a.blockInsns > last.retired / 2, `${variant}, slice ${slice}: ${a.blockInsns} in blocks`);
        assert.equal(b.rebases, expectedMoves(a.states, 100), `${variant}, slice ${slice}: the moves`);
        assert.ok(
          b.rebases >= Math.floor(last.retired / (100 + slice)),
          `slice ${slice}: ${b.rebases} moves`,
        );
        assert.ok(
          b.maxRetired < 100 + slice && b.maxBlockInsns < 100 + slice,
          `slice ${slice}: counts from the epoch`,
        );
      }
    });
  }

  it("the retired setter and the TSC offset keep the totals across moves", () => {
    for (const rebaseAt of [REBASE_AT, 5]) {
      const cpu = variantCpu("js", 1 << 16, 2);
      cpu.rebaseAt = rebaseAt;
      // nop x20; hlt
      cpu.mem8.fill(0x90, CODE, CODE + 20);
      cpu.mem8[CODE + 20] = 0xf4;
      cpu.eip = CODE;
      for (let i = 0; i < 3; i++) cpu.run(6);
      assert.equal(cpu.retiredTotal, 18);
      cpu.retiredTotal = 2 ** 40 + 18;
      assert.equal(cpu.tscNow(), 2 ** 40 + 18);
      cpu.tscOffset = -(2 ** 40);
      assert.equal(cpu.run(10), Exit.Halt);
      assert.equal(cpu.retiredTotal, 2 ** 40 + 21);
      assert.equal(cpu.tscNow(), 21);
      assert.equal(cpu.rebases, rebaseAt === 5 ? 3 : 0, `moves at ${rebaseAt}`);
    }
  });

  it("run() takes budgets of at most 2^30", () => {
    const cpu = variantCpu("interp", 1 << 16);
    cpu.mem8[0] = 0xf4;
    cpu.eip = 0;
    assert.throws(() => cpu.run(MAX_BUDGET + 1), RangeError);
    assert.throws(() => cpu.run(Number.NaN), RangeError);
    assert.equal(cpu.run(MAX_BUDGET), Exit.Halt);
  });

  it("a hypervisor: virtual time, each vcpu's CPU time and the guest's memory the same with the epoch moved", () => {
    const machine = (guest: string, cmdline: string, ns: number, rebaseAt: number) => {
      const hv = new Hypervisor({ memoryMiB: 64, onConsole: () => {} });
      hv.cpu.rebaseAt = rebaseAt;
      const image = readFileSync(guestPath(guest));
      const { domain } = launchDomain(hv, { name: guest, image, memoryMiB: 16, cmdline });
      const r = hv.run(ns);
      const cpu: Cpu = hv.cpu;
      return {
        kind: r.kind,
        retired: cpu.retiredTotal,
        ns: hv.nowNs(),
        cycles: hv.sched.pcpus.map((p) => [p.cycles, p.idleCycles]),
        cpuTime: domain.vcpus.map((v) => v.cpuTimeNs),
        rdtsc: cpu.tscNow(),
        mem: createHash("sha256").update(hv.mem.bytes).digest("hex"),
        rebases: cpu.rebases,
      };
    };
    // A spinning guest (long runs), and one of timers and events (short ones, many exits).
    for (const [guest, cmdline, ns, rebaseAt, moves] of [
      ["dbg_target", "spin", 3e8, 10_000, 29],
      ["ev_counter", "", 2e9, 100, 61],
    ] as const) {
      const a = machine(guest, cmdline, ns, REBASE_AT);
      const b = machine(guest, cmdline, ns, rebaseAt);
      assert.equal(a.rebases, 0);
      assert.equal(a.kind, "time-limit", guest);
      assert.ok(a.retired > moves * rebaseAt, `${guest}: ${a.retired} retired`);
      // One at the start of each run that found the count past rebaseAt: pinned.
      assert.equal(b.rebases, moves, `${guest}: moves`);
      assert.deepEqual({ ...b, rebases: 0 }, a, guest);
    }
  });
});

const url = (p: string) => new URL(p, import.meta.url).href;

/** Runs code (an ES module) in a child node with --allow-natives-syntax; what it wrote, parsed. */
function child<T>(code: string): T {
  const out = execFileSync(process.execPath, ["--allow-natives-syntax", "--input-type=module", "-e", code], {
    encoding: "utf8",
  });
  return JSON.parse(out) as T;
}

describe("cpu: the counters keep the Cpu's shape past 2^31", () => {
  for (const backend of ["js", "wasm"] as const) {
    it(`${backend} blocks: retired, then blockInsns, from 2^31 - 5 M through 20 M more`, () => {
      const r = child<Record<string, { blocks: number } & Record<string, unknown>>>(`
          const { Cpu } = await import(${JSON.stringify(url("../src/cpu/cpu.js"))});
          const { allocRam } = await import(${JSON.stringify(url("../src/machine/ram.js"))});
          const make = () => {
            const c = new Cpu(${backend === "wasm" ? "allocRam(1 << 16)" : "new Uint8Array(1 << 16)"});
            c.backend = ${JSON.stringify(backend)};
            c.resetFlat32();
            return c;
          };
          const fresh = make();
          const out = {};
          for (const field of ["retired", "blockInsns"]) {
            const c = make();
            // inc eax; add ebx, eax; jmp back
            c.mem8.set([0x40, 0x01, 0xc3, 0xeb, 0xfb], 0x1000);
            c.eip = 0x1000;
            for (let i = 0; i < 100; i++) c.run(10000);
            const start = c.retiredTotal;
            const startBlocks = c.blockInsnsTotal;
            c[field] = 2 ** 31 - 5e6;
            const before = %HaveSameMap(c, fresh);
            for (let i = 0; i < 2000; i++) c.run(10000);
            out[field] = { before, after: %HaveSameMap(c, fresh), rebases: c.rebases,
              ran: c.retiredTotal - (field === "retired" ? 2 ** 31 - 5e6 : start),
              blocks: c.blockInsnsTotal - (field === "blockInsns" ? 2 ** 31 - 5e6 : startBlocks),
              small: Math.max(c.retired, c.blockInsns, c.runEnd, c.runStop) < 2 ** 30,
              tsc: c.tscNow() === c.retiredTotal };
          }
          process.stdout.write(JSON.stringify(out));`);
      for (const field of ["retired", "blockInsns"]) {
        const { blocks, ...rest } = r[field];
        assert.deepEqual(
          rest,
          { before: true, after: true, rebases: 1, ran: 20e6, small: true, tsc: true },
          field,
        );
        assert.ok(blocks > 19e6 && blocks <= 20e6, `${field}: ${blocks} in blocks`);
      }
    });
  }

  it("the bases, the TSC offset and the hypervisor's synced count are doubles from the start", () => {
    const r = child(`
        const { Cpu } = await import(${JSON.stringify(url("../src/cpu/cpu.js"))});
        const { Hypervisor } = await import(${JSON.stringify(url("../src/xen/hypervisor.js"))});
        const out = {};
        for (const f of ["retiredBase", "blockInsnsBase", "tscOffset"]) {
          const a = new Cpu(new Uint8Array(1 << 16));
          const b = new Cpu(new Uint8Array(1 << 16));
          a[f] = 2 ** 40 + 1;
          out[f] = [%HaveSameMap(a, b), b[f]];
        }
        const a = new Hypervisor({ memoryMiB: 16 });
        const b = new Hypervisor({ memoryMiB: 16 });
        a.retiredSynced = 2 ** 40 + 1;
        out.retiredSynced = [%HaveSameMap(a, b), b.retiredSynced];
        process.stdout.write(JSON.stringify(out));`);
    assert.deepEqual(r, {
      retiredBase: [true, 0],
      blockInsnsBase: [true, 0],
      tscOffset: [true, 0],
      retiredSynced: [true, 0],
    });
  });
});
