//! `files`: copy project files into the root file system, or render them as handlebars
//! templates with the recipe's fields, with fixed modes and owners.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use handlebars::Handlebars;
use pifoundry_util::error::at;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Ctx, FieldError, Header, KeyInputs, StageError, StageKind, in_root};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesStage {
    pub name: String,
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Project-relative source file.
    pub src: PathBuf,
    /// Absolute path inside the root file system.
    pub dest: PathBuf,
    /// Octal, e.g. `"0755"`.
    #[serde(default = "default_mode")]
    pub mode: String,
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
    /// Render `src` as a handlebars template with the recipe's fields.
    #[serde(default)]
    pub template: bool,
}

fn default_mode() -> String {
    "0644".into()
}

/// An octal file mode such as `0755`.
pub fn parse_mode(mode: &str) -> Option<u32> {
    u32::from_str_radix(mode, 8).ok().filter(|m| *m <= 0o7777)
}

impl StageKind for FilesStage {
    fn name(&self) -> &str {
        &self.name
    }

    fn validate(&self) -> Result<(), FieldError> {
        if self.files.is_empty() {
            return Err(FieldError::new("files", "", "must list at least one file"));
        }
        for (j, f) in self.files.iter().enumerate() {
            super::project_relative(&format!("files[{j}].src"), &f.src)?;
            super::absolute(&format!("files[{j}].dest"), &f.dest)?;
            if parse_mode(&f.mode).is_none() {
                return Err(FieldError::new(
                    format!("files[{j}].mode"),
                    format!("`{}`", f.mode),
                    "is not an octal file mode",
                ));
            }
        }
        Ok(())
    }

    fn key_inputs(&self, key: &mut KeyInputs<'_>) -> Result<(), StageError> {
        for f in &self.files {
            key.project_file("file", &f.src)?;
            if f.template {
                // a template that cannot render fails now, not after the long stages
                contents(f, key.project_root, &key.header)?;
            }
        }
        if self.files.iter().any(|f| f.template) {
            key.header();
        }
        Ok(())
    }

    fn run(&self, ctx: &mut Ctx<'_>) -> Result<(), StageError> {
        for f in &self.files {
            let bytes = contents(f, ctx.project_root, &ctx.header)?;
            let dest = in_root(ctx.rootfs, &f.dest)?;
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent).map_err(at(parent))?;
            }
            if dest
                .symlink_metadata()
                .is_ok_and(|m| m.file_type().is_symlink())
            {
                fs::remove_file(&dest).map_err(at(&dest))?;
            }
            fs::write(&dest, bytes).map_err(at(&dest))?;
            let mode = parse_mode(&f.mode).expect("checked when the recipe was loaded");
            fs::set_permissions(&dest, fs::Permissions::from_mode(mode)).map_err(at(&dest))?;
            std::os::unix::fs::lchown(&dest, Some(f.uid), Some(f.gid)).map_err(at(&dest))?;
        }
        Ok(())
    }
}

/// The bytes a file entry installs: the file, or the template rendered with the recipe's
/// fields (strict: an unknown variable is an error).
fn contents(
    f: &FileEntry,
    project_root: &Path,
    header: &Header<'_>,
) -> Result<Vec<u8>, StageError> {
    let src = project_root.join(&f.src);
    let bytes = fs::read(&src).map_err(at(&src))?;
    if !f.template {
        return Ok(bytes);
    }
    let text =
        String::from_utf8(bytes).map_err(|_| StageError::input(&src, "template is not UTF-8"))?;
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::no_escape);
    let vars = json!({
        "name": header.name,
        "version": header.version,
        "operating_system": header.operating_system,
        "arch": header.arch.to_string(),
        "debian_arch": header.arch.debian(),
        "board": header.board,
        "source_date_epoch": header.source_date_epoch,
    });
    hb.render_template(&text, &vars)
        .map(String::into_bytes)
        .map_err(|e| StageError::input(&src, e.to_string()))
}
