/**
 * A real, unmodified PV guest of the March 2005 interface: Xen's own Mini-OS at commit
 * 16d8409f ("B" in spec/real-guests.md). Mini-OS is not part of this repository; the test runs
 * only when TSXEN_MINIOS_MAR names a mini-os.elf built by the recipe in docs/real-guests.md.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { HypercallJul, HypercallMar, SchedOpJul, SchedOpMar } from "../src/public/xen.js";
import { launchDomain } from "../src/tools/launch.js";
import { Hypervisor } from "../src/xen/hypervisor.js";

const EBX = 3;
const ECX = 1;
const EDX = 2;
const MINIOS = process.env.TSXEN_MINIOS_MAR;
const skip =
  MINIOS === undefined || MINIOS === ""
    ? "set TSXEN_MINIOS_MAR to a Mini-OS 16d8409f mini-os.elf (recipe: docs/real-guests.md)"
    : !existsSync(MINIOS)
      ? `TSXEN_MINIOS_MAR=${MINIOS} does not exist`
      : false;

interface Call {
  nr: number;
  ebx: number;
  ecx: number;
  edx: number;
  at: number;
}

/** Boots Mini-OS B for ms of guest time with 32 MiB (nr_pages 8192), logging every hypercall. */
function bootMiniOs(ms: number) {
  const chunks: Uint8Array[] = [];
  const hv = new Hypervisor({ memoryMiB: 128, onConsole: (_d, b) => void chunks.push(b.slice()) });
  const { domain } = launchDomain(hv, {
    name: "mini-os",
    image: readFileSync(MINIOS as string),
    memoryMiB: 32,
  });
  const calls: Call[] = [];
  let yields = 0;
  let firstYield = -1;
  let lastYield = -1;
  let otherAfterYield = 0;
  hv.trace = (_v, nr) => {
    const r = hv.cpu.regs;
    const at = hv.cpu.retired;
    const isYield = nr === HypercallMar.sched_op && r[EBX] === SchedOpMar.yield;
    if (isYield) {
      yields++;
      if (firstYield < 0) firstYield = at;
      lastYield = at;
    } else if (firstYield >= 0) {
      otherAfterYield++;
    }
    if (calls.length < 64) calls.push({ nr, ebx: r[EBX] >>> 0, ecx: r[ECX] >>> 0, edx: r[EDX] >>> 0, at });
  };
  const result = hv.run(ms * 1e6);
  const console = Buffer.concat(chunks).toString("latin1");
  return { hv, domain, result, console, calls, yields, firstYield, lastYield, otherAfterYield };
}

/**
 * A suite that cannot run is one skipped test with its reason, so the run's summary counts it
 * (a skipped describe counts no test at all).
 */
function suiteOrSkip(name: string, skipReason: string | false, body: () => void): void {
  if (skipReason) it(name, { skip: skipReason }, () => {});
  else describe(name, body);
}

suiteOrSkip("Mini-OS 16d8409f (March 2005 interface)", skip, () => {
  const run = skip ? undefined : bootMiniOs(20);

  it("prints its boot banner, start_info and MM lines up to 'MM: done'", () => {
    const out = run?.console ?? "";
    const hex = "[0-9a-f]+";
    const expected = new RegExp(
      [
        "^Bootstrapping\\.\\.\\.\\n",
        "Xen Minimal OS!\\n",
        "start_info:   c0015000\\n",
        `  nr_pages:   8192  shared_inf: ${hex}\\n`,
        "  pt_base:    c0013000  mod_start:  0x0\\n",
        "  mod_len:    0\\n",
        "  flags:      0x0\\n",
        "  cmd_line:   \\n",
        "MM: Init\\n",
        "  _text:        c0000000\\n",
        `  _etext:       ${hex}\\n`,
        `  _edata:       ${hex}\\n`,
        `  stack start:  ${hex}\\n`,
        `  _end:         ${hex}\\n`,
        "  start_pfn:    b\\n",
        "  max_pfn:      2000\\n",
        "  pgd\\(pa\\(pgd\\)\\): c0013000\\(13000\\)  PT\\(300\\): c0014000\\(14000\\)  max_free_pfn: 12\\n",
        "MM: Initialise page allocator for c000b000\\(b000\\)-c0012000\\(12000\\)\\n",
        "MM: done\\n$",
      ].join(""),
    );
    assert.match(out, expected);
  });

  it("makes the boot hypercalls of real-guests.md §3 in order", () => {
    const calls = run?.calls ?? [];
    const si = run?.domain.sharedInfoMfn ?? -1;
    assert.deepEqual(
      calls.slice(0, 4).map((c) => [c.nr, c.ebx, c.ecx, c.edx]),
      [
        [HypercallMar.console_io, 0, 17, calls[0]?.edx],
        [HypercallMar.update_va_mapping, 0xc0001000, ((si * 4096) | 7) >>> 0, 2],
        [HypercallMar.set_callbacks, 0x0819, calls[2]?.ecx, 0x0819],
        [HypercallMar.set_trap_table, calls[3]?.ebx, calls[3]?.ecx, calls[3]?.edx],
      ],
    );
    const consoleWrites = calls.filter((c) => c.nr === HypercallMar.console_io).length;
    assert.equal(consoleWrites, 23, "Bootstrapping + 22 start_info/MM printk writes");
  });

  it("reaches its steady state: SCHEDOP_yield forever, nothing else, no upcall", () => {
    assert.ok(run);
    assert.equal(run.result.kind, "time-limit", run.console);
    assert.ok(run.firstYield > 0 && run.firstYield < 100_000, `first yield at instruction ${run.firstYield}`);
    assert.equal(run.otherAfterYield, 0, "a hypercall other than yield after the loop began");
    // The loop is `mov %edx,%eax; int $0x82; jmp`: one yield every 3 instructions, to the end.
    const loopInsns = run.hv.cpu.retired - run.firstYield;
    assert.ok(
      run.yields >= Math.floor(loopInsns / 3) - 1,
      `${run.yields} yields in ${loopInsns} instructions`,
    );
    assert.ok(run.hv.cpu.retired - run.lastYield <= 3, "the yield loop stopped");
  });
});

