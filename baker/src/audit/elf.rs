//! What an ELF file needs to run: machine, class, byte order, ARM float ABI and architecture
//! level (`.ARM.attributes`), and for Go binaries GOARCH/GOARM (`.go.buildinfo`).

use object::read::{FileFlags, Object, ObjectSection};
use serde::Serialize;

pub const ELF_MAGIC: &[u8; 4] = b"\x7fELF";

// ELF header fields and values read directly for header-only classification.
const EI_CLASS: usize = 4;
const EI_DATA: usize = 5;
const ELFCLASS32: u8 = 1;
const ELFCLASS64: u8 = 2;
const ELFDATA2MSB: u8 = 2;
const EM_386: u16 = 3;
const EM_MIPS: u16 = 8;
const EM_PPC64: u16 = 21;
const EM_S390: u16 = 22;
const EM_ARM: u16 = 40;
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;
const EM_RISCV: u16 = 243;
const EF_ARM_ABI_FLOAT_HARD: u32 = 0x400;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ElfInfo {
    /// `arm`, `aarch64`, `x86`, `x86-64`, or `em-<number>`.
    pub machine: String,
    /// 32 or 64.
    pub class: u8,
    pub big_endian: bool,
    /// ARM only: `armhf` (EF_ARM_ABI_FLOAT_HARD or Tag_ABI_VFP_args) or `armel`.
    pub abi: Option<String>,
    /// ARM only: Tag_CPU_arch from the aeabi attributes.
    pub cpu_arch: Option<u64>,
    /// ARM only: Tag_FP_arch (2 = VFPv2, the ARM1176's; 3+ = VFPv3 and later).
    pub fp_arch: Option<u64>,
    /// ARM only: Tag_Advanced_SIMD_arch (1+ = NEON).
    pub simd_arch: Option<u64>,
    pub go: Option<GoInfo>,
    /// False when only the ELF header was read (file over the size cap or unparsable).
    pub sections_read: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GoInfo {
    pub version: Option<String>,
    pub goarch: Option<String>,
    pub goarm: Option<u32>,
}

impl ElfInfo {
    pub fn is_arm32(&self) -> bool {
        self.machine == "arm"
    }
    /// `v6KZ`, `v7`, … for the table.
    pub fn cpu_arch_name(&self) -> Option<&'static str> {
        self.cpu_arch.map(cpu_arch_name)
    }
}

/// Tag_CPU_arch values from the ARM ELF ABI addenda.
pub fn cpu_arch_name(v: u64) -> &'static str {
    const NAMES: [&str; 23] = [
        "pre-v4",
        "v4",
        "v4T",
        "v5T",
        "v5TE",
        "v5TEJ",
        "v6",
        "v6KZ",
        "v6T2",
        "v6K",
        "v7",
        "v6-M",
        "v6S-M",
        "v7E-M",
        "v8-A",
        "v8-R",
        "v8-M.base",
        "v8-M.main",
        "v8.1-A",
        "v8.2-A",
        "v8.3-A",
        "v8.1-M.main",
        "v9-A",
    ];
    NAMES.get(v as usize).copied().unwrap_or("unknown")
}

/// Tag_FP_arch values.
pub fn fp_arch_name(v: u64) -> &'static str {
    const NAMES: [&str; 9] = [
        "none",
        "VFPv1",
        "VFPv2",
        "VFPv3",
        "VFPv3-D16",
        "VFPv4",
        "VFPv4-D16",
        "FP-ARMv8",
        "FP-ARMv8-D16",
    ];
    NAMES.get(v as usize).copied().unwrap_or("unknown FP")
}

/// Levels an ARM1176 (ARMv6KZ, ARM state + Thumb-1) executes: everything up to v6KZ and v6K.
/// v6T2 needs Thumb-2 and v6-M/v6S-M are Thumb-only microcontroller profiles.
pub fn runs_on_armv6(cpu_arch: u64) -> bool {
    cpu_arch <= 7 || cpu_arch == 9
}

/// The audit's name for an ELF `e_machine`.
pub fn machine_name(e_machine: u16) -> String {
    match e_machine {
        EM_ARM => "arm".into(),
        EM_AARCH64 => "aarch64".into(),
        EM_386 => "x86".into(),
        EM_X86_64 => "x86-64".into(),
        EM_RISCV => "riscv".into(),
        EM_PPC64 => "ppc64".into(),
        EM_S390 => "s390".into(),
        EM_MIPS => "mips".into(),
        other => format!("em-{other}"),
    }
}

