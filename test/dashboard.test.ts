/**
 * tsxend's dashboard end to end in headless Chromium (Debian's chromium, driven by
 * playwright-core), against a real daemon: the host and the domains, a domain created from a
 * configuration with its console attached, pause/unpause and destroy, a kernel and an initrd
 * uploaded from the page with typing into the guest's console, a bad configuration named, and
 * a daemon that wants a token. Skipped where /usr/bin/chromium is not installed
 * (.ci/run installs it).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import type { Browser, Page } from "playwright-core";
import { buildWeb } from "../scripts/build-web.js";
import type { Daemon } from "../src/daemon/daemon.js";
import { launchChromium, noChromium } from "./helpers/chromium.js";
import { startDaemon } from "./helpers/daemon.js";
import { fnv1a } from "./support/fnv.js";

const GUESTS = fileURLToPath(new URL("../../guests", import.meta.url));

/** A daemon serving the page, and the URL it prints at start (the token in it). */
async function dashboardDaemon(webDir: string, token?: string): Promise<{ daemon: Daemon; url: string }> {
  const { daemon } = await startDaemon({ webDir, token });
  return { daemon, url: daemon.dashboardUrl() };
}

/** The text of the domains table's row for a domain name, or "" when there is none. */
function rowText(page: Page, name: string): Promise<string> {
  return page.evaluate(
    (n) =>
      [...document.querySelectorAll("#domains tr")].find((tr) => tr.children[1]?.textContent === n)
        ?.textContent ?? "",
    name,
  );
}

