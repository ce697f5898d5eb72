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

  it("never executes code: calls, imports and attribute access are syntax errors", () => {
    assert.throws(() => parseConfigText("e.cfg", `import os\n`), /e\.cfg:1:8: expected "=" after "import"/);
    assert.throws(
      () => parseConfigText("e.cfg", `x = os.system("rm -rf /")\n`),
      /e\.cfg:1:7: unexpected character "\."/,
    );
    assert.throws(
      () => parseConfigText("e.cfg", `a = 1\nx = open("f")\n`),
      /e\.cfg:2:5: "open" is not defined/,
    );
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
