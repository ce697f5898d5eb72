/**
 * Save and restore in one process: the image re-validates through the page-type rules, the
 * memory invariants hold after restore, destroy gives every frame back, and a damaged image
 * is refused before the hypervisor is touched.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { parseDomainConfig } from "../src/tools/config.js";
import { DomainManager } from "../src/tools/domains.js";
import { captureDomain, decodeImage, restoreDomain } from "../src/tools/save.js";
import { Hypervisor } from "../src/xen/hypervisor.js";
import { checkInvariants } from "../src/xen/invariants.js";

const GUESTS = fileURLToPath(new URL("../../guests", import.meta.url));

function setUp(): { hv: Hypervisor; mgr: DomainManager; text: () => string } {
  execFileSync("make", ["-s", "-C", GUESTS, "build/ev_counter.elf"], { stdio: ["ignore", "pipe", "pipe"] });
  const out: string[] = [];
  let mgr: DomainManager;
  const hv = new Hypervisor({
    memoryMiB: 96,
    onConsole: (d, b) => {
      out.push(Buffer.from(b).toString("latin1"));
      mgr.consoleOutput(d, b);
    },
  });
  mgr = new DomainManager(hv);
  return { hv, mgr, text: () => out.join("") };
}

describe("save and restore", () => {
  it("a restored domain continues where it stopped, with the memory rules intact", () => {
    const { hv, mgr, text } = setUp();
    const kernel = join(GUESTS, "build", "ev_counter.elf");
    const config = parseDomainConfig("c.cfg", `kernel = "${kernel}"\nmemory = 8\nname = "c"\n`);
    mgr.create(config, { kernel: readFileSync(kernel) });
    hv.run(hv.nowNs() + 550e6);
    const m = mgr.find("c");
    mgr.pause(m);
    const image = captureDomain(hv, m.domain, m.config, m.startInfoVa, new Uint8Array());
    const savedAt = text().match(/counter: \d+\n/g)?.length ?? 0;
    assert.ok(savedAt >= 4, text());
    const freeBefore = hv.mem.freeFrames;
    mgr.destroy(m);
    assert.ok(
      hv.mem.freeFrames >= freeBefore + m.domain.maxPages + 3,
      "destroy gives back every page and Xen's frames for the domain",
    );
    const { domain, header } = restoreDomain(hv, image, (d) => mgr.discard(d));
    mgr.adopt(domain, header.config, null, header.startInfoVa);
    assert.deepEqual(checkInvariants(hv), []);
    hv.run(hv.nowNs() + 550e6);
    assert.deepEqual(checkInvariants(hv), []);
    const counts = [...text().matchAll(/^counter: (\d+)$/gm)].map((x) => Number(x[1]));
    assert.ok(counts.length >= savedAt + 4, text());
    assert.deepEqual(
      counts,
      counts.map((_, i) => i + 1),
    );
    assert.doesNotMatch(text(), /FAIL/);
  });

  it("a July 2005 domain saves and restores as July (start_info layout, selectors, grant table)", () => {
    const { hv, mgr, text } = setUp();
    execFileSync("make", ["-s", "-C", GUESTS, "ABI=jul", "build/jul/ev_counter.elf"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const kernel = join(GUESTS, "build", "jul", "ev_counter.elf");
    const config = parseDomainConfig(
      "j.cfg",
      `kernel = "${kernel}"\nmemory = 8\nname = "j"\nabi = "2005-07"\nextra = "noctrl"\n`,
    );
    mgr.create(config, { kernel: readFileSync(kernel) });
    hv.run(hv.nowNs() + 550e6);
    const m = mgr.find("j");
    assert.equal(m.domain.abi.name, "2005-07");
    mgr.pause(m);
    const image = captureDomain(hv, m.domain, m.config, m.startInfoVa, new Uint8Array());
    assert.equal(decodeImage(image).header.abi, "2005-07");
    const savedAt = text().match(/counter: \d+\n/g)?.length ?? 0;
    assert.ok(savedAt >= 4, text());
    mgr.destroy(m);
    const { domain, header } = restoreDomain(hv, image, (d) => mgr.discard(d));
    assert.equal(domain.abi.name, "2005-07");
    mgr.adopt(domain, header.config, null, header.startInfoVa);
    assert.deepEqual(checkInvariants(hv), []);
    hv.run(hv.nowNs() + 550e6);
    assert.deepEqual(checkInvariants(hv), []);
    // The code selector it runs on is July's flat ring-1 one (0xE019), restored as saved.
    const v0 = domain.vcpus[0];
    assert.ok(v0.context, "the restored vcpu has a context");
    assert.equal(hv.current === v0 ? hv.cpu.segSel[1] : v0.context.segSel[1], 0xe019);
    const counts = [...text().matchAll(/^counter: (\d+)$/gm)].map((x) => Number(x[1]));
    assert.ok(counts.length >= savedAt + 4, text());
    assert.deepEqual(
      counts,
      counts.map((_, i) => i + 1),
    );
    assert.doesNotMatch(text(), /FAIL|failed/);
  });

  it("refuses damaged images before creating anything", () => {
    const { hv, mgr } = setUp();
    const kernel = join(GUESTS, "build", "ev_counter.elf");
    mgr.create(parseDomainConfig("c.cfg", `kernel = "${kernel}"\nmemory = 8\nname = "c"\n`), {
      kernel: readFileSync(kernel),
    });
    hv.run(hv.nowNs() + 100e6);
    const m = mgr.find("c");
    mgr.pause(m);
    const image = captureDomain(hv, m.domain, m.config, m.startInfoVa, new Uint8Array());
    const domains = hv.domains.size;
    assert.throws(() => decodeImage(image.subarray(0, image.length - 1)), /truncated/);
    const flipped = image.slice();
    flipped[flipped.length - 100] ^= 1;
    assert.throws(
      () => restoreDomain(hv, flipped, (d) => mgr.discard(d)),
      /corrupt \(its SHA-256 does not match\)/,
    );
    assert.throws(
      () => restoreDomain(hv, Buffer.from("TSXENSAV"), (d) => mgr.discard(d)),
      /not a tsxen save image/,
    );
    assert.throws(() => restoreDomain(hv, image.subarray(0, 4096), (d) => mgr.discard(d)), /truncated/);
    assert.equal(hv.domains.size, domains);
  });
});