/// Classifies from the ELF identification and header only (the first 52/64 bytes).
pub fn classify_header(head: &[u8]) -> Option<ElfInfo> {
    if head.len() < 20 || &head[..4] != ELF_MAGIC {
        return None;
    }
    let class = match head[EI_CLASS] {
        ELFCLASS32 => 32,
        ELFCLASS64 => 64,
        _ => return None,
    };
    let big_endian = head[EI_DATA] == ELFDATA2MSB;
    let u16_at = |o: usize| {
        let b = [head[o], head[o + 1]];
        if big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    };
    let e_machine = u16_at(18);
    // e_flags sits after e_entry, e_phoff and e_shoff, whose width depends on the class.
    let flags_at = if class == 32 { 36 } else { 48 };
    let e_flags = head.get(flags_at..flags_at + 4).map(|b| {
        let b = [b[0], b[1], b[2], b[3]];
        if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    });
    let mut info = ElfInfo {
        machine: machine_name(e_machine),
        class,
        big_endian,
        abi: None,
        cpu_arch: None,
        fp_arch: None,
        simd_arch: None,
        go: None,
        sections_read: false,
    };
    if e_machine == EM_ARM
        && let Some(flags) = e_flags
    {
        info.abi = Some(float_abi_from_flags(flags).into());
    }
    Some(info)
}

fn float_abi_from_flags(e_flags: u32) -> &'static str {
    if e_flags & EF_ARM_ABI_FLOAT_HARD != 0 {
        "armhf"
    } else {
        "armel"
    }
}

/// Classifies a whole ELF file with the `object` crate; falls back to the header alone
/// when the section table cannot be read.
pub fn classify(data: &[u8]) -> Option<ElfInfo> {
    let mut info = classify_header(data)?;
    let Ok(file) = object::File::parse(data) else {
        return Some(info);
    };
    info.sections_read = true;
    info.big_endian = !file.is_little_endian();
    info.class = if file.is_64() { 64 } else { 32 };
    if info.is_arm32() {
        let e_flags = match file.flags() {
            FileFlags::Elf { e_flags, .. } => e_flags.0,
            _ => 0,
        };
        let attrs = file
            .section_by_name(".ARM.attributes")
            .and_then(|s| s.data().ok())
            .map(|d| parse_arm_attributes(d, info.big_endian))
            .unwrap_or_default();
        info.cpu_arch = attrs.cpu_arch;
        info.fp_arch = attrs.fp_arch;
        info.simd_arch = attrs.simd_arch;
        let hard = float_abi_from_flags(e_flags) == "armhf" || attrs.vfp_args == Some(1);
        info.abi = Some(if hard { "armhf" } else { "armel" }.into());
    }
    if let Some(data) = file
        .section_by_name(".go.buildinfo")
        .and_then(|s| s.data().ok())
    {
        info.go = Some(parse_go_buildinfo(data));
    } else if file.section_by_name(".note.go.buildid").is_some() {
        info.go = Some(GoInfo {
            version: None,
            goarch: None,
            goarm: None,
        });
    }
    Some(info)
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct ArmAttributes {
    pub cpu_arch: Option<u64>,
    pub fp_arch: Option<u64>,
    pub simd_arch: Option<u64>,
    pub vfp_args: Option<u64>,
}

const TAG_FILE: u64 = 1;
const TAG_CPU_ARCH: u64 = 6;
const TAG_FP_ARCH: u64 = 10;
const TAG_ADVANCED_SIMD_ARCH: u64 = 12;
const TAG_ABI_VFP_ARGS: u64 = 28;

/// Parses the public `aeabi` subsection of `.ARM.attributes`: a format-version byte `A`, then
/// subsections `<u32 length><vendor NUL><sub-subsections>`; each sub-subsection is
/// `<ULEB tag><u32 length><attributes>` and each attribute a ULEB tag with a ULEB value,
/// except tags 4, 5, 67 and odd tags ≥ 32 (NUL-terminated strings) and 32 (ULEB + string).
pub fn parse_arm_attributes(data: &[u8], big_endian: bool) -> ArmAttributes {
    let mut out = ArmAttributes::default();
    if data.first() != Some(&b'A') {
        return out;
    }
    let u32_at = |d: &[u8], o: usize| -> Option<usize> {
        let b: [u8; 4] = d.get(o..o + 4)?.try_into().ok()?;
        Some(if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        } as usize)
    };
    let mut pos = 1;
    while let Some(len) = u32_at(data, pos) {
        let Some(sub) = data.get(pos..pos + len).filter(|_| len >= 4) else {
            break;
        };
        pos += len;
        let Some(nul) = sub[4..].iter().position(|&b| b == 0) else {
            continue;
        };
        if &sub[4..4 + nul] != b"aeabi" {
            continue;
        }
        let mut p = 4 + nul + 1;
        while p < sub.len() {
            let start = p;
            let Some(tag) = uleb(sub, &mut p) else { break };
            let Some(size) = u32_at(sub, p) else { break };
            let Some(body) = sub.get(p + 4..start + size).filter(|_| size > 0) else {
                break;
            };
            p = start + size;
            if tag == TAG_FILE {
                parse_attribute_list(body, &mut out);
            }
        }
    }
    out
}

fn parse_attribute_list(d: &[u8], out: &mut ArmAttributes) {
    let mut p = 0;
    while p < d.len() {
        let Some(tag) = uleb(d, &mut p) else { return };
        let is_string = tag == 4 || tag == 5 || tag == 67 || (tag >= 32 && tag % 2 == 1);
        if tag == 32 {
            if uleb(d, &mut p).is_none() {
                return;
            }
            skip_ntbs(d, &mut p);
        } else if is_string {
            skip_ntbs(d, &mut p);
        } else {
            let Some(v) = uleb(d, &mut p) else { return };
            match tag {
                TAG_CPU_ARCH => out.cpu_arch = Some(v),
                TAG_FP_ARCH => out.fp_arch = Some(v),
                TAG_ADVANCED_SIMD_ARCH => out.simd_arch = Some(v),
                TAG_ABI_VFP_ARGS => out.vfp_args = Some(v),
                _ => {}
            }
        }
    }
}

