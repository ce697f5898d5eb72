// Stepping a machine one instruction at a time with its exits handled, and the state compared
// (test/exits-*: a path inside the CPU's run against the exit path it stands for).
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { Exit } from "../../src/cpu/regs.js";
import { wasmBackend } from "../../src/cpu/wasm/backend.js";
import { launchDomain } from "../../src/tools/launch.js";
import type { Vcpu } from "../../src/xen/domain.js";
import { Hypervisor } from "../../src/xen/hypervisor.js";
import { handleException } from "../../src/xen/traps.js";
import { guestPath } from "./guests.js";

export interface Stepped {
  hv: Hypervisor;
  v: Vcpu;
}

/** guests/bench/exits.c booted alone (8 MiB on a 24 MiB machine); interp: no blocks at all. */
export function bootBenchExits(
  cmdline: string,
  backend: "js" | "wasm" | "interp",
): Stepped & { out: () => string } {
  let out = "";
  const hv = new Hypervisor({
    memoryMiB: 24,
    onConsole: (_d, b) => {
      out += Buffer.from(b).toString("latin1");
    },
  });
  if (backend === "wasm") assert.ok(wasmBackend(hv.cpu));
  hv.cpu.backend = backend === "wasm" ? "wasm" : "js";
  if (backend === "interp") hv.cpu.blockThreshold = 0;
  const image = readFileSync(guestPath("bench_exits"));
  const d = launchDomain(hv, { name: "g", image, memoryMiB: 8, cmdline }).domain;
  return { hv, v: d.vcpus[0], out: () => out };
}

/** One instruction, its exit handled as the run loop would (no exit cost: compared by steps). */
export function step(m: Stepped): void {
  const exit = m.hv.cpu.run(1);
  if (exit === Exit.Exception) handleException(m.hv, m.v);
}

export const sha = (b: Uint8Array): string => createHash("sha1").update(b).digest("hex");

/** Registers, segment caches, CPL, flags, CR2 (the CPU's and the guest's), retired, domain state, memory. */
export function machineState(m: Stepped): unknown {
  const c = m.hv.cpu;
  return {
    regs: [...c.regs.subarray(0, 8)],
    eip: c.eip,
    flags: c.getFlags(),
    cpl: c.cpl,
    segs: [0, 1, 2, 3, 4, 5].map((s) => [c.segSel[s], c.segBase[s], c.segLimit[s], c.segAttr[s]]),
    cr2: c.cr2,
    guestCr2: m.v.guestCr2,
    retired: c.retiredTotal,
    domain: m.v.domain.state,
    mem: sha(m.hv.mem.bytes),
  };
}
