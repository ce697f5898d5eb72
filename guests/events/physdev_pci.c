/*
 * physdev_op's PCI operations in a privileged domain, which Xen gives every PCI device with
 * write access (semantics.md §9.1, abi.md §2.10), against the machine's standard bus
 * (src/machine/pci.ts): 00:00.0 host bridge, 00:01.0 ISA bridge + 00:01.1 IDE, 00:03.0 NIC
 * (BAR0 128 KiB memory at 0xfebc0000, BAR1 64 ports at 0xc000, INTA# routed to IRQ 19,
 * firmware line 11), 00:04.0 SCSI controller. Run by test/pci.test.ts with privilege.
 * Xen of March 2005 reaches devices through configuration mechanism #1 with no BAR faking,
 * so what a driver sees is the device itself, including the odd corners of that path.
 */
#include "lib.h"
#include "evtchn_ops.h"

#define NIC 0, 3, 0
#define NIC_BAR0 0xfebc0000u
#define NIC_IRQ 19

static u8 scratch[4096] BSS_PAGE;

static long cfg_read(u32 bus, u32 dev, u32 fn, u32 reg, u32 len, u32 *val)
{
	physdev_op_t op;
	long rc;

	memset(&op, 0, sizeof(op));
	op.u.pci_cfgreg.bus = bus;
	op.u.pci_cfgreg.dev = dev;
	op.u.pci_cfgreg.func = fn;
	op.u.pci_cfgreg.reg = reg;
	op.u.pci_cfgreg.len = len;
	op.u.pci_cfgreg.value = *val;
	rc = pd_op(&op, PHYSDEVOP_PCI_CFGREG_READ);
	*val = op.u.pci_cfgreg.value;
	return rc;
}

/* The value read, or 0xDEADBEEF if the read failed. */
static u32 rd(u32 bus, u32 dev, u32 fn, u32 reg, u32 len)
{
	u32 v = 0;
	return cfg_read(bus, dev, fn, reg, len, &v) ? 0xDEADBEEF : v;
}

static long cfg_write(u32 bus, u32 dev, u32 fn, u32 reg, u32 len, u32 val)
{
	physdev_op_t op;

	memset(&op, 0, sizeof(op));
	op.u.pci_cfgreg.bus = bus;
	op.u.pci_cfgreg.dev = dev;
	op.u.pci_cfgreg.func = fn;
	op.u.pci_cfgreg.reg = reg;
	op.u.pci_cfgreg.len = len;
	op.u.pci_cfgreg.value = val;
	return pd_op(&op, PHYSDEVOP_PCI_CFGREG_WRITE);
}

static long init_dev(u32 bus, u32 dev, u32 fn)
{
	physdev_op_t op;

	memset(&op, 0, sizeof(op));
	op.u.pci_cfgreg.bus = bus;
	op.u.pci_cfgreg.dev = dev;
	op.u.pci_cfgreg.func = fn;
	return pd_op(&op, PHYSDEVOP_PCI_INITIALISE_DEVICE);
}

static void probe_root_buses(void)
{
	physdev_op_t op;
	u32 i, rest = 0;

	memset(&op, 0xAA, sizeof(op));
	CHECK_EQ(pd_op(&op, PHYSDEVOP_PCI_PROBE_ROOT_BUSES), 0, "probe_root_buses_ok");
	CHECK_EQ(op.u.pci_probe_root_buses.busmask[0], 1, "probe_root_buses_bus0_only");
	for (i = 1; i < 8; i++)
		rest |= op.u.pci_probe_root_buses.busmask[i];
	CHECK_EQ(rest, 0, "probe_root_buses_rest_cleared");
}

