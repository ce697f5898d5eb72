/**
 * The simulated PCI bus (src/machine/pci.ts): configuration-space rules, BAR sizing, absent
 * functions, mechanism #1, INTx wiring; and Xen's side of it (src/xen/physdev.ts): the boot
 * scan, DOM0_PCIDEV_ACCESS, dom0's device list and the memory-BAR rule for I/O mappings
 * (semantics.md §1.4 step 3, §8 PCIDEV_ACCESS, §9.1). The guests/events/physdev_pci.c and
 * guests/conformance/physdev_pci_unpriv.c guests check physdev_op itself.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { IrqController } from "../src/machine/irq.js";
import {
  bdf,
  PCI_BASE_ADDRESS_0,
  PCI_CACHE_LINE_SIZE,
  PCI_CLASS_DEVICE,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_MEMORY,
  PCI_HEADER_TYPE,
  PCI_INTERRUPT_LINE,
  PCI_INTERRUPT_PIN,
  PCI_LATENCY_TIMER,
  PCI_ROM_ADDRESS,
  PCI_STATUS,
  PCI_STATUS_INTERRUPT,
  PCI_VENDOR_ID,
  PciBus,
  PciFunction,
  probeBarSize,
  standardPciBus,
} from "../src/machine/pci.js";
import { EINVAL, ENODEV, ESRCH } from "../src/public/errno.js";
import { launchDomain } from "../src/tools/launch.js";
import { Hypervisor } from "../src/xen/hypervisor.js";
import { domainIomemInPfn, grantPciAccess, pciDevices } from "../src/xen/physdev.js";
import { assertGuestPassed } from "./support/console.js";
import { guestPath } from "./support/guests.js";

const NIC = [0, 3, 0] as const;
const SCSI = [0, 4, 0] as const;

function bus(): PciBus {
  return standardPciBus(new IrqController());
}

describe("PCI configuration space", () => {
  it("identity registers read as the device's vendor, device, class and header type", () => {
    const b = bus();
    assert.equal(b.configRead(...NIC, PCI_VENDOR_ID, 4), 0x100e8086);
    assert.equal(b.configRead(...NIC, PCI_CLASS_DEVICE, 2), 0x0200);
    assert.equal(b.configRead(0, 0, 0, 0x08, 4) >>> 8, 0x060000, "host bridge class");
    assert.equal(b.configRead(0, 0, 0, PCI_HEADER_TYPE, 1), 0x00);
    assert.equal(b.configRead(0, 1, 0, PCI_HEADER_TYPE, 1), 0x80, "function 0 of a multi-function device");
    assert.equal(b.configRead(0, 1, 1, PCI_CLASS_DEVICE, 2), 0x0101, "IDE");
  });

  it("absent functions read all ones at every width and ignore writes", () => {
    const b = bus();
    assert.equal(b.configRead(0, 2, 0, 0, 4), 0xffffffff);
    assert.equal(b.configRead(0, 2, 0, 2, 2), 0xffff);
    assert.equal(b.configRead(5, 0, 0, 3, 1), 0xff);
    assert.equal(b.configRead(0, 3, 1, 0, 4), 0xffffffff, "function 1 of a single-function device");
    b.configWrite(0, 2, 0, PCI_COMMAND, 2, 0xffff);
    assert.equal(b.configRead(0, 2, 0, PCI_COMMAND, 2), 0xffff);
  });

  it("accesses must be 1, 2 or 4 bytes, naturally aligned, inside the 256 bytes", () => {
    const b = bus();
    assert.throws(() => b.configRead(...NIC, 1, 2), RangeError);
    assert.throws(() => b.configRead(...NIC, 2, 4), RangeError);
    assert.throws(() => b.configRead(...NIC, 0, 3), RangeError);
    assert.throws(() => b.configRead(...NIC, 256, 1), RangeError);
    assert.throws(() => b.configWrite(...NIC, -1, 1, 0), RangeError);
    assert.throws(() => b.configRead(0, 32, 0, 0, 4), RangeError);
    assert.equal(b.configRead(...NIC, 1, 1), 0x80, "a byte may sit anywhere");
  });

  it("read-only registers keep their value; writable bits follow the write", () => {
    const b = bus();
    b.configWrite(...NIC, PCI_VENDOR_ID, 4, 0x12345678);
    assert.equal(b.configRead(...NIC, PCI_VENDOR_ID, 4), 0x100e8086);
    b.configWrite(...NIC, PCI_INTERRUPT_PIN, 1, 3);
    assert.equal(b.configRead(...NIC, PCI_INTERRUPT_PIN, 1), 1);
    b.configWrite(...NIC, PCI_INTERRUPT_LINE, 1, 0x42);
    assert.equal(b.configRead(...NIC, PCI_INTERRUPT_LINE, 1), 0x42, "the line register is scratch");
    b.configWrite(...NIC, PCI_CACHE_LINE_SIZE, 1, 0x10);
    assert.equal(b.configRead(...NIC, PCI_CACHE_LINE_SIZE, 1), 0x10);
    b.configWrite(...NIC, PCI_LATENCY_TIMER, 1, 0xff);
    assert.equal(b.configRead(...NIC, PCI_LATENCY_TIMER, 1), 0xf8, "low latency-timer bits are hardwired");
  });

  it("the command register changes only its writable bits; the host bridge's are few", () => {
    const b = bus();
    b.configWrite(...NIC, PCI_COMMAND, 2, 0xffff);
    assert.equal(b.configRead(...NIC, PCI_COMMAND, 2), 0x0547);
    b.configWrite(0, 0, 0, PCI_COMMAND, 2, 0);
    assert.equal(b.configRead(0, 0, 0, PCI_COMMAND, 2), 0);
    b.configWrite(0, 0, 0, PCI_COMMAND, 2, 0xffff);
    assert.equal(b.configRead(0, 0, 0, PCI_COMMAND, 2), 0x0006);
  });

  it("status error bits are cleared by writing one; other status bits are read-only", () => {
    const b = bus();
    const f = b.find(...NIC);
    assert.ok(f);
    const base = b.configRead(...NIC, PCI_STATUS, 2);
    f.signalStatus(0x2000 | 0x1000); // received master abort, received target abort
    assert.equal(b.configRead(...NIC, PCI_STATUS, 2), base | 0x3000);
    b.configWrite(...NIC, PCI_STATUS, 2, 0x2000);
    assert.equal(b.configRead(...NIC, PCI_STATUS, 2), base | 0x1000, "one written clears that bit only");
    b.configWrite(...NIC, PCI_STATUS, 2, 0);
    assert.equal(b.configRead(...NIC, PCI_STATUS, 2), base | 0x1000, "zero leaves it");
    b.configWrite(...NIC, PCI_STATUS, 2, 0xffff);
    assert.equal(b.configRead(...NIC, PCI_STATUS, 2), base, "DEVSEL timing survives");
  });

  it("a dword write at the command register reaches the status register's write-one-to-clear bits", () => {
    const b = bus();
    const f = b.find(...NIC);
    assert.ok(f);
    f.signalStatus(0x8000);
    b.configWrite(...NIC, PCI_COMMAND, 4, 0x80000002);
    assert.equal(b.configRead(...NIC, PCI_STATUS, 2) & 0x8000, 0);
    assert.equal(b.configRead(...NIC, PCI_COMMAND, 2), 2);
  });
});

describe("BAR sizing", () => {
  it("writing all ones to a memory BAR reads back its size mask; restoring brings the base back", () => {
    const b = bus();
    const reg = PCI_BASE_ADDRESS_0;
    assert.equal(b.configRead(...NIC, reg, 4), 0xfebc0000);
    b.configWrite(...NIC, reg, 4, 0xffffffff);
    assert.equal(b.configRead(...NIC, reg, 4), 0xfffe0000, "128 KiB, 32-bit, non-prefetchable");
    b.configWrite(...NIC, reg, 4, 0xfebc0000);
    assert.equal(b.configRead(...NIC, reg, 4), 0xfebc0000);
  });

  it("an I/O BAR keeps bit 0 set and decodes 16 address bits", () => {
    const b = bus();
    const reg = PCI_BASE_ADDRESS_0 + 4;
    assert.equal(b.configRead(...NIC, reg, 4), 0xc001);
    b.configWrite(...NIC, reg, 4, 0xffffffff);
    assert.equal(b.configRead(...NIC, reg, 4), 0xffc1, "64 ports");
    b.configWrite(...NIC, reg, 4, 0x1234_5678);
    assert.equal(b.configRead(...NIC, reg, 4), 0x5641, "relocated within the 16-bit space, aligned to 64");
  });

  it("unimplemented BARs read zero and stay zero", () => {
    const b = bus();
    const reg = PCI_BASE_ADDRESS_0 + 8;
    b.configWrite(...NIC, reg, 4, 0xffffffff);
    assert.equal(b.configRead(...NIC, reg, 4), 0);
  });

  it("probeBarSize finds every window of the standard machine", () => {
    const b = bus();
    assert.equal(probeBarSize(b, ...NIC, 0), 0x20000);
    assert.equal(probeBarSize(b, ...NIC, 1), 64);
    assert.equal(probeBarSize(b, ...NIC, 2), 0);
    assert.equal(probeBarSize(b, ...SCSI, 0), 256);
    assert.equal(probeBarSize(b, ...SCSI, 1), 0x400);
    assert.equal(probeBarSize(b, ...SCSI, 2), 0x2000);
    assert.equal(probeBarSize(b, 0, 1, 1, 4), 16);
    assert.equal(b.configRead(...SCSI, PCI_BASE_ADDRESS_0 + 4, 4), 0xfebe0000, "probing restores the base");
  });

  it("the expansion ROM sizes with its enable bit and resets disabled", () => {
    const b = bus();
    assert.equal(b.configRead(...NIC, PCI_ROM_ADDRESS, 4), 0xfeb80000);
    b.configWrite(...NIC, PCI_ROM_ADDRESS, 4, 0xfffffffe);
    assert.equal(b.configRead(...NIC, PCI_ROM_ADDRESS, 4), 0xfffe0000);
    b.configWrite(...NIC, PCI_ROM_ADDRESS, 4, 0xfeb80001);
    assert.equal(b.configRead(...NIC, PCI_ROM_ADDRESS, 4), 0xfeb80001);
  });

  it("a BAR must be a power of two with its base aligned", () => {
    assert.throws(
      () =>
        new PciFunction({
          vendor: 1,
          device: 1,
          classCode: 0,
          bars: [{ kind: "mem", size: 0x3000, base: 0 }],
        }),
      RangeError,
    );
    assert.throws(
      () =>
        new PciFunction({
          vendor: 1,
          device: 1,
          classCode: 0,
          bars: [{ kind: "mem", size: 0x1000, base: 0x800 }],
        }),
      RangeError,
    );
    assert.throws(
      () => new PciFunction({ vendor: 1, device: 1, classCode: 0, bars: [{ kind: "io", size: 2, base: 0 }] }),
      RangeError,
    );
  });
});

describe("configuration mechanism #1", () => {
  it("0xCF8 selects bus/dev/fn/register; 0xCFC+n reads the bytes of that dword", () => {
    const b = bus();
    b.writeConf1Address(0x80000000 | (3 << 11));
    assert.equal(b.readConf1Data(0, 4), 0x100e8086);
    assert.equal(b.readConf1Data(2, 2), 0x100e);
    assert.equal(b.readConf1Data(3, 1), 0x10);
    b.writeConf1Address(0x80000000 | (3 << 11) | 0x3f);
    assert.equal(b.readConf1Address(), 0x8000183c, "the low two bits are not stored");
    assert.equal(b.readConf1Data(1, 1), 1, "interrupt pin");
  });

  it("without the enable bit no configuration cycle runs", () => {
    const b = bus();
    b.writeConf1Address(3 << 11);
    assert.equal(b.readConf1Data(0, 4), 0xffffffff);
    b.writeConf1Data(0, 4, 0);
    b.writeConf1Address(0x80000000 | (3 << 11) | 4);
    b.writeConf1Data(0, 2, 0);
    assert.equal(b.configRead(...NIC, PCI_COMMAND, 2), 0, "enabled: the write lands");
    assert.equal(b.configRead(...NIC, PCI_VENDOR_ID, 4), 0x100e8086);
  });
});

describe("INTx", () => {
  it("pins are swizzled onto level-triggered IO-APIC lines; assertion raises the line and sets status", () => {
    const irq = new IrqController();
    const b = standardPciBus(irq);
    const nic = b.find(...NIC);
    assert.ok(nic);
    assert.equal(nic.intxLine, 19);
    assert.equal(b.find(...SCSI)?.intxLine, 16);
    assert.equal(b.find(0, 1, 1)?.intxLine, -1, "legacy IDE has no pin");
    assert.equal(irq.trigger(19), "level");
    irq.startup(19);
    nic.assertIntx();
    assert.equal(b.configRead(...NIC, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, PCI_STATUS_INTERRUPT);
    assert.equal(irq.nextPending(), 19);
    nic.deassertIntx();
    assert.equal(irq.nextPending(), -1);
  });

  it("the command register's INTx-disable bit masks the pin at the device", () => {
    const irq = new IrqController();
    const b = standardPciBus(irq);
    const nic = b.find(...NIC);
    assert.ok(nic);
    irq.startup(19);
    b.configWrite(...NIC, PCI_COMMAND, 2, PCI_COMMAND_INTX_DISABLE | PCI_COMMAND_MEMORY);
    nic.assertIntx();
    assert.equal(irq.nextPending(), -1);
    assert.ok(b.configRead(...NIC, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, "status still shows it");
    b.configWrite(...NIC, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    assert.equal(irq.nextPending(), 19);
  });

  it("a function other than 0 needs function 0 first and makes the device multi-function", () => {
    const b = new PciBus();
    const f = () => new PciFunction({ vendor: 0x1234, device: 1, classCode: 0xff0000 });
    assert.throws(() => b.add(0, 5, 2, f()));
    b.add(0, 5, 0, f());
    assert.equal(b.configRead(0, 5, 0, PCI_HEADER_TYPE, 1), 0);
    b.add(0, 5, 2, f());
    assert.equal(b.configRead(0, 5, 0, PCI_HEADER_TYPE, 1), 0x80);
    assert.throws(() => b.add(0, 5, 2, f()), /occupied/);
    assert.deepEqual(
      b.list().map((s) => bdf(s.bus, s.dev, s.fn)),
      [bdf(0, 5, 0), bdf(0, 5, 2)],
    );
  });
});

describe("Xen's view of the bus (physdev.ts)", () => {
  function machine(): Hypervisor {
    return new Hypervisor({ memoryMiB: 16 });
  }

  it("the boot scan records every window and routes each pin to its IO-APIC line", () => {
    const hv = machine();
    const devs = pciDevices(hv.pci);
    assert.equal(devs.size, 5);
    const nic = devs.get(bdf(...NIC));
    assert.ok(nic);
    assert.equal(nic.irq, 19);
    assert.deepEqual(nic.resources, [
      { io: false, start: 0xfebc0000, end: 0xfebdffff },
      { io: true, start: 0xc000, end: 0xc03f },
      { io: false, start: 0xfeb80000, end: 0xfeb9ffff },
    ]);
    assert.equal(devs.get(bdf(0, 1, 1))?.irq, 0);
  });

  it("a domain created privileged (dom0) lists every device, with an all-open I/O mask", () => {
    const hv = machine();
    const d0 = hv.createDomain("dom0", 4, true);
    assert.deepEqual(
      [...d0.pciDevices].sort((a, b) => a - b),
      [0, 8, 9, 24, 32],
    );
    assert.ok(d0.physdevCapable);
    assert.ok(d0.iobmpMask?.every((x) => x === 0));
    const du = hv.createDomain("domU", 4);
    assert.equal(du.pciDevices.size, 0);
    assert.equal(du.physdevCapable, false);
  });

  it("PCIDEV_ACCESS: range and enable are -EINVAL before the domain is looked up; unknown domain -ESRCH", () => {
    const hv = machine();
    const d = hv.createDomain("domU", 4);
    assert.equal(grantPciAccess(hv, d, 256, 0, 0, 1), -EINVAL);
    assert.equal(grantPciAccess(hv, d, 0, 32, 0, 1), -EINVAL);
    assert.equal(grantPciAccess(hv, d, 0, 0, 8, 1), -EINVAL);
    assert.equal(grantPciAccess(hv, undefined, 0, 32, 0, 1), -EINVAL);
    assert.equal(grantPciAccess(hv, d, ...NIC, 0), -EINVAL, "revoking is unsupported");
    assert.equal(grantPciAccess(hv, undefined, ...NIC, 1), -ESRCH);
    assert.equal(d.privileged, false);
    assert.equal(d.pciDevices.size, 0);
  });

  it("PCIDEV_ACCESS makes the domain physdev-capable and privileged even for an absent device", () => {
    const hv = machine();
    const d = hv.createDomain("domU", 4);
    assert.equal(grantPciAccess(hv, d, 0, 2, 0, 1), -ENODEV);
    assert.ok(d.physdevCapable && d.privileged);
    assert.equal(d.pciDevices.size, 0);
    assert.equal(grantPciAccess(hv, d, 0xffffffff, 3, 0, 1), -ENODEV, "a negative bus names no slot");
  });

  it("PCIDEV_ACCESS lists the device and opens exactly its I/O ports", () => {
    const hv = machine();
    const d = hv.createDomain("domU", 4);
    assert.equal(grantPciAccess(hv, d, ...NIC, 1), 0);
    assert.deepEqual([...d.pciDevices], [bdf(...NIC)]);
    const mask = d.iobmpMask;
    assert.ok(mask);
    const open = (p: number) => (mask[p >>> 3] & (1 << (p & 7))) === 0;
    assert.ok(open(0xc000) && open(0xc03f));
    assert.ok(!open(0xbfff) && !open(0xc040) && !open(0xc100) && !open(0x60));
    assert.equal(grantPciAccess(hv, d, ...NIC, 1), 0, "granting again is fine");
    assert.equal(d.pciDevices.size, 1);
    // PCI_DEVFN masks dev to five bits: dev -29 is slot 3.
    assert.equal(grantPciAccess(hv, d, 0, -29 >>> 0, 0, 1), 0);
    assert.equal(d.pciDevices.size, 1);
  });

  it("domain_iomem_in_pfn: only frames inside a memory BAR or ROM of a listed device", () => {
    const hv = machine();
    const d = hv.createDomain("driver", 4);
    d.physdevCapable = true;
    d.pciDevices.add(bdf(...SCSI));
    assert.ok(domainIomemInPfn(hv, d, 0xfebe0), "1 KiB BAR: its frame");
    assert.ok(domainIomemInPfn(hv, d, 0xfebe2) && domainIomemInPfn(hv, d, 0xfebe3), "8 KiB BAR: both frames");
    assert.ok(!domainIomemInPfn(hv, d, 0xfebe1) && !domainIomemInPfn(hv, d, 0xfebe4));
    assert.ok(!domainIomemInPfn(hv, d, 0xfebc0), "the NIC is not the driver's");
    assert.ok(!domainIomemInPfn(hv, d, 0xc1), "I/O windows are ports, not frames");
    d.physdevCapable = false;
    assert.ok(!domainIomemInPfn(hv, d, 0xfebe0), "not physdev-capable");
  });

  it("get_page_from_l1e: a physdev-capable, unprivileged domain maps its BAR frames and no other I/O frame", () => {
    const hv = machine();
    const d = hv.createDomain("driver", 4);
    const e = hv.createDomain("other", 4);
    d.physdevCapable = true;
    d.pciDevices.add(bdf(...NIC));
    const pte = (mfn: number) => (mfn * 4096) | 0x63;
    assert.ok(hv.mm.getPageFromL1e(pte(0xfebc0), d.id, d.id));
    assert.ok(hv.mm.getPageFromL1e(pte(0xfebdf), d.id, d.id));
    assert.ok(hv.mm.getPageFromL1e(pte(0xfeb9f), d.id, d.id), "the expansion ROM too");
    assert.ok(!hv.mm.getPageFromL1e(pte(0xfebe0), d.id, d.id), "another device's BAR");
    assert.ok(!hv.mm.getPageFromL1e(pte(0xa0), d.id, d.id), "VGA memory");
    assert.ok(!hv.mm.getPageFromL1e(pte(0xfebc0), e.id, e.id), "an ordinary domain");
    assert.ok(hv.mm.getPageFromL1e(pte(0xfebc0), 0x7ff1, d.id), "DOMID_IO uses the caller's devices");
    assert.ok(!hv.mm.getPageFromL1e(pte(0xfebc0), 0x7ff1, e.id));
  });
});

describe("physdev_op PCI guests", () => {
  /** Runs one guest to its end and returns its console output. */
  function runGuest(name: string, privileged: boolean): string {
    let text = "";
    const hv = new Hypervisor({
      memoryMiB: 64,
      onConsole: (_d, b) => void (text += Buffer.from(b).toString("latin1")),
    });
    const d = launchDomain(hv, {
      name,
      image: readFileSync(guestPath(name)),
      memoryMiB: 8,
      privileged,
    }).domain;
    for (let guard = 0; guard < 100 && d.state === 0; guard++) {
      const r = hv.run(20e9);
      if (r.kind === "crashed") assert.fail(`${name} crashed: ${r.why}\n${text}`);
      if (r.kind !== "idle" && r.kind !== "time-limit") continue;
      break;
    }
    return text;
  }

  for (const [name, privileged] of [
    ["ev_physdev_pci", true],
    ["conf_physdev_pci_unpriv", false],
  ] as const) {
    it(`${name}: every PCI op and error path (${privileged ? "privileged" : "unprivileged"})`, () => {
      const text = runGuest(name, privileged);
      assertGuestPassed(text);
    });
  }
});
