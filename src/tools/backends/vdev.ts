/**
 * Virtual block-device names and the 16-bit device numbers the frontend sees (blkif_vdev_t),
 * as xend's blkif.py computed them in 2005 (blkdev_name_to_number): Linux's own majors, so
 * XenLinux's blkfront names the disk as the configuration does.
 */

/** Linux's IDE majors, two disks (64 minors each) per major. */
const IDE_MAJORS = [3, 22, 33, 34, 56, 57, 88, 89, 90, 91];
/** SCSI disk major 8: 16 minors per disk, sda..sdp. */
const SCSI_DISK0_MAJOR = 8;

/**
 * "sda1" -> 0x801, "hda" -> 0x300, "hdb3" -> 0x343, "/dev/sdb" -> 0x810, "0x801" or "801"
 * (hexadecimal, as xend accepted) -> 0x801. Null when the name means nothing.
 */
export function blkdevNameToNumber(name: string): number | null {
  const n = name.trim().replace(/^\/dev\//, "");
  let m = /^sd([a-p])(\d{0,2})$/.exec(n);
  if (m !== null) {
    const part = m[2] === "" ? 0 : Number(m[2]);
    if (part > 15) return null;
    return (SCSI_DISK0_MAJOR << 8) + 16 * (m[1].charCodeAt(0) - 97) + part;
  }
  m = /^hd([a-t])(\d{0,2})$/.exec(n);
  if (m !== null) {
    const part = m[2] === "" ? 0 : Number(m[2]);
    if (part > 63) return null;
    const disk = m[1].charCodeAt(0) - 97;
    return (IDE_MAJORS[disk >> 1] << 8) + (disk & 1) * 64 + part;
  }
  m = /^(?:0x)?([0-9a-f]{1,4})$/i.exec(n);
  if (m !== null) {
    const v = Number.parseInt(m[1], 16);
    return v === 0 ? null : v;
  }
  return null;
}

/** The conventional name of a device number ("sda1", "hdb"), or its hexadecimal value. */
export function blkdevNumberToName(vdev: number): string {
  const major = vdev >> 8;
  const minor = vdev & 0xff;
  if (major === SCSI_DISK0_MAJOR) {
    const part = minor & 15;
    return `sd${String.fromCharCode(97 + (minor >> 4))}${part === 0 ? "" : part}`;
  }
  const ide = IDE_MAJORS.indexOf(major);
  if (ide >= 0) {
    const part = minor & 63;
    return `hd${String.fromCharCode(97 + ide * 2 + (minor >> 6))}${part === 0 ? "" : part}`;
  }
  return `0x${vdev.toString(16)}`;
}
