//! Builds a disk image from two directories with the default layout (2 GiB, 256 MiB boot):
//! `cargo run -p baker --example disk_image -- ROOTFS BOOT_FILES OUT.img`
//! The bake's `image` stage does the same with the recipe's sizes and identifiers.

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [rootfs, boot, out] = args.as_slice() else {
        anyhow::bail!("usage: disk_image ROOTFS BOOT_FILES OUT.img");
    };
    let spec = baker::image::ImageSpec::new(rootfs, boot);
    let started = std::time::Instant::now();
    let layout = baker::image::build_disk_image(&spec, out)?;
    eprintln!(
        "{}: {layout:?} in {:.1} s",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