/**
 * A real, unmodified PV guest of the July 2005 interface: Xen's own Mini-OS at commit b7d34829
 * ("A" in spec/real-guests.md), in a domain of revision 2005-07. It runs only when
 * TSXEN_MINIOS_JUL names a mini-os.elf built by the recipe in docs/real-guests.md.
 */
const MINIOS_JUL = process.env.TSXEN_MINIOS_JUL;
const skipJul =
  MINIOS_JUL === undefined || MINIOS_JUL === ""
    ? "set TSXEN_MINIOS_JUL to a Mini-OS b7d34829 mini-os.elf (recipe: docs/real-guests.md)"
    : !existsSync(MINIOS_JUL)
      ? `TSXEN_MINIOS_JUL=${MINIOS_JUL} does not exist`
      : false;

suiteOrSkip("Mini-OS b7d34829 (July 2005 interface)", skipJul, () => {
  const seconds = 3.5;
  const run = (() => {
    if (skipJul) return undefined;
    const chunks: Uint8Array[] = [];
    const hv = new Hypervisor({ memoryMiB: 128, onConsole: (_d, b) => void chunks.push(b.slice()) });
    const { domain } = launchDomain(hv, {
      name: "mini-os-jul",
      image: readFileSync(MINIOS_JUL as string),
      memoryMiB: 32,
      abi: "2005-07",
    });
    const calls: Call[] = [];
    let blocks = 0;
    let timers = 0;
    hv.trace = (_v, nr) => {
      const r = hv.cpu.regs;
      if (nr === HypercallJul.sched_op && r[EBX] === SchedOpJul.block) blocks++;
      if (nr === HypercallJul.set_timer_op) timers++;
      if (calls.length < 64)
        calls.push({ nr, ebx: r[EBX] >>> 0, ecx: r[ECX] >>> 0, edx: r[EDX] >>> 0, at: hv.cpu.retired });
    };
    const result = hv.run(seconds * 1e9);
    return { hv, domain, result, console: Buffer.concat(chunks).toString("latin1"), calls, blocks, timers };
  })();

  it("prints its boot banner, start_info (1068-byte layout) and MM lines", () => {
    const out = run?.console ?? "";
    assert.match(out, /^Bootstrapping\.\.\.\nXen Minimal OS!\nstart_info: {3}c0019000\n/);
    assert.match(
      out,
      / {2}nr_pages: {3}8192 {2}shared_inf: [0-9a-f]+\n {2}pt_base: {4}c0017000 {2}mod_start: {2}0x0\n/,
    );
    assert.match(out, / {2}start_pfn: {4}f\n {2}max_pfn: {6}2000\n/);
    assert.match(out, /MM: done\nXen reported: 100\.000 MHz processor\.\n/);
  });

  it("boots with the July selectors and register conventions", () => {
    const calls = run?.calls ?? [];
    const si = run?.domain.sharedInfoMfn ?? -1;
    assert.deepEqual(
      calls.slice(0, 4).map((c) => [c.nr, c.ebx, c.ecx, c.edx]),
      [
        [HypercallJul.console_io, 0, 17, calls[0]?.edx],
        // Mini-OS July passes the flags in EDX (the tolerated quirk of real-guests.md §3).
        [HypercallJul.update_va_mapping, 0xc0001000, ((si * 4096) | 7) >>> 0, 2],
        [HypercallJul.set_callbacks, 0xe019, calls[2]?.ecx, 0xe019],
        [HypercallJul.set_trap_table, calls[3]?.ebx, calls[3]?.ecx, calls[3]?.edx],
      ],
    );
  });

  it("blocks on a one-shot timer, wakes on VIRQ_TIMER and prints its lines once per guest second", () => {
    assert.ok(run);
    assert.equal(run.result.kind, "time-limit", run.console);
    // A 1 ms one-shot timer per iteration: about 1000 blocks per guest second.
    assert.ok(run.blocks > 2500, `${run.blocks} blocks in ${seconds} s`);
    assert.ok(run.timers >= run.blocks - 1, `${run.timers} set_timer_op for ${run.blocks} blocks`);
    const ticks = [...run.console.matchAll(/T\(s=(\d+) us=(\d+)\)\nESP=0x[0-9a-f]+\n1000 bloks\n/g)];
    assert.equal(ticks.length, 3, run.console);
    // Consecutive lines are one second of guest time apart (within a tick or two).
    const at = ticks.map((m) => Number(m[1]) * 1e6 + Number(m[2]));
    for (let i = 1; i < at.length; i++) {
      const gap = at[i] - at[i - 1];
      assert.ok(gap > 0.98e6 && gap < 1.05e6, `gap ${gap} us between T lines`);
    }
  });
});
