/**
 * Keyboard bytes a guest has no room for yet wait in the toolstack and reach Xen's console
 * ring as it drains (DomainManager.pumpConsoles, between slices of tsxend's run loop), in the
 * domains' order; a destroyed domain's are dropped. pumpConsoles looks only at feeds holding
 * bytes, so an idle daemon's pass costs nothing per domain.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { parseDomainConfig } from "../src/tools/config.js";
import { DomainManager } from "../src/tools/domains.js";
import { CONSOLE_RING, Hypervisor } from "../src/xen/hypervisor.js";
import { guestPath } from "./support/guests.js";

function setUp(names: string[]) {
  const hv = new Hypervisor({ memoryMiB: 96, onConsole: () => {} });
  const mgr = new DomainManager(hv);
  const kernel = guestPath("ev_counter");
  for (const name of names)
    mgr.create(parseDomainConfig(`${name}.cfg`, `kernel = "${kernel}"\nmemory = 8\nname = "${name}"\n`), {
      kernel: readFileSync(kernel),
    });
  return { hv, mgr };
}

const bytes = (from: number, n: number) => Uint8Array.from({ length: n }, (_, i) => (from + i) & 0xff);

describe("console input waiting for room", () => {
  it("what does not fit reaches the ring as it drains, in order, then nothing more", () => {
    const { hv, mgr } = setUp(["a"]);
    mgr.consoleInput(mgr.find("a"), bytes(0, CONSOLE_RING + 72));
    assert.equal(hv.consoleQueued(), CONSOLE_RING);
    mgr.pumpConsoles(); // no room: nothing moves, nothing is lost
    assert.equal(hv.consoleQueued(), CONSOLE_RING);
    assert.deepEqual(hv.consoleRead(100), bytes(0, 100));
    mgr.pumpConsoles();
    assert.deepEqual(hv.consoleRead(CONSOLE_RING), bytes(100, 100));
    mgr.pumpConsoles();
    assert.equal(hv.consoleQueued(), 0);
    // Bytes typed later start again from an empty feed.
    mgr.consoleInput(mgr.find("a"), bytes(7, 5));
    mgr.pumpConsoles();
    assert.deepEqual(hv.consoleRead(CONSOLE_RING), bytes(7, 5));
  });

  it("two domains' waiting bytes go in the domains' order; a destroyed domain's are dropped", () => {
    const { hv, mgr } = setUp(["a", "b", "c"]);
    mgr.consoleInput(mgr.find("a"), bytes(0, CONSOLE_RING));
    mgr.consoleInput(mgr.find("c"), bytes(0x40, 10));
    mgr.consoleInput(mgr.find("b"), bytes(0x80, 10));
    assert.deepEqual(hv.consoleRead(CONSOLE_RING), bytes(0, CONSOLE_RING));
    mgr.pumpConsoles();
    assert.deepEqual(hv.consoleRead(CONSOLE_RING), Uint8Array.from([...bytes(0x80, 10), ...bytes(0x40, 10)]));
    mgr.consoleInput(mgr.find("a"), bytes(0, CONSOLE_RING));
    mgr.consoleInput(mgr.find("b"), bytes(0x10, 3));
    mgr.destroy(mgr.find("b"));
    hv.consoleRead(CONSOLE_RING);
    mgr.pumpConsoles();
    assert.equal(hv.consoleQueued(), 0);
  });
});