static void reads(void)
{
	u32 v;

	CHECK_EQ(rd(NIC, 0x00, 4), 0x100e8086, "read_nic_vendor_device_dword");
	CHECK_EQ(rd(NIC, 0x02, 2), 0x100e, "read_nic_device_word");
	CHECK_EQ(rd(NIC, 0x0b, 1), 0x02, "read_nic_base_class_byte");
	CHECK_EQ(rd(0, 0, 0, 0x08, 4) >> 8, 0x060000, "read_host_bridge_class");
	CHECK_EQ(rd(0, 1, 0, 0x0e, 1), 0x80, "read_isa_bridge_multifunction");
	CHECK_EQ(rd(0, 1, 1, 0x0a, 2), 0x0101, "read_ide_class");
	CHECK_EQ(rd(NIC, 0x10, 4), NIC_BAR0, "read_nic_bar0");
	CHECK_EQ(rd(NIC, 0x14, 4), 0xc001, "read_nic_bar1_io");
	CHECK_EQ(rd(NIC, 0x3d, 1), 1, "read_nic_interrupt_pin_inta");

	/* PCI_INTERRUPT_LINE answers Xen's IRQ for the device, whatever the length. */
	CHECK_EQ(rd(NIC, 0x3c, 1), NIC_IRQ, "read_interrupt_line_is_xen_irq");
	CHECK_EQ(rd(NIC, 0x3c, 4), NIC_IRQ, "read_interrupt_line_dword_is_xen_irq_only");
	/* An unaligned word at 0x3d is read through port 0xCFC+(0x3d&2): registers 0x3c-0x3d,
	 * the firmware's line (11) and the pin, untouched by the special case. */
	CHECK_EQ(rd(NIC, 0x3d, 2), 0x010b, "read_unaligned_word_reaches_real_line_register");
	/* Unaligned dword: the data port is 0xCFC, so the whole aligned dword is read. */
	CHECK_EQ(rd(NIC, 0x02, 4), 0x100e8086, "read_unaligned_dword_reads_aligned_dword");

	/* Access-check failures: all ones and Xen's errno. */
	v = 0;
	CHECK_EQ(cfg_read(0, 2, 0, 0, 4, &v), -ENODEV, "read_absent_device_enodev");
	CHECK_EQ(v, 0xffffffff, "read_absent_device_all_ones");
	v = 0;
	CHECK_EQ(cfg_read(0, 3, 1, 0, 4, &v), -ENODEV, "read_absent_function_enodev");
	CHECK_EQ(v, 0xffffffff, "read_absent_function_all_ones");
	v = 0;
	CHECK_EQ(cfg_read(256, 0, 0, 0, 4, &v), -EINVAL, "read_bus_256_einval");
	CHECK_EQ(v, 0xffffffff, "read_bus_256_all_ones");
	CHECK_EQ(cfg_read(0, 32, 0, 0, 4, &v), -EINVAL, "read_dev_32_einval");
	CHECK_EQ(cfg_read(0, 0, 8, 0, 4, &v), -EINVAL, "read_func_8_einval");
	/* Xen's ints are signed: a negative bus passes the range check and names no device. */
	CHECK_EQ(cfg_read(0xffffffff, 0, 0, 0, 4, &v), -ENODEV, "read_negative_bus_enodev");
	/* PCI_DEVFN masks dev to 5 bits, so dev -29 is slot 3 (the NIC); the conf1 address built
	 * from the negative dev names bus 0xff, where nothing answers. */
	v = 0;
	CHECK_EQ(cfg_read(0, (u32)-29, 0, 0, 4, &v), 0, "read_negative_dev_passes_check");
	CHECK_EQ(v, 0xffffffff, "read_negative_dev_reaches_no_device");
	CHECK_EQ(rd(0, (u32)-29, 0, 0x3c, 1), NIC_IRQ, "read_negative_dev_interrupt_line_is_nics");

	/* Register and length checks of pci_conf1_read: value left as passed. */
	v = 0x12345678;
	CHECK_EQ(cfg_read(NIC, 256, 4, &v), -EINVAL, "read_reg_256_einval");
	CHECK_EQ(v, 0x12345678, "read_reg_256_value_untouched");
	CHECK_EQ(cfg_read(NIC, 0x7fffffff, 1, &v), -EINVAL, "read_reg_huge_einval");
	v = 0x12345678;
	CHECK_EQ(cfg_read(NIC, 0, 3, &v), 0, "read_len_3_succeeds");
	CHECK_EQ(v, 0x12345678, "read_len_3_reads_nothing");
	CHECK_EQ(cfg_read(NIC, 0, 0, &v), 0, "read_len_0_succeeds");
	CHECK_EQ(v, 0x12345678, "read_len_0_reads_nothing");
	/* A negative register spills into the conf1 address: bus 0xff, nothing there. */
	v = 0;
	CHECK_EQ(cfg_read(NIC, (u32)-4, 4, &v), 0, "read_negative_reg_passes");
	CHECK_EQ(v, 0xffffffff, "read_negative_reg_reaches_no_device");
}

