/**
 * Hostile guests beside a victim (issue 12, point 3): each attacker domain runs next to dom0
 * and a victim domain that filled its memory with a known pattern and blocked for good. Around
 * each attack the test hashes every frame the victim owns and every Xen frame that must never
 * change; both must come out identical. The attacker must get the errno, bounced fault or crash
 * it expects (its PASS lines, counted exactly), and no exception may escape the hypervisor
 * (TSXEN_CHECK_INVARIANTS=1 in npm test turns a broken frame-table invariant into one).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { blockFactoryReuses } from "../src/cpu/blocks.js";
import type { Backend } from "../src/cpu/wasm/arena.js";
import { wasmBackend } from "../src/cpu/wasm/backend.js";
import { LDT_GDT_ENTRY_MAR } from "../src/public/arch_x86_32.js";
import { GntMap, GntStMar, GrantEntry, Gtf } from "../src/public/grant_table.js";
import { DomId, HypercallMar, Shutdown } from "../src/public/xen.js";
import { parseDomainConfig } from "../src/tools/config.js";
import { ControlInterface } from "../src/tools/control_if.js";
import { bootDom0, type Dom0 } from "../src/tools/dom0.js";
import { launchDomain } from "../src/tools/launch.js";
import { captureDomain, SaveError } from "../src/tools/save.js";
import {
  xcDomainDestroy,
  xcDomainPause,
  xcDomainUnpause,
  xcMapForeignFrame,
  xcSetMaxMem,
  xcUnmapForeignFrame,
} from "../src/tools/xc.js";
import { type Domain, DomainState } from "../src/xen/domain.js";
import { PGT_gdt_page, PGT_type_mask } from "../src/xen/frame_table.js";
import { grantTableOf, mapGrantRef, unmapGrantRef } from "../src/xen/grant_table.js";
import type { Hypervisor, RunResult } from "../src/xen/hypervisor.js";
import { checkInvariants } from "../src/xen/invariants.js";
import { consoleMachine } from "./support/console.js";
import { guestPath } from "./support/guests.js";

const PAGE = 4096;

/**
 * A frame's bytes as a short hash. For a default GDT (`descriptors`), two things Xen and the
 * CPU legitimately write are left out: the accessed bit of each code/data descriptor (set on
 * a selector load) and the LDT descriptor slot (load_LDT writes it on MMUEXT_SET_LDT).
 */
function frameHash(hv: Hypervisor, mfn: number, descriptors = false): string {
  const bytes = hv.mem.bytes.slice(mfn * PAGE, (mfn + 1) * PAGE);
  if (descriptors) {
    for (let i = 5; i < PAGE; i += 8) if (bytes[i] & 0x10) bytes[i] &= ~1;
    bytes.fill(0, LDT_GDT_ENTRY_MAR * 8, LDT_GDT_ENTRY_MAR * 8 + 8);
  }
  return createHash("sha256").update(bytes).digest("hex").slice(0, 16);
}

/**
 * What must survive an attack, by frame:
 * - every frame the victim owns (its page list: image, page tables, p2m, pattern pages; its
 *   shared_info and grant frames are Xen-heap pages Xen itself writes, and are left out);
 * - Xen's frames that never change once the domains are built: the M2P's L1 (slot 1008 of
 *   every L2), every domain's default GDT frame (only Xen's reserved descriptors: see
 *   frameHash for the accessed bits and LDT slot left out), and the
 *   per-domain L1s of dom0 and the victim (their GDT/LDT mappings; neither of them changes its
 *   descriptor tables). The attacker's own per-domain L1 changes with its set_gdt and LDT
 *   faults, so it is only checked to map nothing but the attacker's own frames;
 * - the M2P frames change whenever any domain's frame is allocated, freed or MACHPHYS-updated,
 *   so instead of their bytes, the M2P entry of every frame owned by someone other than the
 *   attacker is kept (the attacker may renumber only its own frames);
 * - any other Xen-owned frame (none today) is treated as immutable.
 * Owners are kept too: no frame may change hands except the attacker's own.
 */
interface Snapshot {
  /** The attacker's own Xen frames (default GDT, per-domain L1): freed when it is destroyed. */
  attackerXen: Set<number>;
  hashes: Map<number, { role: string; hash: string; descriptors: boolean }>;
  m2p: Map<number, number>;
  owners: Map<number, number>;
}

function m2pFrames(hv: Hypervisor): Set<number> {
  const l1 = hv.m2pL1Frame();
  const out = new Set<number>();
  for (let i = 0; i < 1024; i++) {
    const e = hv.read32(l1 * PAGE + i * 4);
    if (e & 1) out.add(e >>> 12);
  }
  return out;
}

function snapshot(hv: Hypervisor, victim: Domain, attacker: Domain, dom0: Domain): Snapshot {
  const ft = hv.frames;
  const hashes = new Map<number, { role: string; hash: string; descriptors: boolean }>();
  const put = (mfn: number, role: string, descriptors = false): void =>
    void hashes.set(mfn, { role, hash: frameHash(hv, mfn, descriptors), descriptors });
  for (const mfn of victim.pages) put(mfn, "victim page");
  const m2p = m2pFrames(hv);
  const perAttacker = new Set([attacker.perdomainMfn]);
  for (let mfn = 0; mfn < ft.nrFrames; mfn++) {
    if (ft.owner[mfn] !== DomId.XEN || ft.count[mfn] === 0) continue;
    if (m2p.has(mfn)) {
      assert.equal(ft.typeInfo[mfn] & PGT_type_mask, PGT_gdt_page, "M2P frames are GDT-typed (read-only)");
      continue;
    }
    if (perAttacker.has(mfn)) continue;
    let role = "Xen frame";
    let gdt = false;
    if (mfn === hv.m2pL1Frame()) role = "M2P L1";
    for (const d of [victim, attacker, dom0]) {
      if (mfn === d.defaultGdtMfn) [role, gdt] = [`default GDT of ${d.name}`, true];
      if (mfn === d.perdomainMfn) role = `per-domain L1 of ${d.name}`;
    }
    put(mfn, role, gdt);
  }
  const m2pEntries = new Map<number, number>();
  const owners = new Map<number, number>();
  for (let mfn = 0x101; mfn < ft.nrFrames; mfn++) {
    if (ft.count[mfn] === 0 || ft.owner[mfn] === attacker.id) continue;
    owners.set(mfn, ft.owner[mfn]);
    m2pEntries.set(mfn, hv.getM2p(mfn));
  }
  return {
    attackerXen: new Set([attacker.defaultGdtMfn, attacker.perdomainMfn]),
    hashes,
    m2p: m2pEntries,
    owners,
  };
}

