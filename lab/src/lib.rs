//! The virtual Pi lab: emulated Pi Zeros (`qemu-system-arm -M raspi0`, an ARM1176) without an
//! SD card that netboot from a real powerd, all inside one network namespace the lab makes.
//!
//! The namespace (the "controller") holds a bridge on the Pi network, one tap per virtual
//! Pi, dnsmasq as that network's DHCP server, powerd with provisioning (TFTP, settings and
//! attach HTTP, the qemu-nbd exports) and the virtual Pis themselves. powerd powers each Pi
//! through its `command` backend, which calls `pifoundry-lab pi-power`: power on does what a
//! Pi's GPU firmware does (TFTP `SERIAL/config.txt`, the command line, kernel, initramfs and
//! device tree) and starts QEMU on the Pi's tap; power off kills it, as pulling the plug
//! would. Nothing in the namespace reaches any address outside it.

pub mod bootfiles;
pub mod console;
pub mod down;
pub mod layout;
pub mod netns;
pub mod power;
pub mod up;

pub use console::{BootStage, Console};
pub use layout::{Lab, LabSpec, PiRecord};