describe("the tsxend dashboard in Chromium", { skip: noChromium }, () => {
  let browser: Browser;
  let webDir: string;
  let kernel: string;
  const daemons: Daemon[] = [];
  before(async () => {
    execFileSync("make", ["-s", "-C", GUESTS, "build/ev_counter.elf", "build/ev_ctrl_shell.elf"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    kernel = join(GUESTS, "build", "ev_counter.elf");
    webDir = await buildWeb(mkdtempSync(join(tmpdir(), "tsxen-dash-")));
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    for (const d of daemons) await d.close();
  });

  it("lists the domains, creates one with its console, pauses, unpauses and destroys it", async () => {
    const { daemon, url } = await dashboardDaemon(webDir);
    daemons.push(daemon);
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(url);
    await page.waitForFunction(() => /CPU\(s\)/.test(document.getElementById("host")?.textContent ?? ""));
    assert.match(
      (await page.textContent("#host")) ?? "",
      /^Xen .* 1 CPU\(s\), \d+ of 128 MiB free, scheduler bvt$/,
    );
    // The page kept the printed URL's token and took it out of the address bar; a visit
    // without it (a reload, another tab) still gets in.
    assert.equal(page.url(), url.replace(/\?token=.*$/, ""));
    await page.reload();
    await page.waitForFunction(() => /CPU\(s\)/.test(document.getElementById("host")?.textContent ?? ""));
    assert.match(await rowText(page, "Domain-0"), /^0Domain-0/);
    // The form comes with the bundled guest's path filled in.
    assert.match(await page.inputValue("#config"), /guests\/hello\.elf/);

    await page.fill("#config", `name = "ctr"\nkernel = "${kernel}"\nmemory = 16\n`);
    await page.click("#create button");
    await page.waitForFunction(() => /created/.test(document.getElementById("message")?.textContent ?? ""));
    assert.match((await page.textContent("#message")) ?? "", /^domain 1 \(ctr\) created$/);
    await page.waitForFunction(
      () => /counter: 3/.test(document.querySelector(".xterm-rows")?.textContent ?? ""),
      null,
      {
        timeout: 20_000,
      },
    );
    assert.match((await page.textContent("#console-name")) ?? "", /of domain 1 \(ctr\)/);

    const button = (label: string) =>
      page.locator("#domains tr", { hasText: "ctr" }).getByRole("button", { name: label });
    await button("Pause").click();
    await page.waitForFunction(() => /paused/.test(document.getElementById("message")?.textContent ?? ""));
    await page.waitForFunction(() =>
      document.querySelector("#domains tr:nth-child(2)")?.children[4]?.textContent?.includes("p"),
    );
    assert.equal(daemon.manager.find("ctr").domain.paused, true);
    await button("Unpause").click();
    await page.waitForFunction(() => /unpaused/.test(document.getElementById("message")?.textContent ?? ""));
    assert.equal(daemon.manager.find("ctr").domain.paused, false);

    await button("Destroy").click();
    await page.waitForFunction(() => /destroyed/.test(document.getElementById("message")?.textContent ?? ""));
    await page.waitForFunction(() => document.querySelectorAll("#domains tr").length === 1);
    assert.throws(() => daemon.manager.find("ctr"));
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("creates a domain from an uploaded kernel and initrd; typing reaches its control-interface console", async () => {
    const { daemon, url } = await dashboardDaemon(webDir);
    daemons.push(daemon);
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(url);
    await page.waitForFunction(() => /CPU\(s\)/.test(document.getElementById("host")?.textContent ?? ""));
    const dir = mkdtempSync(join(tmpdir(), "tsxen-dash-upload-"));
    const initrd = join(dir, "initrd.img");
    const bytes = randomBytes(20_000);
    writeFileSync(initrd, bytes);
    // No kernel line: the uploaded file stands in for it.
    await page.fill("#config", `name = "shell"\nmemory = 16\nroot = "/dev/ram0"\n`);
    await page.setInputFiles("#kernel-file", join(GUESTS, "build", "ev_ctrl_shell.elf"));
    await page.setInputFiles("#ramdisk-file", initrd);
    await page.click("#create button");
    const waitScreen = (re: RegExp): Promise<unknown> =>
      page.waitForFunction(
        (src) => new RegExp(src).test(document.querySelector(".xterm-rows")?.textContent ?? ""),
        re.source,
        { timeout: 30_000 },
      );
    await waitScreen(/ctrl> /);
    const screen = (await page.textContent(".xterm-rows")) ?? "";
    assert.match(screen, /boot cmdline="root=\/dev\/ram0"/);
    assert.match(screen, new RegExp(`module: start=0x[0-9a-f]+ len=20000 fnv=${fnv1a(bytes)}`));
    assert.equal(daemon.manager.find("shell").config.kernel, "upload:ev_ctrl_shell.elf");
    await page.click("#terminal");
    await page.keyboard.type("echo typed in the dashboard");
    await page.keyboard.press("Enter");
    await waitScreen(/echo typed in the dashboard\s*typed in the dashboard\s*ctrl> /);
    await page.keyboard.type("poweroff");
    await page.keyboard.press("Enter");
    // on_poweroff = destroy: the row goes.
    await page.waitForFunction(() => document.querySelectorAll("#domains tr").length === 1, null, {
      timeout: 20_000,
    });
    assert.throws(() => daemon.manager.find("shell"));
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("migrates a domain live to another tsxend, asking where to", async () => {
    const { daemon, url } = await dashboardDaemon(webDir);
    const other = await startDaemon({ token: "other-s3cret" });
    daemons.push(daemon, other.daemon);
    const page = await browser.newPage();
    await page.goto(url);
    await page.fill("#config", `name = "mover"\nkernel = "${kernel}"\nmemory = 16\n`);
    await page.click("#create button");
    await page.waitForFunction(
      () => /counter: 2/.test(document.querySelector(".xterm-rows")?.textContent ?? ""),
      null,
      {
        timeout: 20_000,
      },
    );
    // Where to, then that tsxend's token.
    const answers = [`127.0.0.1:${other.port}`, "other-s3cret"];
    page.on("dialog", (d) => void d.accept(answers.shift()));
    await page.locator("#domains tr", { hasText: "mover" }).getByRole("button", { name: "Migrate" }).click();
    await page.waitForFunction(
      () => /migrated/.test(document.getElementById("message")?.textContent ?? ""),
      null,
      {
        timeout: 20_000,
      },
    );
    await page.waitForFunction(() => document.querySelectorAll("#domains tr").length === 1);
    assert.equal(other.daemon.manager.find("mover").domain.paused, false);
    assert.throws(() => daemon.manager.find("mover"));
    await page.close();
  });

  it("Domain-0's Console explains that dom0 is tsxend and shows Xen's console ring instead", async () => {
    const { daemon, url } = await dashboardDaemon(webDir);
    daemons.push(daemon);
    daemon.hv.log("a message for dom0's console");
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(url);
    await page.waitForFunction(() => /CPU\(s\)/.test(document.getElementById("host")?.textContent ?? ""));
    await page
      .locator("#domains tr", { hasText: "Domain-0" })
      .getByRole("button", { name: "Console" })
      .click();
    await page.waitForFunction(
      () => /for dom0's console/.test(document.querySelector(".xterm-rows")?.textContent ?? ""),
      null,
      { timeout: 20_000 },
    );
    const screen = (await page.textContent(".xterm-rows")) ?? "";
    assert.match(screen, /Domain-0 is tsxend itself/);
    assert.match(screen, /\(XEN\) tsxen hypervisor: 128 MiB/);
    assert.match(screen, /\(XEN\) a message for dom0's console/);
    assert.doesNotMatch(screen, /console closed/);
    assert.match((await page.textContent("#console-name")) ?? "", /of domain 0 \(Domain-0\)/);
    assert.deepEqual(errors, []);
    await page.close();
  });

  it("names the line of a bad configuration", async () => {
    const { daemon, url } = await dashboardDaemon(webDir);
    daemons.push(daemon);
    const page = await browser.newPage();
    await page.goto(url);
    await page.fill("#config", `kernel = "${kernel}"\nmemory = "lots"\n`);
    await page.click("#create button");
    await page.waitForFunction(() => document.getElementById("message")?.className === "error");
    assert.match((await page.textContent("#message")) ?? "", /dashboard:2: memory must be a whole number/);
    await page.close();
  });

  it("asks for the token when opened without it, then works with it, console included", async () => {
    const { daemon, url } = await dashboardDaemon(webDir, "s3cret");
    daemons.push(daemon);
    const page = await browser.newPage();
    await page.goto(url.replace(/\?token=.*$/, ""));
    await page.waitForSelector("#auth", { state: "visible" });
    assert.match((await page.textContent("#host")) ?? "", /this tsxend wants its token/);
    await page.fill("#token", "s3cret");
    await page.click("#auth button");
    await page.waitForFunction(() => /CPU\(s\)/.test(document.getElementById("host")?.textContent ?? ""));
    await page.fill("#config", `name = "ctr"\nkernel = "${kernel}"\nmemory = 16\n`);
    await page.click("#create button");
    await page.waitForFunction(
      () => /counter: 2/.test(document.querySelector(".xterm-rows")?.textContent ?? ""),
      null,
      {
        timeout: 20_000,
      },
    );
    await page.close();
  });
});
