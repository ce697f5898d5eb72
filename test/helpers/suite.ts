/** Gating of the real-guest suites, which run only when the environment names their files. */
import { describe, it } from "node:test";

/**
 * A suite that cannot run is one skipped test with its reason, so the run's summary counts it
 * (a skipped describe counts no test at all).
 */
export function suiteOrSkip(name: string, skipReason: string | false, body: () => void): void {
  if (skipReason) it(name, { skip: skipReason }, () => {});
  else describe(name, body);
}