fn skip_ntbs(d: &[u8], p: &mut usize) {
    match d[*p..].iter().position(|&b| b == 0) {
        Some(n) => *p += n + 1,
        None => *p = d.len(),
    }
}

fn uleb(d: &[u8], p: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = *d.get(*p)?;
        *p += 1;
        if shift < 64 {
            v |= u64::from(b & 0x7f) << shift;
        }
        if b & 0x80 == 0 {
            return Some(v);
        }
        shift += 7;
    }
}

const GO_BUILDINFO_MAGIC: &[u8] = b"\xff Go buildinf:";

/// Reads the Go 1.18+ build info: a 32-byte header (magic, pointer size, flags with bit 1 =
/// inline strings), then the version and the module info as varint-prefixed strings. Older
/// layouts point into the data segment; for them only "Go binary" is reported.
pub fn parse_go_buildinfo(data: &[u8]) -> GoInfo {
    let mut info = GoInfo {
        version: None,
        goarch: None,
        goarm: None,
    };
    let Some(start) = find(data, GO_BUILDINFO_MAGIC) else {
        return info;
    };
    let d = &data[start..];
    if d.len() < 32 || d[15] & 2 == 0 {
        return info;
    }
    let mut p = 32;
    let mut string = || -> Option<&[u8]> {
        let n = uleb(d, &mut p)? as usize;
        let s = d.get(p..p + n)?;
        p += n;
        Some(s)
    };
    info.version = string().map(|s| String::from_utf8_lossy(s).into_owned());
    if let Some(modinfo) = string() {
        for line in String::from_utf8_lossy(modinfo).lines() {
            if let Some(v) = line.strip_prefix("build\tGOARCH=") {
                info.goarch = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("build\tGOARM=") {
                // Go 1.22+ may append ",softfloat" or ",hardfloat".
                let digits: String = v.chars().take_while(|c| c.is_ascii_digit()).collect();
                info.goarm = digits.parse().ok();
            }
        }
    }
    info
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs_section(file_attrs: &[u8]) -> Vec<u8> {
        let mut sub_sub = vec![TAG_FILE as u8];
        sub_sub.extend_from_slice(&((5 + file_attrs.len()) as u32).to_le_bytes());
        sub_sub.extend_from_slice(file_attrs);
        let mut sub = Vec::new();
        sub.extend_from_slice(&((4 + 6 + sub_sub.len()) as u32).to_le_bytes());
        sub.extend_from_slice(b"aeabi\0");
        sub.extend_from_slice(&sub_sub);
        let mut out = vec![b'A'];
        out.extend_from_slice(&sub);
        out
    }

    #[test]
    fn parses_cpu_arch_past_string_tags() {
        // Tag_CPU_name "6KZ", Tag_CPU_arch 7, Tag_compatibility 0 "", Tag_ABI_VFP_args 1
        let s = attrs_section(b"\x056KZ\0\x06\x07\x20\x00\0\x1c\x01");
        assert_eq!(
            parse_arm_attributes(&s, false),
            ArmAttributes {
                cpu_arch: Some(7),
                vfp_args: Some(1),
                ..ArmAttributes::default()
            }
        );
    }

    #[test]
    fn truncated_attributes_do_not_panic() {
        let s = attrs_section(b"\x06\x0a");
        for n in 0..s.len() {
            let _ = parse_arm_attributes(&s[..n], false);
        }
        assert_eq!(parse_arm_attributes(&s, false).cpu_arch, Some(10));
    }

    #[test]
    fn go_buildinfo_inline_strings() {
        let mut d = Vec::from(GO_BUILDINFO_MAGIC);
        d.extend_from_slice(&[4, 2]);
        d.resize(32, 0);
        let ver = b"go1.25.4";
        let modinfo =
            b"path\tcmd\nbuild\tGOARCH=arm\nbuild\tGOARM=6,softfloat\nbuild\tGOOS=linux\n";
        d.push(ver.len() as u8);
        d.extend_from_slice(ver);
        d.push(modinfo.len() as u8);
        d.extend_from_slice(modinfo);
        let g = parse_go_buildinfo(&d);
        assert_eq!(g.version.as_deref(), Some("go1.25.4"));
        assert_eq!(g.goarch.as_deref(), Some("arm"));
        assert_eq!(g.goarm, Some(6));
    }

    #[test]
    fn levels_for_arm1176() {
        assert!(runs_on_armv6(6) && runs_on_armv6(7) && runs_on_armv6(9));
        assert!(!runs_on_armv6(8) && !runs_on_armv6(10) && !runs_on_armv6(14));
        assert_eq!(cpu_arch_name(10), "v7");
    }
}
