/**
 * Test helper: headless Chromium for the web pages' end-to-end tests (Debian's chromium,
 * which .ci/run installs, driven by playwright-core, which downloads no browser).
 */
import { existsSync } from "node:fs";
import { type Browser, chromium } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";

/** A reason to skip when Chromium is not installed, or false. */
export const noChromium: string | false = !existsSync(CHROMIUM) && `${CHROMIUM} is not installed`;

/** Chromium headless with no network of its own (this machine has none to give it). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}
