/**
 * POST /api/v1/domains with the kernel and initrd in the request (the dashboard's uploads):
 * they stand in for the configuration's kernel and ramdisk, the guest gets the initrd's bytes
 * as its module, and malformed uploads get a sentence (400), not a crash.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import type { Daemon } from "../src/daemon/daemon.js";
import { apiHeaders, startDaemon } from "./helpers/daemon.js";
import { fnv1a } from "./support/fnv.js";
import { guestPath } from "./support/guests.js";

describe("tsxend: a domain from uploaded files", () => {
  let daemon: Daemon;
  let base: string;
  let token: string;
  before(async () => {
    const d = await startDaemon({ pacing: "fast" });
    daemon = d.daemon;
    token = d.token;
    base = `http://127.0.0.1:${d.port}/api/v1`;
  });
  after(async () => {
    await daemon?.close();
  });

  const create = async (body: unknown): Promise<{ status: number; answer: Record<string, unknown> }> => {
    const r = await fetch(`${base}/domains`, {
      method: "POST",
      headers: apiHeaders(token),
      body: JSON.stringify(body),
    });
    return { status: r.status, answer: (await r.json()) as Record<string, unknown> };
  };

  it("boots the uploaded kernel with the uploaded initrd as its module", async () => {
    const initrd = randomBytes(12_345);
    const { status, answer } = await create({
      file: "upload.cfg",
      config: `name = "up"\nmemory = 16\nextra = "from the dashboard"\n`,
      kernelUpload: {
        name: "ctrl shell.elf",
        data: readFileSync(guestPath("ev_ctrl_shell")).toString("base64"),
      },
      ramdiskUpload: { name: "initrd.img", data: initrd.toString("base64") },
    });
    assert.equal(status, 201, JSON.stringify(answer));
    const m = daemon.manager.find("up");
    assert.equal(m.config.kernel, "upload:ctrl_shell.elf", "the name is made safe to show");
    assert.equal(m.config.ramdisk, "upload:initrd.img");
    let text = "";
    for (let i = 0; i < 100 && !/ctrl> /.test(text); i++) {
      await new Promise((r) => setTimeout(r, 100));
      text = Buffer.from(daemon.manager.consoleHistory(m)).toString("latin1");
    }
    assert.match(text, /boot cmdline="from the dashboard"/);
    assert.match(text, new RegExp(`module: start=0x[0-9a-f]+ len=12345 fnv=${fnv1a(initrd)}`));
  });

  it("names what is wrong with an upload", async () => {
    const config = `name = "bad"\nmemory = 16\n`;
    const cases: Array<[unknown, RegExp]> = [
      ["just a string", /kernelUpload must be \{name, data\}/],
      [{ name: "k", data: "not base64!" }, /kernelUpload\.data is not base64/],
      [{ name: "k", data: "" }, /kernelUpload \(k\) is empty/],
      [
        { name: "k", data: Buffer.from("not an ELF at all").toString("base64") },
        /cannot build domain "bad": .*ELF/,
      ],
    ];
    for (const [kernelUpload, want] of cases) {
      const { status, answer } = await create({ file: "bad.cfg", config, kernelUpload });
      assert.equal(status, 400, JSON.stringify(answer));
      assert.match(String(answer.error), want);
    }
    assert.throws(() => daemon.manager.find("bad"));
  });
});
