//! `files`: copy project files into the root file system, or render them as handlebars
//! templates with the recipe's fields, with fixed modes and owners.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use handlebars::Handlebars;
use serde_json::json;

use super::in_root;
use crate::bake::{BakeError, Ctx};
use crate::recipe::stemcell::{FilesStage, parse_mode};

pub fn run(s: &FilesStage, ctx: &mut Ctx) -> Result<(), BakeError> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::no_escape);
    let r = ctx.recipe;
    let vars = json!({
        "name": r.name,
        "version": r.version,
        "operating_system": r.operating_system,
        "arch": r.arch.to_string(),
        "debian_arch": r.arch.debian(),
        "board": r.board,
        "source_date_epoch": r.source_date_epoch(),
    });
    for f in &s.files {
        let src = ctx.project_root.join(&f.src);
        let bytes = fs::read(&src).map_err(|e| BakeError::io(&src, e))?;
        let bytes = if f.template {
            let text = String::from_utf8(bytes)
                .map_err(|_| BakeError::msg(format!("{}: template is not UTF-8", src.display())))?;
            hb.render_template(&text, &vars)
                .map_err(|e| BakeError::msg(format!("{}: {e}", src.display())))?
                .into_bytes()
        } else {
            bytes
        };
        let dest = in_root(ctx.rootfs, &f.dest)?;
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(|e| BakeError::io(parent, e))?;
        }
        if dest
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            fs::remove_file(&dest).map_err(|e| BakeError::io(&dest, e))?;
        }
        fs::write(&dest, bytes).map_err(|e| BakeError::io(&dest, e))?;
        let mode = parse_mode(&f.mode).map_err(BakeError::msg)?;
        fs::set_permissions(&dest, fs::Permissions::from_mode(mode))
            .map_err(|e| BakeError::io(&dest, e))?;
        std::os::unix::fs::lchown(&dest, Some(f.uid), Some(f.gid))
            .map_err(|e| BakeError::io(&dest, e))?;
    }
    Ok(())
}
