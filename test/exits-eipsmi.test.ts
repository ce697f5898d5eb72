/**
 * The bounces keep cpu.eip a small integer (issue 16, exits): a handler's EIP stored unsigned
 * (0xc0000000 and up, past 2^31) turned V8's Cpu field into a double, every EIP read and write
 * in JS then through a heap-number box (#PF bounce 6,163 -> 4,880 host instructions a trip when
 * fixed, callgrind against a8c796b). A child node with --allow-natives-syntax runs the exits
 * guest's #PF loop (bounced inside the run, pageFaultInRun) and then its fast trap and upcall
 * loops, and asks %IsSmi of cpu.eip: a double field reads as a heap number whatever its value.
 * Mutations (dist copy), failing them: Vcpu.trapAddress a Uint32Array (the #PF and fast trap
 * cases); doSetCallbacks storing the event EIP without `| 0` (the upcall case).
 * A context restored from a save image with an unsigned EIP (JSON keeps what it was given) is
 * stored int32 too: CpuContext.restore without `| 0` fails that case.
 * The handler addresses are stored int32 where they are written (Vcpu.trapAddress an
 * Int32Array; set_callbacks and a restored context's firstContext `| 0`), so the bounces pass
 * them on as they are: the last case sets them through the guest's hypercalls, then through a
 * save image (getVcpuContext, which reports them unsigned as the ABI gives) restored with
 * setInfoGuest. Mutations (dist copy), each failing it: trapAddress a Uint32Array;
 * doSetCallbacks without `| 0`; firstContext without `| 0`.
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

  it("handler addresses stored int32 by the hypercalls and by a restored save image", () => {
    const code = `
      import { readFileSync } from "node:fs";
      const { launchDomain } = await import(${JSON.stringify(url("../src/tools/launch.js"))});
      const { Hypervisor } = await import(${JSON.stringify(url("../src/xen/hypervisor.js"))});
      const { getVcpuContext, setInfoGuest } = await import(${JSON.stringify(url("../src/xen/domain_ctl.js"))});
      const { decodeContext } = await import(${JSON.stringify(url("../src/tools/xc.js"))});
      const { guestPath } = await import(${JSON.stringify(url("./support/guests.js"))});
      const hv = new Hypervisor({ memoryMiB: 64, onConsole: () => {} });
      const d = launchDomain(hv, { name: "x", image: readFileSync(guestPath("bench_exits")), memoryMiB: 16,
        cmdline: "n=100000000 batch=16 rounds=1 only=fast_trap" }).domain;
      hv.run(0.02e9);
      const v = d.vcpus[0];
      const fields = () => ({ pf: v.trapAddress[14], int80: v.trapAddress[0x80], ev: v.eventEip,
        fs: v.failsafeEip, ft: v.fastTrapEip,
        smi: [%IsSmi(v.eventEip), %IsSmi(v.failsafeEip), %IsSmi(v.fastTrapEip)] });
      const byHypercall = fields();
      const c = decodeContext(getVcpuContext(hv, v));
      const image = { pf: c.traps[14].address, int80: c.traps[0x80].address, ev: c.eventEip,
        fs: c.failsafeEip, ft: c.traps[c.fastTrapIdx].address };
      hv.pauseDomain(d);
      const img = getVcpuContext(hv, v);
      v.trapAddress.fill(0);
      v.eventEip = v.failsafeEip = v.fastTrapEip = 0;
      v.doneInit = false;
      const rc = setInfoGuest(hv, d, 0, img);
      process.stdout.write(JSON.stringify({ byHypercall, image, rc, restored: fields(),
        ft: hv.fastTrapsInRun }));`;
    const out = execFileSync(
      process.execPath,
      ["--allow-natives-syntax", "--input-type=module", "-e", code],
      {
        encoding: "utf8",
      },
    );
    type F = { pf: number; int80: number; ev: number; fs: number; ft: number; smi?: boolean[] };
    const r = JSON.parse(out) as { byHypercall: F; image: F; rc: number; restored: F; ft: number };
    assert.ok(r.ft > 100, `${r.ft} fast traps in the run`);
    // The guest's handlers are kernel addresses (0xc0000000 and up): unsigned in the image, the
    // same bits as int32 in the vcpu.
    const keys = ["pf", "int80", "ev", "fs", "ft"] as const;
    for (const k of keys) {
      assert.ok(r.image[k] >= 0xc0000000 && r.image[k] < 2 ** 32, `image ${k} ${r.image[k]} unsigned`);
      assert.equal(r.byHypercall[k], r.image[k] | 0, `${k} int32 after the hypercalls`);
      assert.equal(r.restored[k], r.image[k] | 0, `${k} int32 after the restore`);
    }
    assert.equal(r.rc, 0, "setInfoGuest");
    assert.deepEqual(r.byHypercall.smi, [true, true, true], "small integers after the hypercalls");
    assert.deepEqual(r.restored.smi, [true, true, true], "small integers after the restore");
  });
});
