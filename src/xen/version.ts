/** xen_version (17) and vm_assist (21), semantics.md §9.3. */
import { EFAULT, EINVAL, ENOSYS } from "../public/errno.js";
import {
  MAX_VMASST_TYPE,
  VmAssistCmd,
  XEN_EXTRAVERSION,
  XEN_EXTRAVERSION_LEN,
  XEN_VERSION_MAJOR,
  XEN_VERSION_MINOR,
  XEN_VERSION_VALUE,
  XenCompileInfoJul,
  XenVer,
} from "../public/xen.js";
import type { Vcpu } from "./domain.js";
import type { Hypervisor } from "./hypervisor.js";

/**
 * The name of the Xen tsxen is (xm info, the dashboard, tsxen --version): what xen_version and
 * XENVER_extraversion return, as Xen's tree of March 2005 called itself.
 */
export const XEN_VERSION_NAME = `${XEN_VERSION_MAJOR}.${XEN_VERSION_MINOR}${XEN_EXTRAVERSION}`;

/** What tsxen reports as its build in XENVER_compile_info (JUL): it is not a gcc build of Xen. */
const COMPILE_INFO = Object.freeze({
  compiler: "tsxen (TypeScript)",
  compile_by: "tsxen",
  compile_domain: "tsxen",
  compile_date: "Wed Jul  6 00:00:00 UTC 2005",
});

/**
 * xen_version(cmd[, arg]): cmd 0 = packed version. The July 2005 interface adds cmd 1 (the
 * 16-byte extraversion string "-devel" copied to arg) and cmd 2 (the 144-byte compile-info
 * struct); MAR knows only cmd 0. abi.md §1.4, §2.13.3
 */
export function doXenVersion(hv: Hypervisor, v: Vcpu, cmd: number, arg: number): number {
  if (cmd === XenVer.version) return XEN_VERSION_VALUE;
  if (!v.domain.abi.xenVersionInfo) return -ENOSYS;
  switch (cmd) {
    case XenVer.extraversion: {
      const buf = new Uint8Array(XEN_EXTRAVERSION_LEN);
      buf.set(new TextEncoder().encode(XEN_EXTRAVERSION));
      return hv.guest.copyTo(arg, buf) ? 0 : -EFAULT;
    }
    case XenVer.compile_info: {
      const C = XenCompileInfoJul;
      const buf = new Uint8Array(C.SIZE);
      const put = (off: number, size: number, text: string): void =>
        buf.set(new TextEncoder().encode(text).subarray(0, size - 1), off);
      put(C.compiler, C.compile_by - C.compiler, COMPILE_INFO.compiler);
      put(C.compile_by, C.compile_domain - C.compile_by, COMPILE_INFO.compile_by);
      put(C.compile_domain, C.compile_date - C.compile_domain, COMPILE_INFO.compile_domain);
      put(C.compile_date, C.SIZE - C.compile_date, COMPILE_INFO.compile_date);
      return hv.guest.copyTo(arg, buf) ? 0 : -EFAULT;
    }
    default:
      return -ENOSYS;
  }
}

export function doVmAssist(v: Vcpu, cmd: number, type: number): number {
  if (type > MAX_VMASST_TYPE) return -EINVAL;
  if (cmd === VmAssistCmd.enable) v.domain.vmAssist |= 1 << type;
  else if (cmd === VmAssistCmd.disable) v.domain.vmAssist &= ~(1 << type);
  else return -ENOSYS;
  return 0;
}