/** Differences between two snapshots, one line each (empty when nothing that matters changed). */
function compare(hv: Hypervisor, before: Snapshot, attacker: Domain): string[] {
  const ft = hv.frames;
  const out: string[] = [];
  const gone = attacker.state === DomainState.Dying || !hv.domains.has(attacker.id);
  for (const [mfn, { role, hash, descriptors }] of before.hashes) {
    if (gone && before.attackerXen.has(mfn)) continue;
    const now = frameHash(hv, mfn, descriptors);
    if (now !== hash) out.push(`${role} (frame ${mfn}) changed`);
  }
  for (const [mfn, owner] of before.owners) {
    if (ft.owner[mfn] !== owner || ft.count[mfn] === 0) {
      // The attacker's Xen-heap frames (shared_info, grant frames) go when it is destroyed.
      if (gone && (owner === attacker.id || before.attackerXen.has(mfn))) continue;
      out.push(
        `frame ${mfn} changed hands: owner ${owner} -> ${ft.count[mfn] === 0 ? "free" : ft.owner[mfn]}`,
      );
      continue;
    }
    if (hv.getM2p(mfn) !== before.m2p.get(mfn))
      out.push(`M2P entry of frame ${mfn} (owner ${owner}) changed`);
  }
  // The attacker's per-domain L1: GDT and shadow-LDT mappings of its own frames only.
  if (attacker.perdomainMfn >= 0 && !gone) {
    for (let i = 0; i < 1024; i++) {
      const e = hv.read32(attacker.perdomainMfn * PAGE + i * 4);
      if ((e & 1) === 0) continue;
      const t = e >>> 12;
      if (t !== attacker.defaultGdtMfn && ft.owner[t] !== attacker.id)
        out.push(`the attacker's per-domain L1 maps frame ${t} of owner ${ft.owner[t]} at ${i}`);
    }
  }
  return out;
}

interface Machine {
  hv: Hypervisor;
  dom0: Dom0;
  victim: Domain;
  attacker: Domain;
  out: Map<Domain, string>;
  before: Snapshot;
  /** The victim's data frame (one of its pattern pages). */
  victimMfn: number;
  /** dom0's end of the attacker's control interface (with `control`), and what it reported. */
  control: ControlInterface | null;
  controlErrors: string[];
  /** Where the attacker's start_info is (for a save image). */
  startInfoVa: number;
}

const victimImage = (): Uint8Array => readFileSync(guestPath("hostile_victim"));

/**
 * dom0, then the victim (run until it has filled its memory and blocked), then the attacker,
 * built paused with the victim's domid, data frame and L2 and its own domid on its command
 * line (with its control interface connected to dom0 if `control`); then the snapshot.
 */
function machine(
  guest: string,
  cmdline = "",
  opts: { memoryMiB?: number; control?: boolean; scheduler?: string; backend?: Backend } = {},
): Machine {
  const { hv, out } = consoleMachine(32, opts.scheduler);
  if (opts.backend) hv.cpu.backend = opts.backend;
  const dom0 = bootDom0(hv);
  const victim = launchDomain(hv, { name: "victim", image: victimImage(), memoryMiB: 4 }).domain;
  const r = hv.run(5e9);
  const vtext = out.get(victim) ?? "";
  const ready = /VICTIM ready pages=(\d+) filled=(\d+) mfn=(\d+)/.exec(vtext);
  assert.ok(ready, `the victim did not get ready (${r.kind}): ${vtext}`);
  assert.equal(r.kind, "idle", "the victim blocked for good");
  assert.ok(Number(ready[2]) > 512, `the victim filled most of its memory: ${vtext}`);
  const victimMfn = Number(ready[3]);
  assert.equal(hv.frames.owner[victimMfn], victim.id);
  const self = victim.id + 1;
  // The victim's kernel L1 (its L2's entry for 0xC0000000).
  const victimL1 = hv.read32(victim.vcpus[0].baseMfn * PAGE + (0xc0000000 >>> 22) * 4) >>> 12;
  const {
    domain: attacker,
    controlPort,
    image: { startInfoVa },
  } = launchDomain(hv, {
    name: guest,
    image: readFileSync(guestPath(`hostile_${guest}`)),
    memoryMiB: opts.memoryMiB ?? 8,
    cmdline:
      `victim=${victim.id} vmfn=${victimMfn} vl2=${victim.vcpus[0].baseMfn} vl1=${victimL1} self=${self} ${cmdline}`.trim(),
    paused: true,
    controlChannel: opts.control,
  });
  assert.equal(attacker.id, self, "the attacker got the domid its command line names");
  const controlErrors: string[] = [];
  const control =
    controlPort === undefined
      ? null
      : new ControlInterface(
          dom0,
          attacker.id,
          controlPort,
          undefined,
          (why) => void controlErrors.push(why),
        );
  const before = snapshot(hv, victim, attacker, dom0.domain);
  return { hv, dom0, victim, attacker, out, before, victimMfn, control, controlErrors, startInfoVa };
}

/** Runs until the attacker stops (it is the only domain that can), at most limitNs of virtual time. */
function runAttacker(m: Machine, limitNs = 20e9): RunResult {
  const r = m.hv.run(limitNs);
  if (r.kind === "shutdown" || r.kind === "crashed")
    assert.equal(r.domain, m.attacker, `only the attacker may stop: ${r.kind} ${r.domain.name}`);
  return r;
}

/** Runs the machine in 10 ms steps until the attacker prints a line matching re; returns the match. */
function runUntil(m: Machine, re: RegExp): RegExpExecArray {
  for (let i = 0; i < 200; i++) {
    const hit = re.exec(m.out.get(m.attacker) ?? "");
    if (hit) return hit;
    const r = m.hv.run(m.hv.nowNs() + 1e7);
    assert.equal(r.kind, "time-limit", `the attacker stopped early: ${m.out.get(m.attacker) ?? ""}`);
  }
  assert.fail(`the attacker never printed ${re}: ${m.out.get(m.attacker) ?? ""}`);
}

/** Checks everything that must hold after an attack: invariants, the snapshot, the victim alive and quiet. */
function assertIsolation(m: Machine): void {
  const { hv, victim } = m;
  assert.deepEqual(checkInvariants(hv), [], "the frame table's invariants hold");
  assert.deepEqual(compare(hv, m.before, m.attacker), [], "the victim's and Xen's frames are unchanged");
  assert.equal(victim.state, DomainState.Running, "the victim is alive");
  assert.equal((m.out.get(victim) ?? "").split("\n").length, 2, "the victim printed nothing more");
}

