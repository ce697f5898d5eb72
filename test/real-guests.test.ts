/**
 * A real, unmodified PV guest of the March 2005 interface: Xen's own Mini-OS at commit
 * 16d8409f ("B" in spec/real-guests.md). Mini-OS is not part of this repository; the test runs
 * only when TSXEN_MINIOS_MAR names a mini-os.elf built by the recipe in docs/real-guests.md.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { HypercallMar, SchedOpMar } from "../src/public/xen.js";
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

describe("Mini-OS 16d8409f (March 2005 interface)", { skip }, () => {
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
