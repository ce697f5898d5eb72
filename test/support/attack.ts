// Attacker guests run beside the hashed victim, with the interpreter, JS blocks or wasm blocks:
// the machine with the victim ready, the attackers launched and run, the victim checked
// untouched; and for the common case (one self-testing attacker) its console and what it cost,
// for comparing the three runs.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { wasmBackend } from "../../src/cpu/wasm/backend.js";
import { HypercallMar } from "../../src/public/xen.js";
import { bootDom0 } from "../../src/tools/dom0.js";
import { launchDomain } from "../../src/tools/launch.js";
import { type Domain, DomainState } from "../../src/xen/domain.js";
import type { Hypervisor, RunResult } from "../../src/xen/hypervisor.js";
import { assertGuestPassed, consoleMachine } from "./console.js";
import { guestPath } from "./guests.js";
import { frameHashes, launchVictim } from "./victim.js";

/**
 * Records the domain of every sched_op from now on (hv.afterHypercall). The result gives the
 * yields so far and the handovers among them: yields by another domain than the one before,
 * i.e. how often the CPU really went from one domain to the other (a test of a switch path
 * must show it did).
 */
export function yieldHandovers(hv: Hypervisor): () => { yields: number; handovers: number } {
  const ids: number[] = [];
  hv.afterHypercall = (v, nr) => {
    if (nr === HypercallMar.sched_op) ids.push(v.domain.id);
  };
  return () => ({ yields: ids.length, handovers: ids.slice(1).filter((id, i) => id !== ids[i]).length });
}

/** How the attacker's code runs: interpreted only, JS blocks, or wasm blocks (each from its first compile). */
export type RunKind = "interp" | "js" | "wasm";

/** A launched guest: its image's name for guestPath (e.g. "hostile_reload"), domain name, memory, command line. */
export interface GuestSpec {
  guest: string;
  name?: string;
  memoryMiB?: number;
  cmdline?: string;
}

/**
 * A machine whose CPU runs guests as `kind`, with the victim launched, blocked for good and its
 * frames hashed: launch attackers, run them, then check the victim untouched. With `dom0`, the
 * toolstack's dom0 is booted first (domain 0, for a test playing it).
 */
export function besideVictim(kind: RunKind, opts: { dom0?: boolean } = {}) {
  const m = consoleMachine(64);
  const dom0 = opts.dom0 ? bootDom0(m.hv) : null;
  const hv = m.hv;
  hv.cpu.backend = kind === "wasm" ? "wasm" : "js";
  if (kind === "interp") hv.cpu.blockThreshold = hv.cpu.regionThreshold = 0;
  // Each block wasm from its first run (not a batch of 32 later).
  const wasm = wasmBackend(hv.cpu);
  if (wasm !== null && kind === "wasm") wasm.batch = 1;
  const victim = launchVictim(m);
  const before = frameHashes(hv, victim.pages);
  return {
    m,
    hv,
    victim,
    wasm,
    dom0,
    /** The console output of `d` so far. */
    text: (d: Domain) => m.out.get(d) ?? "",
    launch: (g: GuestSpec): Domain =>
      launchDomain(hv, {
        name: g.name ?? g.guest,
        image: readFileSync(guestPath(g.guest)),
        memoryMiB: g.memoryMiB ?? 4,
        cmdline: g.cmdline,
      }).domain,
    /**
     * Runs slices of `sliceNs` guest time until `done(last result)` or `slices` of them (bounded:
     * a wrong block that never ends its loop fails its test, not hangs it); the last result.
     */
    runUntil(done: (r: RunResult | null) => boolean, slices: number, sliceNs = 1_000_000): RunResult | null {
      let r: RunResult | null = null;
      for (let i = 0; i < slices && !done(r); i++) r = hv.run(hv.nowNs() + sliceNs);
      return r;
    },
    /** The victim's frames hash as before; it is alive and printed nothing more. */
    assertVictimIntact(): void {
      assert.deepEqual(frameHashes(hv, victim.pages), before, "the victim's frames");
      assert.equal(victim.state, DomainState.Running, "the victim is alive");
      assert.equal((m.out.get(victim) ?? "").split("\n").length, 2, "the victim printed nothing more");
    },
  };
}

export type Beside = ReturnType<typeof besideVictim>;

/**
 * Launches guest `hostile_<name>` twice beside the victim, with seed=1 and seed=2 (the two
 * yield to each other), and runs them until both are DONE: each must have passed exactly
 * `checks` checks. Returns the two domains.
 */
export function runSeededPair(b: Beside, name: string, checks: number): Domain[] {
  const doms = [1, 2].map((seed) =>
    b.launch({ guest: `hostile_${name}`, name: `${name}${seed}`, cmdline: `seed=${seed}` }),
  );
  b.runUntil(() => doms.every((d) => /DONE/.test(b.text(d))), 4000);
  for (const d of doms) {
    const text = b.text(d);
    assertGuestPassed(text);
    assert.match(text, new RegExp(`DONE passed=${checks} failed=0`), text);
  }
  return doms;
}

/**
 * Runs guest `hostile_<name>` beside the victim until it stops (at most maxMs of guest time):
 * it must shut down having passed exactly `checks` checks, and the victim be untouched.
 * `before` runs once the victim is ready, before the attacker is launched (hooks, counters).
 */
export function attackBeside(
  kind: RunKind,
  name: string,
  checks: number,
  maxMs = 3000,
  opts: { memoryMiB?: number; cmdline?: string; before?: (b: Beside) => void } = {},
) {
  const b = besideVictim(kind);
  opts.before?.(b);
  const d = b.launch({ guest: `hostile_${name}`, name, memoryMiB: opts.memoryMiB, cmdline: opts.cmdline });
  const blocks0 = b.hv.cpu.blockInsnsTotal;
  b.runUntil(() => d.state !== DomainState.Running, maxMs);
  const text = b.text(d);
  assertGuestPassed(text);
  assert.match(text, new RegExp(`DONE passed=${checks} failed=0`), text);
  assert.equal(d.state, DomainState.Shutdown, "the attacker shut down, not crashed");
  b.assertVictimIntact();
  return {
    text,
    hv: b.hv,
    retired: b.hv.cpu.retiredTotal,
    now: b.hv.nowNs(),
    blockInsns: b.hv.cpu.blockInsnsTotal - blocks0,
    wasmRuns: b.wasm?.runs ?? 0,
  };
}

export type AttackResult = ReturnType<typeof attackBeside>;

/**
 * An attack run interpreted, then with JS and with wasm blocks: each block run's `same` (its
 * console by default), instructions retired and virtual time must be the interpreter's, with
 * more than minBlockInsns instructions in blocks (wasm blocks among them); `more` checks each
 * further. The interpreted run.
 */
export function sameAsInterpreted<R extends AttackResult>(
  attack: (kind: RunKind) => R,
  minBlockInsns: number,
  same: (r: R) => unknown = (r) => r.text,
  more: (r: R, kind: "js" | "wasm") => void = () => {},
): R {
  const a = attack("interp");
  assert.equal(a.blockInsns, 0, "the interpreter ran no block");
  for (const kind of ["js", "wasm"] as const) {
    const b = attack(kind);
    assert.deepEqual(same(b), same(a), kind);
    assert.equal(b.retired, a.retired, `${kind}: instructions retired`);
    assert.equal(b.now, a.now, `${kind}: virtual time`);
    assert.ok(b.blockInsns > minBlockInsns, `${kind}: ${b.blockInsns} instructions in blocks`);
    if (kind === "wasm") assert.ok(b.wasmRuns > 0, "wasm blocks ran");
    more(b, kind);
  }
  return a;
}
