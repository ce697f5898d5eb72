/**
 * The page itself, end to end in headless Chromium (Debian's chromium, driven by
 * playwright-core): `tsxen web` serves the build, the page boots the bundled hello guest and
 * its console shows in the xterm.js terminal; a kernel that is not an ELF gets a sentence in
 * the status line. Skipped where /usr/bin/chromium is not installed (.ci/run installs it).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser } from "playwright-core";
import { buildWeb } from "../scripts/build-web.js";
import { serveWeb } from "../src/cli/web.js";
import { launchChromium, noChromium } from "./helpers/chromium.js";
import { fnv1a } from "./support/fnv.js";
import { guestPath } from "./support/guests.js";

describe("the web page in Chromium", { skip: noChromium }, () => {
  let browser: Browser;
  let url: string;
  let close: () => void;
  before(async () => {
    const dir = await buildWeb(mkdtempSync(join(tmpdir(), "tsxen-web-")));
    const server = await serveWeb(0, "127.0.0.1", dir);
    close = () => server.close();
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    close?.();
  });

  it("boots the bundled hello guest and shows its console", async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(url);
    await page.click("#start");
    await page.waitForFunction(
      () => /shut down/.test(document.getElementById("status")?.textContent ?? ""),
      null,
      {
        timeout: 60_000,
      },
    );
    const status = await page.textContent("#status");
    assert.match(status ?? "", /^domain 1 shut down: poweroff \(guest time [\d.]+ s\)$/);
    const screen = await page.textContent(".xterm-rows");
    assert.match(screen ?? "", /Hello from tsxen!/);
    assert.match(screen ?? "", /hello: goodbye/);
    if (process.env.TSXEN_SCREENSHOT) await page.screenshot({ path: process.env.TSXEN_SCREENSHOT });
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("boots an uploaded kernel with an uploaded initrd, and the keyboard reaches its control-interface console", async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(url);
    const dir = mkdtempSync(join(tmpdir(), "tsxen-upload-"));
    const initrd = join(dir, "initrd.img");
    const bytes = randomBytes(9000);
    writeFileSync(initrd, bytes);
    await page.setInputFiles("#kernel", guestPath("ev_ctrl_shell"));
    await page.setInputFiles("#ramdisk", initrd);
    await page.fill("#memory", "16");
    await page.click("#start");
    const screen = async (): Promise<string> => (await page.textContent(".xterm-rows")) ?? "";
    const waitScreen = (re: RegExp): Promise<unknown> =>
      page.waitForFunction(
        (src) => new RegExp(src).test(document.querySelector(".xterm-rows")?.textContent ?? ""),
        re.source,
        { timeout: 60_000 },
      );
    await waitScreen(/ctrl> /);
    // The guest read the module the page uploaded: its length and hash, as it printed them.
    assert.match(await screen(), new RegExp(`module: start=0x[0-9a-f]+ len=9000 fnv=${fnv1a(bytes)}`));
    await page.click("#terminal");
    await page.keyboard.type("echo typed in the page");
    await page.keyboard.press("Enter");
    await waitScreen(/ctrl> echo typed in the page\s*typed in the page\s*ctrl> /);
    await page.keyboard.type("reboot");
    await page.keyboard.press("Enter");
    await waitScreen(/rebooting[\s\S]*ctrl_shell: boot[\s\S]*ctrl> /);
    await page.keyboard.type("poweroff");
    await page.keyboard.press("Enter");
    await page.waitForFunction(
      () => /shut down/.test(document.getElementById("status")?.textContent ?? ""),
      null,
      {
        timeout: 60_000,
      },
    );
    assert.match(
      (await page.textContent("#status")) ?? "",
      /^domain 2 shut down: poweroff \(guest time [\d.]+ s\)$/,
    );
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("boots the kernel its URL names (?kernel=…&cmdline=…&memory=…) at once, as v86's page does", async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${url}?kernel=hello.elf&cmdline=${encodeURIComponent("from the address")}&memory=16`);
    await page.waitForFunction(
      () => /shut down/.test(document.getElementById("status")?.textContent ?? ""),
      null,
      {
        timeout: 60_000,
      },
    );
    const screen = (await page.textContent(".xterm-rows")) ?? "";
    assert.match(screen, /cmdline="from the address"/);
    assert.match(screen, /nr_pages=4096 /, "16 MiB");
    assert.equal(await page.inputValue("#memory"), "16");
    const missing = await browser.newPage();
    await missing.goto(`${url}?kernel=nosuch.elf`);
    await missing.waitForFunction(() => document.getElementById("status")?.className === "error");
    assert.equal(await missing.textContent("#status"), "cannot fetch the kernel nosuch.elf: HTTP 404");
    const big = await browser.newPage();
    await big.goto(`${url}?kernel=hello.elf&memory=4000`);
    await big.waitForFunction(() => document.getElementById("status")?.className === "error");
    assert.equal(
      await big.textContent("#status"),
      'memory must be a whole number of MiB from 1 to 96, not "4000"',
    );
    assert.deepEqual(errors, []);
    for (const p of [page, missing, big]) await p.close();
  });

  it("boots a kernel dropped on the page, with a dropped initrd as its module", async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(url);
    const initrd = randomBytes(5000);
    const kernel = readFileSync(guestPath("ev_ctrl_shell"));
    // What a browser makes of a drag from the file manager: a drop event with two files.
    await page.evaluate(
      ([k, i]) => {
        const dt = new DataTransfer();
        const bytes = (b64: string) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        dt.items.add(new File([bytes(i)], "initrd.img"));
        dt.items.add(new File([bytes(k)], "ctrl_shell.elf"));
        document.body.dispatchEvent(
          new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }),
        );
      },
      [kernel.toString("base64"), initrd.toString("base64")],
    );
    await page.waitForFunction(
      () => /ctrl> /.test(document.querySelector(".xterm-rows")?.textContent ?? ""),
      null,
      {
        timeout: 60_000,
      },
    );
    const screen = (await page.textContent(".xterm-rows")) ?? "";
    // The shell reports its module's size and hash: the dropped initrd's.
    assert.match(screen, new RegExp(`module: start=0x[0-9a-f]+ len=5000 fnv=${fnv1a(initrd)}`));
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("names what is wrong with a kernel that is not an ELF", async () => {
    const page = await browser.newPage();
    await page.goto(url);
    const bad = join(mkdtempSync(join(tmpdir(), "tsxen-bad-")), "notakernel.bin");
    writeFileSync(bad, "this is not an ELF image\n");
    await page.setInputFiles("#kernel", bad);
    await page.click("#start");
    await page.waitForFunction(() => document.getElementById("status")?.className === "error");
    assert.match((await page.textContent("#status")) ?? "", /ELF/);
    assert.equal(await page.isDisabled("#start"), false);
    await page.close();
  });
});
