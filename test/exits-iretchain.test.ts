/**
 * Blocks ending in iret chained (src/cpu/wasm/backend.ts link, chainIret): the #PF and
 * upcall handlers' exit block (pops, popa, iret back to ring 1) runs inside the chain, which
 * goes on at the return address (on the handler's page or, through the hop's checks, on the
 * faulting code's); an iret that changes CS or CPL (the fast trap's return to ring 3) stops
 * the chain as any import moving the fetch window does. Whole runs with the chaining on and
 * off, beside the interpreter: the same virtual time, retired count, vcpu time, console and
 * memory; and hostile guests whose irets fault, straddle pages, name bad selectors, or whose
 * #PF handler and stack are attacked (iret_frames, pf_site), beside a hashed victim: the same
 * output, retired count and virtual time on and off, the victim untouched; and iret_ring,
 * whose ring-3 loop reads a supervisor page right after the #PF handler's chained iret back
 * to ring 3 (the page's TLB entry warm from ring 1): the read must fault.
 *
 * Mutations (dist copy): iret blocks left out of the chains again fails the #PF trip's counts
 * and pf_site mode 0's; the chain not stopped when an import moved the fetch window (seen()
 * testing the run's end only) fails iret_ring (4 of 4 ring-3 reads of the supervisor page
 * went through).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { wasmBackend } from "../src/cpu/wasm/backend.js";
import { launchDomain } from "../src/tools/launch.js";
import { DomainState } from "../src/xen/domain.js";
import { consoleMachine } from "./support/console.js";
import { bootBenchExits, sha } from "./support/exit-steps.js";
import { guestPath } from "./support/guests.js";
import { frameHashes, launchVictim } from "./support/victim.js";

/** bench_exits (cmdline) on `backend`, iret blocks chained or not: what must be equal, and the wasm entries. */
function benchRun(cmdline: string, backend: "wasm" | "interp", chainIret: boolean) {
  const m = bootBenchExits(cmdline, backend);
  const w = wasmBackend(m.hv.cpu);
  assert.ok(w !== null);
  w.chainIret = chainIret;
  const r = m.hv.run(5e9);
  assert.equal(r.kind, "shutdown", m.out());
  assert.match(m.out(), /BENCH done failures=0/);
  return {
    same: {
      now: m.hv.nowNs(),
      retired: m.hv.cpu.retiredTotal,
      cpuTimeNs: m.v.cpuTimeNs,
      out: m.out(),
      mem: sha(m.hv.mem.bytes),
    },
    // Block runs a JS region (or the run loop) entered, and those a chain ran after another.
    entries: w.runs - w.chainRuns,
    chained: w.chainRuns,
  };
}

/** A hostile guest beside a hashed victim, wasm blocks, iret blocks chained or not. */
function hostile(guest: string, cmdline: string, chainIret: boolean) {
  const m = consoleMachine(64);
  m.hv.cpu.backend = "wasm";
  const w = wasmBackend(m.hv.cpu);
  assert.ok(w !== null);
  w.chainIret = chainIret;
  const victim = launchVictim(m);
  const before = frameHashes(m.hv, victim.pages);
  const image = readFileSync(guestPath(guest));
  const d = launchDomain(m.hv, { name: "attacker", image, memoryMiB: 4, cmdline }).domain;
  let crashed: string | null = null;
  for (let i = 0; i < 4000 && d.state === DomainState.Running && !/DONE/.test(m.out.get(d) ?? ""); i++) {
    const r = m.hv.run(m.hv.nowNs() + 1_000_000);
    if (r.kind === "crashed") {
      assert.equal(r.domain, d, `only the attacker may crash: ${r.why}`);
      crashed = r.why;
      break;
    }
  }
  assert.deepEqual(frameHashes(m.hv, victim.pages), before, "the victim's frames");
  assert.equal(victim.state, DomainState.Running, "the victim is alive");
  return {
    same: { text: m.out.get(d) ?? "", crashed, retired: m.hv.cpu.retiredTotal, now: m.hv.nowNs() },
    chained: w.chainRuns,
  };
}

describe("blocks ending in iret chained", () => {
  it("bench_exits, every kind: chained and not, and the interpreter, equal", () => {
    const on = benchRun("n=600 batch=4 rounds=1", "wasm", true);
    const off = benchRun("n=600 batch=4 rounds=1", "wasm", false);
    const interp = benchRun("n=600 batch=4 rounds=1", "interp", true);
    assert.deepEqual(on.same, interp.same, "chained, against the interpreter");
    assert.deepEqual(off.same, interp.same, "not chained, against the interpreter");
  });

  it("the #PF trip: the handler's iret block runs inside the chain, fewer entries from JS", () => {
    const n = 3000;
    const on = benchRun(`n=${n} batch=4 rounds=1 only=page_fault`, "wasm", true);
    const off = benchRun(`n=${n} batch=4 rounds=1 only=page_fault`, "wasm", false);
    assert.deepEqual(on.same, off.same);
    // Off, a trip's chain stops before the handler's iret block, which the JS region runs by
    // its wrapper before it enters a chain again at the faulting code; on, the chain runs them
    // (measured: 3,143 -> 4,715 chained runs, JS entries 2,359 -> 787 for 3,000 trips).
    assert.ok(on.chained - off.chained >= n / 2 - 100, `chained runs ${off.chained} -> ${on.chained}`);
    assert.ok(on.entries * 2 < off.entries, `JS entries ${off.entries} -> ${on.entries}`);
  });

  it("hostile_iret_ring: a chained iret from ring 1 to ring 3 ends the chain (the next block would read with ring 1's masks); the victim untouched", () => {
    const on = hostile("hostile_iret_ring", "", true);
    const off = hostile("hostile_iret_ring", "", false);
    assert.deepEqual(on.same, off.same);
    assert.doesNotMatch(on.same.text, /FAIL|round/, on.same.text);
    assert.match(on.same.text, /DONE passed=9 failed=0/, on.same.text);
    // The #PF handler's exit block ran in the chains, its iret to ring 3 ending them (measured:
    // 71,160 -> 88,950 chained runs).
    assert.ok(on.chained > off.chained + 15_000, `chained runs ${off.chained} -> ${on.chained}`);
  });

  // iret_frames' irets are ring 1 -> ring 3 or fault (the chain stops at them); pf_site's
  // #PF handler returns at its own level into the faulting loop, chained (mode 0), and modes
  // 1, 3, 5 crash the domain at a fault's bounce after the warm loop.
  for (const [guest, cmdline, chains] of [
    ["hostile_iret_frames", "", false],
    ["hostile_iret_frames", "mode=1", false],
    ["hostile_pf_site", "mode=0", true],
    ["hostile_pf_site", "mode=1", true],
    ["hostile_pf_site", "mode=3", true],
    ["hostile_pf_site", "mode=5", true],
  ] as const)
    it(`${guest} ${cmdline}: chained and not, equal; the victim untouched`, () => {
      const on = hostile(guest, cmdline, true);
      const off = hostile(guest, cmdline, false);
      assert.deepEqual(on.same, off.same);
      assert.ok(on.same.crashed !== null || /DONE/.test(on.same.text), on.same.text);
      if (chains) assert.ok(on.chained > off.chained + 2000, `chained runs ${off.chained} -> ${on.chained}`);
    });
});