static void writes(void)
{
	u32 cmd = rd(NIC, 0x04, 2);

	/* BAR sizing through real writes: write all ones, read the size mask, restore. */
	CHECK_EQ(cfg_write(NIC, 0x10, 4, 0xffffffff), 0, "write_bar0_all_ones");
	CHECK_EQ(rd(NIC, 0x10, 4), 0xfffe0000, "bar0_size_mask_128k");
	CHECK_EQ(cfg_write(NIC, 0x10, 4, NIC_BAR0), 0, "write_bar0_restore");
	CHECK_EQ(rd(NIC, 0x10, 4), NIC_BAR0, "bar0_restored");
	CHECK_EQ(cfg_write(NIC, 0x14, 4, 0xffffffff), 0, "write_bar1_all_ones");
	CHECK_EQ(rd(NIC, 0x14, 4), 0xffc1, "bar1_size_mask_64_ports");
	CHECK_EQ(cfg_write(NIC, 0x14, 4, 0xc001), 0, "write_bar1_restore");
	CHECK_EQ(rd(NIC, 0x14, 4), 0xc001, "bar1_restored");
	CHECK_EQ(cfg_write(NIC, 0x30, 4, 0xfffffffe), 0, "write_rom_size_probe");
	CHECK_EQ(rd(NIC, 0x30, 4), 0xfffe0000, "rom_size_mask_128k");
	CHECK_EQ(cfg_write(NIC, 0x30, 4, 0xfeb80000), 0, "write_rom_restore");

	/* The device's own bit rules decide what changes. */
	CHECK_EQ(cfg_write(NIC, 0x04, 2, 0xffff), 0, "write_command_all_ones");
	CHECK_EQ(rd(NIC, 0x04, 2), 0x0547, "command_only_writable_bits");
	CHECK_EQ(cfg_write(NIC, 0x04, 2, cmd), 0, "write_command_restore");
	CHECK_EQ(rd(NIC, 0x04, 2), cmd, "command_restored");
	CHECK_EQ(cfg_write(NIC, 0x00, 4, 0), 0, "write_vendor_accepted");
	CHECK_EQ(rd(NIC, 0x00, 4), 0x100e8086, "vendor_read_only");
	CHECK_EQ(cfg_write(NIC, 0x0c, 1, 0x10), 0, "write_cache_line_size");
	CHECK_EQ(rd(NIC, 0x0c, 1), 0x10, "cache_line_size_written");
	CHECK_EQ(cfg_write(NIC, 0x0d, 1, 0xff), 0, "write_latency_timer");
	CHECK_EQ(rd(NIC, 0x0d, 1), 0xf8, "latency_timer_low_bits_hardwired");

	/* The interrupt line register is written for real; reads of it still give Xen's IRQ. */
	CHECK_EQ(cfg_write(NIC, 0x3c, 1, 5), 0, "write_interrupt_line");
	CHECK_EQ(rd(NIC, 0x3c, 1), NIC_IRQ, "interrupt_line_still_reads_xen_irq");
	CHECK_EQ(rd(NIC, 0x3d, 2), 0x0105, "interrupt_line_register_holds_written_value");
	CHECK_EQ(cfg_write(NIC, 0x3c, 1, 11), 0, "write_interrupt_line_restore");

	/* Unaligned word write at 0x0d goes to port 0xCFC+0: registers 0x0c-0x0d. */
	CHECK_EQ(cfg_write(NIC, 0x0d, 2, 0x0820), 0, "write_unaligned_word");
	CHECK_EQ(rd(NIC, 0x0c, 2), 0x0820, "unaligned_word_landed_on_aligned_word");

	/* Error paths. */
	CHECK_EQ(cfg_write(0, 2, 0, 0x04, 2, 0), -ENODEV, "write_absent_enodev");
	CHECK_EQ(cfg_write(256, 0, 0, 0x04, 2, 0), -EINVAL, "write_bus_256_einval");
	CHECK_EQ(cfg_write(0, 32, 0, 0x04, 2, 0), -EINVAL, "write_dev_32_einval");
	CHECK_EQ(cfg_write(0, 0, 8, 0x04, 2, 0), -EINVAL, "write_func_8_einval");
	CHECK_EQ(cfg_write(NIC, 256, 1, 0), -EINVAL, "write_reg_256_einval");
	CHECK_EQ(cfg_write(NIC, 0x0c, 3, 0x40), 0, "write_len_3_succeeds");
	CHECK_EQ(rd(NIC, 0x0c, 1), 0x20, "write_len_3_writes_nothing");
}

