/**
 * The bounces keep cpu.eip a small integer (issue 16, exits): a handler's EIP stored unsigned
 * (0xc0000000 and up, past 2^31) turned V8's Cpu field into a double, every EIP read and write
 * in JS then through a heap-number box (#PF bounce 6,163 -> 4,880 host instructions a trip when
 * fixed, callgrind against a8c796b). A child node with --allow-natives-syntax runs the exits
 * guest's #PF loop (bounced inside the run, pageFaultInRun) and then its fast trap and upcall
 * loops, and asks %IsSmi of cpu.eip: a double field reads as a heap number whatever its value.
 * Mutation (dist copy), failing it: pageFaultInRun passing v.trapAddress[14] without `| 0`.
 * A context restored from a save image with an unsigned EIP (JSON keeps what it was given) is
 * stored int32 too: CpuContext.restore without `| 0` fails the last case.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { describe, it } from "node:test";

const url = (p: string) => new URL(p, import.meta.url).href;

describe("exits: cpu.eip stays a small integer across bounces", () => {
  for (const kind of ["page_fault", "fast_trap", "event_upcall"]) {
    it(`after the ${kind} loop`, () => {
      const code = `
        import { readFileSync } from "node:fs";
        const { launchDomain } = await import(${JSON.stringify(url("../src/tools/launch.js"))});
        const { Hypervisor } = await import(${JSON.stringify(url("../src/xen/hypervisor.js"))});
        const { guestPath } = await import(${JSON.stringify(url("./support/guests.js"))});
        const hv = new Hypervisor({ memoryMiB: 64, onConsole: () => {} });
        launchDomain(hv, { name: "x", image: readFileSync(guestPath("bench_exits")), memoryMiB: 16,
          cmdline: "n=100000000 batch=16 rounds=1 only=${kind}" });
        hv.run(0.02e9);
        const eip = hv.cpu.eip;
        process.stdout.write(JSON.stringify({ smi: %IsSmi(hv.cpu.eip), eip, pf: hv.pageFaultsInRun,
          ft: hv.fastTrapsInRun }));`;
      const out = execFileSync(
        process.execPath,
        ["--allow-natives-syntax", "--input-type=module", "-e", code],
        {
          encoding: "utf8",
        },
      );
      const r = JSON.parse(out) as { smi: boolean; eip: number; pf: number; ft: number };
      // The guest's kernel runs at 0xc0000000 and up: as int32, a small integer.
      assert.ok(r.eip >= -(2 ** 30) && r.eip < 2 ** 30, `eip ${r.eip} int32 in V8's small-integer range`);
      if (kind === "page_fault") assert.ok(r.pf > 100, `${r.pf} #PF bounced in the run`);
      if (kind === "fast_trap") assert.ok(r.ft > 100, `${r.ft} fast traps in the run`);
      assert.equal(r.smi, true, "cpu.eip a small integer");
    });
  }

  it("after a context with an unsigned EIP is restored", () => {
    const code = `
      const { Cpu } = await import(${JSON.stringify(url("../src/cpu/cpu.js"))});
      const { CpuContext } = await import(${JSON.stringify(url("../src/cpu/context.js"))});
      const cpu = new Cpu(new Uint8Array(1 << 16));
      const ctx = new CpuContext();
      ctx.eip = 0xc0001234;
      ctx.restore(cpu);
      process.stdout.write(JSON.stringify({ smi: %IsSmi(cpu.eip), eip: cpu.eip }));`;
    const out = execFileSync(
      process.execPath,
      ["--allow-natives-syntax", "--input-type=module", "-e", code],
      {
        encoding: "utf8",
      },
    );
    const r = JSON.parse(out) as { smi: boolean; eip: number };
    assert.equal(r.eip, 0xc0001234 | 0);
    assert.equal(r.smi, true, "cpu.eip a small integer");
  });
});
