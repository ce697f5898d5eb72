// An attacker guest run to its end beside the hashed victim, with the interpreter, JS blocks or
// wasm blocks: its console and what it cost, for comparing the three runs.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { wasmBackend } from "../../src/cpu/wasm/backend.js";
import { launchDomain } from "../../src/tools/launch.js";
import { DomainState } from "../../src/xen/domain.js";
import { assertGuestPassed, consoleMachine } from "./console.js";
import { guestPath } from "./guests.js";
import { frameHashes, launchVictim } from "./victim.js";

/** How the attacker's code runs: interpreted only, JS blocks, or wasm blocks (each from its first compile). */
export type RunKind = "interp" | "js" | "wasm";

/**
 * Runs guest `hostile_<name>` beside the victim until it stops (at most maxMs of guest time):
 * it must pass exactly `checks` checks, and the victim's frames hash the same.
 */
export function attackBeside(kind: RunKind, name: string, checks: number, maxMs = 3000) {
  const m = consoleMachine(64);
  m.hv.cpu.backend = kind === "wasm" ? "wasm" : "js";
  if (kind === "interp") m.hv.cpu.blockThreshold = m.hv.cpu.regionThreshold = 0;
  // Each block wasm from its first run (not a batch of 32 later).
  const w = wasmBackend(m.hv.cpu);
  if (w !== null) w.batch = 1;
  const victim = launchVictim(m);
  const before = frameHashes(m.hv, victim.pages);
  const image = readFileSync(guestPath(`hostile_${name}`));
  const d = launchDomain(m.hv, { name, image, memoryMiB: 4 }).domain;
  const blocks0 = m.hv.cpu.blockInsns;
  // Bounded: a wrong block that never ends its loop fails here, not hangs.
  for (let i = 0; i < maxMs && d.state === DomainState.Running; i++) m.hv.run(m.hv.nowNs() + 1_000_000);
  const text = m.out.get(d) ?? "";
  assertGuestPassed(text);
  assert.match(text, new RegExp(`DONE passed=${checks} failed=0`), text);
  assert.deepEqual(frameHashes(m.hv, victim.pages), before, "the victim's frames");
  assert.equal(victim.state, DomainState.Running, "the victim is alive");
  assert.equal((m.out.get(victim) ?? "").split("\n").length, 2, "the victim printed nothing more");
  return {
    text,
    retired: m.hv.cpu.retired,
    now: m.hv.nowNs(),
    blockInsns: m.hv.cpu.blockInsns - blocks0,
    wasmRuns: w?.runs ?? 0,
  };
}