static void initialise(void)
{
	CHECK_EQ(init_dev(NIC), 0, "initialise_nic_ok");
	CHECK_EQ(rd(NIC, 0x3c, 1), NIC_IRQ, "initialise_keeps_irq");
	CHECK_EQ(init_dev(0, 1, 1), 0, "initialise_pinless_ide_ok");
	CHECK_EQ(init_dev(0, 2, 0), -ENODEV, "initialise_absent_enodev");
	CHECK_EQ(init_dev(256, 0, 0), -EINVAL, "initialise_bus_256_einval");
	CHECK_EQ(init_dev(0, 32, 0), -EINVAL, "initialise_dev_32_einval");
	CHECK_EQ(init_dev(0, 0, 8), -EINVAL, "initialise_func_8_einval");
}

static void envelope(void)
{
	physdev_op_t op;
	u32 *raw = (u32 *)&op;

	/* The whole 40-byte block comes back, even on error. */
	memset(&op, 0x55, sizeof(op));
	op.u.pci_cfgreg.bus = 0;
	op.u.pci_cfgreg.dev = 2;
	op.u.pci_cfgreg.func = 0;
	CHECK_EQ(pd_op(&op, PHYSDEVOP_PCI_CFGREG_READ), -ENODEV, "envelope_read_absent");
	CHECK_EQ(op.u.pci_cfgreg.value, 0xffffffff, "envelope_value_all_ones");
	CHECK_EQ(raw[1], 0x55555555, "envelope_pad_preserved");
	CHECK_EQ(raw[9], 0x55555555, "envelope_tail_preserved");
	memset(&op, 0, sizeof(op));
	CHECK_EQ(pd_op(&op, 99), -EINVAL, "unknown_cmd_einval");
	CHECK_EQ(HYPERVISOR_physdev_op((void *)0xFC000000), -EFAULT, "op_in_xen_area_efault");
}

static void bar_mapping(void)
{
	u32 va = (u32)scratch;

	/* A privileged domain may map any I/O frame; the BAR rule is for physdev-only domains. */
	CHECK_EQ(HYPERVISOR_update_va_mapping(va, NIC_BAR0 | 3, UVMF_INVLPG), 0, "map_nic_bar0_frame");
	CHECK_EQ(HYPERVISOR_update_va_mapping(va, virt_to_mach(scratch) | 3, UVMF_INVLPG), 0,
		 "unmap_nic_bar0_frame");
}

void start_kernel(start_info_t *si)
{
	conf_init(si, "physdev_pci");
	CHECK(si->flags & SIF_PRIVILEGED, "start_info_privileged");
	probe_root_buses();
	reads();
	writes();
	initialise();
	envelope();
	bar_mapping();
	checks_done();
}
