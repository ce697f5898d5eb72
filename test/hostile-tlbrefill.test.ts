/**
 * The switch-in's TLB refill (Cpu.tlbRefill) attacked by a guest beside the hashed victim, with
 * dom0 as the writer acting while the attacker's vcpu is switched out (each dom0 hypercall puts
 * dom0's vcpu on the CPU and the attacker's back after it). guests/hostile/tlb_refill.c leaves a
 * translation in its TLB that Xen lets it keep until a switch (update_va_mapping with no
 * flush), or one that dirty logging must take the write bits of, and stops at a STEP; the test,
 * as dom0, then (1) only makes a hypercall, (2) takes the cleared page's frame back
 * (decrease_reservation), takes it for itself and writes a secret into it, (3) turns dirty
 * logging on; (4) reads the bitmap. After each switch-in the attacker must see the tables' entry
 * (frame B after 1), fault (after 2: never dom0's secret), and its next write must be logged
 * (after 3). test/tlb-refill plays the same rule at the CPU's level with a host writer.
 *
 * Interpreted, with JS and with wasm blocks: the same console, instructions retired and virtual
 * time (sameAsInterpreted), each run making every check. Pinned: the guest's 29 checks; the stale translation present before each of dom0's acts (so
 * the refill has something to get wrong); one switch-in of the attacker after each act, with
 * the refilled entries the tables give.
 *
 * Mutation (dist copy): Cpu.tlbRefill putting back the entries the switch-out held (kept by
 * tlbPages) instead of reading the tables fails it (steps 1, 2 and 3 each).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TLB_SUP_WRITE, TLB_USER_WRITE } from "../src/cpu/cpu.js";
import { ShadowOp } from "../src/public/dom0_ops.js";
import { MemOp } from "../src/public/xen.js";
import { xcAllocOwnPages, xcSetMaxMem, xcShadowControl } from "../src/tools/xc.js";
import { DomainState } from "../src/xen/domain.js";
import { besideVictim, type RunKind, sameAsInterpreted } from "./support/attack.js";
import { assertGuestPassed } from "./support/console.js";

const CHECKS = 29;
/** The guest's VA0 (l1a hooked at slot 0x100) and VA2, VA3, as linear page numbers. */
const PAGE0 = (0x100 << 22) >>> 12;
const PAGE2 = PAGE0 + 2;
const PAGE3 = PAGE0 + 3;
const SECRET = 0x5ec7e700;
const WRITE = TLB_SUP_WRITE | TLB_USER_WRITE;
/** Instructions the JS and wasm runs must have run in blocks (38,595 each at 0a99c7c). */
const MIN_BLOCK_INSNS = 30_000;

