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
import { DomId } from "../src/public/xen.js";
import { bootDom0, type Dom0 } from "../src/tools/dom0.js";
import { launchDomain } from "../src/tools/launch.js";
import { xcDomainDestroy, xcDomainUnpause } from "../src/tools/xc.js";
import { type Domain, DomainState } from "../src/xen/domain.js";
import { PGT_gdt_page, PGT_type_mask } from "../src/xen/frame_table.js";
import type { Hypervisor, RunResult } from "../src/xen/hypervisor.js";
import { checkInvariants } from "../src/xen/invariants.js";
import { consoleMachine } from "./support/console.js";
import { guestPath } from "./support/guests.js";

const PAGE = 4096;

function frameHash(hv: Hypervisor, mfn: number): string {
  return createHash("sha256")
    .update(hv.mem.bytes.subarray(mfn * PAGE, (mfn + 1) * PAGE))
    .digest("hex")
    .slice(0, 16);
}

/**
 * What must survive an attack, by frame:
 * - every frame the victim owns (its page list: image, page tables, p2m, pattern pages; its
 *   shared_info and grant frames are Xen-heap pages Xen itself writes, and are left out);
 * - Xen's frames that never change once the domains are built: the M2P's L1 (slot 1008 of
 *   every L2), every domain's default GDT frame (only Xen's reserved descriptors), and the
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
  hashes: Map<number, { role: string; hash: string }>;
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
  const hashes = new Map<number, { role: string; hash: string }>();
  const put = (mfn: number, role: string): void => void hashes.set(mfn, { role, hash: frameHash(hv, mfn) });
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
    if (mfn === hv.m2pL1Frame()) role = "M2P L1";
    for (const d of [victim, attacker, dom0]) {
      if (mfn === d.defaultGdtMfn) role = `default GDT of ${d.name}`;
      if (mfn === d.perdomainMfn) role = `per-domain L1 of ${d.name}`;
    }
    put(mfn, role);
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
  for (const [mfn, { role, hash }] of before.hashes) {
    if (gone && before.attackerXen.has(mfn)) continue;
    const now = frameHash(hv, mfn);
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
}

const victimImage = (): Uint8Array => readFileSync(guestPath("hostile_victim"));

/**
 * dom0, then the victim (run until it has filled its memory and blocked), then the attacker,
 * built paused with the victim's domid and data frame on its command line; then the snapshot.
 */
function machine(guest: string, cmdline = "", memoryMiB = 8): Machine {
  const { hv, out } = consoleMachine(32);
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
  const attacker = launchDomain(hv, {
    name: guest,
    image: readFileSync(guestPath(`hostile_${guest}`)),
    memoryMiB,
    cmdline: `victim=${victim.id} vmfn=${victimMfn} ${cmdline}`.trim(),
    paused: true,
  }).domain;
  const before = snapshot(hv, victim, attacker, dom0.domain);
  return { hv, dom0, victim, attacker, out, before, victimMfn };
}

/** Runs until the attacker stops (it is the only domain that can), at most limitNs of virtual time. */
function runAttacker(m: Machine, limitNs = 20e9): RunResult {
  const r = m.hv.run(limitNs);
  if (r.kind === "shutdown" || r.kind === "crashed")
    assert.equal(r.domain, m.attacker, `only the attacker may stop: ${r.kind} ${r.domain.name}`);
  return r;
}

/** Checks everything that must hold after an attack; returns the attacker's console. */
function assertIsolation(m: Machine): void {
  const { hv, victim } = m;
  assert.deepEqual(checkInvariants(hv), [], "the frame table's invariants hold");
  assert.deepEqual(compare(hv, m.before, m.attacker), [], "the victim's and Xen's frames are unchanged");
  assert.equal(victim.state, DomainState.Running, "the victim is alive");
  assert.equal((m.out.get(victim) ?? "").split("\n").length, 2, "the victim printed nothing more");
}

const count = (text: string, re: RegExp): number => text.split("\n").filter((l) => re.test(l)).length;

/**
 * The attacker's verdict: no FAIL line, and exactly `checks` PASS lines when it runs to the end
 * (DONE, powered off). A guest that announces "EXPECT crash: <why>" may instead be crashed by
 * Xen for that reason after exactly `crashChecks` checks (its CHECKPOINT line).
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
    assert.equal(count(text, /^PASS /), crashChecks, `checks before the crash point:\n${text}`);
    assert.equal(Number(cp[1]), crashChecks, text);
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
  /** Runs the attack to its end (default: runAttacker). */
  drive?: (m: Machine) => RunResult;
}

/** Boots the attack beside the victim, checks the outcome, then destroys the attacker from dom0 and checks again. */
function attack(a: Attack): void {
  it(a.title, { timeout: 30_000 }, () => {
    const m = machine(a.guest, a.cmdline);
    xcDomainUnpause(m.dom0, m.attacker.id);
    const r = (a.drive ?? runAttacker)(m);
    assertOutcome(m, r, a.checks, a.crashChecks);
    assertIsolation(m);
    // Tearing the attacker down must not disturb anyone either.
    if (m.hv.domains.has(m.attacker.id)) xcDomainDestroy(m.dom0, m.attacker.id);
    m.hv.runDeferred();
    assertIsolation(m);
  });
}

describe("hostile guests beside a victim", () => {
  it("the victim alone: its memory and Xen's frames are stable while it sits blocked", () => {
    const m = machine("victim", "", 4);
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
      title: "dom0 destroys the attacker while its window is open",
      guest: "ptwr_window",
      cmdline: "mode=10",
      checks: 0,
      crashChecks: 8,
      drive: (m) => {
        for (let i = 0; i < 100 && !/WINDOW open/.test(m.out.get(m.attacker) ?? ""); i++) {
          const r = m.hv.run(m.hv.nowNs() + 1e7);
          assert.equal(r.kind, "time-limit", "the attacker spins in its window");
        }
        assert.match(m.out.get(m.attacker) ?? "", /WINDOW open/);
        xcDomainDestroy(m.dom0, m.attacker.id);
        m.hv.runDeferred();
        assert.ok(!m.hv.domains.has(m.attacker.id), "the attacker is gone");
        return { kind: "crashed", domain: m.attacker, why: "writable page table: destroyed by dom0" };
      },
    });
  });
});