/** dom0 grants the attacker its first buffer page (ref 3), marked 0x600DF00D; returns the frame. */
function grantFromDom0(m: Machine): number {
  const frame = [...m.dom0.domain.pages][2];
  m.hv.write32(frame * PAGE, 0x600df00d);
  const gt = grantTableOf(m.dom0.domain);
  assert.ok(gt);
  const e = gt.sharedMfns[0] * PAGE + 3 * GrantEntry.SIZE;
  m.hv.write32(e + GrantEntry.frame, frame);
  m.hv.write32(e + GrantEntry.flags, Gtf.permit_access | (m.attacker.id << 16));
  return frame;
}

const count = (text: string, re: RegExp): number => text.split("\n").filter((l) => re.test(l)).length;

/**
 * The attacker's verdict: no FAIL line, and exactly `checks` PASS lines when it runs to the end
 * (DONE, powered off). A guest that announces "EXPECT crash: <why>" may instead be crashed by
 * Xen for that reason after exactly `crashChecks` checks (at least its CHECKPOINT's count).
 */
function assertOutcome(m: Machine, r: RunResult, checks: number, crashChecks?: number): string {
  const text = m.out.get(m.attacker) ?? "";
  assert.deepEqual(
    text.split("\n").filter((l) => l.startsWith("FAIL")),
    [],
    text,
  );
  const expectCrash = /^EXPECT crash: (.*)$/m.exec(text);
  if (expectCrash && r.kind === "crashed") {
    assert.match(r.why, new RegExp(expectCrash[1], "i"), text);
    assert.doesNotMatch(r.why, /internal error/, text);
    const cp = /^CHECKPOINT passed=(\d+) failed=0$/m.exec(text);
    assert.ok(cp, text);
    // All checks up to the crash: those before the announced point, and any it made on the
    // way to the operation that got it crashed.
    assert.equal(count(text, /^PASS /), crashChecks, `checks before the crash:\n${text}`);
    assert.ok(Number(cp[1]) <= (crashChecks ?? 0), text);
    return text;
  }
  assert.equal(r.kind, "shutdown", `${r.kind === "crashed" ? r.why : r.kind}\n${text}`);
  assert.match(text, /DONE passed=\d+ failed=0/, text);
  assert.equal(count(text, /^PASS /), checks, `checks run:\n${text}`);
  return text;
}

interface Attack {
  title: string;
  guest: string;
  cmdline?: string;
  /** PASS lines when the attacker runs to its end. */
  checks: number;
  /** PASS lines before its crash point, when Xen crashes it there. */
  crashChecks?: number;
  /** The attacker gets a control interface served by dom0. */
  control?: boolean;
  /** The machine's scheduler (the default's when absent). */
  scheduler?: string;
  /** What the CPU compiles blocks to (the default's when absent). */
  backend?: Backend;
  /** A known failure, reported as a to-do (node:test's todo) rather than failing the suite. */
  todo?: string;
  /** Runs the attack to its end (default: runAttacker). */
  drive?: (m: Machine) => RunResult;
  /** More checks once the attack is over (before the attacker is destroyed). */
  after?: (m: Machine) => void;
}

/** The attacker's L2 slots a bounce frame on a kernel stack there would have written are still empty. */
function untouchedSlots(m: Machine): void {
  const l2 = m.attacker.vcpus[0].baseMfn * PAGE;
  for (let slot = 0x100; slot < 0x110; slot++) assert.equal(m.hv.read32(l2 + slot * 4), 0, `L2 slot ${slot}`);
}

/** Boots the attack beside the victim, checks the outcome, then destroys the attacker from dom0 and checks again. */
function attack(a: Attack): void {
  it(a.title, { timeout: 30_000, todo: a.todo }, () => {
    const m = machine(a.guest, a.cmdline, { control: a.control, scheduler: a.scheduler, backend: a.backend });
    xcDomainUnpause(m.dom0, m.attacker.id);
    const r = (a.drive ?? runAttacker)(m);
    assertOutcome(m, r, a.checks, a.crashChecks);
    assertIsolation(m);
    a.after?.(m);
    // Tearing the attacker down must not disturb anyone either.
    if (m.hv.domains.has(m.attacker.id)) xcDomainDestroy(m.dom0, m.attacker.id);
    m.hv.runDeferred();
    assertIsolation(m);
  });
}

