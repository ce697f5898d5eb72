/**
 * Domain configuration files (user manual, "Domain Configuration"): the Python-like syntax is
 * parsed, never executed, and each malformed line is named by file:line:column.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { looksLikeConfig, parseConfigText, parseDomainConfig, parseOverride } from "../src/tools/config.js";

describe("configuration files", () => {
  it("reads the manual's ttylinux example", () => {
    const c = parseDomainConfig(
      "ttylinux.cfg",
      `kernel = "/boot/vmlinuz-2.6.9-xenU"\nmemory = 64\nname = "ttylinux"\nnics = 1\nip = "1.2.3.4"\ndisk = ['file:/path/to/ttylinux/rootfs,sda1,w']\nroot = "/dev/sda1 ro"\n`,
    );
    assert.equal(c.kernel, "/boot/vmlinuz-2.6.9-xenU");
    assert.equal(c.memoryMiB, 64);
    assert.equal(c.name, "ttylinux");
    // xm's ip= names its stand-in NFS server, 1.2.3.4, when none is given.
    assert.equal(c.cmdline, "ip=1.2.3.4:1.2.3.4::::eth0:off root=/dev/sda1 ro");
    assert.deepEqual(c.disks, [
      { path: "/path/to/ttylinux/rootfs", dev: "sda1", vdev: 0x801, writable: true, force: false },
    ]);
    assert.ok(!c.warnings.some((w) => /disk/.test(w)), c.warnings.join("\n"));
  });

  it("composes the kernel command line as xm did: ip, root, nfsroot, extra", () => {
    const line = (text: string): string => parseDomainConfig("c.cfg", `kernel = "/k"\n${text}`).cmdline;
    assert.equal(line(""), "");
    assert.equal(
      line(`root = "/dev/sda1 ro"\nextra = "4 console=tty0"\n`),
      "root=/dev/sda1 ro 4 console=tty0",
    );
    assert.equal(line(`root = "root=/dev/ram0"\n`), "root=/dev/ram0", "a leading root= is not doubled");
    assert.equal(line(`extra = "quiet"\n`), "quiet");
    assert.equal(
      line(`nfs_server = "10.0.0.1"\nnfs_root = "/export/vm"\nroot = "/dev/nfs"\nextra = "ro"\n`),
      "root=/dev/nfs nfsroot=10.0.0.1:/export/vm ro",
    );
    assert.equal(
      line(`dhcp = "dhcp"\nhostname = "vm1"\n`),
      "ip=:1.2.3.4:::vm1:eth0:dhcp",
      "dhcp alone asks for ip=, with xm's stand-in server",
    );
    assert.equal(line(`gateway = "10.0.0.254"\n`), "", "no ip= without an address or dhcp");
    assert.throws(() => line(`nfs_root = "/export"\n`), /c\.cfg:2: nfs_root needs nfs_server/);
  });

  it("evaluates xmexample2-style expressions with command-line variables", () => {
    const text = `vmid = 0\nname = "VM%d" % vmid\nmemory = 32 + 8 * 2\ndisk = ['phy:hda%d,sda1,w' % (7 + vmid)] + ['phy:hda6,sda6,r']\nkernel = '/k'\n`;
    const { vars } = parseConfigText("x.cfg", text, new Map([["vmid", 3]]));
    assert.equal(vars.get("name"), "VM3");
    assert.equal(vars.get("memory"), 48);
    assert.deepEqual(vars.get("disk"), ["phy:hda10,sda1,w", "phy:hda6,sda6,r"]);
  });

  it("lets command-line settings override the file", () => {
    const c = parseDomainConfig(
      "x.cfg",
      `kernel = "/k"\nmemory = 16\n`,
      new Map([parseOverride("memory=24"), parseOverride("name=web")]),
    );
    assert.equal(c.memoryMiB, 24);
    assert.equal(c.name, "web");
  });

  it("accepts lists over several lines, comments and both quote styles", () => {
    const { vars } = parseConfigText(
      "x.cfg",
      `vif = [ 'mac=aa:00:00:00:00:11, bridge=xen-br0',  # first\n        "bridge=xen-br1" ]\n`,
    );
    assert.deepEqual(vars.get("vif"), ["mac=aa:00:00:00:00:11, bridge=xen-br0", "bridge=xen-br1"]);
  });

  it("never executes code: unknown calls, imports and attribute access are named as unsupported", () => {
    assert.throws(
      () => parseConfigText("e.cfg", `import subprocess\n`),
      /e\.cfg:1:8: import subprocess is not supported: tsxen accepts import os and import sys/,
    );
    assert.throws(
      () => parseConfigText("e.cfg", `x = os.system("rm -rf /")\n`),
      /e\.cfg:1:5: "os\.system" is not supported: tsxen reads a subset of Python/,
    );
    assert.throws(
      () => parseConfigText("e.cfg", `import os\nx = os.system("rm -rf /")\n`),
      /e\.cfg:2:5: os\.system is not supported: import os is accepted, but nothing of it can be used/,
    );
    assert.throws(
      () => parseConfigText("e.cfg", `a = 1\nx = open("f")\n`),
      /e\.cfg:2:5: open\(\) is not supported: of Python's functions tsxen has int\(\) and str\(\)/,
    );
    assert.throws(
      () => parseConfigText("e.cfg", `xm_vars.check()\n`),
      /e\.cfg:1:1: "xm_vars\.check" is not supported: tsxen reads a subset of Python/,
    );
  });

  it("reads the Python subset people write: imports, int(), str(), if/elif/else, comparisons", () => {
    const text = [
      "import os, sys",
      "vmid = int(vmid)",
      'name = "vm" + str(vmid)',
      "if vmid > 2:",
      "    memory = 64",
      '    extra = "big"',
      "elif vmid == 2:",
      "",
      "    memory = 48   # blank lines and comments inside a block",
      "else:",
      "    memory = undefined_here   # an untaken branch is not evaluated",
      "big = memory >= 64 and vmid != 7",
      "root = '/dev/sda%d ro' % (vmid + 1) if big else '/dev/ram0'",
      "disk = ['file:/img/%s,sda1,w' % name] * 2",
      "if not big: extra = 'small'",
      "half = memory / 2 + memory // 5 - -7 % 3",
      "flags = [vmid < 2 < 3, 'a' in ['a'], None is None, 3 not in [1, 2], [1, 2][-1]]",
      "hexa = int('ff', 16)",
      "memory += 1",
      "",
    ].join("\n");
    const vars = (vmid: string) =>
      parseConfigText("p.cfg", text, new Map([parseOverride(`vmid=${vmid}`)])).vars;
    const three = vars("3");
    assert.equal(three.get("name"), "vm3");
    assert.equal(three.get("memory"), 65);
    assert.equal(three.get("extra"), "big");
    assert.equal(three.get("root"), "/dev/sda4 ro");
    assert.deepEqual(three.get("disk"), ["file:/img/vm3,sda1,w", "file:/img/vm3,sda1,w"]);
    // Python 2's whole-number division (xm's Python): 64 / 2 + 64 // 5 - (-7 % 3) = 32 + 12 - 2.
    assert.equal(three.get("half"), 42);
    assert.deepEqual(three.get("flags"), [false, true, true, true, 2]);
    assert.equal(three.get("hexa"), 255);
    const two = vars("2");
    assert.equal(two.get("memory"), 49);
    assert.equal(two.get("root"), "/dev/ram0");
    assert.equal(two.get("extra"), "small");
    assert.throws(() => vars("1"), /p\.cfg:11:14: "undefined_here" is not defined/);
    assert.throws(() => vars('"x"'), /p\.cfg:2:8: int\(\) cannot read 'x' as a whole number/);
  });

  it("a config that begins with import os is a configuration file, and the command line's vars fill it", () => {
    const text = `import os\nkernel = "/k"\nname = "counter%d" % vmid\n`;
    assert.ok(looksLikeConfig(Buffer.from(text)));
    assert.ok(looksLikeConfig(Buffer.from(`# xmexample2\ndef vmid_check(var, val):\n  pass\n`)));
    assert.equal(parseDomainConfig("c.cfg", text, new Map([parseOverride("vmid=1")])).name, "counter1");
  });

  it("names file:line and what is unsupported for Python outside the subset", () => {
    for (const [text, message] of [
      [
        `def vmid_check(var, val):\n  return val\n`,
        /s\.cfg:1:1: "def" is not supported: tsxen reads a subset of Python/,
      ],
      [`for i in [1]:\n  x = i\n`, /s\.cfg:1:1: "for" is not supported/],
      [`from os import path\n`, /s\.cfg:1:1: "from \.\.\. import" is not supported/],
      [`x = len([1])\n`, /s\.cfg:1:5: len\(\) is not supported/],
      [`x = 1\n  y = 2\n`, /s\.cfg:2:3: unexpected indentation/],
      [`if 1:\nx = 2\n`, /s\.cfg:2:1: expected an indented block/],
      [`if 1:\n    x = 2\n  y = 3\n`, /s\.cfg:3:1: this line's indentation matches no enclosing block/],
      [`else:\n  x = 1\n`, /s\.cfg:1:1: "else" without an if before it/],
      [`x = 1 if 1\n`, /s\.cfg:1:11: expected "else" in "\.\.\. if \.\.\. else \.\.\."/],
      [`x = "a" < 1\n`, /s\.cfg:1:9: cannot compare a string and a number with "<"/],
      [`x = "%f" % 1\n`, /s\.cfg:1:10: the % format "%f" has %f; tsxen knows %s %r %d %i %x %X %%/],
      [`x = 1 // 0\n`, /s\.cfg:1:7: division by zero/],
    ] as const) {
      assert.throws(() => parseConfigText("s.cfg", text), message, text);
    }
  });

  it("reads nested conditional expressions in linear time", () => {
    let deep = "1";
    for (let k = 0; k < 60; k++) deep = `(${deep} if ${k % 2} else [${k}])`;
    const start = Date.now();
    assert.deepEqual(parseConfigText("d.cfg", `x = ${deep}\n`).vars.get("x"), [58]);
    assert.ok(Date.now() - start < 2000);
  });

  it("names file:line:column for each kind of malformed line", () => {
    assert.throws(() => parseConfigText("m.cfg", `kernel = "/k\n`), /m\.cfg:1:10: unterminated string/);
    assert.throws(
      () => parseConfigText("m.cfg", `memory = 64 64\n`),
      /m\.cfg:1:13: unexpected "64" after the value of "memory"/,
    );
    assert.throws(
      () => parseConfigText("m.cfg", `disk = ['a', 'b'\nname = "x"\n`),
      /m\.cfg:2:1: expected "," or "\]" in the list, found "name"/,
    );
    assert.throws(() => parseConfigText("m.cfg", `x = 1.5\n`), /m\.cfg:1:5: 1\.5 is not a whole number/);
    assert.throws(
      () => parseConfigText("m.cfg", `x = "a" - 1\n`),
      /m\.cfg:1:9: cannot apply "-" to a string and a number/,
    );
    assert.throws(() => parseConfigText("m.cfg", `x = @\n`), /m\.cfg:1:5: unexpected character "@"/);
  });

  it("checks each setting's type and range", () => {
    assert.throws(() => parseDomainConfig("c.cfg", `memory = 64\n`), /c\.cfg: no kernel given/);
    assert.throws(
      () => parseDomainConfig("c.cfg", `kernel = "/k"\nmemory = "64M"\n`),
      /c\.cfg:2: memory must be a whole number/,
    );
    assert.throws(
      () => parseDomainConfig("c.cfg", `kernel = "/k"\non_crash = "explode"\n`),
      /c\.cfg:2: on_crash must be one of destroy, restart, preserve/,
    );
    assert.throws(
      () => parseDomainConfig("c.cfg", `kernel = "/k"\nabi = "2006-01"\n`),
      /c\.cfg:2: abi must be "2005-03" or "2005-07"/,
    );
    assert.throws(() => parseDomainConfig("c.cfg", `kernel = 5\n`), /c\.cfg:1: kernel must be a string/);
    assert.throws(
      () => parseDomainConfig("c.cfg", `kernel = "/k"\nname = "bad name"\n`),
      /c\.cfg:2: name "bad name" is not usable/,
    );
    assert.throws(
      () => parseDomainConfig("c.cfg", `kernel = "/k"\nname = "Domain-0"\n`),
      /c\.cfg:2: the name Domain-0 belongs to dom0/,
    );
    for (const [setting, bad] of [
      ["memory", 0],
      ["memory", 4097],
      ["cpu", -2],
      ["cpu", 32],
      ["vcpus", 0],
      ["vcpus", 33],
    ] as const) {
      assert.throws(
        () => parseDomainConfig("c.cfg", `kernel = "/k"\n${setting} = ${bad}\n`),
        new RegExp(`c\\.cfg:2: ${setting} = ${bad} is out of range`),
        `${setting} = ${bad}`,
      );
    }
    assert.equal(parseDomainConfig("c.cfg", `kernel = "/k"\nmemory = 4096\ncpu = 31\n`).memoryMiB, 4096);
    // One virtual CPU per domain at this interface: vcpus = 1 is the default and the only value.
    assert.equal(parseDomainConfig("c.cfg", `kernel = "/k"\nvcpus = 1\n`).vcpus, 1);
    assert.throws(
      () => parseDomainConfig("c.cfg", `kernel = "/k"\nvcpus = 2\n`),
      /c\.cfg:2: vcpus = 2: the 2005-03 interface has one virtual CPU per domain/,
    );
  });

  it("maps the manual's restart setting onto on_poweroff/on_reboot/on_crash", () => {
    const c = parseDomainConfig("r.cfg", `kernel = "/k"\nrestart = "always"\n`);
    assert.deepEqual([c.onPoweroff, c.onReboot, c.onCrash], ["restart", "restart", "restart"]);
    const d = parseDomainConfig("r.cfg", `kernel = "/k"\n`);
    assert.deepEqual(
      [d.onPoweroff, d.onReboot, d.onCrash, d.abi],
      ["destroy", "restart", "destroy", "2005-03"],
    );
  });

  it("tells a configuration file from a kernel image by content", () => {
    assert.ok(looksLikeConfig(Buffer.from(`# comment\nkernel = "/k"\n`)));
    assert.ok(!looksLikeConfig(Uint8Array.from([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1])));
    assert.ok(!looksLikeConfig(Buffer.from("just some text\n")));
  });
});
