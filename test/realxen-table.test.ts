/**
 * The real-Xen comparison's committed parts, checked without QEMU (issue 17): the
 * classification table names real checks of real guests with known classes and no "tsxen
 * wrong", and the console parser reads PASS, FAIL and SKIP lines as the guests print them.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { CLASSES, outcomes, parseTable } from "../scripts/conformance-realxen.js";

const root = new URL("../../", import.meta.url);
const table = parseTable(readFileSync(new URL("docs/realxen-table.md", root), "utf8"));

describe("docs/realxen-table.md", () => {
  it("has rows, each of a known class, and none is 'tsxen wrong'", () => {
    assert.ok(table.length > 0);
    for (const r of table) assert.ok((CLASSES as readonly string[]).includes(r.cls), r.cls);
    assert.deepEqual(
      table.filter((r) => r.cls === "tsxen wrong"),
      [],
    );
  });

  it("names only checks of existing conformance guests (a name in the guest's source)", () => {
    for (const r of table) {
      const src = readFileSync(
        new URL(`guests/conformance/${r.guest.replace(/^conf_/, "")}.c`, root),
        "utf8",
      );
      // unexpected_trap is the library's report of a trap no check expected.
      if (r.check === "unexpected_trap") continue;
      // Names built with snprintf (a format) or expect_gp's suffixes (a prefix).
      const name = r.check.replace(/\*$/, "");
      const found = [...src.matchAll(/"([a-z0-9_%]+)"/g)].some(([, lit]) => {
        const re = new RegExp(`^${lit.replace(/%[ux]/g, "[0-9a-f]+").replace(/%s/g, "\\w+")}$`);
        return re.test(name) || (name.startsWith(lit) && lit.length >= 8);
      });
      assert.ok(found, `${r.guest}: no check ${r.check}`);
    }
  });

  it("lists each check once", () => {
    const keys = table.map((r) => `${r.guest} ${r.check}`);
    assert.deepEqual(
      keys.filter((k, i) => keys.indexOf(k) !== i),
      [],
    );
  });

  it("refuses a row of an unknown class", () => {
    assert.throws(
      () => parseTable("| conf_ldt | `x` | maybe wrong | why |\n"),
      /unknown class "maybe wrong"/,
    );
  });
});

describe("the console parser", () => {
  it("reads PASS, FAIL with its detail, and SKIP, by check name", () => {
    const o = outcomes(
      "tsxen conformance: x\nPASS a_ok\nFAIL b_bad: got 0x1\nSKIP c_eperm: privileged\nDONE passed=1\n",
    );
    assert.deepEqual(
      [...o].map(([n, v]) => [n, v.kind]),
      [
        ["a_ok", "PASS"],
        ["b_bad", "FAIL"],
        ["c_eperm", "SKIP"],
      ],
    );
    assert.equal(o.get("b_bad")?.line, "FAIL b_bad: got 0x1");
  });
});