describe("hostile guests beside a victim", () => {
  it("the victim alone: its memory and Xen's frames are stable while it sits blocked", () => {
    const m = machine("victim", "", { memoryMiB: 4 });
    // A second victim as the "attacker": it only fills its own memory.
    xcDomainUnpause(m.dom0, m.attacker.id);
    const r = m.hv.run(5e9);
    assert.equal(r.kind, "idle");
    assertIsolation(m);
    // The comparison does see a change in a victim page.
    const some = [...m.victim.pages][5];
    m.hv.mem.bytes[some * PAGE + 7] ^= 1;
    assert.match(compare(m.hv, m.before, m.attacker).join("\n"), /victim page/);
    m.hv.mem.bytes[some * PAGE + 7] ^= 1;
    const gdt = m.victim.defaultGdtMfn;
    m.hv.mem.bytes[gdt * PAGE] ^= 1;
    assert.match(compare(m.hv, m.before, m.attacker).join("\n"), /default GDT of victim/);
    m.hv.mem.bytes[gdt * PAGE] ^= 1;
  });

  describe("1. the writable window (VMASST_TYPE_writable_pagetables): the two known breaks", () => {
    attack({
      title:
        "(a) an inactive-window L1 maps the M2P L1, its own L2 and the victim; then mov %eax,%cr3 to that L2",
      guest: "ptwr_window",
      cmdline: "mode=1",
      checks: 15,
      crashChecks: 8,
    });
    attack({
      title:
        "(b) the same window, then decrease_reservation of the L2, increase_reservation, map it writable",
      guest: "ptwr_window",
      cmdline: "mode=2",
      checks: 13,
      crashChecks: 8,
    });
  });

  describe("2. the writable window crossed with every path", () => {
    const paths: Array<[number, string, number]> = [
      [3, "MMUEXT_NEW_BASEPTR to the L2", 13],
      [4, "MMUEXT_UNPIN_TABLE of the L2", 12],
      [5, "grant map", 13],
      [6, "grant unmap", 13],
      [7, "MMUEXT_TRANSFER_PAGE of the window L1 to the victim", 13],
      [8, "update_va_mapping", 13],
      [9, "a multicall batch [mmu_update NEW_BASEPTR]", 13],
      [13, "decrease_reservation of the window L1 itself, then unpin of its L2", 12],
      [14, "set_gdt", 12],
      [15, "update_descriptor", 13],
    ];
    for (const [mode, what, checks] of paths)
      attack({
        title: `${what}: flushed first`,
        guest: "ptwr_window",
        cmdline: `mode=${mode}`,
        checks,
        crashChecks: 8,
      });
    attack({
      title:
        "an ACTIVE window (L1 hooked in the current L2, unhooked by the store), then mov %eax,%cr3 reloading it",
      guest: "ptwr_window",
      cmdline: "mode=16",
      checks: 14,
      crashChecks: 12,
    });
    attack({
      title: "an ACTIVE window, then MMUEXT_NEW_BASEPTR to the other L2",
      guest: "ptwr_window",
      cmdline: "mode=17",
      checks: 15,
      crashChecks: 12,
    });
    for (const [mode, how] of [
      [18, "retargeted at a page of its own"],
      [19, "made read-only"],
      [20, "cleared"],
    ] as const)
      attack({
        title: `both windows at once, the INACTIVE one's RW alias inside the ACTIVE L1, ${how} before the flush`,
        guest: "ptwr_window",
        cmdline: `mode=${mode}`,
        checks: 18,
        crashChecks: 12,
      });
    attack({
      title: "set_gdt of a frame the window maps writable: refused (-EINVAL), the entry being valid",
      guest: "ptwr_window",
      cmdline: "mode=11",
      checks: 11,
    });
    attack({
      title: "an LDT page the window maps writable: the LDT selector load faults",
      guest: "ptwr_window",
      cmdline: "mode=12",
      checks: 14,
    });
    attack({
      title: "dom0 saves the attacker while its window is open: the capture flushes first",
      guest: "ptwr_window",
      cmdline: "mode=10",
      checks: 0,
      crashChecks: 8,
      drive: (m) => {
        runUntil(m, /WINDOW open/);
        xcDomainPause(m.dom0, m.attacker.id);
        const config = parseDomainConfig("a.cfg", 'kernel = "/a"\nmemory = 8\nname = "a"\n');
        let image: Uint8Array | null = null;
        let refused: unknown = null;
        try {
          image = captureDomain(m.hv, m.attacker, config, m.startInfoVa, new Uint8Array());
        } catch (e) {
          refused = e;
        }
        assert.equal(m.attacker.state, DomainState.Crashed, "the flush crashed the attacker");
        assert.equal(image, null, "no image of a domain that died in the capture");
        assert.ok(refused instanceof SaveError, String(refused));
        return {
          kind: "crashed",
          domain: m.attacker,
          why: "writable page table: crashed by the save's flush",
        };
      },
    });
    attack({
      title: "dom0 destroys the attacker while its window is open",
      guest: "ptwr_window",
      cmdline: "mode=10",
      checks: 0,
      crashChecks: 8,
      drive: (m) => {
        runUntil(m, /WINDOW open/);
        xcDomainDestroy(m.dom0, m.attacker.id);
        m.hv.runDeferred();
        assert.ok(!m.hv.domains.has(m.attacker.id), "the attacker is gone");
        return { kind: "crashed", domain: m.attacker, why: "writable page table: destroyed by dom0" };
      },
    });
  });

  describe("3-5. superpages (XSA-148), RW flips on page-table mappings (XSA-182), foreign frames", () => {
    attack({ title: "every attempt refused with Xen's errno or a #PF", guest: "pt_attacks", checks: 90 });
  });

  describe("3b. bounce frames written into page tables", () => {
    for (const [mode, what, crashChecks] of [
      [1, "the kernel stack in the attacker's L2, a ring-3 trap pushing a superpage PDE", 3],
      [2, "the ring-1 stack in the attacker's L2, int3", 2],
      [3, "the kernel stack in its self-mapping L1 under the writable-page-table assist", 4],
      [4, "the kernel stack in Xen's space", 3],
    ] as const)
      attack({
        title: `${what}: the domain is crashed, the table untouched`,
        guest: "bounce",
        cmdline: `mode=${mode}`,
        checks: crashChecks + 1,
        crashChecks,
        after: (m) => untouchedSlots(m),
      });
    // The fast trap (the frame the hardware writes through Xen's gate) and a plain ring-3 #PF
    // (which Xen only propagates), each after a warm loop of 5,000, then the stack turned.
    const stacks = [
      ["the kernel stack in the attacker's L2", 0],
      ["the kernel stack in its self-mapping L1 under the writable-page-table assist", 1],
      ["the kernel stack in Xen's space", 0],
    ] as const;
    for (const backend of ["wasm", "js"] as const)
      for (const [first, loop, warmChecks] of [
        [5, "int 0x80 through the fast trap", 3],
        [8, "page faults bounced and skipped", 2],
      ] as const)
        for (const [i, [what, assist]] of stacks.entries())
          attack({
            title: `${backend} blocks: 5,000 ring-3 ${loop}, then ${what}: the domain is crashed at the next one, the table untouched`,
            guest: "bounce",
            cmdline: `mode=${first + i}`,
            checks: warmChecks + assist + 4,
            crashChecks: warmChecks + assist + 3,
            backend,
            drive: (m) => {
              // In wasm the #PF loop's faults must have been taken by a compiled block (held
              // on its slow path: 2,787 of the 5,000, after the block's wait for its module),
              // or the compiled path was never tried.
              const back = wasmBackend(m.hv.cpu);
              const held = back?.heldFaults ?? 0;
              const r = runAttacker(m);
              const n = (back?.heldFaults ?? 0) - held;
              if (backend === "wasm" && first === 8) assert.ok(n > 2000, `#PFs held in wasm blocks: ${n}`);
              return r;
            },
            after: (m) => untouchedSlots(m),
          });
    // The same two loops, then the kernel stack at an unmapped page and at a read-only page.
    for (const backend of ["wasm", "js"] as const)
      for (const [first, loop, warmChecks] of [
        [11, "int 0x80 through the fast trap", 3],
        [13, "page faults bounced and skipped", 2],
      ] as const)
        for (const [i, [what, remapped]] of (
          [
            ["the kernel stack at an unmapped page", 0],
            ["the kernel stack at a page of its own made read-only", 1],
          ] as const
        ).entries())
          attack({
            title: `${backend} blocks: 5,000 ring-3 ${loop}, then ${what}: the domain is crashed at the next one`,
            guest: "bounce",
            cmdline: `mode=${first + i}`,
            checks: warmChecks + remapped + 4,
            crashChecks: warmChecks + remapped + 3,
            backend,
            after: (m) => untouchedSlots(m),
          });
    // The same two loops, then the kernel stack in the attacker's own L2 through Xen's linear
    // page tables: writable at ring 1 page-wise, kept out only by SS's limit (0xFC3FFFFF).
    for (const backend of ["wasm", "js"] as const)
      for (const [mode, loop, warmChecks] of [
        [15, "int 0x80 through the fast trap", 3],
        [16, "page faults bounced and skipped", 2],
      ] as const)
        attack({
          title: `${backend} blocks: 5,000 ring-3 ${loop}, then the kernel stack in its L2 through the linear page tables (beyond SS's limit): crashed at the next one, the table untouched`,
          guest: "bounce",
          cmdline: `mode=${mode}`,
          checks: warmChecks + 4,
          crashChecks: warmChecks + 3,
          backend,
          after: (m) => untouchedSlots(m),
        });
  });

  describe("6. memory-op bounds and extent_order (XSA-29/-212 style)", () => {
    attack({
      title: "huge counts and orders, lists in Xen's space, runs into other owners' frames",
      guest: "memop",
      checks: 27,
    });
  });

  describe("7. descriptors and gates", () => {
    attack({
      title:
        "ring-0 gates and segments, Xen's and the victim's frames as GDT, ring-0 trap/callback/stack selectors",
      guest: "desc_gates",
      checks: 59,
    });
    attack({
      title:
        "the fast trap gate into Xen's area, at an unmapped page, and at an LDT code segment then made data and not present (from rings 1 and 3): the CPU's faults, bounced",
      guest: "fast_gate",
      checks: 32,
    });
  });

  describe("8. multicall and double fetch (XSA-155 style)", () => {
    attack({
      title: "entries rewritten or swapped by earlier sub-calls, nested multicalls, lists in Xen's space",
      guest: "multicall",
      checks: 22,
    });
  });

  describe("8b. sched_op block, yield and shutdown inside a multicall", () => {
    attack({
      title:
        "the sub-call gives 0 and the rest of the batch runs when the vcpu runs again (at once for a block with an event pending); a shutdown ends the batch",
      guest: "mc_sched",
      checks: 21,
      // Round robin: a yield switches to the next runnable vcpu. Under BVT the yielder, having
      // used less CPU than the spinner, is picked again at once (semantics.md §7.3): the batch's
      // yield never switched there.
      scheduler: "rrobin",
      drive: (m) => {
        // A domain that never blocks: a yield switches to it.
        const spinner = launchDomain(m.hv, {
          name: "spinner",
          image: readFileSync(guestPath("ev_counter")),
          memoryMiB: 4,
          cmdline: "spin noctrl",
        }).domain;
        // The spinner's CPU time at each of the attacker's hypercalls, with how much the
        // attacker had printed by then: what ran between two of its PASS lines.
        const marks: Array<[number, number]> = [];
        m.hv.afterHypercall = (v) => {
          if (v.domain === m.attacker)
            marks.push([(m.out.get(m.attacker) ?? "").length, spinner.vcpus[0].cpuTimeNs]);
        };
        const r = runAttacker(m);
        m.hv.afterHypercall = null;
        const text = m.out.get(m.attacker) ?? "";
        assert.match(m.out.get(spinner) ?? "", /counter: starting/, "the spinner ran beside");
        const spunAt = (pass: string): number => {
          const end = text.indexOf(`PASS ${pass}\n`);
          assert.ok(end >= 0, `${pass}:\n${text}`);
          const mark = marks.find(([len]) => len > end);
          assert.ok(mark, pass);
          return mark[1];
        };
        // The yield inside [yield, update_va_mapping, xen_version] switched to the spinner (the
        // only thing the attacker did between these two lines), and so did the yields ending a
        // batch: a slice of the spinner's (ms) each time, not a few instructions.
        const yieldBatch = spunAt("yield_batch_returns_0") - spunAt("last_entry_after_block_ran");
        assert.ok(yieldBatch > 100_000, `the spinner ran ${yieldBatch} ns in the yield batch`);
        const yieldLast = spunAt("yield_last_returns_0") - spunAt("last_entry_after_yield_ran");
        assert.ok(yieldLast > 100_000, `the spinner ran ${yieldLast} ns in the yields ending a batch`);
        // A shutdown inside a batch stops the domain there: the entry before it ran, the one
        // after never did, and the reason is the sub-call's.
        assert.ok(r.kind === "shutdown" && r.reason === Shutdown.poweroff, r.kind);
        assert.match(text, /\nMC before shutdown\n$/);
        return r;
      },
    });
  });

  describe("8c. privileged instructions spammed beside a ticking domain", () => {
    attack({
      title:
        "hlt, cli, sti, mov to/from CR at ring 1 and 3 (#GP bounced or emulated): a 1 ms timer beside keeps its time",
      guest: "priv_spam",
      cmdline: "ms=10",
      checks: 3,
      // Before bvt_wake's calc_avt (the running vcpu's evt as of now, not as its slice began),
      // the spinning attacker kept the ticker off the CPU for its whole slice: no tick in 10 ms.
      drive: (m) => {
        // An idle kernel with a 1 ms periodic timer: each tick it arms the next (set_timer_op).
        const ticker = launchDomain(m.hv, {
          name: "ticker",
          image: readFileSync(guestPath("bench_idle")),
          memoryMiB: 4,
          cmdline: "tick_ms=1",
        }).domain;
        // The ticker boots (and ticks) first, the attacker held meanwhile.
        xcDomainPause(m.dom0, m.attacker.id);
        assert.equal(m.hv.run(m.hv.nowNs() + 20e6).kind, "time-limit");
        assert.match(m.out.get(ticker) ?? "", /idle: ready, tick 1 ms/);
        xcDomainUnpause(m.dom0, m.attacker.id);
        const armed: number[] = [];
        m.hv.afterHypercall = (v, nr) => {
          if (v.domain === ticker && nr === HypercallMar.set_timer_op) armed.push(m.hv.nowNs());
        };
        const r = runAttacker(m);
        m.hv.afterHypercall = null;
        assert.match(m.out.get(m.attacker) ?? "", /SPAM rounds=\d+ traps=\d+/);
        assert.equal(ticker.state, DomainState.Running, "the ticker lives");
        // Ticks all through the attack (10 ms of it), each a tick after the last: the time to
        // take the event and arm the next is ~2 us, whatever the attacker does meanwhile.
        assert.ok(armed.length >= 9, `ticks: ${armed.length}`);
        const gaps = armed.slice(1).map((t, i) => t - armed[i]);
        const late = gaps.filter((g) => g < 1e6 || g > 1e6 + 20_000);
        assert.deepEqual(late, [], `gaps between ticks (ns): ${gaps.join(" ")}`);
        return r;
      },
    });
  });

  describe("8d. code a hot loop calls, remapped and rewritten under it (regions linked across pages)", () => {
    attack({
      title:
        "update_va_mapping of the callee's page to another frame (between and inside loops), a write to its code, the victim's frame refused: every call runs the code mapped now",
      guest: "code_remap",
      checks: 12,
      drive: (m) => {
        // The calls and returns must have been linked inside regions (Cpu.hopFetch), or this
        // attack tests nothing of the links: 6 loops of 6,000 calls, two crossings a call.
        const hops = m.hv.cpu.regionHops;
        const r = runAttacker(m);
        assert.ok(m.hv.cpu.regionHops - hops > 40_000, `${m.hv.cpu.regionHops - hops} crossings linked`);
        return r;
      },
    });
  });

  describe("8e. code shared between two domains, one copy rewritten under the other", () => {
    /**
     * The twin: a second domain of the attacker's image (`twin=1`), so both call a function at
     * the same address with the same bytes and share compiled code. Runs the attack, then the
     * twin to its verdict; the sharing itself is pinned, or the attack tests nothing.
     */
    /** Chained block runs of the loops in wasm (277 K measured of 1.28 M block runs). */
    const CHAINED_LOOP_RUNS = 200_000;
    const twinDrive = (backend: Backend) => (m: Machine) => {
      const factories = blockFactoryReuses();
      const reused = wasmBackend(m.hv.cpu)?.reused ?? 0;
      const chained = wasmBackend(m.hv.cpu)?.chainRuns ?? 0;
      const twin = launchDomain(m.hv, {
        name: "twin",
        image: readFileSync(guestPath("hostile_twin_code")),
        memoryMiB: 8,
        cmdline: "twin=1",
      }).domain;
      const r = runAttacker(m);
      for (let i = 0; i < 100 && !/^TWIN /m.test(m.out.get(twin) ?? ""); i++) m.hv.run(m.hv.nowNs() + 1e7);
      const text = m.out.get(twin) ?? "";
      assert.match(text, /^TWIN passed=10 failed=0$/m, text);
      assert.equal(count(text, /^PASS twin_runs_its_own_code$/), 5, text);
      assert.equal(count(text, /^PASS twin_runs_its_own_loop$/), 5, text);
      assert.equal(twin.state, DomainState.Running, "the twin lives");
      if (backend === "wasm") {
        const n = (wasmBackend(m.hv.cpu)?.reused ?? 0) - reused;
        assert.ok(n >= 2, `${n} blocks reused a wasm function`);
        // The two-block loops (1.28 M block runs in all) must have passed from block to block
        // inside wasm, or the attack tests nothing of the ways blocks reach each other there.
        const runs = (wasmBackend(m.hv.cpu)?.chainRuns ?? 0) - chained;
        assert.ok(runs > CHAINED_LOOP_RUNS, `${runs} chained block runs`);
      } else {
        // The twin's blocks (or the attacker's, whichever came second) took the other's factory.
        const n = blockFactoryReuses() - factories;
        assert.ok(n >= 6, `${n} blocks reused a factory`);
      }
      return r;
    };
    for (const backend of ["wasm", "js"] as const)
      attack({
        title: `${backend} blocks: bsf eax,ecx rewritten to bsf eax,edx in the attacker's copy (a one-block function, then the second block of a two-block loop), between and inside loops, the twin's calls interleaved: each domain runs its own operands`,
        guest: "twin_code",
        checks: 10,
        backend,
        drive: twinDrive(backend),
      });
  });

  describe("8f. ring-3 code crossing into a page taken from ring 3 (links and chains across pages)", () => {
    for (const backend of ["wasm", "js"] as const)
      attack({
        title: `${backend} blocks: hot ring-3 loops calling and falling into the next page, which becomes supervisor-only (between runs and from a timer upcall mid-loop), another frame, rewritten, the victim's frame refused; loops reading and writing a page taken from ring 3 or made read-only: a #PF at the fetch or access, or the code and data mapped now`,
        guest: "user_hop",
        checks: 78,
        backend,
        drive: (m) => {
          // The crossings must have been linked (a region's hop, or a wasm chain's), and in
          // wasm the data faults taken on a block's slow path (held, not thrown), or this
          // attack tests nothing of them: the loops cross pages twice a pass, 6,000 passes a run.
          const hops = m.hv.cpu.regionHops;
          const back = wasmBackend(m.hv.cpu);
          const chained = back?.chainHops ?? 0;
          const held = back?.heldFaults ?? 0;
          const r = runAttacker(m);
          assert.ok(m.hv.cpu.regionHops - hops > 50_000, `${m.hv.cpu.regionHops - hops} crossings linked`);
          if (backend === "wasm") {
            const n = (back?.chainHops ?? 0) - chained;
            assert.ok(n > 50_000, `${n} crossings inside wasm chains`);
            assert.equal((back?.heldFaults ?? 0) - held, 3, "the data faults held in wasm");
          }
          return r;
        },
      });
  });

  describe("8g. code dom0 rewrites from the host under a hot loop (a backend's write into a page)", () => {
    for (const backend of ["wasm", "js"] as const)
      attack({
        title: `${backend} blocks: dom0 maps the frames of a hot function and of the second page of an instruction crossing pages, and writes new bytes from the host mid-loop: the next calls run them`,
        guest: "dom0_code",
        checks: 7,
        backend,
        drive: (m) => {
          const [, a, b, go] = runUntil(m, /READY a=(\d+) b=(\d+) go=(\d+)/).map(Number);
          // The loop runs a while before dom0 writes, so its code is compiled and hot.
          assert.equal(m.hv.run(m.hv.nowNs() + 2e6).kind, "time-limit");
          const writes = m.hv.cpu.codeWrites;
          const va = xcMapForeignFrame(m.dom0, m.attacker.id, a >>> 12);
          const vb = xcMapForeignFrame(m.dom0, m.attacker.id, b >>> 12);
          // FA's immediate (0x1111 -> 0x2222) and FB's two immediate bytes in page B.
          m.dom0.write(va + 16 + 1, Uint8Array.of(0x22, 0x22));
          m.dom0.write(vb, Uint8Array.of(0x0c, 0x0c));
          xcUnmapForeignFrame(m.dom0, va);
          xcUnmapForeignFrame(m.dom0, vb);
          assert.ok(m.hv.cpu.codeWrites - writes >= 2, "both frames' decoded code was dropped");
          m.hv.write32(go, 1);
          return runAttacker(m);
        },
      });
  });

  describe("8h. segment limits under hot compiled loops (Xen's area behind the limit only)", () => {
    for (const backend of ["wasm", "js"] as const)
      attack({
        title: `${backend} blocks: hot ring-1 loops over our memory turned on the linear page tables, the GDT mapping and the limit's edge; their LDT segment shrunk, moved, made expand-down and not present under them; Xen's and refused selectors loaded in the loop; a hot same-level iret to Xen's CS, past CS's limit, asking IOPL 3: each the hardware's fault at the instruction, nothing of Xen's read or written`,
        guest: "seg_bounds",
        checks: 172,
        backend,
        drive: (m) => {
          // In wasm the loops must have run as compiled blocks, or this tests nothing of them:
          // the moved segments' runs leave blocks compiled zero-based at their entry guard;
          // the #PFs at the limit's edge and on the M2P are held on a block's slow path; the
          // GDT selector loads run inline (~22,000 handler calls are the LDT ones: 44,000 if
          // the GDT loads went out too).
          const back = wasmBackend(m.hv.cpu);
          const [bails, held, calls] = [back?.bails ?? 0, back?.heldFaults ?? 0, back?.calls ?? 0];
          const r = runAttacker(m);
          if (backend === "wasm") {
            assert.ok((back?.bails ?? 0) - bails > 0, "blocks compiled zero-based left at their guard");
            assert.equal((back?.heldFaults ?? 0) - held, 3, "the #PFs held in wasm");
            const n = (back?.calls ?? 0) - calls;
            assert.ok(n < 30_000, `${n} handler calls: the GDT selector loads ran inline`);
          }
          return r;
        },
      });
  });

  describe("8i. rep movsb from a hot loop's region, walked and aimed out of bounds", () => {
    for (const backend of ["wasm", "js"] as const)
      attack({
        title: `${backend} blocks: a hot ring-1 loop's rep movsb (run by its region, a page-bounded chunk at a time) walked into a page not present, made read-only, pointed at the victim's frame (refused); aimed at the M2P, the linear page tables and the GDT mapping: the hardware's fault at the exact byte (ECX, EDI, CR2, the bytes before it copied), nothing of Xen's or the victim's written`,
        guest: "rep_movs",
        checks: 43,
        backend,
        drive: (m) => {
          // The copies must have run from the loop's region (Cpu.regionStep), or this tests
          // nothing of it: 6,000 passes a run, four such runs and the walks.
          const steps = m.hv.cpu.regionSteps;
          const r = runAttacker(m);
          const n = m.hv.cpu.regionSteps - steps;
          assert.ok(n > 15_000, `${n} instructions run by regions`);
          return r;
        },
      });
  });

  describe("9. grant-table abuse", () => {
    attack({
      title:
        "unowned frames offered to dom0, refs out of range, another domain's handle, transfers of pinned pages",
      guest: "grant_abuse",
      checks: 26,
      drive: (m) => {
        // The victim accepts page transfers from the attacker on refs 1..5, and has room.
        const vgt = grantTableOf(m.victim);
        assert.ok(vgt);
        const ventry = (ref: number): number => vgt.sharedMfns[0] * PAGE + ref * GrantEntry.SIZE;
        for (let ref = 1; ref <= 5; ref++)
          m.hv.write32(ventry(ref) + GrantEntry.flags, Gtf.accept_transfer | (m.attacker.id << 16));
        xcSetMaxMem(m.dom0, m.victim.id, 4 * 1024 + 64);
        const go = Number(runUntil(m, /GRANTS ready go=(\d+)/)[1]);
        const dev = (ref: number, flags = GntMap.device_map) =>
          m.hv.onVcpu(m.dom0.vcpu, () =>
            mapGrantRef(m.hv, m.dom0.vcpu, { hostVirtAddr: 0, dom: m.attacker.id, ref, flags }),
          );
        const shared = dev(1);
        assert.ok(shared.handle >= 0, "the one honest grant maps");
        assert.equal(m.hv.frames.owner[shared.frame], m.attacker.id);
        for (const [ref, what] of [
          [2, "the victim's frame"],
          [3, "Xen's M2P L1"],
          [4, "the attacker's own L2, writable"],
          [5, "a frame beyond memory"],
        ] as const)
          assert.equal(dev(ref).handle, GntStMar.general_error, `dom0 maps ${what} granted by the attacker`);
        m.hv.write32(go, shared.handle + 1);
        const r = runAttacker(m);
        const un = m.hv.onVcpu(m.dom0.vcpu, () =>
          unmapGrantRef(m.hv, m.dom0.vcpu, {
            hostVirtAddr: 0,
            devBusAddr: shared.frame,
            handle: shared.handle,
          }),
        );
        // A device-only unmap reports 1 (Xen's status starts there, [QUIRK] kept).
        assert.equal(un.status, 1, "dom0 unmaps its own handle");
        // Only the plain page went over, into ref 5 (committed, its frame written there).
        const gave = Number(/^GAVE (\d+)$/m.exec(m.out.get(m.attacker) ?? "")?.[1]);
        assert.equal(m.hv.frames.owner[gave], m.victim.id, "the plain page is the victim's now");
        for (let ref = 1; ref <= 4; ref++)
          assert.equal(m.hv.read32(ventry(ref)) & 0xffff, Gtf.accept_transfer, `ref ${ref} untouched`);
        // Committed and (as Xen from April 2005 on) completed.
        assert.equal(
          m.hv.read32(ventry(5)) & 0xffff,
          Gtf.accept_transfer | Gtf.transfer_committed | Gtf.transfer_completed,
        );
        assert.equal(m.hv.read32(ventry(5) + GrantEntry.frame), gave);
        return r;
      },
    });
  });

  describe("9b. a grant mapping inside the writable window", () => {
    for (const [mode, what, checks, crashChecks] of [
      [1, "the grant PTE rewritten without RW", 12, 9],
      [2, "the grant PTE cleared", 12, 9],
      [3, "the grant PTE copied to a second slot", 12, 9],
    ] as const)
      attack({
        title: `${what}, then unmapped by handle: dom0's page keeps its counts`,
        guest: "grant_window",
        cmdline: `mode=${mode} ref=3`,
        checks,
        crashChecks,
        drive: (m) => {
          const frame = grantFromDom0(m);
          const r = runAttacker(m);
          assert.equal(m.hv.frames.owner[frame], 0, "dom0 still owns its page");
          return r;
        },
      });
  });

  describe("9c. two grant mappings of one frame", () => {
    attack({
      title:
        "the read-only one's PTE torn down by update_va_mapping releases its own pin, not the writable one's",
      guest: "grant_double",
      cmdline: "ref=3",
      checks: 8,
      drive: (m) => {
        const frame = grantFromDom0(m);
        const go = Number(runUntil(m, /MAPPED writable go=(\d+)/)[1]);
        const gt = grantTableOf(m.dom0.domain);
        assert.ok(gt);
        const flags = m.hv.read32(gt.sharedMfns[0] * PAGE + 3 * GrantEntry.SIZE) & 0xffff;
        assert.equal(
          flags & Gtf.writing,
          Gtf.writing,
          "dom0's grant entry still says the page is being written",
        );
        assert.ok(m.hv.frames.count[frame] > 1, "dom0's page is still held by the grant");
        m.hv.write32(go, 1);
        const r = runAttacker(m);
        assert.equal(m.hv.read32(frame * PAGE), 0x5ec0de, "the attacker wrote through its writable grant");
        return r;
      },
    });
  });

  describe("9d. a grant unmap naming the other mapping of the frame", () => {
    attack({
      title: "writable handle at the read-only PTE and vice versa: -EINVAL, both stay, then both unmap",
      guest: "grant_rwro",
      cmdline: "ref=3",
      checks: 11,
      drive: (m) => {
        const frame = grantFromDom0(m);
        const count = m.hv.frames.count[frame];
        const r = runAttacker(m);
        const gt = grantTableOf(m.dom0.domain);
        assert.ok(gt);
        const flags = m.hv.read32(gt.sharedMfns[0] * PAGE + 3 * GrantEntry.SIZE) & 0xffff;
        assert.equal(flags & (Gtf.reading | Gtf.writing), 0, "the grant is no longer in use");
        assert.equal(m.hv.frames.count[frame], count, "dom0's page holds no reference of the grant");
        assert.equal(m.hv.read32(frame * PAGE), 0x0ddba11, "the attacker wrote through its writable map");
        return r;
      },
    });
  });

  describe("10. event channels", () => {
    attack({
      title: "others' ports, domains that do not exist, ports out of range, a full port table",
      guest: "evtchn",
      checks: 28,
    });
  });

  describe("10b. argument arrays straddling into an unmapped page", () => {
    attack({
      title: "multicall, mmu_update and event-channel send: -EFAULT at the entry that straddles",
      guest: "straddle",
      checks: 19,
    });
  });

  describe("11. a control ring with garbage indices", () => {
    for (const [mode, what] of [
      [1, "the tx request producer far ahead"],
      [2, "the rx response producer beyond what dom0 sent"],
      [3, "the tx request producer one past the room"],
    ] as const)
      attack({
        title: `${what}: dom0 drops the interface, writes nothing outside the rings`,
        guest: "ctrl_ring",
        cmdline: `mode=${mode}`,
        control: true,
        checks: 7,
        after: (m) => {
          assert.equal(m.control?.connected, false, "dom0 disconnected the interface");
          assert.equal(m.controlErrors.length, 1, m.controlErrors.join("\n"));
          assert.match(m.controlErrors[0], /control ring .*; disconnected/);
          // The pattern the attacker wrote around the rings is intact (dom0 wrote only inside).
          const si = m.attacker.sharedInfoMfn * PAGE;
          const around = [
            ...m.hv.mem.bytes.subarray(si + 1024, si + 2048),
            ...m.hv.mem.bytes.subarray(si + 2048 + 1040, si + PAGE),
          ];
          assert.ok(
            around.every((b) => b === 0xa5),
            "bytes around the rings unchanged",
          );
        },
      });
  });

  describe("12. a destroyed domain's memory", () => {
    it("every frame the victim held is free with no decoded code, and zero when it is handed out again", () => {
      const { hv, out } = consoleMachine(32);
      const dom0 = bootDom0(hv);
      const victim = launchDomain(hv, { name: "victim", image: victimImage(), memoryMiB: 4 }).domain;
      assert.equal(hv.run(5e9).kind, "idle");
      assert.match(out.get(victim) ?? "", /VICTIM ready/);
      const held = [...victim.pages, victim.sharedInfoMfn, victim.defaultGdtMfn, victim.perdomainMfn];
      // The victim's pattern and its code, or this tests nothing.
      const nonzero = held.filter((f) =>
        hv.mem.bytes.subarray(f * PAGE, (f + 1) * PAGE).some((b) => b !== 0),
      );
      assert.ok(nonzero.length > 512, `${nonzero.length} frames hold data`);
      const decoded = held.filter((f) => hv.cpu.codePage[f] !== 0);
      assert.ok(decoded.length >= 1, "the victim's text was decoded");
      xcDomainDestroy(dom0, victim.id);
      hv.runDeferred();
      assert.equal(hv.domains.has(victim.id), false, "the victim is gone");
      const left = held.filter((f) => hv.frames.count[f] !== 0);
      assert.deepEqual(left, [], "every frame it held is free");
      assert.deepEqual(
        held.filter((f) => hv.cpu.codePage[f] !== 0),
        [],
        "no frame it held keeps decoded code",
      );
      assert.deepEqual(checkInvariants(hv), []);
      // Whoever gets the frames next (here: every free frame taken at once) finds them zero.
      const taken: number[] = [];
      for (let f = hv.mem.allocFrame(); f >= 0; f = hv.mem.allocFrame()) taken.push(f);
      const mine = new Set(held);
      assert.equal(taken.filter((f) => mine.has(f)).length, held.length, "all of them were free");
      const dirty = held.filter((f) => hv.mem.bytes.subarray(f * PAGE, (f + 1) * PAGE).some((b) => b !== 0));
      assert.deepEqual(dirty, [], "every frame it held is zero when handed out");
      for (const f of taken) hv.mem.freeFrame(f);
    });
  });
});