/** The attack run as `kind`, every check of it made; what sameAsInterpreted compares. */
function attack(kind: RunKind) {
  const b = besideVictim(kind, { dom0: true });
  const blocks0 = b.hv.cpu.blockInsnsTotal;
  const hv = b.hv;
  const cpu = hv.cpu;
  const dom0 = b.dom0;
  assert.ok(dom0 !== null);
  const d = b.launch({ guest: "hostile_tlb_refill", name: "tlb_refill", memoryMiB: 8 });
  // The attacker's switch-ins: its entries for VA0, VA2, VA3 as each refill left them.
  const refills: number[][] = [];
  const refill = cpu.tlbRefill.bind(cpu);
  cpu.tlbRefill = (pages, at, n) => {
    refill(pages, at, n);
    if (hv.current?.domain === d) refills.push([cpu.tlb[PAGE0], cpu.tlb[PAGE2], cpu.tlb[PAGE3]]);
  };
  const untilStep = (n: number) => {
    b.runUntil(() => b.text(d).includes(`STEP ${n}\n`) || d.state !== DomainState.Running, 2000);
    assert.match(b.text(d), new RegExp(`STEP ${n}\n`), b.text(d));
    assert.equal(hv.current?.domain, d, `step ${n}: the attacker on the CPU, blocked`);
    refills.length = 0;
  };
  const frame = (e: number) => e >>> 12;

  untilStep(1);
  const m = b.text(d).match(/SYNC mfn=(\d+) a=(\d+) c_pfn=(\d+) d_pfn=(\d+)/);
  assert.ok(m !== null);
  const syncMfn = Number(m[1]);
  /** Step n done: the guest's sync word. */
  const done = (n: number) => hv.write32(syncMfn * 4096, n);
  const a = Number(m[2]);
  const cPfn = Number(m[3]);
  const dPfn = Number(m[4]);
  // 1. VA0 retargeted to B with no flush: the TLB still names A.
  assert.equal(frame(cpu.tlb[PAGE0]), a, "step 1: the stale translation to A held");
  assert.equal(dom0.hypercall(dom0.nr("xen_version"), 0, 0) >= 0, true);
  assert.equal(refills.length, 1, "step 1: one switch-in after dom0's hypercall");
  const b0 = frame(refills[0][0]);
  assert.notEqual(b0, a, "step 1: VA0 refilled from the tables (B), not A");
  assert.equal(hv.frames.owner[b0], d.id);
  done(1);

  // 2. VA0 cleared with no flush; dom0 takes A back and writes into it as its next owner.
  untilStep(2);
  assert.equal(frame(cpu.tlb[PAGE0]), a, "step 2: the stale translation to A held");
  const list = dom0.scratch().alloc(4, Uint8Array.from([a, a >>> 8, a >>> 16, a >>> 24]));
  assert.equal(dom0.hypercall(dom0.nr("dom_mem_op"), MemOp.decrease_reservation, list, 1, 0, d.id), 1);
  assert.ok(!d.pages.has(a), "A is no longer the attacker's");
  xcSetMaxMem(dom0, dom0.domain.id, (dom0.domain.totPages + 16) * 4);
  assert.deepEqual(xcAllocOwnPages(dom0, 1), [a], "dom0 got A");
  for (let i = 0; i < 4096; i += 4) hv.write32(a * 4096 + i, SECRET + i);
  assert.equal(refills.length, 3, "step 2: a switch-in after each of dom0's three hypercalls");
  for (const r of refills) assert.equal(r[0], 0, "step 2: VA0 not refilled");
  done(2);

  // 3. C and D written (write bits cached); dom0 turns dirty logging on.
  untilStep(3);
  assert.ok(
    (cpu.tlb[PAGE2] & WRITE) !== 0 && (cpu.tlb[PAGE3] & WRITE) !== 0,
    "step 3: C and D writable in the TLB",
  );
  xcShadowControl(dom0, d.id, ShadowOp.ENABLE_LOGDIRTY);
  assert.equal(refills.length, 1, "step 3: one switch-in");
  assert.ok(refills[0][1] !== 0 && (refills[0][1] & WRITE) === 0, "step 3: C refilled without write bits");
  assert.ok(refills[0][2] !== 0 && (refills[0][2] & WRITE) === 0, "step 3: D refilled without write bits");
  done(3);

  // 4. The bitmap: C dirty (written after the switch-in), D clean (only read).
  untilStep(4);
  const peek = xcShadowControl(dom0, d.id, ShadowOp.PEEK, 2048);
  assert.ok(peek.bitmap !== null);
  const bit = (pfn: number) => (peek.bitmap?.[pfn >>> 3] ?? 0) & (1 << (pfn & 7));
  assert.notEqual(bit(cPfn), 0, "C's write after the switch-in logged");
  assert.equal(bit(dPfn), 0, "D only read: clean");
  xcShadowControl(dom0, d.id, ShadowOp.OFF);
  done(4);

  b.runUntil(() => d.state !== DomainState.Running, 2000);
  const text = b.text(d);
  assertGuestPassed(text);
  assert.match(text, new RegExp(`DONE passed=${CHECKS} failed=0`), text);
  assert.equal(d.state, DomainState.Shutdown, "the attacker shut down, not crashed");
  const names = [...text.matchAll(/^PASS (\S+)/gm)].map((x) => x[1]);
  assert.equal(new Set(names).size, CHECKS, "each check of its own name");
  for (let i = 0; i < 4096; i += 4)
    assert.equal(hv.read32(a * 4096 + i), (SECRET + i) >>> 0, "dom0's A untouched");
  b.assertVictimIntact();
  return {
    text,
    hv,
    retired: cpu.retiredTotal,
    now: hv.nowNs(),
    blockInsns: cpu.blockInsnsTotal - blocks0,
    wasmRuns: b.wasm?.runs ?? 0,
  };
}

describe("the switch-in's TLB refill, attacked by a guest while dom0 writes", () => {
  it("after each switch-in the attacker sees the tables and watches as dom0 left them, never the frame its TLB held; the victim untouched; interpreted, JS and wasm blocks alike", () => {
    sameAsInterpreted(attack, MIN_BLOCK_INSNS);
  });
});
