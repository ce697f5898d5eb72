/**
 * The wasm chain entered again at a #PF handler after a fault bounced at its site
 * (src/cpu/wasm/backend.ts chainEntry's `again`, its regionBlocks++/--), under attack beside a
 * hashed victim (guests/hostile/pf_reenter.c). A warm ring-1 loop faults in a read-modify-write
 * on a not-present page, 1,024 times for each of three #PF handlers, each on a page of its own at
 * offset 0, where the faulting page holds the loop's head: the handler's page
 * compiled and warm in the TLB (the chain hops there), its TLB entry dropped before every fault
 * (the hop finds no translation), or its own code dropped at every fault by a store into its
 * page (the hop finds no map). Every 128th fault the handler rewrites the faulting block's
 * immediate (SMC on the chain's page) before returning past the fault. The guest's sums of the
 * immediates run, its fault counts and checks, the instructions retired and the virtual time
 * must be the interpreter's, with JS and with wasm blocks; the victim's frames hash the same.
 *
 * Mutation (a copy of dist): the re-entry taking the handler for a block of the page it
 * entered (its page check skipped: the page base passed as the handler's own) runs the loop's
 * head at the handler: the guest never gets to its end (no DONE in 3 s of guest time).
 *
 * Which way the chain's hop ends at each handler page is pinned (wasm): the chain wrapped, each
 * entry off its page classified by the hop's checks in gen.ts chainBody's order (CS limit, TLB
 * entry readable, frame in RAM, the frame's map), the chain's own result agreeing (a hop ran a
 * block or counted a hop, an exit nothing). Hot: 506 hops (11 no-map exits before its code was
 * linked); cold: 543 no-translation exits; smc: 543 no-map exits. Mutations: update_va_mapping's
 * UVMF_INVLPG ignored (the cold page then hops, 532) fails the pin; the decode cache's
 * invalidateFrame leaving the frame's chain map fails the guest's sum.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Cpu } from "../src/cpu/cpu.js";
import { CS } from "../src/cpu/regs.js";
import { IO_EIP, IO_HOPS, IO_RBLOCKS, IO_RDMASK } from "../src/cpu/wasm/arena.js";
import type { WasmBackend } from "../src/cpu/wasm/backend.js";
import { attackBeside, type RunKind, sameAsInterpreted } from "./support/attack.js";

/** The guest's CHECK lines: 2 of setup, 5 for each of the 3 handlers, 1 after. */
const CHECKS = 18;
/** The chain's entries at a handler (a fault bounced at its site), by handler page (hot, cold, smc) and how the hop ended. */
const HOPS = [{ "no map": 11, hop: 506 }, { "no translation": 543 }, { "no map": 543 }];
/** The faults taken: 1,024 for each handler. */
const FAULTS = 3 * 1024;

/** Where a chain entered off its page (at a handler) left: the hop's exit it took, or the hop. */
type HopExit = "hop" | "no hop" | "cs limit" | "no translation" | "not ram" | "no map";

/**
 * Wraps the wasm back end's chain (gen.ts chainBody) to classify each entry whose EIP is off
 * the page it is given (the re-entry at a handler on another page) by the hop's checks, in the
 * chain's order, read from the same words; the chain's result must agree (a hop runs a block or
 * counts a hop, an exit runs nothing). Counts by the handler's linear page, in first-seen order.
 */
function watchHops(cpu: Cpu, w: WasmBackend): Map<number, Map<HopExit, number>> {
  const seen = new Map<number, Map<HopExit, number>>();
  const inner = w as unknown as {
    io: Int32Array;
    chainPages: Uint16Array;
    runChain: (left: number, pb: number, map: number, hop: number) => number;
  };
  const run = inner.runChain;
  // Cpu.segChk: CS's base, and its 1-byte read bound biased by 2^31 (as the chain compares).
  const segChk = (cpu as unknown as { segChk: Int32Array }).segChk;
  const io = inner.io;
  inner.runChain = (left, pb, map, hop) => {
    const pc = io[IO_EIP];
    if ((pc - pb) >>> 0 <= 0xfff) return run(left, pb, map, hop);
    const lin = (segChk[CS * 32] + pc) | 0;
    const e = cpu.tlb[lin >>> 12];
    let exit: HopExit = "hop";
    if (hop === 0) exit = "no hop";
    else if (((pc ^ 0x80000000) | 0) > segChk[CS * 32 + 3]) exit = "cs limit";
    else if ((e & io[IO_RDMASK]) === 0) exit = "no translation";
    else if (e >>> 12 >= inner.chainPages.length) exit = "not ram";
    else if (inner.chainPages[e >>> 12] === 0) exit = "no map";
    const n = run(left, pb, map, hop);
    assert.equal(
      io[IO_HOPS] > 0 || io[IO_RBLOCKS] > 0,
      exit === "hop",
      `the chain at 0x${pc.toString(16)}: ${exit}`,
    );
    const page = pc >>> 12;
    const m = seen.get(page) ?? new Map<HopExit, number>();
    m.set(exit, (m.get(exit) ?? 0) + 1);
    seen.set(page, m);
    return n;
  };
  return seen;
}

function attack(kind: RunKind) {
  let p0 = 0;
  let hops = new Map<number, Map<HopExit, number>>();
  const r = attackBeside(kind, "pf_reenter", CHECKS, 3000, {
    before: (b) => {
      p0 = b.hv.cpu.faultsInPlace;
      if (kind === "wasm" && b.wasm !== null) hops = watchHops(b.hv.cpu, b.wasm);
    },
  });
  return {
    ...r,
    inPlace: r.hv.cpu.faultsInPlace - p0,
    lines: r.text.split("\n").filter((l) => l.startsWith("RES ")),
    hops: [...hops.values()].map((m) => Object.fromEntries(m)),
  };
}

describe("the wasm chain entered again at a #PF handler on another page", () => {
  it("handlers on a warm page, a page out of the TLB and a page whose code is dropped, rewriting the faulting block: sums, faults, retired count and time as interpreted; the victim untouched", () => {
    const a = sameAsInterpreted(attack, 5_000, undefined, (b, kind) => {
      assert.ok(b.inPlace > FAULTS / 2, `${kind}: ${b.inPlace} of ${FAULTS} faults bounced at their site`);
      // The chain entered at each handler page: the hot page's hop (after 11 entries before its
      // code was linked), the cold page's no-translation exit, the smc page's no-map exit.
      if (kind === "wasm") assert.deepEqual(b.hops, HOPS, `${kind}: the chain's hop exits by handler page`);
    });
    assert.equal(a.lines.length, 3, a.text);
  });
});
